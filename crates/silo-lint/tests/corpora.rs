//! The linter over real SQL nobody here wrote: PostgreSQL's regression
//! suite and a large application's migrations. Run by `make test-corpora`
//! (the corpora live beside the checkout, in `../shared/corpora`, or where
//! `SILO_CORPORA` says); a missing corpus fails the run.

use std::path::{Path, PathBuf};

use silo_lint::{Options, PARSE_ERROR, lint, load};
use silo_manifest::{Manifest, Overrides};

/// The corpora folder.
fn corpora() -> PathBuf {
    std::env::var_os("SILO_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora"))
}

/// Every `.sql` file under `dir`, recursively, sorted.
fn sql_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| {
            panic!(
                "corpus at {}: {e}; put the corpora beside the checkout or set SILO_CORPORA",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            sql_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "sql") {
            out.push(p);
        }
    }
}

/// What linting one corpus gave.
#[derive(Debug, PartialEq, Eq)]
struct Figures {
    files: usize,
    statements: usize,
    parse_errors: usize,
}

/// Lints every file of `corpus` as migrations of one PostgreSQL service and
/// checks that every finding points inside its file.
fn lint_corpus(corpus: &str) -> Figures {
    let mut files = Vec::new();
    sql_files(&corpora().join(corpus), &mut files);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("silo.toml"),
        "[project]\nname = \"t\"\n[defaults]\nengine = \"postgres\"\n[services.orders]\n",
    )
    .unwrap();
    let migrations = dir.path().join("services/orders/migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    for (i, f) in files.iter().enumerate() {
        std::fs::copy(f, migrations.join(format!("V{}__corpus.sql", i + 1))).unwrap();
    }
    let m = Manifest::load(&dir.path().join("silo.toml"), &Overrides::default()).unwrap();
    let loaded = load(&m).unwrap();
    let report = lint(&m, &loaded, &Options::default());
    assert_eq!(report.summary.files, files.len(), "every file is linted");
    for f in &report.findings {
        let text = std::fs::read_to_string(dir.path().join(&f.file)).unwrap();
        assert!(
            f.line >= 1 && f.line <= text.lines().count().max(1),
            "finding outside its file: {f:?}"
        );
    }
    Figures {
        files: files.len(),
        statements: loaded.files.iter().map(|f| f.statements.len()).sum(),
        parse_errors: report
            .findings
            .iter()
            .filter(|f| f.rule == PARSE_ERROR)
            .count(),
    }
}

/// PostgreSQL 14's regression SQL: the parser takes every file but those
/// with psql meta-commands (`\set`, `\gset`, ...), which are one
/// `parse-error` each (a file that does not parse counts no statements).
#[test]
#[ignore = "needs the corpora: run by `make test-corpora`"]
fn pg_regress_figures() {
    assert_eq!(
        lint_corpus("pg-regress-sql"),
        Figures {
            files: 114,
            statements: 4326,
            parse_errors: 44,
        }
    );
}

/// Lemmy's diesel migrations (up and down files): all parse.
#[test]
#[ignore = "needs the corpora: run by `make test-corpora`"]
fn lemmy_figures() {
    assert_eq!(
        lint_corpus("lemmy-migrations"),
        Figures {
            files: 684,
            statements: 5027,
            parse_errors: 0,
        }
    );
}
