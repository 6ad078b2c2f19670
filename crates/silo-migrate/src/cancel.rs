//! Calling a run off: a token the caller cancels (on Ctrl-C, say) and every
//! [`crate::Target`] honours. A running statement is cancelled on the
//! server (PostgreSQL: `pg_cancel_backend` from a second connection;
//! SQLite: an interrupt of the connection), the open transaction is rolled
//! back, the migration lock released, and the run returns
//! [`crate::MigrateError::Cancelled`] saying what the store holds.

use std::sync::Arc;

use tokio::sync::watch;

/// A cancellation token: cheap to clone, every clone sees the same state.
/// Once cancelled it stays cancelled.
#[derive(Debug, Clone)]
pub struct Cancel {
    state: Arc<watch::Sender<bool>>,
}

impl Default for Cancel {
    fn default() -> Self {
        Self::new()
    }
}

impl Cancel {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Cancel {
            state: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Cancels every run that holds a clone of this token.
    pub fn cancel(&self) {
        self.state.send_replace(true);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        *self.state.borrow()
    }

    /// Completes when the token is cancelled (at once if it already is).
    pub async fn cancelled(&self) {
        let mut seen = self.state.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = seen.wait_for(|cancelled| *cancelled).await;
    }
}

#[cfg(test)]
mod tests {
    use super::Cancel;

    #[tokio::test]
    async fn every_clone_sees_the_cancel() {
        let token = Cancel::new();
        let other = token.clone();
        assert!(!other.is_cancelled());
        let waiter = tokio::spawn(async move { other.cancelled().await });
        token.cancel();
        waiter.await.unwrap();
        assert!(token.is_cancelled());
        // Already cancelled: completes at once.
        token.cancelled().await;
    }
}
