//! The audit log's tables: entries, the chain head, and signed checkpoints.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{audit_checkpoints, audit_head, audit_log, audit_subjects};
use super::{DbConnection, StoreError};

/// One audit entry as stored (and hashed: see `audit::entry_hash`).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// When it was appended (UTC, microseconds).
    pub at: NaiveDateTime,
    /// The API key that acted, if a key did.
    pub actor_key_id: Option<String>,
    /// Its role (`operator` for the command line).
    pub role: Option<String>,
    /// What was done (`interactions.read` …).
    pub action: String,
    /// What it was done to, when that is not a person (an API key id).
    pub target: Option<String>,
    /// JSON array of purposes.
    pub purposes: String,
    /// JSON array of the purposes' legal bases.
    pub legal_bases: String,
    /// JSON array of the pseudonyms of the people it is about.
    pub subjects: String,
    /// JSON array of data categories touched.
    pub categories: String,
    /// How many records.
    pub records: i64,
    /// `allow` or `deny`.
    pub decision: String,
    /// The reason code of a denial.
    pub reason: Option<String>,
    /// SHA-256 of the policy in force.
    pub policy_hash: String,
    /// The HTTP request's id.
    pub request_id: Option<String>,
    /// SHA-256 over this entry and the previous entry's hash, hex.
    pub hash: String,
}

super::bulk::insert_columns!(AuditRow => audit_log {
    seq,
    at,
    actor_key_id,
    role,
    action,
    target,
    purposes,
    legal_bases,
    subjects,
    categories,
    records,
    decision,
    reason,
    policy_hash,
    request_id,
    hash,
});

/// A signed checkpoint as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_checkpoints)]
pub struct CheckpointRow {
    /// Internal id.
    pub id: String,
    /// The number of entries covered.
    pub size: i64,
    /// The hash of entry `size`.
    pub head_hash: String,
    /// When it was signed.
    pub signed_at: NaiveDateTime,
    /// The signing key's id.
    pub key_id: String,
    /// The compact JWS over size, head hash and time.
    pub signature: String,
}

/// The chain's head, locked until the end of the transaction: PostgreSQL takes the row lock
/// (`FOR UPDATE`), which serializes appends across every process; SQLite already holds the
/// database's write lock, and has no `FOR UPDATE`.
pub(crate) fn lock_head(conn: &mut DbConnection) -> Result<(i64, String), StoreError> {
    let query = audit_head::table
        .find(1)
        .select((audit_head::seq, audit_head::hash));
    Ok(match conn {
        DbConnection::Postgresql(pg) => query.for_update().first(pg)?,
        DbConnection::Sqlite(sqlite) => query.first(sqlite)?,
    })
}

/// The head without a lock.
pub(crate) fn head(conn: &mut DbConnection) -> Result<(i64, String), StoreError> {
    Ok(audit_head::table
        .find(1)
        .select((audit_head::seq, audit_head::hash))
        .first(conn)?)
}

/// One person named by one entry.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
#[diesel(table_name = audit_subjects)]
pub struct AuditSubjectRow {
    /// The first 64 bits of the person's pseudonym ([`subject_key`]).
    pub subject_key: i64,
    /// The entry.
    pub seq: i64,
}

super::bulk::insert_columns!(AuditSubjectRow => audit_subjects {
    subject_key,
    seq,
});

/// The index key of a pseudonym: its first 64 bits (pseudonyms are hex).
pub(crate) fn subject_key(pseudonym: &str) -> i64 {
    let prefix = pseudonym.get(..16).unwrap_or(pseudonym);
    u64::from_str_radix(prefix, 16).unwrap_or(0) as i64
}

/// Appends rows (already chained) with the index of the people they name, and moves the head
/// to the last one.
pub(crate) fn append(
    conn: &mut DbConnection,
    rows: &[AuditRow],
    subjects: &[AuditSubjectRow],
) -> Result<(), StoreError> {
    let Some(last) = rows.last() else {
        return Ok(());
    };
    let move_head = diesel::update(audit_head::table.find(1)).set((
        audit_head::seq.eq(last.seq),
        audit_head::hash.eq(&last.hash),
    ));
    // Both backends through `insert_all!`: column arrays on PostgreSQL; on SQLite, which has
    // no round trips, one cached single-row statement per row without a savepoint.
    super::insert_all!(conn, rows);
    super::insert_all!(conn, subjects);
    move_head.execute(conn)?;
    Ok(())
}

