//! The consent ledger: append-only grants and withdrawals, the current state kept beside them
//! in the same transaction, objections (Art. 21), and Global Privacy Control.
//!
//! Statements are only recorded for consent-based purposes. A `Sec-GPC: 1` signal opts the
//! person out of every purpose with `gpc = true`: a withdrawal (method `gpc`) for consent-based
//! ones, an objection for those based on legitimate interest (the only opt-out that basis
//! knows). Other bases (contract, legal obligation …) are not opted out of by a browser signal.

use std::collections::BTreeMap;

use chrono::{NaiveDateTime, Utc};
use serde::Serialize;

use crate::audit::{self, Actor, Entry};
use crate::auth::KeyId;
use crate::crypto::{FieldContext, IdentifierKind};
use crate::interactions::parse_purpose;
use crate::policy::{LegalBasis, NoticeError, Policy, PurposeId};
use crate::rejection::Rejection;
use crate::store::consents::{self as consent_store, ConsentRow};
use crate::store::{write_transaction, DbConnection};
use crate::subjects::sealed::{open, read_map, seal, write_map};
use crate::subjects::{self, SubjectError, SubjectHandle, SubjectId};
use crate::vault::Vault;

mod writes;
pub use writes::{receipt, ConsentWrites, Receipted};

/// A consent statement as an app sends it.
#[derive(Debug, Default)]
pub struct RawConsent {
    /// The app's id for the statement (idempotency key per subject), optional.
    pub id: Option<String>,
    /// The purpose.
    pub purpose: String,
    /// `granted` or `withdrawn`.
    pub status: String,
    /// The notice shown: id, version and (when declared in several) language.
    pub notice: Option<(String, String, Option<String>)>,
    /// Where: one of [`SOURCES`].
    pub source: String,
    /// How: one of [`METHODS`].
    pub method: String,
    /// The person's IP address, if the app collected it as evidence.
    pub ip_address: Option<String>,
    /// The person's user agent, if collected.
    pub user_agent: Option<String>,
}

/// A validated statement.
#[derive(Debug, Clone)]
pub struct ConsentDraft {
    client_id: Option<String>,
    purpose: PurposeId,
    granted: bool,
    notice: Option<NoticeRef>,
    source: String,
    method: String,
    evidence: BTreeMap<String, String>,
}

/// Where a statement may have been made (a closed vocabulary: these values are stored in clear,
/// so they may not carry free text).
pub const SOURCES: [&str; 9] = [
    "web",
    "app",
    "email",
    "sms",
    "phone",
    "in_person",
    "paper",
    "api",
    "import",
];

/// How a statement may have been made (a closed vocabulary, like [`SOURCES`]). `gpc` is the
/// method of the withdrawals a Global Privacy Control signal stands for, recorded by Custodia
/// itself; an app cannot send it.
pub const METHODS: [&str; 12] = [
    "checkbox",
    "toggle",
    "button",
    "banner",
    "form",
    "double_opt_in",
    "email_link",
    "preference_center",
    "account_settings",
    "unsubscribe_link",
    "signature",
    "verbal",
];

/// The notice a statement names, as declared in the policy when it was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NoticeRef {
    /// The notice's id.
    pub id: String,
    /// Its version.
    pub version: String,
    /// The language of the text shown (absent on statements recorded before notices were
    /// declared).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// SHA-256 of the text shown (absent on statements recorded before notices were declared).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

fn closed(what: &str, value: &str, allowed: &[&str]) -> Result<String, Rejection> {
    if allowed.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(Rejection::invalid(
            "invalid_consent",
            format!("`{what}` must be one of {}", allowed.join(", ")),
        ))
    }
}

fn bounded(what: &str, value: &str, max: usize) -> Result<String, Rejection> {
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(Rejection::invalid(
            "invalid_consent",
            format!("`{what}` must be 1 to {max} characters without control characters"),
        ));
    }
    Ok(value.to_owned())
}

impl ConsentDraft {
    /// The purpose the statement is about.
    pub fn purpose(&self) -> &PurposeId {
        &self.purpose
    }

