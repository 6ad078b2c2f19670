//! Each rule's or check's page, a Markdown file named after its id and
//! embedded in the binary (so `--explain` works anywhere).

use include_dir::Dir;

/// A folder of pages, `<id>.md` each.
#[derive(Debug)]
pub struct Pages {
    dir: &'static Dir<'static>,
}

impl Pages {
    /// The pages in `dir` (an `include_dir!` of `docs/rules` or
    /// `docs/audit`).
    pub const fn new(dir: &'static Dir<'static>) -> Pages {
        Pages { dir }
    }

    /// The Markdown page of `id`.
    pub fn page(&self, id: &str) -> Option<&'static str> {
        self.dir.get_file(format!("{id}.md"))?.contents_utf8()
    }

    /// The page's first paragraph after its title and a `Group:` line:
    /// what the rule flags or the check proves, in a sentence or two
    /// (SARIF's short description, `--explain`'s index).
    pub fn summary(&self, id: &str) -> Option<String> {
        let paragraph: Vec<&str> = self
            .page(id)?
            .lines()
            .skip_while(|l| l.starts_with('#') || l.starts_with("Group:") || l.trim().is_empty())
            .take_while(|l| !l.trim().is_empty())
            .map(str::trim)
            .collect();
        (!paragraph.is_empty()).then(|| paragraph.join(" "))
    }

    /// `--explain`: the page of `id`, or with an empty `id` one line per
    /// id of `ids` with its summary, ids padded to the longest and two
    /// spaces more. `Err` names
    /// the ids when `id` is none of them.
    pub fn explain(&self, id: &str, ids: &[&str]) -> Result<String, Unknown> {
        if id.is_empty() {
            let width = ids.iter().map(|i| i.len()).max().unwrap_or(0) + 2;
            let mut out = String::new();
            for i in ids {
                let summary = self.summary(i).unwrap_or_default();
                out.push_str(&format!("{i:<width$} {summary}\n"));
            }
            return Ok(out);
        }
        match self.page(id).filter(|_| ids.contains(&id)) {
            Some(page) => Ok(page.to_string()),
            None => Err(Unknown {
                id: id.to_string(),
                known: ids.join(", "),
            }),
        }
    }
}

/// An id `--explain` does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    pub id: String,
    /// Every id, comma-separated.
    pub known: String,
}

#[cfg(test)]
mod tests {
    use include_dir::{Dir, include_dir};

    use super::Pages;

    static DIR: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/tests/pages");
    static PAGES: Pages = Pages::new(&DIR);

    #[test]
    fn the_summary_is_the_first_paragraph_after_the_title_and_group() {
        assert_eq!(
            PAGES.summary("first-rule").as_deref(),
            Some("Flags the first thing, over two lines.")
        );
        assert_eq!(PAGES.summary("missing"), None);
    }

    #[test]
    fn explain_lists_the_ids_in_a_column_or_prints_a_page() {
        let ids = ["first-rule", "b"];
        assert_eq!(
            PAGES.explain("", &ids).unwrap(),
            "first-rule   Flags the first thing, over two lines.\nb            \n"
        );
        assert!(
            PAGES
                .explain("first-rule", &ids)
                .unwrap()
                .starts_with("# first-rule\n")
        );
        let unknown = PAGES.explain("nope", &ids).unwrap_err();
        assert_eq!(unknown.known, "first-rule, b");
    }
}