/// Up to `limit` entries after `after_seq`, in chain order.
pub fn range(
    conn: &mut DbConnection,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<AuditRow>, StoreError> {
    Ok(audit_log::table
        .filter(audit_log::seq.gt(after_seq))
        .order(audit_log::seq.asc())
        .limit(limit)
        .select(AuditRow::as_select())
        .load(conn)?)
}

/// The people named by entries `from..=to`.
pub(crate) fn subjects_between(
    conn: &mut DbConnection,
    from: i64,
    to: i64,
) -> Result<Vec<AuditSubjectRow>, StoreError> {
    Ok(audit_subjects::table
        .filter(audit_subjects::seq.between(from, to))
        .select((audit_subjects::subject_key, audit_subjects::seq))
        .load(conn)?)
}

/// How many rows of `audit_log` hold a `seq` of at most `up_to`, counting rows outside the chain
/// (0 or below) too: after a walk that found `1..=up_to` without a gap, anything above `up_to`
/// rows means rows that are not chain positions.
pub(crate) fn count_up_to(conn: &mut DbConnection, up_to: i64) -> Result<i64, StoreError> {
    Ok(audit_log::table
        .filter(audit_log::seq.le(up_to))
        .count()
        .get_result(conn)?)
}

/// Rows outside the chain (`seq` below 1; the database refuses them, so these got in with the
/// guard dropped): how many the log holds, and the lowest `seq` among them and among the index
/// of people.
pub(crate) fn unchained(conn: &mut DbConnection) -> Result<(i64, Option<i64>), StoreError> {
    let (count, in_log): (i64, Option<i64>) = audit_log::table
        .filter(audit_log::seq.lt(1))
        .select((diesel::dsl::count_star(), diesel::dsl::min(audit_log::seq)))
        .first(conn)?;
    let in_index: Option<i64> = audit_subjects::table
        .filter(audit_subjects::seq.lt(1))
        .select(diesel::dsl::min(audit_subjects::seq))
        .first(conn)?;
    Ok((count, in_log.into_iter().chain(in_index).min()))
}

/// The entry at `seq`, if there is one.
pub(crate) fn entry(conn: &mut DbConnection, seq: i64) -> Result<Option<AuditRow>, StoreError> {
    Ok(audit_log::table
        .find(seq)
        .select(AuditRow::as_select())
        .first(conn)
        .optional()?)
}

/// What a query of the log selects; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// A subject's pseudonym.
    pub subject: Option<String>,
    /// An API key id.
    pub actor_key_id: Option<String>,
    /// An action.
    pub action: Option<String>,
    /// A purpose among the entry's purposes.
    pub purpose: Option<String>,
    /// `allow` or `deny`.
    pub decision: Option<String>,
    /// At or after.
    pub from: Option<NaiveDateTime>,
    /// Before.
    pub to: Option<NaiveDateTime>,
}

/// Entries matching `filter`, newest first, before `before_seq`. Only chain positions are
/// listed: from 1 to the head, so a row that is not part of the chain (a forged `seq` of 0
/// or below, or one beyond the head) is never shown as an entry.
pub(crate) fn page(
    conn: &mut DbConnection,
    filter: &AuditFilter,
    before_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditRow>, StoreError> {
    let (head_seq, _) = head(conn)?;
    let mut query = audit_log::table
        .select(AuditRow::as_select())
        .filter(audit_log::seq.between(1, head_seq))
        .order(audit_log::seq.desc())
        .limit(limit)
        .into_boxed();
    if let Some(before) = before_seq {
        query = query.filter(audit_log::seq.lt(before));
    }
    if let Some(subject) = &filter.subject {
        // The index narrows by the first 64 bits; the entry's own list decides (pseudonyms are
        // hex, so the pattern has no wildcard).
        query = query
            .filter(
                audit_log::seq.eq_any(
                    audit_subjects::table
                        .filter(audit_subjects::subject_key.eq(subject_key(subject)))
                        .select(audit_subjects::seq),
                ),
            )
            .filter(audit_log::subjects.like(format!("%\"{subject}\"%")));
    }
    if let Some(actor) = &filter.actor_key_id {
        query = query.filter(audit_log::actor_key_id.eq(actor.clone()));
    }
    if let Some(action) = &filter.action {
        query = query.filter(audit_log::action.eq(action.clone()));
    }
    if let Some(purpose) = &filter.purpose {
        // `purposes` is a JSON array of purpose ids; ids cannot contain `"`, and `_` (a LIKE
        // wildcard) is escaped.
        let pattern = format!(
            "%\"{}\"%",
            purpose.replace('\\', "\\\\").replace('_', "\\_")
        );
        query = query.filter(audit_log::purposes.like(pattern).escape('\\'));
    }
    if let Some(decision) = &filter.decision {
        query = query.filter(audit_log::decision.eq(decision.clone()));
    }
    if let Some(from) = filter.from {
        query = query.filter(audit_log::at.ge(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(audit_log::at.lt(to));
    }
    Ok(query.load(conn)?)
}

/// Stores a checkpoint.
pub(crate) fn insert_checkpoint(
    conn: &mut DbConnection,
    row: &CheckpointRow,
) -> Result<(), StoreError> {
    diesel::insert_into(audit_checkpoints::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Every stored checkpoint, smallest first.
pub(crate) fn checkpoints(conn: &mut DbConnection) -> Result<Vec<CheckpointRow>, StoreError> {
    Ok(audit_checkpoints::table
        .order((
            audit_checkpoints::size.asc(),
            audit_checkpoints::signed_at.asc(),
        ))
        .select(CheckpointRow::as_select())
        .load(conn)?)
}

/// The size covered by the latest stored checkpoint (0 when there is none).
pub(crate) fn last_checkpoint_size(conn: &mut DbConnection) -> Result<i64, StoreError> {
    Ok(audit_checkpoints::table
        .select(diesel::dsl::max(audit_checkpoints::size))
        .first::<Option<i64>>(conn)?
        .unwrap_or(0))
}
