//! The PostgreSQL engine: per service a database, a login role with a
//! generated password and least privilege, and nothing for PUBLIC.
//!
//! One [`PgEngine`] talks to one server through an admin URL. With
//! `database` isolation all services share one engine; with `instance`
//! isolation each service has an engine of its own (see [`crate::Stores`]).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use silo_manifest::{Engine, Service};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgConnection, Row};

use crate::credentials::{Credentials, SecretsDir};
use crate::error::{StoreError, sql};
use crate::root_cause;
use crate::secret::{Secret, scram_verifier};
use crate::{
    Dropped, Leftover, LeftoverKind, ProvisionOptions, Provisioned, RestoreInto, StoreEngine,
    StoreStatus, SwapOptions, Swapped, marker, marker_project, marker_service,
};

mod restore_target;

pub use restore_target::renamed;

/// One PostgreSQL server, reached as an administrator.
pub struct PgEngine {
    admin: PgConnectOptions,
    pool: PgPool,
    /// Set once the server has answered a direct connection.
    reachable: tokio::sync::OnceCell<()>,
    secrets: SecretsDir,
    /// `host:port`, for messages.
    server: String,
    /// The project recorded in markers.
    project: Option<String>,
}

/// A role as the catalog shows it.
struct RoleState {
    comment: Option<String>,
    superuser: bool,
    createdb: bool,
    createrole: bool,
    replication: bool,
    bypassrls: bool,
    login: bool,
    connection_limit: i32,
}

/// A database as the catalog shows it.
struct DatabaseState {
    comment: Option<String>,
    owner: String,
    public_has_privileges: bool,
    role_can_connect: bool,
    /// `datallowconn`: silo creates a database closed and opens it only
    /// once it is marked and locked down.
    allow_connections: bool,
}

impl DatabaseState {
    /// A database an interrupted `silo up` left half-made: created closed
    /// (no one, PUBLIC included, could connect, so nothing is in it) and
    /// owned by the service's role, but killed before it was marked.
    fn half_made(&self, service: &Service, role: Option<&RoleState>) -> bool {
        self.comment.is_none()
            && !self.allow_connections
            && self.owner == service.role
            && role
                .and_then(|r| r.comment.as_deref())
                .and_then(marker_service)
                == Some(service.name.as_str())
    }
}

/// Parses a PostgreSQL URL. `origin` names where it came from in errors
/// (the URL itself may hold a password, so it is never echoed).
/// Statement logging is off: role statements carry password verifiers,
/// and `CREATE DATABASE` routinely trips the slow-statement warning.
pub fn parse_url(url: &str, origin: &str) -> Result<PgConnectOptions, StoreError> {
    // sqlx reads any scheme as PostgreSQL: a `mysql://` URL would be sent
    // PostgreSQL's startup packet and fail with a confusing protocol error.
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    if !matches!(scheme, Some("postgres" | "postgresql")) {
        return Err(StoreError::BadUrl {
            origin: origin.to_string(),
            reason: match scheme {
                Some(scheme) => format!(
                    "`{scheme}://` is not a PostgreSQL URL; silo's server engine is PostgreSQL, so the URL starts with postgres:// or postgresql://"
                ),
                None => "expected postgres://USER@HOST:PORT/DATABASE".into(),
            },
        });
    }
    PgConnectOptions::from_str(url)
        .map(ConnectOptions::disable_statement_logging)
        .map_err(|e| StoreError::BadUrl {
            origin: origin.to_string(),
            reason: root_cause(&e),
        })
}

/// Quotes an identifier. Manifest names are plain identifiers already;
/// quoting anyway keeps any name that reaches SQL inert.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal (standard_conforming_strings is on since 9.1).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn server_label(options: &PgConnectOptions) -> String {
    format!("{}:{}", options.get_host(), options.get_port())
}

impl PgEngine {
    /// An engine for the server behind `admin`; connections are made on
    /// first use, at most `max_connections` at a time.
    pub fn new(admin: PgConnectOptions, data_dir: &std::path::Path, max_connections: u32) -> Self {
        let admin = admin.application_name("silo");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with(admin.clone());
        PgEngine {
            server: server_label(&admin),
            admin,
            pool,
            reachable: tokio::sync::OnceCell::new(),
            secrets: SecretsDir::new(data_dir),
            project: None,
        }
    }

