//! What the audit reads from PostgreSQL's catalogs, as the administrator:
//! once per server (roles, memberships, databases, the CONNECT matrix,
//! sessions, subscriptions, pg_hba) and once per service database
//! (owners, grants, foreign data).
//!
//! Everything is read up front into plain structs, so the checks are pure
//! functions of these snapshots.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::{PgConnection, PgPool, Row};

/// Schemas that belong to PostgreSQL itself.
const SYSTEM_SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

/// A role's attributes.
#[derive(Debug, Clone, Default)]
pub struct RoleInfo {
    pub superuser: bool,
    pub createdb: bool,
    pub createrole: bool,
    pub replication: bool,
    pub bypassrls: bool,
}

/// A database's owner and who may connect.
#[derive(Debug, Clone, Default)]
pub struct DatabaseInfo {
    pub owner: String,
    /// Privileges PUBLIC holds on it (`CONNECT`, `TEMPORARY`, `CREATE`).
    pub public_privileges: Vec<String>,
    /// Roles granted CONNECT by name.
    pub connect_grantees: Vec<String>,
}

/// A logical-replication subscription.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub name: String,
    /// The database it lives in.
    pub database: String,
    pub conninfo: String,
}

/// One line of pg_hba.conf, as `pg_hba_file_rules` shows it.
#[derive(Debug, Clone, Default)]
pub struct HbaRule {
    pub line: i32,
    /// `local`, `host`, `hostssl`, `hostnossl`, `hostgssenc`, `hostnogssenc`.
    pub kind: String,
    pub databases: Vec<String>,
    pub users: Vec<String>,
    /// An address, a host name or a keyword (`all`, `samehost`,
    /// `samenet`); `None` on `local` lines.
    pub address: Option<String>,
    /// The mask of an IP address, when there is one.
    pub netmask: Option<String>,
    pub method: String,
    /// Method options as `name=value` (`map=...`).
    pub options: Vec<String>,
}

impl HbaRule {
    /// The address field as it would be written: `127.0.0.1/32`, `all`,
    /// empty on `local` lines.
    pub fn address_text(&self) -> String {
        let Some(address) = &self.address else {
            return String::new();
        };
        match self
            .netmask
            .as_deref()
            .and_then(|m| m.parse::<std::net::IpAddr>().ok())
        {
            Some(std::net::IpAddr::V4(m)) => format!("{address}/{}", m.to_bits().count_ones()),
            Some(std::net::IpAddr::V6(m)) => format!("{address}/{}", m.to_bits().count_ones()),
            None => address.clone(),
        }
    }

    /// The value of option `name` (`map`), if set.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options.iter().find_map(|o| {
            o.split_once('=')
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v)
        })
    }
}

impl std::fmt::Display for HbaRule {
    /// The line as it would be written in pg_hba.conf.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.kind,
            self.databases.join(","),
            self.users.join(",")
        )?;
        let address = self.address_text();
        if !address.is_empty() {
            write!(f, " {address}")?;
        }
        write!(f, " {}", self.method)?;
        for o in &self.options {
            write!(f, " {o}")?;
        }
        Ok(())
    }
}

/// One line of pg_ident.conf: OS user `system_user` may log in as
/// `pg_user` where a pg_hba.conf line names map `map`.
#[derive(Debug, Clone)]
pub struct IdentMapping {
    pub map: String,
    /// An OS user name, or `/regex`.
    pub system_user: String,
    /// A role name, `+group`, `all`, or a name with `\1` from the regex.
    pub pg_user: String,
}

/// How a role's password is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verifier {
    Scram,
    Md5,
    /// No password (or one in a form silo does not know).
    Other,
}

/// One server, as the administrator sees it.
#[derive(Debug, Clone)]
pub struct ServerCatalog {
    /// The administrator's role (`current_user`).
    pub admin: String,
    pub admin_is_superuser: bool,
    pub version_num: i32,
    /// `pg_control_system().system_identifier`, when readable.
    pub system_identifier: Option<String>,
    /// `host:port` the server answered on.
    pub address: String,
    /// Every role, by name.
    pub roles: HashMap<String, RoleInfo>,
    /// Direct memberships: member → the roles granted to it.
    pub granted: HashMap<String, Vec<String>>,
    /// Service databases on this server, by name.
    pub databases: HashMap<String, DatabaseInfo>,
    /// (role, database) pairs where `has_database_privilege(CONNECT)` holds.
    pub connect: HashSet<(String, String)>,
    /// (user, application_name) of current sessions.
    pub sessions: Vec<(String, String)>,
    /// `Err` holds why they could not be read.
    pub subscriptions: Result<Vec<Subscription>, String>,
    pub hba: Result<Vec<HbaRule>, String>,
    /// pg_ident.conf's lines (PostgreSQL 15 and later).
    pub ident: Result<Vec<IdentMapping>, String>,
    /// How each service role's password is stored; empty when pg_authid
    /// is not readable.
    pub verifiers: HashMap<String, Verifier>,
}

