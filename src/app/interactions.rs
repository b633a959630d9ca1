//! Interactions as the API offers them: collection (one or a batch, each item judged on its
//! own) and reads for a purpose. Refusals by the policy are audited here, about the person
//! they concern (by pseudonym, when they exist); reads are audited before they answer.

use std::sync::Arc;

use super::{audit_read, record_refusal, with_categories, Failed, Services};
use crate::audit::{Actor, Entry};
use crate::auth::Principal;
use crate::interactions::Together;
use crate::interactions::{
    read_for_purpose, Cursor, Draft, Outcome, Page, RawInteraction, ReadError, ACTION_READ,
    ACTION_WRITE,
};
use crate::policy::PurposeId;
use crate::rejection::{Rejection, RejectionKind};
use crate::subjects::links::LinkOutcome;
use crate::subjects::{self, pseudonym_of, SubjectError, SubjectId};

/// One item's fate: stored (or found stored, or refused by the person's standing — see
/// [`Outcome`]), or refused as sent (`Failed::Refused` when the policy refused it and the
/// refusal was audited, `Failed::Domain` when it was malformed).
pub(crate) type ItemResult = Result<Outcome, Failed<Rejection>>;

/// The pseudonyms of these subject ids (`(id, anonymous)`: a user id, or a tracking SDK's
/// anonymous id), where someone has them (ids that do not parse name nobody).
async fn pseudonyms_of(
    services: &Services,
    raw_ids: Vec<(String, bool)>,
) -> Result<Vec<Option<String>>, SubjectError> {
    let vault = services.vault.clone();
    services
        .db
        .run(move |conn| {
            raw_ids
                .iter()
                .map(|(raw, anonymous)| {
                    let id = if *anonymous {
                        SubjectId::anonymous(raw)
                    } else {
                        SubjectId::parse(raw)
                    };
                    match id {
                        Ok(id) => pseudonym_of(conn, &vault, &id),
                        Err(_) => Ok(None),
                    }
                })
                .collect()
        })
        .await
}

/// Collects interactions: each item is checked on its own (a malformed one, or one the role
/// may not collect for — audited about its person —, does not stop the others), items about
/// suppressed subject ids are refused (audited), and the rest are stored together, after a GPC
/// signal for their subjects when `gpc`. One result per item, in order.
pub(crate) async fn collect(
    services: &Services,
    principal: &Principal,
    actor: &Actor,
    items: Vec<Result<RawInteraction, Rejection>>,
    gpc: bool,
) -> Result<Vec<ItemResult>, Failed<SubjectError>> {
    let checked = check(services, principal, actor, items);
    let collected = store_checked(
        services,
        principal,
        actor,
        checked,
        gpc,
        Together::default(),
    )
    .await?;
    Ok(collected.results)
}

