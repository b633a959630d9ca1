//! Erasure (Art. 17) by crypto-shredding: the subject's data key is destroyed first, then every
//! row about the person, in one transaction with its audit entry; a tombstone without any
//! identifier and a signed receipt prove it.

use chrono::{NaiveDateTime, SubsecRound, Utc};
use serde::Serialize;

use super::holds::{self, Held};
use super::sealed::read_map;
use super::{subject_index, Owners, SubjectError, SubjectHandle, SubjectId};
use crate::audit::{self, Actor, Entry};
use crate::crypto::JwsSigner;
use crate::policy::Policy;
use crate::store::erasure::{
    self as erasure_store, ErasedCounts, ErasedKey, ErasureRow, SuppressionRow,
};
use crate::store::subjects as subject_store;
use crate::store::{write_transaction, Database, DbConnection};
use crate::vault::Vault;

/// The audit action of an erasure.
pub const ACTION_ERASE: &str = "subjects.erase";
/// The audit action of looking at what an erasure would do (before confirming it).
pub const ACTION_ERASURE_PREVIEW: &str = "subjects.erasure_preview";
/// The audit action of blocking ingestion for an erased subject id.
pub const ACTION_SUPPRESS: &str = "subjects.suppress";
/// The audit action of lifting that block.
pub const ACTION_LIFT_SUPPRESSION: &str = "subjects.suppression_lift";

/// What follows a committed erasure in this process: the key leaves the cache, and the old
/// copies of its row leave the database files (the answer waits for that; see
/// `store::old_copies`). When that does not hold in time, the periodic job `old_copies` tries
/// again until it does. Returns whether it held before the answer.
pub async fn after_erasure(db: &Database, vault: &Vault, erased: Vec<ErasedKey>) -> bool {
    for key in &erased {
        vault.forget_data_key(&key.subject_pk);
    }
    db.remove_old_copies(erased).await
}

/// What an erasure did, with its signed receipt.
#[derive(Debug, Clone)]
pub struct Erasure {
    /// The erasure's id.
    pub id: String,
    /// When.
    pub erased_at: NaiveDateTime,
    /// What was deleted, by kind.
    pub counts: ErasedCounts,
    /// What legal holds keep, per purpose, and until when.
    pub held: Vec<Held>,
    /// A compact JWS (EdDSA, the receipt key) over [`ErasureClaims`].
    pub receipt: String,
    /// Where the destroyed keys were, the person's first, then those of the people merged into
    /// them (for the caller to drop caches and remove old copies of the key rows from the
    /// database files; never shown).
    pub erased_keys: Vec<ErasedKey>,
    /// When every backup and WAL archive stops being readable for this person: the key epoch
    /// their data key was wrapped in is destroyed then (docs/data-protection.md).
    pub backups_unreadable_by: NaiveDateTime,
}

/// The claims of an erasure receipt.
#[derive(Debug, Serialize)]
pub struct ErasureClaims<'a> {
    /// `custodia`.
    pub iss: &'static str,
    /// `erasure`.
    pub typ: &'static str,
    /// The erasure's id.
    pub jti: &'a str,
    /// The app's subject_id of the person erased.
    pub sub: &'a str,
    /// Seconds since the epoch.
    pub iat: i64,
    /// When, RFC 3339.
    pub erased_at: String,
    /// What was deleted, by kind.
    pub erased: &'a ErasedCounts,
    /// What legal holds keep, restricted to their purpose, and until when (empty: nothing).
    pub held: &'a [Held],
    /// The pseudonym the person had in the audit log, which names this erasure too.
    pub audit_pseudonym: &'a str,
    /// Whether ingestion for the subject_id stays blocked until lifted.
    pub suppressed: bool,
    /// The policy in force.
    pub policy_sha256: &'a str,
    /// When copies made before the erasure (backups, WAL archives, replicas' old files) stop
    /// being readable, even with the master key: RFC 3339.
    pub backups_unreadable_by: String,
}

