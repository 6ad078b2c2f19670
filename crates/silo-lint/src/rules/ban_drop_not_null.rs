//! `ban-drop-not-null` (squawk's name): dropping NOT NULL lets NULLs into a
//! column that the code of the running release reads as always present.

use pg_query::protobuf::AlterTableType;

use super::ddl::alter_cmds;
use super::{Context, Hit, Rule, meta};
use crate::source::SourceFile;

pub struct BanDropNotNull;

impl Rule for BanDropNotNull {
    meta!(BanDropNotNull, Safety, Warning);

    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        for a in alter_cmds(file) {
            if a.is(AlterTableType::AtDropNotNull) {
                out.push(Hit {
                    span: a.at..a.at,
                    message: format!(
                        "dropping NOT NULL on `{}.{}` lets NULLs reach code that expects a value",
                        a.table, a.cmd.name
                    ),
                    help: "make every reader handle NULL in a release first".into(),
                    other_service: None,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    #[test]
    fn drop_not_null_fires_set_not_null_does_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__n.sql",
            "ALTER TABLE orders ALTER COLUMN note SET NOT NULL;\nALTER TABLE orders ALTER COLUMN ref DROP NOT NULL;",
        );
        assert_eq!(p.places("ban-drop-not-null"), [(2, 1)]);
    }
}
