//! Data-subject requests as the API offers them: who may see which, and each step as one call
//! that owns its transactions, its audit entries (reads included) and what follows a commit
//! (an executed erasure clears the key's old copies).

use chrono::NaiveDateTime;

use super::Services;
use crate::audit::{Actor, Entry};
use crate::auth::Principal;
use crate::page::Page;
use crate::policy::{Action, Policy};
use crate::requests::{
    create, export_target, extend, finish_execution, get, kept_receipt, list, masked_changes,
    reject, start_execution, verify, Draft, Executed, Identity, Request, RequestError,
    ACTION_EXECUTE, ACTION_LIST, ACTION_READ, ACTION_RECEIPT,
};
use crate::store::requests::RequestFilter;
use crate::subjects::SubjectId;

/// The `status` filter that means received, verified or in progress.
pub(crate) const OPEN_STATUSES: &str = crate::store::requests::OPEN_STATUSES;

/// What a caller may see of requests: whether identifiers show in full (a role that may export
/// the person's data), and whether only the requests its own key filed (`own_requests_only`).
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    /// Whether identifiers and changes show in full; else masked.
    pub(crate) reveals: bool,
    only_filed_by: Option<String>,
}

impl Viewer {
    /// What `principal` may see under `policy`.
    pub(crate) fn of(policy: &Policy, principal: &Principal) -> Viewer {
        let role = policy.role(principal.role.as_str());
        Viewer {
            reveals: policy
                .authorize_action(principal.role.as_str(), Action::SubjectsExport)
                .is_ok(),
            only_filed_by: role
                .filter(|role| role.own_requests_only)
                .map(|_| principal.key_id.as_str().to_owned()),
        }
    }

    fn may_see(&self, request: &Request) -> bool {
        self.only_filed_by
            .as_ref()
            .is_none_or(|key_id| request.created_by.as_ref() == Some(key_id))
    }

    /// The person as the viewer may see them: in full, or masked.
    pub(crate) fn identity(&self, identity: &Identity) -> serde_json::Value {
        if self.reveals {
            identity.revealed()
        } else {
            identity.masked()
        }
    }

    /// The changes as the viewer may see them: in full, or masked.
    pub(crate) fn changes(&self, changes: &serde_json::Value) -> serde_json::Value {
        if self.reveals {
            changes.clone()
        } else {
            masked_changes(changes)
        }
    }
}

/// Which requests to list.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListFilter {
    /// Only this status, or [`OPEN_STATUSES`].
    pub(crate) status: Option<String>,
    /// Only this type.
    pub(crate) kind: Option<String>,
    /// Only open requests past their deadline (`true`), or all others (`false`).
    pub(crate) overdue: Option<bool>,
}

fn parse_id(raw: &str) -> Result<String, RequestError> {
    uuid::Uuid::parse_str(raw)
        .map(|id| id.to_string())
        .map_err(|_| RequestError::NotFound)
}

/// The request `raw_id` with the pseudonym to audit under, if the viewer may see it; not found
/// alike for a request that does not exist and one the viewer may not see.
async fn visible(
    services: &Services,
    viewer: &Viewer,
    raw_id: &str,
) -> Result<(Request, Option<String>), RequestError> {
    let id = parse_id(raw_id)?;
    let vault = services.vault.clone();
    let (found, pseudonym) = services.db.run(move |conn| get(conn, &vault, &id)).await?;
    if viewer.may_see(&found) {
        Ok((found, pseudonym))
    } else {
        Err(RequestError::NotFound)
    }
}

/// Commits a read's audit entry; the read answers only once it is durable.
async fn audited(services: &Services, entry: Entry) -> Result<(), RequestError> {
    services
        .read_audit
        .record(vec![entry])
        .await
        .map_err(|_| RequestError::Unrecorded)
}

/// Files a request (audited in its transaction); its deadline runs from its receipt.
pub(crate) async fn create_request(
    services: &Services,
    actor: &Actor,
    draft: Draft,
) -> Result<Request, RequestError> {
    let (vault, policy, actor) = (
        services.vault.clone(),
        services.policy.clone(),
        actor.clone(),
    );
    services
        .db
        .run_write(move |conn| create(conn, &vault, &policy, &draft, &actor))
        .await
}

/// A page of the queue the viewer may see, soonest deadline first, after `after` (the last
/// deadline and id of the previous page); audited with the people of the requests listed.
pub(crate) async fn list_requests(
    services: &Services,
    actor: &Actor,
    viewer: &Viewer,
    wanted: ListFilter,
    limit: i64,
    after: Option<(NaiveDateTime, String)>,
) -> Result<Page<Request>, RequestError> {
    let filter = RequestFilter {
        status: wanted.status,
        kind: wanted.kind,
        overdue: wanted.overdue,
        filed_by: viewer.only_filed_by.clone(),
    };
    let (vault, now) = (services.vault.clone(), services.clock.now_naive());
    let found = services
        .db
        .run(move |conn| list(conn, &vault, &filter, after, limit + 1, now))
        .await?;
    let page = Page::from_rows(found, limit, |(request, _)| cursor_position(request));
    let mut entry = Entry::new(actor, ACTION_LIST).records(page.items.len());
    for (_, pseudonym) in &page.items {
        if let Some(pseudonym) = pseudonym {
            entry = entry.pseudonym(Some(pseudonym.clone()));
        }
    }
    audited(services, entry).await?;
    Ok(page.map(|(request, _)| request))
}