    /// Validates a statement: a declared, consent-based purpose; `granted` or `withdrawn`;
    /// bounded texts.
    pub fn parse(policy: &Policy, raw: RawConsent) -> Result<ConsentDraft, Rejection> {
        let purpose = parse_purpose(policy, &raw.purpose)?;
        let declared = policy
            .purpose(purpose.as_str())
            .expect("parse_purpose returns declared purposes");
        if declared.legal_basis != LegalBasis::Consent {
            return Err(Rejection::invalid(
                "not_consent_based",
                format!(
                    "purpose `{purpose}` does not rest on consent; use objections to oppose it"
                ),
            ));
        }
        let granted = match raw.status.as_str() {
            "granted" => true,
            "withdrawn" => false,
            _ => {
                return Err(Rejection::invalid(
                    "invalid_consent",
                    "`status` must be `granted` or `withdrawn`",
                ))
            }
        };
        let notice = match raw.notice {
            Some((id, version, language)) => {
                let notice = policy
                    .notice(&id, &version, language.as_deref())
                    .map_err(|error| match error {
                        NoticeError::Undeclared => Rejection::invalid(
                            "undeclared_notice",
                            "`notice` names no notice version declared in the policy (id, version and language must match a [[notice]])",
                        ),
                        NoticeError::LanguageNeeded(languages) => Rejection::invalid(
                            "notice_language_required",
                            format!(
                                "this notice version is declared in several languages ({}): say which was shown in `notice.language`",
                                languages.join(", ")
                            ),
                        ),
                    })?;
                if granted && !notice.purposes.iter().any(|asked| purpose.is_within(asked)) {
                    return Err(Rejection::invalid(
                        "notice_not_for_purpose",
                        format!(
                            "notice `{}` version `{}` does not ask consent for `{purpose}`",
                            notice.id, notice.version
                        ),
                    ));
                }
                Some(NoticeRef {
                    id: notice.id.clone(),
                    version: notice.version.clone(),
                    language: Some(notice.language.clone()),
                    sha256: Some(notice.sha256.clone()),
                })
            }
            None if granted => {
                return Err(Rejection::invalid(
                    "invalid_consent",
                    "a grant needs the `notice` (id and version) the person agreed to",
                ))
            }
            None => None,
        };
        let mut evidence = BTreeMap::new();
        if let Some(ip) = raw.ip_address {
            evidence.insert(
                "ip_address".to_owned(),
                bounded("evidence.ip_address", &ip, 64)?,
            );
        }
        if let Some(agent) = raw.user_agent {
            evidence.insert(
                "user_agent".to_owned(),
                bounded("evidence.user_agent", &agent, 512)?,
            );
        }
        Ok(ConsentDraft {
            client_id: raw.id.map(|id| bounded("id", &id, 128)).transpose()?,
            purpose,
            granted,
            notice,
            source: closed("source", &raw.source, &SOURCES)?,
            method: closed("method", &raw.method, &METHODS)?,
            evidence,
        })
    }

    /// Keeps the consent strings the statement was read from in its evidence (sealed under the
    /// person's key like the rest of it), where [`string_refs`] names them.
    pub fn with_strings(mut self, tcf: Option<&str>, gpp: Option<&str>) -> ConsentDraft {
        for ((_, key), text) in STRING_EVIDENCE.iter().zip([tcf, gpp]) {
            if let Some(text) = text {
                self.evidence.insert((*key).to_owned(), text.to_owned());
            }
        }
        self
    }

    /// The withdrawal a GPC signal stands for, on one purpose, with the signal's evidence.
    fn gpc_withdrawal(purpose: PurposeId, evidence: &Evidence) -> ConsentDraft {
        ConsentDraft {
            client_id: None,
            purpose,
            granted: false,
            notice: None,
            source: "gpc".into(),
            method: "gpc".into(),
            evidence: evidence.clone(),
        }
    }
}

