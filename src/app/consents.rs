//! Consent statements, objections and restrictions as the API offers them. Rule 1 for the
//! purpose is decided here, and a refusal is audited with the person's pseudonym when they
//! exist (the answer is the same either way); reads are audited before they answer.

use super::{audit_read, record_refusal, Failed, Services};
use crate::audit::{Actor, Entry};
use crate::auth::Principal;
use crate::consent::{
    self, ConsentDraft, ConsentJob, ConsentState, Evidence, Receipted, ACTION_LIFT_OBJECTION,
    ACTION_OBJECT, ACTION_WRITE, CONSENT_CATEGORY,
};
use crate::policy::{Action, PurposeId};
use crate::rejection::Rejection;
use crate::subjects::{SubjectError, SubjectId};

/// Audits a refusal about the person with this subject id and returns it.
async fn refuse(
    services: &Services,
    entry: Entry,
    subject_id: &SubjectId,
    refusal: Rejection,
) -> Failed<SubjectError> {
    let entry = entry.denied(refusal.code);
    match record_refusal(services, entry, Some(subject_id.as_str())).await {
        Ok(()) => Failed::Refused(refusal),
        Err(failed) => failed,
    }
}

/// Rule 1 for a consent or objection write: the role must hold `consents.write` for the
/// purpose (or an ancestor of it). A refusal is audited as `action` with the purpose, and
/// answered 403 `purpose_not_permitted`.
async fn permit_purpose(
    services: &Services,
    actor: &Actor,
    role: &str,
    action: &'static str,
    purpose: &PurposeId,
    subject_id: &SubjectId,
) -> Result<(), Failed<SubjectError>> {
    let policy = &services.policy;
    let Err(denial) = policy.authorize_purpose(role, Action::ConsentsWrite, purpose) else {
        return Ok(());
    };
    let entry = Entry::new(actor, action).purpose(policy, purpose);
    let refusal = Rejection::forbidden(
        denial.code(),
        format!("role `{role}` may not record statements for purpose `{purpose}`"),
    );
    Err(refuse(services, entry, subject_id, refusal).await)
}

/// Records a consent statement (after a GPC signal, when `gpc`), audited in the group's
/// transaction, and signs its receipt.
pub(crate) async fn record(
    services: &Services,
    principal: &Principal,
    actor: &Actor,
    subject_id: SubjectId,
    draft: ConsentDraft,
    gpc: Option<Evidence>,
) -> Result<Receipted, Failed<SubjectError>> {
    permit_purpose(
        services,
        actor,
        principal.role.as_str(),
        ACTION_WRITE,
        draft.purpose(),
        &subject_id,
    )
    .await?;
    // A suppressed subject id is refused where the statement is recorded (`record_all`).
    let job = ConsentJob {
        subject_id,
        draft: Some(draft),
        gpc,
        recorded_by: principal.key_id.clone(),
        actor: actor.clone(),
    };
    Ok(services.consent_writes.record(job).await?)
}

/// Records the statements a call's consent strings stand for (TCF, GPP), all in one
/// transaction with the GPC signal they or the request carry applied first, and signs each
/// statement's receipt. The role must hold `consents.write` for every purpose concerned: one it
/// may not act for refuses the whole call (audited), so a string is never half recorded.
pub(crate) async fn record_strings(
    services: &Services,
    principal: &Principal,
    actor: &Actor,
    subject_id: SubjectId,
    drafts: Vec<ConsentDraft>,
    gpc: Option<Evidence>,
) -> Result<Vec<Receipted>, Failed<SubjectError>> {
    let role = principal.role.as_str();
    for draft in &drafts {
        permit_purpose(
            services,
            actor,
            role,
            ACTION_WRITE,
            draft.purpose(),
            &subject_id,
        )
        .await?;
    }
    let job = |draft: Option<ConsentDraft>, gpc: Option<Evidence>| ConsentJob {
        subject_id: subject_id.clone(),
        draft,
        gpc,
        recorded_by: principal.key_id.clone(),
        actor: actor.clone(),
    };
    // The signal goes with the first job: applied once, before the statements.
    let mut gpc = gpc;
    let mut jobs: Vec<ConsentJob> = drafts
        .into_iter()
        .map(|draft| job(Some(draft), gpc.take()))
        .collect();
    if jobs.is_empty() {
        if gpc.is_none() {
            return Ok(Vec::new());
        }
        jobs.push(job(None, gpc));
    }
    Ok(services.consent_writes.record_call(jobs).await?)
}

