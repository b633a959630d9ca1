//! What every handler can reach.

use std::sync::Arc;

use crate::audit::ReadAudit;
use crate::auth::{KeyStatusCache, TokenService};
use crate::consent::ConsentWrites;
use crate::crypto::JwsSigner;
use crate::http::Metrics;
use crate::interactions::IngestQueue;
use crate::policy::Policy;
use crate::store::Database;
use crate::vault::Vault;

/// The application state shared by all workers.
pub struct AppState {
    /// The database.
    pub db: Database,
    /// Where consent statements are recorded (coalescing concurrent calls).
    pub consent_writes: ConsentWrites,
    /// Where the audit entries of requests that wrote nothing are committed, together.
    pub read_audit: ReadAudit,
    /// Signs consent and erasure receipts.
    pub receipts: Arc<JwsSigner>,
    /// Signs audit checkpoints.
    pub checkpoints: JwsSigner,
    /// Where interactions are stored (coalescing small requests).
    pub ingest: IngestQueue,
    /// The key hierarchy: blind indexes, data keys.
    pub vault: Arc<Vault>,
    /// The loaded policy.
    pub policy: Arc<Policy>,
    /// Issues and checks access tokens.
    pub tokens: TokenService,
    /// Recently checked API key statuses.
    pub key_status: KeyStatusCache,
    /// Request metrics.
    pub metrics: Metrics,
    /// Limits concurrent exports (each holds a database connection while it streams).
    pub exports: Arc<tokio::sync::Semaphore>,
    /// The OpenAPI document, serialized once.
    pub openapi_json: String,
    /// Request rates per key and token exchanges per address.
    pub limits: Arc<super::limits::RateLimits>,
    /// Where API keys are checked (argon2id): threads of their own, apart from the database's.
    pub key_checks: crate::auth::KeyCheckPool,
    /// Population queries (segment counts, member pages) running at once.
    pub population_queries: Arc<tokio::sync::Semaphore>,
    /// Signs OpenDSR answers and callbacks.
    pub opendsr: Arc<crate::requests::opendsr::ProcessorIdentity>,
    /// Controllers whose signatures OpenDSR requests must carry, when configured.
    pub opendsr_controllers: Option<crate::requests::opendsr::ControllerKeys>,
    /// The periodic jobs (the OpenDSR callback sender is woken through them).
    pub jobs: crate::jobs::Jobs,
    /// The service's clock.
    pub clock: crate::clock::Clock,
    /// Whether OpenDSR callback URLs may be http:// or reach internal addresses.
    pub opendsr_private_callbacks: bool,
    /// The base of every link handed out.
    pub public_url: crate::net::PublicUrl,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: crate::net::TrustedProxies,
    /// How long a request body may take to arrive in full.
    pub body_timeout: std::time::Duration,
}