/// Erases a subject, and with `suppress` blocks ingestion for its id until lifted; `None` when
/// no subject has this id. The person's other open requests are completed, explained by this
/// erasure (`executing`: the request that asked for it, which completes itself).
#[allow(clippy::too_many_arguments)]
pub fn erase(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    signer: &JwsSigner,
    subject_id: &SubjectId,
    suppress: bool,
    executing: Option<&str>,
    actor: &Actor,
) -> Result<Option<Erasure>, SubjectError> {
    let index = subject_index(vault, subject_id);
    write_transaction(conn, |conn| {
        let Some(row) = subject_store::find_by_index(conn, &index)? else {
            return Ok(None);
        };
        // The pseudonym comes from the data key, which is about to be destroyed; what the
        // legal holds keep is re-encrypted under a key of the hold's own before that.
        let key = vault.data_key_for(conn, &row.id)?;
        let pseudonym = key.pseudonym().to_owned();
        let id = uuid::Uuid::now_v7().simple().to_string();
        let erased_at = Utc::now().naive_utc().trunc_subsecs(6);
        let person = SubjectHandle {
            pk: row.id.clone(),
            key,
        };
        // The person, then the people merged into them, who hold their interactions under keys
        // of their own (locked in the order a consolidation step locks them).
        subject_store::lock_for_write(conn, &[row.id.as_str()])?;
        let owners = Owners::load(conn, vault, person)?;
        subject_store::lock_for_write(conn, &owners.pks()[1..])?;
        let kept = holds::keep(conn, vault, policy, &owners, &id, &pseudonym, erased_at)?;
        // The members first (their membership names the person), each key before its rows.
        let mut erased_keys = Vec::new();
        let mut members = ErasedCounts::default();
        for member in &owners.pks()[1..] {
            let deleted = erasure_store::delete_member(conn, member, &pseudonym)?;
            members.data_keys += deleted.counts.data_keys;
            members.interactions += deleted.counts.interactions;
            erased_keys.push(deleted.key);
        }
        let erasure_store::Deleted {
            mut counts,
            key: erased_key,
            open_requests,
            aliases,
        } = erasure_store::delete_subject(conn, &row.id, &row.subject_index, &pseudonym)?;
        erased_keys.insert(0, erased_key);
        counts.data_keys += members.data_keys;
        counts.interactions += members.interactions;
        // Counted as the officer sees the person: identifiers and traits, not index rows.
        counts.identifiers = read_map(&row.identifiers_ct)?.len();
        counts.traits += read_map(&row.traits_ct)?.len();
        counts.held_interactions = kept.records;
        counts.interactions -= kept.records.min(counts.interactions);
        let backups_unreadable_by = vault
            .erasure_reaches_backups_by(conn, erased_at)?
            .trunc_subsecs(0);
        let receipt = signer.sign(&ErasureClaims {
            iss: "custodia",
            typ: "erasure",
            jti: &id,
            sub: subject_id.as_str(),
            iat: erased_at.and_utc().timestamp(),
            erased_at: audit::format_time(&erased_at),
            erased: &counts,
            held: &kept.held,
            audit_pseudonym: &pseudonym,
            suppressed: suppress,
            policy_sha256: policy.sha256(),
            backups_unreadable_by: audit::format_time(&backups_unreadable_by),
        });
        let receipt_sha256 = hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            receipt.as_bytes(),
        ));
        erasure_store::insert_tombstone(
            conn,
            &ErasureRow {
                id: id.clone(),
                pseudonym: pseudonym.clone(),
                erased_at,
                erased_by: actor.key_id.clone(),
                counts: serde_json::to_string(&counts).expect("counts encode"),
                receipt_sha256,
            },
        )?;
        let mut entries = Vec::new();
        if suppress {
            // Every id the person was known by: their own, and each anonymous id linked to
            // them, so that no later message or link brings any of them back.
            let mut suppressed = vec![row.subject_index.clone()];
            suppressed.extend(aliases);
            for subject_index in suppressed {
                erasure_store::suppress(
                    conn,
                    &SuppressionRow {
                        subject_index,
                        pseudonym: pseudonym.clone(),
                        since: erased_at,
                        recorded_by: actor.key_id.clone(),
                    },
                )?;
            }
            entries.push(Entry::new(actor, ACTION_SUPPRESS).pseudonym(Some(pseudonym.clone())));
        }
        let mut entry = Entry::new(actor, ACTION_ERASE)
            .pseudonym(Some(pseudonym.clone()))
            .target(id.clone())
            .records(counts.total());
        for (category, count) in [
            ("identifiers", counts.identifiers),
            ("traits", counts.traits),
            ("interactions", counts.interactions),
            ("consent", counts.consent_records + counts.objections),
        ] {
            if count > 0 {
                entry.add_category(category);
            }
        }
        entries.insert(0, entry);
        if !kept.held.is_empty() {
            let mut hold = Entry::new(actor, holds::ACTION_KEEP)
                .pseudonym(Some(pseudonym.clone()))
                .target(id.clone())
                .records(kept.records)
                .category("interactions");
            for held in &kept.held {
                if let Ok(purpose) = crate::policy::PurposeId::parse(&held.purpose) {
                    hold.add_purpose(policy, &purpose);
                }
            }
            entries.insert(1, hold);
        }
        audit::append(conn, policy.sha256(), entries)?;
        let others: Vec<&str> = open_requests
            .iter()
            .map(String::as_str)
            .filter(|request| Some(*request) != executing)
            .collect();
        crate::requests::close_after_erasure(conn, vault, policy, &others, &id, &pseudonym, actor)?;
        Ok(Some(Erasure {
            id,
            erased_at,
            counts,
            held: kept.held,
            receipt,
            erased_keys,
            backups_unreadable_by,
        }))
    })
}

