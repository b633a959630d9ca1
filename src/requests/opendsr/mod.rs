//! OpenDSR 2.0 (formerly OpenGDPR; the specification is the public repository opengdpr/OpenDSR):
//! how controllers such as mParticle, Braze or Amplitude send data-subject requests to a
//! processor. Custodia is the processor. A received request becomes a data-subject request of
//! [`crate::requests`] (visible in the console, executed like any other); its status is
//! reported back to the controller's callback URLs, signed, at least once (`callbacks`).
//!
//! See `docs/opendsr.md` for the mapping, the signatures and the decisions where the
//! specification is silent.

pub mod callbacks;
pub mod identity;

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit::Actor;
use crate::policy::Policy;
use crate::requests::{self, Draft, Identity, Kind, Regulation, Request, RequestError, Status};
use crate::store::opendsr::{self as store, CallbackRow, OpenDsrRow};
use crate::store::{write_transaction, DbConnection, StoreError};
use crate::subjects::{Email, SubjectId};
use crate::vault::Vault;

pub use identity::{ControllerKeys, ProcessorIdentity};

/// The version of the protocol spoken here.
pub const API_VERSION: &str = "2.0";

/// The most callback URLs one request may name.
pub const MAX_CALLBACK_URLS: usize = 10;
/// The longest callback URL.
pub const MAX_URL_LEN: usize = 2048;
/// The most identities one request may carry.
pub const MAX_IDENTITIES: usize = 20;

/// The identity types and formats supported, in the order they are preferred when a request
/// carries several.
pub const SUPPORTED_IDENTITIES: [(&str, &str); 4] = [
    ("controller_customer_id", "raw"),
    ("email", "raw"),
    ("controller_customer_id", "sha256"),
    ("email", "sha256"),
];

/// The request types supported.
pub const SUPPORTED_TYPES: [&str; 3] = ["access", "portability", "erasure"];

/// A request body, as the specification defines it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncomingRequest {
    /// `gdpr` or `ccpa`.
    #[schema(pattern = "^(gdpr|ccpa)$")]
    pub regulation: String,
    /// The controller's id for the request: a lowercase UUID v4.
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")]
    pub subject_request_id: String,
    /// `access`, `portability` or `erasure`.
    #[schema(pattern = "^(access|portability|erasure)$")]
    pub subject_request_type: String,
    /// RFC 3339: when the person made the request (not in the future).
    #[schema(format = DateTime)]
    pub submitted_time: String,
    /// Who the request is about (at least one supported identity; see discovery).
    #[serde(default)]
    #[schema(min_items = 1, max_items = 20)]
    pub subject_identities: Vec<IdentityObject>,
    /// The version the controller speaks.
    pub api_version: Option<String>,
    /// Where to report status changes.
    #[serde(default)]
    pub status_callback_urls: Vec<String>,
    /// Processor-specific elements keyed by processor domain (accepted, not used, not kept).
    #[schema(value_type = Option<Object>)]
    #[allow(dead_code)] // In the API's schema, as the specification has it; never read.
    pub extensions: Option<Value>,
}

/// An identity of the person.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityObject {
    /// `controller_customer_id`, `email`, …
    pub identity_type: String,
    /// The value.
    pub identity_value: String,
    /// `raw`, `sha256`, …
    pub identity_format: String,
}

/// One problem with a request, in the specification's error-detail shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Always `Validation` for request problems.
    pub domain: &'static str,
    /// A stable code: `missing_identity`, `invalid_submitted_time` …
    pub reason: &'static str,
    /// What is wrong, without echoing the submitted value.
    pub message: String,
}

fn problem(reason: &'static str, message: impl Into<String>) -> ErrorDetail {
    ErrorDetail {
        domain: "Validation",
        reason,
        message: message.into(),
    }
}

/// A validated request.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The controller's id for it.
    pub subject_request_id: String,
    /// What is asked.
    pub kind: Kind,
    /// Under which law.
    pub regulation: Regulation,
    /// The identity it is matched by.
    pub identity: Identity,
    /// When the person made it.
    pub submitted_time: NaiveDateTime,
    /// Where to report.
    pub callback_urls: Vec<String>,
}

