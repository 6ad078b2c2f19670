//! A service's migration files, parsed with the grammar of the service's
//! engine (PostgreSQL's own parser, or a SQLite-dialect parser), and the
//! inline `-- silo:ignore <rule> [--] <reason>` comments in them.

use std::path::PathBuf;

use pg_query::NodeEnum;
use silo_manifest::{Engine, Service, line_column};
use silo_migrate::file::{FileName, parse_file_name};
use sqlparser::dialect::SQLiteDialect;

use crate::facts::{self, Facts, Locator};

/// One statement of a SQLite file.
#[derive(Debug)]
pub struct SqliteStatement {
    pub node: sqlparser::ast::Statement,
    pub start: usize,
    pub end: usize,
}

/// One statement of a file.
#[derive(Debug)]
pub struct Statement {
    pub node: NodeEnum,
    /// Byte offset of the statement's first token.
    pub start: usize,
    pub end: usize,
}

/// A migration file, read and parsed.
#[derive(Debug)]
pub struct SourceFile {
    pub service: String,
    pub engine: Engine,
    /// Absolute path.
    pub path: PathBuf,
    /// Relative to the project root (for reports).
    pub display: PathBuf,
    pub text: String,
    /// The parsed name, or why it is not a migration name.
    pub name: Result<FileName, String>,
    /// PostgreSQL statements, when the file parsed.
    pub statements: Vec<Statement>,
    /// SQLite statements (those that parsed).
    pub sqlite: Vec<SqliteStatement>,
    /// The parser's message and byte offset, when it did not.
    pub parse_error: Option<(String, usize)>,
    /// What the file declares, whichever the engine.
    pub facts: Facts,
}

impl SourceFile {
    /// Reads and parses a file of `service`.
    pub fn load(service: &Service, path: PathBuf, root: &std::path::Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(&path)?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = match parse_file_name(&file_name) {
            Ok(Some(n)) => Ok(n),
            Ok(None) => Err("not a .sql file".to_string()),
            Err(e) => Err(e),
        };
        let mut facts = Facts::default();
        let (statements, sqlite, parse_error) = if service.engine == Engine::Postgres {
            let (statements, error) = parse(&text);
            for s in &statements {
                facts::from_postgres(&s.node, s.start, &mut facts);
            }
            (statements, Vec::new(), error)
        } else {
            let (statements, error) = parse_sqlite(&text);
            for s in &statements {
                let loc = Locator {
                    text: &text,
                    start: s.start,
                };
                facts::from_sqlite(&s.node, &loc, &mut facts);
            }
            (Vec::new(), statements, error)
        };
        Ok(SourceFile {
            service: service.name.clone(),
            engine: service.engine,
            display: path.strip_prefix(root).unwrap_or(&path).to_path_buf(),
            path,
            text,
            name,
            statements,
            sqlite,
            parse_error,
            facts,
        })
    }

    /// 1-based line and column of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        line_column(&self.text, offset)
    }

    /// The reason of the first `-- silo:<name> <reason>` comment anywhere in
    /// the file (`silo:breaking`, `silo:irreversible`); a directive without
    /// a reason does not count. Comments are found by PostgreSQL's scanner,
    /// so `--` inside a string literal is not a comment.
    pub fn directive(&self, name: &str) -> Option<&str> {
        let prefix = format!("silo:{name}");
        self.comments().find_map(|c| {
            let body = c.strip_prefix("--")?.trim();
            let reason = body.strip_prefix(&prefix)?;
            (reason.starts_with(char::is_whitespace) && !reason.trim().is_empty())
                .then(|| reason.trim())
        })
    }

    /// The file's `--` comments, in order.
    fn comments(&self) -> impl Iterator<Item = &str> {
        let tokens = pg_query::scan(&self.text)
            .map(|r| r.tokens)
            .unwrap_or_default();
        let comment = pg_query::protobuf::Token::SqlComment as i32;
        tokens
            .into_iter()
            .filter(move |t| t.token == comment)
            .filter_map(|t| self.text.get(t.start as usize..t.end as usize))
    }

    /// Whether a `-- silo:ignore <rule> <reason>` comment silences `rule`
    /// for the finding at `offset`: the comment stands in the block of `--`
    /// lines directly above the statement that holds the finding, or
    /// directly above the finding's own line (inside a long statement).
    /// See [`ignores`] for the comment's form; a reason is required.
    pub fn ignored(&self, rule: &str, offset: usize) -> bool {
        let lines: Vec<&str> = self.text.lines().collect();
        let own = self.position(offset).0;
        let statement = self
            .statement_start(offset)
            .map(|start| self.position(start).0);
        [Some(own), statement]
            .into_iter()
            .flatten()
            .any(|line| comments_above(&lines, line).any(|c| ignores(c, rule)))
    }

    /// Where the statement holding `offset` starts, whichever the engine.
    fn statement_start(&self, offset: usize) -> Option<usize> {
        self.statements
            .iter()
            .map(|s| s.start)
            .chain(self.sqlite.iter().map(|s| s.start))
            .filter(|&start| start <= offset)
            .max()
    }
}

