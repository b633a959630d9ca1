//! Keyed blind indexes: HMAC-SHA256 of a normalized identifier under a key of its own kind, so
//! identifiers can be found without being stored. The keys are derived from the root secret.

use std::fmt;

use ring::hkdf;
use ring::hmac;

use super::Secret;

/// The kinds of identifier that are blind-indexed, each under its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentifierKind {
    /// The app's `subject_id`.
    SubjectId,
    /// An e-mail address (normalized to lowercase).
    Email,
    /// A phone number (normalized to `+` and digits).
    Phone,
    /// A client-supplied interaction id, scoped to its subject.
    ClientId,
    /// The SHA-256 (lowercase hex) of a normalized e-mail address: how OpenDSR controllers may
    /// name a person without sending the address.
    EmailSha256,
    /// The SHA-256 (lowercase hex) of a `subject_id` (OpenDSR `controller_customer_id`, sha256).
    SubjectIdSha256,
    /// A tracking SDK's `anonymousId`: a namespace of its own, apart from `subject_id`.
    AnonymousId,
}

impl IdentifierKind {
    fn label(self) -> &'static str {
        match self {
            IdentifierKind::SubjectId => "custodia/blind-index/subject-id/v1",
            IdentifierKind::Email => "custodia/blind-index/email/v1",
            IdentifierKind::Phone => "custodia/blind-index/phone/v1",
            IdentifierKind::ClientId => "custodia/blind-index/client-id/v1",
            IdentifierKind::EmailSha256 => "custodia/blind-index/email-sha256/v1",
            IdentifierKind::SubjectIdSha256 => "custodia/blind-index/subject-id-sha256/v1",
            IdentifierKind::AnonymousId => "custodia/blind-index/anonymous-id/v1",
        }
    }

    /// The kind's name in `subject_identifiers.kind` for the kinds stored there.
    pub(crate) fn stored_name(self) -> &'static str {
        match self {
            IdentifierKind::SubjectId => "subject_id",
            IdentifierKind::Email => "email",
            IdentifierKind::Phone => "phone",
            IdentifierKind::ClientId => "client_id",
            IdentifierKind::EmailSha256 => "email_sha256",
            IdentifierKind::SubjectIdSha256 => "subject_id_sha256",
            IdentifierKind::AnonymousId => "anonymous_id",
        }
    }

    /// The kind whose index is taken over this kind's SHA-256, when there is one.
    pub(crate) fn hashed(self) -> Option<IdentifierKind> {
        match self {
            IdentifierKind::Email => Some(IdentifierKind::EmailSha256),
            IdentifierKind::SubjectId => Some(IdentifierKind::SubjectIdSha256),
            _ => None,
        }
    }
}

/// The blind-index keys, one per identifier kind, derived from the root secret with HKDF-SHA256.
pub struct BlindIndexKeys {
    subject_id: hmac::Key,
    email: hmac::Key,
    phone: hmac::Key,
    client_id: hmac::Key,
    email_sha256: hmac::Key,
    subject_id_sha256: hmac::Key,
    anonymous_id: hmac::Key,
}

impl fmt::Debug for BlindIndexKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlindIndexKeys(..)")
    }
}

/// Derives a 32-byte key for one use, named by `label`, from the root secret (HKDF-SHA256).
pub fn derive_from_root(root: &Secret, label: &str) -> Secret {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"custodia root secret v1").extract(root.expose());
    let info = [label.as_bytes()];
    let mut out = Secret::zeroed();
    let bytes: &mut [u8; 32] = out.expose_mut();
    prk.expand(&info, hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(bytes))
        .expect("HKDF-SHA256 can always produce 32 bytes");
    out
}

impl BlindIndexKeys {
    /// Derives every blind-index key from the root secret.
    pub(crate) fn derive(root: &Secret) -> BlindIndexKeys {
        let key = |kind: IdentifierKind| {
            hmac::Key::new(
                hmac::HMAC_SHA256,
                derive_from_root(root, kind.label()).expose(),
            )
        };
        BlindIndexKeys {
            subject_id: key(IdentifierKind::SubjectId),
            email: key(IdentifierKind::Email),
            phone: key(IdentifierKind::Phone),
            client_id: key(IdentifierKind::ClientId),
            email_sha256: key(IdentifierKind::EmailSha256),
            subject_id_sha256: key(IdentifierKind::SubjectIdSha256),
            anonymous_id: key(IdentifierKind::AnonymousId),
        }
    }

    /// The blind index (the first 128 bits of HMAC-SHA256, in hex) of a normalized value.
    pub(crate) fn index(&self, kind: IdentifierKind, normalized: &str) -> String {
        self.index_parts(kind, &[normalized.as_bytes()])
    }

    /// The blind index of the SHA-256 of a normalized value, under `kind`'s hashed kind (see
    /// [`IdentifierKind::hashed`]): what a controller's `sha256` identity is matched against.
    pub(crate) fn index_of_sha256(&self, kind: IdentifierKind, normalized: &str) -> Option<String> {
        let hashed = kind.hashed()?;
        let digest = ring::digest::digest(&ring::digest::SHA256, normalized.as_bytes());
        Some(self.index(hashed, &hex::encode(digest.as_ref())))
    }

    /// The blind index of a value made of several parts (each length-prefixed, so parts cannot
    /// run into each other): a client id is indexed together with its subject.
    pub(crate) fn index_parts(&self, kind: IdentifierKind, parts: &[&[u8]]) -> String {
        let key = match kind {
            IdentifierKind::SubjectId => &self.subject_id,
            IdentifierKind::Email => &self.email,
            IdentifierKind::Phone => &self.phone,
            IdentifierKind::ClientId => &self.client_id,
            IdentifierKind::EmailSha256 => &self.email_sha256,
            IdentifierKind::SubjectIdSha256 => &self.subject_id_sha256,
            IdentifierKind::AnonymousId => &self.anonymous_id,
        };
        let mut context = hmac::Context::with_key(key);
        for part in parts {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        // 128 bits of the tag: collisions stay negligible at any realistic number of
        // identifiers, and the indexes that hold them stay small.
        hex::encode(&context.sign().as_ref()[..16])
    }
}
