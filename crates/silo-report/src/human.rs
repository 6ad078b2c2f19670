//! The parts of the terminal output that lint and audit draw the same way:
//! the severity label, the `-->` line, a source line with a caret under
//! the finding, and the `= help:` note.

use std::fmt::Write;

use crate::{Position, Severity};

/// ANSI colours, or plain text.
#[derive(Debug, Clone, Copy)]
pub struct Paint {
    pub on: bool,
}

impl Paint {
    /// `text` in SGR colour `code` (`1;31`), when colours are on.
    pub fn wrap(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// `error`, `warning` or `info`, coloured by how much it matters.
    pub fn severity(&self, severity: Severity) -> String {
        let code = match severity {
            Severity::Error => "1;31",
            Severity::Warning => "1;33",
            Severity::Info => "1;36",
        };
        self.wrap(code, severity.as_str())
    }
}

/// `{indent}--> file:line:column`.
pub fn arrow(out: &mut String, indent: &str, at: &Position) {
    let _ = writeln!(
        out,
        "{indent}--> {}:{}:{}",
        at.file.display(),
        at.line,
        at.column
    );
}

/// `{indent}= {word}: {text}`: what to do.
pub fn note(out: &mut String, indent: &str, word: &str, text: &str) {
    let _ = writeln!(out, "{indent}= {word}: {text}");
}

/// The source line `line` (its number in the gutter) with `width` carets
/// under it from `column`, rustc-style:
///
/// ```text
///    |
/// 12 |   note varchar(200),
///    |        ^^^^^^^
/// ```
pub fn snippet(out: &mut String, line: usize, text: &str, column: usize, width: usize) {
    let gutter = line.to_string();
    let pad = " ".repeat(gutter.len());
    let _ = writeln!(out, "{pad} |");
    let _ = writeln!(out, "{gutter} | {}", printable(text));
    let _ = writeln!(
        out,
        "{pad} | {}{}",
        " ".repeat(column.saturating_sub(1)),
        "^".repeat(width)
    );
}

/// How many carets underline `len` characters from `column` of `text`:
/// at least one, and none past the end of the line.
pub fn underline_width(text: &str, column: usize, len: usize) -> usize {
    let rest = text
        .chars()
        .count()
        .saturating_sub(column.saturating_sub(1));
    len.clamp(1, rest.max(1))
}

/// `text` with control characters (a binary file's) replaced, so they
/// cannot garble the terminal. Tabs stay.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snippet_underlines_the_span_under_its_line() {
        let mut out = String::new();
        snippet(&mut out, 12, "  note varchar(200),", 8, 7);
        assert_eq!(
            out,
            "   |\n12 |   note varchar(200),\n   |        ^^^^^^^\n"
        );
    }

    #[test]
    fn the_underline_stays_on_its_line() {
        assert_eq!(underline_width("abc", 3, 10), 1);
        assert_eq!(underline_width("abcdef", 2, 3), 3);
        assert_eq!(underline_width("", 1, 0), 1);
    }

    #[test]
    fn control_characters_are_replaced_and_tabs_kept() {
        assert_eq!(printable("a\u{1b}[31m\tb"), "a\u{fffd}[31m\tb");
    }

    #[test]
    fn colours_only_when_on() {
        assert_eq!(Paint { on: false }.severity(Severity::Error), "error");
        assert_eq!(
            Paint { on: true }.severity(Severity::Warning),
            "\x1b[1;33mwarning\x1b[0m"
        );
    }
}
