//! Key epochs: a forward-only ratchet of key-encryption keys kept in a file outside the
//! database, so that destroying an epoch's key makes every copy of what it wrapped unreadable,
//! backups included, even for someone who holds the current master key.
//!
//! The file `<master key file>.epochs` (mode 0600) holds the oldest epoch this host can still
//! compute and that epoch's seed: `"CEP1" ‖ epoch (u64, big-endian) ‖ seed (32)`. From the seed
//! of epoch n every later epoch follows, none earlier:
//!
//! ```text
//! seed(n+1) = HMAC-SHA256(seed(n), "custodia/epoch/next/v1")
//! key(n)    = HMAC-SHA256(seed(n), "custodia/epoch/key/v1")
//! ```
//!
//! Destroying epochs up to n-1 is rewriting the file with epoch n and its seed: the earlier
//! seeds cannot be computed back. Every host of a deployment holds a copy of the same file
//! (distributed like the master key, before the first start); each advances its own copy, so no
//! host needs another. Epoch keys never wrap anything alone: a secret is wrapped by
//! `HKDF-SHA256(salt = key(n), ikm = master key, info = "custodia/kek/v1")`, so both the master
//! key and the epoch's key are needed to unwrap it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ring::hmac;
use zeroize::Zeroizing;

use super::{random_array, MasterKey, MasterKeyError};

const MAGIC: &[u8; 4] = b"CEP1";
const FILE_LEN: usize = 4 + 8 + 32;
/// The suffix of the epoch file, next to the master key file.
pub const EPOCHS_SUFFIX: &str = ".epochs";

/// The epoch file of the master key file at `master_key_file`.
pub fn epoch_file_for(master_key_file: &Path) -> PathBuf {
    let mut name = master_key_file.as_os_str().to_owned();
    name.push(EPOCHS_SUFFIX);
    PathBuf::from(name)
}

/// The ratchet: the oldest epoch this host can compute, and its seed.
pub struct EpochRatchet {
    path: PathBuf,
    oldest: i64,
    seed: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for EpochRatchet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EpochRatchet(oldest {}, ..)", self.oldest)
    }
}

/// One epoch's key-encryption key (zeroized on drop, never printed).
pub struct EpochKey {
    epoch: i64,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EpochKey({}, ..)", self.epoch)
    }
}

fn hmac_256(key: &[u8], message: &[u8]) -> Zeroizing<[u8; 32]> {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(tag.as_ref());
    out
}

impl EpochKey {
    /// A public check value naming this key (first 8 bytes of an HMAC under it, hex): stored
    /// with the epoch, so a host whose epoch file differs from the deployment's refuses to start
    /// instead of wrapping keys nobody else can unwrap.
    pub(crate) fn check(&self) -> String {
        hex::encode(&hmac_256(self.key.as_ref(), b"custodia/epoch/check/v1")[..8])
    }

    /// The key that wraps secrets in this epoch under `master`: HKDF of both. Its id, bound
    /// into the wrapping's associated data, is `<master id>.e<epoch>`.
    pub fn wrapping_key(&self, master: &MasterKey) -> MasterKey {
        let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, self.key.as_ref());
        let prk = salt.extract(master.bytes());
        let mut bytes = Zeroizing::new([0u8; 32]);
        prk.expand(&[b"custodia/kek/v1"], ring::hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(bytes.as_mut()))
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        MasterKey::derived(format!("{}.e{}", master.id(), self.epoch), bytes)
    }
}