impl ServerCatalog {
    /// Every role `role` is a member of, directly or not, each with the
    /// direct grant that leads there (the edge to revoke).
    pub fn memberships(&self, role: &str) -> BTreeMap<String, String> {
        let mut found: BTreeMap<String, String> = BTreeMap::new();
        let mut queue: Vec<(String, String)> = self
            .granted
            .get(role)
            .into_iter()
            .flatten()
            .map(|p| (p.clone(), p.clone()))
            .collect();
        while let Some((parent, via)) = queue.pop() {
            if parent == role || found.contains_key(&parent) {
                continue;
            }
            for next in self.granted.get(&parent).into_iter().flatten() {
                queue.push((next.clone(), via.clone()));
            }
            found.insert(parent, via);
        }
        found
    }
}

/// Reads a server's catalog. `roles` and `databases` are those of the
/// manifest's PostgreSQL services.
pub async fn read_server(
    pool: &PgPool,
    roles: &[String],
    databases: &[String],
) -> Result<ServerCatalog, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let row = sqlx::query(
        "SELECT current_user::text, r.rolsuper, current_setting('server_version_num')::int,
                coalesce(host(inet_server_addr()), 'local socket') || ':' || coalesce(inet_server_port(), 0)::text
         FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(&mut *conn)
    .await?;
    let mut catalog = ServerCatalog {
        admin: row.get(0),
        admin_is_superuser: row.get(1),
        version_num: row.get(2),
        address: row.get(3),
        system_identifier: None,
        roles: HashMap::new(),
        granted: HashMap::new(),
        databases: HashMap::new(),
        connect: HashSet::new(),
        sessions: Vec::new(),
        subscriptions: Ok(Vec::new()),
        hba: Ok(Vec::new()),
        ident: Ok(Vec::new()),
        verifiers: HashMap::new(),
    };
    // pg_control_system() is for superusers and pg_monitor only.
    catalog.system_identifier =
        sqlx::query_scalar::<_, String>("SELECT system_identifier::text FROM pg_control_system()")
            .fetch_one(&mut *conn)
            .await
            .ok();

    for r in sqlx::query(
        "SELECT rolname::text, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls
         FROM pg_roles",
    )
    .fetch_all(&mut *conn)
    .await?
    {
        catalog.roles.insert(
            r.get(0),
            RoleInfo {
                superuser: r.get(1),
                createdb: r.get(2),
                createrole: r.get(3),
                replication: r.get(4),
                bypassrls: r.get(5),
            },
        );
    }
    for r in sqlx::query(
        "SELECT pg_get_userbyid(member)::text, pg_get_userbyid(roleid)::text FROM pg_auth_members",
    )
    .fetch_all(&mut *conn)
    .await?
    {
        catalog.granted.entry(r.get(0)).or_default().push(r.get(1));
    }
    for r in sqlx::query(
        "SELECT d.datname::text, pg_get_userbyid(d.datdba)::text,
                coalesce(array(SELECT DISTINCT a.privilege_type::text
                               FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
                               WHERE a.grantee = 0 ORDER BY 1), '{}'),
                coalesce(array(SELECT DISTINCT pg_get_userbyid(a.grantee)::text
                               FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
                               WHERE a.grantee <> 0 AND a.privilege_type = 'CONNECT' ORDER BY 1), '{}')
         FROM pg_database d WHERE d.datname = ANY($1)",
    )
    .bind(databases)
    .fetch_all(&mut *conn)
    .await?
    {
        catalog.databases.insert(
            r.get(0),
            DatabaseInfo {
                owner: r.get(1),
                public_privileges: r.get(2),
                connect_grantees: r.get(3),
            },
        );
    }
    for r in sqlx::query(
        "SELECT r.rolname::text, d.datname::text
         FROM pg_roles r CROSS JOIN pg_database d
         WHERE r.rolname = ANY($1) AND d.datname = ANY($2)
           AND has_database_privilege(r.oid, d.oid, 'CONNECT')",
    )
    .bind(roles)
    .bind(databases)
    .fetch_all(&mut *conn)
    .await?
    {
        catalog.connect.insert((r.get(0), r.get(1)));
    }
    catalog.sessions = sqlx::query_as(
        "SELECT usename::text, application_name FROM pg_stat_activity
         WHERE usename IS NOT NULL AND application_name <> ''",
    )
    .fetch_all(&mut *conn)
    .await?;
    // subconninfo and pg_hba_file_rules are readable by superusers only;
    // a failure there skips the check instead of stopping the audit.
    catalog.subscriptions = sqlx::query(
        "SELECT s.subname::text, d.datname::text, s.subconninfo
         FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid",
    )
    .fetch_all(&mut *conn)
    .await
    .map(|rows| {
        rows.iter()
            .map(|r| Subscription {
                name: r.get(0),
                database: r.get(1),
                conninfo: r.get(2),
            })
            .collect()
    })
    .map_err(|e| reason(&e));
    catalog.hba = sqlx::query(
        "SELECT line_number, type, coalesce(database, '{}'), coalesce(user_name, '{}'),
                address, netmask, auth_method, coalesce(options, '{}')
         FROM pg_hba_file_rules WHERE error IS NULL ORDER BY line_number",
    )
    .fetch_all(&mut *conn)
    .await
    .map(|rows| {
        rows.iter()
            .map(|r| HbaRule {
                line: r.get(0),
                kind: r.get(1),
                databases: r.get(2),
                users: r.get(3),
                address: r.get(4),
                netmask: r.get(5),
                method: r.get(6),
                options: r.get(7),
            })
            .collect()
    })
    .map_err(|e| reason(&e));
    // pg_ident_file_mappings exists from PostgreSQL 15 on.
    catalog.ident = sqlx::query(
        "SELECT map_name, sys_name, pg_username FROM pg_ident_file_mappings
         WHERE error IS NULL ORDER BY line_number",
    )
    .fetch_all(&mut *conn)
    .await
    .map(|rows| {
        rows.iter()
            .map(|r| IdentMapping {
                map: r.get(0),
                system_user: r.get(1),
                pg_user: r.get(2),
            })
            .collect()
    })
    .map_err(|e| reason(&e));
    // pg_authid is readable by superusers only; without it the hba check
    // cannot tell whether a role already has a SCRAM verifier.
    if let Ok(rows) = sqlx::query(
        "SELECT rolname::text,
                CASE WHEN rolpassword LIKE 'SCRAM-SHA-256$%' THEN 'scram'
                     WHEN rolpassword LIKE 'md5%' THEN 'md5' ELSE 'other' END
         FROM pg_authid WHERE rolname = ANY($1)",
    )
    .bind(roles)
    .fetch_all(&mut *conn)
    .await
    {
        for r in rows {
            let kind: String = r.get(1);
            let verifier = match kind.as_str() {
                "scram" => Verifier::Scram,
                "md5" => Verifier::Md5,
                _ => Verifier::Other,
            };
            catalog.verifiers.insert(r.get(0), verifier);
        }
    }
    Ok(catalog)
}