    /// Records `project` in the markers of what this engine makes, and
    /// refuses what another project's markers name.
    pub fn for_project(mut self, project: Option<String>) -> Self {
        self.project = project;
        self
    }

    /// Whether a marker of this service was written before markers named
    /// the project, and this engine knows the project.
    fn needs_project(&self, comment: Option<&str>) -> bool {
        self.project.is_some()
            && comment.is_some_and(|c| marker_service(c).is_some() && marker_project(c).is_none())
    }

    /// The marker of `service`'s database and role.
    fn marker(&self, service: &Service) -> String {
        marker(&service.name, self.project.as_deref())
    }

    /// The administrator's connection options (no password is ever shown
    /// from them).
    pub(crate) fn admin_options(&self) -> &PgConnectOptions {
        &self.admin
    }

    /// The administrator's pool, connected to the admin URL's database.
    ///
    /// The first call makes one direct connection: the pool retries a
    /// refused connection until its 30 s acquire timeout, a silent wait
    /// when the server is down, while one attempt fails at once with the
    /// real cause.
    pub(crate) async fn admin_pool(&self) -> Result<&PgPool, StoreError> {
        self.reachable
            .get_or_try_init(|| async {
                let conn = PgConnection::connect_with(&self.admin)
                    .await
                    .map_err(|e| self.classify(e, "connecting"))?;
                let _ = conn.close().await;
                Ok::<(), StoreError>(())
            })
            .await?;
        Ok(&self.pool)
    }

    /// `host:port` of the server, for messages.
    pub fn server(&self) -> &str {
        &self.server
    }

    async fn run(&self, sql_text: String, action: &str) -> Result<(), StoreError> {
        tracing::debug!(server = %self.server, "{action}");
        sqlx::raw_sql(AssertSqlSafe(sql_text))
            .execute(self.admin_pool().await?)
            .await
            .map(|_| ())
            .map_err(|e| self.classify(e, action))
    }

