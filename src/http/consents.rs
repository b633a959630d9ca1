//! `POST/GET /v1/subjects/{subject_id}/consents`, `POST /v1/subjects/{subject_id}/objections`,
//! `GET /v1/consents/receipt-key`.

use actix_web::http::header::HeaderMap;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use super::audit_trail;
use super::{ApiError, AppState};
use crate::app::consents::{self, ConsentView};
use crate::audit::Actor;
use crate::auth::Principal;
use crate::consent::{
    gpc_evidence, ConsentDraft, ConsentStringRef, NoticeRef, RawConsent, Receipted, Recorded,
};
use crate::crypto::Jwk;
use crate::interactions::{parse_purpose, subject_not_found};
use crate::rejection::Rejection;
use crate::subjects::SubjectId;

/// Whether the request carries a Global Privacy Control signal (`Sec-GPC: 1`).
pub(crate) fn has_gpc(headers: &HeaderMap) -> bool {
    headers
        .get("sec-gpc")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim() == "1")
}

/// The notice the person saw: a `[[notice]]` the policy declares.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoticeBody {
    /// The notice's id.
    pub(crate) id: String,
    /// Its version.
    pub(crate) version: String,
    /// The language of the text shown; needed when the version is declared in several.
    pub(crate) language: Option<String>,
}

/// Evidence of the statement, stored encrypted.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EvidenceBody {
    /// The person's IP address.
    pub(crate) ip_address: Option<String>,
    /// The person's user agent.
    pub(crate) user_agent: Option<String>,
}

/// A consent statement.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsentRequest {
    /// The app's id for this statement; re-sending it records nothing new. With consent
    /// strings, each statement read from them gets `{id}/{purpose}`.
    pub(crate) id: Option<String>,
    /// A declared, consent-based purpose (a statement covers its descendants); not with
    /// consent strings.
    pub(crate) purpose: Option<String>,
    /// `granted` or `withdrawn`; not with consent strings.
    pub(crate) status: Option<String>,
    /// An IAB TCF v2.2 TC string: read through the policy's `[tcf]` mapping into one
    /// statement per mapped purpose, and kept encrypted as their evidence.
    pub(crate) tcf_string: Option<String>,
    /// An IAB GPP string: its US sections' opt-outs withdraw the purposes of the policy's
    /// `[gpp]` mapping, its GPC field acts as `Sec-GPC: 1`, a tcfeuv2 section reads as a TC
    /// string; kept encrypted as evidence.
    pub(crate) gpp_string: Option<String>,
    /// The notice agreed to (required for grants).
    pub(crate) notice: Option<NoticeBody>,
    /// Where (`web`, `app` …).
    pub(crate) source: String,
    /// How (`checkbox`, `banner` …).
    pub(crate) method: String,
    /// Optional evidence.
    pub(crate) evidence: Option<EvidenceBody>,
}

/// A recorded statement.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ConsentBody {
    /// The app's id (or the internal one when none was given).
    pub(crate) id: String,
    /// The purpose.
    pub(crate) purpose: String,
    /// `granted` or `withdrawn`.
    pub(crate) status: String,
    /// When it was recorded.
    pub(crate) recorded_at: DateTime<Utc>,
    /// Its place in the person's history.
    pub(crate) sequence: i64,
    /// The notice, with the language and SHA-256 of the text shown.
    pub(crate) notice: Option<NoticeRef>,
    /// Where.
    pub(crate) source: String,
    /// How.
    pub(crate) method: String,
    /// For a statement recorded for a person since merged into this one (identity
    /// resolution): that person's audit pseudonym.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) merged_from: Option<String>,
    /// The consent strings it was read from, by SHA-256 (the strings are in its evidence).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) consent_strings: Vec<ConsentStringRef>,
}

/// The answer to a call carrying consent strings: the statements read from them.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ConsentStringsResponse {
    /// One per purpose the strings decide, each with its receipt (empty when they decide
    /// none: nothing was recorded).
    pub(crate) statements: Vec<ConsentResponse>,
    /// Purposes a GPC signal (`Sec-GPC: 1`, or a GPP section's GPC field) opted the person
    /// out of in this request.
    pub(crate) gpc_applied: Vec<String>,
}

/// The answer to a consent call: one statement, or those read from consent strings.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum ConsentAnswer {
    /// A statement's.
    One(Box<ConsentResponse>),
    /// Consent strings'.
    Strings(ConsentStringsResponse),
}

