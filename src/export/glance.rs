//! The person at a glance, for the compliance console: traits, which identifiers they have
//! (their values only on demand), the legal basis in effect for every purpose and why, and the
//! newest interactions with the purposes each is still held for and when that ends.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{read_person, ExportError, Person};
use crate::interactions::decrypt_client_id;
use crate::policy::{LegalBasis, Policy, Purpose, PurposeId};
use crate::store::export as export_store;
use crate::store::DbConnection;
use crate::subjects::SubjectId;
use crate::vault::Vault;

/// How many of the newest interactions the timeline shows.
pub const TIMELINE: i64 = 100;

/// One identifier of the person.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IdentifierView {
    /// `email` or `phone`.
    pub kind: String,
    /// The value, only when revealed (`?reveal=identifiers`, audited as `subjects.reveal`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// The legal basis for one purpose, as the policy engine decides it now, and why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BasisView {
    /// The purpose.
    pub purpose: String,
    /// What it is, in words.
    pub description: String,
    /// The legal basis the controller relies on.
    pub legal_basis: String,
    /// Whether the person's data may be used for it now (rule 2).
    pub in_effect: bool,
    /// The reason code when it may not (`no_consent`, `consent_withdrawn`, `objected`,
    /// `restricted`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Why, in words: the statement, objection or restriction that decides it.
    pub why: String,
    /// The purpose the deciding consent statement or objection is about (the purpose itself or
    /// a parent), when one decides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// Since when that holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
}

/// A purpose an interaction is still held for, and when retention removes it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HeldFor {
    /// The purpose.
    pub purpose: String,
    /// When its retention ends for this interaction.
    pub until: DateTime<Utc>,
    /// Whether an erasure would keep the interaction for it (a legal hold).
    pub legal_hold: bool,
}

/// One interaction on the timeline (its data is not shown here: that is what exports are for).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TimelineItem {
    /// The app's id of the interaction.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub interaction_type: String,
    /// Its channel.
    pub channel: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The purposes it is still held for, each until its retention ends.
    pub held_for: Vec<HeldFor>,
    /// The names of the fields it carries.
    pub fields: Vec<String>,
}

/// The person at a glance.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Glance {
    /// The app's id for the person.
    pub subject_id: String,
    /// When the person was first seen.
    pub created_at: DateTime<Utc>,
    /// When their identifiers or traits last changed.
    pub updated_at: DateTime<Utc>,
    /// The identifiers they have; values only when revealed.
    pub identifiers: Vec<IdentifierView>,
    /// Whether `identifiers` carries values.
    pub identifiers_revealed: bool,
    /// Their traits.
    #[schema(value_type = Object)]
    pub traits: BTreeMap<String, serde_json::Value>,
    /// Since when processing is restricted (Art. 18), if it is.
    pub restricted_since: Option<DateTime<Utc>>,
    /// Every purpose of the policy, with the legal basis in effect now and why.
    pub legal_basis: Vec<BasisView>,
    /// Interactions held about them, in all.
    pub interactions: i64,
    /// The newest interactions (at most 100), newest first.
    pub timeline: Vec<TimelineItem>,
    /// The person's audit pseudonym (for the audit entry; never sent).
    #[serde(skip)]
    pub pseudonym: String,
    /// The data categories of the traits shown (for the audit entry; never sent).
    #[serde(skip)]
    pub categories: Vec<String>,
}

/// The person with this subject id at a glance; `None` when there is none.
pub(crate) fn glance(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    subject_id: &SubjectId,
    reveal: bool,
) -> Result<Option<Glance>, ExportError> {
    export_store::snapshot(conn, |conn| {
        let Some(person) = read_person(conn, vault, subject_id)? else {
            return Ok(None);
        };
        let timeline = timeline(conn, policy, &person)?;
        let mut categories: Vec<String> = person
            .profile
            .traits
            .keys()
            .filter_map(|name| policy.field(name))
            .map(|field| field.category.as_str().to_owned())
            .collect();
        categories.sort();
        categories.dedup();
        Ok(Some(Glance {
            // Reached by the user id in the path (a person known only by an anonymous id has
            // no page of their own; their export is reached through a request).
            subject_id: person.profile.subject_id.clone().unwrap_or_default(),
            created_at: person.profile.created_at.and_utc(),
            updated_at: person.profile.updated_at.and_utc(),
            identifiers: person
                .profile
                .identifiers
                .iter()
                .map(|(kind, value)| IdentifierView {
                    kind: kind.clone(),
                    value: reveal.then(|| value.clone()),
                })
                .collect(),
            identifiers_revealed: reveal,
            traits: person.profile.traits.clone(),
            restricted_since: person.restricted_since.map(|at| at.and_utc()),
            legal_basis: policy
                .purposes()
                .map(|purpose| basis(policy, purpose, &person))
                .collect(),
            interactions: person.interactions,
            timeline,
            pseudonym: person.owners.person().key.pseudonym().to_owned(),
            categories,
        }))
    })
}

