//! Consent records as ISO/IEC TS 27560 JSON-LD with W3C DPV terms, following DPV's guide to
//! 27560 (`dpv-27560#record-eu-gdpr`, and `#receipt-eu-gdpr` for receipts): a header (schema
//! version, record identifier, data subject), the notice and its language, the processing
//! (purpose, personal data, legal basis, controller, recipients, storage, the way to change or
//! withdraw consent, jurisdiction, rights), the parties, and one event per statement (consent
//! type, state, time, duration, who expressed it, how).
//!
//! Every IRI in the DPV namespaces written here is defined by the embedded vocabulary
//! (`tests/api/standards.rs` checks this with rdflib against the Turtle files); the other
//! namespaces are Dublin Core terms, schema.org, RDF, SKOS and XML Schema.

use chrono::{NaiveDateTime, SecondsFormat};
use serde_json::{json, Map, Value};

use crate::consent::Recorded;
use crate::policy::standards::Controller;
use crate::policy::{Policy, PurposeId};

/// The profile of a record that also carries what GDPR Art. 13/14 asks for.
pub const RECORD_PROFILE: &str = "https://w3id.org/dpv/schema/dpv-27560#record-eu-gdpr";
/// The profile of a receipt: a copy of the record, given to another party.
pub const RECEIPT_PROFILE: &str = "https://w3id.org/dpv/schema/dpv-27560#receipt-eu-gdpr";

/// The JSON-LD context: every prefix a record uses, defined inline (nothing is fetched).
pub fn context() -> Value {
    let mut context = Map::new();
    for (prefix, iri, _) in crate::policy::vocabulary::NAMESPACES {
        context.insert(prefix.to_owned(), Value::String(iri.to_owned()));
    }
    for (prefix, iri) in [
        ("dct", "http://purl.org/dc/terms/"),
        ("schema", "https://schema.org/"),
        ("rdf", "http://www.w3.org/1999/02/22-rdf-syntax-ns#"),
        ("skos", "http://www.w3.org/2004/02/skos/core#"),
        ("xsd", "http://www.w3.org/2001/XMLSchema#"),
    ] {
        context.insert(prefix.to_owned(), Value::String(iri.to_owned()));
    }
    Value::Object(context)
}

/// Why a record cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The policy declares no `[controller]`.
    #[error("the policy declares no [controller]: ISO/IEC TS 27560 records name the controller")]
    NoController,
    /// The statement names no valid purpose id (never for a stored statement).
    #[error("the statement's purpose is not a purpose id")]
    InvalidPurpose,
}

fn id(iri: &str) -> Value {
    json!({ "@id": iri })
}

fn ids(terms: &[String]) -> Value {
    Value::Array(terms.iter().map(|term| id(term)).collect())
}

fn time(at: NaiveDateTime) -> Value {
    json!({
        "@value": at.and_utc().to_rfc3339_opts(SecondsFormat::Millis, true),
        "@type": "xsd:dateTime",
    })
}