/// The answer to a statement.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ConsentResponse {
    /// The statement.
    #[serde(flatten)]
    pub(crate) consent: ConsentBody,
    /// Whether it had been recorded before.
    pub(crate) duplicate: bool,
    /// Purposes a `Sec-GPC: 1` signal opted the person out of in this request.
    pub(crate) gpc_applied: Vec<String>,
    /// A compact JWS (EdDSA) over the statement, verifiable with `/v1/consents/receipt-key`.
    pub(crate) receipt: String,
}

fn utc(time: NaiveDateTime) -> DateTime<Utc> {
    time.and_utc()
}

fn body_of(recorded: &Recorded) -> ConsentBody {
    ConsentBody {
        id: recorded.id.clone(),
        purpose: recorded.purpose.clone(),
        status: recorded.status.clone(),
        recorded_at: utc(recorded.recorded_at),
        sequence: recorded.sequence,
        notice: recorded.notice.clone(),
        source: recorded.source.clone(),
        method: recorded.method.clone(),
        merged_from: recorded.merged_from.clone(),
        consent_strings: recorded.consent_strings.clone(),
    }
}

/// The answer for one recorded statement; none for a call that recorded only a GPC signal.
/// With `iso27560` (the person's subject id), its receipt is the signed ISO/IEC TS 27560 receipt
/// instead of the statement's claims.
fn response_of(
    state: &AppState,
    receipted: Receipted,
    iso27560: Option<&str>,
) -> Option<ConsentResponse> {
    let Receipted { outcome, receipt } = receipted;
    let recorded = outcome.recorded?;
    let policy = &state.services.policy;
    let iso_receipt = iso27560
        .and_then(|subject_id| {
            crate::standards::iso27560::receipt(policy, subject_id, &recorded).ok()
        })
        .map(|receipt| state.services.receipts.sign(&receipt));
    Some(ConsentResponse {
        consent: body_of(&recorded),
        duplicate: recorded.duplicate,
        gpc_applied: outcome.gpc_applied,
        receipt: iso_receipt.or(receipt)?,
    })
}

fn parse_subject(raw: &str) -> Result<SubjectId, Rejection> {
    SubjectId::parse(raw).map_err(|message| Rejection::invalid("invalid_subject_id", message))
}

