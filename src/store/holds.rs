//! Legal holds: the interactions an erasure kept because a purpose with a legal hold still
//! needs them, under a key of the hold's own, and their end by retention.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::interactions::InteractionRow;
use super::schema::{held_interactions, interaction_purposes, interactions, legal_holds};
use super::{DbConnection, StoreError};

/// One erasure's hold: its key, wrapped by the master key.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = legal_holds)]
pub struct HoldRow {
    /// The erasure that kept the records (its tombstone's id).
    pub erasure_id: String,
    /// The audit pseudonym the erased person had.
    pub pseudonym: String,
    /// The hold key's id (hex), carried by its ciphertexts.
    pub key_id: String,
    /// The master key that wraps it.
    pub master_key_id: String,
    /// The key epoch it is wrapped in.
    pub epoch: Option<i64>,
    /// The wrapped hold key.
    pub wrapped: Vec<u8>,
    /// When the erasure kept the records.
    pub held_since: NaiveDateTime,
}

/// One held interaction.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = held_interactions)]
pub struct HeldRow {
    /// Its id (the interaction's internal id, which names nobody).
    pub id: String,
    /// The erasure that kept it.
    pub erasure_id: String,
    /// The interaction type.
    pub interaction_type: String,
    /// The channel.
    pub channel: String,
    /// When it happened.
    pub occurred_at: NaiveDateTime,
    /// JSON `[{"purpose": …, "until": …}]`: the holding purposes and when each ends.
    pub purposes: String,
    /// JSON object: field name → base64 ciphertext under the hold key.
    pub data_ct: String,
    /// The latest end among `purposes`: retention deletes the record then.
    pub held_until: NaiveDateTime,
}

/// The interactions stored under `owners` (a person and the people merged into them) tagged
/// with any of `purposes` (as their tags stand now, after retention), each with those of its
/// tags that are among `purposes`.
pub(crate) fn tagged_with(
    conn: &mut DbConnection,
    owners: &[&str],
    purposes: &[&str],
) -> Result<Vec<(InteractionRow, Vec<String>)>, StoreError> {
    if purposes.is_empty() {
        return Ok(Vec::new());
    }
    // Through the person's interactions (their `subject_pk` index) to the tags' key, not
    // through the purpose index, which would scan every interaction held for the purpose.
    let tags: Vec<(String, String)> = interaction_purposes::table
        .filter(
            interaction_purposes::interaction_pk.eq_any(
                interactions::table
                    .filter(interactions::subject_pk.eq_any(owners.to_vec()))
                    .select(interactions::id),
            ),
        )
        .filter(interaction_purposes::purpose.eq_any(purposes))
        .select((
            interaction_purposes::interaction_pk,
            interaction_purposes::purpose,
        ))
        .load(conn)?;
    let mut by_interaction: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (interaction, purpose) in &tags {
        by_interaction
            .entry(interaction.as_str())
            .or_default()
            .push(purpose.clone());
    }
    let ids: Vec<&str> = by_interaction.keys().copied().collect();
    let rows = super::load_chunked(&ids, |chunk| {
        interactions::table
            .filter(interactions::id.eq_any(chunk))
            .select(InteractionRow::as_select())
            .load(conn)
    })?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let purposes = by_interaction.remove(row.id.as_str()).unwrap_or_default();
            (row, purposes)
        })
        .collect())
}

/// Stores a hold and its records. Call inside the erasure's write transaction.
pub fn insert(conn: &mut DbConnection, hold: &HoldRow, held: &[HeldRow]) -> Result<(), StoreError> {
    diesel::insert_into(legal_holds::table)
        .values(hold)
        .execute(conn)?;
    // 8 columns a row: well within both backends' bound-parameter limits.
    for chunk in held.chunks(100) {
        match conn {
            DbConnection::Postgresql(pg) => diesel::insert_into(held_interactions::table)
                .values(chunk)
                .execute(pg)?,
            DbConnection::Sqlite(sqlite) => diesel::insert_into(held_interactions::table)
                .values(chunk)
                .execute(sqlite)?,
        };
    }
    Ok(())
}

