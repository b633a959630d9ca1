//! Builds the application: loads the policy and the master key, prepares the database, binds
//! the listener and mounts the route table with its middleware.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::{from_fn, Compress};
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::app::Services;
use crate::clock::Clock;
use crate::config::Settings;
use crate::http::middleware::{authorize, observe};
use crate::http::{endpoints, openapi, ApiError, AppState, Endpoint, Metrics, OpenDsr, Web};
use crate::jobs::{Failure, Jobs, Ran, Schedule};
use crate::policy::{load_dir, Policy};
use crate::requests::opendsr::{ControllerKeys, ProcessorIdentity};
use crate::segments::index::PopulationIndex;
use crate::store::{run_migrations, write_transaction, Database};
use crate::vault::Vault;

/// How long a stopping server waits for a periodic job's run in progress.
const JOBS_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Connections per process: on SQLite, readers (writes have their own connection); on
/// PostgreSQL, everything, sized so that several processes fit under its default limit of 100.
const POOL_SIZE: u32 = 16;

/// Loads and validates the policy directory, with every error as `file:line: message`.
pub(crate) fn load_policy(settings: &Settings) -> anyhow::Result<Policy> {
    load_dir(&settings.policy_dir).map_err(|errors| {
        anyhow::anyhow!(
            "the policy in {} is invalid:\n{errors}",
            settings.policy_dir.display()
        )
    })
}

/// Creates the data directory if needed, opens the database and applies pending migrations.
pub fn open_database(settings: &Settings) -> anyhow::Result<Database> {
    create_private_dir(&settings.data_dir)?;
    let database = Database::connect(&settings.database_url, POOL_SIZE);
    let mut conn = database
        .connection()
        .with_context(|| format!("cannot open the database {}", settings.database_url))?;
    let applied = run_migrations(&mut conn)?;
    for version in applied {
        tracing::info!(version, "applied migration");
    }
    Ok(database)
}

/// Loads the master keyring and the root secret (creating both on first start).
pub fn open_vault(settings: &Settings, db: &Database) -> anyhow::Result<Vault> {
    let mut conn = db.connection()?;
    Ok(Vault::open(&mut conn, &settings.master_key_file)?.with_schedule(settings.epochs))
}

/// Creates the data directory, readable by its owner only, if it does not exist yet.
pub(crate) fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    }
    Ok(())
}

/// A built application, listening but not yet serving.
pub struct Application {
    local: std::net::SocketAddr,
    server: Server,
    jobs: Jobs,
}

impl Application {
    /// Prepares everything and binds `settings.bind` (port 0 picks a free port).
    pub fn build(settings: &Settings) -> anyhow::Result<Application> {
        Application::build_with_clock(settings, Clock::system())
    }

    /// [`Application::build`] on a clock of the caller's (tests move an adjustable one).
    pub fn build_with_clock(settings: &Settings, clock: Clock) -> anyhow::Result<Application> {
        let policy = Arc::new(load_policy(settings)?);
        let db = open_database(settings)?;
        let vault = Arc::new(open_vault(settings, &db)?);
        crate::auth::prepare_decoy();
        let listener = TcpListener::bind(&settings.bind)
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        let local = listener.local_addr()?;
        let public_url = public_url(settings, local);
        check_database(&db, &public_url)?;
        let state = app_state(settings, db, vault, policy, public_url, clock)?;
        start_jobs(&state, settings);
        let jobs = state.services.jobs.clone();
        let server = http_server(settings, state, listener)?;
        Ok(Application {
            local,
            server,
            jobs,
        })
    }

    /// The periodic jobs (tests run one on demand with [`Jobs::run_now`]).
    #[cfg(feature = "test-support")]
    pub fn jobs(&self) -> Jobs {
        self.jobs.clone()
    }

    /// The port the application listens on.
    pub fn port(&self) -> u16 {
        self.local.port()
    }

    /// The address the application listens on (with the port the system chose for port 0).
    pub(crate) fn address(&self) -> std::net::SocketAddr {
        self.local
    }