/// Lifts the suppression of a subject id, with its audit entry; `false` when it had none.
pub fn lift_suppression(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    subject_id: &SubjectId,
    actor: &Actor,
) -> Result<bool, SubjectError> {
    let index = subject_index(vault, subject_id);
    write_transaction(conn, |conn| {
        let Some(lifted) = erasure_store::lift(conn, &index)? else {
            return Ok(false);
        };
        let entry = Entry::new(actor, ACTION_LIFT_SUPPRESSION).pseudonym(Some(lifted.pseudonym));
        audit::append(conn, policy.sha256(), vec![entry])?;
        Ok(true)
    })
}

/// The subject ids among `ids` whose ingestion is suppressed.
pub fn suppressed_among<'a>(
    conn: &mut DbConnection,
    vault: &Vault,
    ids: &[&'a SubjectId],
) -> Result<Vec<&'a SubjectId>, SubjectError> {
    let indexes: Vec<String> = ids.iter().map(|id| subject_index(vault, id)).collect();
    let lookup: Vec<&str> = indexes.iter().map(String::as_str).collect();
    let suppressed = erasure_store::suppressed_among(conn, &lookup)?;
    Ok(ids
        .iter()
        .zip(&indexes)
        .filter(|(_, index)| suppressed.contains(index))
        .map(|(id, _)| *id)
        .collect())
}

/// What an erasure of a person would do, as the officer sees the person: shown before they
/// confirm it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErasurePreview {
    /// Identifiers (e-mail, phone) that would be erased.
    pub identifiers: usize,
    /// Traits (encrypted and segmentable alike).
    pub traits: usize,
    /// Interactions that would be erased.
    pub interactions: usize,
    /// Interactions a legal hold would keep (see `held`).
    pub held_interactions: usize,
    /// What legal holds would keep, per purpose, and until when.
    pub held: Vec<Held>,
    /// Consent statements (with their evidence).
    pub consent_records: usize,
    /// Standing objections.
    pub objections: usize,
    /// Whether processing is restricted now.
    pub restricted: bool,
    /// Open data-subject requests naming the person: the erasure completes them, explained.
    pub open_requests: usize,
}

/// What erasing `subject_id` now would do (nothing is written); `None` when no subject has
/// this id. Also returns the person's pseudonym, for the audit entry.
pub fn preview(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    subject_id: &SubjectId,
) -> Result<Option<(ErasurePreview, String)>, SubjectError> {
    let index = subject_index(vault, subject_id);
    let Some(row) = subject_store::find_by_index(conn, &index)? else {
        return Ok(None);
    };
    let key = vault.data_key_for(conn, &row.id)?;
    let pseudonym = key.pseudonym().to_owned();
    let now = Utc::now().naive_utc();
    let owners = Owners::load(
        conn,
        vault,
        SubjectHandle {
            pk: row.id.clone(),
            key,
        },
    )?;
    let kept = holds::preview(conn, policy, &owners.pks(), now)?;
    let counts = erasure_store::preview(conn, &owners.pks(), &row.subject_index)?;
    Ok(Some((
        ErasurePreview {
            identifiers: read_map(&row.identifiers_ct)?.len(),
            traits: read_map(&row.traits_ct)?.len() + counts.segmentable_traits,
            interactions: counts.interactions.saturating_sub(kept.records),
            held_interactions: kept.records,
            held: kept.held,
            consent_records: counts.consent_records,
            objections: counts.objections,
            restricted: counts.restricted,
            open_requests: counts.open_requests,
        },
        pseudonym,
    )))
}
