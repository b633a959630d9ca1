//! The tracking protocol of Segment's and RudderStack's SDKs (`docs/tracking.md`): their
//! messages read into the native model. An `identify` sets the person's identifiers and
//! declared traits, as `PUT /v1/subjects` does. A `track`, `page` or `screen` message becomes one
//! interaction: its `messageId` the idempotency key, its type from the event, its channel from
//! the context, only declared properties kept, and its purposes from the policy's `[tracking]`
//! table (the event's own, or the default, with the consent categories the message allows and
//! without those it denies). Whether each purpose has a legal basis is then decided as for any
//! interaction (SPEC §3 rule 5).

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::consent::{ConsentDraft, RawConsent};
use crate::interactions::RawInteraction;
use crate::policy::{LegalBasis, Policy, PurposeId, Tracking};
use crate::rejection::Rejection;
use crate::subjects::{SubjectChanges, SubjectId};

/// The largest message accepted, alone or in a batch (the protocol's limit).
pub(crate) const MAX_MESSAGE_BYTES: usize = 32 * 1024;
/// The largest batch body accepted (the protocol's limit).
pub(crate) const MAX_BATCH_BYTES: usize = 500 * 1024;
/// The most messages in one batch.
pub(crate) const MAX_BATCH_MESSAGES: usize = crate::interactions::MAX_BATCH;

/// The calls of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    Track,
    Page,
    Screen,
    Identify,
    Alias,
    Group,
}

impl Call {
    fn parse(raw: &str) -> Option<Call> {
        Some(match raw {
            "track" => Call::Track,
            "page" => Call::Page,
            "screen" => Call::Screen,
            "identify" => Call::Identify,
            "alias" => Call::Alias,
            "group" => Call::Group,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Call::Track => "track",
            Call::Page => "page",
            Call::Screen => "screen",
            Call::Identify => "identify",
            Call::Alias => "alias",
            Call::Group => "group",
        }
    }
}

/// One message as the SDKs send it. Keys not listed (`integrations`, `version`, `receivedAt`,
/// `traits`, the rest of `context` …) are accepted and never stored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(rename = "type")]
    call: Option<String>,
    message_id: Option<Value>,
    user_id: Option<Value>,
    anonymous_id: Option<Value>,
    /// An `alias` call's earlier id (the anonymous id the user had).
    previous_id: Option<Value>,
    event: Option<Value>,
    properties: Option<Value>,
    traits: Option<Value>,
    context: Option<Value>,
    timestamp: Option<Value>,
    original_timestamp: Option<Value>,
    sent_at: Option<Value>,
    /// RudderStack's source channel (`web`, `server`, `mobile` …).
    channel: Option<Value>,
}

/// A batch as the SDKs send it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireBatch<'a> {
    #[serde(borrow)]
    batch: Vec<&'a RawValue>,
    sent_at: Option<Value>,
}

/// What a message became.
#[derive(Debug)]
pub(crate) enum Read {
    /// An interaction to collect, and how many properties were dropped (undeclared, or of a
    /// shape a field cannot hold).
    Interaction {
        interaction: RawInteraction,
        dropped: usize,
    },
    /// Nothing to collect: no purpose is left once the message's consent context is applied.
    NoPurpose,
    /// A `group` call: accepted, and nothing of it kept (Custodia keeps no accounts or groups;
    /// its traits are not stored).
    Ignored,
    /// Who the user is (`identify`): identifiers and traits to set on the person, and how many
    /// traits were dropped (undeclared, or of a shape a field cannot hold).
    Identify {
        subject_id: SubjectId,
        changes: SubjectChanges,
        dropped: usize,
        /// The anonymous id an `identify` with a `userId` also carried: linked to the user.
        link: Option<SubjectId>,
    },
    /// A consent manager's answer (a consent event): statements to record for the person.
    Consent {
        subject_id: SubjectId,
        statements: Vec<ConsentDraft>,
        /// The GPC signal a GPP string in the context carried, with its evidence.
        gpc: Option<crate::consent::Evidence>,
    },
    /// An `alias`: link the anonymous id (`previousId`) to the user (`userId`).
    Alias {
        user: SubjectId,
        anonymous: SubjectId,
    },
}

