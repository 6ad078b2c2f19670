//! Splitting a script into statements with each engine's own lexer:
//! PostgreSQL's parser (libpg_query) and SQLite's `sqlite3_complete`, so
//! dollar quotes, `DO` blocks, function bodies, comments, `E''` strings and
//! triggers all split where the server would.
//!
//! Splitting also finds statements that cannot run inside a transaction.

use std::ffi::CString;

use pg_query::NodeEnum;

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Byte offset of its first token (leading blanks and comments skipped).
    pub start: usize,
    /// Byte offset just past its end (without the `;`).
    pub end: usize,
    /// Why it cannot run inside a transaction, if it cannot.
    pub no_transaction: Option<&'static str>,
    /// `BEGIN`, `COMMIT`, `ROLLBACK`...: a statement that would end or
    /// nest the transaction silo runs the file in.
    pub transaction_control: Option<&'static str>,
}

impl Statement {
    /// The statement's text in `script`.
    pub fn text<'a>(&self, script: &'a str) -> &'a str {
        &script[self.start..self.end]
    }
}

/// Splits a PostgreSQL script. Uses the full parser when the script parses
/// (which also classifies statements); otherwise the scanner, and the
/// server will report the syntax error with its position.
pub fn split_postgres(script: &str, server_version: u32) -> Vec<Statement> {
    if script.contains('\0') {
        return vec![whole(script)];
    }
    match pg_query::parse(script, pg_query::ParserOptions::default()) {
        Ok(parsed) => parsed
            .protobuf
            .stmts
            .iter()
            .filter_map(|raw| {
                let start = raw.stmt_location as usize;
                let end = if raw.stmt_len == 0 {
                    script.len()
                } else {
                    start + raw.stmt_len as usize
                };
                let start = skip_trivia(script, start, end);
                (start < end).then(|| Statement {
                    start,
                    end: trim_end(script, start, end),
                    no_transaction: raw
                        .stmt
                        .as_ref()
                        .and_then(|n| n.node.as_ref())
                        .and_then(|n| needs_no_transaction(n, server_version)),
                    transaction_control: raw
                        .stmt
                        .as_ref()
                        .and_then(|n| n.node.as_ref())
                        .and_then(transaction_control),
                })
            })
            .collect(),
        Err(_) => match pg_query::split_with_scanner(script) {
            Ok(parts) => parts
                .into_iter()
                .filter_map(|part| {
                    let offset = part.as_ptr() as usize - script.as_ptr() as usize;
                    let end = offset + part.len();
                    let start = skip_trivia(script, offset, end);
                    (start < end).then(|| Statement {
                        start,
                        end: trim_end(script, start, end),
                        no_transaction: None,
                        transaction_control: None,
                    })
                })
                .collect(),
            Err(_) => vec![whole(script)],
        },
    }
}

fn whole(script: &str) -> Statement {
    Statement {
        start: skip_trivia(script, 0, script.len()),
        end: script.len(),
        no_transaction: None,
        transaction_control: None,
    }
}

/// Transaction control that would end or nest silo's own transaction
/// (savepoints are fine: they stay inside it).
fn transaction_control(node: &NodeEnum) -> Option<&'static str> {
    use pg_query::protobuf::TransactionStmtKind as K;
    let NodeEnum::TransactionStmt(t) = node else {
        return None;
    };
    match K::try_from(t.kind).ok()? {
        K::TransStmtBegin | K::TransStmtStart => Some("BEGIN"),
        K::TransStmtCommit => Some("COMMIT"),
        K::TransStmtRollback => Some("ROLLBACK"),
        K::TransStmtPrepare => Some("PREPARE TRANSACTION"),
        _ => None,
    }
}

/// Statements PostgreSQL refuses inside a transaction block.
fn needs_no_transaction(node: &NodeEnum, server_version: u32) -> Option<&'static str> {
    match node {
        NodeEnum::IndexStmt(s) if s.concurrent => Some("CREATE INDEX CONCURRENTLY"),
        NodeEnum::DropStmt(s) if s.concurrent => Some("DROP INDEX CONCURRENTLY"),
        NodeEnum::ReindexStmt(s)
            if s.params.iter().any(
                |p| matches!(&p.node, Some(NodeEnum::DefElem(d)) if d.defname == "concurrently"),
            ) =>
        {
            Some("REINDEX CONCURRENTLY")
        }
        NodeEnum::VacuumStmt(s) if s.is_vacuumcmd => Some("VACUUM"),
        NodeEnum::CreatedbStmt(_) => Some("CREATE DATABASE"),
        NodeEnum::DropdbStmt(_) => Some("DROP DATABASE"),
        NodeEnum::AlterSystemStmt(_) => Some("ALTER SYSTEM"),
        NodeEnum::CreateTableSpaceStmt(_) => Some("CREATE TABLESPACE"),
        NodeEnum::DropTableSpaceStmt(_) => Some("DROP TABLESPACE"),
        // Allowed in a transaction since PostgreSQL 12.
        NodeEnum::AlterEnumStmt(_) if server_version < 120_000 => Some("ALTER TYPE ... ADD VALUE"),
        _ => None,
    }
}