/// The position a page's cursor names: the request's deadline (microseconds) and id.
pub(crate) fn cursor_position(request: &Request) -> String {
    format!(
        "{}|{}",
        request.due_at.and_utc().timestamp_micros(),
        request.id
    )
}

/// One request, if the viewer may see it; audited.
pub(crate) async fn show_request(
    services: &Services,
    actor: &Actor,
    viewer: &Viewer,
    raw_id: &str,
) -> Result<Request, RequestError> {
    let (found, pseudonym) = visible(services, viewer, raw_id).await?;
    let entry = Entry::new(actor, ACTION_READ)
        .target(found.id.clone())
        .pseudonym(pseudonym)
        .records(1);
    audited(services, entry).await?;
    Ok(found)
}

/// A lifecycle step that is not execution.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// The requester's identity was checked (`received` → `verified`).
    Verify,
    /// The deadline is extended once, for this reason.
    Extend(String),
    /// The request is rejected, for this reason.
    Reject(String),
}

/// Takes a lifecycle step on a request the viewer may see (audited in its transaction).
pub(crate) async fn take_step(
    services: &Services,
    actor: &Actor,
    viewer: &Viewer,
    raw_id: &str,
    step: Step,
) -> Result<Request, RequestError> {
    let (found, _) = visible(services, viewer, raw_id).await?;
    let (vault, policy, actor) = (
        services.vault.clone(),
        services.policy.clone(),
        actor.clone(),
    );
    services
        .db
        .run_write(move |conn| match &step {
            Step::Verify => verify(conn, &vault, &policy, &found.id, &actor),
            Step::Extend(reason) => extend(conn, &vault, &policy, &found.id, reason, &actor),
            Step::Reject(reason) => reject(conn, &vault, &policy, &found.id, reason, &actor),
        })
        .await
}

/// Executes a verified request the viewer may see. The role must hold the action of doing it
/// directly (a refusal is audited with the person's pseudonym). Two transactions, so that
/// `in_progress` stays visible if the action fails; an executed erasure then clears the key's
/// old copies.
pub(crate) async fn execute_request(
    services: &Services,
    actor: &Actor,
    role: &str,
    viewer: &Viewer,
    raw_id: &str,
) -> Result<Executed, RequestError> {
    let (found, pseudonym) = visible(services, viewer, raw_id).await?;
    let needed = found.kind.execution_action();
    if let Err(denial) = services.policy.authorize_action(role, needed) {
        let entry = Entry::new(actor, ACTION_EXECUTE)
            .target(found.id.clone())
            .pseudonym(pseudonym)
            .denied(denial.code());
        audited(services, entry).await?;
        return Err(RequestError::NotPermitted {
            code: denial.code(),
            needed: needed.as_str(),
            kind: found.kind.as_str(),
        });
    }
    let (vault, policy, id, started_actor) = (
        services.vault.clone(),
        services.policy.clone(),
        found.id.clone(),
        actor.clone(),
    );
    services
        .db
        .run_write(move |conn| start_execution(conn, &vault, &policy, &id, &started_actor))
        .await?;
    let (vault, policy, receipts, id, actor) = (
        services.vault.clone(),
        services.policy.clone(),
        services.receipts.clone(),
        found.id.clone(),
        actor.clone(),
    );
    let executed = services
        .db
        .run_write(move |conn| finish_execution(conn, &vault, &policy, &receipts, &id, &actor))
        .await?;
    if !executed.erased_keys.is_empty() {
        let erased = executed.erased_keys.clone();
        crate::subjects::after_erasure(&services.db, &services.vault, erased).await;
    }
    Ok(executed)
}

/// An executed erasure request's kept receipt and until when it is kept, if the viewer may see
/// the request and it keeps one; audited.
pub(crate) async fn kept_receipt_of(
    services: &Services,
    actor: &Actor,
    viewer: &Viewer,
    raw_id: &str,
) -> Result<Option<(String, NaiveDateTime)>, RequestError> {
    let (found, pseudonym) = visible(services, viewer, raw_id).await?;
    let (vault, id) = (services.vault.clone(), found.id.clone());
    let kept = services
        .db
        .run(move |conn| kept_receipt(conn, &vault, &id))
        .await?;
    if kept.is_some() {
        let entry = Entry::new(actor, ACTION_RECEIPT)
            .target(found.id.clone())
            .pseudonym(pseudonym)
            .records(1);
        audited(services, entry).await?;
    }
    Ok(kept)
}

/// The request (a completed access or portability request the viewer may see) and the person
/// it found, for its export; the export audits itself.
pub(crate) async fn export_target_of(
    services: &Services,
    viewer: &Viewer,
    raw_id: &str,
) -> Result<(Request, Option<SubjectId>), RequestError> {
    let id = visible(services, viewer, raw_id).await?.0.id;
    let vault = services.vault.clone();
    services
        .db
        .run(move |conn| export_target(conn, &vault, &id))
        .await
}