/// A recorded statement, as answered and signed.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    /// The app's id for the statement, or the internal one when the app gave none.
    pub id: String,
    /// The purpose.
    pub purpose: String,
    /// `granted` or `withdrawn`.
    pub status: String,
    /// When it was recorded.
    pub recorded_at: NaiveDateTime,
    /// Its place in the subject's history.
    pub sequence: i64,
    /// The notice, if any.
    pub notice: Option<NoticeRef>,
    /// Where.
    pub source: String,
    /// How.
    pub method: String,
    /// Whether this id had been recorded before (nothing new was written).
    pub duplicate: bool,
    /// For a statement recorded for a person since merged into this one (identity
    /// resolution): that person's audit pseudonym.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_from: Option<String>,
    /// The consent strings (TCF, GPP) the statement was read from, by SHA-256; the strings
    /// themselves are kept encrypted in its evidence.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub consent_strings: Vec<ConsentStringRef>,
}

/// A consent string a statement was read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConsentStringRef {
    /// `tcf` (an IAB TCF v2.2 TC string) or `gpp` (an IAB GPP string).
    pub standard: String,
    /// SHA-256 of the string, hex: whoever holds the string (the person's browser, the CMP)
    /// can show it is the one this statement was read from.
    pub sha256: String,
}

/// The evidence keys under which consent strings are kept (sealed), by standard: TCF, then GPP.
pub const STRING_EVIDENCE: [(&str, &str); 2] = [("tcf", "tcf_string"), ("gpp", "gpp_string")];

/// The consent strings named by a statement's evidence.
pub fn string_refs(evidence: &Evidence) -> Vec<ConsentStringRef> {
    STRING_EVIDENCE
        .iter()
        .filter_map(|(standard, key)| {
            evidence.get(*key).map(|text| ConsentStringRef {
                standard: (*standard).to_owned(),
                sha256: crate::population::sha256_hex(text),
            })
        })
        .collect()
}

/// A statement's evidence: name → value, sealed under the person's key when stored.
pub type Evidence = BTreeMap<String, String>;

/// The evidence a GPC signal's withdrawals keep (sealed like any statement's): how the signal
/// came (`signal`: `Sec-GPC: 1`, or the GPP string's GPC field), and what the call carried with
/// it: the IP address and user agent an app collected, the GPP string.
pub fn gpc_evidence(
    signal: &str,
    ip_address: Option<&str>,
    user_agent: Option<&str>,
    gpp_string: Option<&str>,
) -> Evidence {
    [
        ("signal", Some(signal)),
        ("ip_address", ip_address),
        ("user_agent", user_agent),
        ("gpp_string", gpp_string),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|value| (name.to_owned(), value.to_owned())))
    .collect()
}

/// What one consent call did.
#[derive(Debug, Clone)]
pub struct ConsentOutcome {
    /// The statement asked for (none for a call that only carried a GPC signal).
    pub recorded: Option<Recorded>,
    /// Purposes a GPC signal opted the person out of in this call (newly).
    pub gpc_applied: Vec<String>,
}

/// One consent call to record: whose, what, whether it carried a GPC signal, and by which key.
#[derive(Debug, Clone)]
pub struct ConsentJob {
    /// The person.
    pub subject_id: SubjectId,
    /// The statement; none for a call that only carries a GPC signal (a GPP string whose
    /// only news is its GPC field).
    pub draft: Option<ConsentDraft>,
    /// The GPC signal the call carried (`Sec-GPC: 1`, or a GPP section's GPC field), with the
    /// evidence its withdrawals keep ([`gpc_evidence`]); none without a signal.
    pub gpc: Option<Evidence>,
    /// The API key that made the call.
    pub recorded_by: KeyId,
    /// Who made the call, in which request (for the audit log).
    pub actor: Actor,
}

/// The audit action of recording a consent statement.
pub const ACTION_WRITE: &str = "consents.write";
/// The audit action of reading a subject's consent state.
pub const ACTION_READ: &str = "consents.read";
/// The audit action of opting a person out because of a Global Privacy Control signal.
pub const ACTION_GPC: &str = "consents.gpc";
/// The audit action of recording an objection.
pub const ACTION_OBJECT: &str = "objections.write";
/// The audit action of lifting an objection.
pub const ACTION_LIFT_OBJECTION: &str = "objections.lift";

