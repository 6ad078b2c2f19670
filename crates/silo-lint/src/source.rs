//! A service's migration files, parsed with PostgreSQL's own parser, and
//! the inline `-- silo:ignore <rule> <reason>` comments in them.

use std::path::PathBuf;

use pg_query::NodeEnum;
use silo_manifest::{Engine, Service, line_column};
use silo_migrate::file::{FileName, parse_file_name};

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
    /// Statements, when the file parsed.
    pub statements: Vec<Statement>,
    /// The parser's message and byte offset, when it did not.
    pub parse_error: Option<(String, usize)>,
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
        let (statements, parse_error) = if service.engine == Engine::Postgres {
            parse(&text)
        } else {
            // SQLite's dialect is not PostgreSQL's: its files get the
            // file-level rules only.
            (Vec::new(), None)
        };
        Ok(SourceFile {
            service: service.name.clone(),
            engine: service.engine,
            display: path.strip_prefix(root).unwrap_or(&path).to_path_buf(),
            path,
            text,
            name,
            statements,
            parse_error,
        })
    }

    /// 1-based line and column of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        line_column(&self.text, offset)
    }

    /// Whether `-- silo:ignore <rule> <reason>` stands on the line before
    /// the statement starting at `offset` (a reason is required).
    pub fn ignored(&self, rule: &str, offset: usize) -> bool {
        let (line, _) = self.position(offset);
        if line < 2 {
            return false;
        }
        let Some(previous) = self.text.lines().nth(line - 2) else {
            return false;
        };
        let Some(rest) = previous.trim().strip_prefix("-- silo:ignore") else {
            return false;
        };
        let mut words = rest.split_whitespace();
        words.next() == Some(rule) && words.next().is_some()
    }
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
