//! API keys as the API offers them (action `keys.manage`): creation, the list (audited), and
//! revocation, after which the key's cached status is forgotten in this process (the others
//! see it within seconds).

use super::{audit_read, Failed, Services};
use crate::audit::{Actor, Entry};
use crate::auth::{create_key, list_keys, revoke_key, CreatedKey, KeyError, KeyInfo, ACTION_LIST};

/// Creates a key for `role` named `name` (audited in its transaction); its secret is in the
/// answer only.
pub(crate) async fn create(
    services: &Services,
    actor: &Actor,
    name: String,
    role: String,
) -> Result<CreatedKey, KeyError> {
    let (policy, actor) = (services.policy.clone(), actor.clone());
    services
        .db
        .run_write(move |conn| create_key(conn, &policy, &name, &role, &actor))
        .await
}

/// Every key; audited.
pub(crate) async fn list(
    services: &Services,
    actor: &Actor,
) -> Result<Vec<KeyInfo>, Failed<KeyError>> {
    let keys = services.db.run(list_keys).await?;
    audit_read(
        services,
        vec![Entry::new(actor, ACTION_LIST).records(keys.len())],
    )
    .await?;
    Ok(keys)
}

/// Revokes key `id` (audited in its transaction); its tokens stop working at once in this
/// process.
pub(crate) async fn revoke(
    services: &Services,
    actor: &Actor,
    id: String,
) -> Result<KeyInfo, KeyError> {
    let (policy, actor, key_id) = (services.policy.clone(), actor.clone(), id.clone());
    let revoked = services
        .db
        .run_write(move |conn| revoke_key(conn, &policy, &key_id, &actor))
        .await?;
    services.key_status.forget(&id);
    Ok(revoked)
}