/// The audit entry of a GPC signal that opted a person out of `applied` purposes (none when
/// nothing changed).
pub(crate) fn gpc_entry(
    actor: &Actor,
    policy: &Policy,
    subject: &SubjectHandle,
    applied: &[String],
) -> Option<Entry> {
    if applied.is_empty() {
        return None;
    }
    let mut entry = Entry::new(actor, ACTION_GPC)
        .subject(&subject.key)
        .category(CONSENT_CATEGORY)
        .records(applied.len());
    for purpose in applied.iter().filter_map(|p| PurposeId::parse(p).ok()) {
        entry.add_purpose(policy, &purpose);
    }
    Some(entry)
}

/// The pseudo-category of consent records in audit entries.
pub const CONSENT_CATEGORY: &str = "consent";

fn statement_entry(
    policy: &Policy,
    job: &ConsentJob,
    draft: &ConsentDraft,
    subject: &SubjectHandle,
) -> Entry {
    Entry::new(&job.actor, ACTION_WRITE)
        .subject(&subject.key)
        .purpose(policy, &draft.purpose)
        .category(CONSENT_CATEGORY)
        .records(1)
}

/// Records consent calls in order, in one transaction (subjects created if unknown; a GPC
/// signal applied before its call's statement). A conflict with a concurrent writer (the same
/// subject's next sequence taken) rolls the whole group back and tries again.
pub(crate) fn record_all(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    jobs: &[ConsentJob],
) -> Result<Vec<Result<ConsentOutcome, SubjectError>>, SubjectError> {
    let people: Vec<String> = jobs
        .iter()
        .map(|job| subjects::subject_index(vault, &job.subject_id))
        .collect();
    subjects::retry_on_conflict(|| {
        write_transaction(conn, |conn| {
            // Writers of the same people take turns from here, in one global order, and read
            // what the one before them stored (see `store::lock_in_order`).
            crate::store::lock_in_order(conn, "custodia/person/", &people)?;
            // Statements about ids erased with suppression are refused one by one, here in
            // the group, rather than by a look-up of their own before each call is queued.
            let mut distinct: Vec<&str> = people.iter().map(String::as_str).collect();
            distinct.sort_unstable();
            distinct.dedup();
            let suppressed = crate::store::erasure::suppressed_among(conn, &distinct)?;
            if suppressed.is_empty() {
                let recorded = record_unsuppressed(conn, vault, policy, jobs, &people)?;
                return Ok(recorded.into_iter().map(Ok).collect());
            }
            let kept: Vec<usize> = (0..jobs.len())
                .filter(|&index| !suppressed.contains(&people[index]))
                .collect();
            let mut outcomes: Vec<Result<ConsentOutcome, SubjectError>> = people
                .iter()
                .map(|_| Err(SubjectError::Suppressed))
                .collect();
            if !kept.is_empty() {
                let kept_jobs: Vec<ConsentJob> =
                    kept.iter().map(|&index| jobs[index].clone()).collect();
                let kept_people: Vec<String> =
                    kept.iter().map(|&index| people[index].clone()).collect();
                let recorded = record_unsuppressed(conn, vault, policy, &kept_jobs, &kept_people)?;
                for (index, outcome) in kept.into_iter().zip(recorded) {
                    outcomes[index] = Ok(outcome);
                }
            }
            Ok(outcomes)
        })
    })
}

/// Records the statements of calls about people who may be recorded, with their audit
/// entries. Call inside a write transaction, holding the people's locks.
fn record_unsuppressed(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    jobs: &[ConsentJob],
    people: &[String],
) -> Result<Vec<ConsentOutcome>, SubjectError> {
    if jobs.iter().all(|job| job.gpc.is_none()) {
        let (outcomes, entries) = record_group(conn, vault, policy, jobs, people)?;
        audit::append(conn, policy.sha256(), entries)?;
        return Ok(outcomes);
    }
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut entries = Vec::new();
    for job in jobs {
        let subject = subjects::find_or_create(conn, vault, &job.subject_id)?;
        let gpc_applied = match &job.gpc {
            Some(evidence) => apply_gpc(conn, vault, policy, &subject, &job.recorded_by, evidence)?,
            None => Vec::new(),
        };
        entries.extend(gpc_entry(&job.actor, policy, &subject, &gpc_applied));
        let recorded = match &job.draft {
            Some(draft) => {
                let recorded = append(conn, vault, &subject, draft, &job.recorded_by)?;
                if !recorded.duplicate {
                    entries.push(statement_entry(policy, job, draft, &subject));
                }
                Some(recorded)
            }
            None => None,
        };
        outcomes.push(ConsentOutcome {
            recorded,
            gpc_applied,
        });
    }
    audit::append(conn, policy.sha256(), entries)?;
    Ok(outcomes)
}

