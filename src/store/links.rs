//! Identity resolution: the anonymous ids linked to a person (`subject_aliases`), the people
//! merged into a person (`subject_members`), and moving a merged person's few small rows.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::consents::{ConsentRow, CurrentRow};
use super::interactions::InteractionRow;
use super::schema::{
    consent_current, consent_records, interaction_purposes, interactions, objections, restrictions,
    subject_aliases, subject_identifiers, subject_members, subject_traits,
};
use super::{DbConnection, StoreError};

/// An anonymous id linked to a person.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = subject_aliases)]
pub struct AliasRow {
    /// The blind index of the anonymous id (under the anonymous-id key).
    pub alias_index: String,
    /// The person.
    pub subject_pk: String,
    /// The anonymous id, sealed under the person's data key.
    pub alias_ct: Vec<u8>,
    /// When it was linked.
    pub linked_at: NaiveDateTime,
}

/// `(alias index, person)` of the aliases among these indexes.
pub(crate) fn subjects_of_aliases(
    conn: &mut DbConnection,
    indexes: &[&str],
) -> Result<Vec<(String, String)>, StoreError> {
    super::load_chunked(indexes, |chunk| {
        subject_aliases::table
            .filter(subject_aliases::alias_index.eq_any(chunk))
            .select((subject_aliases::alias_index, subject_aliases::subject_pk))
            .load::<(String, String)>(conn)
    })
}

/// The anonymous ids linked to a person.
pub(crate) fn aliases_of(
    conn: &mut DbConnection,
    subject_pk: &str,
) -> Result<Vec<AliasRow>, StoreError> {
    Ok(subject_aliases::table
        .filter(subject_aliases::subject_pk.eq(subject_pk))
        .order(subject_aliases::linked_at)
        .select(AliasRow::as_select())
        .load(conn)?)
}