    /// Serves until the server is stopped (SIGINT/SIGTERM stop it gracefully).
    /// The periodic jobs stop with it (a run in progress finishes first).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.jobs.stop(JOBS_PATIENCE).await;
        served
    }
}

/// Everything the handlers share: the database, keys, policy, queues and limits, with the
/// OpenDSR identity and its callback sender started.
fn app_state(
    settings: &Settings,
    db: Database,
    vault: Arc<Vault>,
    policy: Arc<Policy>,
    public_url: crate::net::PublicUrl,
    clock: Clock,
) -> anyhow::Result<web::Data<AppState>> {
    let opendsr = {
        let mut conn = db.connection()?;
        Arc::new(
            ProcessorIdentity::load(&mut conn, &vault, &settings.opendsr)
                .context("cannot load the OpenDSR signing identity")?,
        )
    };
    if opendsr.is_development() {
        tracing::warn!(
            "OpenDSR answers are signed with a self-signed development certificate: controllers will not trust it; configure the processor's certificate and key (docs/opendsr.md)"
        );
    }
    let opendsr_controllers = settings
        .opendsr
        .controllers
        .as_deref()
        .map(ControllerKeys::load)
        .transpose()
        .context("cannot load the OpenDSR controllers' certificates")?;
    let metrics = Metrics::new();
    let jobs = Jobs::new(metrics.registry(), clock.clone());
    let population_index = PopulationIndex::new(
        policy.clone(),
        settings.population_index,
        metrics.registry(),
    );
    Ok(web::Data::new(AppState {
        limits: Arc::new(crate::http::limits::RateLimits::new(
            settings.rate_limit,
            clock.clone(),
        )),
        opendsr: OpenDsr {
            identity: opendsr,
            controllers: opendsr_controllers,
            private_callbacks: settings.opendsr.allow_private_callbacks,
        },
        web: Web {
            metrics,
            openapi_json: openapi::document(),
            public_url,
            trusted_proxies: settings.trusted_proxies.clone(),
            body_timeout: settings.body_timeout,
        },
        services: Services::start(
            db,
            vault,
            policy,
            clock,
            jobs,
            settings.token_ttl,
            population_index,
        ),
    }))
}

/// The HTTP server on `listener`: timeouts, per-connection setup, middleware and routes.
fn http_server(
    settings: &Settings,
    state: web::Data<AppState>,
    listener: TcpListener,
) -> anyhow::Result<Server> {
    let body_limit = settings.body_limit;
    let connections = crate::http::connections::ConnectionCounts::new(
        settings.max_connections_per_address,
        settings.trusted_proxies.clone(),
    );
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(json_config(body_limit))
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|error, _| ApiError::from_query(&error).into()),
            )
            .app_data(
                web::PathConfig::default()
                    .error_handler(|error, _| ApiError::from_path(&error).into()),
            )
            .wrap(from_fn(authorize))
            .wrap(from_fn(crate::http::body_deadline::body_deadline))
            .wrap(from_fn(crate::http::opendsr::spec_errors))
            .wrap(Compress::default())
            .wrap(from_fn(crate::http::connections::cap))
            .wrap(from_fn(observe))
            .default_service(web::to(not_found))
            .configure(mount_routes)
    })
    // Streamed responses (exports) end with a small final write; with Nagle's algorithm it
    // would wait for the client's delayed ACK (~40 ms). Every answer here is complete when
    // written, so send at once.
    // A client has 10 s to send a request's head, 5 s to close after the answer, and an idle
    // kept-alive connection is closed after 30 s: slow or idle clients do not hold workers.
    .client_request_timeout(std::time::Duration::from_secs(10))
    .client_disconnect_timeout(std::time::Duration::from_secs(5))
    .keep_alive(std::time::Duration::from_secs(30))
    .on_connect(move |connection, data| {
        if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(error = %error, "could not set TCP_NODELAY");
            }
            // Counted while the connection lives (its data is dropped when it closes).
            if let Some(slot) = tcp
                .peer_addr()
                .ok()
                .and_then(|peer| connections.open(peer.ip()))
            {
                data.insert(slot);
            }
        }
    })
    .listen(listener)?
    .run();
    Ok(server)
}

