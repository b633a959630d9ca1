//! Erasure: deleting everything held about one subject, the data key first, and the tombstone
//! that remains.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{
    consent_current, consent_records, data_keys, erasures, interaction_purposes, interactions,
    objections, restrictions, subject_identifiers, subject_traits, subjects, suppressions,
};
use super::{DbConnection, StoreError};

/// How many rows of each kind an erasure deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ErasedCounts {
    /// Data keys destroyed (1).
    pub data_keys: usize,
    /// Identifiers (e-mail, phone), with their blind indexes.
    pub identifiers: usize,
    /// Traits (encrypted and segmentable alike).
    pub traits: usize,
    /// Interactions erased.
    pub interactions: usize,
    /// Interactions a legal hold keeps (re-encrypted under the hold's key, restricted to the
    /// holding purposes; not counted in `interactions` nor in [`ErasedCounts::total`]).
    pub held_interactions: usize,
    /// Consent statements, with their evidence.
    pub consent_records: usize,
    /// Standing objections.
    pub objections: usize,
    /// Restrictions of processing.
    pub restrictions: usize,
    /// The subject record itself (1), with its blind index and encrypted profile.
    pub subjects: usize,
    /// Data-subject requests naming the person whose identifier (and values to rectify) were
    /// cleared; the requests themselves stay, as the record of how the person was answered.
    pub request_identities: usize,
}

impl ErasedCounts {
    /// Everything erased, as counted above (the audit entry's `records`); held interactions
    /// are not counted.
    pub(crate) fn total(&self) -> usize {
        self.data_keys
            + self.identifiers
            + self.traits
            + self.interactions
            + self.consent_records
            + self.objections
            + self.restrictions
            + self.subjects
            + self.request_identities
    }
}

/// Where an erased person's data key was, so that its old copies can be removed from the
/// database files once the erasure has committed ([`super::Database::remove_old_copies`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasedKey {
    /// The subject's internal id (for caches).
    pub subject_pk: String,
    /// PostgreSQL: the tables to rewrite — the partition of `data_keys` that held the key, and
    /// `subject_requests` when requests naming the person lost their keys.
    pub rewrite: Vec<String>,
}

