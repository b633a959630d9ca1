//! What the population index reads (`segments::index`): the segmentable state of people, whole
//! or for some of them, and the change feed that triggers write in the transaction of every
//! change to it (migration 000021). Every read here runs inside [`snapshot`], so that a state
//! and the feed's position describe the same moment.
//!
//! The feed's position is where the next read starts. SQLite has one writer at a time, so the
//! feed's ids are in commit order: the position is the last id read. PostgreSQL's transactions
//! commit out of id order, so each feed row carries its writing transaction's id, and the
//! position is the snapshot's `xmax` with the transactions it saw in progress (`xip`): a row
//! not yet read is either one of those, or written by a transaction at or after `xmax`. A
//! transaction gets its id before its trigger writes the feed, so no row can hide below the
//! position.

use chrono::{Duration, NaiveDateTime};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamp};

use super::schema::{
    consent_current, interaction_purposes, interactions, objections, restrictions, subject_members,
    subject_traits, subjects,
};
use super::{load_chunked, DbConnection, StoreError};

/// A change written to the feed by the code that makes it, in its transaction: a new subject
/// (`interaction_pk` `None`), or a new interaction of a subject. The hot paths of ingest write
/// these themselves (`store::subjects::insert`, `store::interactions::insert`): a row trigger
/// makes every insert into its table write two tables, which costs SQLite a statement journal
/// per row; every other change to a population is written by triggers.
#[derive(Debug, Clone)]
pub struct ChangeRow {
    /// The subject.
    pub subject_pk: String,
    /// The new interaction, if that is the change.
    pub interaction_pk: Option<String>,
}

super::bulk::insert_columns!(ChangeRow => population_changes {
    subject_pk,
    interaction_pk,
});

/// Writes changes to the feed, as every many-row insert is written ([`super::insert_all!`]:
/// one statement of column arrays on PostgreSQL; one cached single-row statement per row on
/// SQLite, where the feed's plain integer key keeps each a one-table write).
pub(crate) fn log(conn: &mut DbConnection, rows: &[ChangeRow]) -> Result<(), StoreError> {
    super::insert_all!(conn, rows);
    Ok(())
}

/// Where a reader of the feed is (see the module's documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Position {
    /// SQLite: the last id read.
    Sqlite {
        /// The last id read (0: none).
        after_id: i64,
    },
    /// PostgreSQL: the snapshot's bounds.
    Postgres {
        /// The first transaction id the snapshot did not see begin.
        xmax: i64,
        /// The transactions in progress when it was taken.
        in_progress: Vec<i64>,
    },
}

/// One purpose row of an interaction (`interaction_purposes`).
#[derive(Debug, Clone, Queryable)]
pub(crate) struct PurposeRow {
    /// The interaction.
    pub interaction_pk: String,
    /// Whose it is.
    pub subject_pk: String,
    /// The purpose it was collected for.
    pub purpose: String,
    /// When it occurred.
    pub occurred_at: NaiveDateTime,
    /// Its type.
    pub interaction_type: String,
    /// Its channel.
    pub channel: String,
}

/// A row of the feed: a new interaction, or a subject whose state changed otherwise.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// An interaction's purpose rows were inserted: `(subject, interaction)`.
    Added(String, String),
    /// Something else about this subject changed (or it appeared or went).
    Subject(String),
}

#[derive(QueryableByName)]
struct FeedRow {
    #[diesel(sql_type = Text)]
    subject_pk: String,
    #[diesel(sql_type = Nullable<Text>)]
    interaction_pk: Option<String>,
}

impl FeedRow {
    fn change(self) -> Change {
        match self.interaction_pk {
            Some(interaction_pk) => Change::Added(self.subject_pk, interaction_pk),
            None => Change::Subject(self.subject_pk),
        }
    }
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = Nullable<BigInt>)]
    n: Option<i64>,
}

/// SQLite: the feed's last id (ids are in commit order there).
fn last_id(sqlite: &mut diesel::SqliteConnection) -> QueryResult<Number> {
    diesel::sql_query("SELECT max(id) AS n FROM population_changes").get_result(sqlite)
}

