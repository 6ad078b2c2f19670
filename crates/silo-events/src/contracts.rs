//! Contracts at delivery: a payload its type's contract refuses is
//! delivered to no one, and the publisher's outbox row says why.
//!
//! A relay loads the contracts once ([`Contracts::load`]), then, for each
//! outbox row it reads, asks [`check`]: `Deliver` with the `dataschema` to
//! put in the envelope, or `Refuse` with the reason, which
//! [`dead_letter`] writes into the publisher's outbox as the publisher
//! (`state = 'dead'`, `error` = the reason). Types without a contract
//! are delivered unchecked, with no `dataschema`.

pub use silo_contracts::{Contracts, ContractsError};
use silo_manifest::Service;
use silo_store::ServiceConnection;

use crate::{EventsError, sql};

/// What to do with one outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver it; `dataschema` is the contract's URI, when the type has
    /// a contract.
    Deliver { dataschema: Option<String> },
    /// Deliver it to no one: the contract refuses it, for `reason`.
    Refuse { reason: String },
}

/// Checks one outbox row's payload (its JSON text) against the contract
/// in force for `publisher`'s `event_type`.
pub fn check(contracts: &Contracts, publisher: &str, event_type: &str, payload: &str) -> Verdict {
    let Some(contract) = contracts.get(publisher, event_type) else {
        return Verdict::Deliver { dataschema: None };
    };
    let refuse = |problems: String| Verdict::Refuse {
        reason: format!(
            "the payload does not match the contract of {event_type} v{} ({}): {problems}",
            contract.name.version,
            contract.display.display()
        ),
    };
    let value: serde_json::Value = match serde_json::from_str(payload) {
        Ok(value) => value,
        Err(e) => return refuse(unreadable(&e)),
    };
    match contract.check(&value) {
        Ok(()) => Verdict::Deliver {
            dataschema: Some(contract.dataschema.clone()),
        },
        Err(refusal) => refuse(refusal.problems),
    }
}

/// Why a payload the store kept as JSON could not be read for its check.
/// The store's own check (`jsonb`, `json_valid`) has no depth limit, but
/// the reader stops at 128 levels of arrays and objects, to keep its stack
/// bounded: such a payload is JSON, only nested too deep to check.
fn unreadable(e: &serde_json::Error) -> String {
    // serde_json names this case only in its message.
    if e.to_string().starts_with("recursion limit exceeded") {
        format!(
            "it is nested more than 128 arrays or objects deep, more than silo reads to check it ({e}); flatten it"
        )
    } else {
        format!("it is not JSON: {e}")
    }
}

/// Marks the outbox row `event_id` of `publisher` dead with `reason`,
/// written on `source`, a connection to the publisher's store as the
/// publisher. A row already dead keeps its first reason.
pub async fn dead_letter(
    source: &mut ServiceConnection,
    publisher: &Service,
    event_id: &str,
    reason: &str,
) -> Result<(), EventsError> {
    let action = format!(
        "dead-lettering event {event_id} in {}'s outbox",
        publisher.name
    );
    match source {
        ServiceConnection::Postgres(c) => sqlx::query(
            "UPDATE silo_outbox SET state = 'dead', error = $2 \
             WHERE id = $1::uuid AND state <> 'dead'",
        )
        .bind(event_id)
        .bind(reason)
        .execute(&mut *c)
        .await
        .map(|_| ())
        .map_err(sql(action))?,
        ServiceConnection::Sqlite(c) => sqlx::query(
            "UPDATE silo_outbox SET state = 'dead', error = $2 WHERE id = $1 AND state <> 'dead'",
        )
        .bind(event_id)
        .bind(reason)
        .execute(&mut *c)
        .await
        .map(|_| ())
        .map_err(sql(action))?,
    }
    Ok(())
}
