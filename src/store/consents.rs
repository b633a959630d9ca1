//! The consent ledger, its current-state table, objections and restrictions.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{consent_current, consent_records, objections, restrictions, subjects};
use super::{DbConnection, StoreError, MAX_IN_LIST};

/// One consent statement.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = consent_records)]
pub struct ConsentRow {
    /// Internal id (time-ordered).
    pub id: String,
    /// The subject's internal id.
    pub subject_pk: String,
    /// Blind index of the client's record id (idempotency), or of the internal id.
    pub record_index: String,
    /// Orders the subject's statements.
    pub sequence: i64,
    /// The purpose.
    pub purpose: String,
    /// `granted` or `withdrawn`.
    pub status: String,
    /// The notice shown.
    pub notice_id: Option<String>,
    /// Its version.
    pub notice_version: Option<String>,
    /// Where the statement was made (`web`, `app` …).
    pub source: String,
    /// How (`checkbox`, `gpc` …).
    pub method: String,
    /// Sealed evidence (IP address, user agent) and the client's record id.
    pub evidence_ct: String,
    /// When it was recorded.
    pub recorded_at: NaiveDateTime,
    /// The API key that recorded it.
    pub recorded_by: String,
    /// The language of the notice text shown.
    pub notice_language: Option<String>,
    /// SHA-256 of the notice text shown (from the policy when it was recorded).
    pub notice_sha256: Option<String>,
    /// For a statement recorded for a person since merged into this one: that person's audit
    /// pseudonym (ledger provenance of the merge).
    pub merged_from: Option<String>,
}

super::bulk::insert_columns!(ConsentRow => consent_records {
    id,
    subject_pk,
    record_index,
    sequence,
    purpose,
    status,
    notice_id,
    notice_version,
    source,
    method,
    evidence_ct,
    recorded_at,
    recorded_by,
    notice_language,
    notice_sha256,
    merged_from,
});

/// The latest statement on one purpose.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = consent_current)]
pub struct CurrentRow {
    /// The subject's internal id.
    pub subject_pk: String,
    /// The purpose.
    pub purpose: String,
    /// `granted` or `withdrawn`.
    pub status: String,
    /// The statement's sequence.
    pub sequence: i64,
    /// Since when.
    pub since: NaiveDateTime,
    /// The statement's internal id.
    pub record_id: String,
}

/// The statement with this record index for the subject, if any.
pub(crate) fn find_by_record_index(
    conn: &mut DbConnection,
    subject_pk: &str,
    record_index: &str,
) -> Result<Option<ConsentRow>, StoreError> {
    Ok(consent_records::table
        .filter(consent_records::subject_pk.eq(subject_pk))
        .filter(consent_records::record_index.eq(record_index))
        .select(ConsentRow::as_select())
        .first(conn)
        .optional()?)
}

/// The next sequence number for the subject's statements.
pub(crate) fn next_sequence(conn: &mut DbConnection, subject_pk: &str) -> Result<i64, StoreError> {
    let max: Option<i64> = consent_records::table
        .filter(consent_records::subject_pk.eq(subject_pk))
        .select(diesel::dsl::max(consent_records::sequence))
        .first(conn)?;
    Ok(max.unwrap_or(0) + 1)
}

/// A subject's statements, oldest first.
pub(crate) fn history(
    conn: &mut DbConnection,
    subject_pk: &str,
) -> Result<Vec<ConsentRow>, StoreError> {
    Ok(consent_records::table
        .filter(consent_records::subject_pk.eq(subject_pk))
        .order(consent_records::sequence.asc())
        .select(ConsentRow::as_select())
        .load(conn)?)
}

/// The current statements of these subjects.
pub(crate) fn current_for(
    conn: &mut DbConnection,
    subject_pks: &[&str],
) -> Result<Vec<CurrentRow>, StoreError> {
    super::load_chunked(subject_pks, |chunk| {
        consent_current::table
            .filter(consent_current::subject_pk.eq_any(chunk))
            .order((consent_current::subject_pk, consent_current::purpose))
            .select(CurrentRow::as_select())
            .load(conn)
    })
}

