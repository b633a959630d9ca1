//! What the domain services share: the database, the keys, the policy, the clock, the job
//! runner, the signers and the write paths that group concurrent requests. A capability's
//! service functions take `&Services` and parsed input; they own their transaction, their
//! audit entries (reads included) and their after-commit effects. Cloning is cheap.

use std::sync::Arc;

use crate::audit::ReadAudit;
use crate::clock::Clock;
use crate::consent::ConsentWrites;
use crate::crypto::JwsSigner;
use crate::interactions::IngestQueue;
use crate::jobs::Jobs;
use crate::policy::Policy;
use crate::store::Database;
use crate::vault::Vault;

/// Population queries (segment counts, member pages) running at once in one process; more
/// wait their turn.
pub const POPULATION_QUERIES: usize = 2;

/// The shared services.
#[derive(Clone)]
pub struct Services {
    /// The database.
    pub db: Database,
    /// The key hierarchy: blind indexes, data keys.
    pub vault: Arc<Vault>,
    /// The loaded policy.
    pub policy: Arc<Policy>,
    /// The time.
    pub clock: Clock,
    /// The periodic jobs (work that arrived early wakes them).
    pub jobs: Jobs,
    /// Signs consent and erasure receipts.
    pub receipts: Arc<JwsSigner>,
    /// Signs audit checkpoints.
    pub checkpoints: Arc<JwsSigner>,
    /// Where the audit entries of reads are committed, together.
    pub read_audit: Arc<ReadAudit>,
    /// Where consent statements are recorded (coalescing concurrent calls).
    pub consent_writes: Arc<ConsentWrites>,
    /// Where interactions are stored (coalescing small requests).
    pub ingest: Arc<IngestQueue>,
    /// Population queries running at once.
    pub population_queries: Arc<tokio::sync::Semaphore>,
}

impl Services {
    /// Starts the write paths on the current runtime around the given parts.
    pub fn start(
        db: Database,
        vault: Arc<Vault>,
        policy: Arc<Policy>,
        clock: Clock,
        jobs: Jobs,
    ) -> Services {
        let receipts = Arc::new(JwsSigner::new(vault.receipt_seed()));
        Services {
            read_audit: Arc::new(ReadAudit::start(db.clone(), policy.sha256().to_owned())),
            consent_writes: Arc::new(ConsentWrites::start(
                db.clone(),
                vault.clone(),
                policy.clone(),
                receipts.clone(),
            )),
            ingest: Arc::new(IngestQueue::start(
                db.clone(),
                vault.clone(),
                policy.clone(),
            )),
            checkpoints: Arc::new(JwsSigner::new(vault.audit_seed())),
            population_queries: Arc::new(tokio::sync::Semaphore::new(POPULATION_QUERIES)),
            receipts,
            db,
            vault,
            policy,
            clock,
            jobs,
        }
    }
}