    /// Tells "cannot reach the server" apart from "the statement failed".
    pub fn classify(&self, e: sqlx::Error, action: &str) -> StoreError {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::Configuration(_) => StoreError::Connect {
                target: format!("PostgreSQL at {}", self.server),
                source: e,
            },
            sqlx::Error::Database(ref db) if db.code().is_some_and(|c| c.starts_with("28")) => {
                StoreError::Connect {
                    target: format!("PostgreSQL at {}", self.server),
                    source: e,
                }
            }
            other => sql(format!("{action} on {}", self.server))(other),
        }
    }

    async fn role_state(&self, role: &str) -> Result<Option<RoleState>, StoreError> {
        let row = sqlx::query(
            "SELECT shobj_description(oid, 'pg_authid'), rolsuper, rolcreatedb, rolcreaterole,
                    rolreplication, rolbypassrls, rolcanlogin, rolconnlimit
             FROM pg_roles WHERE rolname = $1",
        )
        .bind(role)
        .fetch_optional(self.admin_pool().await?)
        .await
        .map_err(|e| self.classify(e, "reading the role"))?;
        Ok(row.map(|r| RoleState {
            comment: r.get(0),
            superuser: r.get(1),
            createdb: r.get(2),
            createrole: r.get(3),
            replication: r.get(4),
            bypassrls: r.get(5),
            login: r.get(6),
            connection_limit: r.get(7),
        }))
    }

    async fn database_state(
        &self,
        database: &str,
        role: &str,
    ) -> Result<Option<DatabaseState>, StoreError> {
        let row = sqlx::query(
            "SELECT shobj_description(d.oid, 'pg_database'),
                    pg_get_userbyid(d.datdba)::text,
                    EXISTS (SELECT 1 FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
                            WHERE a.grantee = 0),
                    EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = $2)
                      AND has_database_privilege($2, d.oid, 'CONNECT')
                      AND has_database_privilege($2, d.oid, 'TEMPORARY'),
                    d.datallowconn
             FROM pg_database d WHERE d.datname = $1",
        )
        .bind(database)
        .bind(role)
        .fetch_optional(self.admin_pool().await?)
        .await
        .map_err(|e| self.classify(e, "reading the database"))?;
        Ok(row.map(|r| DatabaseState {
            comment: r.get(0),
            owner: r.get(1),
            public_has_privileges: r.get(2),
            role_can_connect: r.get(3),
            allow_connections: r.get(4),
        }))
    }

    /// Connects to `database` as the administrator (for per-database work
    /// such as the `public` schema).
    pub(crate) async fn admin_in(&self, database: &str) -> Result<PgConnection, StoreError> {
        PgConnection::connect_with(&self.admin.clone().database(database))
            .await
            .map_err(|source| StoreError::Connect {
                target: format!("database `{database}` on {}", self.server),
                source,
            })
    }

    /// Connects to the admin URL's own database as the administrator.
    pub(crate) async fn admin_in_default(&self) -> Result<PgConnection, StoreError> {
        PgConnection::connect_with(&self.admin)
            .await
            .map_err(|e| self.classify(e, "connecting"))
    }

    fn credentials_for(&self, service: &Service, password: Secret) -> Credentials {
        Credentials {
            service: service.name.clone(),
            engine: Engine::Postgres,
            host: Some(self.admin.get_host().to_string()),
            port: Some(self.admin.get_port()),
            database: service.database.clone(),
            user: Some(service.role.clone()),
            password: Some(password),
        }
    }

    /// Sets a new password: staged secrets file, then the server, then the
    /// file moves into place. A failure in the server leaves the old file.
    /// `sql_prefix` is the `CREATE ROLE` or `ALTER ROLE` the password ends;
    /// `then` runs in the same implicit transaction.
    async fn set_password(
        &self,
        service: &Service,
        sql_prefix: &str,
        then: &str,
    ) -> Result<(), StoreError> {
        let password = Secret::generate();
        let creds = self.credentials_for(service, password.clone());
        let staged = self.secrets.stage(&creds)?;
        let statement = format!(
            "{sql_prefix} PASSWORD {}; {then}",
            quote_literal(&scram_verifier(&password))
        );
        if let Err(e) = self.run(statement, "setting the role's password").await {
            let _ = std::fs::remove_file(&staged);
            return Err(e);
        }
        self.secrets.commit(&service.name, &staged)
    }

    /// Makes sure a marked object belongs to `service` of this project, or
    /// may be adopted.
    fn check_mark(
        &self,
        comment: Option<&str>,
        kind: &'static str,
        name: &str,
        service: &Service,
        adopt: bool,
    ) -> Result<bool, StoreError> {
        let project = comment.and_then(marker_project);
        if let (Some(theirs), Some(ours)) = (project, self.project.as_deref())
            && theirs != ours
        {
            return Err(StoreError::OtherProject {
                kind,
                name: name.to_string(),
                project: theirs.to_string(),
                ours: ours.to_string(),
            });
        }
        match comment.and_then(marker_service) {
            Some(owner) if owner == service.name => Ok(false),
            Some(owner) => Err(StoreError::ManagedByOther {
                kind,
                name: name.to_string(),
                owner: owner.to_string(),
                service: service.name.clone(),
            }),
            None if adopt => Ok(true),
            None => Err(StoreError::NotManaged {
                kind,
                name: name.to_string(),
            }),
        }
    }

    async fn provision_role(
        &self,
        service: &Service,
        adopt: bool,
        changes: &mut Vec<String>,
    ) -> Result<bool, StoreError> {
        let role = quote_ident(&service.role);
        let limit = service.connection_limit.map_or(-1, |n| n as i32);
        let attributes = format!(
            "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT {limit}"
        );
        let comment = format!(
            "COMMENT ON ROLE {role} IS {}",
            quote_literal(&self.marker(service))
        );
        let Some(state) = self.role_state(&service.role).await? else {
            // CREATE ROLE and its marker in one implicit transaction, so an
            // unmarked role is never left behind.
            self.set_password(
                service,
                &format!("CREATE ROLE {role} {attributes}"),
                &comment,
            )
            .await?;
            changes.push(format!("created role {}", service.role));
            return Ok(true);
        };
        let adopting = self.check_mark(
            state.comment.as_deref(),
            "role",
            &service.role,
            service,
            adopt,
        )?;
        if !adopting && self.needs_project(state.comment.as_deref()) {
            self.run(
                comment.clone(),
                "recording the project in the role's marker",
            )
            .await?;
            changes.push(format!(
                "recorded project `{}` in the marker of role {}",
                self.project.as_deref().unwrap_or_default(),
                service.role
            ));
        }
        let drifted = state.superuser
            || state.createdb
            || state.createrole
            || state.replication
            || state.bypassrls
            || !state.login
            || state.connection_limit != limit;
        let has_credentials = self.secrets.read(service)?.is_some();
        if adopting || !has_credentials {
            let then = if adopting { comment.as_str() } else { "" };
            self.set_password(service, &format!("ALTER ROLE {role} {attributes}"), then)
                .await?;
            changes.push(if adopting {
                format!("adopted role {} and reset its password", service.role)
            } else {
                format!(
                    "reset the password of role {}: its credentials file was missing",
                    service.role
                )
            });
        } else if drifted {
            self.run(
                format!("ALTER ROLE {role} {attributes}"),
                "altering the role",
            )
            .await?;
            changes.push(format!("reset the attributes of role {}", service.role));
        }
        if adopting || !has_credentials {
            return Ok(false);
        }
        // The file is checked against the server, never trusted: a
        // hand-edited password is not spread into the other fields.
        let candidates = self.secrets.passwords(service)?;
        match self.working_password(service, &candidates).await? {
            Some(password) => {
                // Keep host, port and every field in line with the password
                // that works.
                if self
                    .secrets
                    .write(&self.credentials_for(service, password))?
                {
                    changes.push(if candidates.len() > 1 {
                        "repaired the credentials file: its fields disagreed on the password; kept the one the server accepts".to_string()
                    } else {
                        "rewrote the credentials file".to_string()
                    });
                }
            }
            None => {
                self.set_password(service, &format!("ALTER ROLE {role}"), "")
                    .await?;
                changes.push(format!(
                    "the credentials file's password does not log in as role {}; set a new password and rewrote the file",
                    service.role
                ));
            }
        }
        Ok(false)
    }

    /// Which of `candidates` is the role's password. Checked against the
    /// role's SCRAM verifier where the administrator may read it (exact,
    /// even on a server that trusts local logins), else by logging in.
    async fn working_password(
        &self,
        service: &Service,
        candidates: &[Secret],
    ) -> Result<Option<Secret>, StoreError> {
        let verifier: Option<String> =
            sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
                .bind(&service.role)
                .fetch_optional(self.admin_pool().await?)
                .await
                .ok()
                .flatten()
                .flatten();
        if let Some(verifier) = verifier.as_deref()
            && verifier.starts_with("SCRAM-SHA-256$")
        {
            return Ok(candidates
                .iter()
                .find(|p| crate::secret::scram_verifies(p, verifier) == Some(true))
                .cloned());
        }
        for password in candidates {
            match self
                .connect_as(&self.credentials_for(service, password.clone()))
                .await
            {
                Ok(conn) => {
                    let _ = conn.close().await;
                    return Ok(Some(password.clone()));
                }
                Err(StoreError::Connect {
                    source: sqlx::Error::Database(db),
                    ..
                }) if db.code().as_deref() == Some("28P01") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    async fn provision_database(
        &self,
        service: &Service,
        adopt: bool,
        changes: &mut Vec<String>,
    ) -> Result<bool, StoreError> {
        let db = quote_ident(&service.database);
        let role = quote_ident(&service.role);
        let mark = format!(
            "COMMENT ON DATABASE {db} IS {};",
            quote_literal(&self.marker(service))
        );
        let lock_down = format!(
            "REVOKE ALL ON DATABASE {db} FROM PUBLIC; GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {role};"
        );
        let Some(state) = self
            .database_state(&service.database, &service.role)
            .await?
        else {
            // CREATE DATABASE cannot share a transaction, so the database
            // is created closed to everyone (PUBLIC's default CONNECT
            // included) and opened only once it is marked and locked down.
            // A run killed in between leaves a closed, unmarked database
            // that the next run recognises as its own and finishes.
            self.run(
                format!("CREATE DATABASE {db} OWNER {role} ALLOW_CONNECTIONS false"),
                "creating the database",
            )
            .await?;
            if let Err(e) = self
                .run(format!("{mark} {lock_down}"), "locking down the database")
                .await
            {
                let _ = self
                    .run(
                        format!("DROP DATABASE {db}"),
                        "dropping the half-made database",
                    )
                    .await;
                return Err(e);
            }
            self.run(
                format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"),
                "opening the database",
            )
            .await?;
            self.provision_schema(service, true, changes).await?;
            changes.push(format!("created database {}", service.database));
            return Ok(true);
        };
        let role_state = self.role_state(&service.role).await?;
        if state.half_made(service, role_state.as_ref()) {
            self.run(
                format!("{mark} {lock_down} ALTER DATABASE {db} ALLOW_CONNECTIONS true;"),
                "finishing the half-made database",
            )
            .await?;
            self.provision_schema(service, true, changes).await?;
            changes.push(format!(
                "finished database {}, left half-made by an interrupted run",
                service.database
            ));
            return Ok(false);
        }
        let adopting = self.check_mark(
            state.comment.as_deref(),
            "database",
            &service.database,
            service,
            adopt,
        )?;
        if adopting {
            self.run(mark, "marking the database").await?;
            changes.push(format!("adopted database {}", service.database));
        } else if self.needs_project(state.comment.as_deref()) {
            self.run(mark, "recording the project in the database's marker")
                .await?;
            changes.push(format!(
                "recorded project `{}` in the marker of database {}",
                self.project.as_deref().unwrap_or_default(),
                service.database
            ));
        }
        if state.owner != service.role {
            self.run(
                format!("ALTER DATABASE {db} OWNER TO {role}"),
                "changing the database's owner",
            )
            .await?;
            changes.push(format!(
                "gave database {} to role {} (was {})",
                service.database, service.role, state.owner
            ));
        }
        if !state.allow_connections {
            self.run(
                format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"),
                "opening the database",
            )
            .await?;
            changes.push(format!(
                "opened database {} to connections (an interrupted run left it closed)",
                service.database
            ));
        }
        if state.public_has_privileges || !state.role_can_connect {
            self.run(lock_down, "locking down the database").await?;
            changes.push(format!(
                "revoked PUBLIC's privileges on database {}",
                service.database
            ));
        }
        self.provision_schema(service, false, changes).await?;
        Ok(false)
    }

    /// Inside the database: the `public` schema belongs to the service's
    /// role and PUBLIC has no privileges on it.
    async fn provision_schema(
        &self,
        service: &Service,
        fresh: bool,
        changes: &mut Vec<String>,
    ) -> Result<(), StoreError> {
        let role = quote_ident(&service.role);
        let mut conn = self.admin_in(&service.database).await?;
        let fix = format!(
            "ALTER SCHEMA public OWNER TO {role}; REVOKE ALL ON SCHEMA public FROM PUBLIC;"
        );
        let needed = if fresh {
            true
        } else {
            let row = sqlx::query(
                "SELECT pg_get_userbyid(n.nspowner)::text,
                        EXISTS (SELECT 1 FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
                                WHERE a.grantee = 0)
                 FROM pg_namespace n WHERE n.nspname = 'public'",
            )
            .fetch_optional(&mut conn)
            .await
            .map_err(sql("reading the public schema"))?;
            match row {
                // No public schema at all: nothing for PUBLIC to use.
                None => false,
                Some(r) => r.get::<String, _>(0) != service.role || r.get::<bool, _>(1),
            }
        };
        if needed {
            sqlx::raw_sql(AssertSqlSafe(fix))
                .execute(&mut conn)
                .await
                .map_err(sql("locking down the public schema"))?;
            if !fresh {
                changes.push(format!(
                    "gave schema public of {} to {} and revoked PUBLIC's privileges",
                    service.database, service.role
                ));
            }
        }
        let _ = conn.close().await;
        Ok(())
    }

    /// The comment on `database`, or `None` when it does not exist or has
    /// none.
    pub(crate) async fn database_comment(
        &self,
        database: &str,
    ) -> Result<Option<String>, StoreError> {
        let comment: Option<Option<String>> = sqlx::query_scalar(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
        )
        .bind(database)
        .fetch_optional(self.admin_pool().await?)
        .await
        .map_err(|e| self.classify(e, "reading the database's marker"))?;
        Ok(comment.flatten())
    }

    /// Scratch databases of `service` that are still there: made by
    /// [`StoreEngine::scratch`] (or [`StoreEngine::restore_target`] for a
    /// replacement) and not dropped (the run that made them was killed).
    /// Known by name (`<database>_scratch_<8 hex>`,
    /// `<database>_restore_<8 hex>`) and owner, and by the scratch or
    /// replacement comment when they got that far.
    pub async fn scratch_leftovers(&self, service: &Service) -> Result<Vec<String>, StoreError> {
        let names = self
            .named_after(
                service,
                14,
                "^_(scratch|restore)_[0-9a-f]{8}$",
                "looking for leftover scratch databases",
            )
            .await?;
        Ok(names
            .into_iter()
            .filter(|(_, comment)| {
                comment.as_deref().is_none_or(|c| {
                    crate::scratch_service(c).or_else(|| crate::replacement_service(c))
                        == Some(service.name.as_str())
                })
            })
            .map(|(name, _)| name)
            .collect())
    }

    /// The databases owned by `service`'s role whose names are its
    /// database's (cut to leave `reserved` of PostgreSQL's 63 bytes) and a
    /// suffix matching `suffix` (a regular expression anchored on both
    /// ends), with their comments: the stores silo made beside the
    /// service's own (scratch, restore and replaced stores).
    pub(crate) async fn named_after(
        &self,
        service: &Service,
        reserved: usize,
        suffix: &str,
        doing: &str,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let base: String = service.database.chars().take(63 - reserved).collect();
        sqlx::query_as(
            "SELECT d.datname::text, shobj_description(d.oid, 'pg_database')
             FROM pg_database d
             WHERE pg_get_userbyid(d.datdba) = $1
               AND left(d.datname, length($2)) = $2
               AND substr(d.datname, length($2) + 1) ~ $3
             ORDER BY 1",
        )
        .bind(&service.role)
        .bind(&base)
        .bind(suffix)
        .fetch_all(self.admin_pool().await?)
        .await
        .map_err(|e| self.classify(e, doing))
    }

    /// Holds `service`'s provisioning lock on this server until the
    /// returned connection closes (or its session ends with a killed run):
    /// two `silo up` (or `up` and `down`) on one store take turns instead
    /// of tripping over each other's catalog changes.
    async fn lock_service(&self, service: &Service) -> Result<PgConnection, StoreError> {
        let mut conn = self.admin_in_default().await?;
        let key = format!("silo provision {}", service.database);
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
            .bind(&key)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| self.classify(e, "taking the provisioning lock"))?;
        if !got {
            tracing::warn!(
                service = %service.name,
                "waiting for another silo run on this store to finish"
            );
            sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
                .bind(&key)
                .execute(&mut conn)
                .await
                .map_err(|e| self.classify(e, "taking the provisioning lock"))?;
        }
        Ok(conn)
    }

    async fn provision_locked(
        &self,
        service: &Service,
        options: ProvisionOptions,
    ) -> Result<Provisioned, StoreError> {
        let mut changes = Vec::new();
        for staged in self.secrets.remove_stale_staged(&service.name)? {
            changes.push(format!(
                "removed {}, left by an interrupted run",
                staged.display()
            ));
        }
        // Refuse early if the database is someone else's, before the role
        // is touched.
        if let Some(state) = self
            .database_state(&service.database, &service.role)
            .await?
            && !state.half_made(service, self.role_state(&service.role).await?.as_ref())
        {
            self.check_mark(
                state.comment.as_deref(),
                "database",
                &service.database,
                service,
                options.adopt,
            )?;
        }
        let role_created = self
            .provision_role(service, options.adopt, &mut changes)
            .await?;
        let db_created = self
            .provision_database(service, options.adopt, &mut changes)
            .await?;
        Ok(Provisioned::from_changes(
            role_created && db_created,
            changes,
        ))
    }

    async fn drop_locked(&self, service: &Service) -> Result<Dropped, StoreError> {
        let db_state = self
            .database_state(&service.database, &service.role)
            .await?;
        let role_state = self.role_state(&service.role).await?;
        // Check both before dropping either: all or nothing.
        if let Some(db) = &db_state
            && !db.half_made(service, role_state.as_ref())
        {
            self.check_mark(
                db.comment.as_deref(),
                "database",
                &service.database,
                service,
                false,
            )?;
        }
        if let Some(role) = &role_state {
            self.check_mark(
                role.comment.as_deref(),
                "role",
                &service.role,
                service,
                false,
            )?;
        }
        let mut dropped = Dropped::default();
        // Scratch stores an interrupted `verify` or `diff` left behind are
        // owned by the role: they go first, or the role could not be
        // dropped.
        for scratch in self.scratch_leftovers(service).await? {
            self.run(
                format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(&scratch)
                ),
                "dropping a leftover scratch database",
            )
            .await?;
            dropped
                .removed
                .push(format!("leftover scratch database {scratch}"));
        }
        // Stores earlier `restore --replace` runs kept are the role's too.
        for kept in self.replaced_stores(service).await? {
            self.run(
                format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(&kept)
                ),
                "dropping a database a restore replaced",
            )
            .await?;
            dropped
                .removed
                .push(format!("database {kept}, replaced by a restore"));
        }
        if db_state.is_some() {
            self.run(
                format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(&service.database)
                ),
                "dropping the database",
            )
            .await?;
            dropped
                .removed
                .push(format!("database {}", service.database));
        }
        if role_state.is_some() {
            self.run(
                format!("DROP ROLE IF EXISTS {}", quote_ident(&service.role)),
                "dropping the role",
            )
            .await?;
            dropped.removed.push(format!("role {}", service.role));
        }
        for staged in self.secrets.remove_stale_staged(&service.name)? {
            dropped
                .removed
                .push(format!("leftover staged file {}", staged.display()));
        }
        if self.secrets.remove(&service.name)? {
            dropped.removed.push("credentials file".into());
        }
        Ok(dropped)
    }

    /// Connects with the service's own credentials.
    pub async fn connect_as(&self, creds: &Credentials) -> Result<PgConnection, StoreError> {
        let options =
            parse_url(&creds.url(), "the credentials file")?.application_name(&creds.service);
        PgConnection::connect_with(&options)
            .await
            .map_err(|source| StoreError::Connect {
                target: creds.redacted_url(),
                source,
            })
    }
}