/// A lowercase UUID v4 (the specification's GUID rule).
fn is_uuid_v4(text: &str) -> bool {
    uuid::Uuid::parse_str(text)
        .is_ok_and(|id| id.get_version_num() == 4 && id.hyphenated().to_string() == text)
}

fn callback_url_ok(url: &str) -> bool {
    url.len() <= MAX_URL_LEN
        && (url.starts_with("https://") || url.starts_with("http://"))
        && url.parse::<reqwest::Url>().is_ok_and(|parsed| {
            parsed.host_str().is_some_and(|host| !host.is_empty())
                && parsed.username().is_empty()
                && parsed.password().is_none()
        })
}

/// The problems of callback URLs this processor may not call (see [`callback_url_problem`],
/// [`callback_host_problem`]): none when `allow_private`.
pub(crate) async fn check_callback_urls(urls: &[String], allow_private: bool) -> Vec<ErrorDetail> {
    let mut errors = Vec::new();
    for (index, url) in urls.iter().enumerate() {
        let refused = match callback_url_problem(url, allow_private) {
            Some(problem) => Some(problem),
            None => callback_host_problem(url, allow_private).await,
        };
        if let Some(why) = refused {
            errors.push(problem(
                "callback_url_not_allowed",
                format!(
                    "status_callback_urls[{index}] is {why}: callbacks go only to https URLs on public addresses"
                ),
            ));
        }
    }
    errors
}

/// Why a (well-formed) callback URL may not be called, without resolving names: it is not
/// https, or its host is an internal address literal. `None` when `allow_private`.
pub(crate) fn callback_url_problem(url: &str, allow_private: bool) -> Option<&'static str> {
    if allow_private {
        return None;
    }
    let Ok(parsed) = url.parse::<reqwest::Url>() else {
        return Some("not a URL");
    };
    if parsed.scheme() != "https" {
        return Some("not https");
    }
    let internal = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => crate::net::is_internal(ip.into()),
        Some(url::Host::Ipv6(ip)) => crate::net::is_internal(ip.into()),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        None => true,
    };
    internal.then_some("an internal address")
}

/// Why a callback URL's host may not be called once resolved: a name resolving to an internal
/// address (any of them), or one that does not resolve at all. `None` when `allow_private` or
/// the host is an address literal (checked by [`callback_url_problem`]).
pub(crate) async fn callback_host_problem(url: &str, allow_private: bool) -> Option<&'static str> {
    if allow_private {
        return None;
    }
    let parsed = url.parse::<reqwest::Url>().ok()?;
    let Some(url::Host::Domain(name)) = parsed.host() else {
        return None;
    };
    let name = name.to_owned();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let resolved = tokio::net::lookup_host((name.as_str(), port))
        .await
        .map(|addresses| addresses.collect::<Vec<_>>());
    match resolved {
        Ok(addresses) => {
            if addresses.is_empty() {
                Some("a host that does not resolve")
            } else if addresses
                .iter()
                .any(|address| crate::net::is_internal(address.ip()))
            {
                Some("a host that resolves to an internal address")
            } else {
                None
            }
        }
        Err(_) => Some("a host that does not resolve"),
    }
}

