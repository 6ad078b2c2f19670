//! How silo reports what `silo lint` and `silo audit` find, once for both.
//!
//! - [`Severity`] and [`Location`] (a place in a file, or a live store).
//! - [`Finding`]: the shape every output format reads. Lint and audit keep
//!   their own findings (a lint finding has a rule group and a byte span,
//!   an audit finding a fix) and lend them to the emitters as this view.
//! - [`sarif`] (SARIF 2.1.0) and [`github`] (workflow annotations) write a
//!   whole [`Run`]; [`human`] holds the parts of the terminal output both
//!   tools draw the same way.
//! - [`Pages`]: each rule's or check's Markdown page, for `--explain` and
//!   for SARIF's rule help.
//!
//! No database or SQL parser here: this crate only formats.

pub mod docs;
mod finding;
pub mod github;
pub mod human;
mod location;
pub mod sarif;
mod severity;

pub use docs::Pages;
pub use finding::{Finding, Run, Skipped, Tool};
pub use location::{Location, Position};
pub use severity::Severity;