#[derive(QueryableByName)]
struct Partition {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// What [`delete_subject`] did besides deleting.
#[derive(Debug)]
pub struct Deleted {
    /// What was deleted, by kind.
    pub counts: ErasedCounts,
    /// The destroyed key's subject and the tables whose files may hold old copies.
    pub key: ErasedKey,
    /// The requests that named the person and were still open (their identity is cleared now;
    /// the caller closes them).
    pub open_requests: Vec<String>,
    /// The blind indexes of the anonymous ids that were linked to the person (unlinked now;
    /// an erasure with suppression suppresses them too).
    pub aliases: Vec<String>,
}

/// Deletes every row about `subject_pk`, the wrapped data key first. Call inside a write
/// transaction; after it commits, [`super::Database::remove_old_copies`] removes what the
/// database files may still hold of the key row.
pub(crate) fn delete_subject(
    conn: &mut DbConnection,
    subject_pk: &str,
    subject_index: &str,
    pseudonym: &str,
) -> Result<Deleted, StoreError> {
    // Lock the subject row first (PostgreSQL; SQLite already holds the write lock): a write
    // that references it (its foreign key takes a share lock on this row) then either finished
    // before, or waits and fails on the foreign key after the erasure, instead of holding one
    // of the rows deleted below while this waits for it (a deadlock).
    // PostgreSQL also notes the partition holding the key (hash partitions: the key decides).
    if let DbConnection::Postgresql(pg) = conn {
        subjects::table
            .find(subject_pk)
            .select(subjects::id)
            .for_update()
            .first::<String>(pg)
            .optional()?;
    }
    let partition = key_partition(conn, subject_pk)?;
    let data_keys = diesel::delete(data_keys::table.find(subject_pk)).execute(conn)?;
    let aliases = super::links::delete_aliases(conn, subject_pk)?;
    let mut indexes = identity_indexes(conn, subject_pk, subject_index)?;
    indexes.extend(aliases.iter().cloned());
    let open_requests = super::requests::open_naming(conn, &indexes)?;
    let request_identities = super::requests::forget_identity(conn, &indexes, pseudonym)?;
    // Through the interactions' ids: `interaction_purposes` is keyed by interaction.
    diesel::delete(
        interaction_purposes::table.filter(
            interaction_purposes::interaction_pk.eq_any(
                interactions::table
                    .filter(interactions::subject_pk.eq(subject_pk))
                    .select(interactions::id),
            ),
        ),
    )
    .execute(conn)?;
    let interactions =
        diesel::delete(interactions::table.filter(interactions::subject_pk.eq(subject_pk)))
            .execute(conn)?;
    let identifiers = diesel::delete(
        subject_identifiers::table.filter(subject_identifiers::subject_pk.eq(subject_pk)),
    )
    .execute(conn)?;
    let traits =
        diesel::delete(subject_traits::table.filter(subject_traits::subject_pk.eq(subject_pk)))
            .execute(conn)?;
    diesel::delete(consent_current::table.filter(consent_current::subject_pk.eq(subject_pk)))
        .execute(conn)?;
    let consent_records =
        diesel::delete(consent_records::table.filter(consent_records::subject_pk.eq(subject_pk)))
            .execute(conn)?;
    let objections =
        diesel::delete(objections::table.filter(objections::subject_pk.eq(subject_pk)))
            .execute(conn)?;
    let restrictions =
        diesel::delete(restrictions::table.filter(restrictions::subject_pk.eq(subject_pk)))
            .execute(conn)?;
    let subjects = diesel::delete(subjects::table.find(subject_pk)).execute(conn)?;
    let counts = ErasedCounts {
        data_keys,
        identifiers,
        traits,
        interactions,
        held_interactions: 0,
        consent_records,
        objections,
        restrictions,
        subjects,
        request_identities,
    };
    let mut rewrite: Vec<String> = partition.into_iter().collect();
    if matches!(conn, DbConnection::Postgresql(_)) && request_identities > 0 {
        rewrite.push("subject_requests".to_owned());
    }
    Ok(Deleted {
        counts,
        key: ErasedKey {
            subject_pk: subject_pk.to_owned(),
            rewrite,
        },
        open_requests,
        aliases,
    })
}

/// Deletes a person merged into another (`subject_members`): the membership, then the member's
/// key and rows as [`delete_subject`] does. Called inside the person's erasure, and by the
/// consolidation step that finds a member holding nothing any more.
pub(crate) fn delete_member(
    conn: &mut DbConnection,
    member_pk: &str,
    pseudonym: &str,
) -> Result<Deleted, StoreError> {
    super::links::delete_member(conn, member_pk)?;
    let index = super::subjects::retired_index(member_pk);
    delete_subject(conn, member_pk, &index, pseudonym)
}

/// On PostgreSQL, the partition of `data_keys` that holds this person's key (hash partitions:
/// the key decides), which must be rewritten once the key is deleted; `None` on SQLite.
pub(crate) fn key_partition(
    conn: &mut DbConnection,
    subject_pk: &str,
) -> Result<Option<String>, StoreError> {
    let DbConnection::Postgresql(pg) = conn else {
        return Ok(None);
    };
    Ok(diesel::sql_query(
        "SELECT tableoid::regclass::text AS name FROM data_keys WHERE subject_pk = $1",
    )
    .bind::<diesel::sql_types::Text, _>(subject_pk)
    .get_result::<Partition>(pg)
    .optional()?
    .map(|found| found.name))
}

/// Every blind index a data-subject request may name the person by: their subject_id's and
/// each identifier's.
fn identity_indexes(
    conn: &mut DbConnection,
    subject_pk: &str,
    subject_index: &str,
) -> Result<Vec<String>, StoreError> {
    let mut indexes: Vec<String> = subject_identifiers::table
        .filter(subject_identifiers::subject_pk.eq(subject_pk))
        .select(subject_identifiers::blind_index)
        .load(conn)?;
    indexes.push(subject_index.to_owned());
    Ok(indexes)
}

/// A tombstone.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = erasures)]
pub struct ErasureRow {
    /// The erasure's id (also in the receipt).
    pub id: String,
    /// The audit pseudonym the person had.
    pub pseudonym: String,
    /// When.
    pub erased_at: NaiveDateTime,
    /// The API key that erased (none for the command line).
    pub erased_by: Option<String>,
    /// JSON of [`ErasedCounts`].
    pub counts: String,
    /// SHA-256 (hex) of the signed receipt (which names the subject_id, so is not kept).
    pub receipt_sha256: String,
}

/// Stores a tombstone.
pub(crate) fn insert_tombstone(
    conn: &mut DbConnection,
    row: &ErasureRow,
) -> Result<(), StoreError> {
    diesel::insert_into(erasures::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// A suppressed subject id.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = suppressions)]
pub struct SuppressionRow {
    /// The blind index of the subject id.
    pub subject_index: String,
    /// The pseudonym the erased person had.
    pub pseudonym: String,
    /// Since when.
    pub since: NaiveDateTime,
    /// The API key that asked for it.
    pub recorded_by: Option<String>,
}

/// Blocks ingestion for a subject id (by blind index); replaces an earlier suppression.
pub(crate) fn suppress(conn: &mut DbConnection, row: &SuppressionRow) -> Result<(), StoreError> {
    diesel::delete(suppressions::table.find(&row.subject_index)).execute(conn)?;
    diesel::insert_into(suppressions::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Lifts a suppression; returns it, or `None` when there was none.
pub(crate) fn lift(
    conn: &mut DbConnection,
    subject_index: &str,
) -> Result<Option<SuppressionRow>, StoreError> {
    let found = suppressions::table
        .find(subject_index)
        .select(SuppressionRow::as_select())
        .first(conn)
        .optional()?;
    if found.is_some() {
        diesel::delete(suppressions::table.find(subject_index)).execute(conn)?;
    }
    Ok(found)
}

/// The blind indexes among `indexes` that are suppressed.
pub fn suppressed_among(
    conn: &mut DbConnection,
    indexes: &[&str],
) -> Result<Vec<String>, StoreError> {
    super::load_chunked(indexes, |chunk| {
        suppressions::table
            .filter(suppressions::subject_index.eq_any(chunk))
            .select(suppressions::subject_index)
            .load(conn)
    })
}

/// What [`delete_subject`] would find about a person, counted without deleting anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Preview {
    /// Segmentable traits (the encrypted ones are counted from the subject's row).
    pub segmentable_traits: usize,
    /// Interactions.
    pub interactions: usize,
    /// Consent statements.
    pub consent_records: usize,
    /// Standing objections.
    pub objections: usize,
    /// Whether processing is restricted.
    pub restricted: bool,
    /// Open data-subject requests naming the person.
    pub open_requests: usize,
}

/// Counts what an erasure of a person would delete: `owners` is the person, then the people
/// merged into them (whose interactions go with the person's).
pub fn preview(
    conn: &mut DbConnection,
    owners: &[&str],
    subject_index: &str,
) -> Result<Preview, StoreError> {
    let subject_pk = owners[0];
    let count = |n: i64| usize::try_from(n).unwrap_or(0);
    let segmentable_traits: i64 = subject_traits::table
        .filter(subject_traits::subject_pk.eq(subject_pk))
        .count()
        .get_result(conn)?;
    let (interactions, consent_records) = super::export::counts(conn, owners)?;
    let objections: i64 = objections::table
        .filter(objections::subject_pk.eq(subject_pk))
        .count()
        .get_result(conn)?;
    let restrictions: i64 = restrictions::table
        .filter(restrictions::subject_pk.eq(subject_pk))
        .count()
        .get_result(conn)?;
    let indexes = identity_indexes(conn, subject_pk, subject_index)?;
    let open_requests = super::requests::open_naming(conn, &indexes)?.len();
    Ok(Preview {
        segmentable_traits: count(segmentable_traits),
        interactions: count(interactions),
        consent_records: count(consent_records),
        objections: count(objections),
        restricted: restrictions > 0,
        open_requests,
    })
}