impl IncomingRequest {
    /// Checks every field; all problems at once.
    pub(crate) fn validate(&self) -> Result<Validated, Vec<ErrorDetail>> {
        let mut errors = Vec::new();
        let kind = match self.subject_request_type.as_str() {
            "access" => Some(Kind::Access),
            "portability" => Some(Kind::Portability),
            "erasure" => Some(Kind::Erasure),
            _ => {
                errors.push(problem(
                    "unsupported_subject_request_type",
                    format!(
                        "subject_request_type must be one of {}",
                        SUPPORTED_TYPES.join(", ")
                    ),
                ));
                None
            }
        };
        let regulation = Regulation::parse(&self.regulation);
        if regulation.is_none() {
            errors.push(problem(
                "invalid_regulation",
                "regulation must be gdpr or ccpa",
            ));
        }
        if !is_uuid_v4(&self.subject_request_id) {
            errors.push(problem(
                "invalid_subject_request_id",
                "subject_request_id must be a lowercase UUID v4",
            ));
        }
        let now = Utc::now();
        let submitted = match DateTime::parse_from_rfc3339(&self.submitted_time) {
            Ok(at) if at.with_timezone(&Utc) <= now + chrono::Duration::minutes(5) => {
                Some(at.with_timezone(&Utc).naive_utc().trunc_subsecs(6))
            }
            Ok(_) => {
                errors.push(problem(
                    "invalid_submitted_time",
                    "submitted_time is in the future",
                ));
                None
            }
            Err(_) => {
                errors.push(problem(
                    "invalid_submitted_time",
                    "submitted_time must be an RFC 3339 date-time",
                ));
                None
            }
        };
        if let Some(version) = &self.api_version {
            if !version.starts_with("2.") && version != "2" {
                errors.push(problem(
                    "unsupported_api_version",
                    format!("this processor speaks OpenDSR {API_VERSION}"),
                ));
            }
        }
        if self.status_callback_urls.len() > MAX_CALLBACK_URLS {
            errors.push(problem(
                "too_many_callback_urls",
                format!("at most {MAX_CALLBACK_URLS} status_callback_urls"),
            ));
        }
        for (index, url) in self.status_callback_urls.iter().enumerate() {
            if !callback_url_ok(url) {
                errors.push(problem(
                    "invalid_status_callback_url",
                    format!(
                        "status_callback_urls[{index}] must be an http(s) URL with a host, no credentials, at most {MAX_URL_LEN} characters"
                    ),
                ));
            }
        }
        let identity = self.identity(&mut errors);
        match (kind, regulation, identity, submitted) {
            (Some(kind), Some(regulation), Some(identity), Some(submitted_time))
                if errors.is_empty() =>
            {
                Ok(Validated {
                    subject_request_id: self.subject_request_id.clone(),
                    kind,
                    regulation,
                    identity,
                    submitted_time,
                    callback_urls: self.status_callback_urls.clone(),
                })
            }
            _ => Err(errors),
        }
    }

    /// The identity to match by: the first supported one in order of preference; every
    /// identity object is checked.
    fn identity(&self, errors: &mut Vec<ErrorDetail>) -> Option<Identity> {
        if self.subject_identities.is_empty() {
            errors.push(problem(
                "missing_identity",
                "subject_identities must name the person (controller_customer_id or email, raw or sha256)",
            ));
            return None;
        }
        if self.subject_identities.len() > MAX_IDENTITIES {
            errors.push(problem(
                "too_many_identities",
                format!("at most {MAX_IDENTITIES} subject_identities"),
            ));
            return None;
        }
        let mut found: Vec<(usize, Identity)> = Vec::new();
        for (index, object) in self.subject_identities.iter().enumerate() {
            let Some(rank) = SUPPORTED_IDENTITIES.iter().position(|(kind, format)| {
                *kind == object.identity_type && *format == object.identity_format
            }) else {
                continue;
            };
            let value = &object.identity_value;
            let parsed = match (
                object.identity_type.as_str(),
                object.identity_format.as_str(),
            ) {
                ("controller_customer_id", "raw") => {
                    SubjectId::parse(value).ok().map(Identity::SubjectId)
                }
                ("email", "raw") => Email::parse(value).ok().map(Identity::Email),
                ("controller_customer_id", _) => {
                    requests::parse_sha256_hex(value).map(Identity::SubjectIdSha256)
                }
                _ => requests::parse_sha256_hex(value).map(Identity::EmailSha256),
            };
            match parsed {
                Some(identity) => found.push((rank, identity)),
                None => errors.push(problem(
                    "invalid_identity_value",
                    format!(
                        "subject_identities[{index}] is not a valid {}",
                        object.identity_type
                    ),
                )),
            }
        }
        found.sort_by_key(|(rank, _)| *rank);
        let identity = found.into_iter().next().map(|(_, identity)| identity);
        if identity.is_none() && errors.is_empty() {
            errors.push(problem(
                "unsupported_identity",
                "no supported identity: use controller_customer_id or email, format raw or sha256 (see /opendsr/v2/discovery)",
            ));
        }
        identity
    }
}

