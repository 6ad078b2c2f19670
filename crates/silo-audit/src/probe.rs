//! Real connection attempts with a service's own credentials: the proof
//! behind the catalog's word.

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// What one attempt showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Connected (and, for an own-store probe, created and dropped a table).
    Connected,
    /// Refused for the right reason: 42501 (no CONNECT privilege) or 28000
    /// (no pg_hba entry, or no such role).
    Denied { code: String },
    /// 28P01: the password was wrong, so the probe proves nothing.
    BadPassword,
    /// Anything else (unreachable, too many connections, own-store table
    /// creation refused): the message says what.
    Failed {
        code: Option<String>,
        message: String,
    },
}

impl Probe {
    /// Whether the store was reached.
    pub fn connected(&self) -> bool {
        matches!(self, Probe::Connected)
    }
}

/// Who tries to connect where.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The server's admin options: host, port and TLS are taken from them.
    pub server: PgConnectOptions,
    pub user: String,
    pub password: String,
    pub database: String,
    /// Also create and drop a table (an own-store probe).
    pub write: bool,
}

/// Makes one attempt. Statements run in a transaction that is rolled
/// back, so an own-store probe leaves nothing behind.
pub async fn attempt(a: &Attempt) -> Probe {
    let options = a
        .server
        .clone()
        .username(&a.user)
        .password(&a.password)
        .database(&a.database)
        .application_name("silo-audit");
    let mut conn = match PgConnection::connect_with(&options).await {
        Ok(conn) => conn,
        Err(e) => return classify(&e),
    };
    let outcome = if a.write {
        write_probe(&mut conn).await
    } else {
        Probe::Connected
    };
    let _ = conn.close().await;
    outcome
}

async fn write_probe(conn: &mut PgConnection) -> Probe {
    let table = format!("silo_audit_probe_{}", suffix());
    let result = async {
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TABLE {table} (id bigint); DROP TABLE {table};"
        )))
        .execute(&mut *tx)
        .await?;
        tx.rollback().await
    }
    .await;
    match result {
        Ok(()) => Probe::Connected,
        Err(e) => match classify(&e) {
            Probe::Failed { code, message } => Probe::Failed {
                code,
                message: format!("connected, but cannot create a table: {message}"),
            },
            other => other,
        },
    }
}

fn classify(e: &sqlx::Error) -> Probe {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string());
            match code.as_deref() {
                Some("42501" | "28000") => Probe::Denied {
                    code: code.unwrap_or_default(),
                },
                Some("28P01") => Probe::BadPassword,
                _ => Probe::Failed {
                    code,
                    message: db.message().to_string(),
                },
            }
        }
        other => Probe::Failed {
            code: None,
            message: other.to_string(),
        },
    }
}

fn suffix() -> String {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
