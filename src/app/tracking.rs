//! The tracking protocol as the API offers it (`docs/tracking.md`): a request's messages are
//! read and checked whole, so that one malformed message stores nothing; then they are
//! collected like any interactions, each judged on its person's standing, refusals audited.

use super::audit_read;
use super::interactions::{check, store_checked};
use super::{Failed, Services};
use crate::audit::Actor;
use crate::audit::Entry;
use crate::auth::Principal;
use crate::consent::{self, ConsentJob};
use crate::interactions::{Outcome, Together};
use crate::policy::Action;
use crate::rejection::Rejection;
use crate::subjects::links::LinkOutcome;
use crate::subjects::SubjectError;
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
    /// Consent statements recorded from consent events.
    pub(crate) consented: usize,
    /// What became of each link of an anonymous id to a user (`identify`, `alias`).
    pub(crate) links: Vec<LinkOutcome>,
}

/// Why a request stored nothing.
#[derive(Debug)]
pub(crate) enum TrackingError {
    /// A message is malformed (400).
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
    let mut together = Together::default();
    let mut refused_statements = Vec::new();
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
                    link,
                } => {
                    tracked.properties_dropped += dropped;
                    if let Some(anonymous) = link {
                        together.links.push((subject_id.clone(), anonymous));
                    }
                    together.identities.push((subject_id, changes));
                }
                Read::Alias { user, anonymous } => together.links.push((user, anonymous)),
                Read::Consent {
                    subject_id,
                    statements,
                    mut gpc,
                } => {
                    if gpc.is_some() && statements.is_empty() {
                        // A GPP string whose only news is its GPC field.
                        together.consents.push(ConsentJob {
                            subject_id: subject_id.clone(),
                            draft: None,
                            gpc: gpc.take(),
                            recorded_by: principal.key_id.clone(),
                            actor: actor.clone(),
                        });
                    }
                    for draft in statements {
                        // As for POST /v1/subjects/{id}/consents: the key's role must hold
                        // consents.write for the purpose; a statement it may not record is
                        // refused alone, and audited.
                        if let Err(denial) = services.policy.authorize_purpose(
                            principal.role.as_str(),
                            Action::ConsentsWrite,
                            draft.purpose(),
                        ) {
                            refused_statements.push(
                                Entry::new(actor, consent::ACTION_WRITE)
                                    .purpose(&services.policy, draft.purpose())
                                    .denied(denial.code()),
                            );
                            continue;
                        }
                        together.consents.push(ConsentJob {
                            subject_id: subject_id.clone(),
                            draft: Some(draft),
                            gpc: gpc.take(),
                            recorded_by: principal.key_id.clone(),
                            actor: actor.clone(),
                        });
                    }
                }
            }
        }
    }
    let (positions, items): (Vec<Position>, Vec<_>) = interactions
        .into_iter()
        .map(|(position, interaction)| (position, Ok(interaction)))
        .unzip();
    // Refused whole if any interaction is malformed as the native API would see it (a value
    // too long, a time out of range …), before anything is stored. A purpose the key's role
    // may not collect for is not malformed: that message alone is refused, and audited.
    let checked = check(services, principal, actor, items);
    if let Some((index, rejection)) = checked.first_malformed() {
        return Err(TrackingError::Malformed(Rejection::bad_request(
            rejection.code,
            format!("{}: {}", positions[index], rejection.detail),
        )));
    }
    if !refused_statements.is_empty() {
        tracked.refused += refused_statements.len();
        audit_read(services, refused_statements)
            .await
            .map_err(TrackingError::Failed)?;
    }
    if positions.is_empty() && together.is_empty() {
        return Ok(tracked);
    }
    let offered = together.identities.len();
    let collected = store_checked(services, principal, actor, checked, gpc, together)
        .await
        .map_err(TrackingError::Failed)?;
    tracked.refused += collected.identities_refused;
    tracked.identified = offered - collected.identities_refused;
    for recorded in &collected.consents {
        match recorded {
            Ok(_) => tracked.consented += 1,
            Err(_) => tracked.refused += 1,
        }
    }
    tracked.links = collected.linked;
    for result in collected.results {
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
