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

/// A script that ends where it should not: inside a comment, a string, a
/// quoted identifier or a trigger's body, or one that holds a NUL byte.
/// An engine would silently ignore (SQLite) or refuse (PostgreSQL) the
/// rest of the file, so silo refuses it before running any of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incomplete {
    /// Byte offset of what is left open (its opening token), or of the
    /// NUL byte.
    pub offset: usize,
    pub what: Unclosed,
}

/// What [`Incomplete`] leaves open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unclosed {
    /// `/*` without its `*/`.
    BlockComment,
    /// `'` without its closing quote.
    String,
    /// `"`, `` ` `` or `[` without its closing one.
    QuotedIdentifier,
    /// `$tag$` (PostgreSQL) without its closing tag; holds the tag.
    DollarQuote(String),
    /// SQLite's `CREATE TRIGGER ... BEGIN` without `END;`.
    Trigger,
    /// A NUL byte: SQL text cannot hold one, and SQLite stops reading at it.
    NulByte,
}

impl std::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rest = "the rest of the file is inside it";
        match &self.what {
            Unclosed::BlockComment => write!(f, "unterminated `/*` comment: {rest}"),
            Unclosed::String => write!(f, "unterminated string: {rest}"),
            Unclosed::QuotedIdentifier => write!(f, "unterminated quoted identifier: {rest}"),
            Unclosed::DollarQuote(tag) => {
                write!(f, "unterminated dollar-quoted string `{tag}`: {rest}")
            }
            Unclosed::Trigger => write!(
                f,
                "CREATE TRIGGER without `END;`: the rest of the file is inside its body"
            ),
            Unclosed::NulByte => write!(
                f,
                "a NUL byte: SQL text cannot hold one, and the engine would stop reading here"
            ),
        }
    }
}

/// Whether a script of `engine` ends inside something it opened (see
/// [`Incomplete`]). A last statement without its `;` is complete.
pub fn incomplete(script: &str, engine: silo_manifest::Engine) -> Option<Incomplete> {
    match engine {
        silo_manifest::Engine::Postgres => incomplete_postgres(script),
        silo_manifest::Engine::Sqlite => incomplete_sqlite(script),
    }
}

/// [`incomplete`] for PostgreSQL: PostgreSQL's own scanner decides, and a
/// small lexer finds where the open comment, string, quoted identifier or
/// dollar quote starts (the scanner's error carries no position).
pub fn incomplete_postgres(script: &str) -> Option<Incomplete> {
    if let Some(offset) = script.find('\0') {
        return Some(Incomplete {
            offset,
            what: Unclosed::NulByte,
        });
    }
    if pg_query::scan(script).is_ok() {
        return None;
    }
    unclosed_postgres(script).map(|(offset, what)| Incomplete { offset, what })
}

/// [`incomplete`] for SQLite: `sqlite3_complete` decides whether what
/// follows the last complete statement ends once a `;` is added.
pub fn incomplete_sqlite(script: &str) -> Option<Incomplete> {
    if let Some(offset) = script.find('\0') {
        return Some(Incomplete {
            offset,
            what: Unclosed::NulByte,
        });
    }
    let (_, tail) = sqlite_complete_part(script);
    if is_complete(&format!("{}\n;", &script[tail..])) {
        return None;
    }
    Some(match unclosed_sqlite(script, tail) {
        Some((offset, what)) => Incomplete { offset, what },
        None => Incomplete {
            offset: skip_trivia_sqlite(script, tail, script.len()),
            what: Unclosed::Trigger,
        },
    })
}

/// The first comment, string or quoted identifier from `i` on that SQLite's
/// tokenizer would leave open at the end of `s`.
fn unclosed_sqlite(s: &str, mut i: usize) -> Option<(usize, Unclosed)> {
    let b = s.as_bytes();
    while i < b.len() {
        let at = i;
        match b[i] {
            b'-' if b.get(i + 1) == Some(&b'-') => i = find(b, i, b"\n").map_or(b.len(), |j| j + 1),
            b'/' if b.get(i + 1) == Some(&b'*') => match find(b, i + 2, b"*/") {
                Some(j) => i = j + 2,
                None => return Some((at, Unclosed::BlockComment)),
            },
            q @ (b'\'' | b'"' | b'`') => match closing_quote(b, i + 1, q, false) {
                Some(j) => i = j + 1,
                None if q == b'\'' => return Some((at, Unclosed::String)),
                None => return Some((at, Unclosed::QuotedIdentifier)),
            },
            b'[' => match find(b, i + 1, b"]") {
                Some(j) => i = j + 1,
                None => return Some((at, Unclosed::QuotedIdentifier)),
            },
            _ => i += 1,
        }
    }
    None
}