/// The OpenDSR status of a subject request.
pub(crate) fn status_of(status: Status) -> &'static str {
    match status {
        Status::Received | Status::Verified => "pending",
        Status::InProgress => "in_progress",
        Status::Completed => "completed",
        Status::Rejected => "cancelled",
    }
}

/// What a completed request produced: where the results are and how many there are (people
/// whose data the export holds; for an erasure, the rows deleted).
pub(crate) fn results(request: &Request, base_url: &str) -> (Option<String>, Option<i64>) {
    let Some(result) = request
        .result
        .as_ref()
        .filter(|_| request.status == Status::Completed)
    else {
        return (None, None);
    };
    let found = result["subject_found"].as_bool().unwrap_or(false);
    match request.kind {
        Kind::Access | Kind::Portability => {
            let url = result["export"]["url"]
                .as_str()
                .map(|path| format!("{base_url}{path}"));
            (url, Some(i64::from(found)))
        }
        Kind::Erasure => {
            let rows = result["erased"]
                .as_object()
                .map(|counts| counts.values().filter_map(Value::as_i64).sum())
                .unwrap_or(0);
            (None, Some(rows))
        }
        _ => (None, None),
    }
}

/// The status document of a request (the body of a status response, and of a callback with
/// `status_callback_url` added).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatusBody {
    /// The controller's identity here: the id of the API key it signs in with.
    pub controller_id: String,
    /// When the request is expected to be fulfilled (its deadline).
    pub expected_completion_time: String,
    /// The controller's id for the request.
    pub subject_request_id: String,
    /// `pending`, `in_progress`, `completed` or `cancelled`.
    pub request_status: &'static str,
    /// The version spoken.
    pub api_version: &'static str,
    /// For a callback: the URL it was sent to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_callback_url: Option<String>,
    /// Where the results are, once completed (an access or portability export).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results_url: Option<String>,
    /// How many results, once completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results_count: Option<i64>,
}

