//! The master keyring: the current master key (the configured key file) and retired keys kept
//! for unwrapping, in `<key file>.retired/<id>.key`.
//!
//! Rotation adds a step in between: a new key is first written to `<key file>.next`, then the
//! current key is copied into the retired directory, then `.next` is renamed over the key file.
//! Each step is idempotent, so an interrupted rotation can be re-run.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{MasterKey, MasterKeyError, MasterKeyId};

/// The suffix of the directory holding retired master keys, next to the key file.
pub const RETIRED_SUFFIX: &str = ".retired";
const NEXT_SUFFIX: &str = ".next";

/// The current master key and every retired one still needed to unwrap older rows.
#[derive(Debug)]
pub struct MasterKeyring {
    path: PathBuf,
    current: MasterKeyId,
    keys: BTreeMap<MasterKeyId, MasterKey>,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> MasterKeyError + '_ {
    move |source| MasterKeyError::Io {
        path: path.to_owned(),
        source,
    }
}

impl MasterKeyring {
    /// Loads (creating on first start) the key at `path`, and every retired key beside it.
    pub fn load_or_create(path: &Path) -> Result<MasterKeyring, MasterKeyError> {
        Self::from_current(path, MasterKey::load_or_create(path)?)
    }

    /// Loads the key at `path` and every retired key beside it; never creates a key (a running
    /// process re-reading its keyring must not invent a new master key).
    pub fn load(path: &Path) -> Result<MasterKeyring, MasterKeyError> {
        Self::from_current(path, MasterKey::load(path)?)
    }

    fn from_current(path: &Path, current: MasterKey) -> Result<MasterKeyring, MasterKeyError> {
        let current_id = current.id().clone();
        let mut keys = BTreeMap::new();
        keys.insert(current_id.clone(), current);
        let retired_dir = with_suffix(path, RETIRED_SUFFIX);
        if retired_dir.is_dir() {
            let entries = std::fs::read_dir(&retired_dir).map_err(io_error(&retired_dir))?;
            for entry in entries {
                let file = entry.map_err(io_error(&retired_dir))?.path();
                if file.extension().is_some_and(|ext| ext == "key") {
                    let key = MasterKey::load(&file)?;
                    keys.entry(key.id().clone()).or_insert(key);
                }
            }
        }
        Ok(MasterKeyring {
            path: path.to_owned(),
            current: current_id,
            keys,
        })
    }

    /// The key that wraps everything new.
    pub fn current(&self) -> &MasterKey {
        &self.keys[&self.current]
    }

    /// The key with this id, current or retired.
    pub fn find(&self, id: &str) -> Option<&MasterKey> {
        self.keys
            .iter()
            .find(|(key_id, _)| key_id.as_str() == id)
            .map(|(_, key)| key)
    }

    /// The ids of every key in the ring.
    #[cfg(any(test, feature = "test-support"))]
    pub fn ids(&self) -> impl Iterator<Item = &MasterKeyId> {
        self.keys.keys()
    }

    /// Rotation step 1: the next master key, created in `<key file>.next` if it is not there yet.
    pub fn prepare_next(&self) -> Result<MasterKey, MasterKeyError> {
        MasterKey::load_or_create(&with_suffix(&self.path, NEXT_SUFFIX))
    }

    /// Rotation step 2: keeps the current key in the retired directory and makes `.next` the
    /// current key file. Afterwards reload the ring. Does nothing when there is no `.next`.
    pub(crate) fn promote_next(&self) -> Result<(), MasterKeyError> {
        let next = with_suffix(&self.path, NEXT_SUFFIX);
        if !next.exists() {
            return Ok(());
        }
        let retired_dir = with_suffix(&self.path, RETIRED_SUFFIX);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&retired_dir)
            .map_err(io_error(&retired_dir))?;
        let current = self.current();
        let retired = retired_dir.join(format!("{}.key", current.id()));
        if !retired.exists() {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&retired)
                .map_err(io_error(&retired))?;
            file.write_all(current.bytes())
                .and_then(|()| file.sync_all())
                .map_err(io_error(&retired))?;
        }
        std::fs::rename(&next, &self.path).map_err(io_error(&self.path))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(dir) = std::fs::File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }
}
