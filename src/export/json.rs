//! The JSON form of an export: one document, written member by member.

use std::io::Write;

use serde_json::{json, Value};

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
fn array<W: Write>(
    out: &mut W,
    items: impl FnOnce(&mut dyn FnMut(Value) -> Result<(), ExportError>) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    out.write_all(b"[")?;
    let mut first = true;
    items(&mut |item| {
        if !first {
            out.write_all(b",\n")?;
        }
        first = false;
        value(out, &item)
    })?;
    out.write_all(b"]")?;
    Ok(())
}

pub(super) fn write<W: Write>(
    conn: &mut DbConnection,
    policy: &Policy,
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
            "subject_id": head.profile.subject_id,
            "created_at": rfc3339(head.profile.created_at),
            "updated_at": rfc3339(head.profile.updated_at),
            "identifiers": head.profile.identifiers,
            "traits": head.profile.traits,
        }),
    )?;
    member(out, false, "restriction")?;
    value(
        out,
        &head
            .restricted_since
            .map_or(Value::Null, |since| json!({"since": rfc3339(since)})),
    )?;
    member(out, false, "objections")?;
    value(
        out,
        &Value::Array(
            head.objections
                .iter()
                .map(|(purpose, since)| json!({"purpose": purpose, "since": rfc3339(*since)}))
                .collect(),
        ),
    )?;
    member(out, false, "consent_state")?;
    value(
        out,
        &Value::Array(
            head.current
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
    member(out, false, "consents")?;
    array(out, |emit| {
        for_each_statement(conn, &head.handle, |recorded, evidence| {
            emit(json!({
                "id": recorded.id,
                "sequence": recorded.sequence,
                "purpose": recorded.purpose,
                "status": recorded.status,
                "recorded_at": rfc3339(recorded.recorded_at),
                "notice": recorded.notice.map(|(id, version)| json!({"id": id, "version": version})),
                "source": recorded.source,
                "method": recorded.method,
                "evidence": evidence,
            }))
        })
    })?;
    member(out, false, "interactions")?;
    array(out, |emit| {
        for_each_interaction(conn, policy, &head.handle, |opened| {
            let categories = opened.categories();
            let data: serde_json::Map<String, Value> = opened
                .data
                .iter()
                .map(|(name, _, value)| (name.clone(), value.to_json()))
                .collect();
            emit(json!({
                "id": opened.id,
                "type": opened.row.interaction_type,
                "channel": opened.row.channel,
                "occurred_at": rfc3339(opened.row.occurred_at),
                "recorded_at": rfc3339(opened.row.recorded_at),
                "purposes": opened.purposes,
                "categories": categories,
                "data": data,
            }))
        })
    })?;
    member(out, false, "access_log")?;
    array(out, |emit| {
        for_each_access(conn, &head.handle, |row| {
            emit(json!({
                "at": rfc3339(row.at),
                "action": row.action,
                "actor_key_id": row.actor_key_id,
                "role": row.role,
                "purposes": json_list(&row.purposes),
                "categories": json_list(&row.categories),
                "records": row.records,
            }))
        })
    })?;
    out.write_all(b"}")?;
    out.flush()?;
    Ok(())
}