/// What stands for some subjects: current statements, objections, restrictions.
#[derive(Debug, Default)]
pub struct Standing {
    /// Current statements, by subject and purpose.
    pub current: Vec<CurrentRow>,
    /// `(subject_pk, purpose, since)` of objections, by subject and purpose.
    pub objections: Vec<(String, String, NaiveDateTime)>,
    /// The restricted subjects among them.
    pub restricted: Vec<String>,
}

const CURRENT: &str = "current";
const OBJECTION: &str = "objection";
const RESTRICTION: &str = "restriction";
const SUBJECT: &str = "subject";
type StandingRow = (String, String, String, String, i64, NaiveDateTime, String);

/// The union of current statements, objections and restrictions of the subjects whose internal
/// ids `$pks` gives (a list, or a subquery), each row tagged with its kind. Unions are written
/// per backend: diesel's multi-connection backend does not build them.
macro_rules! standing_union {
    ($pks:expr) => {{
        use diesel::sql_types::{BigInt, Text};
        let current = consent_current::table
            .filter(consent_current::subject_pk.eq_any($pks))
            .select((
                consent_current::subject_pk,
                CURRENT.into_sql::<Text>(),
                consent_current::purpose,
                consent_current::status,
                consent_current::sequence,
                consent_current::since,
                consent_current::record_id,
            ));
        let objected = objections::table
            .filter(objections::subject_pk.eq_any($pks))
            .select((
                objections::subject_pk,
                OBJECTION.into_sql::<Text>(),
                objections::purpose,
                "".into_sql::<Text>(),
                0_i64.into_sql::<BigInt>(),
                objections::since,
                "".into_sql::<Text>(),
            ));
        let restricted = restrictions::table
            .filter(restrictions::subject_pk.eq_any($pks))
            .select((
                restrictions::subject_pk,
                RESTRICTION.into_sql::<Text>(),
                "".into_sql::<Text>(),
                "".into_sql::<Text>(),
                0_i64.into_sql::<BigInt>(),
                restrictions::since,
                "".into_sql::<Text>(),
            ));
        current.union_all(objected).union_all(restricted)
    }};
}

fn into_standing(rows: Vec<StandingRow>) -> Standing {
    let mut standing = Standing::default();
    for (subject_pk, kind, purpose, status, sequence, since, record_id) in rows {
        match kind.as_str() {
            CURRENT => standing.current.push(CurrentRow {
                subject_pk,
                purpose,
                status,
                sequence,
                since,
                record_id,
            }),
            OBJECTION => standing.objections.push((subject_pk, purpose, since)),
            RESTRICTION => standing.restricted.push(subject_pk),
            _ => {}
        }
    }
    // The order the three statements gave.
    standing
        .current
        .sort_unstable_by(|a, b| (&a.subject_pk, &a.purpose).cmp(&(&b.subject_pk, &b.purpose)));
    standing
        .objections
        .sort_unstable_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    standing
}

/// A person's current statements, objections and restriction in one statement (one round trip
/// instead of three: every read and write of a person's data needs all three).
pub(crate) fn standing_for(
    conn: &mut DbConnection,
    subject_pks: &[&str],
) -> Result<Standing, StoreError> {
    let rows: Vec<StandingRow> = super::load_chunked(subject_pks, |chunk| match conn {
        DbConnection::Postgresql(pg) => standing_union!(chunk).load(pg),
        DbConnection::Sqlite(sqlite) => standing_union!(chunk).load(sqlite),
    })?;
    Ok(into_standing(rows))
}

