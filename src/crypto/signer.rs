//! Ed25519 signatures as compact JWS (EdDSA), verifiable by anyone with the JWK: consent
//! receipts and audit checkpoints each have a signer of their own.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Secret;

/// Signs with one Ed25519 key (from a 32-byte seed).
pub struct JwsSigner {
    key_pair: Ed25519KeyPair,
    key_id: String,
}

impl std::fmt::Debug for JwsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwsSigner({})", self.key_id)
    }
}

/// A public key as a JWK.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Jwk {
    /// `OKP`.
    pub kty: String,
    /// `Ed25519`.
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    /// The key id, also in every signature's header.
    pub kid: String,
    /// `EdDSA`.
    pub alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub key_use: String,
}

/// Why a compact JWS was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Not three base64url parts, or a header or payload that does not parse.
    #[error("the signature is malformed")]
    Malformed,
    /// Signed by another key, or altered.
    #[error("the signature does not verify")]
    BadSignature,
}

impl JwsSigner {
    /// The signer for a 32-byte seed.
    pub fn new(seed: &Secret) -> JwsSigner {
        let key_pair = Ed25519KeyPair::from_seed_unchecked(seed.expose())
            .expect("any 32 bytes are an Ed25519 seed");
        let digest = ring::digest::digest(&ring::digest::SHA256, key_pair.public_key().as_ref());
        JwsSigner {
            key_id: hex::encode(&digest.as_ref()[..8]),
            key_pair,
        }
    }

    /// The key id (the first 8 bytes of the SHA-256 of the public key, hex).
    pub(crate) fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key.
    pub(crate) fn jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(self.key_pair.public_key().as_ref()),
            kid: self.key_id.clone(),
            alg: "EdDSA".into(),
            key_use: "sig".into(),
        }
    }

    /// A compact JWS over `claims`.
    pub(crate) fn sign<T: Serialize>(&self, claims: &T) -> String {
        let header = serde_json::json!({"alg": "EdDSA", "kid": self.key_id, "typ": "JWT"});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims encode"))
        );
        let signature = self.key_pair.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }

    /// Verifies a compact JWS made by this key and returns its claims.
    pub fn verify<T: DeserializeOwned>(&self, jws: &str) -> Result<T, JwsError> {
        let mut parts = jws.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwsError::Malformed);
        };
        let header: serde_json::Value = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(JwsError::Malformed)?;
        if header["alg"] != "EdDSA" {
            return Err(JwsError::BadSignature);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| JwsError::Malformed)?;
        let signing_input = &jws[..jws.len() - jws.rsplit('.').next().map_or(0, str::len) - 1];
        UnparsedPublicKey::new(&ED25519, self.key_pair.public_key().as_ref())
            .verify(signing_input.as_bytes(), &signature)
            .map_err(|_| JwsError::BadSignature)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| JwsError::Malformed)?;
        serde_json::from_slice(&payload).map_err(|_| JwsError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_unaltered_and_under_its_own_key() {
        let signer = JwsSigner::new(&Secret::generate());
        let jws = signer.sign(&serde_json::json!({"size": 3}));
        let claims: serde_json::Value = signer.verify(&jws).unwrap();
        assert_eq!(claims["size"], 3);
        let other = JwsSigner::new(&Secret::generate());
        assert_eq!(
            other.verify::<serde_json::Value>(&jws).unwrap_err(),
            JwsError::BadSignature
        );
        let forged_payload = URL_SAFE_NO_PAD.encode(br#"{"size":4}"#);
        let parts: Vec<&str> = jws.split('.').collect();
        let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert_eq!(
            signer.verify::<serde_json::Value>(&forged).unwrap_err(),
            JwsError::BadSignature
        );
        assert_eq!(
            signer.verify::<serde_json::Value>("a.b").unwrap_err(),
            JwsError::Malformed
        );
    }
}
