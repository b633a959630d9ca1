//! People as the API offers them: identifiers and traits, look-up by e-mail address, the
//! person at a glance, erasure (with what follows its commit) and suppression. Each read is
//! audited before it answers.

use super::{audit_read, Failed, Services};
use crate::audit::{Actor, Entry};
use crate::export::glance::{self, Glance};
use crate::export::ExportError;
use crate::subjects::{
    self, after_erasure, erasure_preview, find_by_email, upsert, Email, Erasure, ErasurePreview,
    SubjectChanges, SubjectError, SubjectId, UpsertOutcome, ACTION_ERASURE_PREVIEW, ACTION_LOOKUP,
    IDENTIFIERS_CATEGORY,
};

/// The audit action of looking at a person at a glance.
pub(crate) const ACTION_VIEW: &str = "subjects.view";
/// The audit action of revealing a person's identifiers on their screen.
pub(crate) const ACTION_REVEAL: &str = "subjects.reveal";

/// Creates or updates a person's identifiers and traits (audited in its transaction).
pub(crate) async fn put(
    services: &Services,
    actor: &Actor,
    subject_id: SubjectId,
    changes: SubjectChanges,
) -> Result<UpsertOutcome, SubjectError> {
    let (vault, policy, actor) = (
        services.vault.clone(),
        services.policy.clone(),
        actor.clone(),
    );
    services
        .db
        .run_write(move |conn| upsert(conn, &vault, &policy, &subject_id, &changes, &actor))
        .await
}

/// The subject ids with this e-mail address, sorted; audited once per person found (or once,
/// naming nobody, when none is).
pub(crate) async fn lookup(
    services: &Services,
    actor: &Actor,
    email: Email,
) -> Result<Vec<SubjectId>, Failed<SubjectError>> {
    let vault = services.vault.clone();
    let found = services
        .db
        .run(move |conn| find_by_email(conn, &vault, &email))
        .await?;
    let entries = if found.is_empty() {
        vec![Entry::new(actor, ACTION_LOOKUP)]
    } else {
        found
            .iter()
            .map(|(_, pseudonym)| {
                Entry::new(actor, ACTION_LOOKUP)
                    .pseudonym(Some(pseudonym.clone()))
                    .category(IDENTIFIERS_CATEGORY)
                    .records(1)
            })
            .collect()
    };
    audit_read(services, entries).await?;
    Ok(found
        .into_iter()
        .map(|(subject_id, _)| subject_id)
        .collect())
}

/// What an erasure did, and whether the key's old copies left the database files before the
/// answer.
#[derive(Debug, Clone)]
pub(crate) struct Erased {
    /// The erasure, with its receipt.
    pub(crate) erasure: Erasure,
    /// Whether the old copies were removed in time (else the job `old_copies` goes on).
    pub(crate) old_copies_removed: bool,
}

/// Erases a person (audited in its transaction): the data key is destroyed first, then every
/// row; after the commit the key leaves the cache and its old copies the database files.
/// `None` when nobody has this subject id.
pub(crate) async fn erase(
    services: &Services,
    actor: &Actor,
    subject_id: SubjectId,
    suppress: bool,
) -> Result<Option<Erased>, SubjectError> {
    let (vault, policy, receipts, actor) = (
        services.vault.clone(),
        services.policy.clone(),
        services.receipts.clone(),
        actor.clone(),
    );
    let erasure = services
        .db
        .run_write(move |conn| {
            subjects::erase(
                conn,
                &vault,
                &policy,
                &receipts,
                &subject_id,
                suppress,
                None,
                &actor,
            )
        })
        .await?;
    let Some(erasure) = erasure else {
        return Ok(None);
    };
    let old_copies_removed =
        after_erasure(&services.db, &services.vault, erasure.erased_keys.clone()).await;
    Ok(Some(Erased {
        erasure,
        old_copies_removed,
    }))
}

/// The person at a glance (identifier values only when `reveal`); audited as a view, and as a
/// reveal when identifiers were shown. `None` when nobody has this subject id.
pub(crate) async fn glance(
    services: &Services,
    actor: &Actor,
    subject_id: SubjectId,
    reveal: bool,
) -> Result<Option<Glance>, Failed<ExportError>> {
    let (vault, policy) = (services.vault.clone(), services.policy.clone());
    let Some(glance) = services
        .db
        .run(move |conn| glance::glance(conn, &vault, &policy, &subject_id, reveal))
        .await?
    else {
        return Ok(None);
    };
    let mut view = Entry::new(actor, ACTION_VIEW)
        .pseudonym(Some(glance.pseudonym.clone()))
        .records(1 + glance.timeline.len());
    for category in &glance.categories {
        view.add_category(category);
    }
    let mut entries = vec![view];
    if reveal && !glance.identifiers.is_empty() {
        entries.push(
            Entry::new(actor, ACTION_REVEAL)
                .pseudonym(Some(glance.pseudonym.clone()))
                .records(glance.identifiers.len())
                .category(IDENTIFIERS_CATEGORY),
        );
    }
    audit_read(services, entries).await?;
    Ok(Some(glance))
}

/// What erasing the person now would do (nothing is changed); audited. `None` when nobody has
/// this subject id.
pub(crate) async fn preview_erasure(
    services: &Services,
    actor: &Actor,
    subject_id: SubjectId,
) -> Result<Option<ErasurePreview>, Failed<SubjectError>> {
    let (vault, policy) = (services.vault.clone(), services.policy.clone());
    let Some((preview, pseudonym)) = services
        .db
        .run(move |conn| erasure_preview(conn, &vault, &policy, &subject_id))
        .await?
    else {
        return Ok(None);
    };
    let entry = Entry::new(actor, ACTION_ERASURE_PREVIEW).pseudonym(Some(pseudonym));
    audit_read(services, vec![entry]).await?;
    Ok(Some(preview))
}

/// Lifts the suppression an erasure left on a subject id (audited in its transaction);
/// `false` when it was not suppressed.
pub(crate) async fn lift_suppression(
    services: &Services,
    actor: &Actor,
    subject_id: SubjectId,
) -> Result<bool, SubjectError> {
    let (vault, policy, actor) = (
        services.vault.clone(),
        services.policy.clone(),
        actor.clone(),
    );
    services
        .db
        .run_write(move |conn| {
            subjects::lift_suppression(conn, &vault, &policy, &subject_id, &actor)
        })
        .await
}

/// The subject ids among `ids` whose ingestion is suppressed (checked before queuing writes,
/// so that one suppressed id does not fail a whole coalesced group).
pub(crate) async fn suppressed(
    services: &Services,
    ids: Vec<SubjectId>,
) -> Result<Vec<SubjectId>, SubjectError> {
    if ids.is_empty() {
        return Ok(ids);
    }
    let vault = services.vault.clone();
    services
        .db
        .run(move |conn| {
            let refs: Vec<&SubjectId> = ids.iter().collect();
            subjects::suppressed_among(conn, &vault, &refs)
                .map(|found| found.into_iter().cloned().collect::<Vec<_>>())
        })
        .await
}