/// Records statements without GPC signals with set-based statements: one lookup for all
/// subjects, one for earlier copies of the statements, one for the subjects' next sequences,
/// then one multi-row insert and one replacement of the current rows. Call inside a write
/// transaction.
fn record_group(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    jobs: &[ConsentJob],
    indexes: &[String],
) -> Result<(Vec<ConsentOutcome>, Vec<Entry>), SubjectError> {
    use std::collections::HashMap;
    let now = Utc::now().naive_utc();
    let mut distinct: Vec<&str> = indexes.iter().map(String::as_str).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let existing: HashMap<String, String> = crate::store::subjects::ids_by_index(conn, &distinct)?
        .into_iter()
        .map(|(index, pk, _)| (index, pk))
        .collect();
    // Writers in other processes recording statements for the same people take turns: each
    // statement's sequence is derived from the rows already there.
    let existing_pks: Vec<&str> = existing.values().map(String::as_str).collect();
    crate::store::subjects::lock_for_write(conn, &existing_pks)?;
    let wanted: Vec<(&SubjectId, &str)> = jobs
        .iter()
        .zip(indexes)
        .map(|(job, index)| (&job.subject_id, index.as_str()))
        .collect();
    let (handles, planned) = subjects::handles_for(conn, vault, &existing, &wanted, now)?;
    subjects::insert_planned(conn, &planned)?;

    let ids: Vec<String> = jobs
        .iter()
        .map(|_| uuid::Uuid::now_v7().simple().to_string())
        .collect();
    let client_id = |job: &ConsentJob| job.draft.as_ref().and_then(|d| d.client_id.clone());
    let record_indexes: Vec<String> = jobs
        .iter()
        .zip(indexes)
        .zip(&ids)
        .map(|((job, index), id)| {
            let pk = &handles[index.as_str()].pk;
            record_index(vault, pk, client_id(job).as_deref().unwrap_or(id))
        })
        .collect();
    let pks: Vec<&str> = handles.values().map(|handle| handle.pk.as_str()).collect();
    let with_client_ids: Vec<&str> = jobs
        .iter()
        .zip(&record_indexes)
        .filter(|(job, _)| client_id(job).is_some())
        .map(|(_, index)| index.as_str())
        .collect();
    let mut earlier: HashMap<(String, String), ConsentRow> = HashMap::new();
    for row in consent_store::find_by_record_indexes(conn, &pks, &with_client_ids)? {
        earlier.insert((row.subject_pk.clone(), row.record_index.clone()), row);
    }
    let mut next: HashMap<String, i64> = consent_store::max_sequences(conn, &pks)?
        .into_iter()
        .map(|(pk, max)| (pk, max.unwrap_or(0) + 1))
        .collect();

    let mut rows = Vec::new();
    let mut entries = Vec::with_capacity(jobs.len());
    let mut outcomes = Vec::with_capacity(jobs.len());
    for (((job, index), id), record_index) in jobs.iter().zip(indexes).zip(ids).zip(record_indexes)
    {
        let handle = &handles[index.as_str()];
        let Some(draft) = &job.draft else {
            // Only calls carrying a GPC signal come without a statement, and those are
            // recorded one by one (`record_unsuppressed`): nothing to do here.
            outcomes.push(ConsentOutcome {
                recorded: None,
                gpc_applied: Vec::new(),
            });
            continue;
        };
        let key = (handle.pk.clone(), record_index.clone());
        if let Some(client_id) = &draft.client_id {
            if let Some(row) = earlier.get(&key) {
                outcomes.push(ConsentOutcome {
                    recorded: Some(recorded_from(row.clone(), client_id.clone(), true)),
                    gpc_applied: Vec::new(),
                });
                continue;
            }
        }
        let sequence = next.entry(handle.pk.clone()).or_insert(1);
        let row = statement_row(
            handle,
            draft,
            &job.recorded_by,
            id,
            record_index,
            *sequence,
            now,
        );
        *sequence += 1;
        let shown = draft.client_id.clone().unwrap_or_else(|| row.id.clone());
        if draft.client_id.is_some() {
            earlier.insert(key, row.clone());
        }
        let mut recorded = recorded_from(row.clone(), shown, false);
        recorded.consent_strings = string_refs(&draft.evidence);
        outcomes.push(ConsentOutcome {
            recorded: Some(recorded),
            gpc_applied: Vec::new(),
        });
        entries.push(statement_entry(policy, job, draft, handle));
        rows.push(row);
    }
    consent_store::append_many(conn, &rows)?;
    Ok((outcomes, entries))
}

