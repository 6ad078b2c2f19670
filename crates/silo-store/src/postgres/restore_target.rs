//! Where a PostgreSQL restore lands: a fresh database made the silo way,
//! and the swap that puts a checked restore in place of the live store.
//!
//! A restore never writes into a store that has data. `--into NAME` gets a
//! store of its own, marked as service NAME's (a role of its own and new
//! credentials, or the service's role when its credentials are kept).
//! `--replace` restores into a closed-off database under the service's own
//! role, and only once that checked out renames it into the live name, in
//! one transaction with renaming the live store out of the way, so the
//! service's credentials work unchanged on the restored data.

use std::time::{Duration, Instant};

use silo_manifest::Service;
use sqlx::{AssertSqlSafe, Connection};

use super::{PgEngine, quote_ident, quote_literal};
use crate::credentials::Credentials;
use crate::error::{StoreError, sql};
use crate::{Dropped, RestoreInto, SwapOptions, Swapped, marker_service};

/// How long the service's ended sessions get to go away.
const TERMINATE_WAIT: Duration = Duration::from_secs(10);

/// `service` under another name: the store a restore `--into NAME` makes.
/// Database `name`; role `<name>_svc` with a new password, or the
/// service's own role when its credentials are kept.
pub fn renamed(service: &Service, name: &str, keep_credentials: bool) -> Service {
    let mut target = service.clone();
    target.name = name.to_string();
    target.database = name.to_string();
    if !keep_credentials {
        target.role = format!("{name}_svc");
    }
    target
}

/// The name a store taken out of service by a swap keeps:
/// `<database>_replaced_<YYYYMMDDHHMMSS>` (UTC), within PostgreSQL's 63
/// bytes.
fn replaced_name(database: &str, stamp: &str) -> String {
    let base: String = database.chars().take(63 - 10 - stamp.len()).collect();
    format!("{base}_replaced_{stamp}")
}

/// The current time as `YYYYMMDDHHMMSS` and as RFC 3339, from the server's
/// clock (one clock for every name silo gives on that server).
async fn server_now(engine: &PgEngine) -> Result<(String, String), StoreError> {
    sqlx::query_as(
        "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISS'),
                to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
    )
    .fetch_one(engine.admin_pool().await?)
    .await
    .map_err(|e| engine.classify(e, "reading the server's clock"))
}

impl PgEngine {
    /// See [`crate::StoreEngine::restore_target`].
    pub(crate) async fn make_restore_target(
        &self,
        service: &Service,
        into: RestoreInto<'_>,
    ) -> Result<Credentials, StoreError> {
        match into {
            RestoreInto::Replacement => self.make_replacement(service).await,
            RestoreInto::Named {
                name,
                keep_credentials,
            } => {
                silo_manifest::names::check_identifier(name).map_err(|problem| {
                    StoreError::Unsupported(format!(
                        "`{name}` cannot name a store: {problem}; use lower snake_case"
                    ))
                })?;
                let target = renamed(service, name, keep_credentials);
                let lock = self.lock_service(&target).await?;
                let result = self.make_named(service, &target, keep_credentials).await;
                let _ = lock.close().await;
                result
            }
        }
    }

