//! Managing API keys and exchanging them for tokens. Functions here take a connection and are
//! synchronous; HTTP handlers and the CLI call them off the async workers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{NaiveDateTime, Utc};
use zeroize::Zeroizing;

use super::api_key::{generate_key, verify_secret};
use super::{KeyId, KeyName, PresentedApiKey};
use crate::audit::{self, Actor, Entry};
use crate::clock::Clock;
use crate::policy::{Policy, RoleId};
use crate::store::api_keys::{self, ApiKeyRow, NewApiKey};
use crate::store::{write_transaction, DbConnection, StoreError};

/// How long a key's active/revoked status is trusted before it is read again. A revoked key's
/// tokens stop working at most this long after revocation, in every process.
pub const KEY_STATUS_TTL: Duration = Duration::from_secs(2);
const KEY_STATUS_CACHE_CAPACITY: usize = 10_000;

/// Errors from key management and token exchange.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Unknown key id, wrong secret, revoked key or malformed key: deliberately one error.
    #[error("invalid API key")]
    InvalidApiKey,
    /// The role is not defined in the loaded policy.
    #[error("unknown role `{0}`: the loaded policy does not define it")]
    UnknownRole(String),
    /// The key name is not acceptable.
    #[error("{0}")]
    InvalidName(String),
    /// No key has this id.
    #[error("no API key has this id")]
    NotFound,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A key as shown to administrators (never its secret or hash).
#[derive(Debug, Clone)]
pub struct KeyInfo {
    /// The key id.
    pub id: String,
    /// The key's name.
    pub name: String,
    /// The key's role.
    pub role: String,
    /// When it was created (UTC).
    pub created_at: NaiveDateTime,
    /// The key id that created it, or `None` for the CLI.
    pub created_by: Option<String>,
    /// When it was revoked (UTC), if it was.
    pub revoked_at: Option<NaiveDateTime>,
}

impl From<ApiKeyRow> for KeyInfo {
    fn from(row: ApiKeyRow) -> Self {
        KeyInfo {
            id: row.id,
            name: row.name,
            role: row.role,
            created_at: row.created_at,
            created_by: row.created_by,
            revoked_at: row.revoked_at,
        }
    }
}

/// A newly created key, with the full API key text that is shown exactly once.
pub struct CreatedKey {
    /// The stored key.
    pub info: KeyInfo,
    /// `ck_<id>_<secret>`.
    pub api_key: Zeroizing<String>,
}

/// Creates a key for `role` (which the policy must define). Slow (argon2id).
pub fn create_key(
    conn: &mut DbConnection,
    policy: &Policy,
    name: &str,
    role: &str,
    actor: &Actor,
) -> Result<CreatedKey, KeyError> {
    let name = KeyName::parse(name).map_err(KeyError::InvalidName)?;
    let role = policy
        .role(role)
        .ok_or_else(|| KeyError::UnknownRole(role.to_owned()))?;
    let generated = generate_key();
    let created_at = now();
    let created_by = actor.key_id.as_deref();
    write_transaction(conn, |conn| {
        api_keys::insert(
            conn,
            &NewApiKey {
                id: generated.id.as_str(),
                name: name.as_str(),
                role: role.id.as_str(),
                secret_hash: &generated.secret_hash,
                created_at,
                created_by,
            },
        )?;
        let entry = Entry::new(actor, ACTION_CREATE)
            .target(generated.id.as_str())
            .records(1);
        audit::append(conn, policy.sha256(), vec![entry])
    })?;
    Ok(CreatedKey {
        info: KeyInfo {
            id: generated.id.to_string(),
            name: name.as_str().to_owned(),
            role: role.id.to_string(),
            created_at,
            created_by: created_by.map(str::to_owned),
            revoked_at: None,
        },
        api_key: generated.full_key,
    })
}

/// Every key, oldest first, revoked ones included.
pub fn list_keys(conn: &mut DbConnection) -> Result<Vec<KeyInfo>, KeyError> {
    Ok(api_keys::list(conn)?
        .into_iter()
        .map(KeyInfo::from)
        .collect())
}

/// Revokes a key (idempotent: revoking a revoked key keeps its first revocation time), with
/// its audit entry.
pub fn revoke_key(
    conn: &mut DbConnection,
    policy: &Policy,
    id: &str,
    actor: &Actor,
) -> Result<KeyInfo, KeyError> {
    if KeyId::parse(id).is_none() {
        return Err(KeyError::NotFound);
    }
    write_transaction(conn, |conn| {
        let revoked = api_keys::revoke(conn, id, now())?.ok_or(KeyError::NotFound)?;
        let entry = Entry::new(actor, ACTION_REVOKE).target(id).records(1);
        audit::append(conn, policy.sha256(), vec![entry])?;
        Ok(KeyInfo::from(revoked))
    })
}

