//! Legal holds at erasure (GDPR Art. 17(3)(b), (e)): interactions held for a purpose with a
//! legal hold (by default, a `legal_obligation` purpose) outlive an erasure until that
//! purpose's retention ends, restricted to it. The person's data key is destroyed as for any
//! erasure; the held records are re-encrypted under a key of the hold's own, keep only their
//! holding purposes and the fields those purposes may use, and name no identifier. Retention
//! deletes each record when its hold ends, and the hold's key with the last one.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use super::sealed::{open, read_map, seal, write_map};
use super::{FieldValue, Owners, SubjectError};
use crate::crypto::FieldContext;
use crate::interactions::open_minimised;
use crate::policy::{Policy, Purpose, PurposeId};
use crate::store::holds::{self as hold_store, HeldRow, HoldRow};
use crate::store::DbConnection;
use crate::vault::{Vault, WrappedKey, HOLD_KEY_LABEL};

/// The audit action of an erasure keeping records under a legal hold (target: the erasure).
pub const ACTION_KEEP: &str = "holds.keep";
/// The audit action of reading held records.
pub const ACTION_READ: &str = "holds.read";
/// The audit action of retention deleting held records whose hold ended.
pub const ACTION_EXPIRE: &str = "holds.expire";
/// The audit action of a hold ending with its last record: its key is destroyed (target: the
/// erasure).
pub const ACTION_END: &str = "holds.end";

/// What an erasure keeps for one purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Held {
    /// The purpose with the legal hold.
    pub purpose: String,
    /// Its legal basis.
    pub legal_basis: String,
    /// Interactions kept for it.
    pub interactions: usize,
    /// When the last of them is deleted: its retention for this purpose ends.
    pub until: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct HoldingPurpose {
    purpose: String,
    until: NaiveDateTime,
}

/// The purposes of this policy with a legal hold.
fn holding_purposes(policy: &Policy) -> Vec<&Purpose> {
    policy.purposes().filter(|p| p.legal_hold).collect()
}

/// One interaction an erasure would keep: its row and the holds on it.
struct Keep {
    row: crate::store::interactions::InteractionRow,
    holds: Vec<HoldingPurpose>,
}

/// The person's interactions an erasure at `now` keeps, with the purposes holding each.
fn to_keep(
    conn: &mut DbConnection,
    policy: &Policy,
    owners: &[&str],
    now: NaiveDateTime,
) -> Result<Vec<Keep>, SubjectError> {
    let purposes = holding_purposes(policy);
    let ids: Vec<&str> = purposes.iter().map(|p| p.id.as_str()).collect();
    let mut kept = Vec::new();
    for (row, tags) in hold_store::tagged_with(conn, owners, &ids)? {
        let mut holds: Vec<HoldingPurpose> = tags
            .iter()
            .filter_map(|tag| {
                let purpose = policy.purpose(tag)?;
                let until = row.occurred_at + Duration::days(i64::from(purpose.retention_days));
                (until > now).then(|| HoldingPurpose {
                    purpose: tag.clone(),
                    until,
                })
            })
            .collect();
        if holds.is_empty() {
            continue;
        }
        holds.sort_by(|a, b| a.purpose.cmp(&b.purpose));
        kept.push(Keep { row, holds });
    }
    Ok(kept)
}

/// What an erasure at `now` would keep, per holding purpose, and how many interactions in
/// all (nothing is written).
pub fn preview(
    conn: &mut DbConnection,
    policy: &Policy,
    owners: &[&str],
    now: NaiveDateTime,
) -> Result<Kept, SubjectError> {
    let kept = to_keep(conn, policy, owners, now)?;
    Ok(Kept {
        held: summarise(policy, &kept),
        records: kept.len(),
    })
}

fn summarise(policy: &Policy, kept: &[Keep]) -> Vec<Held> {
    let mut by_purpose: BTreeMap<&str, (usize, NaiveDateTime)> = BTreeMap::new();
    for record in kept {
        for hold in &record.holds {
            let entry = by_purpose
                .entry(hold.purpose.as_str())
                .or_insert((0, hold.until));
            entry.0 += 1;
            entry.1 = entry.1.max(hold.until);
        }
    }
    by_purpose
        .into_iter()
        // Every holding purpose was found in the policy (`to_keep`).
        .filter_map(|(purpose, (interactions, until))| {
            Some(Held {
                purpose: purpose.to_owned(),
                legal_basis: policy.purpose(purpose)?.legal_basis.as_str().to_owned(),
                interactions,
                until: until.and_utc(),
            })
        })
        .collect()
}

/// What an erasure kept.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    /// Per holding purpose.
    pub held: Vec<Held>,
    /// Interactions kept (each once, whatever holds it).
    pub records: usize,
}

