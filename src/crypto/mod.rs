//! Key material and cryptography, on `ring`. Key bytes live in types that zeroize on drop and
//! never print.
//!
//! The hierarchy:
//!
//! ```text
//! master keyring (files: current + retired; ids derived from the key bytes)
//!  × key epoch (file: a forward-only ratchet; epochs are destroyed by advancing it)
//!  = the epoch's wrapping key, HKDF of both, which
//!   ├─ wraps the root secret (one per deployment, stored in the database)
//!   │    └─ HKDF → token signing key, blind-index keys (subject id, e-mail, phone, client ids)
//!   └─ wraps one data key per subject (stored in the database)
//!        └─ AES-256-GCM over every non-segmentable field value of that subject
//! ```
//!
//! Rotating the master key or the epoch re-wraps the root secret and the data keys; nothing
//! derived from them changes, so ciphertexts and blind indexes stay valid.

mod blind_index;
mod envelope;
mod epoch;
mod field;
mod keyring;
mod master_key;
mod signer;

pub use blind_index::{derive_from_root, BlindIndexKeys, IdentifierKind};
pub use envelope::{unwrap_secret, wrap_secret, Secret, WrapContext};
pub use epoch::{epoch_file_for, EpochRatchet};
pub use field::{DataKey, FieldContext, DATA_KEY_ID_LEN};
pub use keyring::{MasterKeyring, RETIRED_SUFFIX};
pub use master_key::{MasterKey, MasterKeyError, MasterKeyId};
pub use signer::{Jwk, JwsError, JwsSigner};

/// A ciphertext that could not be opened: wrong key, moved to another place, or tampered with.
/// It carries no detail on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the ciphertext could not be decrypted (wrong key, wrong place, or altered)")]
pub struct DecryptError;

/// Random bytes from the operating system, zeroized when dropped.
pub(crate) fn random_array<const N: usize>() -> zeroize::Zeroizing<[u8; N]> {
    use ring::rand::SecureRandom;
    let mut bytes = zeroize::Zeroizing::new([0u8; N]);
    ring::rand::SystemRandom::new()
        .fill(bytes.as_mut())
        .expect("the operating system's random number generator failed");
    bytes
}