/// Where a message stands in its request, for error messages (`message 3`, or `the message`).
#[derive(Clone, Copy)]
pub(crate) struct Position(pub(crate) Option<usize>);

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(index) => write!(f, "message {index} of the batch"),
            None => f.write_str("the message"),
        }
    }
}

/// Splits a batch body into its messages (each still raw, to be read on its own).
pub(crate) fn read_batch(body: &[u8]) -> Result<(Vec<&RawValue>, Option<Value>), Rejection> {
    let batch: WireBatch<'_> = serde_json::from_slice(body).map_err(|error| {
        Rejection::bad_request(
            "invalid_batch",
            format!(
                "the body must be a JSON object with a `batch` array of messages ({})",
                where_wrong(&error)
            ),
        )
    })?;
    if batch.batch.len() > MAX_BATCH_MESSAGES {
        return Err(Rejection::bad_request(
            "batch_too_large",
            format!("a batch holds at most {MAX_BATCH_MESSAGES} messages"),
        ));
    }
    Ok((batch.batch, batch.sent_at))
}

/// Reads one message: `route` is the call of a single-message route (`/v1/track` …), `None`
/// in a batch, where each message names its own `type`. `sent_at` is the batch's, when the
/// message has none; `received_at`, when the request arrived.
pub(crate) fn read_message(
    policy: &Policy,
    route: Option<Call>,
    raw: &RawValue,
    position: Position,
    batch_sent_at: Option<&Value>,
    received_at: DateTime<Utc>,
) -> Result<Read, Rejection> {
    let invalid = |code: &'static str, detail: String| {
        Rejection::bad_request(code, format!("{position}: {detail}"))
    };
    if raw.get().len() > MAX_MESSAGE_BYTES {
        return Err(invalid(
            "message_too_large",
            format!("a message may be at most {} KiB", MAX_MESSAGE_BYTES / 1024),
        ));
    }
    let mut wire: Wire = serde_json::from_str(raw.get()).map_err(|error| {
        invalid(
            "invalid_message",
            format!(
                "not a message of the tracking protocol ({})",
                where_wrong(&error)
            ),
        )
    })?;
    let call = match (route, wire.call.as_deref()) {
        (Some(call), None) => call,
        (Some(call), Some(named)) if named == call.name() => call,
        (Some(call), Some(_)) => {
            return Err(invalid(
                "invalid_message",
                format!("`type` must be `{}` on this route", call.name()),
            ))
        }
        (None, Some(named)) => Call::parse(named).ok_or_else(|| {
            invalid(
                "invalid_message",
                "`type` must be one of track, page, screen, identify, alias, group".into(),
            )
        })?,
        (None, None) => {
            return Err(invalid(
                "invalid_message",
                "a message in a batch must name its `type`".into(),
            ))
        }
    };
    if call == Call::Group {
        return Ok(Read::Ignored);
    }
    let user_id = identity(&wire.user_id, "userId")
        .map_err(|detail| invalid("invalid_message", detail))?
        .map(|id| SubjectId::parse(&id))
        .transpose()
        .map_err(|detail| invalid("invalid_subject_id", detail))?;
    let anonymous_id = identity(&wire.anonymous_id, "anonymousId")
        .map_err(|detail| invalid("invalid_message", detail))?
        .map(|id| SubjectId::anonymous(&id))
        .transpose()
        .map_err(|detail| invalid("invalid_subject_id", detail))?;
    if call == Call::Alias {
        let previous = identity(&wire.previous_id, "previousId")
            .map_err(|detail| invalid("invalid_message", detail))?
            .map(|id| SubjectId::anonymous(&id))
            .transpose()
            .map_err(|detail| invalid("invalid_subject_id", detail))?;
        return match (user_id, previous) {
            (Some(user), Some(anonymous)) => Ok(Read::Alias { user, anonymous }),
            _ => Err(invalid(
                "invalid_message",
                "an alias message needs a `userId` and a `previousId`".into(),
            )),
        };
    }
    // The person: the user when the message names one (an anonymous id beside it is linked
    // by an `identify`, and only recorded as such otherwise), else the anonymous id.
    let (subject_id, link) = match (user_id, anonymous_id) {
        (Some(user), anonymous) => (user, anonymous),
        (None, Some(anonymous)) => (anonymous, None),
        (None, None) => {
            return Err(invalid(
                "invalid_message",
                "a message needs a `userId` or an `anonymousId`".into(),
            ))
        }
    };
    if call == Call::Identify {
        let traits = object(wire.traits.take(), "traits")
            .map_err(|detail| invalid("invalid_message", detail))?;
        let (changes, dropped) = identified(policy, traits)
            .map_err(|rejection| invalid(rejection.code, rejection.detail))?;
        return Ok(Read::Identify {
            subject_id,
            changes,
            dropped,
            link,
        });
    }
    let event = match call {
        Call::Track => match &wire.event {
            Some(Value::String(event)) if !event.trim().is_empty() => event.clone(),
            _ => {
                return Err(invalid(
                    "invalid_message",
                    "a track message needs an `event` name".into(),
                ))
            }
        },
        _ => call.name().to_owned(),
    };
    let context = object(wire.context.take(), "context")
        .map_err(|detail| invalid("invalid_message", detail))?;
    let properties = object(wire.properties.take(), "properties")
        .map_err(|detail| invalid("invalid_message", detail))?;
    let occurred_at = occurred_at(&wire, batch_sent_at, received_at)
        .map_err(|detail| invalid("invalid_timestamp", detail))?;
    let Some(tracking) = policy.tracking() else {
        return Err(Rejection::bad_request(
            "tracking_not_configured",
            "the policy has no [tracking] table, so no purpose can be given to tracked events",
        ));
    };
    let message_id = match &wire.message_id {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        None | Some(Value::Null) => derived_message_id(raw),
        Some(_) => {
            return Err(invalid(
                "invalid_message",
                "`messageId` must be a non-empty string".into(),
            ))
        }
    };
    if call == Call::Track && tracking.consent_events.contains(&event) {
        let (statements, gpc) =
            consent_statements(policy, tracking, &message_id, call, &wire, &context)
                .map_err(|rejection| invalid(rejection.code, rejection.detail))?;
        return Ok(Read::Consent {
            subject_id,
            statements,
            gpc,
        });
    }
    let purposes = purposes_of(tracking, &event, &context);
    if purposes.is_empty() {
        return Ok(Read::NoPurpose);
    }
    let (data, dropped) = declared(policy, properties);
    Ok(Read::Interaction {
        interaction: RawInteraction {
            id: message_id,
            anonymous: subject_id.is_anonymous(),
            subject_id: subject_id.as_str().to_owned(),
            interaction_type: type_of(&event),
            channel: channel_of(call, wire.channel.as_ref(), &context),
            occurred_at: occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            purposes: purposes.iter().map(ToString::to_string).collect(),
            data,
        },
        dropped,
    })
}

