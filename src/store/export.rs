//! Reads for an Art. 15/20 export: everything held about one subject, in pages small enough to
//! stream, inside one snapshot (see [`snapshot`]).

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use super::audit::{subject_key, AuditRow};
use super::consents::ConsentRow;
use super::interactions::InteractionRow;
use super::schema::{
    audit_log, audit_subjects, consent_records, interaction_purposes, interactions, restrictions,
    subject_traits,
};
use super::{DbConnection, StoreError};

/// Runs `work` in one read-only transaction that sees a single snapshot of the database:
/// PostgreSQL `REPEATABLE READ READ ONLY`; SQLite's deferred transaction already reads one
/// snapshot (WAL) from its first read to its end. An export read in pages stays consistent
/// while writers carry on.
pub(crate) fn snapshot<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    super::transaction(conn, |conn| {
        if matches!(conn, DbConnection::Postgresql(_)) {
            conn.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .map_err(super::failed)?;
        }
        work(conn)
    })
}

/// Segmentable traits (stored filterable, not encrypted): name and value.
pub(crate) fn plain_traits(
    conn: &mut DbConnection,
    subject_pk: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    Ok(subject_traits::table
        .filter(subject_traits::subject_pk.eq(subject_pk))
        .order(subject_traits::name)
        .select((subject_traits::name, subject_traits::value))
        .load(conn)?)
}

/// Since when processing is restricted, if it is.
pub(crate) fn restricted_since(
    conn: &mut DbConnection,
    subject_pk: &str,
) -> Result<Option<NaiveDateTime>, StoreError> {
    Ok(restrictions::table
        .find(subject_pk)
        .select(restrictions::since)
        .first(conn)
        .optional()?)
}

/// How many interactions and consent statements a person has: `owners` is the person, then
/// the people merged into them (interactions stay with who recorded them; statements move).
pub(crate) fn counts(conn: &mut DbConnection, owners: &[&str]) -> Result<(i64, i64), StoreError> {
    let interactions = interactions::table
        .filter(interactions::subject_pk.eq_any(owners))
        .count()
        .get_result(conn)?;
    let consents = consent_records::table
        .filter(consent_records::subject_pk.eq(owners[0]))
        .count()
        .get_result(conn)?;
    Ok((interactions, consents))
}

#[derive(QueryableByName)]
struct PurposeChannel {
    #[diesel(sql_type = diesel::sql_types::Text)]
    purpose: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    channel: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    interactions: i64,
}

/// `(purpose, channel, interactions)` over the interactions stored under `owners` (a person and
/// the people merged into them), counted in the database (through the `(subject_pk,
/// client_index)` index and `interaction_purposes`' key).
pub(crate) fn purposes_by_channel(
    conn: &mut DbConnection,
    owners: &[&str],
) -> Result<Vec<(String, String, i64)>, StoreError> {
    let mut by_key: std::collections::BTreeMap<(String, String), i64> = Default::default();
    for owner in owners {
        let rows: Vec<PurposeChannel> = diesel::sql_query(
            "SELECT p.purpose AS purpose, i.channel AS channel, COUNT(*) AS interactions \
             FROM interactions i JOIN interaction_purposes p ON p.interaction_pk = i.id \
             WHERE i.subject_pk = $1 GROUP BY p.purpose, i.channel",
        )
        .bind::<diesel::sql_types::Text, _>(*owner)
        .load(conn)?;
        for row in rows {
            *by_key.entry((row.purpose, row.channel)).or_default() += row.interactions;
        }
    }
    Ok(by_key
        .into_iter()
        .map(|((purpose, channel), interactions)| (purpose, channel, interactions))
        .collect())
}

/// A page of the interactions stored under `owner` (a person, or one merged into them) after
/// `after` (a client index), in client-index order: the `(subject_pk, client_index)` index
/// serves it without sorting.
pub(crate) fn interactions_page(
    conn: &mut DbConnection,
    owner: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<InteractionRow>, StoreError> {
    let mut query = interactions::table
        .filter(interactions::subject_pk.eq(owner))
        .order(interactions::client_index.asc())
        .limit(limit)
        .select(InteractionRow::as_select())
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(interactions::client_index.gt(after.to_owned()));
    }
    Ok(query.load(conn)?)
}

/// The purposes these interactions are still held for (retention removes a purpose when it
/// expires), by interaction id, through `interaction_purposes`' key.
pub(crate) fn held_purposes(
    conn: &mut DbConnection,
    interaction_ids: &[&str],
) -> Result<Vec<(String, String)>, StoreError> {
    super::load_chunked(interaction_ids, |chunk| {
        interaction_purposes::table
            .filter(interaction_purposes::interaction_pk.eq_any(chunk))
            .order((
                interaction_purposes::interaction_pk,
                interaction_purposes::purpose,
            ))
            .select((
                interaction_purposes::interaction_pk,
                interaction_purposes::purpose,
            ))
            .load::<(String, String)>(conn)
    })
}

/// A page of the subject's consent statements after sequence `after`, oldest first.
pub(crate) fn consents_page(
    conn: &mut DbConnection,
    subject_pk: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<ConsentRow>, StoreError> {
    Ok(consent_records::table
        .filter(consent_records::subject_pk.eq(subject_pk))
        .filter(consent_records::sequence.gt(after))
        .order(consent_records::sequence.asc())
        .limit(limit)
        .select(ConsentRow::as_select())
        .load(conn)?)
}

/// A page of the audit entries naming this pseudonym with one of `actions`, after `after`,
/// oldest first.
pub(crate) fn audit_page(
    conn: &mut DbConnection,
    pseudonym: &str,
    actions: &[&str],
    after: i64,
    limit: i64,
) -> Result<Vec<AuditRow>, StoreError> {
    let (chain_len, _) = super::audit::head(conn)?;
    Ok(audit_log::table
        .filter(
            audit_log::seq.eq_any(
                audit_subjects::table
                    .filter(audit_subjects::subject_key.eq(subject_key(pseudonym)))
                    .filter(audit_subjects::seq.gt(after))
                    .select(audit_subjects::seq),
            ),
        )
        // The index narrows by the first 64 bits; the entry's own list decides.
        .filter(audit_log::subjects.like(format!("%\"{pseudonym}\"%")))
        .filter(audit_log::action.eq_any(actions))
        // Chain positions only (a row outside the chain is never reported as an entry).
        .filter(audit_log::seq.between(1, chain_len))
        .order(audit_log::seq.asc())
        .limit(limit)
        .select(AuditRow::as_select())
        .load(conn)?)
}

/// The newest `limit` interactions stored under `owners` (a person and the people merged into
/// them), newest first.
pub(crate) fn latest_interactions(
    conn: &mut DbConnection,
    owners: &[&str],
    limit: i64,
) -> Result<Vec<InteractionRow>, StoreError> {
    Ok(interactions::table
        .filter(interactions::subject_pk.eq_any(owners.to_vec()))
        .order((interactions::occurred_at.desc(), interactions::id.desc()))
        .limit(limit)
        .select(InteractionRow::as_select())
        .load(conn)?)
}
