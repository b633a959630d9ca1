//! What erasures keep under a legal hold, read only for a holding purpose: the refusals and
//! the read are audited here, the read under the erased person's pseudonym.

use super::{audit_read, with_categories, Failed, Services};
use crate::audit::{Actor, Entry};
use crate::policy::{Action, PurposeId};
use crate::rejection::Rejection;
use crate::subjects::holds::{self, HeldInteraction};
use crate::subjects::SubjectError;

/// The held records of erasure `erasure_id` usable for `purpose`, minimised to the fields it
/// may use; `None` when no erasure with this id holds anything. The role must hold
/// `interactions.read` for the purpose, and the erasure must hold something for it; each
/// refusal is audited.
pub(crate) async fn read(
    services: &Services,
    actor: &Actor,
    role: &str,
    erasure_id: String,
    purpose: PurposeId,
) -> Result<Option<Vec<HeldInteraction>>, Failed<SubjectError>> {
    let policy = &services.policy;
    let entry = Entry::new(actor, holds::ACTION_READ)
        .purpose(policy, &purpose)
        .target(erasure_id.as_str());
    if let Err(denial) = policy.authorize_purpose(role, Action::InteractionsRead, &purpose) {
        audit_read(services, vec![entry.denied(denial.code())]).await?;
        return Err(Failed::Refused(Rejection::forbidden(
            denial.code(),
            format!("role `{role}` may not read data for purpose `{purpose}`"),
        )));
    }
    let (vault, policy_for_read, now) = (
        services.vault.clone(),
        services.policy.clone(),
        services.clock.now_naive(),
    );
    let target = purpose.clone();
    let read = services
        .db
        .run(move |conn| {
            let declared = policy_for_read
                .purpose(target.as_str())
                .expect("a parsed purpose is declared");
            holds::read(conn, &vault, &policy_for_read, &erasure_id, declared, now)
        })
        .await?;
    let Some(records) = read else {
        return Ok(None);
    };
    let entry = entry.pseudonym(Some(records.pseudonym.clone()));
    if !records.held_for_purpose {
        audit_read(services, vec![entry.denied("purpose_not_held")]).await?;
        return Err(Failed::Refused(Rejection::forbidden(
            "purpose_not_held",
            format!("this erasure holds nothing for purpose `{purpose}`: held records may be used only for the purpose that holds them"),
        )));
    }
    let shown = records
        .interactions
        .iter()
        .flat_map(|item| item.data.keys());
    let entry = with_categories(entry.records(records.interactions.len()), policy, shown);
    audit_read(services, vec![entry]).await?;
    Ok(Some(records.interactions))
}