/// What is wrong with a body that did not parse, and where, without repeating any of it.
fn where_wrong(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match error.classify() {
        Category::Syntax => "malformed JSON",
        Category::Eof => "the JSON ends early",
        Category::Data => "a value of the wrong type",
        Category::Io => "unreadable",
    };
    format!("{what} at line {} column {}", error.line(), error.column())
}

/// An optional object of a message (`properties`, `traits`, `context`), taken out of it.
fn object(value: Option<Value>, name: &str) -> Result<Map<String, Value>, String> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(object)) => Ok(object),
        Some(_) => Err(format!("`{name}` must be an object")),
    }
}

/// An identity as the SDKs send it: a string, or a number (some send numeric user ids).
fn identity(value: &Option<Value>, name: &str) -> Result<Option<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) if id.is_empty() => Ok(None),
        Some(Value::String(id)) => Ok(Some(id.clone())),
        Some(Value::Number(id)) => Ok(Some(id.to_string())),
        Some(_) => Err(format!("`{name}` must be a string or a number")),
    }
}

fn timestamp(value: Option<&Value>, name: &str) -> Result<Option<DateTime<Utc>>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => DateTime::parse_from_rfc3339(text)
            .map(|at| Some(at.with_timezone(&Utc)))
            .map_err(|_| format!("`{name}` must be an ISO 8601 timestamp with its offset")),
        Some(_) => Err(format!("`{name}` must be a string")),
    }
}

