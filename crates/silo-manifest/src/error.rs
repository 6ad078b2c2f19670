//! Errors that point into `silo.toml`.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceCode};

/// One thing wrong with a manifest, located in its source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong, in one sentence.
    pub message: String,
    /// Byte range in the manifest text.
    pub span: Option<Range<usize>>,
    /// 1-based line of the span's start.
    pub line: usize,
    /// 1-based column (in characters) of the span's start.
    pub column: usize,
    /// What to do about it.
    pub help: Option<String>,
}

/// Everything wrong with a manifest, in source order.
#[derive(Debug, Clone)]
pub struct ManifestError {
    /// The manifest's path as given (for display).
    pub path: PathBuf,
    /// Each problem, ready to render against the manifest's text.
    located: Vec<LocatedProblem>,
}

/// Failure to find or read a manifest file.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum LoadError {
    #[error("no silo.toml found in {start} or any folder above it")]
    #[diagnostic(
        code(silo::manifest::not_found),
        help("run `silo init` to create one, or pass `--manifest PATH`")
    )]
    NotFound { start: PathBuf },
    #[error("cannot read {path}")]
    #[diagnostic(code(silo::manifest::unreadable))]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(#[from] ManifestError),
}

impl ManifestError {
    pub(crate) fn new(path: PathBuf, text: &str, mut problems: Vec<Problem>) -> Self {
        problems
            .sort_by(|a, b| (a.line, a.column, &a.message).cmp(&(b.line, b.column, &b.message)));
        // A value every service inherits (`[defaults.gateway] burst`)
        // can be wrong for each of them in the same way: say it once.
        problems.dedup();
        let source = Arc::new(NamedSource::new(
            path.display().to_string(),
            text.to_string(),
        ));
        let located = problems
            .into_iter()
            .map(|problem| LocatedProblem {
                problem,
                path: path.clone(),
                source: source.clone(),
            })
            .collect();
        ManifestError { path, located }
    }

    /// The problems, in source order.
    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.located.iter().map(|l| &l.problem)
    }

    fn single(&self) -> Option<&LocatedProblem> {
        match self.located.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.single() {
            Some(one) => one.fmt(f),
            None => write!(
                f,
                "{} has {} problems",
                self.path.display(),
                self.located.len()
            ),
        }
    }
}

impl std::error::Error for ManifestError {}

impl Diagnostic for ManifestError {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new("silo::manifest::invalid"))
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.single().and_then(|one| one.source_code())
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.single().and_then(|one| one.labels())
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.single().and_then(|one| one.help())
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        if self.single().is_some() {
            return None;
        }
        Some(Box::new(self.located.iter().map(|l| l as &dyn Diagnostic)))
    }
}

/// A problem together with the text it points into.
#[derive(Debug, Clone)]
struct LocatedProblem {
    problem: Problem,
    path: PathBuf,
    source: Arc<NamedSource<String>>,
}

impl std::fmt::Display for LocatedProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.problem.line,
            self.problem.column,
            self.problem.message
        )
    }
}

impl std::error::Error for LocatedProblem {}

impl Diagnostic for LocatedProblem {
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(self.source.as_ref())
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.problem.span.clone()?;
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some("here".into()),
            span,
        ))))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.problem
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
}

/// Converts a byte offset into a 1-based (line, column) pair; columns count
/// characters so they match what an editor shows.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The start of every line of a text, so that many offsets can be located
/// without rescanning the text from its start each time (a manifest of
/// thousands of services may report thousands of problems).
pub(crate) struct LineIndex<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    /// Same as [`line_column`], in logarithmic time plus the line's length.
    pub(crate) fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(self.text, offset.min(self.text.len()));
        let line = self.starts.partition_point(|&start| start <= offset);
        let start = self.starts[line - 1];
        (line, self.text[start..offset].chars().count() + 1)
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let text = "ab\ncé\nx";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 3), (2, 1));
        assert_eq!(line_column(text, 6), (2, 3));
        assert_eq!(line_column(text, 7), (3, 1));
        assert_eq!(line_column(text, 99), (3, 2));
    }

    #[test]
    fn line_index_agrees_with_line_column() {
        let text = "ab\ncé\n\nx\n";
        let index = LineIndex::new(text);
        for offset in 0..=text.len() + 2 {
            assert_eq!(
                index.line_column(offset),
                line_column(text, offset),
                "offset {offset}"
            );
        }
    }
}
