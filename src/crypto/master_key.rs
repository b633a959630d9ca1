//! The master key file: created once (32 random bytes, mode 0600), never overwritten, refused
//! when it has the wrong size or is readable by anyone but its owner.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// The master key's length in bytes.
pub const MASTER_KEY_LEN: usize = 32;

/// Why the master key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// The file could not be read or written.
    #[error("master key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is not exactly 32 bytes long.
    #[error("master key file {path} holds {len} bytes, but a master key is exactly {MASTER_KEY_LEN} bytes; refusing to start (it was not changed)")]
    WrongSize {
        /// The key file.
        path: PathBuf,
        /// The file's length.
        len: u64,
    },
    /// Group or others may read or write the file.
    #[error("master key file {path} has mode {mode:04o}, so users other than its owner can access it; run `chmod 600 {path}` and start again")]
    TooOpen {
        /// The key file.
        path: PathBuf,
        /// The file's permission bits.
        mode: u32,
    },
    /// The system's random generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// A master key. It only wraps: the root secret and the subjects' data keys.
pub struct MasterKey {
    id: MasterKeyId,
    bytes: Zeroizing<[u8; MASTER_KEY_LEN]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({}, ..)", self.id)
    }
}

impl MasterKey {
    /// Loads the key at `path`, or creates it (and its directory) when the file does not exist.
    ///
    /// An existing file is never overwritten: one of the wrong size, or readable or writable by
    /// group or others, is refused.
    pub fn load_or_create(path: &Path) -> Result<MasterKey, MasterKeyError> {
        let io = |source| MasterKeyError::Io {
            path: path.to_owned(),
            source,
        };
        match std::fs::metadata(path) {
            Ok(_) => Self::load(path),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
                SystemRandom::new()
                    .fill(bytes.as_mut())
                    .map_err(|_| MasterKeyError::Random)?;
                // `create_new` fails if another process created the file meanwhile: then we
                // load theirs rather than overwrite it.
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path);
                match file {
                    Ok(mut file) => {
                        file.write_all(bytes.as_ref()).map_err(io)?;
                        file.sync_all().map_err(io)?;
                        tracing::info!(path = %path.display(), "created a new master key");
                        Ok(MasterKey::from_bytes(bytes))
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load(path)
                    }
                    Err(error) => Err(io(error)),
                }
            }
            Err(error) => Err(io(error)),
        }
    }

    /// Loads an existing key file, with the same checks as [`MasterKey::load_or_create`].
    pub fn load(path: &Path) -> Result<MasterKey, MasterKeyError> {
        let contents = read_private_file(path, MASTER_KEY_LEN)?;
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        if contents.len() != MASTER_KEY_LEN {
            return Err(MasterKeyError::WrongSize {
                path: path.to_owned(),
                len: contents.len() as u64,
            });
        }
        bytes.copy_from_slice(&contents);
        Ok(MasterKey::from_bytes(bytes))
    }

    /// The key's id: the first 8 bytes of HMAC-SHA256(key, "custodia/master-key-id/v1"), in
    /// hex. It names the key in the database without revealing anything about it.
    pub fn id(&self) -> &MasterKeyId {
        &self.id
    }

    pub(crate) fn bytes(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.bytes
    }

    /// A copy of this key (for a wrapping key shared between threads).
    pub(crate) fn duplicate(&self) -> MasterKey {
        MasterKey {
            id: self.id.clone(),
            bytes: self.bytes.clone(),
        }
    }

    /// A wrapping key derived from a master key (an epoch's key-encryption key), named by `id`.
    pub(crate) fn derived(id: String, bytes: Zeroizing<[u8; MASTER_KEY_LEN]>) -> MasterKey {
        MasterKey {
            id: MasterKeyId(id),
            bytes,
        }
    }

    fn from_bytes(bytes: Zeroizing<[u8; MASTER_KEY_LEN]>) -> MasterKey {
        let tag = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes.as_ref()),
            b"custodia/master-key-id/v1",
        );
        MasterKey {
            id: MasterKeyId(hex::encode(&tag.as_ref()[..8])),
            bytes,
        }
    }
}

/// Reads a key file that must be readable by its owner only and exactly `len` bytes long.
pub(crate) fn read_private_file(
    path: &Path,
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, MasterKeyError> {
    let io = |source| MasterKeyError::Io {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(io)?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(MasterKeyError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    if metadata.len() != len as u64 {
        return Err(MasterKeyError::WrongSize {
            path: path.to_owned(),
            len: metadata.len(),
        });
    }
    Ok(Zeroizing::new(std::fs::read(path).map_err(io)?))
}

/// A master key's public id (16 hex characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MasterKeyId(String);

impl MasterKeyId {
    /// The id as text, as stored next to everything the key wraps.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MasterKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