/// The address links and OpenDSR documents name: `--public-url`, or the listener's.
fn public_url(settings: &Settings, local: std::net::SocketAddr) -> crate::net::PublicUrl {
    if let Some(url) = &settings.public_url {
        return url.clone();
    }
    let url = crate::net::PublicUrl::of_listener(local);
    if local.ip().is_unspecified() {
        tracing::warn!(
            public_url = %url,
            "listening on all interfaces without --public-url: links will name localhost"
        );
    }
    url
}

/// Points stored OpenDSR links at the public URL, and warns when PostgreSQL never gathers
/// planner statistics.
fn check_database(db: &Database, public_url: &crate::net::PublicUrl) -> anyhow::Result<()> {
    let mut conn = db.connection()?;
    let repointed = crate::store::opendsr::repoint_base_urls(&mut conn, public_url.as_str())?;
    if repointed > 0 {
        tracing::info!(repointed, "OpenDSR links now use the public URL");
    }
    if crate::store::autovacuum_off(&mut conn)? {
        tracing::warn!("PostgreSQL's autovacuum is off: planner statistics are never gathered and queries slow down as tables grow; turn it on, or run ANALYZE regularly");
    }
    Ok(())
}

/// Mounts the route table (one resource per path, each answering 405 with `Allow` for the
/// methods it lacks) and the `/docs` UI. Paths are grouped in scopes by their first two
/// segments (`/v1/subjects`, `/v1/requests` …): a request is matched against a scope's static
/// prefix first, and only then against the patterns inside it, instead of against every
/// pattern of the table in turn (each pattern with a parameter is a regular expression, and the
/// table is matched twice per request: for the route label of logs and metrics, and to route).
fn mount_routes(config: &mut web::ServiceConfig) {
    let mut scopes: BTreeMap<&'static str, Vec<(&'static str, Vec<&'static Endpoint>)>> =
        BTreeMap::new();
    for (path, routes) in routes_by_path() {
        scopes
            .entry(scope_of(path))
            .or_default()
            .push((path, routes));
    }
    for (prefix, resources) in scopes {
        if prefix.is_empty() {
            for (path, routes) in resources {
                config.service(resource_for(path, routes));
            }
            continue;
        }
        let mut scope = web::scope(prefix);
        for (path, routes) in resources {
            scope = scope.service(resource_for(&path[prefix.len()..], routes));
        }
        config.service(scope);
    }
    config.service(SwaggerUi::new("/docs/{_:.*}").config(Config::new(["/openapi.json"])));
}

/// The scope a path is mounted in: its first two segments when both are fixed
/// (`/v1/subjects/{subject_id}` and `/v1/subjects` → `/v1/subjects`), otherwise none (`""`).
fn scope_of(path: &'static str) -> &'static str {
    let mut segments = path.match_indices('/').map(|(at, _)| at);
    let end = match (segments.next(), segments.next()) {
        (Some(0), Some(_)) => segments.next().unwrap_or(path.len()),
        _ => return "",
    };
    let prefix = &path[..end];
    if prefix.contains('{') {
        ""
    } else {
        prefix
    }
}

/// One path's resource: its endpoints, 405 with `Allow` for other methods.
fn resource_for(path: &str, routes: Vec<&'static Endpoint>) -> actix_web::Resource {
    // RFC 9110: a 405 names the methods the resource has.
    let allow = routes
        .iter()
        .map(|endpoint| endpoint.method.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut resource = web::resource(path).default_service(web::to(move || {
        std::future::ready(method_not_allowed(&allow))
    }));
    if let Some(limit) = routes.iter().find_map(|endpoint| endpoint.body_limit) {
        resource = resource.app_data(json_config(limit));
    }
    for endpoint in routes {
        let route = web::route().method(endpoint.method.clone());
        resource = resource.route((endpoint.handler)(route));
    }
    resource
}

/// 405, with the methods the resource has in `Allow`.
fn method_not_allowed(allow: &str) -> HttpResponse {
    let mut response = actix_web::ResponseError::error_response(&ApiError::Problem {
        status: actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        detail: "this resource does not support this method".into(),
    });
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(allow) {
        response
            .headers_mut()
            .insert(actix_web::http::header::ALLOW, value);
    }
    response
}

/// JSON bodies up to `limit` bytes, with rejections answered as problems.
fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|error, _| ApiError::from_json(&error).into())
}