/// Records a consent statement (and applies a `Sec-GPC: 1` signal first, if sent).
#[utoipa::path(post, operation_id = "consents_record", path = "/v1/subjects/{subject_id}/consents", tag = "consents",
    security(("bearer" = [])),
    params(("subject_id" = String, Path, description = "The app's id for the person"),
           ("Sec-GPC" = Option<String>, Header, description = "`1`: a Global Privacy Control signal"),
           RecordQuery),
    request_body = ConsentRequest,
    responses(
        (status = 201, description = "Recorded, with a signed receipt (with consent strings: every statement read from them, each with its receipt)", body = ConsentAnswer),
        (status = 200, description = "Recorded earlier under this id (or consent strings that decide no purpose: nothing recorded)", body = ConsentAnswer),
        (status = 403, description = "The role may not record statements for this purpose",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Invalid (an undeclared notice, a notice that does not ask for the purpose, a source or method outside the vocabulary; a malformed, truncated, outdated or stale TC or GPP string); nothing recorded",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn record(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    request: HttpRequest,
    path: web::Path<String>,
    query: web::Query<RecordQuery>,
    body: web::Json<ConsentRequest>,
) -> Result<HttpResponse, ApiError> {
    let subject_id = parse_subject(&path.into_inner())?;
    let shown_subject = subject_id.as_str().to_owned();
    let iso = iso_receipts(&state, &query)?.then_some(shown_subject.as_str());
    let body = body.into_inner();
    let evidence = body.evidence.unwrap_or(EvidenceBody {
        ip_address: None,
        user_agent: None,
    });
    let policy = &state.services.policy;
    // A `Sec-GPC: 1` signal's withdrawals keep the signal and the call's evidence.
    let header_gpc = has_gpc(request.headers()).then(|| {
        gpc_evidence(
            "Sec-GPC: 1",
            evidence.ip_address.as_deref(),
            evidence.user_agent.as_deref(),
            None,
        )
    });
    if body.tcf_string.is_some() || body.gpp_string.is_some() {
        if body.purpose.is_some() || body.status.is_some() {
            return Err(Rejection::invalid(
                "consent_string_with_purpose",
                "a call carrying `tcf_string` or `gpp_string` takes its purposes and statuses from them: leave out `purpose` and `status`",
            )
            .into());
        }
        let signals = crate::standards::signals::read(
            policy,
            body.tcf_string.as_deref(),
            body.gpp_string.as_deref(),
            Utc::now(),
        )?;
        let notice = body
            .notice
            .map(|notice| (notice.id, notice.version, notice.language));
        let mut drafts = Vec::with_capacity(signals.statements.len());
        for (purpose, granted) in &signals.statements {
            let draft = ConsentDraft::parse(
                policy,
                RawConsent {
                    id: body.id.as_ref().map(|id| format!("{id}/{purpose}")),
                    purpose: purpose.to_string(),
                    status: if *granted { "granted" } else { "withdrawn" }.to_owned(),
                    notice: if *granted { notice.clone() } else { None },
                    source: body.source.clone(),
                    method: body.method.clone(),
                    ip_address: evidence.ip_address.clone(),
                    user_agent: evidence.user_agent.clone(),
                },
            )?;
            drafts.push(draft.with_strings(body.tcf_string.as_deref(), body.gpp_string.as_deref()));
        }
        let gpc = header_gpc.or_else(|| {
            signals.gpc.then(|| {
                gpc_evidence(
                    crate::tracking::GPP_GPC_SIGNAL,
                    evidence.ip_address.as_deref(),
                    evidence.user_agent.as_deref(),
                    body.gpp_string.as_deref(),
                )
            })
        });
        let recorded =
            consents::record_strings(&state.services, &principal, &actor, subject_id, drafts, gpc)
                .await;
        let receipted = audit_trail::settle(&request, recorded)?;
        let mut gpc_applied = Vec::new();
        let mut statements = Vec::with_capacity(receipted.len());
        let mut all_duplicates = true;
        for one in receipted {
            gpc_applied.extend(one.outcome.gpc_applied.iter().cloned());
            if let Some(response) = response_of(&state, one, iso) {
                all_duplicates &= response.duplicate;
                statements.push(response);
            }
        }
        let answer = ConsentAnswer::Strings(ConsentStringsResponse {
            statements,
            gpc_applied: gpc_applied.clone(),
        });
        let changed = !all_duplicates || !gpc_applied.is_empty();
        return Ok(if changed {
            HttpResponse::Created().json(answer)
        } else {
            HttpResponse::Ok().json(answer)
        });
    }
    let (Some(purpose), Some(status)) = (body.purpose, body.status) else {
        return Err(Rejection::invalid(
            "invalid_consent",
            "a statement needs `purpose` and `status` (or consent strings: `tcf_string`, `gpp_string`)",
        )
        .into());
    };
    let draft = ConsentDraft::parse(
        policy,
        RawConsent {
            id: body.id,
            purpose,
            status,
            notice: body
                .notice
                .map(|notice| (notice.id, notice.version, notice.language)),
            source: body.source,
            method: body.method,
            ip_address: evidence.ip_address,
            user_agent: evidence.user_agent,
        },
    )?;
    let recorded = consents::record(
        &state.services,
        &principal,
        &actor,
        subject_id,
        draft,
        header_gpc,
    )
    .await;
    let receipted = audit_trail::settle(&request, recorded)?;
    let response = response_of(&state, receipted, iso).ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "a consent statement was recorded without its record"
        ))
    })?;
    Ok(if response.duplicate {
        HttpResponse::Ok().json(ConsentAnswer::One(Box::new(response)))
    } else {
        HttpResponse::Created().json(ConsentAnswer::One(Box::new(response)))
    })
}

/// How a statement's receipt is given: `jws` (the default: the statement as JWT claims) or
/// `iso27560` (the ISO/IEC TS 27560 receipt, JSON-LD with DPV terms, as the JWS payload).
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordQuery {
    /// `jws` or `iso27560`.
    pub(crate) receipt: Option<String>,
}

/// Whether the caller asked for ISO/IEC TS 27560 receipts, refused when the policy cannot
/// write them (no `[controller]`).
fn iso_receipts(state: &AppState, query: &RecordQuery) -> Result<bool, Rejection> {
    match query.receipt.as_deref() {
        None | Some("jws") => Ok(false),
        Some("iso27560") if state.services.policy.standards().controller.is_none() => {
            Err(not_configured())
        }
        Some("iso27560") => Ok(true),
        Some(_) => Err(Rejection::invalid(
            "invalid_query",
            "`receipt` must be `jws` or `iso27560`",
        )),
    }
}

fn not_configured() -> Rejection {
    Rejection::invalid(
        "consent_records_not_configured",
        "ISO/IEC TS 27560 records name the controller: the policy declares no [controller] (docs/standards.md)",
    )
}