/// The first comment, string, quoted identifier or dollar quote that
/// PostgreSQL's scanner would leave open at the end of `s`.
fn unclosed_postgres(s: &str) -> Option<(usize, Unclosed)> {
    let b = s.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
    let mut i = 0;
    while i < b.len() {
        let at = i;
        let after_ident = i > 0 && ident(b[i - 1]);
        match b[i] {
            b'-' if b.get(i + 1) == Some(&b'-') => i = find(b, i, b"\n").map_or(b.len(), |j| j + 1),
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 1;
                i += 2;
                while depth > 0 {
                    if i + 1 >= b.len() {
                        return Some((at, Unclosed::BlockComment));
                    }
                    match (b[i], b[i + 1]) {
                        (b'/', b'*') => (depth, i) = (depth + 1, i + 2),
                        (b'*', b'/') => (depth, i) = (depth - 1, i + 2),
                        _ => i += 1,
                    }
                }
            }
            b'\'' => {
                // E'...' strings take backslash escapes.
                let escapes =
                    i > 0 && matches!(b[i - 1], b'E' | b'e') && !(i > 1 && ident(b[i - 2]));
                match closing_quote(b, i + 1, b'\'', escapes) {
                    Some(j) => i = j + 1,
                    None => return Some((at, Unclosed::String)),
                }
            }
            b'"' => match closing_quote(b, i + 1, b'"', false) {
                Some(j) => i = j + 1,
                None => return Some((at, Unclosed::QuotedIdentifier)),
            },
            b'$' if !after_ident => {
                let name_end = b[i + 1..]
                    .iter()
                    .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80))
                    .map_or(b.len(), |n| i + 1 + n);
                let starts_well = name_end == i + 1 || !b[i + 1].is_ascii_digit();
                if starts_well && b.get(name_end) == Some(&b'$') {
                    let tag = &s[i..=name_end];
                    match find(b, name_end + 1, tag.as_bytes()) {
                        Some(j) => i = j + tag.len(),
                        None => return Some((at, Unclosed::DollarQuote(tag.to_string()))),
                    }
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// Offset of the first `needle` in `b` at or after `from`.
fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|n| from + n)
}

/// Offset of the quote `q` that closes a quoted token whose body starts at
/// `from`; a doubled quote stands for itself, and so does `\q` when
/// `backslash` escapes.
fn closing_quote(b: &[u8], mut from: usize, q: u8, backslash: bool) -> Option<usize> {
    while from < b.len() {
        match b[from] {
            b'\\' if backslash => from += 2,
            c if c == q && b.get(from + 1) == Some(&q) => from += 2,
            c if c == q => return Some(from),
            _ => from += 1,
        }
    }
    None
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
        Err(_) => match scanner_parts(script) {
            Some(parts) => parts
                .into_iter()
                .filter_map(|(offset, end)| {
                    let start = skip_trivia(script, offset, end);
                    (start < end).then(|| Statement {
                        start,
                        end: trim_end(script, start, end),
                        no_transaction: None,
                        transaction_control: None,
                    })
                })
                .collect(),
            None => vec![whole(script)],
        },
    }
}