/// The blind index that makes a statement id unique per subject.
fn record_index(vault: &Vault, subject_pk: &str, statement_id: &str) -> String {
    vault.blind_index().index_parts(
        IdentifierKind::ClientId,
        &[b"consent", subject_pk.as_bytes(), statement_id.as_bytes()],
    )
}

/// A statement's row: evidence and the app's id sealed under the subject's key.
fn statement_row(
    subject: &SubjectHandle,
    draft: &ConsentDraft,
    recorded_by: &KeyId,
    id: String,
    record_index: String,
    sequence: i64,
    recorded_at: NaiveDateTime,
) -> ConsentRow {
    let mut sealed_fields = draft.evidence.clone();
    if let Some(client_id) = &draft.client_id {
        sealed_fields.insert("$client_id".into(), client_id.clone());
    }
    let mut evidence = BTreeMap::new();
    for (name, value) in &sealed_fields {
        let context = FieldContext {
            subject: &subject.pk,
            record: &id,
            field: name,
        };
        evidence.insert(name.clone(), seal(&subject.key, &context, value.as_bytes()));
    }
    ConsentRow {
        sequence,
        subject_pk: subject.pk.clone(),
        record_index,
        purpose: draft.purpose.to_string(),
        status: if draft.granted {
            "granted"
        } else {
            "withdrawn"
        }
        .into(),
        notice_id: draft.notice.as_ref().map(|notice| notice.id.clone()),
        notice_version: draft.notice.as_ref().map(|notice| notice.version.clone()),
        notice_language: draft
            .notice
            .as_ref()
            .and_then(|notice| notice.language.clone()),
        notice_sha256: draft
            .notice
            .as_ref()
            .and_then(|notice| notice.sha256.clone()),
        source: draft.source.clone(),
        method: draft.method.clone(),
        evidence_ct: write_map(&evidence),
        recorded_at,
        recorded_by: recorded_by.to_string(),
        merged_from: None,
        id,
    }
}

/// Applies a GPC signal to a subject: withdrawals for consent-based `gpc` purposes not already
/// withdrawn, objections for legitimate-interest `gpc` purposes. Returns the purposes changed.
pub(crate) fn apply_gpc(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    subject: &SubjectHandle,
    recorded_by: &KeyId,
    evidence: &Evidence,
) -> Result<Vec<String>, SubjectError> {
    let current = consent_store::current_for(conn, &[subject.pk.as_str()])?;
    let now = Utc::now().naive_utc();
    let mut applied = Vec::new();
    for purpose in policy.purposes().filter(|p| p.gpc) {
        let changed = match purpose.legal_basis {
            LegalBasis::Consent => {
                let withdrawn = current
                    .iter()
                    .any(|row| row.purpose == purpose.id.as_str() && row.status == "withdrawn");
                if !withdrawn {
                    let withdrawal = ConsentDraft::gpc_withdrawal(purpose.id.clone(), evidence);
                    append(conn, vault, subject, &withdrawal, recorded_by)?;
                }
                !withdrawn
            }
            LegalBasis::LegitimateInterest => consent_store::set_objection(
                conn,
                &subject.pk,
                purpose.id.as_str(),
                Some((now, recorded_by.as_str())),
            )?,
            _ => false,
        };
        if changed {
            applied.push(purpose.id.to_string());
        }
    }
    Ok(applied)
}

