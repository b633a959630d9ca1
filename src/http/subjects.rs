//! `PUT /v1/subjects/{subject_id}` (identifiers and traits) and `POST /v1/lookup/subjects`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::audit_trail;
use super::{ApiError, AppState};
use crate::audit::{Actor, Entry};
use crate::interactions::subject_not_found;
use crate::rejection::Rejection;
use crate::store::erasure::ErasedCounts;
use crate::subjects::holds::Held;
use crate::subjects::{
    self, find_by_email, upsert, Email, ErasurePreview, SubjectChanges, SubjectId,
    ACTION_ERASURE_PREVIEW, ACTION_LOOKUP, IDENTIFIERS_CATEGORY,
};

/// Identifiers and traits to set; `null` removes one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectRequest {
    /// `email` and/or `phone`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub identifiers: Map<String, Value>,
    /// Declared fields only; strings or numbers.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub traits: Map<String, Value>,
}

/// The upsert's result.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SubjectResponse {
    /// The app's id, as sent.
    pub subject_id: String,
    /// Whether this request created the subject.
    pub created: bool,
}

/// Creates or updates a subject's identifiers and traits.
#[utoipa::path(put, operation_id = "subjects_put", path = "/v1/subjects/{subject_id}", tag = "subjects", security(("bearer" = [])),
    params(("subject_id" = String, Path, description = "The app's id for the person")),
    request_body = SubjectRequest,
    responses(
        (status = 201, description = "Created", body = SubjectResponse),
        (status = 200, description = "Updated", body = SubjectResponse),
        (status = 422, description = "Undeclared field, bad identifier or value; nothing stored",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn put(
    state: web::Data<AppState>,
    actor: Actor,
    path: web::Path<String>,
    body: web::Json<SubjectRequest>,
) -> Result<HttpResponse, ApiError> {
    let raw_id = path.into_inner();
    let subject_id = SubjectId::parse(&raw_id)
        .map_err(|message| Rejection::invalid("invalid_subject_id", message))?;
    let body = body.into_inner();
    let changes = SubjectChanges::parse(&state.services.policy, &body.identifiers, &body.traits)?;
    let (vault, policy) = (state.services.vault.clone(), state.services.policy.clone());
    let outcome = state
        .services
        .db
        .run_write(move |conn| upsert(conn, &vault, &policy, &subject_id, &changes, &actor))
        .await?;
    let response = SubjectResponse {
        subject_id: raw_id,
        created: outcome.created,
    };
    Ok(if outcome.created {
        HttpResponse::Created().json(response)
    } else {
        HttpResponse::Ok().json(response)
    })
}

/// A lookup by identifier.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupRequest {
    /// The e-mail address to look for (sent in the body so it never appears in a URL or log).
    #[schema(pattern = "^[^@\\s]+@[^@\\s]+$", max_length = 254)]
    pub email: String,
}

/// One subject found.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FoundSubject {
    /// The app's id for the person.
    pub subject_id: String,
}

/// Subjects found.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LookupResponse {
    /// Every subject with this identifier, sorted by subject_id.
    pub subjects: Vec<FoundSubject>,
}