/// When it happened: `timestamp` as sent; else `originalTimestamp` corrected for the sender's
/// clock (by how far its `sentAt` is from the time of receipt, as the protocol defines);
/// else the time of receipt.
fn occurred_at(
    wire: &Wire,
    batch_sent_at: Option<&Value>,
    received_at: DateTime<Utc>,
) -> Result<DateTime<Utc>, String> {
    if let Some(at) = timestamp(wire.timestamp.as_ref(), "timestamp")? {
        return Ok(at);
    }
    let original = timestamp(wire.original_timestamp.as_ref(), "originalTimestamp")?;
    let sent = match timestamp(wire.sent_at.as_ref(), "sentAt")? {
        Some(sent) => Some(sent),
        None => timestamp(batch_sent_at, "sentAt")?,
    };
    Ok(match (original, sent) {
        (Some(original), Some(sent)) => {
            received_at - (sent - original).clamp(Duration::zero(), Duration::days(3650))
        }
        (Some(original), None) => original,
        (None, _) => received_at,
    })
}

/// The purposes of an event: its own in `[tracking.events]`, else the default ones; plus those
/// of the consent categories the message allows, minus those of the ones it denies.
fn purposes_of(tracking: &Tracking, event: &str, context: &Map<String, Value>) -> Vec<PurposeId> {
    let mut purposes: Vec<PurposeId> = tracking
        .events
        .get(event)
        .unwrap_or(&tracking.default_purposes)
        .clone();
    let (allowed, denied) = consent_categories(context);
    let of = |categories: &[String]| -> Vec<PurposeId> {
        categories
            .iter()
            .filter_map(|category| tracking.consent_categories.get(category))
            .flatten()
            .cloned()
            .collect()
    };
    for purpose in of(&allowed) {
        if !purposes.contains(&purpose) {
            purposes.push(purpose);
        }
    }
    let denied = of(&denied);
    purposes.retain(|purpose| !denied.contains(purpose));
    purposes
}

/// The statements a consent event stands for: for each category its context allows, a grant
/// of the category's consent-based purposes naming the policy's `consent_notice`; for each it
/// denies, a withdrawal of them (a denial wins over an allowance of the same purpose). The
/// message's IP address and user agent are the evidence; `messageId/purpose` the statement's
/// id, so a retried event is recorded once. A TC string or GPP string in the context
/// (`context.consent.tcfString`, `gppString`) adds the statements it stands for
/// (`crate::standards::signals`; a withdrawal wins) and is kept as their evidence; the second
/// value says whether the GPP string carried the GPC signal.
fn consent_statements(
    policy: &Policy,
    tracking: &Tracking,
    message_id: &str,
    call: Call,
    wire: &Wire,
    context: &Map<String, Value>,
) -> Result<(Vec<ConsentDraft>, Option<crate::consent::Evidence>), Rejection> {
    let consent_text = |key: &str| -> Result<Option<String>, Rejection> {
        match context.get("consent").and_then(|consent| consent.get(key)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(Rejection::bad_request(
                "invalid_consent_event",
                format!("`context.consent.{key}` must be a string"),
            )),
        }
    };
    let (tcf, gpp) = (consent_text("tcfString")?, consent_text("gppString")?);
    let has_strings = tcf.is_some() || gpp.is_some();
    let signals = if has_strings {
        crate::standards::signals::read(policy, tcf.as_deref(), gpp.as_deref(), chrono::Utc::now())?
    } else {
        crate::standards::signals::Signals::default()
    };
    let (allowed, denied) = consent_categories(context);
    let consent_based = |categories: &[String]| -> Vec<PurposeId> {
        let mut purposes: Vec<PurposeId> = categories
            .iter()
            .filter_map(|category| tracking.consent_categories.get(category))
            .flatten()
            .filter(|purpose| {
                policy
                    .purpose(purpose.as_str())
                    .is_some_and(|declared| declared.legal_basis == LegalBasis::Consent)
            })
            .cloned()
            .collect();
        purposes.sort();
        purposes.dedup();
        purposes
    };
    let mut withdrawn = consent_based(&denied);
    withdrawn.extend(
        signals
            .statements
            .iter()
            .filter(|(_, granted)| !**granted)
            .map(|(purpose, _)| purpose.clone()),
    );
    withdrawn.sort();
    withdrawn.dedup();
    let mut granted: Vec<PurposeId> = consent_based(&allowed);
    granted.extend(
        signals
            .statements
            .iter()
            .filter(|(_, granted)| **granted)
            .map(|(purpose, _)| purpose.clone()),
    );
    granted.sort();
    granted.dedup();
    granted.retain(|purpose| !withdrawn.contains(purpose));
    if granted.is_empty() && withdrawn.is_empty() && !has_strings {
        return Err(Rejection::bad_request(
            "invalid_consent_event",
            "a consent event must allow or deny at least one consent category the policy maps to a consent-based purpose ([tracking.consent_categories])",
        ));
    }
    let notice = tracking.consent_notice.as_ref().map(|notice| {
        (
            notice.id.clone(),
            notice.version.clone(),
            notice.language.clone(),
        )
    });
    if !granted.is_empty() && notice.is_none() {
        return Err(Rejection::bad_request(
            "consent_notice_not_configured",
            "a consent event that grants needs the notice the banner shows: set [tracking] consent_notice",
        ));
    }
    let text = |key: &str| context.get(key).and_then(Value::as_str).map(str::to_owned);
    let source = match channel_of(call, wire.channel.as_ref(), context).as_str() {
        "web" => "web",
        "mobile" => "app",
        _ => "api",
    };
    let mut statements = Vec::with_capacity(granted.len() + withdrawn.len());
    for (purposes, status) in [(&granted, "granted"), (&withdrawn, "withdrawn")] {
        for purpose in purposes {
            let raw = RawConsent {
                id: Some(format!("{message_id}/{purpose}")),
                purpose: purpose.to_string(),
                status: status.to_owned(),
                notice: (status == "granted").then(|| notice.clone()).flatten(),
                source: source.to_owned(),
                method: "banner".to_owned(),
                ip_address: text("ip"),
                user_agent: text("userAgent"),
            };
            statements.push(
                ConsentDraft::parse(policy, raw)?.with_strings(tcf.as_deref(), gpp.as_deref()),
            );
        }
    }
    let gpc = signals.gpc.then(|| {
        crate::consent::gpc_evidence(
            GPP_GPC_SIGNAL,
            text("ip").as_deref(),
            text("userAgent").as_deref(),
            gpp.as_deref(),
        )
    });
    Ok((statements, gpc))
}