/// The internal id of the subject with this blind index and what stands for them, in one
/// statement (a read about one person needs both); `None` when no subject has the index.
pub(crate) fn standing_by_index(
    conn: &mut DbConnection,
    subject_index: &str,
) -> Result<Option<(String, Standing)>, StoreError> {
    use diesel::sql_types::{BigInt, Text};
    macro_rules! with_subject {
        () => {{
            let pk = subjects::table
                .filter(subjects::subject_index.eq(subject_index))
                .select(subjects::id);
            let subject = subjects::table
                .filter(subjects::subject_index.eq(subject_index))
                .select((
                    subjects::id,
                    SUBJECT.into_sql::<Text>(),
                    "".into_sql::<Text>(),
                    "".into_sql::<Text>(),
                    0_i64.into_sql::<BigInt>(),
                    subjects::created_at,
                    "".into_sql::<Text>(),
                ));
            standing_union!(pk).union_all(subject)
        }};
    }
    let rows: Vec<StandingRow> = match conn {
        DbConnection::Postgresql(pg) => with_subject!().load(pg)?,
        DbConnection::Sqlite(sqlite) => with_subject!().load(sqlite)?,
    };
    let Some(pk) = rows
        .iter()
        .find(|row| row.1 == SUBJECT)
        .map(|row| row.0.clone())
    else {
        return Ok(None);
    };
    Ok(Some((pk, into_standing(rows))))
}

/// `(subject_pk, purpose, since)` of the standing objections of these subjects.
pub(crate) fn objections_for(
    conn: &mut DbConnection,
    subject_pks: &[&str],
) -> Result<Vec<(String, String, NaiveDateTime)>, StoreError> {
    super::load_chunked(subject_pks, |chunk| {
        objections::table
            .filter(objections::subject_pk.eq_any(chunk))
            .order((objections::subject_pk, objections::purpose))
            .select((
                objections::subject_pk,
                objections::purpose,
                objections::since,
            ))
            .load::<(String, String, NaiveDateTime)>(conn)
    })
}

