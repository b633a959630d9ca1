//! The portable form of an export: a zip of CSV files (RFC 4180: comma-separated, CRLF line
//! ends, fields quoted when they hold a comma, quote or line break; UTF-8). Lists inside a
//! field are joined with `;`. Values are written exactly as stored: a spreadsheet that treats
//! a leading `=` as a formula should be told to import text.

use std::io::Write;

use super::zip::ZipStream;
use super::{
    for_each_access, for_each_interaction, for_each_statement, json_list, rfc3339, value_text,
    ExportError, Head, FORMAT_VERSION,
};
use crate::consent::Recorded;
use crate::crypto::JwsSigner;
use crate::policy::Policy;
use crate::store::DbConnection;

const README: &str = "\
This archive holds everything Custodia stores about one person, as CSV files (UTF-8, RFC 4180).

subject.csv        the person's id, identifiers and traits (kind, name, value)
rights.csv         standing restriction of processing and objections (kind, purpose, since)
consent_state.csv  the current consent statement per purpose
consents.csv       every consent statement, oldest first, with its evidence (JSON),
                   where a merged one came from, and its receipt (signed now)
processing.csv     each purpose the data is processed for: legal basis, whether it is in
                   effect now, retention, data categories, sources (channels), interactions
interactions.csv   one row per interaction and data field (an interaction without data has
                   one row with empty field, category and value); purposes: those it is
                   still held for; collected_for: those it was accepted for at collection
access_log.csv     who read this person's data, when, for which purposes
consent_records.jsonld  the consent statements as ISO/IEC TS 27560 consent records (JSON-LD,
                   W3C DPV terms), when the controller declares itself in its policy

Lists inside one field are separated by ';'. Times are UTC (RFC 3339).
";

/// One CSV record.
fn record<W: Write>(out: &mut W, fields: &[&str]) -> Result<(), ExportError> {
    for (index, field) in fields.iter().enumerate() {
        if index > 0 {
            out.write_all(b",")?;
        }
        if field.contains([',', '"', '\r', '\n']) {
            out.write_all(b"\"")?;
            out.write_all(field.replace('"', "\"\"").as_bytes())?;
            out.write_all(b"\"")?;
        } else {
            out.write_all(field.as_bytes())?;
        }
    }
    out.write_all(b"\r\n")?;
    Ok(())
}

pub(super) fn write<W: Write>(
    conn: &mut DbConnection,
    policy: &Policy,
    receipts: &JwsSigner,
    head: &Head,
    out: W,
) -> Result<(), ExportError> {
    let mut zip = ZipStream::new(out);
    readme(&mut zip, head)?;
    subject(&mut zip, head)?;
    rights(&mut zip, head)?;
    consent_state(&mut zip, head)?;
    processing(&mut zip, head)?;
    let statements = consents(&mut zip, conn, policy, receipts, head)?;
    consent_records(&mut zip, policy, head, &statements)?;
    interactions(&mut zip, conn, policy, head)?;
    access_log(&mut zip, conn, head)?;
    zip.finish()?;
    Ok(())
}

/// `README.txt`: the format, what each file holds, and when an erasure would reach backups.
fn readme<W: Write>(zip: &mut ZipStream<W>, head: &Head) -> Result<(), ExportError> {
    let generated_at = head
        .generated_at
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    zip.start_file("README.txt")?;
    zip.write_all(format!("{FORMAT_VERSION}, generated {generated_at}\n\n{README}").as_bytes())?;
    zip.write_all(
        format!(
            "\nErasure: the live database holds nothing readable about the person as soon as an \
             erasure is answered; copies made before it (backups, WAL archives) become \
             unreadable once the key epoch that wrapped the person's key is destroyed. Were the \
             person erased now, that would be by {} (key epochs of {} s, backups kept {} s).\n",
            rfc3339(head.erasure_reaches_backups_by),
            head.schedule.period.as_secs(),
            head.schedule.backup_retention.as_secs(),
        )
        .as_bytes(),
    )?;
    Ok(())
}