/// The audit action of creating an API key.
pub const ACTION_CREATE: &str = "keys.create";
/// The audit action of listing API keys.
pub const ACTION_LIST: &str = "keys.list";
/// The audit action of revoking an API key.
pub const ACTION_REVOKE: &str = "keys.revoke";
/// The audit action of rotating the master key.
pub const ACTION_ROTATE_MASTER: &str = "keys.rotate_master";

/// A presented API key with what the database holds for it, looked up but not yet checked:
/// the cheap half of an exchange ([`find_candidate`]), kept apart from the slow half
/// ([`check_candidate`], argon2id) so that the slow half never holds a database connection.
pub struct Candidate {
    presented: Option<PresentedApiKey>,
    stored: Option<ApiKeyRow>,
}

/// Parses a presented API key and reads its row (if the key is well-formed and its id exists).
pub fn find_candidate(conn: &mut DbConnection, raw_key: &str) -> Result<Candidate, StoreError> {
    let presented = PresentedApiKey::parse(raw_key);
    let stored = match &presented {
        Some(presented) => api_keys::find(conn, presented.id().as_str())?,
        None => None,
    };
    Ok(Candidate { presented, stored })
}

/// Checks a looked-up key and returns its id and role. An unknown id, a wrong secret, a revoked
/// key, a malformed key and a key whose role the policy no longer defines all fail the same way
/// after the same argon2id work, so none can be told apart from outside. Slow on purpose: call
/// it off the async workers, and without a database connection.
pub fn check_candidate(
    policy: &Policy,
    candidate: &Candidate,
    raw_key: &str,
) -> Result<(KeyId, RoleId), KeyError> {
    let Some(presented) = &candidate.presented else {
        verify_secret(None, raw_key);
        return Err(KeyError::InvalidApiKey);
    };
    let usable = candidate
        .stored
        .as_ref()
        .filter(|row| row.revoked_at.is_none());
    let secret_matches = verify_secret(
        usable.map(|row| row.secret_hash.as_str()),
        presented.secret(),
    );
    match usable {
        Some(row) if secret_matches => match policy.role(&row.role) {
            Some(role) => Ok((presented.id().clone(), role.id.clone())),
            None => {
                tracing::warn!(key_id = %row.id, role = %row.role, "API key's role is not in the loaded policy");
                Err(KeyError::InvalidApiKey)
            }
        },
        _ => Err(KeyError::InvalidApiKey),
    }
}

/// The role of the key with this id if it exists and is not revoked.
pub fn active_key_role(
    conn: &mut DbConnection,
    key_id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(api_keys::find(conn, key_id)?
        .filter(|row| row.revoked_at.is_none())
        .map(|row| row.role))
}

fn now() -> NaiveDateTime {
    Utc::now().naive_utc()
}

/// The remembered status of one key.
#[derive(Debug, Clone)]
struct KeyStatus {
    role: Option<String>,
    /// When it was read, on the cache's clock.
    checked_at: Duration,
}

/// Remembers for [`KEY_STATUS_TTL`] whether a key is active, so that checking a token does not
/// read the database on every request. Bounded: when full it is cleared.
#[derive(Debug)]
pub struct KeyStatusCache {
    entries: Mutex<HashMap<String, KeyStatus>>,
    clock: Clock,
}

impl KeyStatusCache {
    /// An empty cache, whose entries age on `clock`.
    pub fn new(clock: Clock) -> Self {
        KeyStatusCache {
            entries: Mutex::default(),
            clock,
        }
    }

    /// The key's role if it is active and still read within the TTL; `None` means "look it up".
    pub(crate) fn cached(&self, key_id: &str) -> Option<Option<String>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key_id)
            .filter(|status| {
                self.clock.elapsed().saturating_sub(status.checked_at) < KEY_STATUS_TTL
            })
            .map(|status| status.role.clone())
    }

    /// Remembers a key's status as just read from the database: its role when active.
    pub(crate) fn remember(&self, key_id: &str, role: Option<String>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= KEY_STATUS_CACHE_CAPACITY {
            entries.clear();
        }
        let checked_at = self.clock.elapsed();
        entries.insert(key_id.to_owned(), KeyStatus { role, checked_at });
    }

    /// Forgets a key, so that this process sees its revocation at once.
    pub(crate) fn forget(&self, key_id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(key_id);
    }
}