/// A hold by its erasure's id.
pub fn find(conn: &mut DbConnection, erasure_id: &str) -> Result<Option<HoldRow>, StoreError> {
    Ok(legal_holds::table
        .find(erasure_id)
        .select(HoldRow::as_select())
        .first(conn)
        .optional()?)
}

/// A hold's records (those past their end too, until retention deletes them), oldest first.
pub(crate) fn records(
    conn: &mut DbConnection,
    erasure_id: &str,
) -> Result<Vec<HeldRow>, StoreError> {
    Ok(held_interactions::table
        .filter(held_interactions::erasure_id.eq(erasure_id))
        .order((held_interactions::occurred_at, held_interactions::id))
        .select(HeldRow::as_select())
        .load(conn)?)
}

/// What one expiry pass deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expired {
    /// Held records past their end.
    pub records: usize,
    /// Holds left without records, whose keys were destroyed: (erasure id, pseudonym).
    pub ended: Vec<(String, String)>,
}

/// Deletes the held records whose hold ended by `now`, then the holds (with their keys) that
/// hold nothing any more. Call inside a write transaction.
pub(crate) fn expire(conn: &mut DbConnection, now: NaiveDateTime) -> Result<Expired, StoreError> {
    let records =
        diesel::delete(held_interactions::table.filter(held_interactions::held_until.le(now)))
            .execute(conn)?;
    let ended: Vec<(String, String)> = legal_holds::table
        .filter(diesel::dsl::not(diesel::dsl::exists(
            held_interactions::table
                .filter(held_interactions::erasure_id.eq(legal_holds::erasure_id)),
        )))
        .select((legal_holds::erasure_id, legal_holds::pseudonym))
        .load(conn)?;
    let ids: Vec<&str> = ended.iter().map(|(id, _)| id.as_str()).collect();
    for chunk in ids.chunks(super::MAX_IN_LIST) {
        diesel::delete(legal_holds::table.filter(legal_holds::erasure_id.eq_any(chunk)))
            .execute(conn)?;
    }
    Ok(Expired { records, ended })
}

/// The holds whose key is not wrapped by `master_key_id` in `epoch` (holds are few: one per
/// erasure that kept anything, read at once).
pub(crate) fn keys_not_under(
    conn: &mut DbConnection,
    master_key_id: &str,
    epoch: i64,
) -> Result<Vec<HoldRow>, StoreError> {
    Ok(legal_holds::table
        .filter(
            legal_holds::master_key_id
                .ne(master_key_id)
                .or(legal_holds::epoch.is_null())
                .or(legal_holds::epoch.ne(epoch)),
        )
        .select(HoldRow::as_select())
        .load(conn)?)
}

/// Replaces a hold key's wrapping if it is still wrapped as `old` says; returns rows changed.
pub(crate) fn rewrap_key(
    conn: &mut DbConnection,
    old: &HoldRow,
    new_master: &str,
    new_epoch: i64,
    wrapped: &[u8],
) -> Result<usize, StoreError> {
    let still = legal_holds::erasure_id
        .eq(&old.erasure_id)
        .and(legal_holds::master_key_id.eq(&old.master_key_id));
    let set = (
        legal_holds::master_key_id.eq(new_master),
        legal_holds::epoch.eq(Some(new_epoch)),
        legal_holds::wrapped.eq(wrapped),
    );
    Ok(match old.epoch {
        Some(epoch) => diesel::update(legal_holds::table)
            .filter(still.and(legal_holds::epoch.eq(epoch)))
            .set(set)
            .execute(conn)?,
        None => diesel::update(legal_holds::table)
            .filter(still.and(legal_holds::epoch.is_null()))
            .set(set)
            .execute(conn)?,
    })
}

/// How many hold keys are wrapped in `epoch` or an earlier one.
pub(crate) fn keys_up_to_epoch(conn: &mut DbConnection, epoch: i64) -> Result<i64, StoreError> {
    Ok(legal_holds::table
        .filter(
            legal_holds::epoch
                .le(epoch)
                .or(legal_holds::epoch.is_null()),
        )
        .count()
        .get_result(conn)?)
}
