//! OpenDSR rows: requests received from controllers, status callbacks waiting for delivery, and
//! the processor's development signing identity.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{opendsr_callbacks, opendsr_identity, opendsr_requests};
use super::{DbConnection, StoreError};

/// An OpenDSR request, as received.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = opendsr_requests)]
pub struct OpenDsrRow {
    /// The controller's id for it (a UUID v4).
    pub subject_request_id: String,
    /// The subject request it became.
    pub request_id: String,
    /// The API key that sent it.
    pub controller_id: String,
    /// SHA-256 of the body as received: a re-sent request with the same body gets the same answer.
    pub body_sha256: String,
    /// JSON array of the status callback URLs.
    pub callback_urls: String,
    /// The processor's public base URL (for `results_url`): the configured one, re-pointed at
    /// every start ([`repoint_base_urls`]), never one a request's headers named.
    pub base_url: String,
    /// When it was received.
    pub received_at: NaiveDateTime,
    /// The OpenDSR status last announced to the callbacks.
    pub announced_status: String,
}

/// A status callback.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = opendsr_callbacks)]
pub struct CallbackRow {
    /// Its id (time-ordered).
    pub id: String,
    /// The request it reports on.
    pub subject_request_id: String,
    /// Where it goes.
    pub url: String,
    /// The JSON body, exactly as it is sent and signed.
    pub body: String,
    /// Attempts so far.
    pub attempts: i32,
    /// When to try next (a claim pushes it ahead while a delivery is on its way).
    pub next_attempt_at: NaiveDateTime,
    /// When a 2xx answer came.
    pub delivered_at: Option<NaiveDateTime>,
    /// When it was given up.
    pub failed_at: Option<NaiveDateTime>,
    /// Why the last attempt failed (status code or transport error, never a body).
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: NaiveDateTime,
}

super::bulk::insert_columns!(CallbackRow => opendsr_callbacks {
    id,
    subject_request_id,
    url,
    body,
    attempts,
    next_attempt_at,
    delivered_at,
    failed_at,
    last_error,
    created_at,
});

/// Points every stored request's links at `base_url` (the configured public URL), replacing
/// whatever an earlier version or configuration stored; returns how many rows changed.
pub(crate) fn repoint_base_urls(
    conn: &mut DbConnection,
    base_url: &str,
) -> Result<usize, StoreError> {
    Ok(
        diesel::update(opendsr_requests::table.filter(opendsr_requests::base_url.ne(base_url)))
            .set(opendsr_requests::base_url.eq(base_url))
            .execute(conn)?,
    )
}

