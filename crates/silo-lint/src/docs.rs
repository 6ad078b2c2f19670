//! Each rule's page (`docs/rules/<id>.md`), embedded in the binary so that
//! `silo lint --explain <id>` works anywhere.

use include_dir::{Dir, include_dir};

static PAGES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../docs/rules");

/// The Markdown page of rule `id`.
pub fn page(id: &str) -> Option<&'static str> {
    PAGES.get_file(format!("{id}.md"))?.contents_utf8()
}

/// The page's first paragraph after its title and metadata line: what the
/// rule flags, in a sentence or two (SARIF's short description).
pub fn summary(id: &str) -> Option<String> {
    let page = page(id)?;
    let paragraph: Vec<&str> = page
        .lines()
        .skip_while(|l| l.starts_with('#') || l.starts_with("Group:") || l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    (!paragraph.is_empty()).then(|| paragraph.join(" "))
}