    async fn make_named(
        &self,
        service: &Service,
        target: &Service,
        keep_credentials: bool,
    ) -> Result<Credentials, StoreError> {
        if self
            .database_state(&target.database, &target.role)
            .await?
            .is_some()
        {
            return Err(StoreError::AlreadyExists {
                kind: "database",
                name: target.database.clone(),
            });
        }
        let file = self.secrets.path(&target.name);
        if file.exists() {
            return Err(StoreError::AlreadyExists {
                kind: "credentials file",
                name: file.display().to_string(),
            });
        }
        if keep_credentials {
            // The service's own role and password, on another database;
            // its role is checked to be the service's before it owns more.
            let state =
                self.role_state(&service.role)
                    .await?
                    .ok_or_else(|| StoreError::NoCredentials {
                        service: service.name.clone(),
                        path: self.secrets.path(&service.name),
                    })?;
            self.check_mark(
                state.comment.as_deref(),
                "role",
                &service.role,
                service,
                false,
            )?;
            let mut creds = self.secrets.require(service)?;
            creds.service = target.name.clone();
            creds.database = target.database.clone();
            let mut changes = Vec::new();
            self.provision_database(target, false, &mut changes).await?;
            self.secrets.write(&creds)?;
            return Ok(creds);
        }
        if self.role_state(&target.role).await?.is_some() {
            return Err(StoreError::AlreadyExists {
                kind: "role",
                name: target.role.clone(),
            });
        }
        let mut changes = Vec::new();
        self.provision_role(target, false, &mut changes).await?;
        if let Err(e) = self.provision_database(target, false, &mut changes).await {
            let _ = self.drop_locked(target).await;
            return Err(e);
        }
        self.secrets.require(target)
    }

    /// A closed-off database for `--replace`: `<database>_restore_<8 hex>`,
    /// owned by the service's role, PUBLIC stripped, marked as a
    /// replacement (so only [`PgEngine::swap_in`] gives it the service's
    /// marker, and `silo down` finds it if a restore is killed).
    async fn make_replacement(&self, service: &Service) -> Result<Credentials, StoreError> {
        let mut creds = self.secrets.require(service)?;
        let base: String = service.database.chars().take(63 - 17).collect();
        let name = format!("{base}_restore_{}", crate::scratch_suffix());
        self.make_locked_down(
            service,
            &name,
            &crate::replacement_marker(&service.name),
            "a replacement database",
        )
        .await?;
        creds.database = name;
        Ok(creds)
    }

    /// Creates `name` owned by `service`'s role, closed until it carries
    /// `comment`, PUBLIC revoked from it and from its `public` schema.
    pub(crate) async fn make_locked_down(
        &self,
        service: &Service,
        name: &str,
        comment: &str,
        what: &str,
    ) -> Result<(), StoreError> {
        let db = quote_ident(name);
        let role = quote_ident(&service.role);
        self.run(
            format!("CREATE DATABASE {db} OWNER {role} ALLOW_CONNECTIONS false"),
            &format!("creating {what}"),
        )
        .await?;
        let lock_down = format!(
            "COMMENT ON DATABASE {db} IS {}; REVOKE ALL ON DATABASE {db} FROM PUBLIC; \
             GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {role}; \
             ALTER DATABASE {db} ALLOW_CONNECTIONS true;",
            quote_literal(comment)
        );
        if let Err(e) = self.run(lock_down, &format!("locking down {what}")).await {
            let _ = self.run(format!("DROP DATABASE {db}"), "dropping it").await;
            return Err(e);
        }
        let mut conn = self.admin_in(name).await?;
        let schema = sqlx::raw_sql(AssertSqlSafe(format!(
            "ALTER SCHEMA public OWNER TO {role}; REVOKE ALL ON SCHEMA public FROM PUBLIC;"
        )))
        .execute(&mut conn)
        .await
        .map_err(sql(format!("locking down the public schema of {what}")));
        let _ = conn.close().await;
        if let Err(e) = schema {
            let _ = self.run(format!("DROP DATABASE {db}"), "dropping it").await;
            return Err(e);
        }
        Ok(())
    }

