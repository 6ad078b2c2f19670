//! `ban-truncate-cascade` (squawk's name): `TRUNCATE ... CASCADE` also
//! empties every table that references the truncated one, and the tables
//! referencing those, whatever the migration's author had in mind.

use pg_query::NodeEnum;
use pg_query::protobuf::DropBehavior;

use super::{Context, Hit, Rule, meta};
use crate::source::SourceFile;

pub struct BanTruncateCascade;

impl Rule for BanTruncateCascade {
    meta!(BanTruncateCascade, Safety, Error);

    fn check(&self, _ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        for s in &file.statements {
            if let NodeEnum::TruncateStmt(t) = &s.node
                && t.behavior == DropBehavior::DropCascade as i32
            {
                out.push(Hit {
                    span: s.start..s.end,
                    message: "TRUNCATE ... CASCADE also empties every table that references these"
                        .into(),
                    help: "name every table to empty explicitly, without CASCADE".into(),
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
    fn cascade_fires_and_plain_truncate_does_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V2__t.sql",
            "TRUNCATE carts;\nTRUNCATE orders CASCADE;",
        );
        assert_eq!(p.places("ban-truncate-cascade"), [(2, 1)]);
    }
}