/// The current statement on one purpose.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CurrentBody {
    /// The purpose.
    pub(crate) purpose: String,
    /// `granted` or `withdrawn`.
    pub(crate) status: String,
    /// Since when.
    pub(crate) since: DateTime<Utc>,
    /// The statement that set it.
    pub(crate) id: String,
}

/// A statement in the history, with its evidence.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct HistoryBody {
    /// The statement.
    #[serde(flatten)]
    pub(crate) consent: ConsentBody,
    /// Its evidence (`ip_address`, `user_agent`), decrypted.
    #[schema(value_type = Object)]
    pub(crate) evidence: std::collections::BTreeMap<String, String>,
}

/// A standing objection.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ObjectionBody {
    /// The purpose objected to (covers its descendants).
    pub(crate) purpose: String,
    /// Since when.
    pub(crate) since: DateTime<Utc>,
}

/// A person's consent state.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ConsentStateBody {
    /// `full` (the role holds `subjects.export`): every purpose, with the history; `purposes`
    /// (`consents.write` only): what bears on the role's purposes, without history.
    pub(crate) scope: &'static str,
    /// The current statement per purpose.
    pub(crate) current: Vec<CurrentBody>,
    /// Every statement, oldest first, with evidence; only in the `full` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) history: Option<Vec<HistoryBody>>,
    /// Standing objections.
    pub(crate) objections: Vec<ObjectionBody>,
    /// Whether processing is restricted (Art. 18).
    pub(crate) restricted: bool,
}

/// How a person's consent is shown.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShowQuery {
    /// `json` (the default) or `iso27560`: ISO/IEC TS 27560 consent records in JSON-LD with
    /// W3C DPV terms, one per purpose, each statement an event.
    pub(crate) format: Option<String>,
}

/// A person's current consent per purpose; with `subjects.export`, every purpose and the full
/// history with evidence; with `consents.write` only, the current state of what bears on the
/// role's purposes.
#[utoipa::path(get, operation_id = "consents_show", path = "/v1/subjects/{subject_id}/consents", tag = "consents",
    security(("bearer" = [])),
    params(("subject_id" = String, Path, description = "The app's id for the person"), ShowQuery),
    responses(
        (status = 200, description = "Current state (and history); with `format=iso27560`, the person's ISO/IEC TS 27560 consent records as JSON-LD",
            content((ConsentStateBody = "application/json"), (Object = "application/ld+json"))),
        (status = 422, description = "An unknown format, or `iso27560` without a [controller] in the policy",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such subject", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn show(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    path: web::Path<String>,
    query: web::Query<ShowQuery>,
) -> Result<HttpResponse, ApiError> {
    let iso = match query.format.as_deref() {
        None | Some("json") => false,
        Some("iso27560") if state.services.policy.standards().controller.is_none() => {
            return Err(not_configured().into())
        }
        Some("iso27560") => true,
        Some(_) => {
            return Err(Rejection::invalid(
                "invalid_query",
                "`format` must be `json` or `iso27560`",
            )
            .into())
        }
    };
    let subject_id = SubjectId::parse(&path.into_inner()).map_err(|_| subject_not_found())?;
    let shown_subject = subject_id.as_str().to_owned();
    let ConsentView { full, state: found } =
        consents::show(&state.services, &actor, principal.role.as_str(), subject_id)
            .await?
            .ok_or_else(subject_not_found)?;
    if iso {
        // The full view's whole history; a role limited to its purposes gets its current
        // statements only, as in the JSON view.
        let statements: Vec<Recorded> = if full {
            found
                .history
                .iter()
                .map(|(recorded, _)| recorded.clone())
                .collect()
        } else {
            found.current.clone()
        };
        let records = crate::standards::iso27560::records(
            &state.services.policy,
            &shown_subject,
            &statements,
        )
        .map_err(|_| not_configured())?;
        return Ok(HttpResponse::Ok()
            .content_type("application/ld+json")
            .insert_header((
                "Content-Disposition",
                "inline; filename=\"consent-records-iso27560.jsonld\"",
            ))
            .json(records));
    }
    Ok(HttpResponse::Ok().json(ConsentStateBody {
        scope: if full { "full" } else { "purposes" },
        current: found
            .current
            .iter()
            .map(|recorded| CurrentBody {
                purpose: recorded.purpose.clone(),
                status: recorded.status.clone(),
                since: utc(recorded.recorded_at),
                id: recorded.id.clone(),
            })
            .collect(),
        history: full.then(|| {
            found
                .history
                .iter()
                .map(|(recorded, evidence)| HistoryBody {
                    consent: body_of(recorded),
                    evidence: evidence.clone(),
                })
                .collect()
        }),
        objections: found
            .objections
            .into_iter()
            .map(|(purpose, since)| ObjectionBody {
                purpose,
                since: utc(since),
            })
            .collect(),
        restricted: found.restricted,
    }))
}

/// An objection, or lifting one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ObjectionRequest {
    /// A declared purpose (covers its descendants).
    pub(crate) purpose: String,
    /// `objected` (default) or `lifted`.
    pub(crate) status: Option<String>,
}