/// Links an anonymous id to a person.
pub(crate) fn insert_alias(conn: &mut DbConnection, row: &AliasRow) -> Result<(), StoreError> {
    diesel::insert_into(subject_aliases::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Replaces the sealed id of aliases (re-sealed under the person they now belong to).
pub(crate) fn move_aliases(conn: &mut DbConnection, rows: &[AliasRow]) -> Result<(), StoreError> {
    for row in rows {
        diesel::update(subject_aliases::table.find(&row.alias_index))
            .set((
                subject_aliases::subject_pk.eq(&row.subject_pk),
                subject_aliases::alias_ct.eq(&row.alias_ct),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Deletes a person's aliases; returns their indexes (erasure suppresses them).
pub(crate) fn delete_aliases(
    conn: &mut DbConnection,
    subject_pk: &str,
) -> Result<Vec<String>, StoreError> {
    let indexes: Vec<String> = subject_aliases::table
        .filter(subject_aliases::subject_pk.eq(subject_pk))
        .select(subject_aliases::alias_index)
        .load(conn)?;
    diesel::delete(subject_aliases::table.filter(subject_aliases::subject_pk.eq(subject_pk)))
        .execute(conn)?;
    Ok(indexes)
}

/// How many interactions these people hold (a merge's audit entry counts them).
pub(crate) fn interaction_count(
    conn: &mut DbConnection,
    subject_pks: &[&str],
) -> Result<i64, StoreError> {
    Ok(interactions::table
        .filter(interactions::subject_pk.eq_any(subject_pks))
        .count()
        .get_result(conn)?)
}

/// Makes `member_pk` a member of `person_pk`, and the members it had members of `person_pk`
/// too (a person is never a member of a member). Nothing of the member's moves.
pub(crate) fn add_member(
    conn: &mut DbConnection,
    member_pk: &str,
    person_pk: &str,
    merged_at: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::update(subject_members::table.filter(subject_members::person_pk.eq(member_pk)))
        .set(subject_members::person_pk.eq(person_pk))
        .execute(conn)?;
    diesel::insert_into(subject_members::table)
        .values((
            subject_members::member_pk.eq(member_pk),
            subject_members::person_pk.eq(person_pk),
            subject_members::merged_at.eq(merged_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// The internal ids of the people merged into a person, in the order they were merged.
pub(crate) fn members_of(
    conn: &mut DbConnection,
    person_pk: &str,
) -> Result<Vec<String>, StoreError> {
    Ok(subject_members::table
        .filter(subject_members::person_pk.eq(person_pk))
        .order((subject_members::merged_at, subject_members::member_pk))
        .select(subject_members::member_pk)
        .load(conn)?)
}

/// `(person, member)` for every member of these people.
pub(crate) fn members_of_all(
    conn: &mut DbConnection,
    person_pks: &[&str],
) -> Result<Vec<(String, String)>, StoreError> {
    super::load_chunked(person_pks, |chunk| {
        subject_members::table
            .filter(subject_members::person_pk.eq_any(chunk))
            .select((subject_members::person_pk, subject_members::member_pk))
            .load::<(String, String)>(conn)
    })
}

/// Ends a membership (the member is being erased with its person).
pub(crate) fn delete_member(conn: &mut DbConnection, member_pk: &str) -> Result<(), StoreError> {
    diesel::delete(subject_members::table.find(member_pk)).execute(conn)?;
    Ok(())
}

/// The oldest membership: `(member, person)`, the next to consolidate.
pub(crate) fn oldest_member(
    conn: &mut DbConnection,
) -> Result<Option<(String, String)>, StoreError> {
    Ok(subject_members::table
        .order((subject_members::merged_at, subject_members::member_pk))
        .select((subject_members::member_pk, subject_members::person_pk))
        .first(conn)
        .optional()?)
}

/// Whether `member_pk` is a member of `person_pk`.
pub(crate) fn is_member(
    conn: &mut DbConnection,
    member_pk: &str,
    person_pk: &str,
) -> Result<bool, StoreError> {
    Ok(subject_members::table
        .find(member_pk)
        .filter(subject_members::person_pk.eq(person_pk))
        .count()
        .get_result::<i64>(conn)?
        > 0)
}

/// Up to `limit` interactions of a person.
pub(crate) fn interactions_of(
    conn: &mut DbConnection,
    subject_pk: &str,
    limit: i64,
) -> Result<Vec<InteractionRow>, StoreError> {
    Ok(interactions::table
        .filter(interactions::subject_pk.eq(subject_pk))
        .limit(limit)
        .select(InteractionRow::as_select())
        .load(conn)?)
}

/// One interaction re-sealed for the person it moves to: its id, client id and data.
pub(crate) type Resealed = (String, Vec<u8>, String);

/// Gives interactions to a person: their purpose rows (one statement, by the interactions'
/// ids), then each interaction's person, client id and data (re-sealed by the caller), in one
/// statement of a list of values.
pub(crate) fn move_interactions(
    conn: &mut DbConnection,
    to_pk: &str,
    rows: &[Resealed],
) -> Result<(), StoreError> {
    use diesel::sql_types::{Binary, Text};
    let ids: Vec<&str> = rows.iter().map(|(id, _, _)| id.as_str()).collect();
    for chunk in ids.chunks(super::MAX_IN_LIST) {
        diesel::update(
            interaction_purposes::table.filter(interaction_purposes::interaction_pk.eq_any(chunk)),
        )
        .set(interaction_purposes::subject_pk.eq(to_pk))
        .execute(conn)?;
    }
    // The one statement each backend spells its own way: an update from a list of values.
    match conn {
        DbConnection::Sqlite(sqlite) => {
            for chunk in rows.chunks(super::MAX_IN_LIST / 3) {
                let values = vec!["(?, ?, ?)"; chunk.len()].join(", ");
                let mut query = diesel::sql_query(format!(
                    "UPDATE interactions SET subject_pk = ?, client_id_ct = v.column2, \
                     data_ct = v.column3 FROM (VALUES {values}) AS v \
                     WHERE interactions.id = v.column1"
                ))
                .into_boxed::<diesel::sqlite::Sqlite>()
                .bind::<Text, _>(to_pk);
                for (id, client_id_ct, data_ct) in chunk {
                    query = query
                        .bind::<Text, _>(id)
                        .bind::<Binary, _>(client_id_ct)
                        .bind::<Text, _>(data_ct);
                }
                query.execute(sqlite)?;
            }
        }
        DbConnection::Postgresql(pg) => {
            for chunk in rows.chunks(super::MAX_IN_LIST / 3) {
                let values = (0..chunk.len())
                    .map(|i| format!("(${}, ${}::bytea, ${})", 3 * i + 2, 3 * i + 3, 3 * i + 4))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut query = diesel::sql_query(format!(
                    "UPDATE interactions SET subject_pk = $1, client_id_ct = v.c, data_ct = v.d \
                     FROM (VALUES {values}) AS v(id, c, d) WHERE interactions.id = v.id"
                ))
                .into_boxed::<diesel::pg::Pg>()
                .bind::<Text, _>(to_pk);
                for (id, client_id_ct, data_ct) in chunk {
                    query = query
                        .bind::<Text, _>(id)
                        .bind::<Binary, _>(client_id_ct)
                        .bind::<Text, _>(data_ct);
                }
                query.execute(pg)?;
            }
        }
    }
    Ok(())
}

/// Every consent statement of a person, in their order.
pub(crate) fn statements_of(
    conn: &mut DbConnection,
    subject_pk: &str,
) -> Result<Vec<ConsentRow>, StoreError> {
    Ok(consent_records::table
        .filter(consent_records::subject_pk.eq(subject_pk))
        .order(consent_records::sequence)
        .select(ConsentRow::as_select())
        .load(conn)?)
}

/// Gives statements to another person (re-sealed and renumbered by the caller).
pub(crate) fn move_statements(
    conn: &mut DbConnection,
    rows: &[ConsentRow],
) -> Result<(), StoreError> {
    for row in rows {
        diesel::update(consent_records::table.find(&row.id))
            .set((
                consent_records::subject_pk.eq(&row.subject_pk),
                consent_records::sequence.eq(row.sequence),
                consent_records::evidence_ct.eq(&row.evidence_ct),
                consent_records::merged_from.eq(&row.merged_from),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Replaces the current statements of two people by `current` (the merged person's).
pub(crate) fn replace_current(
    conn: &mut DbConnection,
    pks: [&str; 2],
    current: &[CurrentRow],
) -> Result<(), StoreError> {
    diesel::delete(consent_current::table.filter(consent_current::subject_pk.eq_any(pks)))
        .execute(conn)?;
    for row in current {
        diesel::insert_into(consent_current::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

/// Gives a person's objections and restriction to another who lacks them (what either stood
/// for stands for the merged person); drops the rest.
pub(crate) fn move_standing(
    conn: &mut DbConnection,
    from_pk: &str,
    to_pk: &str,
) -> Result<(), StoreError> {
    let held: Vec<String> = objections::table
        .filter(objections::subject_pk.eq(to_pk))
        .select(objections::purpose)
        .load(conn)?;
    diesel::update(
        objections::table
            .filter(objections::subject_pk.eq(from_pk))
            .filter(objections::purpose.ne_all(held)),
    )
    .set(objections::subject_pk.eq(to_pk))
    .execute(conn)?;
    diesel::delete(objections::table.filter(objections::subject_pk.eq(from_pk))).execute(conn)?;
    let restricted = restrictions::table
        .find(to_pk)
        .count()
        .get_result::<i64>(conn)?;
    if restricted == 0 {
        diesel::update(restrictions::table.find(from_pk))
            .set(restrictions::subject_pk.eq(to_pk))
            .execute(conn)?;
    }
    diesel::delete(restrictions::table.find(from_pk)).execute(conn)?;
    Ok(())
}

/// Gives a person's identifier indexes and segmentable traits to another, for the kinds and
/// names the other has none of (the surviving person's own win); drops the rest, the
/// `anonymous_id` marker with them.
pub(crate) fn move_profile(
    conn: &mut DbConnection,
    from_pk: &str,
    to_pk: &str,
) -> Result<(), StoreError> {
    let kinds: Vec<String> = subject_identifiers::table
        .filter(subject_identifiers::subject_pk.eq(to_pk))
        .select(subject_identifiers::kind)
        .load(conn)?;
    diesel::update(
        subject_identifiers::table
            .filter(subject_identifiers::subject_pk.eq(from_pk))
            .filter(subject_identifiers::kind.ne_all(kinds))
            .filter(subject_identifiers::kind.ne("anonymous_id")),
    )
    .set(subject_identifiers::subject_pk.eq(to_pk))
    .execute(conn)?;
    diesel::delete(subject_identifiers::table.filter(subject_identifiers::subject_pk.eq(from_pk)))
        .execute(conn)?;
    let names: Vec<String> = subject_traits::table
        .filter(subject_traits::subject_pk.eq(to_pk))
        .select(subject_traits::name)
        .load(conn)?;
    diesel::update(
        subject_traits::table
            .filter(subject_traits::subject_pk.eq(from_pk))
            .filter(subject_traits::name.ne_all(names)),
    )
    .set(subject_traits::subject_pk.eq(to_pk))
    .execute(conn)?;
    diesel::delete(subject_traits::table.filter(subject_traits::subject_pk.eq(from_pk)))
        .execute(conn)?;
    Ok(())
}
