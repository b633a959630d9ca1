//! Access: an API key exchanged for a short-lived bearer token, and the check of a token's key
//! on every request (its status cached for a moment, so that revocation reaches every process
//! within seconds).

use zeroize::Zeroizing;

use super::Services;
use crate::auth::{
    active_key_role, check_candidate, find_candidate, IssuedToken, KeyError, KeyId, Principal,
};
use crate::policy::RoleId;
use crate::store::StoreError;

/// Why a key was not exchanged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AccessError {
    /// The key is not valid (unknown, revoked, wrong secret, malformed: one answer).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Too many keys are being checked at once; try again shortly.
    #[error("too many API keys are being checked")]
    Busy,
}

impl From<StoreError> for AccessError {
    fn from(error: StoreError) -> Self {
        AccessError::Key(KeyError::Store(error))
    }
}

/// A token issued for a key, with the key's role.
pub(crate) struct Exchanged {
    /// The token.
    pub(crate) token: IssuedToken,
    /// The key's role.
    pub(crate) role: RoleId,
}

/// Exchanges an API key for a bearer token. Unknown, revoked and wrong keys all fail alike
/// after the same work: the cheap half (parse, read the key's row) on a database connection,
/// the slow half (argon2id) on the key-check threads, holding no connection.
pub(crate) async fn exchange(
    services: &Services,
    api_key: Zeroizing<String>,
) -> Result<Exchanged, AccessError> {
    let Principal { key_id, role } = check_key(services, api_key).await?;
    Ok(Exchanged {
        token: services.tokens.issue(&key_id, &role),
        role,
    })
}

/// The caller behind a write key (an API key sent with HTTP Basic by a tracking SDK) whose
/// check succeeded before, if it did (`Ok(None)`: check it with [`check_write_key`]). The key
/// is still looked up for revocation (cached for at most two seconds), so revocation takes
/// effect as for tokens; a revoked or re-roled key is forgotten and refused.
pub(crate) async fn remembered_write_key(
    services: &Services,
    presented: &str,
) -> Result<Option<Principal>, AccessError> {
    let fingerprint = services.write_keys.fingerprint(presented);
    let Some((key_id, role)) = services.write_keys.verified(&fingerprint) else {
        return Ok(None);
    };
    match active_role(services, &key_id).await? {
        Some(active) if active == role.as_str() => Ok(Some(Principal { key_id, role })),
        _ => {
            services.write_keys.forget(&fingerprint);
            Err(AccessError::Key(KeyError::InvalidApiKey))
        }
    }
}

/// Checks a write key like a token exchange (the same work for every wrong key, on the
/// key-check threads) and remembers it when it is valid.
pub(crate) async fn check_write_key(
    services: &Services,
    presented: Zeroizing<String>,
) -> Result<Principal, AccessError> {
    let fingerprint = services.write_keys.fingerprint(&presented);
    let principal = check_key(services, presented).await?;
    services.write_keys.remember(
        fingerprint,
        principal.key_id.clone(),
        principal.role.clone(),
    );
    Ok(principal)
}

/// Checks a presented API key: the cheap half (parse, read the key's row) on a database
/// connection, the slow half (argon2id) on the key-check threads, holding no connection.
/// Unknown, revoked and wrong keys all fail alike after the same work.
async fn check_key(
    services: &Services,
    presented: Zeroizing<String>,
) -> Result<Principal, AccessError> {
    let candidate_key = presented.clone();
    let candidate = services
        .db
        .run(move |conn| find_candidate(conn, &candidate_key))
        .await?;
    let policy = services.policy.clone();
    let (key_id, role) = services
        .key_checks
        .run(move || check_candidate(&policy, &candidate, &presented))
        .await
        .map_err(|_| AccessError::Busy)??;
    Ok(Principal { key_id, role })
}

/// The role of key `key_id` if it is active (`None`: revoked or unknown), from the cache when
/// it was checked a moment ago.
pub(crate) async fn active_role(
    services: &Services,
    key_id: &KeyId,
) -> Result<Option<String>, StoreError> {
    if let Some(role) = services.key_status.cached(key_id.as_str()) {
        return Ok(role);
    }
    let lookup_id = key_id.clone();
    let role = services
        .db
        .run(move |conn| active_key_role(conn, lookup_id.as_str()))
        .await?;
    services.key_status.remember(key_id.as_str(), role.clone());
    Ok(role)
}
