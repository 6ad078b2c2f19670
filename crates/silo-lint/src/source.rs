//! A service's migration files, parsed with the grammar of the service's
//! engine (PostgreSQL's own parser, or a SQLite-dialect parser), and the
//! inline `-- silo:ignore <rule> [--] <reason>` comments in them.

use std::path::PathBuf;

use pg_query::NodeEnum;
use silo_manifest::{Engine, Service, line_column};
use silo_migration_files::file::{FileName, parse_file_name};
use silo_migration_files::split::{self, Statement as RawStatement};
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

/// A migration file, read and parsed. An entry of a migrations folder
/// whose name looks like a migration but that silo would not run (a
/// folder named `V1__x.sql`, a `.SQL` file) is one too, so that rules can
/// report it.
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
    /// A folder, not a file: nothing in it is read.
    pub folder: bool,
    /// Every statement as `silo migrate` splits it, with the transaction
    /// control it holds: for SQLite all of them, parsed or not; for
    /// PostgreSQL those of the parse tree (none when the file does not
    /// parse).
    pub raw: Vec<silo_migration_files::split::Statement>,
    /// PostgreSQL statements, when the file parsed.
    pub statements: Vec<Statement>,
    /// SQLite statements (those that parsed).
    pub sqlite: Vec<SqliteStatement>,
    /// The parser's message and byte offset, when it did not (or why the
    /// file could not be parsed at all: not UTF-8 text, a NUL byte, an
    /// unterminated comment or string).
    pub parse_error: Option<(String, usize)>,
    /// What the file declares, whichever the engine.
    pub facts: Facts,
}

impl SourceFile {
    /// Reads and parses a file of `service` (or records a folder).
    pub fn load(service: &Service, path: PathBuf, root: &std::path::Path) -> std::io::Result<Self> {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let folder = path.is_dir();
        let name = match parse_file_name(&file_name) {
            _ if folder => Err(
                "a folder, not a file: silo runs only the files of a migrations folder".to_string(),
            ),
            Ok(Some(n)) => Ok(n),
            Ok(None) => Err(format!(
                "the extension must be `.sql` in lower case; silo does not run `{file_name}`"
            )),
            Err(e) => Err(e),
        };
        // A file that cannot be read (a FIFO, a link loop, no permission)
        // is a finding on that file, never the end of the run.
        let (bytes, unreadable) = if folder {
            (Vec::new(), None)
        } else {
            match silo_migration_files::file::read_regular(&path) {
                Ok(bytes) => (bytes, None),
                Err(e) => (Vec::new(), Some(e)),
            }
        };
        let mut file = SourceFile {
            service: service.name.clone(),
            engine: service.engine,
            display: path.strip_prefix(root).unwrap_or(&path).to_path_buf(),
            path,
            text: String::new(),
            name,
            folder,
            raw: Vec::new(),
            statements: Vec::new(),
            sqlite: Vec::new(),
            parse_error: None,
            facts: Facts::default(),
        };
        if let Some(e) = unreadable {
            file.parse_error = Some((format!("cannot read this file: {e}"), 0));
            return Ok(file);
        }
        match String::from_utf8(bytes) {
            Ok(text) => file.text = text,
            Err(e) => {
                // Offsets up to the first bad byte are the same in the
                // lossy text; keeping all of it keeps files apart (checksums).
                let at = e.utf8_error().valid_up_to();
                let bad = e.as_bytes()[at];
                file.text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                file.parse_error = Some((
                    format!(
                        "not UTF-8 text (byte 0x{bad:02X} here): a migration file must be text, and `silo migrate` refuses this one"
                    ),
                    at,
                ));
                return Ok(file);
            }
        }
        if file.engine == Engine::Postgres {
            let (statements, raw, error) = parse(&file.text);
            for s in &statements {
                facts::from_postgres(&s.node, s.start, &mut file.facts);
            }
            (file.statements, file.raw, file.parse_error) = (statements, raw, error);
        } else {
            let (statements, raw, error) = parse_sqlite(&file.text);
            for s in &statements {
                let loc = Locator {
                    text: &file.text,
                    start: s.start,
                };
                facts::from_sqlite(&s.node, &loc, &mut file.facts);
            }
            (file.sqlite, file.raw, file.parse_error) = (statements, raw, error);
        }
        Ok(file)
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

/// A PostgreSQL file's statements, as parse trees and as `silo migrate`
/// splits them, or where it stops parsing.
#[allow(clippy::type_complexity)]
fn parse(text: &str) -> (Vec<Statement>, Vec<RawStatement>, Option<(String, usize)>) {
    match pg_query::parse(text, pg_query::ParserOptions::default()) {
        Ok(parsed) => {
            let mut raw = Vec::new();
            let statements = parsed
                .protobuf
                .stmts
                .into_iter()
                .filter_map(|stmt| {
                    let start = stmt.stmt_location as usize;
                    let end = if stmt.stmt_len == 0 {
                        text.len()
                    } else {
                        start + stmt.stmt_len as usize
                    };
                    let start = split::skip_trivia(text, start, end);
                    let node = stmt.stmt?.node?;
                    raw.push(RawStatement {
                        start,
                        end,
                        no_transaction: None,
                        transaction_control: split::transaction_control(&node),
                    });
                    Some(Statement { node, start, end })
                })
                .collect();
            (statements, raw, None)
        }
        // What the file leaves open is where it goes wrong; otherwise the
        // first statement the parser rejects.
        Err(e) => {
            let error = match split::incomplete_postgres(text) {
                Some(open) => (open.to_string(), open.offset),
                None => split::postgres_syntax_error(text)
                    .map_or((e.to_string(), 0), |e| (e.message, e.offset)),
            };
            (Vec::new(), Vec::new(), Some(error))
        }
    }
}

/// Splits with SQLite's own statement scanner (`sqlite3_complete`), then
/// parses each statement in the SQLite dialect. A statement that does not
/// parse is reported (the first one) and skipped; the rest still count. A
/// file that ends inside a comment, string or trigger body is reported
/// there: SQLite would silently ignore the rest.
#[allow(clippy::type_complexity)]
fn parse_sqlite(
    text: &str,
) -> (
    Vec<SqliteStatement>,
    Vec<RawStatement>,
    Option<(String, usize)>,
) {
    let mut statements = Vec::new();
    let mut error = None;
    let open = split::incomplete_sqlite(text);
    let mut raw = split::split_sqlite(text);
    // What an open comment or string swallows is not a statement.
    raw.retain(|piece| open.as_ref().is_none_or(|o| piece.end < o.offset));
    for piece in &raw {
        let sql = piece.text(text);
        match sqlparser::parser::Parser::parse_sql(&SQLiteDialect {}, sql) {
            Ok(nodes) => statements.extend(nodes.into_iter().map(|node| SqliteStatement {
                node,
                start: piece.start,
                end: piece.end,
            })),
            // SQLite's VACUUM grammar (`VACUUM schema INTO 'file'`) is
            // beyond the dialect parser; the rules read its text.
            Err(_) if first_word(sql).eq_ignore_ascii_case("vacuum") => {}
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
    // The statements kept all come before what is left open.
    let error = error.or_else(|| open.map(|o| (o.to_string(), o.offset)));
    (statements, raw, error)
}

/// The first word of a statement (its keyword).
pub(crate) fn first_word(sql: &str) -> &str {
    let end = sql
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(sql.len());
    &sql[..end]
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
