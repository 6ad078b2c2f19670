//! Each rule's page (`docs/rules/<id>.md`), embedded in the binary so that
//! `silo lint --explain <id>` works anywhere.

use include_dir::{Dir, include_dir};
use silo_report::{Pages, Tool};

static DIR: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../docs/rules");

/// Every rule's page, by id.
pub static PAGES: Pages = Pages::new(&DIR);

/// How lint names itself in SARIF and GitHub annotations.
pub const TOOL: Tool = Tool {
    name: "silo",
    command: "lint",
    done: "linted",
    title: "silo",
    help: "help",
    pages: &PAGES,
};

#[cfg(test)]
mod tests {
    use crate::RuleId;

    #[test]
    fn every_rule_has_a_page_with_a_summary() {
        for rule in RuleId::ALL {
            let page = super::PAGES
                .page(rule.as_str())
                .unwrap_or_else(|| panic!("docs/rules/{rule}.md is missing"));
            assert!(page.starts_with(&format!("# {rule}\n")), "{rule}");
            assert!(super::PAGES.summary(rule.as_str()).is_some(), "{rule}");
        }
    }
}