/// The periodic jobs of a server: each its own turn, all on one runner ([`crate::jobs`]).
fn start_jobs(state: &web::Data<AppState>, settings: &Settings) {
    let jobs = &state.services.jobs;
    if state.services.db.is_sqlite() {
        let db = state.services.db.clone();
        jobs.start(
            "sqlite_wal_checkpoint",
            Schedule::every(crate::store::SQLITE_CHECKPOINT_INTERVAL),
            move || {
                let db = db.clone();
                async move {
                    db.checkpoint_wal().await?;
                    Ok(Ran::Done)
                }
            },
        );
    }
    start_hashed_index_backfill(state);
    jobs.start(
        "audit_checkpoint",
        Schedule::every(settings.audit_checkpoint_interval),
        with_state(state, sign_checkpoint),
    );
    jobs.start(
        "retention",
        Schedule::every(settings.retention_interval),
        with_state(state, apply_retention),
    );
    jobs.start(
        "key_epochs",
        Schedule::at_start_then_every(KEY_EPOCH_TICK),
        with_state(state, maintain_key_epochs),
    );
    jobs.start(
        crate::subjects::links::CONSOLIDATION_JOB,
        Schedule::at_start_then_every(CONSOLIDATION_TICK),
        with_state(state, consolidate_members),
    );
    start_population_index(state);
    let db = state.services.db.clone();
    jobs.start("old_copies", Schedule::every(OLD_COPIES_RETRY), move || {
        let db = db.clone();
        async move {
            db.remove_pending_old_copies().await;
            Ok(Ran::Done)
        }
    });
    let limits = state.limits.clone();
    jobs.start(
        "rate_limit_upkeep",
        Schedule::every(crate::http::limits::UPKEEP_INTERVAL),
        move || {
            limits.forget_quiet_callers();
            std::future::ready(Ok(Ran::Done))
        },
    );
    crate::requests::opendsr::callbacks::start(
        jobs,
        state.services.db.clone(),
        state.opendsr.identity.clone(),
        state.services.clock.clone(),
        state.opendsr.private_callbacks,
    );
}

/// A job's work as the runner calls it: a closure over the shared state.
fn with_state<Fut>(
    state: &web::Data<AppState>,
    work: fn(web::Data<AppState>) -> Fut,
) -> impl Fn() -> Fut + Send + Sync + 'static
where
    Fut: std::future::Future<Output = Result<Ran, Failure>> + Send + 'static,
{
    let state = state.clone();
    move || work(state.clone())
}

/// How often the old copies of erased keys that a reader kept readable are tried again.
const OLD_COPIES_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// Gives subjects created before the SHA-256 blind indexes existed (OpenDSR `sha256`
/// identities) their indexes, a batch at a time, in the background; finished once none is
/// left (at once on a database that never had such subjects).
fn start_hashed_index_backfill(state: &web::Data<AppState>) {
    const BATCH: i64 = 500;
    state.services.jobs.start(
        "sha256_index_backfill",
        Schedule::at_start_then_every(std::time::Duration::from_secs(60)),
        with_state(state, |state| async move {
            let for_work = state.clone();
            let done = state
                .services
                .db
                .run_write(move |conn| {
                    crate::subjects::backfill_hashed_indexes(conn, &for_work.services.vault, BATCH)
                })
                .await?;
            if done > 0 {
                tracing::info!(
                    subjects = done,
                    "SHA-256 blind indexes written for existing subjects"
                );
                return Ok(Ran::More);
            }
            Ok(Ran::Finished)
        }),
    );
}

/// How often a process's population index reads the change feed between counts (each count
/// reads it too): what a count then reads is a few seconds' changes.
const POPULATION_INDEX_TICK: std::time::Duration = std::time::Duration::from_secs(2);
/// How often the change feed is marked and pruned.
const POPULATION_FEED_PRUNE: std::time::Duration = std::time::Duration::from_secs(60);

