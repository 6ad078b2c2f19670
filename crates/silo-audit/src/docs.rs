//! Each check's page (`docs/audit/<id>.md`), embedded in the binary so
//! that `silo audit --explain <id>` works anywhere.

use include_dir::{Dir, include_dir};
use silo_report::{Pages, Tool};

static DIR: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../docs/audit");

/// Every check's page, by id.
pub static PAGES: Pages = Pages::new(&DIR);

/// How the audit names itself in SARIF and GitHub annotations: a SARIF
/// tool of its own, so code scanning keeps its alerts apart from lint's.
pub const TOOL: Tool = Tool {
    name: "silo-audit",
    command: "audit",
    done: "audited",
    title: "silo audit",
    help: "fix",
    pages: &PAGES,
};

#[cfg(test)]
mod tests {
    use crate::Check;

    #[test]
    fn every_check_has_a_page_with_a_summary_and_a_fix() {
        for check in Check::ALL {
            let page = super::PAGES
                .page(check.id())
                .unwrap_or_else(|| panic!("docs/audit/{}.md is missing", check.id()));
            assert!(
                page.starts_with(&format!("# {}", check.id())),
                "{}",
                check.id()
            );
            assert!(super::PAGES.summary(check.id()).is_some(), "{}", check.id());
            assert!(page.contains("## How to fix"), "{}", check.id());
        }
    }
}
