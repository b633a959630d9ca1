//! Data-subject requests.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::subject_requests;
use super::{DbConnection, StoreError};

/// One request as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = subject_requests, treat_none_as_null = true)]
pub struct RequestRow {
    /// Its id (a UUID).
    pub id: String,
    /// `access`, `portability`, `erasure`, `restriction`, `objection`, `rectification`.
    pub kind: String,
    /// `gdpr` or `ccpa`.
    pub regulation: String,
    /// `received`, `verified`, `in_progress`, `completed`, `rejected`.
    pub status: String,
    /// `subject_id` or `email`: what the request named the person by.
    pub identity_kind: String,
    /// The blind index of that identifier; cleared at erasure.
    pub identity_index: Option<String>,
    /// The identifier, sealed under the requests key; cleared at erasure.
    pub identity_ct: Option<String>,
    /// The person's audit pseudonym, once the request has been matched to a subject.
    pub pseudonym: Option<String>,
    /// JSON array of purposes (objections).
    pub purposes: String,
    /// Sealed JSON of the values to rectify; cleared at erasure.
    pub changes_ct: Option<String>,
    /// When the request was received.
    pub received_at: NaiveDateTime,
    /// When it must be answered.
    pub due_at: NaiveDateTime,
    /// When the deadline was extended.
    pub extended_at: Option<NaiveDateTime>,
    /// Why, sealed.
    pub extension_reason_ct: Option<String>,
    /// When the requester's identity was verified.
    pub verified_at: Option<NaiveDateTime>,
    /// When it was completed.
    pub completed_at: Option<NaiveDateTime>,
    /// When it was rejected.
    pub rejected_at: Option<NaiveDateTime>,
    /// Why, sealed.
    pub rejection_reason_ct: Option<String>,
    /// JSON of what execution did (counts and ids, no personal data).
    pub result: Option<String>,
    /// The API key that filed it.
    pub created_by: Option<String>,
    /// When it last changed.
    pub updated_at: NaiveDateTime,
    /// The id of the request's own key (hex), which seals the identity and values to rectify;
    /// `None` for requests filed before request keys (sealed under the requests key) and once
    /// the identity is cleared at erasure.
    pub key_id: Option<String>,
    /// The master key that wraps the request's key.
    pub key_master_key_id: Option<String>,
    /// The key epoch it is wrapped in.
    pub key_epoch: Option<i64>,
    /// The wrapped key.
    pub key_wrapped: Option<Vec<u8>>,
    /// An executed erasure's signed receipt, sealed with the request's key.
    pub receipt_ct: Option<String>,
    /// When retention shreds the receipt (and the key that seals it).
    pub receipt_until: Option<NaiveDateTime>,
}