#[async_trait]
impl StoreEngine for PgEngine {
    async fn provision(
        &self,
        service: &Service,
        options: ProvisionOptions,
    ) -> Result<Provisioned, StoreError> {
        let lock = self.lock_service(service).await?;
        let result = self.provision_locked(service, options).await;
        let _ = lock.close().await;
        result
    }

    async fn drop_store(&self, service: &Service) -> Result<Dropped, StoreError> {
        let lock = self.lock_service(service).await?;
        let result = self.drop_locked(service).await;
        let _ = lock.close().await;
        result
    }

    async fn status(&self, service: &Service) -> Result<StoreStatus, StoreError> {
        let size: Option<i64> =
            sqlx::query_scalar("SELECT pg_database_size(oid) FROM pg_database WHERE datname = $1")
                .bind(&service.database)
                .fetch_optional(self.admin_pool().await?)
                .await
                .map_err(|e| self.classify(e, "reading the database size"))?;
        let Some(size) = size else {
            return Ok(StoreStatus {
                exists: false,
                size_bytes: None,
                connects: false,
                problem: Some("not provisioned".into()),
                leftovers: Vec::new(),
            });
        };
        let problem = match self.secrets.read(service)? {
            None => Some("no credentials file".to_string()),
            Some(creds) => match self.connect_as(&creds).await {
                Err(e) => Some(format!("{e}: {}", root_cause(&e))),
                Ok(mut conn) => {
                    let who: Result<(String, String, Option<String>), _> = sqlx::query_as(
                        "SELECT current_user::text, current_database()::text,
                                shobj_description(d.oid, 'pg_database')
                         FROM pg_database d WHERE d.datname = current_database()",
                    )
                    .fetch_one(&mut conn)
                    .await;
                    let _ = conn.close().await;
                    match who {
                        Ok((user, db, _)) if user != service.role || db != service.database => {
                            Some(format!("connected as {user} to {db}"))
                        }
                        Ok((_, _, comment)) => match comment.as_deref().and_then(marker_service) {
                            Some(owner) if owner == service.name => None,
                            Some(owner) => {
                                Some(format!("the database is marked as service `{owner}`'s"))
                            }
                            None => Some("the database carries no silo mark".into()),
                        },
                        Err(e) => Some(root_cause(&e)),
                    }
                }
            },
        };
        Ok(StoreStatus {
            exists: true,
            size_bytes: u64::try_from(size).ok(),
            connects: problem.is_none(),
            problem,
            leftovers: self.leftovers(service).await?,
        })
    }

