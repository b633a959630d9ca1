//! Wrapping 32-byte secrets (the root secret, subject data keys) under a master key with
//! AES-256-GCM. The associated data names what the secret is and which master key wrapped it,
//! so a wrapped key copied to another row does not unwrap.
//!
//! Format: `0x01 | nonce (12) | ciphertext (32) | tag (16)`.

use std::fmt;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use zeroize::Zeroizing;

use super::{random_array, DecryptError, MasterKey};

const VERSION: u8 = 1;
/// The length of a wrapped secret.
pub const WRAPPED_LEN: usize = 1 + NONCE_LEN + 32 + 16;

/// A 32-byte secret (a data key or the root secret). Zeroized on drop, never printed.
#[derive(Clone)]
pub struct Secret(Zeroizing<[u8; 32]>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A new random secret.
    pub fn generate() -> Secret {
        Secret(random_array::<32>())
    }

    /// The secret's bytes.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// An all-zero secret to be filled in place.
    pub(crate) fn zeroed() -> Secret {
        Secret(Zeroizing::new([0u8; 32]))
    }

    pub(crate) fn expose_mut(&mut self) -> &mut [u8; 32] {
        &mut self.0
    }
}

/// What a wrapped secret is bound to: a label (`root`, `data-key`) and the owner's id.
pub struct WrapContext<'a> {
    /// What kind of secret this is.
    pub label: &'a str,
    /// The row it belongs to (a subject id, or the key material's name).
    pub owner: &'a str,
}

fn aad(context: &WrapContext<'_>, master: &MasterKey) -> Vec<u8> {
    let mut aad = Vec::with_capacity(64);
    aad.extend_from_slice(b"custodia/wrap/v1\0");
    aad.extend_from_slice(context.label.as_bytes());
    aad.push(0);
    aad.extend_from_slice(context.owner.as_bytes());
    aad.push(0);
    aad.extend_from_slice(master.id().as_str().as_bytes());
    aad
}

fn aead_key(master: &MasterKey) -> LessSafeKey {
    LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, master.bytes()).expect("a master key is 32 bytes"),
    )
}

/// Wraps `secret` under `master`, bound to `context`.
pub fn wrap_secret(master: &MasterKey, context: &WrapContext<'_>, secret: &Secret) -> Vec<u8> {
    let nonce_bytes = random_array::<NONCE_LEN>();
    let mut in_out = secret.expose().to_vec();
    aead_key(master)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(*nonce_bytes),
            Aad::from(aad(context, master)),
            &mut in_out,
        )
        .expect("sealing 32 bytes cannot fail");
    let mut wrapped = Vec::with_capacity(WRAPPED_LEN);
    wrapped.push(VERSION);
    wrapped.extend_from_slice(nonce_bytes.as_ref());
    wrapped.extend_from_slice(&in_out);
    wrapped
}

/// Unwraps a secret wrapped by [`wrap_secret`] with the same master key and context.
pub fn unwrap_secret(
    master: &MasterKey,
    context: &WrapContext<'_>,
    wrapped: &[u8],
) -> Result<Secret, DecryptError> {
    if wrapped.len() != WRAPPED_LEN || wrapped[0] != VERSION {
        return Err(DecryptError);
    }
    let nonce =
        Nonce::try_assume_unique_for_key(&wrapped[1..1 + NONCE_LEN]).map_err(|_| DecryptError)?;
    let mut in_out = Zeroizing::new(wrapped[1 + NONCE_LEN..].to_vec());
    let plain = aead_key(master)
        .open_in_place(nonce, Aad::from(aad(context, master)), &mut in_out)
        .map_err(|_| DecryptError)?;
    let mut secret = Zeroizing::new([0u8; 32]);
    secret.copy_from_slice(plain);
    Ok(Secret(secret))
}
