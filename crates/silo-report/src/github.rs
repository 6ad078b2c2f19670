//! GitHub Actions workflow annotations.

use std::fmt::Write;

use crate::{Location, Run};

/// One workflow command per finding, then a notice per skipped path or
/// check.
pub fn github(run: &Run<'_>) -> String {
    let mut out = String::new();
    for f in &run.findings {
        let place = match &f.location {
            Location::Source(p) => {
                format!(
                    "file={},line={},col={},",
                    p.file.display(),
                    p.line,
                    p.column
                )
            }
            Location::Live { .. } => String::new(),
        };
        let _ = writeln!(
            out,
            "::{} {place}title={} {}::{}",
            f.severity.github_level(),
            run.tool.title,
            f.rule,
            escape(&run.message(f)),
        );
    }
    for k in &run.skipped {
        let place = k
            .path
            .map(|p| format!("file={},", p.display()))
            .unwrap_or_default();
        let what = k.rule.unwrap_or("this path");
        let _ = writeln!(
            out,
            "::notice {place}title=silo {} skipped {what}::{}",
            run.tool.command,
            escape(k.reason)
        );
    }
    out
}

/// Workflow commands end at a newline; percent-encode what would break
/// them.
fn escape(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

#[cfg(test)]
mod tests {
    #[test]
    fn newlines_and_percent_signs_are_encoded() {
        assert_eq!(super::escape("50%\r\nmore"), "50%25%0D%0Amore");
    }
}
