//! Wrapped keys: the root secret, subjects' data keys, and master key rotations.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{data_keys, key_epochs, key_material, master_key_rotations};
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
    /// The key epoch it is wrapped in (`None`: the master key alone, from before epochs).
    pub epoch: Option<i64>,
}

/// A subject's wrapped data key.
#[derive(Debug, Clone, Queryable, Selectable)]
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
    /// The key epoch it is wrapped in (`None`: the master key alone, from before epochs).
    pub epoch: Option<i64>,
}

super::bulk::insert_columns!(DataKeyRow => data_keys {
    subject_pk,
    key_id,
    master_key_id,
    wrapped,
    epoch,
});

/// A key epoch.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = key_epochs)]
pub struct EpochRow {
    /// Its number, from 1.
    pub epoch: i64,
    /// The check value of its key (`EpochKey::check`).
    pub key_check: String,
    /// When it became the current epoch.
    pub started_at: NaiveDateTime,
    /// When no live key was wrapped in it any more.
    pub retired_at: Option<NaiveDateTime>,
    /// When the first host destroyed its key.
    pub destroyed_at: Option<NaiveDateTime>,
    /// Until when a process holds the lease on re-wrapping into this epoch.
    pub rewrap_until: Option<NaiveDateTime>,
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
pub(crate) fn find_key_material(
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
pub(crate) fn insert_key_material(
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

/// Every wrapped secret not wrapped by `master_key_id` in `epoch`.
pub(crate) fn key_material_not_under(
    conn: &mut DbConnection,
    master_key_id: &str,
    epoch: i64,
) -> Result<Vec<KeyMaterialRow>, StoreError> {
    Ok(key_material::table
        .filter(
            key_material::master_key_id
                .ne(master_key_id)
                .or(key_material::epoch.is_null())
                .or(key_material::epoch.ne(epoch)),
        )
        .select(KeyMaterialRow::as_select())
        .load(conn)?)
}

/// Replaces a secret's wrapping if it is still wrapped as `old` says; returns rows changed.
pub(crate) fn rewrap_key_material(
    conn: &mut DbConnection,
    old: &KeyMaterialRow,
    new_master: &str,
    new_epoch: i64,
    wrapped: &[u8],
) -> Result<usize, StoreError> {
    let still = key_material::name
        .eq(&old.name)
        .and(key_material::master_key_id.eq(&old.master_key_id));
    let set = (
        key_material::master_key_id.eq(new_master),
        key_material::epoch.eq(Some(new_epoch)),
        key_material::wrapped.eq(wrapped),
    );
    Ok(match old.epoch {
        Some(epoch) => diesel::update(key_material::table)
            .filter(still.and(key_material::epoch.eq(epoch)))
            .set(set)
            .execute(conn)?,
        None => diesel::update(key_material::table)
            .filter(still.and(key_material::epoch.is_null()))
            .set(set)
            .execute(conn)?,
    })
}

/// The wrapped data keys of these subjects (those that exist).
pub(crate) fn data_keys_for(
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
pub(crate) fn insert_data_keys(
    conn: &mut DbConnection,
    rows: &[DataKeyRow],
) -> Result<(), StoreError> {
    super::insert_all!(conn, rows);
    Ok(())
}

/// Up to `limit` data keys after `after_pk` (in key order) not wrapped by `master_key_id` in
/// `epoch`: one pass over the primary key, however many keys there are.
pub(crate) fn data_keys_not_under(
    conn: &mut DbConnection,
    master_key_id: &str,
    epoch: i64,
    after_pk: &str,
    limit: i64,
) -> Result<Vec<DataKeyRow>, StoreError> {
    Ok(data_keys::table
        .filter(data_keys::subject_pk.gt(after_pk))
        .filter(
            data_keys::master_key_id
                .ne(master_key_id)
                .or(data_keys::epoch.is_null())
                .or(data_keys::epoch.ne(epoch)),
        )
        .order(data_keys::subject_pk)
        .limit(limit)
        .select(DataKeyRow::as_select())
        .load(conn)?)
}

/// Replaces a data key's wrapping if it is still wrapped as `old` says (an erasure or another
/// rotation may have come first); returns rows changed.
pub(crate) fn rewrap_data_key(
    conn: &mut DbConnection,
    old: &DataKeyRow,
    new_master: &str,
    new_epoch: i64,
    wrapped: &[u8],
) -> Result<usize, StoreError> {
    let still = data_keys::subject_pk
        .eq(&old.subject_pk)
        .and(data_keys::master_key_id.eq(&old.master_key_id));
    let set = (
        data_keys::master_key_id.eq(new_master),
        data_keys::epoch.eq(Some(new_epoch)),
        data_keys::wrapped.eq(wrapped),
    );
    Ok(match old.epoch {
        Some(epoch) => diesel::update(data_keys::table)
            .filter(still.and(data_keys::epoch.eq(epoch)))
            .set(set)
            .execute(conn)?,
        None => diesel::update(data_keys::table)
            .filter(still.and(data_keys::epoch.is_null()))
            .set(set)
            .execute(conn)?,
    })
}

/// How many wrapped keys (data keys and deployment secrets) are wrapped in `epoch` or an earlier
/// one, or under the master key alone.
pub(crate) fn wrapped_up_to_epoch(conn: &mut DbConnection, epoch: i64) -> Result<i64, StoreError> {
    let data: i64 = data_keys::table
        .filter(data_keys::epoch.le(epoch).or(data_keys::epoch.is_null()))
        .count()
        .get_result(conn)?;
    let material: i64 = key_material::table
        .filter(
            key_material::epoch
                .le(epoch)
                .or(key_material::epoch.is_null()),
        )
        .count()
        .get_result(conn)?;
    Ok(data
        + material
        + super::requests::keys_up_to_epoch(conn, epoch)?
        + super::holds::keys_up_to_epoch(conn, epoch)?)
}

/// The current (latest) key epoch, if any was started.
pub(crate) fn current_epoch(conn: &mut DbConnection) -> Result<Option<EpochRow>, StoreError> {
    Ok(key_epochs::table
        .order(key_epochs::epoch.desc())
        .select(EpochRow::as_select())
        .first(conn)
        .optional()?)
}

/// One epoch.
pub(crate) fn find_epoch(
    conn: &mut DbConnection,
    epoch: i64,
) -> Result<Option<EpochRow>, StoreError> {
    Ok(key_epochs::table
        .find(epoch)
        .select(EpochRow::as_select())
        .first(conn)
        .optional()?)
}

/// Every epoch, oldest first.
pub(crate) fn epochs(conn: &mut DbConnection) -> Result<Vec<EpochRow>, StoreError> {
    Ok(key_epochs::table
        .order(key_epochs::epoch.asc())
        .select(EpochRow::as_select())
        .load(conn)?)
}

/// Starts an epoch; `false` if another process started one with this number first.
pub(crate) fn insert_epoch(conn: &mut DbConnection, row: &EpochRow) -> Result<bool, StoreError> {
    match diesel::insert_into(key_epochs::table)
        .values(row)
        .execute(conn)
    {
        Ok(_) => Ok(true),
        Err(error) if is_unique_violation(&error) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Records that nothing live is wrapped in `epoch` any more (once).
pub(crate) fn retire_epoch(
    conn: &mut DbConnection,
    epoch: i64,
    at: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::update(
        key_epochs::table
            .find(epoch)
            .filter(key_epochs::retired_at.is_null()),
    )
    .set(key_epochs::retired_at.eq(Some(at)))
    .execute(conn)?;
    Ok(())
}

/// Records that a host destroyed `epoch`'s key (the first one's time is kept).
pub(crate) fn mark_epoch_destroyed(
    conn: &mut DbConnection,
    epoch: i64,
    at: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::update(
        key_epochs::table
            .find(epoch)
            .filter(key_epochs::destroyed_at.is_null()),
    )
    .set(key_epochs::destroyed_at.eq(Some(at)))
    .execute(conn)?;
    Ok(())
}

/// The rotation that was started but not finished, if any.
pub(crate) fn unfinished_rotation(
    conn: &mut DbConnection,
) -> Result<Option<RotationRow>, StoreError> {
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
pub(crate) fn finish_rotation(
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

/// Takes (or renews, with `renew`) the lease on re-wrapping into `epoch` until `until`; `false`
/// when another process holds it and it has not run out at `now`.
pub(crate) fn take_rewrap_lease(
    conn: &mut DbConnection,
    epoch: i64,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> Result<bool, StoreError> {
    let taken = diesel::update(
        key_epochs::table.find(epoch).filter(
            key_epochs::rewrap_until
                .is_null()
                .or(key_epochs::rewrap_until.lt(now)),
        ),
    )
    .set(key_epochs::rewrap_until.eq(Some(until)))
    .execute(conn)?;
    Ok(taken == 1)
}

/// Renews a lease this process holds.
pub(crate) fn renew_rewrap_lease(
    conn: &mut DbConnection,
    epoch: i64,
    until: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::update(key_epochs::table.find(epoch))
        .set(key_epochs::rewrap_until.eq(Some(until)))
        .execute(conn)?;
    Ok(())
}

/// Gives the lease up.
pub(crate) fn release_rewrap_lease(conn: &mut DbConnection, epoch: i64) -> Result<(), StoreError> {
    diesel::update(key_epochs::table.find(epoch))
        .set(key_epochs::rewrap_until.eq(None::<NaiveDateTime>))
        .execute(conn)?;
    Ok(())
}