/// What a caller is shown of a person's consent: everything (a role that may export the
/// person's data), or the current statements on its own purposes only.
#[derive(Debug)]
pub(crate) struct ConsentView {
    /// Whether the history and evidence are included.
    pub(crate) full: bool,
    /// The state, limited to what the caller may see.
    pub(crate) state: ConsentState,
}

/// The person's consent state as the role may see it; audited. `None` when nobody has this
/// subject id.
pub(crate) async fn show(
    services: &Services,
    actor: &Actor,
    role: &str,
    subject_id: SubjectId,
) -> Result<Option<ConsentView>, Failed<SubjectError>> {
    let policy = &services.policy;
    let full = policy
        .authorize_action(role, Action::SubjectsExport)
        .is_ok();
    let only = (!full).then(|| {
        policy
            .role(role)
            .map(|role| role.purposes.clone())
            .unwrap_or_default()
    });
    let (vault, purposes) = (services.vault.clone(), only.clone());
    let Some(state) = services
        .db
        .run(move |conn| consent::read_state(conn, &vault, &subject_id, purposes.as_deref()))
        .await?
    else {
        return Ok(None);
    };
    let mut entry = Entry::new(actor, consent::ACTION_READ)
        .pseudonym(Some(state.pseudonym.clone()))
        .category(CONSENT_CATEGORY)
        .records(if full {
            state.history.len()
        } else {
            state.current.len()
        });
    for purpose in only.iter().flatten() {
        entry.add_purpose(policy, purpose);
    }
    audit_read(services, vec![entry]).await?;
    Ok(Some(ConsentView { full, state }))
}

/// Records an objection (Art. 21) to a purpose, or lifts one (audited in its transaction);
/// whether anything changed.
pub(crate) async fn object(
    services: &Services,
    actor: &Actor,
    role: &str,
    subject_id: SubjectId,
    purpose: PurposeId,
    lift: bool,
) -> Result<bool, Failed<SubjectError>> {
    let action = if lift {
        ACTION_LIFT_OBJECTION
    } else {
        ACTION_OBJECT
    };
    permit_purpose(services, actor, role, action, &purpose, &subject_id).await?;
    let (vault, policy, actor) = (
        services.vault.clone(),
        services.policy.clone(),
        actor.clone(),
    );
    Ok(services
        .db
        .run_write(move |conn| {
            consent::object(conn, &vault, &policy, &subject_id, &purpose, lift, &actor)
        })
        .await?)
}

/// Restricts processing of a person's data (Art. 18), or lifts the restriction (audited in
/// its transaction); whether it changed, or `None` when nobody has this subject id. A role
/// that acts only on its own requests may not.
pub(crate) async fn set_restriction(
    services: &Services,
    actor: &Actor,
    role: &str,
    subject_id: SubjectId,
    lift: bool,
) -> Result<Option<bool>, Failed<SubjectError>> {
    if services
        .policy
        .role(role)
        .is_some_and(|role| role.own_requests_only)
    {
        let entry = Entry::new(actor, Action::RequestsManage.as_str());
        let refusal = Rejection::forbidden(
            "own_requests_only",
            format!(
                "role `{role}` acts only on the requests its keys filed: it may not restrict anyone directly"
            ),
        );
        return Err(refuse(services, entry, &subject_id, refusal).await);
    }
    let (vault, policy, actor) = (
        services.vault.clone(),
        services.policy.clone(),
        actor.clone(),
    );
    Ok(services
        .db
        .run_write(move |conn| consent::restrict(conn, &vault, &policy, &subject_id, lift, &actor))
        .await?)
}