/// Records an objection (keeping the first time if it already stands) or, with `None`, lifts
/// it. Returns whether anything changed.
pub(crate) fn set_objection(
    conn: &mut DbConnection,
    subject_pk: &str,
    purpose: &str,
    since: Option<(NaiveDateTime, &str)>,
) -> Result<bool, StoreError> {
    let existing = objections::table
        .filter(objections::subject_pk.eq(subject_pk))
        .filter(objections::purpose.eq(purpose))
        .count()
        .get_result::<i64>(conn)?;
    match (since, existing > 0) {
        (Some((since, recorded_by)), false) => {
            diesel::insert_into(objections::table)
                .values((
                    objections::subject_pk.eq(subject_pk),
                    objections::purpose.eq(purpose),
                    objections::since.eq(since),
                    objections::recorded_by.eq(recorded_by),
                ))
                .execute(conn)?;
            Ok(true)
        }
        (None, true) => {
            diesel::delete(
                objections::table
                    .filter(objections::subject_pk.eq(subject_pk))
                    .filter(objections::purpose.eq(purpose)),
            )
            .execute(conn)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Restricts processing of a subject (keeping the first time if it already is) or, with
/// `None`, lifts the restriction. Returns whether anything changed.
pub(crate) fn set_restriction(
    conn: &mut DbConnection,
    subject_pk: &str,
    since: Option<(NaiveDateTime, &str)>,
) -> Result<bool, StoreError> {
    let existing = restrictions::table
        .find(subject_pk)
        .count()
        .get_result::<i64>(conn)?;
    match (since, existing > 0) {
        (Some((since, recorded_by)), false) => {
            diesel::insert_into(restrictions::table)
                .values((
                    restrictions::subject_pk.eq(subject_pk),
                    restrictions::since.eq(since),
                    restrictions::recorded_by.eq(recorded_by),
                ))
                .execute(conn)?;
            Ok(true)
        }
        (None, true) => {
            diesel::delete(restrictions::table.find(subject_pk)).execute(conn)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// The statements of these subjects whose record index is among `record_indexes`.
pub(crate) fn find_by_record_indexes(
    conn: &mut DbConnection,
    subject_pks: &[&str],
    record_indexes: &[&str],
) -> Result<Vec<ConsentRow>, StoreError> {
    let mut rows = Vec::new();
    if subject_pks.is_empty() || record_indexes.is_empty() {
        return Ok(rows);
    }
    let half = MAX_IN_LIST / 2;
    for subjects in subject_pks.chunks(half) {
        for indexes in record_indexes.chunks(half) {
            rows.extend(
                consent_records::table
                    .filter(consent_records::subject_pk.eq_any(subjects))
                    .filter(consent_records::record_index.eq_any(indexes))
                    .select(ConsentRow::as_select())
                    .load(conn)?,
            );
        }
    }
    Ok(rows)
}

/// The highest sequence of each of these subjects that has statements.
pub(crate) fn max_sequences(
    conn: &mut DbConnection,
    subject_pks: &[&str],
) -> Result<Vec<(String, Option<i64>)>, StoreError> {
    super::load_chunked(subject_pks, |chunk| {
        consent_records::table
            .filter(consent_records::subject_pk.eq_any(chunk))
            .group_by(consent_records::subject_pk)
            .select((
                consent_records::subject_pk,
                diesel::dsl::max(consent_records::sequence),
            ))
            .load::<(String, Option<i64>)>(conn)
    })
}

/// Appends statements (already numbered) and makes the last one per subject and purpose the
/// current one: one multi-row insert and one multi-row upsert.
pub(crate) fn append_many(conn: &mut DbConnection, rows: &[ConsentRow]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    super::insert_all!(conn, rows);
    let mut latest: std::collections::BTreeMap<(&str, &str), &ConsentRow> = Default::default();
    for row in rows {
        let key = (row.subject_pk.as_str(), row.purpose.as_str());
        if latest
            .get(&key)
            .is_none_or(|seen| seen.sequence < row.sequence)
        {
            latest.insert(key, row);
        }
    }
    let current: Vec<CurrentRow> = latest
        .values()
        .map(|row| CurrentRow {
            subject_pk: row.subject_pk.clone(),
            purpose: row.purpose.clone(),
            status: row.status.clone(),
            sequence: row.sequence,
            since: row.recorded_at,
            record_id: row.id.clone(),
        })
        .collect();
    upsert_current(conn, &current)?;

    Ok(())
}

/// Inserts current rows, replacing those of the same subject and purpose. `ON CONFLICT … DO
/// UPDATE` exists on both backends, but diesel's `MultiConnection` cannot express it, so it runs
/// on the concrete connection.
fn upsert_current(conn: &mut DbConnection, rows: &[CurrentRow]) -> Result<(), StoreError> {
    use diesel::upsert::excluded;
    macro_rules! upsert {
        ($conn:expr, $chunk:expr) => {
            diesel::insert_into(consent_current::table)
                .values($chunk)
                .on_conflict((consent_current::subject_pk, consent_current::purpose))
                .do_update()
                .set((
                    consent_current::status.eq(excluded(consent_current::status)),
                    consent_current::sequence.eq(excluded(consent_current::sequence)),
                    consent_current::since.eq(excluded(consent_current::since)),
                    consent_current::record_id.eq(excluded(consent_current::record_id)),
                ))
                .execute($conn)?
        };
    }
    match conn {
        // One statement per chunk: every statement is a round trip to the server.
        DbConnection::Postgresql(pg) => {
            for chunk in rows.chunks(super::MAX_ROWS_PER_INSERT) {
                upsert!(pg, chunk);
            }
        }
        // diesel cannot batch an upsert on SQLite; a row at a time costs no round trip there.
        DbConnection::Sqlite(sqlite) => {
            for row in rows {
                upsert!(&mut *sqlite, row);
            }
        }
    }
    Ok(())
}