/// Stores a new request.
pub fn insert(conn: &mut DbConnection, row: &RequestRow) -> Result<(), StoreError> {
    diesel::insert_into(subject_requests::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The request with this id; with `lock`, its row stays locked until the transaction ends
/// (PostgreSQL `FOR UPDATE`; SQLite's writer already holds the database).
pub fn find(
    conn: &mut DbConnection,
    id: &str,
    lock: bool,
) -> Result<Option<RequestRow>, StoreError> {
    let query = subject_requests::table.find(id);
    Ok(match conn {
        DbConnection::Postgresql(pg) if lock => query
            .select(RequestRow::as_select())
            .for_update()
            .first(pg)
            .optional()?,
        _ => query
            .select(RequestRow::as_select())
            .first(conn)
            .optional()?,
    })
}

/// Saves every column of a changed request.
pub(crate) fn save(conn: &mut DbConnection, row: &RequestRow) -> Result<(), StoreError> {
    diesel::update(subject_requests::table.find(&row.id))
        .set(row)
        .execute(conn)?;
    Ok(())
}

/// Which requests to list.
#[derive(Debug, Default, Clone)]
pub struct RequestFilter {
    /// Only this status ([`OPEN_STATUSES`]: every open one).
    pub status: Option<String>,
    /// Only this kind.
    pub kind: Option<String>,
    /// `Some(true)`: only open requests past their deadline at `now`; `Some(false)`: only those
    /// that are not.
    pub overdue: Option<bool>,
    /// Only those filed by this API key.
    pub filed_by: Option<String>,
}

/// The status filter meaning every open request (received, verified or in progress).
pub const OPEN_STATUSES: &str = "open";

/// A page of requests, by deadline then id, after `(due_at, id)`.
pub(crate) fn page(
    conn: &mut DbConnection,
    filter: &RequestFilter,
    now: NaiveDateTime,
    after: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> Result<Vec<RequestRow>, StoreError> {
    const OPEN: [&str; 3] = ["received", "verified", "in_progress"];
    let mut query = subject_requests::table
        .select(RequestRow::as_select())
        .order((subject_requests::due_at.asc(), subject_requests::id.asc()))
        .limit(limit)
        .into_boxed();
    match filter.status.as_deref() {
        Some(OPEN_STATUSES) => query = query.filter(subject_requests::status.eq_any(OPEN)),
        Some(status) => query = query.filter(subject_requests::status.eq(status.to_owned())),
        None => {}
    }
    if let Some(kind) = &filter.kind {
        query = query.filter(subject_requests::kind.eq(kind.clone()));
    }
    if let Some(key_id) = &filter.filed_by {
        query = query.filter(subject_requests::created_by.eq(key_id.clone()));
    }
    match filter.overdue {
        Some(true) => {
            query = query
                .filter(subject_requests::status.eq_any(OPEN))
                .filter(subject_requests::due_at.lt(now));
        }
        Some(false) => {
            query = query.filter(
                subject_requests::status
                    .ne_all(OPEN)
                    .or(subject_requests::due_at.ge(now)),
            );
        }
        None => {}
    }
    if let Some((due_at, id)) = after {
        query = query.filter(
            subject_requests::due_at
                .gt(due_at)
                .or(subject_requests::due_at
                    .eq(due_at)
                    .and(subject_requests::id.gt(id))),
        );
    }
    Ok(query.load(conn)?)
}

/// The ids of the open requests (received, verified or in progress) that name a person by one
/// of these identity indexes.
pub(crate) fn open_naming(
    conn: &mut DbConnection,
    identity_indexes: &[String],
) -> Result<Vec<String>, StoreError> {
    if identity_indexes.is_empty() {
        return Ok(Vec::new());
    }
    Ok(subject_requests::table
        .filter(subject_requests::identity_index.eq_any(identity_indexes))
        .filter(subject_requests::status.eq_any(["received", "verified", "in_progress"]))
        .select(subject_requests::id)
        .order(subject_requests::id)
        .load(conn)?)
}

/// Clears what requests hold about a person being erased (identifier, its blind index, values
/// to rectify), keeping the audit pseudonym. Returns how many requests were cleared.
pub(crate) fn forget_identity(
    conn: &mut DbConnection,
    identity_indexes: &[String],
    pseudonym: &str,
) -> Result<usize, StoreError> {
    if identity_indexes.is_empty() {
        return Ok(0);
    }
    Ok(diesel::update(
        subject_requests::table.filter(subject_requests::identity_index.eq_any(identity_indexes)),
    )
    .set((
        subject_requests::identity_index.eq(None::<String>),
        subject_requests::identity_ct.eq(None::<String>),
        subject_requests::changes_ct.eq(None::<String>),
        subject_requests::pseudonym.eq(pseudonym),
        subject_requests::key_id.eq(None::<String>),
        subject_requests::key_master_key_id.eq(None::<String>),
        subject_requests::key_epoch.eq(None::<i64>),
        subject_requests::key_wrapped.eq(None::<Vec<u8>>),
    ))
    .execute(conn)?)
}

/// A request's wrapped key, as the re-wrap reads it.
#[derive(Debug, Clone, Queryable)]
pub struct RequestKeyRow {
    /// The request.
    pub id: String,
    /// The master key that wraps it.
    pub master_key_id: String,
    /// The key epoch it is wrapped in.
    pub epoch: Option<i64>,
    /// The wrapped key.
    pub wrapped: Vec<u8>,
}

/// The requests whose key is not wrapped by `master_key_id` in `epoch` (requests are few:
/// thousands, read at once).
pub(crate) fn keys_not_under(
    conn: &mut DbConnection,
    master_key_id: &str,
    epoch: i64,
) -> Result<Vec<RequestKeyRow>, StoreError> {
    type Stored = (String, Option<String>, Option<i64>, Option<Vec<u8>>);
    let rows: Vec<Stored> = subject_requests::table
        .filter(subject_requests::key_wrapped.is_not_null())
        .filter(
            subject_requests::key_master_key_id
                .ne(master_key_id)
                .or(subject_requests::key_epoch.is_null())
                .or(subject_requests::key_epoch.ne(epoch)),
        )
        .select((
            subject_requests::id,
            subject_requests::key_master_key_id,
            subject_requests::key_epoch,
            subject_requests::key_wrapped,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, master_key_id, epoch, wrapped)| {
            Some(RequestKeyRow {
                id,
                master_key_id: master_key_id?,
                epoch,
                wrapped: wrapped?,
            })
        })
        .collect())
}

/// Replaces a request key's wrapping if it is still wrapped as `old` says; returns rows changed.
pub(crate) fn rewrap_key(
    conn: &mut DbConnection,
    old: &RequestKeyRow,
    new_master: &str,
    new_epoch: i64,
    wrapped: &[u8],
) -> Result<usize, StoreError> {
    let still = subject_requests::id
        .eq(&old.id)
        .and(subject_requests::key_master_key_id.eq(&old.master_key_id));
    let set = (
        subject_requests::key_master_key_id.eq(Some(new_master)),
        subject_requests::key_epoch.eq(Some(new_epoch)),
        subject_requests::key_wrapped.eq(Some(wrapped)),
    );
    Ok(match old.epoch {
        Some(epoch) => diesel::update(subject_requests::table)
            .filter(still.and(subject_requests::key_epoch.eq(epoch)))
            .set(set)
            .execute(conn)?,
        None => diesel::update(subject_requests::table)
            .filter(still.and(subject_requests::key_epoch.is_null()))
            .set(set)
            .execute(conn)?,
    })
}

/// How many request keys are wrapped in `epoch` or an earlier one.
pub(crate) fn keys_up_to_epoch(conn: &mut DbConnection, epoch: i64) -> Result<i64, StoreError> {
    Ok(subject_requests::table
        .filter(subject_requests::key_wrapped.is_not_null())
        .filter(
            subject_requests::key_epoch
                .le(epoch)
                .or(subject_requests::key_epoch.is_null()),
        )
        .count()
        .get_result(conn)?)
}

/// Shreds the erasure receipts kept past `now`: the sealed receipt and the request key that
/// seals it. Returns how many were shredded.
pub(crate) fn shred_expired_receipts(
    conn: &mut DbConnection,
    now: NaiveDateTime,
) -> Result<usize, StoreError> {
    Ok(
        diesel::update(subject_requests::table.filter(subject_requests::receipt_until.le(now)))
            .set((
                subject_requests::receipt_ct.eq(None::<String>),
                subject_requests::receipt_until.eq(None::<NaiveDateTime>),
                subject_requests::key_id.eq(None::<String>),
                subject_requests::key_master_key_id.eq(None::<String>),
                subject_requests::key_epoch.eq(None::<i64>),
                subject_requests::key_wrapped.eq(None::<Vec<u8>>),
            ))
            .execute(conn)?,
    )
}