/// Runs `read` in one snapshot (SQLite: a read transaction; PostgreSQL: repeatable read, read
/// only, with the settings of a population statement) and gives it the feed's position at that
/// snapshot.
pub(crate) fn snapshot<T>(
    conn: &mut DbConnection,
    read: impl FnOnce(&mut DbConnection, Position) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.transaction(|conn| {
        let position = match conn {
            DbConnection::Sqlite(sqlite) => Position::Sqlite {
                after_id: last_id(sqlite)?.n.unwrap_or(0),
            },
            DbConnection::Postgresql(pg) => {
                pg.batch_execute(
                    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY;
                     SET LOCAL jit = off;",
                )?;
                let xmax: Number = diesel::sql_query(
                    "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS n",
                )
                .get_result(pg)?;
                let in_progress: Vec<Number> = diesel::sql_query(
                    "SELECT x::text::bigint AS n FROM pg_snapshot_xip(pg_current_snapshot()) x",
                )
                .load(pg)?;
                Position::Postgres {
                    xmax: xmax.n.unwrap_or(0),
                    in_progress: in_progress.into_iter().filter_map(|row| row.n).collect(),
                }
            }
        };
        read(conn, position)
    })
}

/// The feed's rows after `from` visible in this snapshot, in the order they were written, at
/// most `limit` (`None` when there are more: the reader is too far behind and starts again).
pub(crate) fn changes_since(
    conn: &mut DbConnection,
    from: &Position,
    limit: i64,
) -> Result<Option<Vec<Change>>, StoreError> {
    // More than `limit` rows is found by one step of the index past the limit, before
    // anything is loaded.
    let beyond = format!(
        "SELECT CAST(1 AS BIGINT) AS n FROM population_changes WHERE {{}} LIMIT 1 OFFSET {limit}"
    );
    let rows: Vec<FeedRow> = match (conn, from) {
        (DbConnection::Sqlite(sqlite), Position::Sqlite { after_id }) => {
            let more: Vec<Number> = diesel::sql_query(beyond.replace("{}", "id > ?"))
                .bind::<BigInt, _>(after_id)
                .load(sqlite)?;
            if !more.is_empty() {
                return Ok(None);
            }
            diesel::sql_query(
                "SELECT subject_pk, interaction_pk FROM population_changes WHERE id > ? \
                 ORDER BY id",
            )
            .bind::<BigInt, _>(after_id)
            .load(sqlite)?
        }
        (DbConnection::Postgresql(pg), Position::Postgres { xmax, in_progress }) => {
            const SINCE: &str = "(txid >= $1 OR txid = ANY($2))";
            let more: Vec<Number> = diesel::sql_query(beyond.replace("{}", SINCE))
                .bind::<BigInt, _>(xmax)
                .bind::<diesel::sql_types::Array<BigInt>, _>(in_progress)
                .load(pg)?;
            if !more.is_empty() {
                return Ok(None);
            }
            diesel::sql_query(format!(
                "SELECT subject_pk, interaction_pk FROM population_changes WHERE {SINCE} \
                 ORDER BY txid, id"
            ))
            .bind::<BigInt, _>(xmax)
            .bind::<diesel::sql_types::Array<BigInt>, _>(in_progress)
            .load(pg)?
        }
        _ => return Ok(None),
    };
    Ok(Some(rows.into_iter().map(FeedRow::change).collect()))
}

/// Which subjects are whose members, among those named (as member or as person); every
/// membership when `pks` is `None`.
pub(crate) fn memberships(
    conn: &mut DbConnection,
    pks: Option<&[&str]>,
) -> Result<Vec<(String, String)>, StoreError> {
    let columns = (subject_members::member_pk, subject_members::person_pk);
    match pks {
        None => Ok(subject_members::table.select(columns).load(conn)?),
        Some(pks) => load_chunked(pks, |chunk| {
            subject_members::table
                .filter(
                    subject_members::member_pk
                        .eq_any(chunk)
                        .or(subject_members::person_pk.eq_any(chunk)),
                )
                .select(columns)
                .load(conn)
        }),
    }
}

/// Which of these subjects exist.
pub(crate) fn existing(conn: &mut DbConnection, pks: &[&str]) -> Result<Vec<String>, StoreError> {
    load_chunked(pks, |chunk| {
        subjects::table
            .filter(subjects::id.eq_any(chunk))
            .select(subjects::id)
            .load(conn)
    })
}

/// A page of every subject's id, in id order, after `after`.
pub(crate) fn subjects_page(
    conn: &mut DbConnection,
    after: &str,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    Ok(subjects::table
        .filter(subjects::id.gt(after))
        .select(subjects::id)
        .order(subjects::id)
        .limit(limit)
        .load(conn)?)
}