/// `subject.csv`: the person's id, identifiers and traits.
fn subject<W: Write>(zip: &mut ZipStream<W>, head: &Head) -> Result<(), ExportError> {
    zip.start_file("subject.csv")?;
    record(zip, &["kind", "name", "value"])?;
    let profile = &head.person.profile;
    if let Some(subject_id) = &profile.subject_id {
        record(zip, &["subject", "subject_id", subject_id])?;
    }
    for anonymous_id in &profile.anonymous_ids {
        record(zip, &["subject", "anonymous_id", anonymous_id])?;
    }
    record(
        zip,
        &["subject", "created_at", &rfc3339(profile.created_at)],
    )?;
    record(
        zip,
        &["subject", "updated_at", &rfc3339(profile.updated_at)],
    )?;
    for (name, value) in &profile.identifiers {
        record(zip, &["identifier", name, value])?;
    }
    for (name, value) in &profile.traits {
        let text = match value {
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        record(zip, &["trait", name, &text])?;
    }
    Ok(())
}

/// `rights.csv`: a standing restriction and the objections.
fn rights<W: Write>(zip: &mut ZipStream<W>, head: &Head) -> Result<(), ExportError> {
    zip.start_file("rights.csv")?;
    record(zip, &["kind", "purpose", "since"])?;
    if let Some(since) = head.person.restricted_since {
        record(zip, &["restriction", "", &rfc3339(since)])?;
    }
    for (purpose, since) in &head.person.objections {
        record(zip, &["objection", purpose, &rfc3339(*since)])?;
    }
    Ok(())
}

/// `consent_state.csv`: the current statement per purpose.
fn consent_state<W: Write>(zip: &mut ZipStream<W>, head: &Head) -> Result<(), ExportError> {
    zip.start_file("consent_state.csv")?;
    record(zip, &["purpose", "status", "since"])?;
    for (purpose, status, since) in &head.person.current {
        record(zip, &[purpose, status, &rfc3339(*since)])?;
    }
    Ok(())
}

/// `processing.csv`: each purpose the data is processed for.
fn processing<W: Write>(zip: &mut ZipStream<W>, head: &Head) -> Result<(), ExportError> {
    zip.start_file("processing.csv")?;
    record(
        zip,
        &[
            "purpose",
            "description",
            "legal_basis",
            "legal_basis_in_effect",
            "not_in_effect_because",
            "retention_days",
            "categories",
            "sources",
            "interactions",
        ],
    )?;
    for p in &head.processing {
        record(
            zip,
            &[
                &p.purpose,
                &p.description,
                &p.legal_basis,
                if p.refused.is_none() { "true" } else { "false" },
                p.refused.unwrap_or(""),
                &p.retention_days.to_string(),
                &p.categories.join(";"),
                &p.sources.join(";"),
                &p.interactions.to_string(),
            ],
        )?;
    }
    Ok(())
}

/// `consent_records.jsonld`: the statements as ISO/IEC TS 27560 records, when the policy
/// declares its controller (no file otherwise).
fn consent_records<W: Write>(
    zip: &mut ZipStream<W>,
    policy: &Policy,
    head: &Head,
    statements: &[Recorded],
) -> Result<(), ExportError> {
    let records = super::consent_records(policy, head, statements);
    if records.is_null() {
        return Ok(());
    }
    zip.start_file("consent_records.jsonld")?;
    serde_json::to_writer_pretty(&mut *zip, &records).map_err(std::io::Error::from)?;
    zip.write_all(b"\n")?;
    Ok(())
}

/// `consents.csv`: every consent statement, oldest first, with its evidence; returns the
/// statements (without evidence) for their standard records.
fn consents<W: Write>(
    zip: &mut ZipStream<W>,
    conn: &mut DbConnection,
    policy: &Policy,
    receipts: &JwsSigner,
    head: &Head,
) -> Result<Vec<Recorded>, ExportError> {
    let mut statements = Vec::new();
    zip.start_file("consents.csv")?;
    record(
        zip,
        &[
            "id",
            "sequence",
            "purpose",
            "status",
            "recorded_at",
            "notice_id",
            "notice_version",
            "notice_language",
            "notice_text_sha256",
            "notice_url",
            "source",
            "method",
            "evidence",
            "merged_from",
            "consent_strings",
            "receipt",
        ],
    )?;
    for_each_statement(conn, head.person.owners.person(), |recorded, evidence| {
        statements.push(recorded.clone());
        let notice = recorded.notice.as_ref();
        let text = |value: Option<&String>| value.cloned().unwrap_or_default();
        let notice_url = notice
            .and_then(|notice| super::notice_url(policy, notice))
            .unwrap_or_default();
        let evidence = serde_json::to_string(&evidence).map_err(std::io::Error::from)?;
        record(
            zip,
            &[
                &recorded.id,
                &recorded.sequence.to_string(),
                &recorded.purpose,
                &recorded.status,
                &rfc3339(recorded.recorded_at),
                &text(notice.map(|n| &n.id)),
                &text(notice.map(|n| &n.version)),
                &text(notice.and_then(|n| n.language.as_ref())),
                &text(notice.and_then(|n| n.sha256.as_ref())),
                &notice_url,
                &recorded.source,
                &recorded.method,
                &evidence,
                &text(recorded.merged_from.as_ref()),
                &recorded
                    .consent_strings
                    .iter()
                    .map(|s| format!("{}:{}", s.standard, s.sha256))
                    .collect::<Vec<_>>()
                    .join(";"),
                &super::receipt_of(receipts, policy, head, &recorded),
            ],
        )
    })?;
    Ok(statements)
}

/// `interactions.csv`: one row per interaction and data field.
fn interactions<W: Write>(
    zip: &mut ZipStream<W>,
    conn: &mut DbConnection,
    policy: &Policy,
    head: &Head,
) -> Result<(), ExportError> {
    zip.start_file("interactions.csv")?;
    record(
        zip,
        &[
            "id",
            "type",
            "channel",
            "occurred_at",
            "recorded_at",
            "purposes",
            "collected_for",
            "field",
            "category",
            "value",
        ],
    )?;
    for_each_interaction(conn, policy, &head.person.owners, |opened| {
        let (occurred, recorded) = (
            rfc3339(opened.row.occurred_at),
            rfc3339(opened.row.recorded_at),
        );
        let purposes = opened.purposes.join(";");
        let collected_for = opened.collected_for.join(";");
        let common = [
            opened.id.as_str(),
            &opened.row.interaction_type,
            &opened.row.channel,
            &occurred,
            &recorded,
            &purposes,
            &collected_for,
        ];
        if opened.data.is_empty() {
            let mut fields = common.to_vec();
            fields.extend(["", "", ""]);
            return record(zip, &fields);
        }
        for (name, category, value) in &opened.data {
            let text = value_text(value);
            let mut fields = common.to_vec();
            fields.extend([name.as_str(), category.as_deref().unwrap_or(""), &text]);
            record(zip, &fields)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// `access_log.csv`: who read the person's data, when, for which purposes.
fn access_log<W: Write>(
    zip: &mut ZipStream<W>,
    conn: &mut DbConnection,
    head: &Head,
) -> Result<(), ExportError> {
    zip.start_file("access_log.csv")?;
    record(
        zip,
        &[
            "at",
            "action",
            "actor_key_id",
            "role",
            "purposes",
            "categories",
            "records",
            "decision",
            "reason",
        ],
    )?;
    for_each_access(conn, head.person.owners.person(), |row| {
        record(
            zip,
            &[
                &rfc3339(row.at),
                &row.action,
                row.actor_key_id.as_deref().unwrap_or(""),
                row.role.as_deref().unwrap_or(""),
                &json_list(&row.purposes).join(";"),
                &json_list(&row.categories).join(";"),
                &row.records.to_string(),
                &row.decision,
                row.reason.as_deref().unwrap_or(""),
            ],
        )
    })?;
    Ok(())
}