fn append(
    conn: &mut DbConnection,
    vault: &Vault,
    subject: &SubjectHandle,
    draft: &ConsentDraft,
    recorded_by: &KeyId,
) -> Result<Recorded, SubjectError> {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let record_index = record_index(
        vault,
        &subject.pk,
        draft.client_id.as_deref().unwrap_or(&id),
    );
    if let Some(client_id) = &draft.client_id {
        if let Some(existing) =
            consent_store::find_by_record_index(conn, &subject.pk, &record_index)?
        {
            return Ok(recorded_from(existing, client_id.clone(), true));
        }
    }
    crate::store::subjects::lock_for_write(conn, &[subject.pk.as_str()])?;
    let sequence = consent_store::next_sequence(conn, &subject.pk)?;
    let row = statement_row(
        subject,
        draft,
        recorded_by,
        id,
        record_index,
        sequence,
        Utc::now().naive_utc(),
    );
    consent_store::append_many(conn, std::slice::from_ref(&row))?;
    let shown_id = draft.client_id.clone().unwrap_or_else(|| row.id.clone());
    let mut recorded = recorded_from(row, shown_id, false);
    recorded.consent_strings = string_refs(&draft.evidence);
    Ok(recorded)
}

fn recorded_from(row: ConsentRow, shown_id: String, duplicate: bool) -> Recorded {
    Recorded {
        id: shown_id,
        purpose: row.purpose,
        status: row.status,
        recorded_at: row.recorded_at,
        sequence: row.sequence,
        notice: row
            .notice_id
            .zip(row.notice_version)
            .map(|(id, version)| NoticeRef {
                id,
                version,
                language: row.notice_language,
                sha256: row.notice_sha256,
            }),
        source: row.source,
        method: row.method,
        duplicate,
        merged_from: row.merged_from,
        consent_strings: Vec::new(),
    }
}

/// Decrypts a stored statement: the statement as shown (with the app's id when it gave one)
/// and its evidence.
pub(crate) fn open_statement(
    subject: &SubjectHandle,
    row: ConsentRow,
) -> Result<(Recorded, BTreeMap<String, String>), crate::crypto::DecryptError> {
    let mut evidence = BTreeMap::new();
    for (name, sealed) in read_map(&row.evidence_ct)? {
        let context = FieldContext {
            subject: &subject.pk,
            record: &row.id,
            field: &name,
        };
        let value = String::from_utf8(open(&subject.key, &context, &sealed)?)
            .map_err(|_| crate::crypto::DecryptError)?;
        evidence.insert(name, value);
    }
    let shown = evidence
        .remove("$client_id")
        .unwrap_or_else(|| row.id.clone());
    let mut recorded = recorded_from(row, shown, false);
    recorded.consent_strings = string_refs(&evidence);
    Ok((recorded, evidence))
}

/// A subject's consent state: the current statement per purpose, the full history (with
/// decrypted evidence), standing objections and restriction.
#[derive(Debug, Clone)]
pub struct ConsentState {
    /// The latest statement per purpose, by purpose.
    pub current: Vec<Recorded>,
    /// Every statement, oldest first, with its evidence.
    pub history: Vec<(Recorded, BTreeMap<String, String>)>,
    /// Standing objections: purpose and since when.
    pub objections: Vec<(String, NaiveDateTime)>,
    /// Whether processing is restricted.
    pub restricted: bool,
    /// The subject's audit pseudonym.
    pub pseudonym: String,
}

/// Whether `purpose` bears on one of `purposes`: it is one of them, a descendant, or an
/// ancestor (a statement on `marketing` decides `marketing.email`).
fn bears_on(purpose: &str, purposes: &[PurposeId]) -> bool {
    PurposeId::parse(purpose).is_ok_and(|purpose| {
        purposes
            .iter()
            .any(|own| purpose.is_within(own) || own.is_within(&purpose))
    })
}

