//! API keys (argon2id-hashed secrets), short-lived JWTs, and the revocation check that makes a
//! revoked key's tokens stop working within seconds.

mod api_key;
mod keys;
mod pool;
mod token;
mod write_keys;

pub use api_key::{prepare_decoy, KeyId, KeyName, PresentedApiKey};
#[cfg(feature = "test-support")]
pub use keys::KEY_STATUS_TTL;
pub use keys::{
    active_key_role, check_candidate, create_key, find_candidate, list_keys, revoke_key,
    CreatedKey, KeyError, KeyInfo, KeyStatusCache, ACTION_LIST, ACTION_ROTATE_MASTER,
};
pub use pool::{key_check_threads, KeyCheckPool, KEY_CHECKS_QUEUED};
pub use token::{IssuedToken, TokenError, TokenService};
pub use write_keys::WriteKeys;

use crate::policy::RoleId;

/// The caller of an authenticated request: which key, acting as which role.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The API key's id (never its secret).
    pub key_id: KeyId,
    /// The role the key acts as.
    pub role: RoleId,
}

impl Principal {
    /// The caller as the audit log names it, in the request `request_id`.
    pub(crate) fn actor(&self, request_id: Option<String>) -> crate::audit::Actor {
        crate::audit::Actor::caller(self.key_id.as_str(), self.role.as_str(), request_id)
    }
}