/// RFC 3339 in UTC with a `Z`, as the specification's examples write it.
pub(crate) fn rfc3339(at: NaiveDateTime) -> String {
    at.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The status document of `row` whose subject request is `request`.
pub(crate) fn status_body(row: &OpenDsrRow, request: &Request) -> StatusBody {
    let (results_url, results_count) = results(request, &row.base_url);
    StatusBody {
        controller_id: row.controller_id.clone(),
        expected_completion_time: rfc3339(request.due_at),
        subject_request_id: row.subject_request_id.clone(),
        request_status: status_of(request.status),
        api_version: API_VERSION,
        status_callback_url: None,
        results_url,
        results_count,
    }
}

/// Called in the transaction of every status change of a subject request: when it came from
/// an OpenDSR controller and its OpenDSR status changed, queues a callback to each of the
/// controller's URLs (delivered by [`callbacks`], at least once).
pub(crate) fn announce(conn: &mut DbConnection, request: &Request) -> Result<(), StoreError> {
    let Some(row) = store::find_by_request(conn, &request.id)? else {
        return Ok(());
    };
    let status = status_of(request.status);
    if row.announced_status == status {
        return Ok(());
    }
    queue_callbacks(conn, &row, request)?;
    store::set_announced(conn, &row.subject_request_id, status)
}

/// Queues one callback per URL of `row` with the current status of `request`.
pub(crate) fn queue_callbacks(
    conn: &mut DbConnection,
    row: &OpenDsrRow,
    request: &Request,
) -> Result<(), StoreError> {
    let urls: Vec<String> = serde_json::from_str(&row.callback_urls).unwrap_or_default();
    if urls.is_empty() {
        return Ok(());
    }
    let now = Utc::now().naive_utc().trunc_subsecs(6);
    let base = status_body(row, request);
    let rows: Vec<CallbackRow> = urls
        .into_iter()
        .map(|url| {
            let body = StatusBody {
                status_callback_url: Some(url.clone()),
                ..base.clone()
            };
            CallbackRow {
                id: uuid::Uuid::now_v7().simple().to_string(),
                subject_request_id: row.subject_request_id.clone(),
                url,
                body: serde_json::to_string(&body).expect("a status document encodes"),
                attempts: 0,
                next_attempt_at: now,
                delivered_at: None,
                failed_at: None,
                last_error: None,
                created_at: now,
            }
        })
        .collect();
    store::insert_callbacks(conn, &rows)
}

/// Why a request could not be received, found or cancelled.
#[derive(Debug, thiserror::Error)]
pub enum OpenDsrError {
    /// No request with this id from this controller.
    #[error("no such request")]
    NotFound,
    /// The id was used before with another body (or by another controller).
    #[error("subject_request_id was already used for another request")]
    IdConflict,
    /// Only pending requests may be cancelled.
    #[error("only a pending request can be cancelled; this one is {0}")]
    NotPending(&'static str),
    /// The subject request failed.
    #[error(transparent)]
    Request(#[from] RequestError),
}

impl From<StoreError> for OpenDsrError {
    fn from(error: StoreError) -> Self {
        OpenDsrError::Request(error.into())
    }
}

/// What the controller is told about a received request.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The stored OpenDSR request.
    pub row: OpenDsrRow,
    /// Its subject request.
    pub request: Request,
}

/// Receives a validated request from the controller `controller_id` (an API key id): a new
/// subject request, verified (the controller verified the person before sending it), with its
/// OpenDSR row and a first `pending` callback, in one transaction with their audit entries. A
/// re-sent request (same id, same controller, same body) gets the same receipt; the same id with
/// another body is a conflict.
#[allow(clippy::too_many_arguments)]
pub(crate) fn receive(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    validated: &Validated,
    body_sha256: &str,
    base_url: &str,
    actor: &Actor,
) -> Result<Receipt, OpenDsrError> {
    let controller_id = actor.key_id.clone().unwrap_or_default();
    write_transaction(conn, |conn| {
        if let Some(row) = store::find_request(conn, &validated.subject_request_id)? {
            if row.controller_id != controller_id || row.body_sha256 != body_sha256 {
                return Err(OpenDsrError::IdConflict);
            }
            let (request, _) = requests::get(conn, vault, &row.request_id)?;
            return Ok(Receipt { row, request });
        }
        let draft = Draft {
            kind: validated.kind,
            regulation: validated.regulation,
            identity: validated.identity.clone(),
            purposes: Vec::new(),
            changes: None,
            received_at: validated.submitted_time,
        };
        let created = requests::create(conn, vault, policy, &draft, actor)?;
        let request = requests::verify(conn, vault, policy, &created.id, actor)?;
        let row = OpenDsrRow {
            subject_request_id: validated.subject_request_id.clone(),
            request_id: request.id.clone(),
            controller_id: controller_id.clone(),
            body_sha256: body_sha256.to_owned(),
            callback_urls: serde_json::to_string(&validated.callback_urls).expect("strings encode"),
            base_url: base_url.to_owned(),
            received_at: Utc::now().naive_utc().trunc_subsecs(6),
            announced_status: status_of(request.status).to_owned(),
        };
        store::insert_request(conn, &row)?;
        queue_callbacks(conn, &row, &request)?;
        Ok(Receipt { row, request })
    })
}

/// The request `subject_request_id` of the controller `controller_id`.
pub fn find(
    conn: &mut DbConnection,
    vault: &Vault,
    subject_request_id: &str,
    controller_id: &str,
) -> Result<Receipt, OpenDsrError> {
    let row = store::find_request(conn, subject_request_id)?
        .filter(|row| row.controller_id == controller_id)
        .ok_or(OpenDsrError::NotFound)?;
    let (request, _) = requests::get(conn, vault, &row.request_id)?;
    Ok(Receipt { row, request })
}

/// Cancels a pending request (its subject request is rejected, with the reason "cancelled by
/// the controller"; the callbacks announce `cancelled`).
pub(crate) fn cancel(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    subject_request_id: &str,
    actor: &Actor,
) -> Result<Receipt, OpenDsrError> {
    let controller_id = actor.key_id.clone().unwrap_or_default();
    write_transaction(conn, |conn| {
        let Receipt { row, request } = find(conn, vault, subject_request_id, &controller_id)?;
        let status = status_of(request.status);
        if status != "pending" {
            return Err(OpenDsrError::NotPending(status));
        }
        let request = requests::reject(
            conn,
            vault,
            policy,
            &row.request_id,
            "cancelled by the controller (OpenDSR)",
            actor,
        )?;
        Ok(Receipt { row, request })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> IncomingRequest {
        serde_json::from_value(body).expect("the shape parses")
    }

    /// The specification's own example request (section 7.2), with its extensions.
    fn spec_example() -> Value {
        serde_json::json!({
            "subject_request_id": "a7551968-d5d6-44b2-9831-815ac9017798",
            "subject_request_type": "erasure",
            "submitted_time": "2018-10-02T15:00:00Z",
            "subject_identities": [
                {"identity_type": "email", "identity_value": "johndoe@example.com",
                 "identity_format": "raw"}
            ],
            "api_version": "2.0",
            "regulation": "gdpr",
            "status_callback_urls": ["https://examplecontroller.com/opendsr_callbacks"],
            "extensions": {
                "example-processor.com": {"foo-processor-custom-id": 123456, "property_id": "123456"},
                "example-other-processor.com": {"foo-other-processor-custom-id": 654321}
            }
        })
    }

    #[test]
    fn the_specifications_example_is_accepted() {
        let validated = request(spec_example()).validate().expect("valid");
        assert_eq!(validated.kind, Kind::Erasure);
        assert_eq!(validated.regulation, Regulation::Gdpr);
        assert!(matches!(validated.identity, Identity::Email(_)));
        assert_eq!(validated.callback_urls.len(), 1);
    }

    #[test]
    fn every_problem_is_reported_at_once_without_echoing_values() {
        let mut body = spec_example();
        body["subject_request_id"] = "A7551968-D5D6-44B2-9831-815AC9017798".into();
        body["subject_request_type"] = "rectification".into();
        body["submitted_time"] = "yesterday".into();
        body["subject_identities"][0]["identity_value"] = "not-an-address".into();
        body["status_callback_urls"] =
            serde_json::json!(["ftp://x.example/", "https://user:pw@x.example/"]);
        let errors = request(body).validate().expect_err("invalid");
        let reasons: Vec<&str> = errors.iter().map(|e| e.reason).collect();
        assert_eq!(
            reasons,
            [
                "unsupported_subject_request_type",
                "invalid_subject_request_id",
                "invalid_submitted_time",
                "invalid_status_callback_url",
                "invalid_status_callback_url",
                "invalid_identity_value"
            ]
        );
        let text = serde_json::to_string(&errors).unwrap();
        assert!(!text.contains("not-an-address") && !text.contains("pw@"));
    }

    #[test]
    fn the_preferred_identity_wins_and_unsupported_ones_are_named() {
        let mut body = spec_example();
        body["subject_identities"] = serde_json::json!([
            {"identity_type": "email", "identity_value": "johndoe@example.com", "identity_format": "raw"},
            {"identity_type": "android_advertising_id", "identity_value": "38400000-8cf0-11bd-b23e-10b96e40000d", "identity_format": "raw"},
            {"identity_type": "controller_customer_id", "identity_value": "cust-42", "identity_format": "raw"}
        ]);
        let validated = request(body.clone()).validate().expect("valid");
        assert!(
            matches!(validated.identity, Identity::SubjectId(ref id) if id.as_str() == "cust-42")
        );
        body["subject_identities"] = serde_json::json!([
            {"identity_type": "email", "identity_value": "0123", "identity_format": "md5"}
        ]);
        let errors = request(body).validate().expect_err("nothing supported");
        assert_eq!(errors[0].reason, "unsupported_identity");
    }
}