/// The byte ranges of a PostgreSQL script's statements as the scanner
/// splits them, the text after the last `;` included (the scanner's own
/// split drops a last statement that does not parse).
fn scanner_parts(script: &str) -> Option<Vec<(usize, usize)>> {
    let parts = pg_query::split_with_scanner(script).ok()?;
    let mut ranges: Vec<(usize, usize)> = parts
        .into_iter()
        .map(|part| {
            let offset = part.as_ptr() as usize - script.as_ptr() as usize;
            (offset, offset + part.len())
        })
        .collect();
    let covered = ranges.last().map_or(0, |&(_, end)| end);
    let rest = script[covered..]
        .find(';')
        .map_or(covered, |i| covered + i + 1);
    if skip_trivia(script, rest, script.len()) < script.len() {
        ranges.push((rest, script.len()));
    }
    Some(ranges)
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
pub fn transaction_control(node: &NodeEnum) -> Option<&'static str> {
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
/// bodies does not split. What follows the last complete statement is the
/// last statement (a final `;` is optional); [`incomplete_sqlite`] says
/// whether it really ends.
pub fn split_sqlite(script: &str) -> Vec<Statement> {
    let (mut statements, tail) = sqlite_complete_part(script);
    push_sqlite(script, tail, script.len(), &mut statements);
    statements
}

/// The complete statements, and the offset where the rest starts.
fn sqlite_complete_part(script: &str) -> (Vec<Statement>, usize) {
    let mut statements = Vec::new();
    let mut start = 0;
    for (i, _) in script.match_indices(';') {
        let candidate = &script[start..=i];
        if is_complete(candidate) {
            push_sqlite(script, start, i, &mut statements);
            start = i + 1;
        }
    }
    (statements, start)
}

fn push_sqlite(script: &str, from: usize, to: usize, out: &mut Vec<Statement>) {
    let start = skip_trivia_sqlite(script, from, to);
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

/// A statement that the engine's own parser rejects: where, and the
/// parser's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset of the error (or of the statement, where the parser
    /// gives no position).
    pub offset: usize,
    pub message: String,
}

/// The first syntax error of a script, found by the engine's own parser
/// without running anything: PostgreSQL's (libpg_query), or SQLite's
/// (each statement prepared against an empty in-memory database; unknown
/// tables and columns are not syntax errors and are ignored). For files
/// that run statement by statement, where a late syntax error would leave
/// the statements before it applied.
pub fn syntax_error(script: &str, engine: silo_manifest::Engine) -> Option<SyntaxError> {
    match engine {
        silo_manifest::Engine::Postgres => postgres_syntax_error(script),
        silo_manifest::Engine::Sqlite => sqlite_syntax_error(script),
    }
}

/// [`syntax_error`] for PostgreSQL. libpg_query's error carries no position
/// through its Rust API, so the scanner's split finds the first statement
/// the parser rejects.
pub fn postgres_syntax_error(script: &str) -> Option<SyntaxError> {
    let Err(e) = pg_query::parse(script, pg_query::ParserOptions::default()) else {
        return None;
    };
    let message = e.to_string();
    let message = message
        .strip_prefix("Invalid statement: ")
        .unwrap_or(&message)
        .to_string();
    let offset = scanner_parts(script)
        .unwrap_or_default()
        .into_iter()
        .find(|&(start, end)| {
            pg_query::parse(&script[start..end], pg_query::ParserOptions::default()).is_err()
        })
        .map_or(0, |(start, end)| skip_trivia(script, start, end));
    Some(SyntaxError { offset, message })
}

/// [`syntax_error`] for SQLite.
pub fn sqlite_syntax_error(script: &str) -> Option<SyntaxError> {
    let db = MemoryDb::open()?;
    split_sqlite(script).into_iter().find_map(|s| {
        let (at, message) = db.syntax_error(s.text(script))?;
        Some(SyntaxError {
            offset: s.start + at,
            message,
        })
    })
}

/// An empty in-memory SQLite database, to run SQLite's parser over SQL.
struct MemoryDb(*mut libsqlite3_sys::sqlite3);

impl MemoryDb {
    fn open() -> Option<Self> {
        let mut db = std::ptr::null_mut();
        // SAFETY: the name is a NUL-terminated literal and `db` a valid out
        // pointer; a handle is returned even on failure, and closed by Drop.
        let rc = unsafe {
            libsqlite3_sys::sqlite3_open_v2(
                c":memory:".as_ptr(),
                &mut db,
                libsqlite3_sys::SQLITE_OPEN_READWRITE | libsqlite3_sys::SQLITE_OPEN_MEMORY,
                std::ptr::null(),
            )
        };
        let db = MemoryDb(db);
        (rc == libsqlite3_sys::SQLITE_OK).then_some(db)
    }

    /// Prepares `sql` (never steps it). A syntax error's byte offset in
    /// `sql` and message; `None` when it parses, whatever else fails.
    fn syntax_error(&self, sql: &str) -> Option<(usize, String)> {
        let c = CString::new(sql).ok()?;
        let mut stmt = std::ptr::null_mut();
        // SAFETY: `self.0` is an open handle and `c` lives through the
        // call; the statement is finalized before returning, and the
        // message is copied before the next call on the handle.
        unsafe {
            let rc = libsqlite3_sys::sqlite3_prepare_v2(
                self.0,
                c.as_ptr(),
                -1,
                &mut stmt,
                std::ptr::null_mut(),
            );
            libsqlite3_sys::sqlite3_finalize(stmt);
            if rc == libsqlite3_sys::SQLITE_OK {
                return None;
            }
            let message = std::ffi::CStr::from_ptr(libsqlite3_sys::sqlite3_errmsg(self.0))
                .to_string_lossy()
                .into_owned();
            let syntax = message == "incomplete input"
                || message.starts_with("unrecognized token")
                || message.ends_with("syntax error");
            let at = usize::try_from(libsqlite3_sys::sqlite3_error_offset(self.0)).unwrap_or(0);
            syntax.then_some((at.min(sql.len()), message))
        }
    }
}

impl Drop for MemoryDb {
    fn drop(&mut self) {
        // SAFETY: the handle came from sqlite3_open_v2 and is closed once;
        // no statement of it is left unfinalized.
        unsafe {
            libsqlite3_sys::sqlite3_close(self.0);
        }
    }
}

fn is_complete(sql: &str) -> bool {
    let Ok(c) = CString::new(sql) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string for the whole call;
    // sqlite3_complete only reads it.
    unsafe { libsqlite3_sys::sqlite3_complete(c.as_ptr()) != 0 }
}

/// Skips blanks, `--` comments and (nested) `/* */` comments, as
/// PostgreSQL reads them.
pub fn skip_trivia(s: &str, i: usize, end: usize) -> usize {
    skip(s, i, end, true)
}

/// Skips blanks, `--` comments and `/* */` comments, as SQLite reads
/// them: its block comments do not nest, so `/* /* */` is one comment.
pub fn skip_trivia_sqlite(s: &str, i: usize, end: usize) -> usize {
    skip(s, i, end, false)
}

fn skip(s: &str, mut i: usize, end: usize, nested: bool) -> usize {
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
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') && (nested || depth == 0) {
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

    /// pg_query's scanner split drops a last statement that does not
    /// parse; silo keeps it, so it runs and fails instead of vanishing.
    #[test]
    fn postgres_unparsable_last_statement_is_kept() {
        let script = "CREATE TABLE a (x int);\n  CREATE TABLE b (y int";
        let s = split_postgres(script, 150000);
        assert_eq!(
            texts(script, &s),
            ["CREATE TABLE a (x int)", "CREATE TABLE b (y int"]
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

    #[test]
    fn sqlite_finds_what_the_file_leaves_open() {
        let head = "CREATE TABLE a (x INTEGER);\n";
        let at = head.len();
        for (tail, what) in [
            ("/* CREATE TABLE b (y INTEGER);\n", Unclosed::BlockComment),
            ("INSERT INTO a VALUES ('x);\n", Unclosed::String),
            ("CREATE TABLE \"b (y INTEGER);", Unclosed::QuotedIdentifier),
            ("CREATE TABLE `b (y INTEGER);", Unclosed::QuotedIdentifier),
            ("CREATE TABLE [b (y INTEGER);", Unclosed::QuotedIdentifier),
        ] {
            let script = format!("{head}{tail}");
            let found = incomplete_sqlite(&script).map(|i| {
                // The offset is the opening token's.
                assert!(
                    script[i.offset..].starts_with(['/', '\'', '"', '`', '[']),
                    "{tail}"
                );
                (i.offset >= at, i.what)
            });
            assert_eq!(found, Some((true, what)), "{tail}");
        }
        let trigger =
            format!("{head}CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  UPDATE a SET x = 1;\n");
        assert_eq!(
            incomplete_sqlite(&trigger),
            Some(Incomplete {
                offset: at,
                what: Unclosed::Trigger
            })
        );
        assert_eq!(
            incomplete_sqlite("SELECT 1;\0SELECT 2;"),
            Some(Incomplete {
                offset: 9,
                what: Unclosed::NulByte
            })
        );
    }

    #[test]
    fn sqlite_complete_scripts_are_not_incomplete() {
        for script in [
            "",
            "-- only a comment",
            "SELECT 1",
            "SELECT 1; -- trailing comment without a newline",
            "SELECT 1; /* closed */",
            "SELECT 'it''s', \"a\"\"b\", [c d], `e`;",
            "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END",
            "/* /* SQLite comments do not nest */ SELECT 1;",
        ] {
            assert_eq!(incomplete_sqlite(script), None, "{script}");
        }
    }

    #[test]
    fn sqlite_block_comments_do_not_nest_so_nothing_is_dropped() {
        let script = "VACUUM;\n/* /* */ CREATE TABLE b (y INTEGER);";
        assert_eq!(
            texts(script, &split_sqlite(script)),
            ["VACUUM", "CREATE TABLE b (y INTEGER)"]
        );
    }

    #[test]
    fn postgres_finds_what_the_file_leaves_open() {
        let head = "CREATE TABLE a (x int);\n";
        let at = head.len();
        for (tail, what) in [
            ("/* CREATE TABLE b (y int);\n", Unclosed::BlockComment),
            ("/* outer /* inner */ still open\n", Unclosed::BlockComment),
            ("INSERT INTO a VALUES ('x);\n", Unclosed::String),
            ("INSERT INTO a VALUES (E'x\\');\n", Unclosed::String),
            ("CREATE TABLE \"b (y int);", Unclosed::QuotedIdentifier),
            (
                "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $$ LANGUAGE sql;",
                Unclosed::DollarQuote("$body$".into()),
            ),
        ] {
            let script = format!("{head}{tail}");
            let found = incomplete_postgres(&script).map(|i| (i.offset, i.what));
            let offset = if tail.starts_with("INSERT") {
                script
                    .find(if tail.contains("E'") { "E'" } else { "'" })
                    .unwrap()
                    + usize::from(tail.contains("E'"))
            } else if let Some(o) = tail.find("$body$") {
                at + o
            } else if let Some(o) = tail.find('"') {
                at + o
            } else {
                at
            };
            assert_eq!(found, Some((offset, what)), "{tail}");
        }
        assert_eq!(
            incomplete_postgres("SELECT 1;\0"),
            Some(Incomplete {
                offset: 9,
                what: Unclosed::NulByte
            })
        );
    }

    #[test]
    fn postgres_complete_scripts_are_not_incomplete() {
        for script in [
            "SELECT 1",
            "SELECT $1, a$b$c FROM t; -- trailing",
            "/* a /* nested */ comment */ SELECT 'it''s', E'\\'', \"q\"\"x\";",
            "DO $do$ BEGIN PERFORM $$x$$; END $do$;",
            // A syntax error is the server's to report, with its position.
            "CREATE TABLE b (y int",
        ] {
            assert_eq!(incomplete_postgres(script), None, "{script}");
        }
    }

    #[test]
    fn syntax_errors_are_found_by_each_engines_parser_without_running() {
        let sqlite = "CREATE TABLE a (x INTEGER);\nCREATE INDEX i ON missing (y);\nCREATE TABLE b (y INTEGER";
        let e = sqlite_syntax_error(sqlite).expect("the last statement has no end");
        assert_eq!(e.message, "incomplete input");
        assert!(e.offset >= sqlite.find("CREATE TABLE b").unwrap(), "{e:?}");
        let e = sqlite_syntax_error("SELECT 1;\nSELEC 2;").unwrap();
        assert_eq!(
            (e.offset, e.message.as_str()),
            (10, "near \"SELEC\": syntax error")
        );
        // Unknown tables are not syntax errors.
        assert_eq!(
            sqlite_syntax_error("CREATE INDEX i ON missing (y); VACUUM;"),
            None
        );

        let pg = "CREATE TABLE a (x int);\n  CREATE TABLE b (y int";
        let e = postgres_syntax_error(pg).unwrap();
        assert_eq!(e.offset, pg.find("CREATE TABLE b").unwrap());
        assert!(
            e.message.contains("syntax error at end of input"),
            "{}",
            e.message
        );
        assert_eq!(
            postgres_syntax_error("CREATE INDEX CONCURRENTLY i ON t (x);"),
            None
        );
    }
}
