//! The tracking protocol as the API offers it (`docs/tracking.md`): a request's messages are
//! read and checked whole, so that one malformed message stores nothing; then they are
//! collected like any interactions, each judged on its person's standing, refusals audited.

use std::sync::Arc;

use super::interactions::collect_with;
use super::{audit_read, Failed, Services};
use crate::audit::{Actor, Entry};
use crate::auth::Principal;
use crate::interactions::{Draft, Outcome, RawInteraction};
use crate::rejection::{Rejection, RejectionKind};
use crate::subjects::{SubjectChanges, SubjectError, SubjectId, ACTION_WRITE};
use crate::tracking::{read_batch, read_message, Call, Position, Read};

/// What became of a request's messages.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Tracked {
    /// Stored now.
    pub(crate) stored: usize,
    /// Stored before (the same `messageId` for the same person).
    pub(crate) duplicates: usize,
    /// Not stored: no purpose had a legal basis, the person is suppressed (an `identify` too),
    /// or the key's role may not collect for a purpose (each audited).
    pub(crate) refused: usize,
    /// Not stored: the message's consent context left no purpose to collect for.
    pub(crate) no_purpose: usize,
    /// Properties and traits dropped: undeclared fields, or values no field holds.
    pub(crate) properties_dropped: usize,
    /// People whose identifiers and traits an `identify` set.
    pub(crate) identified: usize,
    /// `group` calls: accepted, nothing kept.
    pub(crate) ignored: usize,
}

/// Why a request stored nothing.
#[derive(Debug)]
pub(crate) enum TrackingError {
    /// A message is malformed, or of a call not collected (400).
    Malformed(Rejection),
    /// Collecting failed (the store, or an audited refusal).
    Failed(Failed<SubjectError>),
}

/// Collects the messages of one request: a batch (`call` is `None`) or one message of `call`.
pub(crate) async fn collect(
    services: &Services,
    principal: &Principal,
    actor: &Actor,
    call: Option<Call>,
    body: &[u8],
    gpc: bool,
) -> Result<Tracked, TrackingError> {
    let received_at = services.clock.now();
    let mut tracked = Tracked::default();
    let mut interactions = Vec::new();
    let mut identities = Vec::new();
    {
        let (messages, sent_at) = match call {
            None => read_batch(body).map_err(TrackingError::Malformed)?,
            Some(_) => {
                let message = serde_json::from_slice::<&serde_json::value::RawValue>(body)
                    .map_err(|_| {
                        TrackingError::Malformed(Rejection::bad_request(
                            "invalid_message",
                            "the body must be one JSON message of the tracking protocol",
                        ))
                    })?;
                (vec![message], None)
            }
        };
        for (index, raw) in messages.into_iter().enumerate() {
            let position = Position(call.is_none().then_some(index));
            let read = read_message(
                &services.policy,
                call,
                raw,
                position,
                sent_at.as_ref(),
                received_at,
            )
            .map_err(TrackingError::Malformed)?;
            match read {
                Read::Interaction {
                    interaction,
                    dropped,
                } => {
                    tracked.properties_dropped += dropped;
                    interactions.push((position, interaction));
                }
                Read::NoPurpose => tracked.no_purpose += 1,
                Read::Ignored => tracked.ignored += 1,
                Read::Identify {
                    subject_id,
                    changes,
                    dropped,
                } => {
                    tracked.properties_dropped += dropped;
                    identities.push((subject_id, changes));
                }
            }
        }
    }
    check_whole(services, principal, actor, &interactions)?;
    let identities = unsuppressed(services, actor, identities, &mut tracked).await?;
    if interactions.is_empty() && identities.is_empty() {
        return Ok(tracked);
    }
    tracked.identified = identities.len();
    let items = interactions
        .into_iter()
        .map(|(_, interaction)| Ok(interaction))
        .collect();
    let results = collect_with(services, principal, actor, items, gpc, identities)
        .await
        .map_err(TrackingError::Failed)?;
    for result in results {
        match result {
            Ok(Outcome::Stored { duplicate, .. }) => {
                if duplicate {
                    tracked.duplicates += 1;
                } else {
                    tracked.stored += 1;
                }
            }
            Ok(Outcome::NoLegalBasis { .. } | Outcome::Suppressed) | Err(_) => {
                tracked.refused += 1;
            }
        }
    }
    Ok(tracked)
}

/// The identities whose subject ids are not suppressed; the others are refused, each audited
/// (an erased person is not brought back by a later `identify`).
async fn unsuppressed(
    services: &Services,
    actor: &Actor,
    identities: Vec<(SubjectId, SubjectChanges)>,
    tracked: &mut Tracked,
) -> Result<Vec<(SubjectId, SubjectChanges)>, TrackingError> {
    let ids = identities.iter().map(|(id, _)| id.clone()).collect();
    let blocked = super::subjects::suppressed(services, ids)
        .await
        .map_err(|error| TrackingError::Failed(Failed::Domain(error)))?;
    if blocked.is_empty() {
        return Ok(identities);
    }
    let (refused, kept): (Vec<_>, Vec<_>) = identities
        .into_iter()
        .partition(|(id, _)| blocked.iter().any(|b| b.as_str() == id.as_str()));
    tracked.refused += refused.len();
    let denials = refused
        .iter()
        .map(|_| Entry::new(actor, ACTION_WRITE).denied("subject_suppressed"))
        .collect();
    audit_read(services, denials)
        .await
        .map_err(TrackingError::Failed)?;
    Ok(kept)
}

/// Refuses the request if any interaction is malformed as the native API would see it (a value
/// too long, a time out of range …), before anything is stored. A purpose the key's role may
/// not collect for is not malformed: that message alone is refused, and audited, when
/// collected.
fn check_whole(
    services: &Services,
    principal: &Principal,
    actor: &Actor,
    interactions: &[(Position, RawInteraction)],
) -> Result<(), TrackingError> {
    let shared = Arc::new(actor.clone());
    for (position, interaction) in interactions {
        if let Err(rejection) =
            Draft::parse(&services.policy, principal, &shared, interaction.clone())
        {
            if rejection.kind != RejectionKind::Forbidden {
                return Err(TrackingError::Malformed(Rejection::bad_request(
                    rejection.code,
                    format!("{position}: {}", rejection.detail),
                )));
            }
        }
    }
    Ok(())
}
