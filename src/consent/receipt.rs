//! Consent receipts: compact JWS (EdDSA over Ed25519) that anyone can verify with the JWK set at
//! `GET /v1/consents/receipt-key`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::Serialize;

use crate::crypto::Secret;

/// Signs receipts with the deployment's receipt key.
pub struct ReceiptSigner {
    key_pair: Ed25519KeyPair,
    key_id: String,
}

impl std::fmt::Debug for ReceiptSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReceiptSigner({})", self.key_id)
    }
}

/// The public key as a JWK.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Jwk {
    /// `OKP`.
    pub kty: &'static str,
    /// `Ed25519`.
    pub crv: &'static str,
    /// The public key, base64url.
    pub x: String,
    /// The key id, also in every receipt's header.
    pub kid: String,
    /// `EdDSA`.
    pub alg: &'static str,
    /// `sig`.
    #[serde(rename = "use")]
    pub key_use: &'static str,
}

impl ReceiptSigner {
    /// The signer for a 32-byte seed.
    pub fn new(seed: &Secret) -> ReceiptSigner {
        let key_pair = Ed25519KeyPair::from_seed_unchecked(seed.expose())
            .expect("any 32 bytes are an Ed25519 seed");
        let digest = ring::digest::digest(&ring::digest::SHA256, key_pair.public_key().as_ref());
        ReceiptSigner {
            key_id: hex::encode(&digest.as_ref()[..8]),
            key_pair,
        }
    }

    /// The public key.
    pub fn jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP",
            crv: "Ed25519",
            x: URL_SAFE_NO_PAD.encode(self.key_pair.public_key().as_ref()),
            kid: self.key_id.clone(),
            alg: "EdDSA",
            key_use: "sig",
        }
    }

    /// A compact JWS over `claims`.
    pub fn sign<T: Serialize>(&self, claims: &T) -> String {
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
}
