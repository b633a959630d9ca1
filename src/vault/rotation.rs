//! `custodia keys rotate-master`: a new current master key, and every wrapped key re-wrapped
//! under it in batches, without touching any ciphertext.
//!
//! Steps, each idempotent, so an interrupted rotation is finished by running the command again:
//! 1. write the new key to `<key file>.next` and record the rotation in the database;
//! 2. keep the old key in `<key file>.retired/` and rename `.next` over the key file;
//! 3. re-wrap the root secret and every data key not yet under the new key, in batches;
//! 4. mark the rotation finished.
//!
//! Data stays readable throughout: running processes find keys wrapped by a master key they
//! have not loaded yet by re-reading the keyring files.

use std::path::Path;

use chrono::Utc;

use super::{Vault, VaultError, DATA_KEY_LABEL, HOLD_KEY_LABEL, REQUEST_KEY_LABEL, ROOT_LABEL};
use crate::crypto::{MasterKeyring, WrapContext};
use crate::store::keys::{self as key_store, RotationRow};
use crate::store::{write_transaction, DbConnection, StoreError};

/// How many data keys one transaction re-wraps.
const REWRAP_BATCH: i64 = 1_000;

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct RotationReport {
    /// The master key id that was replaced.
    pub from_key_id: String,
    /// The new current master key id.
    pub to_key_id: String,
    /// Keys re-wrapped by this run.
    pub rewrapped: i64,
    /// Whether this run finished an interrupted rotation instead of starting one.
    pub resumed: bool,
}

/// Rotates the master key at `master_key_file` (or finishes an interrupted rotation).
pub fn rotate_master_key(
    conn: &mut DbConnection,
    master_key_file: &Path,
) -> Result<RotationReport, VaultError> {
    let keyring = MasterKeyring::load_or_create(master_key_file)?;
    let (rotation, resumed) = match key_store::unfinished_rotation(conn)? {
        Some(rotation) => (rotation, true),
        None => {
            let next = keyring.prepare_next()?;
            let rotation = RotationRow {
                id: uuid::Uuid::new_v4().to_string(),
                from_key_id: keyring.current().id().to_string(),
                to_key_id: next.id().to_string(),
                started_at: Utc::now().naive_utc(),
                finished_at: None,
                rewrapped: 0,
            };
            key_store::insert_rotation(conn, &rotation)?;
            (rotation, false)
        }
    };

    if keyring.current().id().as_str() != rotation.to_key_id {
        let next = keyring.prepare_next()?;
        if next.id().as_str() != rotation.to_key_id {
            return Err(VaultError::UnknownMasterKey(rotation.to_key_id.clone()));
        }
        keyring.promote_next()?;
    }
    // The vault loads the keyring as it is now: the new key is current.
    let vault = Vault::open(conn, master_key_file)?;
    let target_id = vault.keyring().current().id().to_string();
    let rewrapped = rewrap_all(conn, &vault, &mut |_| Ok(()))?;

    key_store::finish_rotation(
        conn,
        &rotation.id,
        Utc::now().naive_utc(),
        rotation.rewrapped + rewrapped,
    )?;
    Ok(RotationReport {
        from_key_id: rotation.from_key_id,
        to_key_id: target_id,
        rewrapped,
        resumed,
    })
}

/// Re-wraps every wrapped key (deployment secrets, data-subject requests' keys, then data keys in batches of
/// [`REWRAP_BATCH`], one pass in key order) that is not wrapped in the vault's current epoch
/// under the current master key. A key erased or re-wrapped by someone else meanwhile is left
/// as it is. `after_batch` runs after each batch (to renew a lease). On SQLite, where a batch
/// holds the one write lock, each batch is followed by a pause as long as it took, so that
/// writes get at least half the time meanwhile. Returns how many keys it re-wrapped.
pub(crate) fn rewrap_all(
    conn: &mut DbConnection,
    vault: &Vault,
    after_batch: &mut dyn FnMut(&mut DbConnection) -> Result<(), StoreError>,
) -> Result<i64, VaultError> {
    let target_master = vault.keyring().current().id().to_string();
    let epoch = vault.current_epoch();
    let mut rewrapped = 0i64;
    for row in key_store::key_material_not_under(conn, &target_master, epoch)? {
        let context = WrapContext {
            label: ROOT_LABEL,
            owner: &row.name,
        };
        let secret = vault
            .unwrap_stored(&row.master_key_id, row.epoch, &context, &row.wrapped)
            .map_err(|_| VaultError::Corrupt("root secret"))?;
        let (master, epoch, wrapped) = vault.wrap_current(&context, &secret)?;
        rewrapped += key_store::rewrap_key_material(conn, &row, &master, epoch, &wrapped)? as i64;
    }

    for row in crate::store::requests::keys_not_under(conn, &target_master, epoch)? {
        let context = WrapContext {
            label: REQUEST_KEY_LABEL,
            owner: &row.id,
        };
        let secret = vault.unwrap_stored(&row.master_key_id, row.epoch, &context, &row.wrapped)?;
        let (master, epoch, wrapped) = vault.wrap_current(&context, &secret)?;
        rewrapped +=
            crate::store::requests::rewrap_key(conn, &row, &master, epoch, &wrapped)? as i64;
    }

    for row in crate::store::holds::keys_not_under(conn, &target_master, epoch)? {
        let context = WrapContext {
            label: HOLD_KEY_LABEL,
            owner: &row.erasure_id,
        };
        let secret = vault.unwrap_stored(&row.master_key_id, row.epoch, &context, &row.wrapped)?;
        let (master, epoch, wrapped) = vault.wrap_current(&context, &secret)?;
        rewrapped += crate::store::holds::rewrap_key(conn, &row, &master, epoch, &wrapped)? as i64;
    }

    let mut after = String::new();
    loop {
        let batch =
            key_store::data_keys_not_under(conn, &target_master, epoch, &after, REWRAP_BATCH)?;
        let Some(last) = batch.last() else { break };
        after.clone_from(&last.subject_pk);
        let mut rewrapped_rows = Vec::with_capacity(batch.len());
        for row in &batch {
            let context = WrapContext {
                label: DATA_KEY_LABEL,
                owner: &row.subject_pk,
            };
            let secret =
                vault.unwrap_stored(&row.master_key_id, row.epoch, &context, &row.wrapped)?;
            rewrapped_rows.push((row, vault.wrap_current(&context, &secret)?));
        }
        let writing = std::time::Instant::now();
        let changed = write_transaction(conn, |conn| {
            let mut changed = 0usize;
            for (row, (master, epoch, wrapped)) in &rewrapped_rows {
                changed += key_store::rewrap_data_key(conn, row, master, *epoch, wrapped)?;
            }
            Ok::<_, StoreError>(changed)
        })?;
        rewrapped += changed as i64;
        if matches!(conn, DbConnection::Sqlite(_)) {
            std::thread::sleep(writing.elapsed());
        }
        after_batch(conn)?;
    }
    Ok(rewrapped)
}
