//! Subjects, their identifiers' blind indexes and their segmentable traits.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{
    subject_aliases, subject_identifiers, subject_members, subject_traits, subjects,
};
use super::{DbConnection, StoreError};

/// A stored subject.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = subjects)]
pub struct SubjectRow {
    /// The internal id (never shown outside).
    pub id: String,
    /// Blind index of the app's subject_id.
    pub subject_index: String,
    /// The app's subject_id, encrypted under the subject's data key.
    pub subject_id_ct: Vec<u8>,
    /// JSON object: identifier kind → base64 ciphertext.
    pub identifiers_ct: String,
    /// JSON object: non-segmentable trait name → base64 ciphertext.
    pub traits_ct: String,
    /// When it was created.
    pub created_at: NaiveDateTime,
    /// When it last changed.
    pub updated_at: NaiveDateTime,
}

super::bulk::insert_columns!(SubjectRow => subjects {
    id,
    subject_index,
    subject_id_ct,
    identifiers_ct,
    traits_ct,
    created_at,
    updated_at,
});

/// The subject with this blind index: the person whose own id it is, else the person an
/// anonymous id with this index is linked to.
pub(crate) fn find_by_index(
    conn: &mut DbConnection,
    subject_index: &str,
) -> Result<Option<SubjectRow>, StoreError> {
    let own = subjects::table
        .filter(subjects::subject_index.eq(subject_index))
        .select(SubjectRow::as_select())
        .first(conn)
        .optional()?;
    if own.is_some() {
        return Ok(own);
    }
    Ok(subjects::table
        .inner_join(subject_aliases::table)
        .filter(subject_aliases::alias_index.eq(subject_index))
        .select(SubjectRow::as_select())
        .first(conn)
        .optional()?)
}

/// The subject whose own id has this blind index (never through a linked anonymous id).
pub(crate) fn find_own(
    conn: &mut DbConnection,
    subject_index: &str,
) -> Result<Option<SubjectRow>, StoreError> {
    Ok(subjects::table
        .filter(subjects::subject_index.eq(subject_index))
        .select(SubjectRow::as_select())
        .first(conn)
        .optional()?)
}

