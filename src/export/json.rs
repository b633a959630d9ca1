//! The JSON form of an export: one document, written member by member.

use std::io::Write;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{json, Value};

use super::Opened;
use crate::crypto::JwsSigner;

/// The data of an interaction as a JSON object.
struct DataMap<'a>(&'a [(String, Option<String>, crate::subjects::FieldValue)]);

impl Serialize for DataMap<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, _, value) in self.0 {
            map.serialize_entry(name, &value.to_json())?;
        }
        map.end()
    }
}

/// One interaction as the export writes it, serialized straight from the decrypted row.
impl Serialize for Opened {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut item = serializer.serialize_struct("Interaction", 9)?;
        item.serialize_field("id", &self.id)?;
        item.serialize_field("type", &self.row.interaction_type)?;
        item.serialize_field("channel", &self.row.channel)?;
        item.serialize_field("occurred_at", &rfc3339(self.row.occurred_at))?;
        item.serialize_field("recorded_at", &rfc3339(self.row.recorded_at))?;
        item.serialize_field("purposes", &self.purposes)?;
        item.serialize_field("collected_for", &self.collected_for)?;
        item.serialize_field("categories", &self.categories())?;
        item.serialize_field("data", &DataMap(&self.data))?;
        item.end()
    }
}

use super::{
    for_each_access, for_each_interaction, for_each_statement, json_list, rfc3339, ExportError,
    Head, FORMAT_VERSION,
};
use crate::policy::Policy;
use crate::store::DbConnection;

fn member<W: Write>(out: &mut W, first: bool, name: &str) -> Result<(), ExportError> {
    if !first {
        out.write_all(b",")?;
    }
    serde_json::to_writer(&mut *out, name).map_err(std::io::Error::from)?;
    out.write_all(b":")?;
    Ok(())
}

fn value<W: Write>(out: &mut W, value: &Value) -> Result<(), ExportError> {
    serde_json::to_writer(out, value).map_err(std::io::Error::from)?;
    Ok(())
}

/// Writes a JSON array whose items `items` produces, one at a time.
fn array<W: Write, T: Serialize>(
    out: &mut W,
    items: impl FnOnce(&mut dyn FnMut(T) -> Result<(), ExportError>) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    out.write_all(b"[")?;
    let mut first = true;
    items(&mut |item| {
        if !first {
            out.write_all(b",\n")?;
        }
        first = false;
        serde_json::to_writer(&mut *out, &item).map_err(std::io::Error::from)?;
        Ok(())
    })?;
    out.write_all(b"]")?;
    Ok(())
}

pub(super) fn write<W: Write>(
    conn: &mut DbConnection,
    policy: &Policy,
    receipts: &JwsSigner,
    head: &Head,
    mut out: W,
) -> Result<(), ExportError> {
    let out = &mut out;
    out.write_all(b"{")?;
    member(out, true, "format")?;
    value(out, &json!(FORMAT_VERSION))?;
    member(out, false, "generated_at")?;
    value(
        out,
        &json!(head
            .generated_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
    )?;
    member(out, false, "subject")?;
    value(
        out,
        &json!({
            "subject_id": head.person.profile.subject_id,
            "anonymous_ids": head.person.profile.anonymous_ids,
            "created_at": rfc3339(head.person.profile.created_at),
            "updated_at": rfc3339(head.person.profile.updated_at),
            "identifiers": head.person.profile.identifiers,
            "traits": head.person.profile.traits,
        }),
    )?;
    member(out, false, "restriction")?;
    value(
        out,
        &head
            .person
            .restricted_since
            .map_or(Value::Null, |since| json!({"since": rfc3339(since)})),
    )?;
    member(out, false, "objections")?;
    value(
        out,
        &Value::Array(
            head.person
                .objections
                .iter()
                .map(|(purpose, since)| json!({"purpose": purpose, "since": rfc3339(*since)}))
                .collect(),
        ),
    )?;
    member(out, false, "consent_state")?;
    value(
        out,
        &Value::Array(
            head.person.current
                .iter()
                .map(|(purpose, status, since)| {
                    json!({"purpose": purpose, "status": status, "since": rfc3339(*since)})
                })
                .collect(),
        ),
    )?;
    member(out, false, "processing")?;
    value(
        out,
        &Value::Array(
            head.processing
                .iter()
                .map(|p| {
                    json!({
                        "purpose": p.purpose,
                        "description": p.description,
                        "legal_basis": p.legal_basis,
                        "legal_basis_in_effect": p.refused.is_none(),
                        "not_in_effect_because": p.refused,
                        "retention_days": p.retention_days,
                        "categories": p.categories,
                        "sources": p.sources,
                        "interactions": p.interactions,
                    })
                })
                .collect(),
        ),
    )?;
    member(out, false, "erasure")?;
    value(
        out,
        &json!({
            "backups_unreadable_by_if_erased_now": rfc3339(head.erasure_reaches_backups_by),
            "key_epoch_seconds": head.schedule.period.as_secs(),
            "backup_retention_seconds": head.schedule.backup_retention.as_secs(),
        }),
    )?;
    member(out, false, "consents")?;
    let mut statements = Vec::new();
    array(out, |emit| {
        for_each_statement(conn, head.person.owners.person(), |recorded, evidence| {
            statements.push(recorded.clone());
            emit(json!({
                "id": recorded.id,
                "sequence": recorded.sequence,
                "purpose": recorded.purpose,
                "status": recorded.status,
                "recorded_at": rfc3339(recorded.recorded_at),
                "notice": recorded.notice.as_ref().map(|notice| json!({
                    "id": notice.id,
                    "version": notice.version,
                    "language": notice.language,
                    "text_sha256": notice.sha256,
                    "url": super::notice_url(policy, notice),
                })),
                "source": recorded.source,
                "method": recorded.method,
                "evidence": evidence,
                "merged_from": recorded.merged_from,
                "consent_strings": recorded.consent_strings,
                "receipt": super::receipt_of(receipts, policy, head, &recorded),
            }))
        })
    })?;
    member(out, false, "consent_records")?;
    value(out, &super::consent_records(policy, head, &statements))?;
    member(out, false, "interactions")?;
    array(out, |emit| {
        for_each_interaction(conn, policy, &head.person.owners, emit)
    })?;
    member(out, false, "access_log")?;
    array(out, |emit| {
        for_each_access(conn, head.person.owners.person(), |row| {
            emit(json!({
                "at": rfc3339(row.at),
                "action": row.action,
                "actor_key_id": row.actor_key_id,
                "role": row.role,
                "purposes": json_list(&row.purposes),
                "categories": json_list(&row.categories),
                "records": row.records,
                "decision": row.decision,
                "reason": row.reason,
            }))
        })
    })?;
    out.write_all(b"}")?;
    out.flush()?;
    Ok(())
}
