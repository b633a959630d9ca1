//! Delivery of status callbacks: at least once, surviving restarts. Callbacks are rows
//! (`opendsr_callbacks`) written in the transaction of the status change; a worker in every
//! `serve` process sends the due ones, signed over the exact body bytes, and retries failures
//! with exponential backoff (2 s doubling, at most an hour apart) for [`MAX_ATTEMPTS`]
//! attempts (about a day and a half). A process claims a callback before sending it (moving its
//! next attempt ahead by [`CLAIM`]), so processes sharing a database do not send the same one at
//! the same moment; a process that dies mid-delivery leaves it to be sent again after the claim
//! expires — a controller may receive a status twice, never zero times.

use std::sync::Arc;
use std::time::Duration;

use super::ProcessorIdentity;
use crate::clock::Clock;
use crate::jobs::{Jobs, Ran, Schedule};
use crate::store::opendsr::{self as store, CallbackRow};
use crate::store::{Database, StoreError};

/// Attempts before a callback is given up (logged, and kept with `failed_at`).
pub const MAX_ATTEMPTS: i32 = 40;
/// How long a claimed callback is left to the process that claimed it.
pub const CLAIM: chrono::Duration = chrono::Duration::seconds(60);
/// How long one delivery may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How many callbacks one round sends.
const BATCH: i64 = 32;

/// The wait before attempt `attempts + 1`: 2 s, 4 s, 8 s … at most an hour.
pub(crate) fn backoff(attempts: i32) -> chrono::Duration {
    let exponent = u32::try_from(attempts.clamp(1, 12)).unwrap_or(12);
    chrono::Duration::seconds((1_i64 << exponent).min(3600))
}

/// The periodic job that sends due callbacks.
pub const JOB: &str = "opendsr_callbacks";
/// How often due callbacks are looked for (a status change wakes the job at once).
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Starts the job [`JOB`]: every [`INTERVAL`], and when a status change wakes it, the due
/// callbacks are sent; a full batch runs again at once.
pub(crate) fn start(
    jobs: &Jobs,
    db: Database,
    identity: Arc<ProcessorIdentity>,
    clock: Clock,
    allow_private: bool,
) {
    let client = match client(allow_private) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(error = %error, "no HTTP client for OpenDSR callbacks; none are sent");
            return;
        }
    };
    jobs.start(JOB, Schedule::at_start_then_every(INTERVAL), move || {
        let (db, identity, clock, client) =
            (db.clone(), identity.clone(), clock.clone(), client.clone());
        async move {
            let sent = deliver_due(&db, &identity, &client, &clock, allow_private).await?;
            Ok(if sent as i64 >= BATCH {
                Ran::More
            } else {
                Ran::Done
            })
        }
    });
}

/// Sends the callbacks due now; returns how many were attempted.
pub(crate) async fn deliver_due(
    db: &Database,
    identity: &ProcessorIdentity,
    client: &reqwest::Client,
    clock: &Clock,
    allow_private: bool,
) -> Result<usize, StoreError> {
    let now = clock.now_naive();
    // A read first: most rounds find nothing, and need no write.
    let due: Vec<CallbackRow> = db
        .run(move |conn| store::due_callbacks(conn, now, BATCH))
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let claimed: Vec<CallbackRow> = db
        .run_write(move |conn| {
            let mut claimed = Vec::new();
            for row in due {
                if store::claim(conn, &row, now + CLAIM)? {
                    claimed.push(row);
                }
            }
            Ok::<_, StoreError>(claimed)
        })
        .await?;
    let attempted = claimed.len();
    for row in claimed {
        let outcome = match super::callback_url_problem(&row.url, allow_private) {
            // Accepted under another setting, or stored by an earlier version: not sent.
            Some(problem) => Err(format!("refused: {problem}")),
            None => send(client, identity, &row).await,
        };
        let attempts = row.attempts + 1;
        let id = row.id.clone();
        let done = clock.now_naive();
        match outcome {
            Ok(()) => {
                db.run_write(move |conn| store::delivered(conn, &id, attempts, done))
                    .await?;
            }
            Err(error) => {
                let next = (attempts < MAX_ATTEMPTS).then(|| done + backoff(attempts));
                if next.is_none() {
                    tracing::error!(
                        callback = %row.id,
                        attempts,
                        error = %error,
                        "OpenDSR callback given up"
                    );
                } else {
                    tracing::info!(callback = %row.id, attempts, error = %error, "OpenDSR callback failed; will retry");
                }
                db.run_write(move |conn| {
                    store::attempt_failed(conn, &id, attempts, &error, next, done)
                })
                .await?;
            }
        }
    }
    Ok(attempted)
}

/// The HTTP client callbacks are sent with: no redirects (a redirect could lead anywhere), a
/// timeout, and — unless internal targets are allowed — a resolver that refuses names
/// resolving to internal addresses at the moment of sending (a name that pointed outside when
/// the request was received may point inside by now).
pub(crate) fn client(allow_private: bool) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    if allow_private {
        builder.build()
    } else {
        builder
            .dns_resolver(Arc::new(ExternalOnly))
            .no_proxy()
            .build()
    }
}

/// Resolves with the system resolver, keeping only addresses outside internal ranges; none left
/// is an error.
struct ExternalOnly;

impl reqwest::dns::Resolve for ExternalOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let external: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|address| !crate::net::is_internal(address.ip()))
                .collect();
            if external.is_empty() {
                return Err("the callback host resolves only to internal addresses".into());
            }
            Ok(Box::new(external.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// One delivery: the stored body, signed, to its URL; a 2xx answer is a delivery. The error
/// names the status or the kind of transport failure only (never a body: a controller's answer
/// could hold anything).
async fn send(
    client: &reqwest::Client,
    identity: &ProcessorIdentity,
    row: &CallbackRow,
) -> Result<(), String> {
    let response = client
        .post(&row.url)
        .header("Content-Type", "application/json")
        .header("X-OpenDSR-Processor-Domain", identity.domain())
        .header("X-OpenDSR-Signature", identity.sign(row.body.as_bytes()))
        .body(row.body.clone())
        .send()
        .await
        .map_err(|error| {
            if error.is_timeout() {
                "timeout".to_owned()
            } else if error.is_connect() {
                "connection failed".to_owned()
            } else {
                "request failed".to_owned()
            }
        })?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", response.status().as_u16()))
    }
}
