//! `PUT /v1/subjects/{subject_id}` (identifiers and traits) and `POST /v1/lookup/subjects`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ApiError, AppState};
use crate::app::subjects::{self as people, Erased};
use crate::audit::Actor;
use crate::interactions::subject_not_found;
use crate::rejection::Rejection;
use crate::subjects::holds::Held;
use crate::subjects::{Email, ErasedCounts, ErasurePreview, SubjectChanges, SubjectId};

/// Identifiers and traits to set; `null` removes one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubjectRequest {
    /// `email` and/or `phone`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub(crate) identifiers: Map<String, Value>,
    /// Declared fields only; strings or numbers.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub(crate) traits: Map<String, Value>,
}

/// The upsert's result.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SubjectResponse {
    /// The app's id, as sent.
    pub(crate) subject_id: String,
    /// Whether this request created the subject.
    pub(crate) created: bool,
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
pub(crate) async fn put(
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
    let outcome = people::put(&state.services, &actor, subject_id, changes).await?;
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
pub(crate) struct LookupRequest {
    /// The e-mail address to look for (sent in the body so it never appears in a URL or log).
    #[schema(pattern = "^[^@\\s]+@[^@\\s]+$", max_length = 254)]
    pub(crate) email: String,
}

/// One subject found: by the app's user id, or, for a person known only by the anonymous id
/// a tracking SDK gave them, by that.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct FoundSubject {
    /// The app's id for the person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) subject_id: Option<String>,
    /// The anonymous id of a person not (yet) known by a user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) anonymous_id: Option<String>,
}

impl From<SubjectId> for FoundSubject {
    fn from(id: SubjectId) -> Self {
        let shown = Some(id.as_str().to_owned());
        if id.is_anonymous() {
            FoundSubject {
                subject_id: None,
                anonymous_id: shown,
            }
        } else {
            FoundSubject {
                subject_id: shown,
                anonymous_id: None,
            }
        }
    }
}

/// Subjects found.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LookupResponse {
    /// Every subject with this identifier, sorted by subject_id.
    pub(crate) subjects: Vec<FoundSubject>,
}

/// Finds subjects by e-mail address, through its blind index.
#[utoipa::path(post, operation_id = "subjects_lookup", path = "/v1/lookup/subjects", tag = "subjects", security(("bearer" = [])),
    request_body = LookupRequest,
    responses(
        (status = 200, description = "The subjects with this address", body = LookupResponse),
        (status = 404, description = "No subject has this address", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn lookup(
    state: web::Data<AppState>,
    actor: Actor,
    body: web::Json<LookupRequest>,
) -> Result<HttpResponse, ApiError> {
    let email = Email::parse(&body.into_inner().email)
        .map_err(|message| Rejection::invalid("invalid_identifier", message))?;
    let found = people::lookup(&state.services, &actor, email).await?;
    if found.is_empty() {
        return Err(subject_not_found().into());
    }
    Ok(HttpResponse::Ok().json(LookupResponse {
        subjects: found.into_iter().map(FoundSubject::from).collect(),
    }))
}

/// Options of an erasure.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct EraseQuery {
    /// `true`: also refuse any future data for this subject_id (kept as a keyed hash) until a
    /// compliance officer lifts it with `DELETE /v1/subjects/{subject_id}/suppression`.
    pub(crate) suppress: Option<bool>,
}

/// The answer to an erasure.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErasureResponse {
    /// Always `true`.
    pub(crate) erased: bool,
    /// Whether ingestion for this subject_id is blocked until lifted.
    pub(crate) suppressed: bool,
    /// The erasure's id (also the audit entry's `target`).
    pub(crate) id: String,
    /// When.
    pub(crate) erased_at: chrono::DateTime<chrono::Utc>,
    /// What was deleted, by kind.
    pub(crate) counts: ErasedCounts,
    /// What legal holds keep (GDPR Art. 17(3)(b), (e)), per purpose, and until when: held
    /// interactions are re-encrypted under the hold's own key, restricted to that purpose,
    /// readable only at `GET /v1/erasures/{id}/held`, and deleted by retention when the hold
    /// ends. Empty when nothing is held.
    pub(crate) held: Vec<Held>,
    /// A compact JWS (EdDSA) over the same, verifiable with `GET /v1/consents/receipt-key`.
    pub(crate) receipt: String,
    /// From this moment no copy made before the erasure (backups, WAL archives, replicas'
    /// old files) can be read any more, even with the master key: the key epoch that wrapped
    /// the person's data key is destroyed then. The live database holds nothing readable as
    /// soon as this answer arrives.
    pub(crate) backups_unreadable_by: chrono::DateTime<chrono::Utc>,
    /// Whether the live database files were cleared of the key's old copies before this answer
    /// (SQLite: the WAL truncated; PostgreSQL: the key's partition rewritten). `false` only when
    /// a reader in another process kept an older snapshot open for the whole wait (30 s): the
    /// erasure stands, and the removal is tried again in the background.
    pub(crate) old_copies_removed: bool,
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
pub(crate) async fn erase(
    state: web::Data<AppState>,
    actor: Actor,
    path: web::Path<String>,
    query: web::Query<EraseQuery>,
) -> Result<HttpResponse, ApiError> {
    let subject_id = SubjectId::parse(&path.into_inner()).map_err(|_| subject_not_found())?;
    let suppress = query.suppress.unwrap_or(false);
    let Erased {
        erasure,
        old_copies_removed,
    } = people::erase(&state.services, &actor, subject_id, suppress)
        .await?
        .ok_or_else(subject_not_found)?;
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
pub(crate) struct GlanceQuery {
    /// `identifiers`: include the values of the person's e-mail address and phone number
    /// (audited as `subjects.reveal`).
    pub(crate) reveal: Option<String>,
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
pub(crate) async fn glance(
    state: web::Data<AppState>,
    actor: Actor,
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
    let glance = people::glance(&state.services, &actor, subject_id, reveal)
        .await?
        .ok_or_else(subject_not_found)?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(glance))
}

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
pub(crate) async fn erasure_preview(
    state: web::Data<AppState>,
    actor: Actor,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let subject_id = SubjectId::parse(&path.into_inner()).map_err(|_| subject_not_found())?;
    let preview = people::preview_erasure(&state.services, &actor, subject_id)
        .await?
        .ok_or_else(subject_not_found)?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(preview))
}

/// Whether a suppression was lifted.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LiftResponse {
    /// Always `true`.
    pub(crate) lifted: bool,
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
pub(crate) async fn lift_suppression(
    state: web::Data<AppState>,
    actor: Actor,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let not_suppressed =
        || ApiError::not_found("suppression_not_found", "this subject_id is not suppressed");
    let subject_id = SubjectId::parse(&path.into_inner()).map_err(|_| not_suppressed())?;
    let lifted = people::lift_suppression(&state.services, &actor, subject_id).await?;
    if !lifted {
        return Err(not_suppressed());
    }
    Ok(HttpResponse::Ok().json(LiftResponse { lifted: true }))
}