/// Builds this process's population index at start and keeps it close to the change feed; and
/// prunes the feed of what every process has read.
fn start_population_index(state: &web::Data<AppState>) {
    state.services.jobs.start(
        crate::segments::index::JOB,
        Schedule::at_start_then_every(POPULATION_INDEX_TICK),
        with_state(state, |state| async move {
            let index = state.services.population_index.clone();
            index
                .refresh_in_background(state.services.db.clone())
                .await?;
            Ok(Ran::Done)
        }),
    );
    state.services.jobs.start(
        "population_feed_prune",
        Schedule::every(POPULATION_FEED_PRUNE),
        with_state(state, |state| async move {
            // Real time, not the service's clock: what was read is measured against the
            // readers' own (monotonic) clocks.
            let now = chrono::Utc::now().naive_utc();
            let pruned = state
                .services
                .db
                .run_write(move |conn| crate::store::population_feed::mark_and_prune(conn, now))
                .await?;
            tracing::debug!(rows = pruned, "population change feed pruned");
            Ok(Ran::Done)
        }),
    );
}

/// How often the people merged into others are looked for, to fold their interactions into
/// the person.
const CONSOLIDATION_TICK: std::time::Duration = std::time::Duration::from_secs(10);

/// Steps a turn of consolidation takes before letting other jobs run (500 interactions each).
const CONSOLIDATION_STEPS: usize = 20;

/// Folds merged people's interactions into the person they were merged into, a step (one short
/// write transaction) at a time; a member left with nothing is deleted and its key's old copies
/// leave the database files, as after an erasure.
async fn consolidate_members(state: web::Data<AppState>) -> Result<Ran, Failure> {
    let mut moved = 0;
    let mut erased = Vec::new();
    let mut ran = Ok(Ran::More);
    for _ in 0..CONSOLIDATION_STEPS {
        let vault = state.services.vault.clone();
        let step = state
            .services
            .db
            .run_write(move |conn| crate::subjects::links::consolidate_step(conn, &vault))
            .await;
        match step {
            Ok(Some(step)) => {
                moved += step.moved;
                erased.extend(step.finished);
            }
            Ok(None) => {
                ran = Ok(Ran::Done);
                break;
            }
            Err(error) => {
                ran = Err(error.into());
                break;
            }
        }
    }
    if moved > 0 || !erased.is_empty() {
        tracing::info!(
            interactions = moved,
            members = erased.len(),
            "merged people's interactions folded into their person"
        );
    }
    // The destroyed keys of the whole turn leave the database files in one pass (also when a
    // later step failed: their rows are gone already).
    if !erased.is_empty() {
        crate::subjects::after_erasure(&state.services.db, &state.services.vault, erased).await;
    }
    ran
}

/// Signs an audit checkpoint when the chain has grown since the last one (any process's).
async fn sign_checkpoint(state: web::Data<AppState>) -> Result<Ran, Failure> {
    let for_work = state.clone();
    let signed = state
        .services
        .db
        .run_write(move |conn| {
            write_transaction(conn, |conn| {
                let (size, _) = crate::store::audit::head(conn)?;
                if size <= crate::store::audit::last_checkpoint_size(conn)? {
                    return Ok(None);
                }
                crate::audit::sign_head(conn, &for_work.services.checkpoints).map(Some)
            })
        })
        .await
        .map_err(|error: crate::store::StoreError| error)?;
    if let Some(checkpoint) = signed {
        tracing::debug!(size = checkpoint.size, "signed an audit checkpoint");
    }
    Ok(Ran::Done)
}