/// A subject id percent-encoded for Custodia's URNs (the caller already knows it; no other
/// identifier of the person is written).
fn encoded(subject_id: &str) -> String {
    subject_id
        .bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.') {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// The IRI naming the person in records.
fn subject_iri(subject_id: &str) -> String {
    format!("urn:custodia:subject:{}", encoded(subject_id))
}

fn controller_of(policy: &Policy) -> Result<&Controller, RecordError> {
    policy
        .standards()
        .controller
        .as_ref()
        .ok_or(RecordError::NoController)
}

/// The controller as a party: name, identifier, role, contact point and postal address.
fn controller_entity(controller: &Controller) -> Value {
    json!({
        "@id": controller.id,
        "@type": ["dpv:DataController"],
        "dpv:hasName": controller.name,
        "dpv:hasIdentifier": controller.id,
        "schema:url": id(&controller.id),
        "schema:contactPoint": {
            "@type": "schema:ContactPoint",
            "schema:email": controller.email,
            "schema:address": {
                "@type": "schema:PostalAddress",
                "schema:streetAddress": controller.address,
            },
        },
    })
}

/// The controller and the person, as the record's parties.
fn entities(controller: &Controller, subject: &str) -> Value {
    json!([
        controller_entity(controller),
        {
            "@id": subject,
            "@type": ["dpv:DataSubject"],
            "dpv:hasIdentifier": subject,
        },
    ])
}

/// The processing a purpose's consent is about.
fn process(policy: &Policy, controller: &Controller, purpose: &PurposeId) -> Value {
    let dpv = &policy.standards().dpv;
    let declared = policy.purpose(purpose.as_str());
    let mut categories: Vec<String> = policy
        .fields()
        .filter(|field| declared.is_some_and(|p| policy.purpose_may_use(p, &field.category)))
        .filter_map(|field| dpv.categories.get(&field.category))
        .flatten()
        .cloned()
        .collect();
    categories.sort();
    categories.dedup();
    if categories.is_empty() {
        categories.push("dpv:PersonalData".to_owned());
    }
    let legal_basis = declared
        .map(|p| dpv.legal_basis(p.legal_basis))
        .unwrap_or_default();
    let retention = declared.map_or(0, |p| p.retention_days);
    let rights: Vec<Value> = [
        ("eu-gdpr:A7-3", "Right to withdraw consent"),
        ("eu-gdpr:A15", "Right of access"),
        ("eu-gdpr:A16", "Right to rectification"),
        ("eu-gdpr:A17", "Right to erasure"),
        ("eu-gdpr:A18", "Right to restriction of processing"),
        ("eu-gdpr:A20", "Right to data portability"),
        ("eu-gdpr:A21", "Right to object"),
    ]
    .iter()
    .map(|(term, title)| {
        json!({
            "@type": ["dpv:DataSubjectRight", term],
            "dct:title": title,
            "dpv:isExercisedAt": id(&controller.rights_url),
        })
    })
    .collect();
    json!({
        "@type": "dpv:Process",
        "dpv:hasPurpose": {
            "@id": format!("urn:custodia:purpose:{purpose}"),
            "@type": "dpv:Purpose",
            "dct:identifier": purpose.as_str(),
            "dct:description": declared.map(|p| p.description.clone()).unwrap_or_default(),
            "skos:broader": ids(dpv.purposes.get(purpose).map(Vec::as_slice).unwrap_or_default()),
        },
        "dpv:hasPersonalData": ids(&categories),
        "dpv:hasLegalBasis": ids(&legal_basis),
        "dpv:hasDataController": id(&controller.id),
        "dpv:hasRecipient": id(&controller.id),
        "dpv:hasStorageCondition": {
            "@type": "dpv:StorageDuration",
            "dpv:hasDuration": {
                "@type": "dpv:TemporalDuration",
                "rdf:value": format!("P{retention}D"),
            },
        },
        "dpv:hasConsentControl": {
            "@type": ["dpv:ProvideConsent", "dpv:WithdrawConsent"],
            "dpv:isExercisedAt": id(&controller.consent_url),
        },
        "dpv:hasJurisdiction": {
            "@type": "dpv:Jurisdiction",
            "dpv:hasName": controller.jurisdiction,
        },
        "dpv:hasRight": rights,
    })
}

/// The notice a statement names (or, for one without, such as a withdrawal, the notices the
/// policy declares for the purpose).
fn notices(policy: &Policy, purpose: &PurposeId, statements: &[&Recorded]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut seen = Vec::new();
    for recorded in statements {
        let Some(notice) = &recorded.notice else {
            continue;
        };
        let key = (
            notice.id.clone(),
            notice.version.clone(),
            notice.language.clone(),
        );
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let declared = policy
            .notices()
            .iter()
            .find(|n| n.id == notice.id && n.version == notice.version);
        out.push(notice_value(
            &notice.id,
            &notice.version,
            notice.language.as_deref().unwrap_or("und"),
            declared.map(|n| n.url.as_str()),
            notice.sha256.as_deref(),
        ));
    }
    if out.is_empty() {
        for notice in policy
            .notices()
            .iter()
            .filter(|n| n.purposes.iter().any(|asked| purpose.is_within(asked)))
        {
            out.push(notice_value(
                &notice.id,
                &notice.version,
                &notice.language,
                Some(&notice.url),
                Some(&notice.sha256),
            ));
        }
    }
    out
}

fn notice_value(
    notice: &str,
    version: &str,
    language: &str,
    url: Option<&str>,
    sha256: Option<&str>,
) -> Value {
    let mut value = json!({
        "@id": url.map_or_else(|| format!("urn:custodia:notice:{notice}:{version}:{language}"), |u| u.to_owned()),
        "@type": "dpv:ConsentNotice",
        "dct:identifier": format!("{notice}/{version}"),
        "dct:hasVersion": version,
        "dct:language": language,
    });
    if let Some(sha256) = sha256 {
        value["dpv:hasIdentifier"] = Value::String(format!("sha256:{sha256}"));
    }
    value
}

/// One statement as a consent event.
fn event(subject: &str, recorded: &Recorded) -> Value {
    let granted = recorded.status == "granted";
    let gpc = recorded.method == "gpc";
    let mut event = json!({
        "@type": if granted { "dpv:ConsentGiven" } else { "dpv:ConsentWithdrawn" },
        "dct:identifier": recorded.id,
        "dpv:isIndicatedAtTime": time(recorded.recorded_at),
        "dpv:isIndicatedBy": id(subject),
        "dpv:hasIndicationMethod": if gpc {
            "Global Privacy Control signal (Sec-GPC: 1 or a GPP section's GPC field), recorded by the controller".to_owned()
        } else {
            format!("{} via {}", recorded.method, recorded.source)
        },
        "dpv:hasDuration": {
            "@type": "dpv:UntilEventDuration",
            "rdf:value": if granted { "until withdrawn" } else { "until given again" },
        },
    });
    if let Some(notice) = &recorded.notice {
        event["dpv:hasNotice"] = Value::String(format!("{}/{}", notice.id, notice.version));
    }
    if !recorded.consent_strings.is_empty() {
        event["dct:source"] = Value::Array(
            recorded
                .consent_strings
                .iter()
                .map(|s| Value::String(format!("{}:sha256:{}", s.standard, s.sha256)))
                .collect(),
        );
    }
    event
}

fn record(
    policy: &Policy,
    controller: &Controller,
    subject_id: &str,
    purpose: &PurposeId,
    statements: &[&Recorded],
    profile: &str,
    identifier: String,
) -> Value {
    let subject = subject_iri(subject_id);
    let notices = notices(policy, purpose, statements);
    let mut languages: Vec<String> = notices
        .iter()
        .filter_map(|n| {
            n.get("dct:language")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    languages.sort();
    languages.dedup();
    let legal_basis = policy
        .purpose(purpose.as_str())
        .map(|p| policy.standards().dpv.legal_basis(p.legal_basis))
        .unwrap_or_default();
    json!({
        "@id": identifier,
        "@type": "dpv:ConsentRecord",
        "dct:conformsTo": id(profile),
        "dct:identifier": identifier,
        "dpv:hasIdentifier": identifier,
        "dct:publisher": id(&controller.id),
        "dpv:hasDataSubject": id(&subject),
        "dpv:hasNotice": notices,
        "dct:language": languages,
        "dpv:hasLegalBasis": ids(&legal_basis),
        "dpv:hasProcess": process(policy, controller, purpose),
        "dpv:hasConsentStatus": statements.iter().map(|r| event(&subject, r)).collect::<Vec<_>>(),
        "dpv:hasEntity": entities(controller, &subject),
    })
}

/// A person's consent records: one per purpose with statements, each statement an event in
/// it, oldest first.
pub fn records(
    policy: &Policy,
    subject_id: &str,
    statements: &[Recorded],
) -> Result<Value, RecordError> {
    let controller = controller_of(policy)?;
    let mut purposes: Vec<&str> = statements.iter().map(|r| r.purpose.as_str()).collect();
    purposes.sort_unstable();
    purposes.dedup();
    let mut graph = Vec::with_capacity(purposes.len());
    for purpose in purposes {
        let Ok(purpose_id) = PurposeId::parse(purpose) else {
            continue;
        };
        let mut events: Vec<&Recorded> =
            statements.iter().filter(|r| r.purpose == purpose).collect();
        events.sort_by_key(|r| r.sequence);
        let identifier = format!(
            "urn:custodia:consent-record:{}:{purpose}",
            encoded(subject_id)
        );
        graph.push(record(
            policy,
            controller,
            subject_id,
            &purpose_id,
            &events,
            RECORD_PROFILE,
            identifier,
        ));
    }
    Ok(json!({ "@context": context(), "@graph": graph }))
}

/// The 27560 receipt of one statement: a copy of its record holding that statement's event.
pub fn receipt(
    policy: &Policy,
    subject_id: &str,
    recorded: &Recorded,
) -> Result<Value, RecordError> {
    let controller = controller_of(policy)?;
    let purpose = PurposeId::parse(&recorded.purpose).map_err(|_| RecordError::InvalidPurpose)?;
    let mut value = record(
        policy,
        controller,
        subject_id,
        &purpose,
        &[recorded],
        RECEIPT_PROFILE,
        format!("urn:custodia:consent-receipt:{}", recorded.id),
    );
    value["@context"] = context();
    Ok(value)
}

/// The record of processing activities (GDPR Art. 30) as DPV JSON-LD: a `dpv:ROPA` holding one
/// `dpv:Process` per purpose, with the same terms as the consent records.
pub fn record_of_processing(policy: &Policy) -> Result<Value, RecordError> {
    let controller = controller_of(policy)?;
    let identifier = format!("urn:custodia:ropa:{}", policy.sha256());
    let processes: Vec<Value> = policy
        .purposes()
        .map(|purpose| process(policy, controller, &purpose.id))
        .collect();
    Ok(json!({
        "@context": context(),
        "@id": identifier,
        "@type": "dpv:ROPA",
        "dct:identifier": identifier,
        "dct:publisher": id(&controller.id),
        "dpv:hasDataController": id(&controller.id),
        "dpv:hasProcess": processes,
        "dpv:hasEntity": [controller_entity(controller)],
    }))
}
