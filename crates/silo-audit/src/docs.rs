//! Each check's page (`docs/audit/<id>.md`), embedded in the binary so
//! that `silo audit --explain <id>` works anywhere.

use include_dir::{Dir, include_dir};

static PAGES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../docs/audit");

/// The Markdown page of check `id`.
pub fn page(id: &str) -> Option<&'static str> {
    PAGES.get_file(format!("{id}.md"))?.contents_utf8()
}

/// The page's first paragraph after its title: what the check proves
/// (SARIF's short description).
pub fn summary(id: &str) -> Option<String> {
    let paragraph: Vec<&str> = page(id)?
        .lines()
        .skip_while(|l| l.starts_with('#') || l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    (!paragraph.is_empty()).then(|| paragraph.join(" "))
}

#[cfg(test)]
mod tests {
    use crate::Check;

    #[test]
    fn every_check_has_a_page_with_a_summary_and_a_fix() {
        for check in Check::ALL {
            let page = super::page(check.id())
                .unwrap_or_else(|| panic!("docs/audit/{}.md is missing", check.id()));
            assert!(
                page.starts_with(&format!("# {}", check.id())),
                "{}",
                check.id()
            );
            assert!(super::summary(check.id()).is_some(), "{}", check.id());
            assert!(page.contains("## How to fix"), "{}", check.id());
        }
    }
}