/// Items checked on their own, before anything is read or stored.
pub(crate) struct Checked {
    /// Per item: its result when it is refused already, `None` while it is a draft.
    results: Vec<Option<ItemResult>>,
    drafts: Vec<Draft>,
    /// The item each draft came from.
    draft_indexes: Vec<usize>,
    /// Items the role may not collect for: index, subject id as sent, reason code.
    refused_about: Vec<(usize, (String, bool), &'static str)>,
}

impl Checked {
    /// The first item refused as malformed (a purpose the role may not collect for is a
    /// refusal, not malformed), with its index.
    pub(crate) fn first_malformed(&self) -> Option<(usize, &Rejection)> {
        self.results
            .iter()
            .enumerate()
            .find_map(|(index, result)| match result {
                Some(Err(Failed::Domain(rejection)))
                    if rejection.kind != RejectionKind::Forbidden =>
                {
                    Some((index, rejection))
                }
                _ => None,
            })
    }
}

/// Checks each item on its own (`Draft::parse`): declared fields and purposes, purposes the
/// caller's role may collect for, bounded values.
pub(crate) fn check(
    services: &Services,
    principal: &Principal,
    actor: &Actor,
    items: Vec<Result<RawInteraction, Rejection>>,
) -> Checked {
    let shared = Arc::new(actor.clone());
    let mut checked = Checked {
        results: Vec::with_capacity(items.len()),
        drafts: Vec::new(),
        draft_indexes: Vec::new(),
        refused_about: Vec::new(),
    };
    for (index, item) in items.into_iter().enumerate() {
        let parsed = item.and_then(|raw| {
            let subject_id = (raw.subject_id.clone(), raw.anonymous);
            Draft::parse(&services.policy, principal, &shared, raw).inspect_err(|rejection| {
                if rejection.kind == RejectionKind::Forbidden {
                    checked
                        .refused_about
                        .push((index, subject_id, rejection.code));
                }
            })
        });
        match parsed {
            Ok(draft) => {
                checked.drafts.push(draft);
                checked.draft_indexes.push(index);
                checked.results.push(None);
            }
            Err(rejection) => checked.results.push(Some(Err(Failed::Domain(rejection)))),
        }
    }
    checked
}

/// What [`store_checked`] did.
pub(crate) struct Collected {
    /// One result per item, in order.
    pub(crate) results: Vec<ItemResult>,
    /// Identities refused because their subject id is suppressed (each audited).
    pub(crate) identities_refused: usize,
    /// What became of each link, in order.
    pub(crate) linked: Vec<LinkOutcome>,
    /// What became of each consent statement, in order.
    pub(crate) consents: Vec<Result<crate::consent::ConsentOutcome, SubjectError>>,
}

/// Stores checked items: refusals by the role are audited about their person, items and
/// `identities` (identifiers and traits to set first, in the same transaction: the tracking
/// protocol's `identify`) about suppressed subject ids are refused (audited), and the rest are
/// stored together, after a GPC signal for their subjects when `gpc`.
pub(crate) async fn store_checked(
    services: &Services,
    principal: &Principal,
    actor: &Actor,
    checked: Checked,
    gpc: bool,
    mut together: Together,
) -> Result<Collected, Failed<SubjectError>> {
    let Checked {
        mut results,
        mut drafts,
        mut draft_indexes,
        refused_about,
    } = checked;
    let mut denials = Vec::new();
    if !refused_about.is_empty() {
        let raw_ids = refused_about.iter().map(|(_, id, _)| id.clone()).collect();
        let pseudonyms = pseudonyms_of(services, raw_ids).await?;
        for ((index, _, code), pseudonym) in refused_about.into_iter().zip(pseudonyms) {
            denials.push(
                Entry::new(actor, ACTION_WRITE)
                    .records(1)
                    .pseudonym(pseudonym)
                    .denied(code),
            );
            if let Some(Err(Failed::Domain(rejection))) = results[index].take() {
                results[index] = Some(Err(Failed::Refused(rejection)));
            }
        }
    }
    // Items and identities about suppressed subject ids are refused one by one.
    let mut ids: Vec<SubjectId> = drafts
        .iter()
        .map(|d| d.subject_id().clone())
        .chain(together.identities.iter().map(|(id, _)| id.clone()))
        .collect();
    ids.sort_unstable_by(|a, b| {
        (a.is_anonymous(), a.as_str()).cmp(&(b.is_anonymous(), b.as_str()))
    });
    ids.dedup();
    let blocked = super::subjects::suppressed(services, ids).await?;
    let mut identities_refused = 0;
    if !blocked.is_empty() {
        let is_blocked = |id: &SubjectId| blocked.contains(id);
        let mut kept = Vec::with_capacity(drafts.len());
        let mut kept_indexes = Vec::with_capacity(drafts.len());
        for (draft, index) in drafts.into_iter().zip(draft_indexes) {
            if is_blocked(draft.subject_id()) {
                denials.push(
                    Entry::new(actor, ACTION_WRITE)
                        .records(1)
                        .denied("subject_suppressed"),
                );
                results[index] = Some(Ok(Outcome::Suppressed));
            } else {
                kept.push(draft);
                kept_indexes.push(index);
            }
        }
        drafts = kept;
        draft_indexes = kept_indexes;
        together.identities.retain(|(id, _)| {
            if is_blocked(id) {
                denials
                    .push(Entry::new(actor, subjects::ACTION_WRITE).denied("subject_suppressed"));
                identities_refused += 1;
                false
            } else {
                true
            }
        });
    }
    audit_read(services, denials).await?;
    let mut linked = Vec::new();
    let mut consents = Vec::new();
    let outcomes = if drafts.is_empty() && together.is_empty() {
        Vec::new()
    } else if gpc || !together.is_empty() {
        let relayed_by = gpc.then(|| principal.key_id.clone());
        let stored = services
            .ingest
            .store_with(drafts, together, relayed_by, actor.clone())
            .await?;
        linked = stored.linked;
        consents = stored.consents;
        stored.outcomes
    } else {
        services.ingest.store(drafts).await?
    };
    for (index, outcome) in draft_indexes.into_iter().zip(outcomes) {
        results[index] = Some(Ok(outcome));
    }
    Ok(Collected {
        results: results.into_iter().flatten().collect(),
        identities_refused,
        linked,
        consents,
    })
}

/// A page of a person's interactions usable for `purpose`, minimised to the fields it may use;
/// audited with the categories shown. A refusal (the role may not read for the purpose, or the
/// person gave it no legal basis) is audited about the person.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn read(
    services: &Services,
    principal: &Principal,
    actor: &Actor,
    subject_id: SubjectId,
    purpose: PurposeId,
    limit: i64,
    cursor: Option<Cursor>,
) -> Result<Page, Failed<ReadError>> {
    let (vault, policy, role, target, about) = (
        services.vault.clone(),
        services.policy.clone(),
        principal.role.clone(),
        purpose.clone(),
        subject_id.clone(),
    );
    let read = services
        .db
        .run(move |conn| {
            read_for_purpose(
                conn,
                &vault,
                &policy,
                &role,
                &about,
                &target,
                limit,
                cursor.as_ref(),
            )
        })
        .await;
    let policy = &services.policy;
    let entry = Entry::new(actor, ACTION_READ).purpose(policy, &purpose);
    let page = match read {
        Ok(page) => page,
        Err(ReadError::Refused {
            rejection,
            pseudonym,
        }) => {
            let entry = entry.pseudonym(Some(pseudonym)).denied(rejection.code);
            audit_read(services, vec![entry]).await?;
            return Err(Failed::Refused(rejection));
        }
        Err(ReadError::Rejected(rejection)) if rejection.kind == RejectionKind::Forbidden => {
            let entry = entry.denied(rejection.code);
            record_refusal(services, entry, Some(subject_id.as_str()))
                .await
                .map_err(|failed| match failed {
                    Failed::Domain(error) => Failed::Domain(ReadError::Failed(error)),
                    Failed::Refused(rejection) => Failed::Refused(rejection),
                    Failed::Unrecorded(error) => Failed::Unrecorded(error),
                })?;
            return Err(Failed::Refused(rejection));
        }
        Err(error) => return Err(Failed::Domain(error)),
    };
    let shown = page.interactions.iter().flat_map(|item| item.data.keys());
    let entry = entry
        .pseudonym(Some(page.pseudonym.clone()))
        .records(page.interactions.len());
    let entry = with_categories(entry, policy, shown);
    audit_read(services, vec![entry]).await?;
    Ok(page)
}