fn reason(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_string(),
        other => other.to_string(),
    }
}

/// An object inside a service database.
#[derive(Debug, Clone)]
pub struct Object {
    /// The SQL keyword of its kind (`TABLE`, `VIEW`, `SEQUENCE`, `ROUTINE`,
    /// `SCHEMA`, `TYPE`, ...).
    pub kind: String,
    /// Its quoted, qualified name (with arguments for routines).
    pub name: String,
    pub owner: String,
}

/// A grant to PUBLIC on an object.
#[derive(Debug, Clone)]
pub struct PublicGrant {
    pub kind: String,
    pub name: String,
    pub privileges: String,
}

/// A foreign server.
#[derive(Debug, Clone)]
pub struct ForeignServer {
    pub name: String,
    pub wrapper: String,
    /// `key=value` options (host, port, dbname).
    pub options: Vec<String>,
    /// `(local user, remote user option)` of its user mappings.
    pub mappings: Vec<(String, Option<String>)>,
}

/// One service database, as the administrator sees it from inside.
#[derive(Debug, Clone, Default)]
pub struct DatabaseCatalog {
    /// Owner of the `public` schema, when there is one.
    pub public_schema_owner: Option<String>,
    /// Privileges PUBLIC holds on the `public` schema.
    pub public_schema_privileges: Vec<String>,
    /// Objects outside the system schemas not owned by `role`.
    pub foreign_owned: Vec<Object>,
    /// Explicit grants to PUBLIC on tables, sequences and routines.
    pub public_grants: Vec<PublicGrant>,
    /// SECURITY DEFINER routines PUBLIC may execute.
    pub public_definers: Vec<String>,
    /// Extensions that reach other databases.
    pub remote_extensions: Vec<String>,
    pub foreign_servers: Vec<ForeignServer>,
}

