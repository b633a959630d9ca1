//! Field encryption under a subject's data key.
//!
//! Format: `0x01 | data key id (8) | nonce (12) | ciphertext | tag (16)`. The associated data
//! binds the ciphertext to its subject, its record and its field name, so a ciphertext copied
//! into another record, field or subject fails to decrypt.

use std::fmt;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use super::{random_array, DecryptError, Secret};

const VERSION: u8 = 1;
/// The length of a data key id.
pub const DATA_KEY_ID_LEN: usize = 8;
const HEADER_LEN: usize = 1 + DATA_KEY_ID_LEN + NONCE_LEN;
const TAG_LEN: usize = 16;

/// A subject's data key, ready to use, with the subject's audit pseudonym derived from it.
pub struct DataKey {
    id: [u8; DATA_KEY_ID_LEN],
    key: LessSafeKey,
    pseudonym: String,
}

/// The message whose HMAC under a data key is its subject's audit pseudonym.
const PSEUDONYM_LABEL: &[u8] = b"custodia/audit-pseudonym/v1";

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey({})", hex::encode(self.id))
    }
}

/// Where a field value lives: its subject, its record and its field name.
#[derive(Debug, Clone, Copy)]
pub struct FieldContext<'a> {
    /// The subject's internal id.
    pub subject: &'a str,
    /// The record (an interaction's internal id, or `subject` for the subject's own fields).
    pub record: &'a str,
    /// The field name.
    pub field: &'a str,
}

impl FieldContext<'_> {
    fn aad(&self, key_id: &[u8; DATA_KEY_ID_LEN]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(
            20 + self.subject.len() + self.record.len() + self.field.len() + DATA_KEY_ID_LEN,
        );
        aad.extend_from_slice(b"custodia/field/v1\0");
        aad.extend_from_slice(key_id);
        aad.extend_from_slice(self.subject.as_bytes());
        aad.push(0);
        aad.extend_from_slice(self.record.as_bytes());
        aad.push(0);
        aad.extend_from_slice(self.field.as_bytes());
        aad
    }
}

impl DataKey {
    /// A data key from its id and secret.
    pub fn new(id: [u8; DATA_KEY_ID_LEN], secret: &Secret) -> DataKey {
        let mac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.expose());
        let tag = ring::hmac::sign(&mac, PSEUDONYM_LABEL);
        DataKey {
            id,
            key: LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, secret.expose()).expect("a data key is 32 bytes"),
            ),
            pseudonym: hex::encode(&tag.as_ref()[..16]),
        }
    }

    /// The subject's pseudonym in the audit log: a keyed hash under this data key (128 bits,
    /// hex). Stable for the life of the key and unlinkable to the person once the key is
    /// destroyed at erasure.
    pub(crate) fn pseudonym(&self) -> &str {
        &self.pseudonym
    }

    /// A new random key id.
    pub(crate) fn generate_id() -> [u8; DATA_KEY_ID_LEN] {
        *random_array::<DATA_KEY_ID_LEN>()
    }

    /// The key id carried by every ciphertext made with this key.
    #[cfg(any(test, feature = "test-support"))]
    pub fn id(&self) -> &[u8; DATA_KEY_ID_LEN] {
        &self.id
    }

    /// Encrypts `plaintext` for `context`.
    pub fn encrypt(&self, context: &FieldContext<'_>, plaintext: &[u8]) -> Vec<u8> {
        let nonce_bytes = random_array::<NONCE_LEN>();
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(nonce_bytes.as_ref());
        out.extend_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce_bytes),
                Aad::from(context.aad(&self.id)),
                &mut out[HEADER_LEN..],
            )
            .expect("sealing a bounded value cannot fail");
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// Decrypts a ciphertext made by [`DataKey::encrypt`] for the same context; anything else
    /// (another key, another place, an altered byte) is an error, never wrong data.
    pub fn decrypt(
        &self,
        context: &FieldContext<'_>,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, DecryptError> {
        if ciphertext.len() < HEADER_LEN + TAG_LEN
            || ciphertext[0] != VERSION
            || ciphertext[1..1 + DATA_KEY_ID_LEN] != self.id
        {
            return Err(DecryptError);
        }
        let nonce = Nonce::try_assume_unique_for_key(&ciphertext[1 + DATA_KEY_ID_LEN..HEADER_LEN])
            .map_err(|_| DecryptError)?;
        let mut in_out = ciphertext[HEADER_LEN..].to_vec();
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(context.aad(&self.id)), &mut in_out)
            .map_err(|_| DecryptError)?
            .len();
        in_out.truncate(plain_len);
        Ok(in_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> DataKey {
        DataKey::new(DataKey::generate_id(), &Secret::generate())
    }

    #[test]
    fn a_ciphertext_opens_only_in_its_own_place() {
        let key = key();
        let here = FieldContext {
            subject: "s1",
            record: "r1",
            field: "email",
        };
        let ciphertext = key.encrypt(&here, b"jane@example.com");
        assert_eq!(
            key.decrypt(&here, &ciphertext).unwrap(),
            b"jane@example.com"
        );
        for elsewhere in [
            FieldContext {
                subject: "s2",
                ..here
            },
            FieldContext {
                record: "r2",
                ..here
            },
            FieldContext {
                field: "phone",
                ..here
            },
        ] {
            assert_eq!(key.decrypt(&elsewhere, &ciphertext), Err(DecryptError));
        }
        assert_eq!(self::key().decrypt(&here, &ciphertext), Err(DecryptError));
        let mut altered = ciphertext.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(key.decrypt(&here, &altered), Err(DecryptError));
        assert_eq!(key.decrypt(&here, &ciphertext[..10]), Err(DecryptError));
    }

    #[test]
    fn the_pseudonym_is_stable_per_key_and_differs_between_keys() {
        let secret = Secret::generate();
        let id = DataKey::generate_id();
        let first = DataKey::new(id, &secret);
        assert_eq!(first.pseudonym(), DataKey::new(id, &secret).pseudonym());
        assert_eq!(first.pseudonym().len(), 32);
        assert_ne!(first.pseudonym(), key().pseudonym());
    }
}