/// Finds subjects by e-mail address, through its blind index.
#[utoipa::path(post, operation_id = "subjects_lookup", path = "/v1/lookup/subjects", tag = "subjects", security(("bearer" = [])),
    request_body = LookupRequest,
    responses(
        (status = 200, description = "The subjects with this address", body = LookupResponse),
        (status = 404, description = "No subject has this address", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub async fn lookup(
    state: web::Data<AppState>,
    actor: Actor,
    request: HttpRequest,
    body: web::Json<LookupRequest>,
) -> Result<HttpResponse, ApiError> {
    let email = Email::parse(&body.into_inner().email)
        .map_err(|message| Rejection::invalid("invalid_identifier", message))?;
    let vault = state.services.vault.clone();
    let found = state
        .services
        .db
        .run(move |conn| find_by_email(conn, &vault, &email))
        .await?;
    if found.is_empty() {
        audit_trail::record(&request, Entry::new(&actor, ACTION_LOOKUP));
        return Err(subject_not_found().into());
    }
    for (_, pseudonym) in &found {
        let entry = Entry::new(&actor, ACTION_LOOKUP)
            .pseudonym(Some(pseudonym.clone()))
            .category(IDENTIFIERS_CATEGORY)
            .records(1);
        audit_trail::record(&request, entry);
    }
    Ok(HttpResponse::Ok().json(LookupResponse {
        subjects: found
            .into_iter()
            .map(|(subject_id, _)| FoundSubject { subject_id })
            .collect(),
    }))
}

/// Options of an erasure.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EraseQuery {
    /// `true`: also refuse any future data for this subject_id (kept as a keyed hash) until a
    /// compliance officer lifts it with `DELETE /v1/subjects/{subject_id}/suppression`.
    pub suppress: Option<bool>,
}

/// The answer to an erasure.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErasureResponse {
    /// Always `true`.
    pub erased: bool,
    /// Whether ingestion for this subject_id is blocked until lifted.
    pub suppressed: bool,
    /// The erasure's id (also the audit entry's `target`).
    pub id: String,
    /// When.
    pub erased_at: chrono::DateTime<chrono::Utc>,
    /// What was deleted, by kind.
    pub counts: ErasedCounts,
    /// What legal holds keep (GDPR Art. 17(3)(b), (e)), per purpose, and until when: held
    /// interactions are re-encrypted under the hold's own key, restricted to that purpose,
    /// readable only at `GET /v1/erasures/{id}/held`, and deleted by retention when the hold
    /// ends. Empty when nothing is held.
    pub held: Vec<Held>,
    /// A compact JWS (EdDSA) over the same, verifiable with `GET /v1/consents/receipt-key`.
    pub receipt: String,
    /// From this moment no copy made before the erasure (backups, WAL archives, replicas'
    /// old files) can be read any more, even with the master key: the key epoch that wrapped
    /// the person's data key is destroyed then. The live database holds nothing readable as
    /// soon as this answer arrives.
    pub backups_unreadable_by: chrono::DateTime<chrono::Utc>,
    /// Whether the live database files were cleared of the key's old copies before this answer
    /// (SQLite: the WAL truncated; PostgreSQL: the key's partition rewritten). `false` only when
    /// a reader in another process kept an older snapshot open for the whole wait (30 s): the
    /// erasure stands, and the removal is tried again in the background.
    pub old_copies_removed: bool,
}