    async fn rotate(&self, service: &Service) -> Result<(), StoreError> {
        let Some(state) = self.role_state(&service.role).await? else {
            return Err(StoreError::NoCredentials {
                service: service.name.clone(),
                path: self.secrets.path(&service.name),
            });
        };
        self.check_mark(
            state.comment.as_deref(),
            "role",
            &service.role,
            service,
            false,
        )?;
        self.set_password(
            service,
            &format!("ALTER ROLE {}", quote_ident(&service.role)),
            "",
        )
        .await
    }

    async fn scratch(&self, service: &Service) -> Result<Credentials, StoreError> {
        let mut creds = self.credentials(service)?;
        let suffix = crate::scratch_suffix();
        let base: String = service.database.chars().take(63 - 14).collect();
        let name = format!("{base}_scratch_{suffix}");
        let db = quote_ident(&name);
        let role = quote_ident(&service.role);
        self.run(
            format!("CREATE DATABASE {db} OWNER {role} ALLOW_CONNECTIONS false"),
            "creating a scratch database",
        )
        .await?;
        let lock_down = format!(
            "COMMENT ON DATABASE {db} IS {}; REVOKE ALL ON DATABASE {db} FROM PUBLIC; \
             ALTER DATABASE {db} ALLOW_CONNECTIONS true;",
            quote_literal(&crate::scratch_marker(&service.name))
        );
        if let Err(e) = self
            .run(lock_down, "locking down the scratch database")
            .await
        {
            let _ = self.run(format!("DROP DATABASE {db}"), "dropping it").await;
            return Err(e);
        }
        let mut conn = self.admin_in(&name).await?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "ALTER SCHEMA public OWNER TO {role}; REVOKE ALL ON SCHEMA public FROM PUBLIC;"
        )))
        .execute(&mut conn)
        .await
        .map_err(sql("locking down the scratch schema"))?;
        let _ = conn.close().await;
        creds.database = name;
        Ok(creds)
    }

    async fn leftovers(&self, service: &Service) -> Result<Vec<Leftover>, StoreError> {
        let mut out: Vec<Leftover> = self
            .secrets
            .stale_staged(&service.name)
            .iter()
            .map(|p| Leftover::new(LeftoverKind::StagedCredentials, p.display().to_string()))
            .collect();
        out.extend(
            self.scratch_leftovers(service)
                .await?
                .into_iter()
                .map(|name| Leftover::new(LeftoverKind::ScratchStore, name)),
        );
        if let Some(db) = self
            .database_state(&service.database, &service.role)
            .await?
        {
            if db.half_made(service, self.role_state(&service.role).await?.as_ref()) {
                out.push(Leftover::new(
                    LeftoverKind::HalfMadeStore,
                    service.database.clone(),
                ));
            } else if !db.allow_connections
                && db.comment.as_deref().and_then(marker_service) == Some(service.name.as_str())
            {
                out.push(Leftover::new(
                    LeftoverKind::ClosedStore,
                    service.database.clone(),
                ));
            }
        }
        Ok(out)
    }

    async fn drop_scratch(&self, scratch: &Credentials) -> Result<(), StoreError> {
        self.run(
            format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&scratch.database)
            ),
            "dropping the scratch database",
        )
        .await
    }

    fn credentials(&self, service: &Service) -> Result<Credentials, StoreError> {
        self.secrets.require(service)
    }

    async fn restore_target(
        &self,
        service: &Service,
        into: RestoreInto<'_>,
    ) -> Result<Credentials, StoreError> {
        self.make_restore_target(service, into).await
    }

    async fn drop_restore_target(
        &self,
        service: &Service,
        target: &Credentials,
    ) -> Result<Dropped, StoreError> {
        self.discard_restore_target(service, target).await
    }

    async fn swap(
        &self,
        service: &Service,
        restored: &Credentials,
        options: SwapOptions,
    ) -> Result<Swapped, StoreError> {
        self.swap_in(service, restored, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_postgres_urls_are_taken() {
        assert!(parse_url("postgres://u@h:5432/d", "x").is_ok());
        assert!(parse_url("postgresql://u@h/d", "x").is_ok());
        for url in ["mysql://root:pw@h:3306/d", "sqlite://x.db", "h:5432/d"] {
            let e = parse_url(url, "the admin URL").unwrap_err();
            assert!(e.is_unreachable(), "{url}: exit 2");
            let message = e.to_string();
            assert!(!message.contains("pw@"), "{message}");
            assert!(
                message.starts_with("invalid PostgreSQL URL in the admin URL"),
                "{message}"
            );
        }
    }
}
