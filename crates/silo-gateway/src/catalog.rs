//! Each store's tables and columns, read from its own catalog as the
//! service (silo-store's schema snapshot), cached per service.
//!
//! Every table and column a request names is looked up here before any SQL
//! is built: a name the store does not have is refused with
//! `UnknownTable`/`UnknownColumn`, and a name it has is quoted as the
//! catalog spells it. A miss reloads the catalog once, so a migration run
//! by `silo migrate` beside the gateway is seen without a restart.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use silo_store::ServiceConnection;
use silo_store::schema::{snapshot_postgres, snapshot_sqlite};

use crate::error::GatewayError;

/// One table as the catalog has it.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// The catalog's name: `accounts`, or `app.accounts` outside `public`.
    pub name: String,
    /// Column name → type as the catalog prints it.
    pub columns: HashMap<String, String>,
    /// Primary key columns in key order; empty when there is none.
    pub primary_key: Vec<String>,
}

impl TableInfo {
    /// The type of `column`, refusing a column the table lacks.
    pub fn column(&self, column: &str) -> Result<&str, GatewayError> {
        self.columns
            .get(column)
            .map(String::as_str)
            .ok_or_else(|| GatewayError::unknown_column(&self.name, column))
    }

    /// Every column, sorted by name.
    pub fn column_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.columns.keys().map(String::as_str).collect();
        names.sort();
        names
    }
}

/// A store's tables by name.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    by_name: HashMap<String, TableInfo>,
}

impl Tables {
    /// Reads the store's catalog through `conn`.
    pub async fn load(conn: &mut ServiceConnection) -> Result<Tables, GatewayError> {
        let schema = match conn {
            ServiceConnection::Postgres(c) => snapshot_postgres(c).await,
            ServiceConnection::Sqlite(c) => snapshot_sqlite(c).await,
        }
        .map_err(|e| GatewayError::from_sqlx(&e))?;
        let by_name = schema
            .tables
            .into_iter()
            .map(|t| {
                let info = TableInfo {
                    columns: t
                        .columns
                        .into_iter()
                        .map(|c| (c.name, c.data_type))
                        .collect(),
                    primary_key: t.primary_key,
                    name: t.name.clone(),
                };
                (t.name, info)
            })
            .collect();
        Ok(Tables { by_name })
    }

    /// The table `name`, refusing one the store lacks.
    pub fn table(&self, name: &str) -> Result<&TableInfo, GatewayError> {
        self.by_name
            .get(name)
            .ok_or_else(|| GatewayError::unknown_table(name))
    }
}

/// One service's cached catalog.
#[derive(Debug, Default)]
pub struct Catalog {
    cached: RwLock<Option<Arc<Tables>>>,
}

impl Catalog {
    /// The cached tables, or `None` before the first load.
    pub fn cached(&self) -> Option<Arc<Tables>> {
        self.cached.read().expect("catalog lock").clone()
    }

    /// Reads the catalog again through `conn` and caches it.
    pub async fn reload(&self, conn: &mut ServiceConnection) -> Result<Arc<Tables>, GatewayError> {
        let tables = Arc::new(Tables::load(conn).await?);
        *self.cached.write().expect("catalog lock") = Some(tables.clone());
        Ok(tables)
    }

    /// The cached tables, loaded through `conn` on first use.
    pub async fn get(&self, conn: &mut ServiceConnection) -> Result<Arc<Tables>, GatewayError> {
        match self.cached() {
            Some(tables) => Ok(tables),
            None => self.reload(conn).await,
        }
    }

    /// Forgets the cached tables (after a schema change).
    pub fn invalidate(&self) {
        *self.cached.write().expect("catalog lock") = None;
    }
}
