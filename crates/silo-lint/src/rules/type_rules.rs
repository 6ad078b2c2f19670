//! What the column-type rules share: a rule that objects to some types of
//! the columns a file declares, and a macro that makes one.

use super::Hit;
use super::ddl::column_types;
use crate::source::SourceFile;

/// A rule that objects to some column types.
pub(crate) struct TypeRule {
    /// Type names (as the parser spells them) it objects to.
    pub(crate) types: &'static [&'static str],
    pub(crate) why: &'static str,
    pub(crate) instead: &'static str,
}

impl TypeRule {
    pub(crate) fn check(&self, file: &SourceFile, out: &mut Vec<Hit>) {
        for c in column_types(file) {
            if self.types.contains(&c.type_name.as_str()) {
                out.push(Hit {
                    span: c.at..c.at + c.type_name.len(),
                    message: format!(
                        "column `{}.{}` is `{}`: {}",
                        c.table, c.column, c.type_name, self.why
                    ),
                    help: format!("use `{}`", self.instead),
                    other_service: None,
                });
            }
        }
    }
}

/// Declares a column-type rule: `type_rule!(Name, [types], why, instead)`;
/// its id is the [`crate::RuleId`] variant of the same name.
macro_rules! type_rule {
    ($name:ident, [$($ty:literal),*], $why:literal, $instead:literal) => {
        pub struct $name;
        impl $crate::rules::Rule for $name {
            fn id(&self) -> $crate::RuleId {
                $crate::RuleId::$name
            }
            fn group(&self) -> $crate::finding::Group {
                $crate::finding::Group::Safety
            }
            fn severity(&self) -> $crate::finding::Severity {
                $crate::finding::Severity::Warning
            }
            fn check(
                &self,
                _ctx: &$crate::rules::Context,
                file: &$crate::source::SourceFile,
                out: &mut Vec<$crate::rules::Hit>,
            ) {
                $crate::rules::type_rules::TypeRule {
                    types: &[$($ty),*],
                    why: $why,
                    instead: $instead,
                }
                .check(file, out);
            }
        }
    };
}
pub(crate) use type_rule;