/// The legal basis for `purpose` and the fact that decides it, in the engine's order: a
/// restriction, then an objection to the purpose or a parent, then (for consent) the latest
/// statement on the purpose or a parent.
fn basis(policy: &Policy, purpose: &Purpose, person: &Person) -> BasisView {
    let decision = policy.legal_basis(purpose, &person.state);
    let mut view = BasisView {
        purpose: purpose.id.to_string(),
        description: purpose.description.clone(),
        legal_basis: purpose.legal_basis.as_str().to_owned(),
        in_effect: decision.is_ok(),
        reason: decision.err().map(|denial| denial.code()),
        why: String::new(),
        decided_by: None,
        since: None,
    };
    let covers = |other: &str| PurposeId::parse(other).is_ok_and(|p| purpose.id.is_within(&p));
    if let Some(since) = person.restricted_since {
        view.why = "Processing of this person's data is restricted (Art. 18).".into();
        view.since = Some(since.and_utc());
        return view;
    }
    if let Some((objected, since)) = person.objections.iter().find(|(p, _)| covers(p)) {
        view.why = if objected == purpose.id.as_str() {
            format!("The person objected to `{objected}` (Art. 21).")
        } else {
            format!("The person objected to `{objected}`, which covers this purpose (Art. 21).")
        };
        view.decided_by = Some(objected.clone());
        view.since = Some(since.and_utc());
        return view;
    }
    if purpose.legal_basis != LegalBasis::Consent {
        view.why = match purpose.legal_basis {
            LegalBasis::LegitimateInterest => {
                "Legitimate interest: allowed unless the person objects.".into()
            }
            other => format!(
                "Legal basis `{}`: needs no consent; allowed unless the person objects or processing is restricted.",
                other.as_str()
            ),
        };
        return view;
    }
    let latest = person
        .current
        .iter()
        .filter(|(p, _, _)| covers(p))
        .max_by_key(|(p, _, _)| person.sequences.get(p).copied().unwrap_or(i64::MIN));
    match latest {
        Some((statement, status, since)) => {
            let inherited = if statement == purpose.id.as_str() {
                String::new()
            } else {
                format!(" (a statement on `{statement}` covers this purpose)")
            };
            view.why = if status == "granted" {
                format!("Consent granted{inherited}.")
            } else {
                format!("Consent withdrawn{inherited}.")
            };
            view.decided_by = Some(statement.clone());
            view.since = Some(since.and_utc());
        }
        None => {
            view.why = "No consent statement on this purpose or a parent: no consent.".into();
        }
    }
    view
}

fn timeline(
    conn: &mut DbConnection,
    policy: &Policy,
    person: &Person,
) -> Result<Vec<TimelineItem>, ExportError> {
    let rows = export_store::latest_interactions(conn, &person.owners.pks(), TIMELINE)?;
    let ids: Vec<&str> = rows.iter().map(|row| row.id.as_str()).collect();
    let mut held: std::collections::HashMap<String, Vec<String>> = Default::default();
    for (id, purpose) in export_store::held_purposes(conn, &ids)? {
        held.entry(id).or_default().push(purpose);
    }
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let mut held_for: Vec<HeldFor> = held
            .remove(&row.id)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|purpose| {
                let declared = policy.purpose(&purpose)?;
                Some(HeldFor {
                    until: (row.occurred_at + Duration::days(i64::from(declared.retention_days)))
                        .and_utc(),
                    legal_hold: declared.legal_hold,
                    purpose,
                })
            })
            .collect();
        held_for.sort_by(|a, b| a.purpose.cmp(&b.purpose));
        let fields = crate::subjects::sealed::read_map(&row.data_ct)?
            .into_keys()
            .collect();
        items.push(TimelineItem {
            id: decrypt_client_id(&person.owners, &row)?,
            interaction_type: row.interaction_type.clone(),
            channel: row.channel.clone(),
            occurred_at: row.occurred_at.and_utc(),
            held_for,
            fields,
        });
    }
    Ok(items)
}