/// The objection's state after the request.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ObjectionResponse {
    /// The purpose.
    pub(crate) purpose: String,
    /// `objected` or `lifted`.
    pub(crate) status: String,
    /// Whether the request changed anything.
    pub(crate) changed: bool,
}

/// Records an objection (Art. 21) to a purpose, or lifts one.
#[utoipa::path(post, operation_id = "consents_object", path = "/v1/subjects/{subject_id}/objections", tag = "consents",
    security(("bearer" = [])),
    params(("subject_id" = String, Path, description = "The app's id for the person")),
    request_body = ObjectionRequest,
    responses(
        (status = 200, description = "The objection's state", body = ObjectionResponse),
        (status = 403, description = "The role may not act for this purpose",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn object(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Json<ObjectionRequest>,
) -> Result<HttpResponse, ApiError> {
    let subject_id = parse_subject(&path.into_inner())?;
    let body = body.into_inner();
    let purpose = parse_purpose(&state.services.policy, &body.purpose)?;
    let lift = match body.status.as_deref() {
        None | Some("objected") => false,
        Some("lifted") => true,
        Some(_) => {
            return Err(Rejection::invalid(
                "invalid_objection",
                "`status` must be `objected` or `lifted`",
            )
            .into())
        }
    };
    let role = principal.role.as_str();
    let objected = consents::object(
        &state.services,
        &actor,
        role,
        subject_id,
        purpose.clone(),
        lift,
    )
    .await;
    let changed = audit_trail::settle(&request, objected)?;
    Ok(HttpResponse::Ok().json(ObjectionResponse {
        purpose: purpose.to_string(),
        status: if lift { "lifted" } else { "objected" }.into(),
        changed,
    }))
}

/// The JWK set that verifies consent receipts.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct JwkSet {
    /// The keys (one).
    pub(crate) keys: Vec<Jwk>,
}

/// The public key that verifies consent receipts.
#[utoipa::path(get, operation_id = "consents_receipt_key", path = "/v1/consents/receipt-key", tag = "consents",
    responses((status = 200, description = "A JWK set", body = JwkSet)))]
pub(crate) async fn receipt_key(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(JwkSet {
        keys: vec![state.services.receipts.jwk()],
    })
}

/// A restriction's state after the call.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RestrictionResponse {
    /// Whether processing is restricted now.
    pub(crate) restricted: bool,
    /// Whether this call changed it.
    pub(crate) changed: bool,
}

async fn set_restriction(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    request: HttpRequest,
    path: web::Path<String>,
    lift: bool,
) -> Result<HttpResponse, ApiError> {
    let subject_id = SubjectId::parse(&path.into_inner()).map_err(|_| subject_not_found())?;
    let role = principal.role.as_str();
    let set = consents::set_restriction(&state.services, &actor, role, subject_id, lift).await;
    let changed = audit_trail::settle(&request, set)?.ok_or_else(subject_not_found)?;
    Ok(HttpResponse::Ok().json(RestrictionResponse {
        restricted: !lift,
        changed,
    }))
}

/// Restricts processing of a person's data (Art. 18): while it stands, no purpose has a legal
/// basis for them (reads refused, nothing collected, not counted in segments); their data is
/// kept.
#[utoipa::path(post, operation_id = "consents_restrict", path = "/v1/subjects/{subject_id}/restriction", tag = "consents",
    security(("bearer" = [])),
    params(("subject_id" = String, Path, description = "The app's id for the person")),
    responses(
        (status = 200, description = "Restricted", body = RestrictionResponse),
        (status = 404, description = "No such subject", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn restrict(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_restriction(state, principal, actor, request, path, false).await
}

/// Lifts a restriction of processing.
#[utoipa::path(delete, operation_id = "consents_lift_restriction", path = "/v1/subjects/{subject_id}/restriction", tag = "consents",
    security(("bearer" = [])),
    params(("subject_id" = String, Path, description = "The app's id for the person")),
    responses(
        (status = 200, description = "Lifted (or was not restricted)", body = RestrictionResponse),
        (status = 404, description = "No such subject", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn lift_restriction(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_restriction(state, principal, actor, request, path, true).await
}
