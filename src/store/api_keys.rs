//! API key rows.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::api_keys;
use super::{DbConnection, StoreError};

/// A stored API key.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    /// The public key id (the part between `ck_` and the secret).
    pub id: String,
    /// A human name for the key, chosen by whoever created it.
    pub name: String,
    /// The policy role the key acts as.
    pub role: String,
    /// The argon2id PHC string of the secret.
    pub secret_hash: String,
    /// When the key was created (UTC).
    pub created_at: NaiveDateTime,
    /// The key id that created this key, or `None` when it came from the CLI.
    pub created_by: Option<String>,
    /// When the key was revoked (UTC), if it was.
    pub revoked_at: Option<NaiveDateTime>,
}

/// A key to insert.
#[derive(Debug, Insertable)]
#[diesel(table_name = api_keys)]
pub struct NewApiKey<'a> {
    /// The public key id.
    pub id: &'a str,
    /// The key's name.
    pub name: &'a str,
    /// The key's role.
    pub role: &'a str,
    /// The argon2id PHC string of the secret.
    pub secret_hash: &'a str,
    /// Creation time (UTC).
    pub created_at: NaiveDateTime,
    /// The creating key id, if any.
    pub created_by: Option<&'a str>,
}

/// Inserts a new key.
pub fn insert(conn: &mut DbConnection, key: &NewApiKey<'_>) -> Result<(), StoreError> {
    diesel::insert_into(api_keys::table)
        .values(key)
        .execute(conn)?;
    Ok(())
}

/// Finds a key by id, revoked or not.
pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<ApiKeyRow>, StoreError> {
    Ok(api_keys::table
        .find(id)
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()?)
}

/// Every key, oldest first.
pub(crate) fn list(conn: &mut DbConnection) -> Result<Vec<ApiKeyRow>, StoreError> {
    Ok(api_keys::table
        .select(ApiKeyRow::as_select())
        .order((api_keys::created_at.asc(), api_keys::id.asc()))
        .load(conn)?)
}

/// Marks a key revoked at `now` unless it already was; returns the key as it is afterwards,
/// or `None` when no key has this id.
pub(crate) fn revoke(
    conn: &mut DbConnection,
    id: &str,
    now: NaiveDateTime,
) -> Result<Option<ApiKeyRow>, StoreError> {
    conn.transaction(|conn| {
        diesel::update(
            api_keys::table
                .find(id)
                .filter(api_keys::revoked_at.is_null()),
        )
        .set(api_keys::revoked_at.eq(Some(now)))
        .execute(conn)?;
        find(conn, id)
    })
}

/// `(id, name)` of these keys (revoked ones too: an audit entry outlives its key's use).
pub(crate) fn names_of(
    conn: &mut DbConnection,
    ids: &[&str],
) -> Result<Vec<(String, String)>, StoreError> {
    super::load_chunked(ids, |chunk| {
        api_keys::table
            .filter(api_keys::id.eq_any(chunk))
            .select((api_keys::id, api_keys::name))
            .load(conn)
    })
}