/// Applies retention: batch after batch, each its own write (on SQLite, the writer serves
/// other requests between batches); then shreds the erasure receipts past their keeping.
async fn apply_retention(state: web::Data<AppState>) -> Result<Ran, Failure> {
    let now = state.services.clock.now_naive();
    let mut report = crate::retention::RetentionReport::default();
    for purpose in state.services.policy.purposes() {
        loop {
            let (for_work, id) = (state.clone(), purpose.id.clone());
            let batch = state
                .services
                .db
                .run_write(move |conn| {
                    let purpose = for_work
                        .services
                        .policy
                        .purpose(id.as_str())
                        .expect("a purpose of the loaded policy");
                    crate::retention::expire_batch(
                        conn,
                        &for_work.services.policy,
                        purpose,
                        now,
                        &crate::audit::Actor::system(),
                    )
                })
                .await
                .map_err(|error: crate::store::StoreError| error)?;
            report.record(purpose, batch);
            if batch.purpose_rows < crate::retention::BATCH {
                break;
            }
        }
    }
    let for_work = state.clone();
    let report = state
        .services
        .db
        .run_write(move |conn| {
            let mut report = report;
            crate::retention::expire_the_rest(
                conn,
                &for_work.services.policy,
                now,
                &crate::audit::Actor::system(),
                &mut report,
            )
            .map(|()| report)
        })
        .await
        .map_err(|error: crate::store::StoreError| error)?;
    if report != crate::retention::RetentionReport::default() {
        tracing::info!(
            deleted = report.interactions_deleted,
            receipts_shredded = report.erasure_receipts_shredded,
            held_deleted = report.held_interactions_deleted,
            holds_ended = report.legal_holds_ended,
            segment_answers_forgotten = report.segment_answers_forgotten,
            insight_days_forgotten = report.insight_days_forgotten,
            "retention applied"
        );
    }
    Ok(Ran::Done)
}

/// How often a server looks after key epochs (start the next one when due, re-wrap, retire,
/// destroy what is past its backup retention).
const KEY_EPOCH_TICK: std::time::Duration = std::time::Duration::from_secs(60);

/// Looks after key epochs (at start, keys wrapped before epochs existed are re-wrapped at
/// once). Re-wrapping runs on a pooled connection, a batch per transaction, so writes go on
/// meanwhile.
async fn maintain_key_epochs(state: web::Data<AppState>) -> Result<Ran, Failure> {
    let for_work = state.clone();
    let now = state.services.clock.now_naive();
    let report = state
        .services
        .db
        .run(move |conn| {
            let report = crate::vault::maintain_epochs(conn, &for_work.services.vault, now, false)?;
            crate::vault::audit_epoch_report(
                conn,
                for_work.services.policy.sha256(),
                &crate::audit::Actor::system(),
                &report,
            )?;
            Ok::<_, crate::vault::VaultError>(report)
        })
        .await?;
    if report.started.is_some() || !report.destroyed.is_empty() {
        tracing::info!(
            current = report.current,
            rewrapped = report.rewrapped,
            destroyed = ?report.destroyed,
            "key epochs maintained"
        );
    }
    Ok(Ran::Done)
}

/// The route table grouped by path, so each path is one resource and a wrong method gets 405.
fn routes_by_path() -> BTreeMap<&'static str, Vec<&'static crate::http::Endpoint>> {
    let mut grouped: BTreeMap<&'static str, Vec<_>> = BTreeMap::new();
    for endpoint in endpoints() {
        grouped.entry(endpoint.path).or_default().push(endpoint);
    }
    grouped
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(
        "not_found",
        "no resource has this address",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_scoped_by_their_first_two_fixed_segments() {
        assert_eq!(
            scope_of("/v1/subjects/{subject_id}/consents"),
            "/v1/subjects"
        );
        assert_eq!(scope_of("/v1/keys"), "/v1/keys");
        assert_eq!(scope_of("/v1/keys/{id}"), "/v1/keys");
        assert_eq!(
            scope_of("/opendsr/v2/requests/{subject_request_id}"),
            "/opendsr/v2"
        );
        assert_eq!(scope_of("/healthz"), "");
        // For every path of the table: its scope's prefix is fixed text (actix matches it
        // without a regular expression), and the path is split at a segment boundary (what is
        // mounted inside the scope is the scope's own resource, "", or starts a segment).
        for (path, _) in routes_by_path() {
            let scope = scope_of(path);
            assert!(!scope.contains('{'), "{path}");
            let rest = &path[scope.len()..];
            assert!(rest.is_empty() || rest.starts_with('/'), "{path}");
        }
    }
}