/// Records a received request.
pub(crate) fn insert_request(conn: &mut DbConnection, row: &OpenDsrRow) -> Result<(), StoreError> {
    diesel::insert_into(opendsr_requests::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The request with this controller id.
pub(crate) fn find_request(
    conn: &mut DbConnection,
    subject_request_id: &str,
) -> Result<Option<OpenDsrRow>, StoreError> {
    Ok(opendsr_requests::table
        .find(subject_request_id)
        .select(OpenDsrRow::as_select())
        .first(conn)
        .optional()?)
}

/// The OpenDSR request a subject request came from, if any.
pub(crate) fn find_by_request(
    conn: &mut DbConnection,
    request_id: &str,
) -> Result<Option<OpenDsrRow>, StoreError> {
    Ok(opendsr_requests::table
        .filter(opendsr_requests::request_id.eq(request_id))
        .select(OpenDsrRow::as_select())
        .first(conn)
        .optional()?)
}

/// Records the status last announced.
pub(crate) fn set_announced(
    conn: &mut DbConnection,
    subject_request_id: &str,
    status: &str,
) -> Result<(), StoreError> {
    diesel::update(opendsr_requests::table.find(subject_request_id))
        .set(opendsr_requests::announced_status.eq(status))
        .execute(conn)?;
    Ok(())
}

/// Queues callbacks.
pub(crate) fn insert_callbacks(
    conn: &mut DbConnection,
    rows: &[CallbackRow],
) -> Result<(), StoreError> {
    super::insert_all!(conn, rows);
    Ok(())
}

/// Callbacks due at `now`, oldest first.
pub(crate) fn due_callbacks(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    limit: i64,
) -> Result<Vec<CallbackRow>, StoreError> {
    Ok(opendsr_callbacks::table
        .filter(opendsr_callbacks::next_attempt_at.le(now))
        .filter(opendsr_callbacks::delivered_at.is_null())
        .filter(opendsr_callbacks::failed_at.is_null())
        .order(opendsr_callbacks::id)
        .limit(limit)
        .select(CallbackRow::as_select())
        .load(conn)?)
}

/// Claims a due callback for one delivery attempt: moves its next attempt to `until` if no
/// other process did first. `true` when this process holds it.
pub(crate) fn claim(
    conn: &mut DbConnection,
    row: &CallbackRow,
    until: NaiveDateTime,
) -> Result<bool, StoreError> {
    Ok(diesel::update(
        opendsr_callbacks::table
            .find(&row.id)
            .filter(opendsr_callbacks::next_attempt_at.eq(row.next_attempt_at))
            .filter(opendsr_callbacks::delivered_at.is_null()),
    )
    .set(opendsr_callbacks::next_attempt_at.eq(until))
    .execute(conn)?
        == 1)
}

/// Records a delivery.
pub(crate) fn delivered(
    conn: &mut DbConnection,
    id: &str,
    attempts: i32,
    at: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::update(opendsr_callbacks::table.find(id))
        .set((
            opendsr_callbacks::attempts.eq(attempts),
            opendsr_callbacks::delivered_at.eq(Some(at)),
            opendsr_callbacks::last_error.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records a failed attempt: the next one at `next`, or given up (`failed_at`) when `next` is
/// `None`.
pub(crate) fn attempt_failed(
    conn: &mut DbConnection,
    id: &str,
    attempts: i32,
    error: &str,
    next: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    let target = opendsr_callbacks::table.find(id);
    match next {
        Some(next) => diesel::update(target)
            .set((
                opendsr_callbacks::attempts.eq(attempts),
                opendsr_callbacks::last_error.eq(Some(error)),
                opendsr_callbacks::next_attempt_at.eq(next),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set((
                opendsr_callbacks::attempts.eq(attempts),
                opendsr_callbacks::last_error.eq(Some(error)),
                opendsr_callbacks::failed_at.eq(Some(now)),
            ))
            .execute(conn)?,
    };
    Ok(())
}

/// The callbacks of a request, oldest first.
#[cfg(any(test, feature = "test-support"))]
pub fn callbacks_of(
    conn: &mut DbConnection,
    subject_request_id: &str,
) -> Result<Vec<CallbackRow>, StoreError> {
    Ok(opendsr_callbacks::table
        .filter(opendsr_callbacks::subject_request_id.eq(subject_request_id))
        .order(opendsr_callbacks::id)
        .select(CallbackRow::as_select())
        .load(conn)?)
}

/// The stored development identity: certificate PEM and sealed private key.
pub(crate) fn find_identity(
    conn: &mut DbConnection,
    name: &str,
) -> Result<Option<(String, Vec<u8>)>, StoreError> {
    Ok(opendsr_identity::table
        .find(name)
        .select((
            opendsr_identity::certificate_pem,
            opendsr_identity::private_key_ct,
        ))
        .first(conn)
        .optional()?)
}

/// Stores a development identity unless one exists; `false` when another process stored one
/// first.
pub(crate) fn insert_identity(
    conn: &mut DbConnection,
    name: &str,
    certificate_pem: &str,
    private_key_ct: &[u8],
    at: NaiveDateTime,
) -> Result<bool, StoreError> {
    let inserted = diesel::insert_into(opendsr_identity::table)
        .values((
            opendsr_identity::name.eq(name),
            opendsr_identity::certificate_pem.eq(certificate_pem),
            opendsr_identity::private_key_ct.eq(private_key_ct),
            opendsr_identity::created_at.eq(at),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(true),
        Err(error) if super::is_unique_violation(&error) => Ok(false),
        Err(error) => Err(error.into()),
    }
}