/// Splits a SQLite script where `sqlite3_complete` says a statement ends:
/// SQLite's own tokenizer, so `;` inside strings, comments and trigger
/// bodies does not split.
pub fn split_sqlite(script: &str) -> Vec<Statement> {
    let mut statements = Vec::new();
    let mut start = 0;
    for (i, _) in script.match_indices(';') {
        let candidate = &script[start..=i];
        if is_complete(candidate) {
            push_sqlite(script, start, i, &mut statements);
            start = i + 1;
        }
    }
    push_sqlite(script, start, script.len(), &mut statements);
    statements
}

fn push_sqlite(script: &str, from: usize, to: usize, out: &mut Vec<Statement>) {
    let start = skip_trivia(script, from, to);
    if start >= to {
        return;
    }
    let end = trim_end(script, start, to);
    let first_word: String = script[start..end]
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    let second_word: String = script[start + first_word.len()..end]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    let upper = first_word.to_ascii_uppercase();
    let transaction_control = match upper.as_str() {
        "BEGIN" => Some("BEGIN"),
        "COMMIT" | "END" => Some("COMMIT"),
        // `ROLLBACK TO [SAVEPOINT] x` stays inside the transaction.
        "ROLLBACK" if !second_word.eq_ignore_ascii_case("to") => Some("ROLLBACK"),
        _ => None,
    };
    out.push(Statement {
        start,
        end,
        no_transaction: (upper == "VACUUM").then_some("VACUUM"),
        transaction_control,
    });
}

fn is_complete(sql: &str) -> bool {
    let Ok(c) = CString::new(sql) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string for the whole call;
    // sqlite3_complete only reads it.
    unsafe { libsqlite3_sys::sqlite3_complete(c.as_ptr()) != 0 }
}

/// Skips blanks, `--` comments and (nested) `/* */` comments.
pub fn skip_trivia(s: &str, mut i: usize, end: usize) -> usize {
    let b = s.as_bytes();
    while i < end {
        match b[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < end && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < end {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            _ => break,
        }
    }
    i.min(end)
}

fn trim_end(s: &str, start: usize, end: usize) -> usize {
    let trimmed = s[start..end].trim_end_matches([' ', '\t', '\n', '\r', ';']);
    start + trimmed.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(script: &str, statements: &[Statement]) -> Vec<String> {
        statements
            .iter()
            .map(|s| s.text(script).to_string())
            .collect()
    }

    #[test]
    fn postgres_dollar_quotes_do_blocks_and_strings() {
        let script = "-- header\nCREATE TABLE a (x text DEFAULT E'semi;colon');\n\
            CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n\
            DO $$ BEGIN RAISE NOTICE 'x;y'; END $$;\n/* c; */ SELECT ';';";
        let s = split_postgres(script, 150000);
        assert_eq!(
            texts(script, &s),
            [
                "CREATE TABLE a (x text DEFAULT E'semi;colon')",
                "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql",
                "DO $$ BEGIN RAISE NOTICE 'x;y'; END $$",
                "SELECT ';'",
            ]
        );
        assert!(s.iter().all(|s| s.no_transaction.is_none()));
    }

    #[test]
    fn postgres_finds_no_transaction_statements() {
        let script = "CREATE INDEX CONCURRENTLY i ON t (x); CREATE INDEX j ON t (y);\
            DROP INDEX CONCURRENTLY k; REINDEX (CONCURRENTLY) INDEX j; VACUUM t; \
            ALTER TYPE e ADD VALUE 'z';";
        let s = split_postgres(script, 150000);
        let flags: Vec<_> = s.iter().map(|s| s.no_transaction).collect();
        assert_eq!(
            flags,
            [
                Some("CREATE INDEX CONCURRENTLY"),
                None,
                Some("DROP INDEX CONCURRENTLY"),
                Some("REINDEX CONCURRENTLY"),
                Some("VACUUM"),
                None
            ]
        );
        assert_eq!(
            split_postgres("ALTER TYPE e ADD VALUE 'z'", 110000)[0].no_transaction,
            Some("ALTER TYPE ... ADD VALUE")
        );
    }

    #[test]
    fn postgres_unparsable_script_still_splits() {
        let script = "SELECT 1; SELEC oops; SELECT 2;";
        let s = split_postgres(script, 150000);
        assert!(s.len() >= 2, "{s:?}");
        assert_eq!(s[0].text(script), "SELECT 1");
    }

    #[test]
    fn sqlite_triggers_strings_and_comments() {
        let script = "CREATE TABLE a (x TEXT DEFAULT 'a;b'); -- one; two\n\
            CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE a SET x = 'y;'; END;\n\
            /* ; */ VACUUM;\nSELECT 1";
        let s = split_sqlite(script);
        assert_eq!(
            texts(script, &s),
            [
                "CREATE TABLE a (x TEXT DEFAULT 'a;b')",
                "CREATE TRIGGER t AFTER INSERT ON a BEGIN UPDATE a SET x = 'y;'; END",
                "VACUUM",
                "SELECT 1",
            ]
        );
        assert_eq!(s[2].no_transaction, Some("VACUUM"));
    }
}
