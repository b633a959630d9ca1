//! OpenDSR requests from controllers: receiving one (idempotently: two identical requests
//! racing get the same answer), its status, and its cancellation. A status change wakes the
//! callback sender.

use super::Services;
use crate::audit::Actor;
use crate::requests::opendsr::{self, callbacks, OpenDsrError, Receipt, Validated};
use crate::requests::RequestError;

/// Receives a validated request (audited in its transaction, with the callbacks of its first
/// status queued in it); `body_sha256` is the hash of the exact body, `base` the public URL
/// that links are built on.
pub(crate) async fn receive(
    services: &Services,
    actor: &Actor,
    validated: Validated,
    body_sha256: String,
    base: String,
) -> Result<Receipt, OpenDsrError> {
    let attempt = |actor: Actor| {
        let (vault, policy, validated, body_sha256, base) = (
            services.vault.clone(),
            services.policy.clone(),
            validated.clone(),
            body_sha256.clone(),
            base.clone(),
        );
        services.db.run_write(move |conn| {
            opendsr::receive(
                conn,
                &vault,
                &policy,
                &validated,
                &body_sha256,
                &base,
                &actor,
            )
        })
    };
    // Two identical requests racing: the loser's insert breaks the primary key; received again,
    // it finds the winner's and answers the same.
    let receipt = match attempt(actor.clone()).await {
        Err(OpenDsrError::Request(RequestError::Subject(error))) if error.is_write_conflict() => {
            attempt(actor.clone()).await?
        }
        other => other?,
    };
    services.jobs.wake(callbacks::JOB);
    Ok(receipt)
}

/// The request `id` of controller `actor` (its key), with its status.
pub(crate) async fn status(
    services: &Services,
    actor: &Actor,
    id: String,
) -> Result<Receipt, OpenDsrError> {
    let (vault, controller) = (
        services.vault.clone(),
        actor.key_id.clone().unwrap_or_default(),
    );
    services
        .db
        .run(move |conn| opendsr::find(conn, &vault, &id, &controller))
        .await
}

/// Cancels the pending request `id` of controller `actor` (audited in its transaction, its
/// callbacks queued in it).
pub(crate) async fn cancel(
    services: &Services,
    actor: &Actor,
    id: String,
) -> Result<Receipt, OpenDsrError> {
    let (vault, policy, actor) = (
        services.vault.clone(),
        services.policy.clone(),
        actor.clone(),
    );
    let receipt = services
        .db
        .run_write(move |conn| opendsr::cancel(conn, &vault, &policy, &id, &actor))
        .await?;
    services.jobs.wake(callbacks::JOB);
    Ok(receipt)
}
