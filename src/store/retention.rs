//! Retention: removing a purpose from interactions older than its retention, and deleting the
//! interactions no purpose holds any more — in bounded batches, decided by the database.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{interaction_purposes, interactions};
use super::{DbConnection, StoreError};

/// What one batch removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpiredBatch {
    /// Purpose rows removed.
    pub purpose_rows: usize,
    /// Interactions deleted (no purpose left).
    pub interactions: usize,
}

/// Removes `purpose` from up to `limit` interactions that occurred before `cutoff`, and deletes
/// those of them that no purpose holds any more. Call inside a write transaction.
pub(crate) fn expire_batch(
    conn: &mut DbConnection,
    purpose: &str,
    cutoff: NaiveDateTime,
    limit: i64,
) -> Result<ExpiredBatch, StoreError> {
    let ids: Vec<String> = interaction_purposes::table
        .filter(interaction_purposes::purpose.eq(purpose))
        .filter(interaction_purposes::occurred_at.lt(cutoff))
        .select(interaction_purposes::interaction_pk)
        .limit(limit)
        .load(conn)?;
    if ids.is_empty() {
        return Ok(ExpiredBatch::default());
    }
    let purpose_rows = diesel::delete(
        interaction_purposes::table
            .filter(interaction_purposes::purpose.eq(purpose))
            .filter(interaction_purposes::interaction_pk.eq_any(&ids)),
    )
    .execute(conn)?;
    let still_held: std::collections::HashSet<String> = interaction_purposes::table
        .filter(interaction_purposes::interaction_pk.eq_any(&ids))
        .select(interaction_purposes::interaction_pk)
        .distinct()
        .load::<String>(conn)?
        .into_iter()
        .collect();
    let orphans: Vec<&String> = ids.iter().filter(|id| !still_held.contains(*id)).collect();
    let interactions = if orphans.is_empty() {
        0
    } else {
        diesel::delete(interactions::table.filter(interactions::id.eq_any(orphans)))
            .execute(conn)?
    };
    Ok(ExpiredBatch {
        purpose_rows,
        interactions,
    })
}