/// Erases a person (Art. 17): the data key is destroyed first (crypto-shredding), then every
/// row about them; a tombstone without identifiers and the audit entries remain. Afterwards the
/// subject_id is unknown everywhere (404).
#[utoipa::path(delete, operation_id = "subjects_erase", path = "/v1/subjects/{subject_id}", tag = "subjects", security(("bearer" = [])),
    params(("subject_id" = String, Path, description = "The app's id for the person"), EraseQuery),
    responses(
        (status = 200, description = "Erased, with a signed receipt", body = ErasureResponse),
        (status = 404, description = "No such subject (or already erased)",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn erase(
    state: web::Data<AppState>,
    actor: Actor,
    path: web::Path<String>,
    query: web::Query<EraseQuery>,
) -> Result<HttpResponse, ApiError> {
    let subject_id = SubjectId::parse(&path.into_inner()).map_err(|_| subject_not_found())?;
    let suppress = query.suppress.unwrap_or(false);
    let for_work = state.clone();
    let erasure = state
        .services
        .db
        .run_write(move |conn| {
            subjects::erase(
                conn,
                &for_work.services.vault,
                &for_work.services.policy,
                &for_work.services.receipts,
                &subject_id,
                suppress,
                None,
                &actor,
            )
        })
        .await?
        .ok_or_else(subject_not_found)?;
    let old_copies_removed = subjects::after_erasure(
        &state.services.db,
        &state.services.vault,
        erasure.erased_key,
    )
    .await;
    Ok(HttpResponse::Ok().json(ErasureResponse {
        erased: true,
        suppressed: suppress,
        id: erasure.id,
        erased_at: erasure.erased_at.and_utc(),
        counts: erasure.counts,
        held: erasure.held,
        receipt: erasure.receipt,
        backups_unreadable_by: erasure.backups_unreadable_by.and_utc(),
        old_copies_removed,
    }))
}

/// What the person's screen may show.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct GlanceQuery {
    /// `identifiers`: include the values of the person's e-mail address and phone number
    /// (audited as `subjects.reveal`).
    pub reveal: Option<String>,
}

/// The person at a glance: which identifiers they have (values only with
/// `?reveal=identifiers`), their traits, the legal basis in effect now for every purpose and
/// why, and the newest 100 interactions with the purposes each is still held for and until
/// when. Audited as `subjects.view` (and `subjects.reveal` when identifiers are revealed).
#[utoipa::path(get, operation_id = "subjects_glance", path = "/v1/subjects/{subject_id}", tag = "subjects", security(("bearer" = [])),
    params(("subject_id" = String, Path, description = "The app's id for the person"), GlanceQuery),
    responses(
        (status = 200, description = "The person at a glance", body = crate::export::glance::Glance),
        (status = 400, description = "`reveal` is not `identifiers`",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such subject",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn glance(
    state: web::Data<AppState>,
    actor: Actor,
    request: HttpRequest,
    path: web::Path<String>,
    query: web::Query<GlanceQuery>,
) -> Result<HttpResponse, ApiError> {
    let reveal = match query.reveal.as_deref() {
        None => false,
        Some("identifiers") => true,
        Some(_) => {
            return Err(Rejection::bad_request(
                "invalid_query",
                "`reveal` may only be `identifiers`",
            )
            .into())
        }
    };
    let subject_id = SubjectId::parse(&path.into_inner()).map_err(|_| subject_not_found())?;
    let for_work = state.clone();
    let glance = state
        .services
        .db
        .run(move |conn| {
            crate::export::glance::glance(
                conn,
                &for_work.services.vault,
                &for_work.services.policy,
                &subject_id,
                reveal,
            )
        })
        .await?
        .ok_or_else(subject_not_found)?;
    let mut view = Entry::new(&actor, ACTION_VIEW)
        .pseudonym(Some(glance.pseudonym.clone()))
        .records(1 + glance.timeline.len());
    for category in &glance.categories {
        view.add_category(category);
    }
    audit_trail::record(&request, view);
    if reveal && !glance.identifiers.is_empty() {
        audit_trail::record(
            &request,
            Entry::new(&actor, ACTION_REVEAL)
                .pseudonym(Some(glance.pseudonym.clone()))
                .records(glance.identifiers.len())
                .category(IDENTIFIERS_CATEGORY),
        );
    }
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(glance))
}

/// The audit action of looking at a person at a glance.
pub const ACTION_VIEW: &str = "subjects.view";
/// The audit action of revealing a person's identifiers on their screen.
pub const ACTION_REVEAL: &str = "subjects.reveal";

/// What erasing the person now would do, counted as the officer sees the person (identifiers
/// and traits, not index rows): what is erased, what legal holds keep and until when, and the
/// open requests the erasure completes. Nothing is changed; audited as
/// `subjects.erasure_preview`.
#[utoipa::path(get, operation_id = "subjects_erasure_preview", path = "/v1/subjects/{subject_id}/erasure-preview", tag = "subjects",
    security(("bearer" = [])),
    params(("subject_id" = String, Path, description = "The app's id for the person")),
    responses(
        (status = 200, description = "What an erasure would do", body = ErasurePreview),
        (status = 404, description = "No such subject (or already erased)",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn erasure_preview(
    state: web::Data<AppState>,
    actor: Actor,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let subject_id = SubjectId::parse(&path.into_inner()).map_err(|_| subject_not_found())?;
    let for_work = state.clone();
    let (preview, pseudonym) = state
        .services
        .db
        .run(move |conn| {
            subjects::erasure_preview(
                conn,
                &for_work.services.vault,
                &for_work.services.policy,
                &subject_id,
            )
        })
        .await?
        .ok_or_else(subject_not_found)?;
    audit_trail::record(
        &request,
        Entry::new(&actor, ACTION_ERASURE_PREVIEW).pseudonym(Some(pseudonym)),
    );
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(preview))
}

/// Whether a suppression was lifted.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LiftResponse {
    /// Always `true`.
    pub lifted: bool,
}

/// Lifts the suppression an erasure with `?suppress=true` left on a subject_id: data about it
/// is accepted again (as a new person).
#[utoipa::path(delete, operation_id = "subjects_lift_suppression", path = "/v1/subjects/{subject_id}/suppression", tag = "subjects",
    security(("bearer" = [])),
    params(("subject_id" = String, Path, description = "The app's id for the person")),
    responses(
        (status = 200, description = "Lifted", body = LiftResponse),
        (status = 404, description = "This subject_id is not suppressed",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn lift_suppression(
    state: web::Data<AppState>,
    actor: Actor,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let not_suppressed =
        || ApiError::not_found("suppression_not_found", "this subject_id is not suppressed");
    let subject_id = SubjectId::parse(&path.into_inner()).map_err(|_| not_suppressed())?;
    let (vault, policy) = (state.services.vault.clone(), state.services.policy.clone());
    let lifted = state
        .services
        .db
        .run_write(move |conn| {
            subjects::lift_suppression(conn, &vault, &policy, &subject_id, &actor)
        })
        .await?;
    if !lifted {
        return Err(not_suppressed());
    }
    Ok(HttpResponse::Ok().json(LiftResponse { lifted: true }))
}

/// The subject ids among `ids` whose ingestion is suppressed (checked before queuing writes,
/// so that one suppressed id does not fail a whole coalesced group).
pub async fn suppressed(state: &AppState, ids: Vec<SubjectId>) -> Result<Vec<SubjectId>, ApiError> {
    if ids.is_empty() {
        return Ok(ids);
    }
    let vault = state.services.vault.clone();
    Ok(state
        .services
        .db
        .run(move |conn| {
            let refs: Vec<&SubjectId> = ids.iter().collect();
            subjects::suppressed_among(conn, &vault, &refs)
                .map(|found| found.into_iter().cloned().collect::<Vec<_>>())
        })
        .await?)
}
