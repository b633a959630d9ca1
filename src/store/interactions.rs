//! Interactions and the purposes they were accepted for.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{interaction_purposes, interactions};
use super::{DbConnection, StoreError, MAX_IN_LIST};

/// A stored interaction.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = interactions)]
pub struct InteractionRow {
    /// The internal id.
    pub id: String,
    /// The subject's internal id.
    pub subject_pk: String,
    /// Blind index of the client's id, scoped to the subject.
    pub client_index: String,
    /// The client's id, encrypted.
    pub client_id_ct: Vec<u8>,
    /// The interaction type (`purchase`, `support_chat` …).
    pub interaction_type: String,
    /// The channel (`web`, `email` …).
    pub channel: String,
    /// When it happened (UTC).
    pub occurred_at: NaiveDateTime,
    /// When it was stored (UTC).
    pub recorded_at: NaiveDateTime,
    /// JSON array of the accepted purposes.
    pub purposes: String,
    /// JSON object: field name → base64 ciphertext.
    pub data_ct: String,
    /// The API key that recorded it.
    pub recorded_by: String,
}

/// One accepted purpose of one interaction.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = interaction_purposes)]
pub struct InteractionPurposeRow {
    /// The interaction's internal id.
    pub interaction_pk: String,
    /// The subject's internal id.
    pub subject_pk: String,
    /// The purpose.
    pub purpose: String,
}

/// `(subject_pk, client_index, client id ciphertext, purposes)` of stored interactions whose
/// client index is among `client_indexes`.
pub fn existing_by_client_index(
    conn: &mut DbConnection,
    client_indexes: &[&str],
) -> Result<Vec<(String, String, String)>, StoreError> {
    let mut found = Vec::new();
    for chunk in client_indexes.chunks(MAX_IN_LIST) {
        found.extend(
            interactions::table
                .filter(interactions::client_index.eq_any(chunk))
                .select((
                    interactions::subject_pk,
                    interactions::client_index,
                    interactions::purposes,
                ))
                .load::<(String, String, String)>(conn)?,
        );
    }
    Ok(found)
}

/// Inserts interactions and their purposes.
pub fn insert(
    conn: &mut DbConnection,
    rows: &[InteractionRow],
    purposes: &[InteractionPurposeRow],
) -> Result<(), StoreError> {
    super::insert_all!(conn, interactions::table, rows);
    super::insert_all!(conn, interaction_purposes::table, purposes);
    Ok(())
}

/// Where a page starts: after this `(occurred_at, id)`, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagePosition {
    /// The last row's time.
    pub occurred_at: NaiveDateTime,
    /// The last row's internal id.
    pub id: String,
}

/// A subject's interactions that carry at least one of `tags`, newest first, after `after`.
pub fn page_for_subject(
    conn: &mut DbConnection,
    subject_pk: &str,
    tags: &[&str],
    after: Option<&PagePosition>,
    limit: i64,
) -> Result<Vec<InteractionRow>, StoreError> {
    let tagged = interaction_purposes::table
        .filter(interaction_purposes::interaction_pk.eq(interactions::id))
        .filter(interaction_purposes::purpose.eq_any(tags));
    let mut query = interactions::table
        .filter(interactions::subject_pk.eq(subject_pk))
        .filter(diesel::dsl::exists(tagged))
        .select(InteractionRow::as_select())
        .order((interactions::occurred_at.desc(), interactions::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(
            interactions::occurred_at
                .lt(after.occurred_at)
                .or(interactions::occurred_at
                    .eq(after.occurred_at)
                    .and(interactions::id.lt(after.id.clone()))),
        );
    }
    Ok(query.load(conn)?)
}
