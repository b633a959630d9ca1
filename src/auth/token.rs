//! Short-lived access tokens: HS256 JWTs signed with a key derived from the root secret
//! (`vault::TOKEN_KEY_LABEL`), so every process of a deployment accepts the others' tokens.

use std::fmt;
use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::KeyId;
use crate::crypto::Secret;
use crate::policy::RoleId;

const ISSUER: &str = "custodia";
const AUDIENCE: &str = "custodia-api";

/// What a token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The API key id.
    pub sub: String,
    /// The key's role.
    pub role: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Always `custodia`.
    pub iss: String,
    /// Always `custodia-api`.
    pub aud: String,
    /// A unique token id.
    pub jti: String,
}

/// A token handed to a caller.
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

/// Why a token was refused. Callers see only "invalid or expired token".
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token expired.
    #[error("the token has expired")]
    Expired,
    /// Bad signature, wrong algorithm, malformed, wrong issuer or audience.
    #[error("the token is invalid: {0}")]
    Invalid(String),
}

/// Issues and verifies tokens.
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl fmt::Debug for TokenService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenService(ttl: {:?})", self.ttl)
    }
}

impl TokenService {
    /// A service whose tokens live for `ttl`, signed with `signing_key`.
    pub fn new(signing_key: &Secret, ttl: Duration) -> TokenService {
        let secret = signing_key.expose();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 0;
        TokenService {
            encoding: EncodingKey::from_secret(secret.as_ref()),
            decoding: DecodingKey::from_secret(secret.as_ref()),
            validation,
            ttl,
        }
    }

    /// Issues a token for `key_id` acting as `role`.
    pub fn issue(&self, key_id: &KeyId, role: &RoleId) -> IssuedToken {
        let now = Utc::now().timestamp();
        let expires_in = self.ttl.as_secs();
        let claims = Claims {
            sub: key_id.to_string(),
            role: role.to_string(),
            iat: now,
            exp: now + i64::try_from(expires_in).unwrap_or(i64::MAX / 2),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail");
        IssuedToken { token, expires_in }
    }

    /// Verifies signature, algorithm (HS256 only), issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid(error.to_string()),
            })
    }
}