/// The `--` comment lines directly above 1-based `line`, nearest first
/// (a blank line ends the block).
fn comments_above<'a>(lines: &'a [&'a str], line: usize) -> impl Iterator<Item = &'a str> {
    lines[..line.saturating_sub(1).min(lines.len())]
        .iter()
        .rev()
        .map(|l| l.trim())
        .take_while(|l| l.starts_with("--"))
}

/// Whether `comment` is `-- silo:ignore <rules> <reason>` naming `rule`.
/// `<rules>` is one rule id or several separated by commas; the reason may
/// follow a `--` (`-- silo:ignore prefer-identity -- ids match users.id`)
/// and must not be empty: an ignore without a reason silences nothing.
pub fn ignores(comment: &str, rule: &str) -> bool {
    let Some(rest) = comment
        .strip_prefix("--")
        .map(str::trim_start)
        .and_then(|c| c.strip_prefix("silo:ignore"))
    else {
        return false;
    };
    if !rest.starts_with(char::is_whitespace) {
        return false;
    }
    let mut rest = rest.trim_start();
    let mut named = false;
    // Rule ids, allowing `a,b` and `a, b`: a token ending in a comma
    // continues the list.
    loop {
        let (token, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        named |= token.split(',').any(|r| r == rule);
        rest = after.trim_start();
        if !token.ends_with(',') || rest.is_empty() {
            break;
        }
    }
    let reason = rest.strip_prefix("--").unwrap_or(rest).trim();
    named && !reason.is_empty()
}

fn parse(text: &str) -> (Vec<Statement>, Option<(String, usize)>) {
    if text.contains('\0') {
        return (Vec::new(), Some(("the file contains a NUL byte".into(), 0)));
    }
    match pg_query::parse(text, pg_query::ParserOptions::default()) {
        Ok(parsed) => {
            let statements = parsed
                .protobuf
                .stmts
                .into_iter()
                .filter_map(|raw| {
                    let start = raw.stmt_location as usize;
                    let end = if raw.stmt_len == 0 {
                        text.len()
                    } else {
                        start + raw.stmt_len as usize
                    };
                    let start = silo_migrate::split::skip_trivia(text, start, end);
                    let node = raw.stmt?.node?;
                    Some(Statement { node, start, end })
                })
                .collect();
            (statements, None)
        }
        Err(e) => {
            let message = e.to_string();
            (Vec::new(), Some((message, error_offset(text))))
        }
    }
}

/// Splits with SQLite's own statement scanner (`sqlite3_complete`), then
/// parses each statement in the SQLite dialect. A statement that does not
/// parse is reported (the first one) and skipped; the rest still count.
fn parse_sqlite(text: &str) -> (Vec<SqliteStatement>, Option<(String, usize)>) {
    let mut statements = Vec::new();
    let mut error = None;
    for piece in silo_migrate::split::split_sqlite(text) {
        let sql = piece.text(text);
        match sqlparser::parser::Parser::parse_sql(&SQLiteDialect {}, sql) {
            Ok(nodes) => statements.extend(nodes.into_iter().map(|node| SqliteStatement {
                node,
                start: piece.start,
                end: piece.end,
            })),
            Err(e) if error.is_none() => {
                let message = e.to_string();
                let loc = Locator {
                    text,
                    start: piece.start,
                };
                let at = error_location(&message).map_or(piece.start, |l| loc.at(l));
                let message = message
                    .strip_prefix("sql parser error: ")
                    .unwrap_or(&message)
                    .to_string();
                error = Some((message, at));
            }
            Err(_) => {}
        }
    }
    (statements, error)
}

/// sqlparser ends its messages with `at Line: L, Column: C`.
fn error_location(message: &str) -> Option<sqlparser::tokenizer::Location> {
    let rest = &message[message.rfind("Line: ")? + "Line: ".len()..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some(sqlparser::tokenizer::Location {
        line: line.trim().parse().ok()?,
        column: column.parse().ok()?,
    })
}

/// libpg_query's error carries no position through the Rust API; the
/// scanner-based splitter finds the first statement the parser rejects.
fn error_offset(text: &str) -> usize {
    let Ok(parts) = pg_query::split_with_scanner(text) else {
        return 0;
    };
    for part in parts {
        if pg_query::parse(part, pg_query::ParserOptions::default()).is_err() {
            let offset = part.as_ptr() as usize - text.as_ptr() as usize;
            return silo_migrate::split::skip_trivia(text, offset, offset + part.len());
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::ignores;

    #[test]
    fn ignore_comments_need_the_rule_and_a_reason() {
        let rule = "prefer-identity";
        assert!(ignores(
            "-- silo:ignore prefer-identity ids match users.id",
            rule
        ));
        assert!(ignores("-- silo:ignore prefer-identity -- ids match", rule));
        assert!(ignores("--silo:ignore prefer-identity --ids match", rule));
        assert!(ignores(
            "-- silo:ignore a,prefer-identity -- ids match",
            rule
        ));
        assert!(ignores(
            "-- silo:ignore a, prefer-identity -- ids match",
            rule
        ));
        assert!(ignores("-- silo:ignore prefer-identity, a ids match", rule));
        // No reason, or only the separator: silences nothing.
        assert!(!ignores("-- silo:ignore prefer-identity", rule));
        assert!(!ignores("-- silo:ignore prefer-identity --", rule));
        assert!(!ignores("-- silo:ignore prefer-identity --   ", rule));
        assert!(!ignores("-- silo:ignore a, prefer-identity", rule));
        // Another rule, a prefix of the id, or not an ignore comment.
        assert!(!ignores(
            "-- silo:ignore prefer-text-field -- because",
            rule
        ));
        assert!(!ignores("-- silo:ignore prefer -- because", rule));
        assert!(!ignores("-- silo:ignored prefer-identity because", rule));
        assert!(!ignores(
            "-- note: silo:ignore prefer-identity because",
            rule
        ));
    }
}
