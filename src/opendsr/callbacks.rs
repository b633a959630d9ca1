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

use chrono::{SubsecRound, Utc};

use super::ProcessorIdentity;
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
pub fn backoff(attempts: i32) -> chrono::Duration {
    let exponent = u32::try_from(attempts.clamp(1, 12)).unwrap_or(12);
    chrono::Duration::seconds((1_i64 << exponent).min(3600))
}

/// Sends due callbacks every `interval` (and at once when `wake` is notified) until the
/// process ends.
pub fn start(
    db: Database,
    identity: Arc<ProcessorIdentity>,
    interval: Duration,
    wake: Arc<tokio::sync::Notify>,
) {
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(error = %error, "no HTTP client for OpenDSR callbacks");
                return;
            }
        };
        loop {
            match deliver_due(&db, &identity, &client).await {
                // A full batch: more may be due.
                Ok(sent) if sent as i64 >= BATCH => continue,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = %error, "OpenDSR callbacks: will try again");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = wake.notified() => {}
            }
        }
    });
}

/// Sends the callbacks due now; returns how many were attempted.
pub async fn deliver_due(
    db: &Database,
    identity: &ProcessorIdentity,
    client: &reqwest::Client,
) -> Result<usize, StoreError> {
    let now = Utc::now().naive_utc().trunc_subsecs(6);
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
        let outcome = send(client, identity, &row).await;
        let attempts = row.attempts + 1;
        let id = row.id.clone();
        let done = Utc::now().naive_utc().trunc_subsecs(6);
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