/// Reads a service database's catalog; `role` is the service's role.
pub async fn read_database(
    conn: &mut PgConnection,
    role: &str,
) -> Result<DatabaseCatalog, sqlx::Error> {
    let mut catalog = DatabaseCatalog::default();
    if let Some(r) = sqlx::query(
        "SELECT pg_get_userbyid(n.nspowner)::text,
                coalesce(array(SELECT DISTINCT a.privilege_type::text
                               FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
                               WHERE a.grantee = 0 ORDER BY 1), '{}')
         FROM pg_namespace n WHERE n.nspname = 'public'",
    )
    .fetch_optional(&mut *conn)
    .await?
    {
        catalog.public_schema_owner = Some(r.get(0));
        catalog.public_schema_privileges = r.get(1);
    }
    // Objects an extension installed belong to the extension, not to a
    // person: pg_depend deptype 'e' leaves them out.
    let objects = format!(
        "SELECT o.kind, o.name, o.owner FROM (
           SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                 WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
                                 ELSE 'TABLE' END AS kind,
                  format('%I.%I', n.nspname, c.relname) AS name,
                  pg_get_userbyid(c.relowner)::text AS owner,
                  c.oid, 'pg_class'::regclass AS cls, n.nspname
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {SYSTEM_SCHEMAS}
           UNION ALL
           SELECT 'ROUTINE', format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
                  pg_get_userbyid(p.proowner)::text, p.oid, 'pg_proc'::regclass, n.nspname
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE {SYSTEM_SCHEMAS}
           UNION ALL
           SELECT 'SCHEMA', format('%I', n.nspname), pg_get_userbyid(n.nspowner)::text,
                  n.oid, 'pg_namespace'::regclass, n.nspname
           FROM pg_namespace n WHERE {SYSTEM_SCHEMAS}
           UNION ALL
           SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END,
                  format('%I.%I', n.nspname, t.typname), pg_get_userbyid(t.typowner)::text,
                  t.oid, 'pg_type'::regclass, n.nspname
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE t.typtype IN ('d', 'e', 'r') AND {SYSTEM_SCHEMAS}
         ) o
         WHERE o.owner <> $1 AND NOT (o.kind = 'SCHEMA' AND o.owner = 'pg_database_owner')
           AND NOT EXISTS (SELECT 1 FROM pg_depend d
                           WHERE d.classid = o.cls AND d.objid = o.oid AND d.deptype = 'e')
         ORDER BY o.name"
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(objects))
        .bind(role)
        .fetch_all(&mut *conn)
        .await?
    {
        catalog.foreign_owned.push(Object {
            kind: r.get(0),
            name: r.get(1),
            owner: r.get(2),
        });
    }
    let grants = format!(
        "SELECT kind, name, privileges FROM (
           SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind,
                  format('%I.%I', n.nspname, c.relname) AS name,
                  (SELECT string_agg(DISTINCT a.privilege_type, ', ') FROM aclexplode(c.relacl) a
                   WHERE a.grantee = 0) AS privileges
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relacl IS NOT NULL AND {SYSTEM_SCHEMAS}
           UNION ALL
           SELECT 'ROUTINE', format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
                  (SELECT string_agg(DISTINCT a.privilege_type, ', ') FROM aclexplode(p.proacl) a
                   WHERE a.grantee = 0)
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE p.proacl IS NOT NULL AND {SYSTEM_SCHEMAS}
         ) g WHERE privileges IS NOT NULL ORDER BY name"
    );
    for r in sqlx::query(sqlx::AssertSqlSafe(grants))
        .fetch_all(&mut *conn)
        .await?
    {
        catalog.public_grants.push(PublicGrant {
            kind: r.get(0),
            name: r.get(1),
            privileges: r.get(2),
        });
    }
    let definers = format!(
        "SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE p.prosecdef AND {SYSTEM_SCHEMAS}
           AND EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                       WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE')
           AND NOT EXISTS (SELECT 1 FROM pg_depend d
                           WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
         ORDER BY 1"
    );
    catalog.public_definers = sqlx::query_scalar(sqlx::AssertSqlSafe(definers))
        .fetch_all(&mut *conn)
        .await?;
    catalog.remote_extensions = sqlx::query_scalar(
        "SELECT extname::text FROM pg_extension
         WHERE extname = 'dblink' OR extname LIKE '%\\_fdw' ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    for r in sqlx::query(
        "SELECT s.srvname::text, w.fdwname::text, coalesce(s.srvoptions, '{}'),
                coalesce(array(SELECT m.usename::text || coalesce(' ' || o.v, '')
                               FROM pg_user_mappings m
                               LEFT JOIN LATERAL (SELECT substr(x, 6) AS v FROM unnest(m.umoptions) x
                                                  WHERE x LIKE 'user=%') o ON true
                               WHERE m.srvid = s.oid ORDER BY 1), '{}')
         FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
         ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?
    {
        let mappings: Vec<String> = r.get(3);
        catalog.foreign_servers.push(ForeignServer {
            name: r.get(0),
            wrapper: r.get(1),
            options: r.get(2),
            mappings: mappings
                .into_iter()
                .map(|m| match m.split_once(' ') {
                    Some((local, remote)) => (local.to_string(), Some(remote.to_string())),
                    None => (m, None),
                })
                .collect(),
        });
    }
    Ok(catalog)
}
