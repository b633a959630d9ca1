//! The key hierarchy at work: the master keyring, the root secret (stored wrapped in the
//! database, created on first start), the blind-index and token keys derived from it, and the
//! subjects' data keys with a bounded cache. Also master key rotation.

mod cache;
mod epochs;
mod rotation;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, Utc};

pub use cache::DataKeyCache;
pub use epochs::{
    audit_epoch_report, maintain_epochs, EpochSchedule, DEFAULT_BACKUP_RETENTION, DEFAULT_KEY_EPOCH,
};
#[cfg(feature = "test-support")]
pub use epochs::{EpochReport, RETIREMENT_ALLOWANCE};
pub use rotation::rotate_master_key;

use crate::crypto::{
    epoch_file_for, unwrap_secret, wrap_secret, BlindIndexKeys, DataKey, EpochRatchet, MasterKey,
    MasterKeyError, MasterKeyring, Secret, WrapContext, DATA_KEY_ID_LEN,
};
use crate::store::keys::{self as key_store, DataKeyRow, KeyMaterialRow};
use crate::store::{DbConnection, StoreError};

pub(crate) const ROOT_SECRET_NAME: &str = "root";
/// The name of the consent-receipt signing seed in `key_material`.
pub(crate) const RECEIPT_SEED_NAME: &str = "consent-receipt-signing";
/// The name of the audit checkpoint signing seed in `key_material`.
pub(crate) const AUDIT_SEED_NAME: &str = "audit-checkpoint-signing";
pub(crate) const ROOT_LABEL: &str = "root";
pub(crate) const DATA_KEY_LABEL: &str = "data-key";
/// The wrapping label of a data-subject request's own key.
pub const REQUEST_KEY_LABEL: &str = "request-key";
/// The wrapping label of a legal hold's own key (its owner: the erasure's id).
pub const HOLD_KEY_LABEL: &str = "hold-key";

/// A record's own key as stored (a data-subject request's): wrapped like a data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The key's id (hex), carried by its ciphertexts.
    pub key_id: String,
    /// The master key that wraps it.
    pub master_key_id: String,
    /// The key epoch it is wrapped in.
    pub epoch: Option<i64>,
    /// The wrapped bytes.
    pub wrapped: Vec<u8>,
}
/// The HKDF label of the access token signing key.
pub const TOKEN_KEY_LABEL: &str = "custodia/jwt/v1";
/// The label that derives the key sealing data-subject requests' identities and free text.
pub const REQUESTS_KEY_LABEL: &str = "custodia/requests/v1";
/// The key id carried by ciphertexts under the requests key.
const REQUESTS_KEY_ID: [u8; crate::crypto::DATA_KEY_ID_LEN] = *b"requests";
/// How often a running process re-reads the keyring files, to pick up a rotation.
const KEYRING_RELOAD_INTERVAL: Duration = Duration::from_secs(30);