impl EpochRatchet {
    /// Loads the epoch file at `path`, or creates one (epoch 1, a random seed) when there is
    /// none. An existing file is never overwritten here; one readable by others is refused.
    pub fn load_or_create(path: &Path) -> Result<EpochRatchet, MasterKeyError> {
        match std::fs::metadata(path) {
            Ok(_) => Self::load(path),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let seed = random_array::<32>();
                match write_new(path, 1, &seed) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), "created a new key epoch file");
                        Ok(EpochRatchet {
                            path: path.to_owned(),
                            oldest: 1,
                            seed,
                        })
                    }
                    // Another process created it first: use theirs.
                    Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load(path)
                    }
                    Err(source) => Err(MasterKeyError::Io {
                        path: path.to_owned(),
                        source,
                    }),
                }
            }
            Err(source) => Err(MasterKeyError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Loads an existing epoch file.
    pub fn load(path: &Path) -> Result<EpochRatchet, MasterKeyError> {
        let contents = super::master_key::read_private_file(path, FILE_LEN)?;
        if contents.len() != FILE_LEN || &contents[..4] != MAGIC {
            return Err(MasterKeyError::WrongSize {
                path: path.to_owned(),
                len: contents.len() as u64,
            });
        }
        let mut number = [0u8; 8];
        number.copy_from_slice(&contents[4..12]);
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&contents[12..]);
        Ok(EpochRatchet {
            path: path.to_owned(),
            oldest: i64::try_from(u64::from_be_bytes(number)).unwrap_or(i64::MAX),
            seed,
        })
    }

    /// The oldest epoch whose key this host can still compute (every earlier one is destroyed).
    pub fn oldest(&self) -> i64 {
        self.oldest
    }

    /// The key of `epoch`, or `None` when it was destroyed here (older than [`Self::oldest`]).
    pub fn key(&self, epoch: i64) -> Option<EpochKey> {
        if epoch < self.oldest {
            return None;
        }
        let mut seed = self.seed.clone();
        for _ in self.oldest..epoch {
            seed = hmac_256(seed.as_ref(), b"custodia/epoch/next/v1");
        }
        Some(EpochKey {
            epoch,
            key: hmac_256(seed.as_ref(), b"custodia/epoch/key/v1"),
        })
    }

    /// Destroys every epoch before `epoch`: the file is replaced (written beside it, synced,
    /// renamed over it, the directory synced) by one that starts at `epoch`. Does nothing when
    /// they are destroyed already.
    pub(crate) fn destroy_before(&mut self, epoch: i64) -> Result<(), MasterKeyError> {
        if epoch <= self.oldest {
            return Ok(());
        }
        let mut seed = self.seed.clone();
        for _ in self.oldest..epoch {
            seed = hmac_256(seed.as_ref(), b"custodia/epoch/next/v1");
        }
        let io = |source| MasterKeyError::Io {
            path: self.path.clone(),
            source,
        };
        let mut temporary = self.path.as_os_str().to_owned();
        temporary.push(".next");
        let temporary = PathBuf::from(temporary);
        let _ = std::fs::remove_file(&temporary);
        write_new(&temporary, epoch, &seed).map_err(io)?;
        std::fs::rename(&temporary, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(dir) = std::fs::File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        self.oldest = epoch;
        self.seed = seed;
        Ok(())
    }
}

fn write_new(path: &Path, epoch: i64, seed: &[u8; 32]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(FILE_LEN));
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(epoch as u64).to_be_bytes());
    bytes.extend_from_slice(seed);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(&bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn destroyed_epochs_cannot_be_computed_and_later_ones_are_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key.epochs");
        let mut ratchet = EpochRatchet::load_or_create(&path).unwrap();
        let before: Vec<String> = (1..=4).map(|n| ratchet.key(n).unwrap().check()).collect();
        ratchet.destroy_before(3).unwrap();
        assert!(ratchet.key(1).is_none() && ratchet.key(2).is_none());
        assert_eq!(ratchet.key(3).unwrap().check(), before[2]);
        let reloaded = EpochRatchet::load(&path).unwrap();
        assert_eq!(reloaded.oldest(), 3);
        assert_eq!(reloaded.key(4).unwrap().check(), before[3]);
        let file = std::fs::read(&path).unwrap();
        assert_eq!(file.len(), FILE_LEN);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