/// How a GPC signal read from a GPP string is named in its withdrawals' evidence.
pub(crate) const GPP_GPC_SIGNAL: &str = "GPC field of a GPP string";

/// The consent categories a message's context allows and denies: Segment's
/// `context.consent.categoryPreferences` (`{"Advertising": true, …}`) and RudderStack's
/// `context.consentManagement` (`allowedConsentIds`, `deniedConsentIds`).
fn consent_categories(context: &Map<String, Value>) -> (Vec<String>, Vec<String>) {
    let (mut allowed, mut denied) = (Vec::new(), Vec::new());
    if let Some(Value::Object(preferences)) = context
        .get("consent")
        .and_then(|consent| consent.get("categoryPreferences"))
    {
        for (category, value) in preferences {
            match value {
                Value::Bool(true) => allowed.push(category.clone()),
                Value::Bool(false) => denied.push(category.clone()),
                _ => {}
            }
        }
    }
    if let Some(management) = context.get("consentManagement") {
        let ids = |key: &str| -> Vec<String> {
            management
                .get(key)
                .and_then(Value::as_array)
                .map(|ids| {
                    ids.iter()
                        .filter_map(|id| match id {
                            Value::String(id) => Some(id.clone()),
                            Value::Number(id) => Some(id.to_string()),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        allowed.extend(ids("allowedConsentIds"));
        denied.extend(ids("deniedConsentIds"));
    }
    (allowed, denied)
}

/// The declared properties whose values a field can hold (strings, numbers); the number of
/// the others, which are dropped.
fn declared(policy: &Policy, properties: Map<String, Value>) -> (Map<String, Value>, usize) {
    let mut kept = Map::new();
    let mut dropped = 0;
    for (name, value) in properties {
        let holdable = matches!(value, Value::String(_) | Value::Number(_));
        if holdable && policy.field(&name).is_some() {
            kept.insert(name, value);
        } else {
            dropped += 1;
        }
    }
    (kept, dropped)
}

/// What an `identify` sets: `email` and `phone` as identifiers (validated as by
/// `PUT /v1/subjects`), the declared traits whose values are strings or numbers; the number of
/// the other traits, which are dropped. A trait sent as `null` is left as it is.
fn identified(
    policy: &Policy,
    traits: Map<String, Value>,
) -> Result<(SubjectChanges, usize), Rejection> {
    let mut identifiers = Map::new();
    let mut kept = Map::new();
    let mut dropped = 0;
    for (name, value) in traits {
        match (name.as_str(), &value) {
            (_, Value::Null) => {}
            ("email" | "phone", Value::String(_)) => {
                identifiers.insert(name, value);
            }
            (_, Value::String(_) | Value::Number(_)) if policy.field(&name).is_some() => {
                kept.insert(name, value);
            }
            _ => dropped += 1,
        }
    }
    let changes = SubjectChanges::parse(policy, &identifiers, &kept)?;
    Ok((changes, dropped))
}

/// An interaction type from an event name: lowercase, runs of other characters as one `_`, at
/// most 64 characters (`Order Completed` → `order_completed`).
fn type_of(event: &str) -> String {
    let mut kind = String::with_capacity(event.len().min(64));
    for c in event.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') {
            kind.push(c);
        } else if !kind.is_empty() && !kind.ends_with('_') {
            kind.push('_');
        }
        if kind.len() >= 64 {
            break;
        }
    }
    let kind = kind.trim_end_matches('_');
    if kind.is_empty() {
        "event".to_owned()
    } else {
        kind.to_owned()
    }
}

/// The channel: RudderStack's `channel` when it is a plain token; else what the sending library
/// says (a browser's, a phone's, or else a server's); `page` defaults to `web`, `screen` to
/// `mobile`.
fn channel_of(call: Call, channel: Option<&Value>, context: &Map<String, Value>) -> String {
    if let Some(Value::String(channel)) = channel {
        let channel = channel.to_lowercase();
        if crate::interactions::token("channel", &channel).is_ok() {
            return channel;
        }
    }
    let library = context
        .get("library")
        .and_then(|library| library.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_lowercase();
    let mobile = ["ios", "android", "react-native", "flutter", "mobile"];
    let web = ["analytics.js", "analytics-next", "javascript", "browser"];
    if mobile.iter().any(|name| library.contains(name)) {
        "mobile".to_owned()
    } else if web.iter().any(|name| library.contains(name)) {
        "web".to_owned()
    } else {
        match call {
            Call::Page => "web".to_owned(),
            Call::Screen => "mobile".to_owned(),
            _ => "server".to_owned(),
        }
    }
}

/// A message id for a message sent without one: the SHA-256 of its bytes, so that a retry of
/// the same message is recognised.
fn derived_message_id(raw: &RawValue) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, raw.get().as_bytes());
    format!("sha256:{}", hex::encode(digest.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_become_types() {
        assert_eq!(type_of("Order Completed"), "order_completed");
        assert_eq!(type_of("  Signed up!  "), "signed_up");
        assert_eq!(type_of("checkout.step-2"), "checkout.step-2");
        assert_eq!(type_of("!!!"), "event");
        assert_eq!(type_of(&"x".repeat(100)).len(), 64);
        assert_eq!(type_of("Ärger über"), "rger_ber");
    }

    #[test]
    fn consent_categories_are_read_from_both_shapes() {
        let context: Map<String, Value> = serde_json::from_str(
            r#"{"consent": {"categoryPreferences": {"Advertising": true, "Analytics": false}},
                "consentManagement": {"allowedConsentIds": ["C0004"], "deniedConsentIds": [2]}}"#,
        )
        .unwrap();
        let (allowed, denied) = consent_categories(&context);
        assert_eq!(allowed, ["Advertising", "C0004"]);
        assert_eq!(denied, ["Analytics", "2"]);
    }

    #[test]
    fn the_senders_clock_is_corrected() {
        let received: DateTime<Utc> = "2026-12-06T12:00:10Z".parse().unwrap();
        let wire: Wire = serde_json::from_str(
            r#"{"originalTimestamp": "2026-12-06T11:00:00Z", "sentAt": "2026-12-06T11:00:05Z"}"#,
        )
        .unwrap();
        let at = occurred_at(&wire, None, received).unwrap();
        assert_eq!(at, "2026-12-06T12:00:05Z".parse::<DateTime<Utc>>().unwrap());
        let explicit: Wire =
            serde_json::from_str(r#"{"timestamp": "2026-12-01T08:00:00+01:00"}"#).unwrap();
        assert_eq!(
            occurred_at(&explicit, None, received).unwrap(),
            "2026-12-01T07:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }
}
