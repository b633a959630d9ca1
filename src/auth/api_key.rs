//! The API key format `ck_<key-id>_<secret>`, key generation and argon2id hashing.

use std::fmt;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

const PREFIX: &str = "ck_";
const KEY_ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// A key id: 16 lowercase hex characters. It is public (logged, shown in `keys list`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    /// Parses a key id; `None` unless it is exactly 16 lowercase hex characters.
    pub fn parse(raw: &str) -> Option<KeyId> {
        let valid = raw.len() == KEY_ID_BYTES * 2
            && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| KeyId(raw.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A human name for a key (`checkout-app`, `Jane's console`): 1 to 100 characters, no
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(String);

impl KeyName {
    /// Parses a name, or says what is wrong with it.
    pub fn parse(raw: &str) -> Result<KeyName, String> {
        let trimmed = raw.trim();
        let length = trimmed.chars().count();
        if length == 0 || length > 100 {
            return Err(format!(
                "a key name must be 1 to 100 characters long, not {length}"
            ));
        }
        if trimmed.chars().any(char::is_control) {
            return Err("a key name may not contain control characters".into());
        }
        Ok(KeyName(trimmed.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An API key as presented by a caller, split into its id and secret. Never printed.
pub struct PresentedApiKey {
    id: KeyId,
    secret: Zeroizing<String>,
}

impl fmt::Debug for PresentedApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PresentedApiKey({}, ..)", self.id)
    }
}

impl PresentedApiKey {
    /// Splits `ck_<key-id>_<secret>`; `None` when the text does not have that shape.
    pub fn parse(raw: &str) -> Option<PresentedApiKey> {
        let rest = raw.strip_prefix(PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        let id = KeyId::parse(id)?;
        let secret_valid = secret.len() == SECRET_BYTES * 2
            && secret
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        secret_valid.then(|| PresentedApiKey {
            id,
            secret: Zeroizing::new(secret.to_owned()),
        })
    }

    /// The key id part.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    pub(super) fn secret(&self) -> &str {
        &self.secret
    }
}

/// A freshly generated key: its id, the full `ck_…` text (shown once) and its secret's hash.
pub(super) struct GeneratedKey {
    pub id: KeyId,
    pub full_key: Zeroizing<String>,
    pub secret_hash: String,
}

fn random_bytes<const N: usize>() -> Zeroizing<[u8; N]> {
    let mut bytes = Zeroizing::new([0u8; N]);
    SystemRandom::new()
        .fill(bytes.as_mut())
        .expect("the system random number generator failed");
    bytes
}

/// Generates a new key. Slow on purpose (argon2id): call it off the async workers.
pub(super) fn generate_key() -> GeneratedKey {
    let id = KeyId(hex::encode(random_bytes::<KEY_ID_BYTES>().as_ref()));
    let secret = Zeroizing::new(hex::encode(random_bytes::<SECRET_BYTES>().as_ref()));
    let secret_hash = hash_secret(&secret);
    let full_key = Zeroizing::new(format!("{PREFIX}{id}_{}", secret.as_str()));
    GeneratedKey {
        id,
        full_key,
        secret_hash,
    }
}

fn hash_secret(secret: &str) -> String {
    let salt = SaltString::encode_b64(random_bytes::<16>().as_ref())
        .expect("16 bytes always encode as a salt");
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .expect("argon2id with default parameters cannot fail on a 64-byte secret")
        .to_string()
}

/// A hash of a secret nobody knows, with the same parameters as real ones, so that checking
/// an unknown or revoked key costs exactly as much as checking a real one.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_secret(&hex::encode(random_bytes::<SECRET_BYTES>().as_ref())))
}

/// Checks `secret` against `stored_hash` in constant time; with no stored hash, burns the same
/// time against a decoy and fails. Slow on purpose: call it off the async workers.
pub(super) fn verify_secret(stored_hash: Option<&str>, secret: &str) -> bool {
    let (hash, real) = match stored_hash {
        Some(hash) => (hash, true),
        None => (decoy_hash(), false),
    };
    argon2_matches(hash, secret.as_bytes()) && real
}

thread_local! {
    /// The argon2 working memory of this thread (19 MiB with the default parameters), reused
    /// by every check on it. Allocating it per check made the allocator keep a fresh block per
    /// check (the process grew by 19 MiB a check under a flood of bad keys); key checks run on
    /// a fixed set of threads (`KeyCheckPool`), so this bounds their memory.
    static WORKING_MEMORY: std::cell::RefCell<Vec<argon2::Block>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether `secret` hashes to the PHC string `hash` (any argon2 variant and parameters it
/// names), comparing in constant time.
fn argon2_matches(hash: &str, secret: &[u8]) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(version), Ok(params)) = (
        argon2::Algorithm::try_from(parsed.algorithm),
        argon2::Version::try_from(parsed.version.unwrap_or(0x13)),
        argon2::Params::try_from(&parsed),
    ) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let expected = expected.as_bytes();
    let mut computed = Zeroizing::new(vec![0u8; expected.len()]);
    let blocks = params.block_count();
    let hashed = WORKING_MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        memory.resize(blocks, argon2::Block::new());
        let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            secret,
            salt,
            &mut computed,
            &mut memory[..blocks],
        );
        // The working memory holds state derived from the secret: cleared before it waits.
        memory.fill(argon2::Block::new());
        hashed
    });
    hashed.is_ok()
        && computed
            .iter()
            .zip(expected)
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
}

/// Computes the decoy hash ahead of the first sign-in, so that the first failed sign-in is not
/// measurably slower than later ones. Slow (argon2id): call it at start-up.
pub fn prepare_decoy() {
    decoy_hash();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_verify() {
        let key = generate_key();
        let presented = PresentedApiKey::parse(&key.full_key).expect("generated keys parse");
        assert_eq!(presented.id(), &key.id);
        assert!(verify_secret(Some(&key.secret_hash), presented.secret()));
        assert!(!verify_secret(None, presented.secret()));
        let other = generate_key();
        assert!(!verify_secret(Some(&other.secret_hash), presented.secret()));
    }

    #[test]
    fn malformed_keys_are_rejected() {
        for raw in [
            "",
            "ck_",
            "ck_abc_def",
            "xx_0123456789abcdef_00",
            "ck_0123456789ABCDEF_00",
        ] {
            assert!(PresentedApiKey::parse(raw).is_none(), "{raw:?}");
        }
    }
}
