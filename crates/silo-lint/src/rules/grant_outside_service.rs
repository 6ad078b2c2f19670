//! `grant-outside-service`: a `GRANT` (of privileges or of a role) to
//! PUBLIC or to any role other than the service's own. Seed 000: each
//! service has its own credentials and least privilege; a grant is how
//! another service's role would get in.

use pg_query::NodeEnum;
use pg_query::protobuf::{RoleSpec, RoleSpecType};

use super::{Context, Hit, Rule, meta};
use crate::source::SourceFile;

pub struct GrantOutsideService;

fn grantees(node: &NodeEnum) -> Vec<&RoleSpec> {
    let list = match node {
        NodeEnum::GrantStmt(g) if g.is_grant => &g.grantees,
        NodeEnum::GrantRoleStmt(g) if g.is_grant => &g.grantee_roles,
        NodeEnum::AlterDefaultPrivilegesStmt(a) => match &a.action {
            Some(g) if g.is_grant => &g.grantees,
            _ => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    list.iter()
        .filter_map(|n| match &n.node {
            Some(NodeEnum::RoleSpec(r)) => Some(r),
            _ => None,
        })
        .collect()
}

impl Rule for GrantOutsideService {
    meta!(GrantOutsideService, Boundary, Error);

    fn check(&self, ctx: &Context, file: &SourceFile, out: &mut Vec<Hit>) {
        let Some(own) = ctx.manifest.service(&file.service).map(|s| s.role.as_str()) else {
            return;
        };
        for s in &file.statements {
            for role in grantees(&s.node) {
                let (name, other) = if role.roletype == RoleSpecType::RolespecPublic as i32 {
                    ("PUBLIC".to_string(), None)
                } else if role.roletype == RoleSpecType::RolespecCstring as i32 {
                    if role.rolename == own {
                        continue;
                    }
                    let owner = ctx
                        .manifest
                        .services
                        .iter()
                        .find(|x| x.role == role.rolename)
                        .map(|x| x.name.clone());
                    (format!("`{}`", role.rolename), owner)
                } else {
                    // CURRENT_USER / SESSION_USER: the migrating role itself.
                    continue;
                };
                let at = usize::try_from(role.location).unwrap_or(s.start);
                let whose = other
                    .as_ref()
                    .map_or(String::new(), |o| format!(" (service `{o}`'s role)"));
                out.push(Hit {
                    span: at..at + name.len(),
                    message: format!(
                        "grant to {name}{whose}: only `{own}`, service `{}`'s own role, may use its store",
                        file.service
                    ),
                    help: format!(
                        "drop the grant; other services get this data through `{}`'s events or API",
                        file.service
                    ),
                    other_service: other,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::Project;

    #[test]
    fn grants_to_public_and_to_other_roles_fire() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE orders (id bigint PRIMARY KEY);\n\
             GRANT SELECT ON orders TO PUBLIC;\n\
             GRANT SELECT ON orders TO billing_svc;\n\
             GRANT orders_svc TO reporting;\n\
             ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO analyst;",
        );
        let hits = p.hits("grant-outside-service");
        let places: Vec<_> = hits.iter().map(|f| (f.line, f.column)).collect();
        assert_eq!(places, [(2, 27), (3, 27), (4, 21), (5, 52)]);
        assert!(
            hits[1].message.contains("service `billing`'s role"),
            "{}",
            hits[1].message
        );
        // Only the grant to `billing_svc` names a service's role.
        let others: Vec<_> = hits.iter().map(|f| f.other_service.as_deref()).collect();
        assert_eq!(others, [None, Some("billing"), None, None]);
    }

    #[test]
    fn grants_to_the_own_role_and_revokes_do_not() {
        let p = Project::postgres();
        p.write(
            "orders",
            "V1__t.sql",
            "CREATE TABLE orders (id bigint PRIMARY KEY);\n\
             GRANT SELECT ON orders TO orders_svc;\n\
             GRANT SELECT ON orders TO CURRENT_USER;\n\
             REVOKE ALL ON orders FROM PUBLIC;",
        );
        assert_eq!(p.places("grant-outside-service"), []);
    }
}
