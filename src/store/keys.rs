//! Wrapped keys: the root secret, subjects' data keys, and master key rotations.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{data_keys, key_material, master_key_rotations};
use super::{is_unique_violation, DbConnection, StoreError};

/// A deployment-wide wrapped secret.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = key_material)]
pub struct KeyMaterialRow {
    /// Its name (`root`).
    pub name: String,
    /// The master key that wraps it.
    pub master_key_id: String,
    /// The wrapped bytes.
    pub wrapped: Vec<u8>,
    /// When it was created.
    pub created_at: NaiveDateTime,
}

/// A subject's wrapped data key.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = data_keys)]
pub struct DataKeyRow {
    /// The subject's internal id.
    pub subject_pk: String,
    /// The data key's id (hex), carried by its ciphertexts.
    pub key_id: String,
    /// The master key that wraps it.
    pub master_key_id: String,
    /// The wrapped key.
    pub wrapped: Vec<u8>,
}

/// A master key rotation, finished or not.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = master_key_rotations)]
pub struct RotationRow {
    /// The rotation's id.
    pub id: String,
    /// The master key being retired.
    pub from_key_id: String,
    /// The new master key.
    pub to_key_id: String,
    /// When it started.
    pub started_at: NaiveDateTime,
    /// When every key was re-wrapped.
    pub finished_at: Option<NaiveDateTime>,
    /// How many keys it re-wrapped.
    pub rewrapped: i64,
}

/// The wrapped secret with this name.
pub fn find_key_material(
    conn: &mut DbConnection,
    name: &str,
) -> Result<Option<KeyMaterialRow>, StoreError> {
    Ok(key_material::table
        .find(name)
        .select(KeyMaterialRow::as_select())
        .first(conn)
        .optional()?)
}

/// Inserts a wrapped secret; `false` if another process inserted one with this name first.
pub fn insert_key_material(
    conn: &mut DbConnection,
    row: &KeyMaterialRow,
) -> Result<bool, StoreError> {
    match diesel::insert_into(key_material::table)
        .values(row)
        .execute(conn)
    {
        Ok(_) => Ok(true),
        Err(error) if is_unique_violation(&error) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Every wrapped secret not wrapped by `master_key_id`.
pub fn key_material_not_under(
    conn: &mut DbConnection,
    master_key_id: &str,
) -> Result<Vec<KeyMaterialRow>, StoreError> {
    Ok(key_material::table
        .filter(key_material::master_key_id.ne(master_key_id))
        .select(KeyMaterialRow::as_select())
        .load(conn)?)
}

/// Replaces a secret's wrapping if it is still wrapped by `old_master`; returns rows changed.
pub fn rewrap_key_material(
    conn: &mut DbConnection,
    name: &str,
    old_master: &str,
    new_master: &str,
    wrapped: &[u8],
) -> Result<usize, StoreError> {
    Ok(diesel::update(
        key_material::table
            .find(name)
            .filter(key_material::master_key_id.eq(old_master)),
    )
    .set((
        key_material::master_key_id.eq(new_master),
        key_material::wrapped.eq(wrapped),
    ))
    .execute(conn)?)
}

/// The wrapped data keys of these subjects (those that exist).
pub fn data_keys_for(
    conn: &mut DbConnection,
    subject_pks: &[&str],
) -> Result<Vec<DataKeyRow>, StoreError> {
    super::load_chunked(subject_pks, |chunk| {
        data_keys::table
            .filter(data_keys::subject_pk.eq_any(chunk))
            .select(DataKeyRow::as_select())
            .load(conn)
    })
}

/// Inserts data keys.
pub fn insert_data_keys(conn: &mut DbConnection, rows: &[DataKeyRow]) -> Result<(), StoreError> {
    super::insert_all!(conn, data_keys::table, rows);
    Ok(())
}

/// Up to `limit` data keys not wrapped by `master_key_id`.
pub fn data_keys_not_under(
    conn: &mut DbConnection,
    master_key_id: &str,
    limit: i64,
) -> Result<Vec<DataKeyRow>, StoreError> {
    Ok(data_keys::table
        .filter(data_keys::master_key_id.ne(master_key_id))
        .order(data_keys::subject_pk)
        .limit(limit)
        .select(DataKeyRow::as_select())
        .load(conn)?)
}

/// Replaces a data key's wrapping if it is still wrapped by `old_master`; returns rows changed.
pub fn rewrap_data_key(
    conn: &mut DbConnection,
    subject_pk: &str,
    old_master: &str,
    new_master: &str,
    wrapped: &[u8],
) -> Result<usize, StoreError> {
    Ok(diesel::update(
        data_keys::table
            .find(subject_pk)
            .filter(data_keys::master_key_id.eq(old_master)),
    )
    .set((
        data_keys::master_key_id.eq(new_master),
        data_keys::wrapped.eq(wrapped),
    ))
    .execute(conn)?)
}

/// The rotation that was started but not finished, if any.
pub fn unfinished_rotation(conn: &mut DbConnection) -> Result<Option<RotationRow>, StoreError> {
    Ok(master_key_rotations::table
        .filter(master_key_rotations::finished_at.is_null())
        .order(master_key_rotations::started_at.desc())
        .select(RotationRow::as_select())
        .first(conn)
        .optional()?)
}

/// Records the start of a rotation.
pub fn insert_rotation(conn: &mut DbConnection, row: &RotationRow) -> Result<(), StoreError> {
    diesel::insert_into(master_key_rotations::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Records the end of a rotation.
pub fn finish_rotation(
    conn: &mut DbConnection,
    id: &str,
    finished_at: NaiveDateTime,
    rewrapped: i64,
) -> Result<(), StoreError> {
    diesel::update(master_key_rotations::table.find(id))
        .set((
            master_key_rotations::finished_at.eq(Some(finished_at)),
            master_key_rotations::rewrapped.eq(rewrapped),
        ))
        .execute(conn)?;
    Ok(())
}
