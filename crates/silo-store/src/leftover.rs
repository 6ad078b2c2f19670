//! What an interrupted run leaves behind, typed: callers (status, the
//! audit) act on the kind, never on the wording.

use serde::Serialize;

/// One thing an interrupted run left for a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leftover {
    pub kind: LeftoverKind,
    /// The file or database, as silo names it.
    pub name: String,
    /// The whole of it in plain words, with what removes it.
    pub description: String,
}

/// The kinds of [`Leftover`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeftoverKind {
    /// A credentials file staged by a killed `up` (it holds a password).
    StagedCredentials,
    /// A scratch store of a killed `verify` or `diff`.
    ScratchStore,
    /// A store a killed `up` left before it was marked.
    HalfMadeStore,
    /// A marked store a killed `up` left closed to connections.
    ClosedStore,
}

impl LeftoverKind {
    /// What takes care of it.
    pub fn remedy(self) -> &'static str {
        match self {
            LeftoverKind::StagedCredentials => "`silo up` or `silo down` removes it",
            LeftoverKind::ScratchStore => "`silo down` removes it",
            LeftoverKind::HalfMadeStore => {
                "`silo up` finishes or removes it, `silo down` removes it"
            }
            LeftoverKind::ClosedStore => "`silo up` opens it",
        }
    }

    /// Whether `silo up` takes care of it (else `silo down` does).
    pub fn up_fixes(self) -> bool {
        matches!(
            self,
            LeftoverKind::HalfMadeStore
                | LeftoverKind::ClosedStore
                | LeftoverKind::StagedCredentials
        )
    }
}

impl Leftover {
    /// A leftover of `kind` named `name`.
    pub fn new(kind: LeftoverKind, name: impl Into<String>) -> Self {
        let name = name.into();
        let what = match kind {
            LeftoverKind::StagedCredentials => format!("staged credentials file {name}"),
            LeftoverKind::ScratchStore => format!("scratch store {name}"),
            LeftoverKind::HalfMadeStore => format!("half-made store {name}"),
            LeftoverKind::ClosedStore => format!("store {name} left closed to connections"),
        };
        Leftover {
            description: format!("{what} ({})", kind.remedy()),
            kind,
            name,
        }
    }
}

impl std::fmt::Display for Leftover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}