/// The segmentable traits `(subject, name, value)` of these subjects.
pub(crate) fn traits_of(
    conn: &mut DbConnection,
    pks: &[&str],
) -> Result<Vec<(String, String, String)>, StoreError> {
    load_chunked(pks, |chunk| {
        subject_traits::table
            .filter(subject_traits::subject_pk.eq_any(chunk))
            .select((
                subject_traits::subject_pk,
                subject_traits::name,
                subject_traits::value,
            ))
            .load(conn)
    })
}

/// `(first, second) > (a, b)` over a two-column key: a row value, which both databases seek to
/// in the key's index (the same condition spelled with `OR` makes SQLite filter from the start
/// of the index at every page).
fn after_pair(
    columns: &'static str,
    after: (&str, &str),
) -> diesel::expression::SqlLiteral<
    Bool,
    impl diesel::query_builder::QueryFragment<super::legal_basis::Backend>
        + diesel::query_builder::QueryId,
> {
    diesel::dsl::sql::<Bool>(&format!("({columns}) > ("))
        .bind::<Text, _>(after.0.to_owned())
        .sql(", ")
        .bind::<Text, _>(after.1.to_owned())
        .sql(")")
}

/// A page of every segmentable trait, in key order, after `(subject, name)`.
pub(crate) fn traits_page(
    conn: &mut DbConnection,
    after: (&str, &str),
    limit: i64,
) -> Result<Vec<(String, String, String)>, StoreError> {
    Ok(subject_traits::table
        .filter(after_pair("subject_pk, name", after))
        .order((subject_traits::subject_pk, subject_traits::name))
        .select((
            subject_traits::subject_pk,
            subject_traits::name,
            subject_traits::value,
        ))
        .limit(limit)
        .load(conn)?)
}

/// A subject's current consent statement on a purpose: `(subject, purpose, granted, sequence)`.
pub(crate) type Statement = (String, String, bool, i64);

fn statement(row: (String, String, String, i64)) -> Statement {
    (row.0, row.1, row.2 == "granted", row.3)
}

/// The current statements of these subjects.
pub(crate) fn statements_of(
    conn: &mut DbConnection,
    pks: &[&str],
) -> Result<Vec<Statement>, StoreError> {
    Ok(load_chunked(pks, |chunk| {
        consent_current::table
            .filter(consent_current::subject_pk.eq_any(chunk))
            .select((
                consent_current::subject_pk,
                consent_current::purpose,
                consent_current::status,
                consent_current::sequence,
            ))
            .load(conn)
    })?
    .into_iter()
    .map(statement)
    .collect())
}

/// A page of every current statement, in key order, after `(subject, purpose)`.
pub(crate) fn statements_page(
    conn: &mut DbConnection,
    after: (&str, &str),
    limit: i64,
) -> Result<Vec<Statement>, StoreError> {
    Ok(consent_current::table
        .filter(after_pair("subject_pk, purpose", after))
        .order((consent_current::subject_pk, consent_current::purpose))
        .select((
            consent_current::subject_pk,
            consent_current::purpose,
            consent_current::status,
            consent_current::sequence,
        ))
        .limit(limit)
        .load::<(String, String, String, i64)>(conn)?
        .into_iter()
        .map(statement)
        .collect())
}

/// Standing objections `(subject, purpose)` of these subjects, or all.
pub(crate) fn objections_of(
    conn: &mut DbConnection,
    pks: Option<&[&str]>,
) -> Result<Vec<(String, String)>, StoreError> {
    let columns = (objections::subject_pk, objections::purpose);
    match pks {
        None => Ok(objections::table.select(columns).load(conn)?),
        Some(pks) => load_chunked(pks, |chunk| {
            objections::table
                .filter(objections::subject_pk.eq_any(chunk))
                .select(columns)
                .load(conn)
        }),
    }
}

/// The restricted subjects among these, or all.
pub(crate) fn restricted(
    conn: &mut DbConnection,
    pks: Option<&[&str]>,
) -> Result<Vec<String>, StoreError> {
    match pks {
        None => Ok(restrictions::table
            .select(restrictions::subject_pk)
            .load(conn)?),
        Some(pks) => load_chunked(pks, |chunk| {
            restrictions::table
                .filter(restrictions::subject_pk.eq_any(chunk))
                .select(restrictions::subject_pk)
                .load(conn)
        }),
    }
}

/// The purpose rows of these interactions, grouped by interaction (in key order).
pub(crate) fn purpose_rows_by_interaction(
    conn: &mut DbConnection,
    interaction_pks: &[&str],
) -> Result<Vec<PurposeRow>, StoreError> {
    let mut rows = load_chunked(interaction_pks, |chunk| {
        interaction_purposes::table
            .filter(interaction_purposes::interaction_pk.eq_any(chunk))
            .select(purpose_columns())
            .load::<PurposeRow>(conn)
    })?;
    rows.sort_by(|a, b| a.interaction_pk.cmp(&b.interaction_pk));
    Ok(rows)
}