/// Errors of the key hierarchy.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The master key files could not be used.
    #[error(transparent)]
    MasterKey(#[from] MasterKeyError),
    /// A wrapped key names a master key that is not in the keyring.
    #[error("a key is wrapped by master key {0}, which is not in the keyring (is a retired key missing from the `.retired` directory?)")]
    UnknownMasterKey(String),
    /// A wrapped key did not unwrap: it was altered or moved.
    #[error("a wrapped key could not be unwrapped ({0}): it was altered or belongs elsewhere")]
    Corrupt(&'static str),
    /// The subject's data key is gone: it was erased after the request found the subject.
    #[error("the subject was erased while the request ran")]
    Erased,
    /// A key is wrapped in a key epoch whose key this host has destroyed.
    #[error("a key is wrapped in key epoch {0}, which this host's epoch file has destroyed")]
    EpochDestroyed(i64),
    /// This process has not learned the current key epoch for too long to wrap new keys safely.
    #[error("key epoch maintenance has not run for half the backup retention; refusing to wrap new keys in an epoch that may be destroyed")]
    EpochStale,
    /// This host's epoch file does not hold the deployment's epoch keys.
    #[error("the key epoch file {path} does not match the database's epoch {epoch}: every host of a deployment needs a copy of the same epoch file (made on the first start), as of the master key")]
    EpochMismatch {
        /// The epoch file.
        path: String,
        /// The epoch whose check value differs.
        epoch: i64,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The loaded key hierarchy of one process.
pub struct Vault {
    keyring_path: PathBuf,
    keyring: RwLock<Arc<MasterKeyring>>,
    keyring_loaded_at: Mutex<Instant>,
    ratchet: RwLock<EpochRatchet>,
    current_epoch: AtomicI64,
    /// When this process last learned the current epoch from the database.
    epoch_refreshed_at: Mutex<Instant>,
    /// Wrapping keys of (master key, epoch) pairs, by their id.
    wrapping_keys: RwLock<HashMap<String, Arc<MasterKey>>>,
    schedule: EpochSchedule,
    blind_index: BlindIndexKeys,
    token_key: Secret,
    receipt_seed: Secret,
    audit_seed: Secret,
    requests_key: DataKey,
    cache: DataKeyCache,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vault({})", self.keyring_path.display())
    }
}

impl Vault {
    /// Loads the keyring at `master_key_file` (creating the key on first start) and the root
    /// secret from the database (creating it on first start; safe when processes race).
    ///
    /// The key epoch file beside the key file is loaded (created on first start) too, and the
    /// first epoch is started when the database has none. The epoch schedule is the default
    /// until [`Vault::with_schedule`].
    pub fn open(conn: &mut DbConnection, master_key_file: &Path) -> Result<Vault, VaultError> {
        let keyring = MasterKeyring::load_or_create(master_key_file)?;
        let ratchet = EpochRatchet::load_or_create(&epoch_file_for(master_key_file))?;
        let current = epochs::ensure_current(conn, &ratchet, Utc::now().naive_utc())?;
        let mut vault = Vault {
            keyring_path: master_key_file.to_owned(),
            keyring: RwLock::new(Arc::new(keyring)),
            keyring_loaded_at: Mutex::new(Instant::now()),
            ratchet: RwLock::new(ratchet),
            current_epoch: AtomicI64::new(current.epoch),
            epoch_refreshed_at: Mutex::new(Instant::now()),
            wrapping_keys: RwLock::new(HashMap::new()),
            schedule: EpochSchedule::default(),
            blind_index: BlindIndexKeys::derive(&Secret::zeroed()),
            token_key: Secret::zeroed(),
            receipt_seed: Secret::zeroed(),
            audit_seed: Secret::zeroed(),
            requests_key: DataKey::new(REQUESTS_KEY_ID, &Secret::zeroed()),
            cache: DataKeyCache::new(),
        };
        let root = vault.load_or_create_secret(conn, ROOT_SECRET_NAME)?;
        vault.receipt_seed = vault.load_or_create_secret(conn, RECEIPT_SEED_NAME)?;
        vault.audit_seed = vault.load_or_create_secret(conn, AUDIT_SEED_NAME)?;
        vault.blind_index = BlindIndexKeys::derive(&root);
        vault.token_key = crate::crypto::derive_from_root(&root, TOKEN_KEY_LABEL);
        vault.requests_key = DataKey::new(
            REQUESTS_KEY_ID,
            &crate::crypto::derive_from_root(&root, REQUESTS_KEY_LABEL),
        );
        Ok(vault)
    }

    /// The same vault with this epoch schedule (how long an epoch lasts, how long backups are
    /// kept).
    pub fn with_schedule(mut self, schedule: EpochSchedule) -> Vault {
        self.schedule = schedule;
        self
    }

    /// The epoch schedule.
    pub(crate) fn schedule(&self) -> EpochSchedule {
        self.schedule
    }

    /// The epoch new keys are wrapped in.
    pub(crate) fn current_epoch(&self) -> i64 {
        self.current_epoch.load(Ordering::Acquire)
    }

    pub(crate) fn set_current_epoch(&self, epoch: i64) {
        self.current_epoch.fetch_max(epoch, Ordering::AcqRel);
        *self
            .epoch_refreshed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// The oldest epoch this host can still compute.
    pub(crate) fn oldest_epoch(&self) -> i64 {
        self.ratchet
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .oldest()
    }

    /// Destroys this host's keys of every epoch before `epoch` (the epoch file is rewritten).
    pub(crate) fn destroy_epochs_before(&self, epoch: i64) -> Result<(), VaultError> {
        self.ratchet
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .destroy_before(epoch)?;
        self.wrapping_keys
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(())
    }

    /// The check value of `epoch`'s key on this host (`None`: destroyed here).
    pub(crate) fn epoch_check(&self, epoch: i64) -> Option<String> {
        self.ratchet
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .key(epoch)
            .map(|key| key.check())
    }

    /// When an erasure made now reaches every backup: the current epoch is retired at the end of
    /// its period (or now, if that is past), and its key destroyed a backup retention later.
    pub(crate) fn erasure_reaches_backups_by(
        &self,
        conn: &mut DbConnection,
        now: NaiveDateTime,
    ) -> Result<NaiveDateTime, VaultError> {
        let started = key_store::find_epoch(conn, self.current_epoch())?
            .map(|row| row.started_at)
            .unwrap_or(now);
        Ok(epochs::reaches_backups_by(&self.schedule, started, now))
    }

    /// The key that wraps in `epoch` (`None`: the master key alone) under the master key
    /// `master_key_id`, from the cache or derived.
    fn wrapping_key(
        &self,
        keyring: &MasterKeyring,
        master_key_id: &str,
        epoch: Option<i64>,
    ) -> Result<Arc<MasterKey>, VaultError> {
        let master = keyring
            .find(master_key_id)
            .ok_or_else(|| VaultError::UnknownMasterKey(master_key_id.to_owned()))?;
        let Some(epoch) = epoch else {
            return Ok(Arc::new(master.duplicate()));
        };
        let id = format!("{master_key_id}.e{epoch}");
        if let Some(key) = self
            .wrapping_keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            return Ok(key.clone());
        }
        let epoch_key = self
            .ratchet
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .key(epoch)
            .ok_or(VaultError::EpochDestroyed(epoch))?;
        let key = Arc::new(epoch_key.wrapping_key(master));
        let mut cache = self
            .wrapping_keys
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if cache.len() > 64 {
            cache.clear();
        }
        cache.insert(id, key.clone());
        Ok(key)
    }

    /// Wraps a secret in the current epoch under the current master key: (master key id,
    /// epoch, wrapped bytes).
    pub(crate) fn wrap_current(
        &self,
        context: &WrapContext<'_>,
        secret: &Secret,
    ) -> Result<(String, i64, Vec<u8>), VaultError> {
        // An epoch is destroyed a backup retention after it was retired, and every process
        // learns of a new epoch at its next maintenance tick: a process that has not heard
        // for half a retention could be wrapping in an epoch about to be destroyed, so it
        // refuses instead.
        let heard = self
            .epoch_refreshed_at
            .lock()
            .map(|at| at.elapsed())
            .unwrap_or(Duration::MAX);
        if heard > self.schedule.backup_retention / 2 {
            return Err(VaultError::EpochStale);
        }
        let keyring = self.keyring();
        let master_id = keyring.current().id().to_string();
        let epoch = self.current_epoch();
        let key = self.wrapping_key(&keyring, &master_id, Some(epoch))?;
        Ok((master_id, epoch, wrap_secret(&key, context, secret)))
    }

    /// Unwraps a secret wrapped by `master_key_id` in `epoch`.
    pub(crate) fn unwrap_stored(
        &self,
        master_key_id: &str,
        epoch: Option<i64>,
        context: &WrapContext<'_>,
        wrapped: &[u8],
    ) -> Result<Secret, VaultError> {
        let mut keyring = self.keyring();
        if keyring.find(master_key_id).is_none() {
            // Another process may have rotated the master key since we loaded the ring.
            self.reload_keyring();
            keyring = self.keyring();
        }
        let key = self.wrapping_key(&keyring, master_key_id, epoch)?;
        unwrap_secret(&key, context, wrapped).map_err(|_| VaultError::Corrupt("wrapped key"))
    }

    /// Loads the deployment-wide secret `name`, or creates it; processes that race to create
    /// it agree on whichever was inserted first.
    fn load_or_create_secret(
        &self,
        conn: &mut DbConnection,
        name: &str,
    ) -> Result<Secret, VaultError> {
        let context = WrapContext {
            label: ROOT_LABEL,
            owner: name,
        };
        loop {
            if let Some(row) = key_store::find_key_material(conn, name)? {
                return self
                    .unwrap_stored(&row.master_key_id, row.epoch, &context, &row.wrapped)
                    .map_err(|error| match error {
                        VaultError::Corrupt(_) => VaultError::Corrupt("deployment secret"),
                        other => other,
                    });
            }
            let secret = Secret::generate();
            let (master_key_id, epoch, wrapped) = self.wrap_current(&context, &secret)?;
            let row = KeyMaterialRow {
                name: name.to_owned(),
                master_key_id,
                wrapped,
                created_at: Utc::now().naive_utc(),
                epoch: Some(epoch),
            };
            if key_store::insert_key_material(conn, &row)? {
                return Ok(secret);
            }
            // Another process created it first: read theirs.
        }
    }

    /// The blind-index keys.
    pub(crate) fn blind_index(&self) -> &BlindIndexKeys {
        &self.blind_index
    }

    /// The access token signing key.
    pub fn token_key(&self) -> &Secret {
        &self.token_key
    }

    /// The seed of the Ed25519 key that signs consent receipts. It is a secret of its own (not
    /// derived from the root secret), so that it can be replaced without touching anything else.
    pub(crate) fn receipt_seed(&self) -> &Secret {
        &self.receipt_seed
    }

    /// The seed of the Ed25519 key that signs audit checkpoints (a secret of its own, like the
    /// receipt seed).
    pub(crate) fn audit_seed(&self) -> &Secret {
        &self.audit_seed
    }

    /// The key that seals what a data-subject request says about the person (identifier,
    /// reasons, rectified values): derived from the root secret, so a master key rotation
    /// leaves it readable.
    pub(crate) fn requests_key(&self) -> &DataKey {
        &self.requests_key
    }

    /// Drops an erased subject's data key from this process's cache. Other processes drop it
    /// when their cache entry expires; the key can no longer be unwrapped from the database.
    pub(crate) fn forget_data_key(&self, subject_pk: &str) {
        self.cache.forget(subject_pk);
    }

    pub(crate) fn keyring(&self) -> Arc<MasterKeyring> {
        let stale = self
            .keyring_loaded_at
            .lock()
            .map(|at| at.elapsed() > KEYRING_RELOAD_INTERVAL)
            .unwrap_or(true);
        if stale {
            self.reload_keyring();
        }
        self.keyring
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the keyring files (after a rotation by another process).
    fn reload_keyring(&self) {
        let mut loaded_at = self
            .keyring_loaded_at
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *loaded_at = Instant::now();
        match MasterKeyring::load(&self.keyring_path) {
            Ok(keyring) => {
                *self.keyring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keyring);
            }
            Err(error) => {
                tracing::error!(error = %error, "could not reload the master keyring; keeping the loaded one");
            }
        }
        // Another process on this host may have destroyed epochs: follow it.
        let path = epoch_file_for(&self.keyring_path);
        match EpochRatchet::load(&path) {
            Ok(ratchet) if ratchet.oldest() > self.oldest_epoch() => {
                *self.ratchet.write().unwrap_or_else(|e| e.into_inner()) = ratchet;
                self.wrapping_keys
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!(error = %error, "could not reload the key epoch file; keeping the loaded one");
            }
        }
    }

    /// A new data key for a subject, and its row (wrapped in the current epoch under the
    /// current master key).
    pub(crate) fn new_data_key(
        &self,
        subject_pk: &str,
    ) -> Result<(Arc<DataKey>, DataKeyRow), VaultError> {
        let secret = Secret::generate();
        let key_id = DataKey::generate_id();
        let (master_key_id, epoch, wrapped) = self.wrap_current(
            &WrapContext {
                label: DATA_KEY_LABEL,
                owner: subject_pk,
            },
            &secret,
        )?;
        let key = Arc::new(DataKey::new(key_id, &secret));
        self.cache.insert(subject_pk, key.clone());
        let row = DataKeyRow {
            subject_pk: subject_pk.to_owned(),
            key_id: hex::encode(key_id),
            master_key_id,
            wrapped,
            epoch: Some(epoch),
        };
        Ok((key, row))
    }

    /// A new key of its own for the record `owner` (labelled `label`), wrapped in the current
    /// epoch; it is not cached.
    pub(crate) fn new_record_key(
        &self,
        label: &str,
        owner: &str,
    ) -> Result<(DataKey, WrappedKey), VaultError> {
        let secret = Secret::generate();
        let key_id = DataKey::generate_id();
        let (master_key_id, epoch, wrapped) =
            self.wrap_current(&WrapContext { label, owner }, &secret)?;
        Ok((
            DataKey::new(key_id, &secret),
            WrappedKey {
                key_id: hex::encode(key_id),
                master_key_id,
                epoch: Some(epoch),
                wrapped,
            },
        ))
    }

    /// Unwraps a record's own key made by [`Vault::new_record_key`].
    pub(crate) fn open_record_key(
        &self,
        label: &str,
        owner: &str,
        stored: &WrappedKey,
    ) -> Result<DataKey, VaultError> {
        let mut key_id = [0u8; DATA_KEY_ID_LEN];
        hex::decode_to_slice(&stored.key_id, &mut key_id)
            .map_err(|_| VaultError::Corrupt("record key id"))?;
        let secret = self.unwrap_stored(
            &stored.master_key_id,
            stored.epoch,
            &WrapContext { label, owner },
            &stored.wrapped,
        )?;
        Ok(DataKey::new(key_id, &secret))
    }

    /// Unwraps a stored data key (or takes it from the cache).
    pub(crate) fn unwrap_data_key(&self, row: &DataKeyRow) -> Result<Arc<DataKey>, VaultError> {
        if let Some(key) = self.cache.get(&row.subject_pk) {
            return Ok(key);
        }
        let mut key_id = [0u8; DATA_KEY_ID_LEN];
        hex::decode_to_slice(&row.key_id, &mut key_id)
            .map_err(|_| VaultError::Corrupt("data key id"))?;
        let secret = self.unwrap_stored(
            &row.master_key_id,
            row.epoch,
            &WrapContext {
                label: DATA_KEY_LABEL,
                owner: &row.subject_pk,
            },
            &row.wrapped,
        )?;
        let key = Arc::new(DataKey::new(key_id, &secret));
        self.cache.insert(&row.subject_pk, key.clone());
        Ok(key)
    }

    /// The data key of one subject, from the cache or the database; every subject has one.
    pub(crate) fn data_key_for(
        &self,
        conn: &mut DbConnection,
        subject_pk: &str,
    ) -> Result<Arc<DataKey>, VaultError> {
        self.data_keys_for(conn, &[subject_pk])?
            .remove(subject_pk)
            .ok_or(VaultError::Erased)
    }

    /// The data keys of these subjects, from the cache or the database.
    pub(crate) fn data_keys_for(
        &self,
        conn: &mut DbConnection,
        subject_pks: &[&str],
    ) -> Result<std::collections::HashMap<String, Arc<DataKey>>, VaultError> {
        let mut keys = std::collections::HashMap::with_capacity(subject_pks.len());
        let mut missing = Vec::new();
        for pk in subject_pks {
            match self.cache.get(pk) {
                Some(key) => {
                    keys.insert((*pk).to_owned(), key);
                }
                None => missing.push(*pk),
            }
        }
        if !missing.is_empty() {
            for row in key_store::data_keys_for(conn, &missing)? {
                let key = self.unwrap_data_key(&row)?;
                keys.insert(row.subject_pk, key);
            }
        }
        Ok(keys)
    }
}