/// Reads a subject's consent state; `None` for an unknown subject. With `only`, the view of a
/// caller limited to those purposes: the current statements and objections that bear on them
/// (each purpose, its descendants and ancestors), and no history — nothing else is decrypted.
pub(crate) fn read_state(
    conn: &mut DbConnection,
    vault: &Vault,
    subject_id: &SubjectId,
    only: Option<&[PurposeId]>,
) -> Result<Option<ConsentState>, SubjectError> {
    let Some((subject, standing)) = subjects::find_with_standing(conn, vault, subject_id)? else {
        return Ok(None);
    };
    let relevant = |purpose: &str| only.is_none_or(|purposes| bears_on(purpose, purposes));
    let current_rows: Vec<_> = standing
        .current
        .into_iter()
        .filter(|row| relevant(&row.purpose))
        .collect();
    let mut history = Vec::new();
    for row in consent_store::history(conn, &subject.pk)? {
        let needed = only.is_none()
            || current_rows
                .iter()
                .any(|current| current.sequence == row.sequence);
        if needed {
            history.push(open_statement(&subject, row)?);
        }
    }
    let current = current_rows
        .iter()
        .filter_map(|row| {
            history
                .iter()
                .find(|(recorded, _)| recorded.sequence == row.sequence)
                .map(|(recorded, _)| recorded.clone())
        })
        .collect();
    if only.is_some() {
        history.clear();
    }
    let objections = standing
        .objections
        .into_iter()
        .filter(|(_, purpose, _)| relevant(purpose))
        .map(|(_, purpose, since)| (purpose, since))
        .collect();
    let restricted = !standing.restricted.is_empty();
    Ok(Some(ConsentState {
        current,
        history,
        objections,
        restricted,
        pseudonym: subject.key.pseudonym().to_owned(),
    }))
}

/// Records (or, with `lift`, lifts) an objection to a purpose for a subject (created if
/// unknown), with its audit entry. Returns whether anything changed.
pub(crate) fn object(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    subject_id: &SubjectId,
    purpose: &PurposeId,
    lift: bool,
    actor: &Actor,
) -> Result<bool, SubjectError> {
    let recorded_by = actor
        .key_id
        .as_deref()
        .unwrap_or(crate::audit::OPERATOR_ROLE);
    write_transaction(conn, |conn| {
        let subject = subjects::find_or_create(conn, vault, subject_id)?;
        let since = (!lift).then(|| (Utc::now().naive_utc(), recorded_by));
        let changed = consent_store::set_objection(conn, &subject.pk, purpose.as_str(), since)?;
        let action = if lift {
            ACTION_LIFT_OBJECTION
        } else {
            ACTION_OBJECT
        };
        let entry = Entry::new(actor, action)
            .subject(&subject.key)
            .purpose(policy, purpose)
            .category(CONSENT_CATEGORY)
            .records(usize::from(changed));
        audit::append(conn, policy.sha256(), vec![entry])?;
        Ok(changed)
    })
}

/// The audit action of restricting processing (Art. 18).
pub const ACTION_RESTRICT: &str = "subjects.restrict";
/// The audit action of lifting a restriction.
pub const ACTION_LIFT_RESTRICTION: &str = "subjects.restriction_lift";

/// Restricts (or, with `lift`, allows again) the processing of an existing subject's data, with
/// its audit entry. `None` for an unknown subject (a restriction never creates one); otherwise
/// whether anything changed.
pub(crate) fn restrict(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    subject_id: &SubjectId,
    lift: bool,
    actor: &Actor,
) -> Result<Option<bool>, SubjectError> {
    let recorded_by = actor
        .key_id
        .as_deref()
        .unwrap_or(crate::audit::OPERATOR_ROLE);
    write_transaction(conn, |conn| {
        let Some(subject) = subjects::find(conn, vault, subject_id)? else {
            return Ok(None);
        };
        let since = (!lift).then(|| (Utc::now().naive_utc(), recorded_by));
        let changed = consent_store::set_restriction(conn, &subject.pk, since)?;
        let action = if lift {
            ACTION_LIFT_RESTRICTION
        } else {
            ACTION_RESTRICT
        };
        let entry = Entry::new(actor, action)
            .subject(&subject.key)
            .records(usize::from(changed));
        audit::append(conn, policy.sha256(), vec![entry])?;
        Ok(Some(changed))
    })
}