/// The purpose rows held by these subjects, grouped by interaction (in key order): through
/// their interactions (`interactions (subject_pk, client_index)` finds them;
/// `interaction_purposes` has no index led by the subject).
pub(crate) fn purpose_rows_of(
    conn: &mut DbConnection,
    pks: &[&str],
) -> Result<Vec<PurposeRow>, StoreError> {
    let mut rows = load_chunked(pks, |chunk| {
        interactions::table
            .inner_join(
                interaction_purposes::table
                    .on(interaction_purposes::interaction_pk.eq(interactions::id)),
            )
            .filter(interactions::subject_pk.eq_any(chunk))
            .select(purpose_columns())
            .load::<PurposeRow>(conn)
    })?;
    rows.sort_by(|a, b| a.interaction_pk.cmp(&b.interaction_pk));
    Ok(rows)
}

type PurposeColumns = (
    interaction_purposes::interaction_pk,
    interaction_purposes::subject_pk,
    interaction_purposes::purpose,
    interaction_purposes::occurred_at,
    interaction_purposes::interaction_type,
    interaction_purposes::channel,
);

fn purpose_columns() -> PurposeColumns {
    (
        interaction_purposes::interaction_pk,
        interaction_purposes::subject_pk,
        interaction_purposes::purpose,
        interaction_purposes::occurred_at,
        interaction_purposes::interaction_type,
        interaction_purposes::channel,
    )
}

/// A page of every purpose row, in key order (an interaction's rows together), after
/// `(interaction, purpose)`.
pub(crate) fn purpose_rows_page(
    conn: &mut DbConnection,
    after: (&str, &str),
    limit: i64,
) -> Result<Vec<PurposeRow>, StoreError> {
    Ok(interaction_purposes::table
        .filter(after_pair("interaction_pk, purpose", after))
        .order((
            interaction_purposes::interaction_pk,
            interaction_purposes::purpose,
        ))
        .select(purpose_columns())
        .limit(limit)
        .load(conn)?)
}

/// How long the feed keeps what every reader has read: readers catch up every few seconds and
/// start again from the tables when they fell further behind than half of it.
pub const FEED_KEPT: Duration = Duration::minutes(10);

/// Marks the feed's position now and deletes what was written before the position marked at
/// least [`FEED_KEPT`] ago (with the older marks); returns how many feed rows went.
pub(crate) fn mark_and_prune(
    conn: &mut DbConnection,
    now: NaiveDateTime,
) -> Result<usize, StoreError> {
    conn.transaction(|conn| {
        let position: Number = match conn {
            DbConnection::Sqlite(sqlite) => last_id(sqlite)?,
            // Every transaction below the oldest one in progress has ended: what it wrote to
            // the feed is visible to every snapshot from now on.
            DbConnection::Postgresql(pg) => diesel::sql_query(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS n",
            )
            .get_result(pg)?,
        };
        diesel::sql_query(
            "INSERT INTO population_change_marks (position, marked_at) VALUES ($1, $2)",
        )
        .bind::<BigInt, _>(position.n.unwrap_or(0))
        .bind::<Timestamp, _>(now)
        .execute(conn)?;
        let old: Number = diesel::sql_query(
            "SELECT max(position) AS n FROM population_change_marks WHERE marked_at <= $1",
        )
        .bind::<Timestamp, _>(now - FEED_KEPT)
        .get_result(conn)?;
        let Some(old) = old.n else { return Ok(0) };
        let deleted = match conn {
            // The newest row stays: a new id is one more than the largest (see the migration).
            DbConnection::Sqlite(sqlite) => diesel::sql_query(
                "DELETE FROM population_changes WHERE id <= ? \
                 AND id < (SELECT max(id) FROM population_changes)",
            )
            .bind::<BigInt, _>(old)
            .execute(sqlite)?,
            DbConnection::Postgresql(pg) => {
                diesel::sql_query("DELETE FROM population_changes WHERE txid < $1")
                    .bind::<BigInt, _>(old)
                    .execute(pg)?
            }
        };
        diesel::sql_query("DELETE FROM population_change_marks WHERE marked_at < $1")
            .bind::<Timestamp, _>(now - FEED_KEPT)
            .execute(conn)?;
        Ok(deleted)
    })
}
