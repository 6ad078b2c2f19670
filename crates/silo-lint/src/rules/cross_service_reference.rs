//! `cross-service-reference`: a statement names a table that another
//! service owns, or qualifies a name with another service's database or
//! schema (seed 000 rules 2 and 4, seed 002 "No Cross-Database Foreign
//! Keys"). Only silo knows this: it reads every service's migrations.

use pg_query::NodeRef;

use super::{Context, Hit, Rule, foreign_key_targets};
use crate::finding::{Group, Severity};
use crate::source::SourceFile;

pub struct CrossServiceReference;

impl Rule for CrossServiceReference {
    fn id(&self) -> crate::RuleId {
        crate::RuleId::CrossServiceReference
    }
    fn group(&self) -> Group {
        Group::Boundary
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn check(&self, ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        if file.engine == silo_manifest::Engine::Sqlite {
            return sqlite(ctx, file, out);
        }
        for statement in &file.statements {
            let walked = statement
                .node
                .nodes()
                .into_iter()
                .filter_map(|(n, _, _, _)| match n {
                    NodeRef::RangeVar(rv) => Some(rv),
                    _ => None,
                });
            for rv in walked.chain(foreign_key_targets(&statement.node)) {
                let qualifier = [&rv.catalogname, &rv.schemaname].into_iter().find_map(|q| {
                    ctx.databases
                        .get(q.as_str())
                        .filter(|s| **s != file.service)
                });
                let owner = ctx.tables.get(&rv.relname).and_then(|owners| {
                    (!owners.contains(&file.service)).then(|| owners[0].clone())
                });
                let other = qualifier.cloned().or(owner);
                let Some(other) = other else { continue };
                let at = usize::try_from(rv.location).unwrap_or(statement.start);
                let name = [&rv.catalogname, &rv.schemaname, &rv.relname]
                    .into_iter()
                    .filter(|p| !p.is_empty())
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(".");
                out.push(Hit {
                    span: at..at + name.len(),
                    message: format!(
                        "`{name}` belongs to service `{other}`; service `{}` must not reference it",
                        file.service
                    ),
                    help: format!(
                        "keep only the id (indexed, no foreign key) and a denormalized copy fed by `{other}`'s events, or ask `{other}` through its API"
                    ),
                    other_service: Some(other),
                });
            }
        }
    }
}

/// SQLite files: foreign keys to another service's tables, and names
/// qualified with another service's attached database.
fn sqlite(ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
    let f = &file.facts;
    let targets = f
        .foreign_keys
        .iter()
        .map(|fk| (&fk.target, &fk.qualifiers, fk.at))
        .chain(f.qualified.iter().map(|(t, q, at)| (t, q, *at)));
    for (table, qualifiers, at) in targets {
        let qualifier = qualifiers
            .iter()
            .find_map(|q| ctx.databases.get(q).filter(|s| **s != file.service));
        let owner = ctx
            .tables
            .get(table)
            .and_then(|owners| (!owners.contains(&file.service)).then(|| owners[0].clone()));
        let Some(other) = qualifier.cloned().or(owner) else {
            continue;
        };
        out.push(Hit {
            span: at..at + table.len(),
            message: format!(
                "`{table}` belongs to service `{other}`; service `{}` must not reference it",
                file.service
            ),
            help: format!(
                "keep only the id (indexed, no foreign key) and a denormalized copy fed by `{other}`'s events, or ask `{other}` through its API"
            ),
            other_service: Some(other),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    const RULE: &str = "cross-service-reference";

    #[test]
    fn a_foreign_key_and_a_qualified_name_into_another_service_fire() {
        let p = Project::postgres();
        p.write("billing", "V1__invoices.sql", "CREATE TABLE invoices (id bigint PRIMARY KEY);")
            .write(
                "orders",
                "V1__orders.sql",
                "CREATE TABLE orders (\n  id bigint PRIMARY KEY,\n  invoice_id bigint REFERENCES invoices (id)\n);\n\
                 CREATE VIEW v AS SELECT * FROM billing.payments;",
            );
        let message = |name: &str| {
            format!("`{name}` belongs to service `billing`; service `orders` must not reference it")
        };
        assert_eq!(
            p.found(RULE),
            [
                (3, 32, message("invoices")),
                (5, 32, message("billing.payments")),
            ]
        );
        // The owner is a typed field, for the audit and the machine formats.
        let others: Vec<_> = p.hits(RULE).into_iter().map(|f| f.other_service).collect();
        assert_eq!(others, [Some("billing".into()), Some("billing".into())]);
    }

    /// The owner comes from the tables, not from the words of the message:
    /// a table named like a third service is still `billing`'s.
    #[test]
    fn the_other_service_is_the_tables_owner() {
        let p = Project::with_manifest("[defaults]\nengine = \"postgres\"\n[services.shipping]\n");
        std::fs::create_dir_all(p.folder("shipping")).unwrap();
        p.write(
            "billing",
            "V1__t.sql",
            "CREATE TABLE shipping (id bigint PRIMARY KEY);",
        )
        .write("orders", "V1__t.sql", "SELECT * FROM shipping;");
        let hits = p.hits(RULE);
        assert_eq!(hits.len(), 1);
        assert_eq!(
            hits[0].message,
            "`shipping` belongs to service `billing`; service `orders` must not reference it"
        );
        assert_eq!(hits[0].other_service.as_deref(), Some("billing"));
    }

    #[test]
    fn own_tables_and_unknown_tables_do_not() {
        let p = Project::postgres();
        p.write(
            "billing",
            "V1__invoices.sql",
            "CREATE TABLE invoices (id bigint PRIMARY KEY);",
        )
        .write(
            "orders",
            "V1__orders.sql",
            "CREATE TABLE carts (id bigint PRIMARY KEY);\n\
                 CREATE TABLE orders (id bigint, cart_id bigint REFERENCES carts (id));\n\
                 SELECT * FROM public.carts, pg_catalog.pg_class, audit_log;",
        );
        assert_eq!(p.found(RULE), []);
    }

    #[test]
    fn sqlite_foreign_keys_fire_too() {
        let p = Project::sqlite();
        p.write("billing", "V1__invoices.sql", "CREATE TABLE invoices (id INTEGER PRIMARY KEY);")
            .write(
                "orders",
                "V1__orders.sql",
                "CREATE TABLE orders (\n  id INTEGER PRIMARY KEY,\n  invoice_id INTEGER REFERENCES invoices (id)\n);",
            );
        assert_eq!(
            p.found(RULE),
            [(
                3,
                33,
                "`invoices` belongs to service `billing`; service `orders` must not reference it"
                    .into()
            )]
        );
    }
}