    /// See [`crate::StoreEngine::drop_restore_target`].
    pub(crate) async fn discard_restore_target(
        &self,
        service: &Service,
        target: &Credentials,
    ) -> Result<Dropped, StoreError> {
        if target.database == service.database {
            return Err(StoreError::Unsupported(format!(
                "`{}` is service `{}`'s live store, not a restore target",
                target.database, service.name
            )));
        }
        let comment = self.database_comment(&target.database).await?;
        let ours = match comment.as_deref() {
            Some(c) => {
                crate::replacement_service(c) == Some(service.name.as_str())
                    || marker_service(c) == Some(target.service.as_str())
            }
            None => false,
        };
        if !ours {
            return Err(StoreError::NotManaged {
                kind: "restore target",
                name: target.database.clone(),
            });
        }
        let role = target.user.clone().unwrap_or_default();
        if role != service.role && target.service != service.name {
            // A store of its own (`--into NAME`): database, role, file.
            let stand_in = renamed(service, &target.service, false);
            let lock = self.lock_service(&stand_in).await?;
            let result = self.drop_locked(&stand_in).await;
            let _ = lock.close().await;
            return result;
        }
        self.run(
            format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&target.database)
            ),
            "dropping the restore target",
        )
        .await?;
        let mut dropped = Dropped {
            removed: vec![format!("database {}", target.database)],
        };
        if target.service != service.name && self.secrets.remove(&target.service)? {
            dropped
                .removed
                .push(format!("credentials file of {}", target.service));
        }
        Ok(dropped)
    }

    /// See [`crate::StoreEngine::swap`].
    pub(crate) async fn swap_in(
        &self,
        service: &Service,
        restored: &Credentials,
        options: SwapOptions,
    ) -> Result<Swapped, StoreError> {
        let lock = self.lock_service(service).await?;
        let result = self.swap_locked(service, restored, options).await;
        let _ = lock.close().await;
        result
    }

    async fn swap_locked(
        &self,
        service: &Service,
        restored: &Credentials,
        options: SwapOptions,
    ) -> Result<Swapped, StoreError> {
        let Some(state) = self
            .database_state(&restored.database, &service.role)
            .await?
        else {
            return Err(StoreError::Unsupported(format!(
                "the restored database `{}` does not exist",
                restored.database
            )));
        };
        if state.owner != service.role
            || state
                .comment
                .as_deref()
                .and_then(crate::replacement_service)
                != Some(service.name.as_str())
        {
            return Err(StoreError::Unsupported(format!(
                "database `{}` is not a restore made to replace service `{}`'s store (made by a restore with --replace)",
                restored.database, service.name
            )));
        }
        if let Some(live) = self
            .database_state(&service.database, &service.role)
            .await?
        {
            self.check_mark(
                live.comment.as_deref(),
                "database",
                &service.database,
                service,
                false,
            )?;
        }
        let (stamp, at) = server_now(self).await?;
        let kept = replaced_name(&service.database, &stamp);
        let live_db = quote_ident(&service.database);
        let restored_db = quote_ident(&restored.database);
        let kept_db = quote_ident(&kept);
        let role = quote_ident(&service.role);

        let mut terminated = 0;
        let sessions = self.sessions(&service.database).await?;
        if !sessions.is_empty() {
            let own_only = sessions.iter().all(|(user, _)| user == &service.role);
            if !options.terminate || !own_only {
                return Err(in_use(&service.database, &sessions, own_only));
            }
            // New sessions are refused while the old ones end, so the
            // service cannot slip back in before the rename.
            self.run(
                format!("ALTER DATABASE {live_db} ALLOW_CONNECTIONS false"),
                "closing the live database to new sessions",
            )
            .await?;
            match self.terminate(service).await {
                Ok(n) => terminated = n,
                Err(e) => {
                    self.reopen(&live_db).await;
                    return Err(e);
                }
            }
        }
        let others = self.sessions(&restored.database).await?;
        if !others.is_empty() {
            self.reopen(&live_db).await;
            return Err(in_use(&restored.database, &others, false));
        }
        // One transaction: either both names move or neither does.
        let swap = format!(
            "BEGIN;
             ALTER DATABASE {live_db} RENAME TO {kept_db};
             COMMENT ON DATABASE {kept_db} IS {kept_comment};
             ALTER DATABASE {kept_db} ALLOW_CONNECTIONS true;
             ALTER DATABASE {restored_db} RENAME TO {live_db};
             COMMENT ON DATABASE {live_db} IS {marker};
             REVOKE ALL ON DATABASE {live_db} FROM PUBLIC;
             GRANT CONNECT, TEMPORARY ON DATABASE {live_db} TO {role};
             COMMIT;",
            kept_comment = quote_literal(&crate::replaced_marker(&service.name, &at)),
            marker = quote_literal(&self.marker(service)),
        );
        let mut conn = self.admin_in_default().await?;
        let result = sqlx::raw_sql(AssertSqlSafe(swap)).execute(&mut conn).await;
        let _ = conn.close().await;
        if let Err(e) = result {
            self.reopen(&live_db).await;
            if let sqlx::Error::Database(db) = &e
                && db.code().as_deref() == Some("55006")
            {
                let sessions = self.sessions(&service.database).await?;
                let own_only = sessions.iter().all(|(user, _)| user == &service.role);
                return Err(in_use(&service.database, &sessions, own_only));
            }
            return Err(self.classify(e, "swapping the restored database in"));
        }
        Ok(Swapped {
            live: service.database.clone(),
            kept,
            terminated,
        })
    }

    /// Opens a database closed for a swap that did not happen.
    async fn reopen(&self, db: &str) {
        let _ = self
            .run(
                format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"),
                "opening the live database again",
            )
            .await;
    }

    /// `(role, application)` of every session on `database` but ours.
    async fn sessions(&self, database: &str) -> Result<Vec<(String, String)>, StoreError> {
        sqlx::query_as(
            "SELECT coalesce(usename::text, ''), coalesce(application_name, '')
             FROM pg_stat_activity
             WHERE datname = $1 AND pid <> pg_backend_pid()
             ORDER BY pid",
        )
        .bind(database)
        .fetch_all(self.admin_pool().await?)
        .await
        .map_err(|e| self.classify(e, "listing the sessions on the database"))
    }

    /// Ends the service role's sessions on its live store and waits (with
    /// a bound) until they are gone.
    async fn terminate(&self, service: &Service) -> Result<u64, StoreError> {
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = $1 AND usename = $2 AND pid <> pg_backend_pid()",
        )
        .bind(&service.database)
        .bind(&service.role)
        .fetch_all(self.admin_pool().await?)
        .await
        .map_err(|e| self.classify(e, "ending the service's sessions"))?;
        let started = Instant::now();
        loop {
            let left = self.sessions(&service.database).await?;
            if left.is_empty() {
                return Ok(ended.len() as u64);
            }
            if started.elapsed() > TERMINATE_WAIT {
                let own_only = left.iter().all(|(user, _)| user == &service.role);
                return Err(in_use(&service.database, &left, own_only));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Databases earlier swaps kept for `service`:
    /// `<database>_replaced_<14 digits>`, owned by its role, with the
    /// replaced-store comment.
    pub async fn replaced_stores(&self, service: &Service) -> Result<Vec<String>, StoreError> {
        let names = self
            .named_after(
                service,
                24,
                "^_replaced_[0-9]{14}$",
                "looking for replaced databases",
            )
            .await?;
        let prefix = format!("silo store of service={} replaced", service.name);
        Ok(names
            .into_iter()
            .filter(|(_, comment)| comment.as_deref().is_some_and(|c| c.starts_with(&prefix)))
            .map(|(name, _)| name)
            .collect())
    }
}

fn in_use(database: &str, sessions: &[(String, String)], own_only: bool) -> StoreError {
    StoreError::InUse {
        database: database.to_string(),
        sessions: sessions
            .iter()
            .map(|(user, app)| {
                if app.is_empty() {
                    user.clone()
                } else {
                    format!("{user} ({app})")
                }
            })
            .collect(),
        own_only,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_store_says_what_it_is_within_63_bytes() {
        assert_eq!(
            replaced_name("orders", "20261128010203"),
            "orders_replaced_20261128010203"
        );
        let long = "x".repeat(63);
        let name = replaced_name(&long, "20261128010203");
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("_replaced_20261128010203"));
    }
}