/// Keeps what the legal holds need of a person being erased (`key`: their data key, still
/// there), under a new key of the hold's own; returns what is held (nothing: no hold is
/// stored). Call inside the erasure's write transaction, before the person's
/// rows are deleted.
#[allow(clippy::too_many_arguments)]
pub(super) fn keep(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    owners: &Owners,
    erasure_id: &str,
    pseudonym: &str,
    now: NaiveDateTime,
) -> Result<Kept, SubjectError> {
    let kept = to_keep(conn, policy, &owners.pks(), now)?;
    if kept.is_empty() {
        return Ok(Kept::default());
    }
    let (hold_key, wrapped) = vault.new_record_key(HOLD_KEY_LABEL, erasure_id)?;
    let mut rows = Vec::with_capacity(kept.len());
    for record in &kept {
        let purposes: Vec<&Purpose> = record
            .holds
            .iter()
            .filter_map(|hold| policy.purpose(&hold.purpose))
            .collect();
        let mut data = BTreeMap::new();
        for (name, sealed) in read_map(&record.row.data_ct)? {
            // Only the fields a holding purpose may use are kept (rule 4); the rest are erased.
            let usable = policy.field(&name).is_some_and(|field| {
                purposes
                    .iter()
                    .any(|purpose| policy.purpose_may_use(purpose, &field.category))
            });
            if !usable {
                continue;
            }
            let owner = owners.of(&record.row.subject_pk)?;
            let plaintext = open(
                &owner.key,
                &FieldContext {
                    subject: &owner.pk,
                    record: &record.row.id,
                    field: &name,
                },
                &sealed,
            )?;
            let place = FieldContext {
                subject: erasure_id,
                record: &record.row.id,
                field: &name,
            };
            data.insert(name.clone(), seal(&hold_key, &place, &plaintext));
        }
        let held_until = record
            .holds
            .iter()
            .map(|hold| hold.until)
            .max()
            .unwrap_or(now);
        rows.push(HeldRow {
            id: record.row.id.clone(),
            erasure_id: erasure_id.to_owned(),
            interaction_type: record.row.interaction_type.clone(),
            channel: record.row.channel.clone(),
            occurred_at: record.row.occurred_at,
            purposes: serde_json::to_string(&record.holds).expect("holds encode"),
            data_ct: write_map(&data),
            held_until,
        });
    }
    hold_store::insert(
        conn,
        &HoldRow {
            erasure_id: erasure_id.to_owned(),
            pseudonym: pseudonym.to_owned(),
            key_id: wrapped.key_id,
            master_key_id: wrapped.master_key_id,
            epoch: wrapped.epoch,
            wrapped: wrapped.wrapped,
            held_since: now,
        },
        &rows,
    )?;
    Ok(Kept {
        held: summarise(policy, &kept),
        records: kept.len(),
    })
}

/// One held record, as read for a holding purpose.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HeldInteraction {
    /// The interaction type.
    #[serde(rename = "type")]
    pub interaction_type: String,
    /// The channel.
    pub channel: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// When its hold for the purpose read ends.
    pub held_until: DateTime<Utc>,
    /// The fields the purpose may use.
    #[schema(value_type = Object)]
    pub data: BTreeMap<String, serde_json::Value>,
    /// Fields kept for another holding purpose that this one may not use: withheld.
    pub withheld: Vec<String>,
}

/// A hold's records usable for one purpose.
#[derive(Debug, Clone)]
pub struct HeldRecords {
    /// The records, oldest first.
    pub interactions: Vec<HeldInteraction>,
    /// Whether any record of the hold is held for the purpose (or an ancestor of it), ended or
    /// not: `false` means the purpose may not use this hold at all.
    pub held_for_purpose: bool,
    /// The pseudonym the erased person had (for the audit entry).
    pub pseudonym: String,
}

/// The records the erasure `erasure_id` holds that `purpose` may use at `now` (rule 3: the
/// purpose is a holding purpose or descends from one, and that hold has not ended), minimised
/// for it (rule 4). `None` when there is no such hold.
pub(crate) fn read(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    erasure_id: &str,
    purpose: &Purpose,
    now: NaiveDateTime,
) -> Result<Option<HeldRecords>, SubjectError> {
    let Some(hold) = hold_store::find(conn, erasure_id)? else {
        return Ok(None);
    };
    let key = vault.open_record_key(
        HOLD_KEY_LABEL,
        erasure_id,
        &WrappedKey {
            key_id: hold.key_id.clone(),
            master_key_id: hold.master_key_id.clone(),
            epoch: hold.epoch,
            wrapped: hold.wrapped.clone(),
        },
    )?;
    let mut interactions = Vec::new();
    let mut held_for_purpose = false;
    for row in hold_store::records(conn, erasure_id)? {
        let holds: Vec<HoldingPurpose> =
            serde_json::from_str(&row.purposes).map_err(|_| crate::crypto::DecryptError)?;
        let covering: Vec<&HoldingPurpose> = holds
            .iter()
            .filter(|hold| {
                PurposeId::parse(&hold.purpose).is_ok_and(|tag| purpose.id.is_within(&tag))
            })
            .collect();
        held_for_purpose |= !covering.is_empty();
        // No hold outlives the record's own end (the latest of its holds).
        let held_until = covering
            .iter()
            .map(|hold| hold.until)
            .filter(|until| *until > now && row.held_until > now)
            .max();
        let Some(held_until) = held_until else {
            continue;
        };
        let (data, withheld) = open_minimised(policy, purpose, &row.data_ct, |name, sealed| {
            let place = FieldContext {
                subject: erasure_id,
                record: &row.id,
                field: name,
            };
            FieldValue::from_plaintext(&open(&key, &place, sealed)?)
                .ok_or(crate::crypto::DecryptError)
        })?;
        interactions.push(HeldInteraction {
            interaction_type: row.interaction_type,
            channel: row.channel,
            occurred_at: row.occurred_at.and_utc(),
            held_until: held_until.and_utc(),
            data: data
                .into_iter()
                .map(|(name, value)| (name, value.to_json()))
                .collect(),
            withheld,
        });
    }
    Ok(Some(HeldRecords {
        interactions,
        held_for_purpose,
        pseudonym: hold.pseudonym,
    }))
}
