//! The audit entries of requests that wrote nothing (reads, look-ups, denials) are committed
//! together: the entries of concurrent requests in one transaction, one lock of the audit head
//! and one commit for all of them (group commit, `crate::coalesce`); each request is answered
//! once its own entries are durable, and not at all when they cannot be written.

use super::{record, Entry};
use crate::coalesce::{Coalescer, GroupError};
use crate::store::Database;

/// The most entries committed together.
const MAX_GROUP: usize = 512;

/// The entries could not be written: the answer they describe must not leave.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the audit log could not be written: {0}")]
pub struct Unrecorded(String);

impl GroupError for Unrecorded {
    fn share(&self) -> Self {
        self.clone()
    }

    fn queue_stopped() -> Self {
        Unrecorded("the audit queue has stopped".into())
    }
}

/// Where the entries of reads are committed.
pub struct ReadAudit {
    queue: Coalescer<Entry, (), Unrecorded>,
}

impl ReadAudit {
    /// Starts the queue's task on the current runtime; entries name the policy `policy_hash`.
    pub(crate) fn start(db: Database, policy_hash: String) -> ReadAudit {
        let queue = Coalescer::start(MAX_GROUP, move |entries: Vec<Entry>| {
            let (db, policy_hash) = (db.clone(), policy_hash.clone());
            async move {
                let count = entries.len();
                db.run_write(move |conn| record(conn, &policy_hash, entries))
                    .await
                    .map_err(|error: crate::store::StoreError| {
                        tracing::error!(error = %error, "could not write the audit log; the responses are withheld");
                        Unrecorded(error.to_string())
                    })?;
                Ok(vec![(); count])
            }
        });
        ReadAudit { queue }
    }

    /// Commits `entries` (with those of concurrent requests) and returns once they are durable.
    pub(crate) async fn record(&self, entries: Vec<Entry>) -> Result<(), Unrecorded> {
        if entries.is_empty() {
            return Ok(());
        }
        self.queue.submit(entries).await.map(drop)
    }
}
