//! The key hierarchy at work: the master keyring, the root secret (stored wrapped in the
//! database, created on first start), the blind-index and token keys derived from it, and the
//! subjects' data keys with a bounded cache. Also master key rotation.

mod cache;
mod rotation;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;

pub use cache::DataKeyCache;
pub use rotation::{rotate_master_key, RotationReport};

use crate::crypto::{
    unwrap_secret, wrap_secret, BlindIndexKeys, DataKey, MasterKeyError, MasterKeyring, Secret,
    WrapContext, DATA_KEY_ID_LEN,
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
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The loaded key hierarchy of one process.
pub struct Vault {
    keyring_path: PathBuf,
    keyring: RwLock<Arc<MasterKeyring>>,
    keyring_loaded_at: Mutex<Instant>,
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
    pub fn open(conn: &mut DbConnection, master_key_file: &Path) -> Result<Vault, VaultError> {
        let keyring = MasterKeyring::load_or_create(master_key_file)?;
        let root = load_or_create_secret(conn, &keyring, ROOT_SECRET_NAME)?;
        let receipt_seed = load_or_create_secret(conn, &keyring, RECEIPT_SEED_NAME)?;
        let audit_seed = load_or_create_secret(conn, &keyring, AUDIT_SEED_NAME)?;
        Ok(Vault {
            keyring_path: master_key_file.to_owned(),
            keyring: RwLock::new(Arc::new(keyring)),
            keyring_loaded_at: Mutex::new(Instant::now()),
            blind_index: BlindIndexKeys::derive(&root),
            token_key: crate::crypto::derive_from_root(&root, TOKEN_KEY_LABEL),
            receipt_seed,
            audit_seed,
            requests_key: DataKey::new(
                REQUESTS_KEY_ID,
                &crate::crypto::derive_from_root(&root, REQUESTS_KEY_LABEL),
            ),
            cache: DataKeyCache::new(),
        })
    }

    /// The blind-index keys.
    pub fn blind_index(&self) -> &BlindIndexKeys {
        &self.blind_index
    }

    /// The access token signing key.
    pub fn token_key(&self) -> &Secret {
        &self.token_key
    }

    /// The seed of the Ed25519 key that signs consent receipts. It is a secret of its own (not
    /// derived from the root secret), so that it can be replaced without touching anything else.
    pub fn receipt_seed(&self) -> &Secret {
        &self.receipt_seed
    }

    /// The seed of the Ed25519 key that signs audit checkpoints (a secret of its own, like the
    /// receipt seed).
    pub fn audit_seed(&self) -> &Secret {
        &self.audit_seed
    }

    /// The key that seals what a data-subject request says about the person (identifier,
    /// reasons, rectified values): derived from the root secret, so a master key rotation
    /// leaves it readable.
    pub fn requests_key(&self) -> &DataKey {
        &self.requests_key
    }

    /// Drops an erased subject's data key from this process's cache. Other processes drop it
    /// when their cache entry expires; the key can no longer be unwrapped from the database.
    pub fn forget_data_key(&self, subject_pk: &str) {
        self.cache.forget(subject_pk);
    }

    fn keyring(&self) -> Arc<MasterKeyring> {
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
    }

    /// A new data key for a subject, and its row (wrapped under the current master key).
    pub fn new_data_key(&self, subject_pk: &str) -> (Arc<DataKey>, DataKeyRow) {
        let keyring = self.keyring();
        let master = keyring.current();
        let secret = Secret::generate();
        let key_id = DataKey::generate_id();
        let wrapped = wrap_secret(
            master,
            &WrapContext {
                label: DATA_KEY_LABEL,
                owner: subject_pk,
            },
            &secret,
        );
        let key = Arc::new(DataKey::new(key_id, &secret));
        self.cache.insert(subject_pk, key.clone());
        let row = DataKeyRow {
            subject_pk: subject_pk.to_owned(),
            key_id: hex::encode(key_id),
            master_key_id: master.id().to_string(),
            wrapped,
        };
        (key, row)
    }

    /// Unwraps a stored data key (or takes it from the cache).
    pub fn unwrap_data_key(&self, row: &DataKeyRow) -> Result<Arc<DataKey>, VaultError> {
        if let Some(key) = self.cache.get(&row.subject_pk) {
            return Ok(key);
        }
        let mut key_id = [0u8; DATA_KEY_ID_LEN];
        hex::decode_to_slice(&row.key_id, &mut key_id)
            .map_err(|_| VaultError::Corrupt("data key id"))?;
        let secret = self.unwrap_with_keyring(
            &row.master_key_id,
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
    pub fn data_key_for(
        &self,
        conn: &mut DbConnection,
        subject_pk: &str,
    ) -> Result<Arc<DataKey>, VaultError> {
        self.data_keys_for(conn, &[subject_pk])?
            .remove(subject_pk)
            .ok_or(VaultError::Erased)
    }

    /// The data keys of these subjects, from the cache or the database.
    pub fn data_keys_for(
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

    fn unwrap_with_keyring(
        &self,
        master_key_id: &str,
        context: &WrapContext<'_>,
        wrapped: &[u8],
    ) -> Result<Secret, VaultError> {
        let mut keyring = self.keyring();
        if keyring.find(master_key_id).is_none() {
            // Another process may have rotated the master key since we loaded the ring.
            self.reload_keyring();
            keyring = self.keyring();
        }
        let master = keyring
            .find(master_key_id)
            .ok_or_else(|| VaultError::UnknownMasterKey(master_key_id.to_owned()))?;
        unwrap_secret(master, context, wrapped).map_err(|_| VaultError::Corrupt("wrapped key"))
    }
}

/// Loads the deployment-wide secret `name` (wrapped by a master key), or creates it; processes
/// that race to create it agree on whichever was inserted first.
fn load_or_create_secret(
    conn: &mut DbConnection,
    keyring: &MasterKeyring,
    name: &str,
) -> Result<Secret, VaultError> {
    let context = WrapContext {
        label: ROOT_LABEL,
        owner: name,
    };
    loop {
        if let Some(row) = key_store::find_key_material(conn, name)? {
            let master = keyring
                .find(&row.master_key_id)
                .ok_or_else(|| VaultError::UnknownMasterKey(row.master_key_id.clone()))?;
            return unwrap_secret(master, &context, &row.wrapped)
                .map_err(|_| VaultError::Corrupt("deployment secret"));
        }
        let root = Secret::generate();
        let master = keyring.current();
        let row = KeyMaterialRow {
            name: name.to_owned(),
            master_key_id: master.id().to_string(),
            wrapped: wrap_secret(master, &context, &root),
            created_at: Utc::now().naive_utc(),
        };
        if key_store::insert_key_material(conn, &row)? {
            return Ok(root);
        }
        // Another process created it first: read theirs.
    }
}
