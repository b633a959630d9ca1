//! The application's services: one module per capability, each a set of async functions that
//! the HTTP handlers (and any other entry point) call with parsed input. A service function
//! decides with the policy engine, runs its transaction on the pool (the domain module below
//! does the work over a connection), commits its audit entries — reads included, before it
//! answers — and runs what follows a commit. `Services` is what they share: the database, the
//! keys, the policy, the clock, the job runner, the signers and the write paths that group
//! concurrent requests. Cloning it is cheap.
//!
//! The layers: `http` → `app` → the domain modules (`segments`, `requests`, `subjects` …) →
//! `store`. No domain module uses `app` (checked by `tests/boundaries.rs`).

pub(crate) mod access;
pub(crate) mod consents;
pub(crate) mod exports;
pub(crate) mod holds;
pub(crate) mod insights;
pub(crate) mod interactions;
pub(crate) mod keys;
pub(crate) mod opendsr;
pub(crate) mod reports;
pub(crate) mod requests;
pub(crate) mod segments;
pub(crate) mod subjects;
pub(crate) mod tracking;
pub(crate) mod trail;

use std::sync::Arc;

use crate::audit::ReadAudit;
use crate::auth::{
    key_check_threads, KeyCheckPool, KeyStatusCache, TokenService, WriteKeys, KEY_CHECKS_QUEUED,
};
use crate::clock::Clock;
use crate::consent::ConsentWrites;
use crate::crypto::JwsSigner;
use crate::interactions::IngestQueue;
use crate::jobs::Jobs;
use crate::policy::Policy;
use crate::store::Database;
use crate::vault::Vault;

/// Why a service did not answer: its domain's error, or the audit entry of a read that could
/// not be written (nothing is answered then).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failed<E> {
    /// The domain refused or failed.
    #[error(transparent)]
    Domain(#[from] E),
    /// The policy refused, and the service audited the refusal itself (naming the person when
    /// they exist): the caller gets the refusal, and nobody adds another entry for it.
    #[error("refused: {}", .0.code)]
    Refused(crate::rejection::Rejection),
    /// The read's audit entry is not durable: the answer must not leave.
    #[error(transparent)]
    Unrecorded(crate::audit::Unrecorded),
}

/// Commits the audit entries of a read; the read answers only once they are durable.
pub(crate) async fn audit_read<E>(
    services: &Services,
    entries: Vec<crate::audit::Entry>,
) -> Result<(), Failed<E>> {
    services
        .read_audit
        .record(entries)
        .await
        .map_err(Failed::Unrecorded)
}

/// Audits a refusal about the person with the subject id `about` (as sent: in the route or the
/// body), naming them by pseudonym when they exist. The answer never depends on it: a refusal
/// is the same whether or not the person exists, and someone unknown is named by no one.
pub(crate) async fn record_refusal(
    services: &Services,
    entry: crate::audit::Entry,
    about: Option<&str>,
) -> Result<(), Failed<crate::subjects::SubjectError>> {
    let pseudonym = match about.and_then(|raw| crate::subjects::SubjectId::parse(raw).ok()) {
        Some(id) => {
            let vault = services.vault.clone();
            services
                .db
                .run(move |conn| crate::subjects::pseudonym_of(conn, &vault, &id))
                .await?
        }
        None => None,
    };
    audit_read(services, vec![entry.pseudonym(pseudonym)]).await
}

/// Adds to `entry` the data category of every field named in `fields` (each category once): a
/// read is audited with the categories it showed.
pub(crate) fn with_categories<'a>(
    mut entry: crate::audit::Entry,
    policy: &crate::policy::Policy,
    fields: impl IntoIterator<Item = &'a String>,
) -> crate::audit::Entry {
    let categories: std::collections::BTreeSet<&str> = fields
        .into_iter()
        .filter_map(|name| policy.field(name))
        .map(|field| field.category.as_str())
        .collect();
    for category in categories {
        entry.add_category(category);
    }
    entry
}

/// Whether the service can answer: the database is reachable. The backend's name when it is.
pub(crate) async fn ready(services: &Services) -> Result<&'static str, crate::store::StoreError> {
    services.db.ping().await?;
    Ok(services.db.url().backend())
}

/// Population queries (segment counts, member pages) running at once in one process; more
/// wait their turn.
pub(crate) const POPULATION_QUERIES: usize = 2;

/// The shared services.
#[derive(Clone)]
pub(crate) struct Services {
    /// The database.
    pub(crate) db: Database,
    /// The key hierarchy: blind indexes, data keys.
    pub(crate) vault: Arc<Vault>,
    /// The loaded policy.
    pub(crate) policy: Arc<Policy>,
    /// The time.
    pub(crate) clock: Clock,
    /// The periodic jobs (work that arrived early wakes them).
    pub(crate) jobs: Jobs,
    /// Signs consent and erasure receipts.
    pub(crate) receipts: Arc<JwsSigner>,
    /// Signs audit checkpoints.
    pub(crate) checkpoints: Arc<JwsSigner>,
    /// Where the audit entries of reads are committed, together.
    pub(crate) read_audit: Arc<ReadAudit>,
    /// Where consent statements are recorded (coalescing concurrent calls).
    pub(crate) consent_writes: Arc<ConsentWrites>,
    /// Where interactions are stored (coalescing small requests).
    pub(crate) ingest: Arc<IngestQueue>,
    /// Population queries running at once.
    pub(crate) population_queries: Arc<tokio::sync::Semaphore>,
    /// This process's population index (segment counts).
    pub(crate) population_index: Arc<crate::segments::index::PopulationIndex>,
    /// Recently checked API key statuses (a revocation forgets its key's).
    pub(crate) key_status: Arc<KeyStatusCache>,
    /// Issues and checks access tokens.
    pub(crate) tokens: Arc<TokenService>,
    /// Where API keys are checked (argon2id): threads of their own, apart from the database's.
    pub(crate) key_checks: Arc<KeyCheckPool>,
    /// Exports streaming at once (each holds a database connection while it streams).
    pub(crate) exports: Arc<tokio::sync::Semaphore>,
    /// Write keys (HTTP Basic, the tracking SDKs) whose check succeeded.
    pub(crate) write_keys: Arc<WriteKeys>,
}

impl Services {
    /// Starts the write paths on the current runtime around the given parts.
    pub(crate) fn start(
        db: Database,
        vault: Arc<Vault>,
        policy: Arc<Policy>,
        clock: Clock,
        jobs: Jobs,
        token_ttl: std::time::Duration,
        population_index: crate::segments::index::PopulationIndex,
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
            population_index: Arc::new(population_index),
            key_status: Arc::new(KeyStatusCache::new(clock.clone())),
            tokens: Arc::new(TokenService::new(vault.token_key(), token_ttl)),
            key_checks: Arc::new(KeyCheckPool::start(key_check_threads(), KEY_CHECKS_QUEUED)),
            exports: Arc::new(tokio::sync::Semaphore::new(exports::EXPORTS_IN_FLIGHT)),
            write_keys: Arc::new(WriteKeys::new()),
            receipts,
            db,
            vault,
            policy,
            clock,
            jobs,
        }
    }
}