/// Gives a subject another own id (an anonymous person who has logged in: their user id).
pub(crate) fn set_own_id(
    conn: &mut DbConnection,
    pk: &str,
    subject_index: &str,
    subject_id_ct: &[u8],
    updated_at: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::update(subjects::table.find(pk))
        .set((
            subjects::subject_index.eq(subject_index),
            subjects::subject_id_ct.eq(subject_id_ct),
            subjects::updated_at.eq(updated_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// What a subject merged into another keeps of its own row: nothing that finds it (its own
/// id's blind index becomes `member:<internal id>`, which no blind index can equal, so that
/// the id resolves to the person through their alias) and nothing sealed (the person holds
/// the id, identifiers and traits now). Its data key stays: its interactions are sealed under
/// it.
pub(crate) fn retire_merged(
    conn: &mut DbConnection,
    pk: &str,
    updated_at: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::update(subjects::table.find(pk))
        .set((
            subjects::subject_index.eq(retired_index(pk)),
            subjects::subject_id_ct.eq(Vec::<u8>::new()),
            subjects::identifiers_ct.eq("{}"),
            subjects::traits_ct.eq("{}"),
            subjects::updated_at.eq(updated_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// The blind-index column of a person merged into another: `member:<internal id>`.
pub(crate) fn retired_index(pk: &str) -> String {
    format!("member:{pk}")
}

/// The subject with this internal id.
pub(crate) fn find_by_pk(
    conn: &mut DbConnection,
    id: &str,
) -> Result<Option<SubjectRow>, StoreError> {
    Ok(subjects::table
        .find(id)
        .select(SubjectRow::as_select())
        .first(conn)
        .optional()?)
}

/// `(blind index, internal id, linked)` of the subjects among these blind indexes that exist:
/// by their own id, or (`linked`) by an anonymous id linked to them (looked up only for the
/// indexes no person's own id has).
pub(crate) fn ids_by_index(
    conn: &mut DbConnection,
    indexes: &[&str],
) -> Result<Vec<(String, String, bool)>, StoreError> {
    let found = super::load_chunked(indexes, |chunk| {
        subjects::table
            .filter(subjects::subject_index.eq_any(chunk))
            .select((subjects::subject_index, subjects::id))
            .load::<(String, String)>(conn)
    })?;
    if found.len() < indexes.len() {
        let own: std::collections::HashSet<&str> =
            found.iter().map(|(index, _)| index.as_str()).collect();
        let rest: Vec<&str> = indexes
            .iter()
            .copied()
            .filter(|index| !own.contains(index))
            .collect();
        let linked = super::links::subjects_of_aliases(conn, &rest)?;
        let mut found: Vec<(String, String, bool)> = found
            .into_iter()
            .map(|(index, pk)| (index, pk, false))
            .collect();
        found.extend(linked.into_iter().map(|(index, pk)| (index, pk, true)));
        return Ok(found);
    }
    Ok(found
        .into_iter()
        .map(|(index, pk)| (index, pk, false))
        .collect())
}

/// Inserts subjects.
pub fn insert(conn: &mut DbConnection, rows: &[SubjectRow]) -> Result<(), StoreError> {
    super::insert_all!(conn, rows);
    // The population index's feed (see `population_feed::log`).
    let logged: Vec<super::population_feed::ChangeRow> = rows
        .iter()
        .map(|row| super::population_feed::ChangeRow {
            subject_pk: row.id.clone(),
            interaction_pk: None,
        })
        .collect();
    super::population_feed::log(conn, &logged)
}

/// The blind index of one identifier of a subject.
#[derive(Debug, Clone)]
pub struct IdentifierRow {
    /// The subject.
    pub subject_pk: String,
    /// `email`, `phone`, `email_sha256`, `subject_id_sha256`.
    pub kind: String,
    /// The blind index.
    pub blind_index: String,
}

super::bulk::insert_columns!(IdentifierRow => subject_identifiers {
    subject_pk,
    kind,
    blind_index,
});

/// On PostgreSQL, locks these subjects' rows (in id order, so that two writers never wait for
/// each other crosswise) until the transaction ends: writers that derive something from a
/// subject's current rows (the next consent sequence) then take turns instead of failing each
/// other's unique constraints. SQLite's writer already holds the whole database.
pub(crate) fn lock_for_write(conn: &mut DbConnection, pks: &[&str]) -> Result<(), StoreError> {
    if pks.is_empty() {
        return Ok(());
    }
    if let DbConnection::Postgresql(pg) = conn {
        let mut sorted: Vec<String> = pks.iter().map(|pk| (*pk).to_owned()).collect();
        sorted.sort_unstable();
        sorted.dedup();
        subjects::table
            .filter(subjects::id.eq_any(sorted))
            .order(subjects::id)
            .select(subjects::id)
            .for_update()
            .load::<String>(pg)?;
    }
    Ok(())
}

/// Up to `limit` people (not members of another) with none of these identifier kinds.
pub(crate) fn without_identifier(
    conn: &mut DbConnection,
    kinds: &[&str],
    limit: i64,
) -> Result<Vec<SubjectRow>, StoreError> {
    use diesel::dsl::{exists, not};
    Ok(subjects::table
        .filter(not(exists(
            subject_identifiers::table
                .filter(subject_identifiers::subject_pk.eq(subjects::id))
                .filter(subject_identifiers::kind.eq_any(kinds)),
        )))
        .filter(not(exists(
            subject_members::table.filter(subject_members::member_pk.eq(subjects::id)),
        )))
        .order(subjects::id)
        .limit(limit)
        .select(SubjectRow::as_select())
        .load(conn)?)
}

/// Inserts identifier rows.
pub(crate) fn insert_identifiers(
    conn: &mut DbConnection,
    rows: &[IdentifierRow],
) -> Result<(), StoreError> {
    super::insert_all!(conn, rows);
    Ok(())
}

/// Replaces a subject's encrypted identifiers and traits.
pub(crate) fn update_encrypted(
    conn: &mut DbConnection,
    id: &str,
    identifiers_ct: &str,
    traits_ct: &str,
    updated_at: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::update(subjects::table.find(id))
        .set((
            subjects::identifiers_ct.eq(identifiers_ct),
            subjects::traits_ct.eq(traits_ct),
            subjects::updated_at.eq(updated_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Sets (or with `None`, removes) the blind index of one identifier kind of a subject.
pub(crate) fn set_identifier(
    conn: &mut DbConnection,
    subject_pk: &str,
    kind: &str,
    blind_index: Option<&str>,
) -> Result<(), StoreError> {
    diesel::delete(
        subject_identifiers::table
            .filter(subject_identifiers::subject_pk.eq(subject_pk))
            .filter(subject_identifiers::kind.eq(kind)),
    )
    .execute(conn)?;
    if let Some(blind_index) = blind_index {
        diesel::insert_into(subject_identifiers::table)
            .values((
                subject_identifiers::subject_pk.eq(subject_pk),
                subject_identifiers::kind.eq(kind),
                subject_identifiers::blind_index.eq(blind_index),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Internal ids of the subjects with this identifier.
pub(crate) fn ids_by_identifier(
    conn: &mut DbConnection,
    kind: &str,
    blind_index: &str,
) -> Result<Vec<String>, StoreError> {
    Ok(subject_identifiers::table
        .filter(subject_identifiers::kind.eq(kind))
        .filter(subject_identifiers::blind_index.eq(blind_index))
        .select(subject_identifiers::subject_pk)
        .order(subject_identifiers::subject_pk)
        .load(conn)?)
}

/// Sets (or with `None`, removes) one segmentable trait.
pub(crate) fn set_trait(
    conn: &mut DbConnection,
    subject_pk: &str,
    name: &str,
    value: Option<&str>,
) -> Result<(), StoreError> {
    diesel::delete(
        subject_traits::table
            .filter(subject_traits::subject_pk.eq(subject_pk))
            .filter(subject_traits::name.eq(name)),
    )
    .execute(conn)?;
    if let Some(value) = value {
        diesel::insert_into(subject_traits::table)
            .values((
                subject_traits::subject_pk.eq(subject_pk),
                subject_traits::name.eq(name),
                subject_traits::value.eq(value),
            ))
            .execute(conn)?;
    }
    Ok(())
}
