//! Write keys: API keys that the tracking SDKs present on every request (HTTP Basic), since
//! they cannot exchange a key for a token. Checking a key costs an argon2id hash, so the result
//! of a successful check is remembered, under a keyed hash of the presented key (a random key
//! of this process: neither the key nor anything that tests a guess of it outside the process
//! is kept). Failed checks are not remembered: every wrong key costs its full check, on the
//! key-check threads, like a token exchange. A remembered key is still looked up for
//! revocation on every request, through the key status cache, so a revoked write key stops
//! working within [`KEY_STATUS_TTL`](super::keys::KEY_STATUS_TTL) in every process.

use std::collections::HashMap;
use std::sync::Mutex;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use super::KeyId;
use crate::policy::RoleId;

/// Write keys remembered at most; when full, the cache is cleared (each key is then checked
/// once more).
const CAPACITY: usize = 10_000;

/// A presented key's fingerprint: HMAC-SHA256 under this process's random key.
pub(crate) type Fingerprint = [u8; 32];

/// Write keys whose check succeeded, by fingerprint.
pub struct WriteKeys {
    mac: hmac::Key,
    verified: Mutex<HashMap<Fingerprint, (KeyId, RoleId)>>,
}

impl std::fmt::Debug for WriteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteKeys(..)")
    }
}

impl WriteKeys {
    /// An empty cache with a fresh random fingerprint key.
    pub(crate) fn new() -> WriteKeys {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(key.as_mut())
            .expect("the system's random generator works");
        WriteKeys {
            mac: hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
            verified: Mutex::default(),
        }
    }

    /// The fingerprint of a presented key.
    pub(crate) fn fingerprint(&self, presented: &str) -> Fingerprint {
        let tag = hmac::sign(&self.mac, presented.as_bytes());
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(tag.as_ref());
        fingerprint
    }

    /// The key and role a check of this presented key found, if one did.
    pub(crate) fn verified(&self, fingerprint: &Fingerprint) -> Option<(KeyId, RoleId)> {
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(fingerprint)
            .cloned()
    }

    /// Remembers a successful check.
    pub(crate) fn remember(&self, fingerprint: Fingerprint, key_id: KeyId, role: RoleId) {
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= CAPACITY {
            verified.clear();
        }
        verified.insert(fingerprint, (key_id, role));
    }

    /// Forgets a key (revoked, or its role changed).
    pub(crate) fn forget(&self, fingerprint: &Fingerprint) {
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(fingerprint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_differ_by_key_and_by_process() {
        let (one, other) = (WriteKeys::new(), WriteKeys::new());
        assert_eq!(one.fingerprint("ck_a_b"), one.fingerprint("ck_a_b"));
        assert_ne!(one.fingerprint("ck_a_b"), one.fingerprint("ck_a_c"));
        assert_ne!(one.fingerprint("ck_a_b"), other.fingerprint("ck_a_b"));
    }
}
