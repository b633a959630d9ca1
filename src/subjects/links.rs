//! Identity resolution: an anonymous id linked to the person a user id names, so that from then
//! on they are one person for reads, exports, segments and erasure, including everything
//! recorded before the link (`docs/tracking.md`, "Identity resolution").
//!
//! Linking an anonymous person to a known one **merges** them without moving their
//! interactions: the anonymous person becomes a *member* of the known one (`subject_members`),
//! keeping their internal id, their data key and every interaction sealed under it, and from
//! then on every read, count, export, hold and erasure of the known person goes through their
//! members too. What is small moves: the consent history (re-sealed, renumbered, merged by the
//! policy's rule), objections and restrictions, identifiers and traits the known person lacks,
//! linked anonymous ids. When only one side exists, nothing merges: the anonymous person takes
//! the user id, or the user's person takes the anonymous id.

use std::collections::btree_map::Entry as Slot;
use std::collections::BTreeMap;

use chrono::{NaiveDateTime, Utc};

use super::sealed::{open, read_map, seal, write_map, SUBJECT_RECORD};
use super::{
    find_or_create, id_marker, seal_subject_id, subject_index, SubjectError, SubjectHandle,
    SubjectId,
};
use crate::audit::{Actor, Entry};
use crate::crypto::{DataKey, DecryptError, FieldContext, IdentifierKind};
use crate::policy::{MergeConsent, Policy};
use crate::store::consents::CurrentRow;
use crate::store::erasure::ErasedKey;
use crate::store::links::{self as link_store, AliasRow};
use crate::store::subjects as subject_store;
use crate::store::DbConnection;
use crate::vault::Vault;

/// The job that folds merged people's interactions into their person ([`consolidate_step`]).
pub const CONSOLIDATION_JOB: &str = "member_consolidation";

/// The audit action of a link (allowed, or refused with its reason).
pub const ACTION_LINK: &str = "subjects.link";

/// The field name an alias's sealed anonymous id is bound to.
const ALIAS_FIELD: &str = "$anonymous_id";

/// What became of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    /// Linked: the person the user id names now also holds the anonymous id. `merged` counts
    /// the records of an anonymous person merged into them (0: nothing to merge).
    Linked {
        /// Records (interactions and consent statements) moved from the anonymous person.
        merged: usize,
    },
    /// They were linked before: nothing to do.
    AlreadyLinked,
    /// The anonymous id is linked to another person already: over-merging is refused, both
    /// stay separate (audited, counted).
    Claimed,
    /// One of the ids was erased with suppression: nothing is linked, nobody comes back.
    Suppressed,
}

impl LinkOutcome {
    /// Its name (the metric's `outcome` label): `linked` (nothing to merge), `merged`,
    /// `already_linked`, `claimed` or `suppressed`.
    pub fn outcome(&self) -> &'static str {
        match self {
            LinkOutcome::Linked { merged: 0 } => "linked",
            LinkOutcome::Linked { .. } => "merged",
            LinkOutcome::AlreadyLinked => "already_linked",
            LinkOutcome::Claimed => "claimed",
            LinkOutcome::Suppressed => "suppressed",
        }
    }
}

/// A link's outcome and what to audit.
#[derive(Debug)]
pub struct LinkResult {
    /// What became of it.
    pub linked: LinkOutcome,
    /// The audit entries to append in the same transaction.
    pub entries: Vec<Entry>,
}

/// Links `anonymous` to the person `user` names, inside the caller's write transaction.
pub(crate) fn link(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    user: &SubjectId,
    anonymous: &SubjectId,
    actor: &Actor,
) -> Result<LinkResult, SubjectError> {
    debug_assert!(!user.is_anonymous() && anonymous.is_anonymous());
    let user_index = subject_index(vault, user);
    let anonymous_index = subject_index(vault, anonymous);
    let people = [user_index.clone(), anonymous_index.clone()];
    crate::store::lock_in_order(conn, "custodia/person/", &people)?;
    let refused = |reason: &str, pseudonyms: Vec<String>| {
        let mut entry = Entry::new(actor, ACTION_LINK).denied(reason);
        for pseudonym in pseudonyms {
            entry = entry.pseudonym(Some(pseudonym));
        }
        entry
    };
    let suppressed = crate::store::erasure::suppressed_among(
        conn,
        &[user_index.as_str(), anonymous_index.as_str()],
    )?;
    if !suppressed.is_empty() {
        return Ok(LinkResult {
            linked: LinkOutcome::Suppressed,
            entries: vec![refused("subject_suppressed", Vec::new())],
        });
    }
    let known = subject_store::find_own(conn, &user_index)?;
    let linked_to = link_store::subjects_of_aliases(conn, &[anonymous_index.as_str()])?
        .pop()
        .map(|(_, pk)| pk);
    if let Some(linked_pk) = linked_to {
        if known.as_ref().is_some_and(|row| row.id == linked_pk) {
            return Ok(LinkResult {
                linked: LinkOutcome::AlreadyLinked,
                entries: Vec::new(),
            });
        }
        // Claimed by someone else: one anonymous id (a shared device, a reused cookie) must
        // not fold two known people into one.
        let mut pseudonyms = vec![vault.data_key_for(conn, &linked_pk)?.pseudonym().to_owned()];
        if let Some(row) = &known {
            pseudonyms.push(vault.data_key_for(conn, &row.id)?.pseudonym().to_owned());
        }
        return Ok(LinkResult {
            linked: LinkOutcome::Claimed,
            entries: vec![refused("identity_claimed", pseudonyms)],
        });
    }
    let anonymous_person = subject_store::find_own(conn, &anonymous_index)?;
    let now = Utc::now().naive_utc();
    let (survivor, merged, mut entry) = match (known, anonymous_person) {
        (Some(known), Some(anonymous_row)) => {
            let into = handle(conn, vault, &known.id)?;
            let from = handle(conn, vault, &anonymous_row.id)?;
            let moved = merge(conn, policy, &from, &into, &anonymous_row, &known, now)?;
            subject_store::retire_merged(conn, &from.pk, now)?;
            link_store::add_member(conn, &from.pk, &into.pk, now)?;
            let entry = Entry::new(actor, ACTION_LINK)
                .subject(&into.key)
                .subject(&from.key)
                .records(moved);
            (into, moved, entry)
        }
        (Some(known), None) => {
            let into = handle(conn, vault, &known.id)?;
            let entry = Entry::new(actor, ACTION_LINK).subject(&into.key);
            (into, 0, entry)
        }
        (None, Some(anonymous_row)) => {
            // The anonymous person logs in for the first time: they take the user id.
            let person = handle(conn, vault, &anonymous_row.id)?;
            let sealed = seal_subject_id(&person.key, &person.pk, user);
            subject_store::set_own_id(conn, &person.pk, &user_index, &sealed, now)?;
            let marker = id_marker(vault, &person.pk, user);
            let anonymous_marker = IdentifierKind::AnonymousId.stored_name();
            subject_store::set_identifier(conn, &person.pk, anonymous_marker, None)?;
            subject_store::set_identifier(
                conn,
                &person.pk,
                &marker.kind,
                Some(&marker.blind_index),
            )?;
            let entry = Entry::new(actor, ACTION_LINK).subject(&person.key);
            (person, 0, entry)
        }
        (None, None) => {
            let person = find_or_create(conn, vault, user)?;
            let entry = Entry::new(actor, ACTION_LINK).subject(&person.key);
            (person, 0, entry)
        }
    };
    let alias = AliasRow {
        alias_ct: seal_alias(&survivor, &anonymous_index, anonymous),
        alias_index: anonymous_index,
        subject_pk: survivor.pk.clone(),
        linked_at: now,
    };
    link_store::insert_alias(conn, &alias)?;
    entry.add_category("identifiers");
    Ok(LinkResult {
        linked: LinkOutcome::Linked { merged },
        entries: vec![entry],
    })
}

/// The anonymous ids linked to a person, opened, oldest link first (for their export).
pub(crate) fn linked_ids(
    conn: &mut DbConnection,
    subject: &SubjectHandle,
) -> Result<Vec<String>, SubjectError> {
    let mut ids = Vec::new();
    for row in link_store::aliases_of(conn, &subject.pk)? {
        let context = alias_context(&subject.pk, &row.alias_index);
        let id = String::from_utf8(subject.key.decrypt(&context, &row.alias_ct)?)
            .map_err(|_| DecryptError)?;
        ids.push(id);
    }
    Ok(ids)
}

fn alias_context<'a>(pk: &'a str, alias_index: &'a str) -> FieldContext<'a> {
    FieldContext {
        subject: pk,
        record: alias_index,
        field: ALIAS_FIELD,
    }
}

fn seal_alias(person: &SubjectHandle, alias_index: &str, anonymous: &SubjectId) -> Vec<u8> {
    person.key.encrypt(
        &alias_context(&person.pk, alias_index),
        anonymous.as_str().as_bytes(),
    )
}

fn handle(conn: &mut DbConnection, vault: &Vault, pk: &str) -> Result<SubjectHandle, SubjectError> {
    Ok(SubjectHandle {
        pk: pk.to_owned(),
        key: vault.data_key_for(conn, pk)?,
    })
}

/// Re-seals one value of `from` for the same place in `into`.
fn reseal(
    from: &SubjectHandle,
    into: &SubjectHandle,
    record: &str,
    field: &str,
    sealed: &str,
) -> Result<String, DecryptError> {
    let plaintext = open(
        &from.key,
        &FieldContext {
            subject: &from.pk,
            record,
            field,
        },
        sealed,
    )?;
    Ok(seal(
        &into.key,
        &FieldContext {
            subject: &into.pk,
            record,
            field,
        },
        &plaintext,
    ))
}

fn reseal_map(
    from: &SubjectHandle,
    into: &SubjectHandle,
    record: &str,
    json: &str,
    field_of: impl Fn(&str) -> String,
) -> Result<BTreeMap<String, String>, DecryptError> {
    let mut map = BTreeMap::new();
    for (name, sealed) in read_map(json)? {
        let resealed = reseal(from, into, record, &field_of(&name), &sealed)?;
        map.insert(name, resealed);
    }
    Ok(map)
}

fn reseal_bytes(
    from: &DataKey,
    from_context: &FieldContext<'_>,
    into: &DataKey,
    into_context: &FieldContext<'_>,
    sealed: &[u8],
) -> Result<Vec<u8>, DecryptError> {
    Ok(into.encrypt(into_context, &from.decrypt(from_context, sealed)?))
}

/// Merges `from` into `into`: the small rows move, re-sealed under `into`'s key; the
/// interactions stay (the caller makes `from` a member). Returns how many interactions and
/// statements the merged person brought.
fn merge(
    conn: &mut DbConnection,
    policy: &Policy,
    from: &SubjectHandle,
    into: &SubjectHandle,
    from_row: &subject_store::SubjectRow,
    into_row: &subject_store::SubjectRow,
    now: NaiveDateTime,
) -> Result<usize, SubjectError> {
    subject_store::lock_for_write(conn, &[from.pk.as_str(), into.pk.as_str()])?;
    // The merged person's own members (none for an anonymous person today) are counted with it.
    let mut owners = link_store::members_of(conn, &from.pk)?;
    owners.push(from.pk.clone());
    let owners: Vec<&str> = owners.iter().map(String::as_str).collect();
    let interactions = link_store::interaction_count(conn, &owners)?;
    let moved = usize::try_from(interactions).unwrap_or(usize::MAX);
    // Consent statements: both histories kept, the merged one after the survivor's own in
    // sequence, each naming where it came from.
    let next = crate::store::consents::next_sequence(conn, &into.pk)?;
    let mut statements = link_store::statements_of(conn, &from.pk)?;
    let mut renumbered = BTreeMap::new();
    for (offset, row) in statements.iter_mut().enumerate() {
        let evidence = reseal_map(from, into, &row.id, &row.evidence_ct, |name| {
            name.to_owned()
        })?;
        row.evidence_ct = write_map(&evidence);
        row.subject_pk = into.pk.clone();
        row.sequence = next + i64::try_from(offset).unwrap_or(i64::MAX);
        row.merged_from = Some(from.key.pseudonym().to_owned());
        renumbered.insert(row.id.clone(), row.sequence);
    }
    link_store::move_statements(conn, &statements)?;
    let pks = [from.pk.as_str(), into.pk.as_str()];
    let mut current = crate::store::consents::current_for(conn, &pks)?;
    for row in &mut current {
        if let Some(sequence) = renumbered.get(&row.record_id) {
            row.sequence = *sequence;
        }
    }
    let merged = merged_current(policy.merge_consent(), &into.pk, current);
    link_store::replace_current(conn, [from.pk.as_str(), into.pk.as_str()], &merged)?;
    link_store::move_standing(conn, &from.pk, &into.pk)?;
    // Profile: the survivor's identifiers and traits win; the merged person's fill the gaps.
    let mut identifiers = read_map(&into_row.identifiers_ct)?;
    for (name, sealed) in read_map(&from_row.identifiers_ct)? {
        let field = format!("${name}");
        if let Slot::Vacant(slot) = identifiers.entry(name) {
            slot.insert(reseal(from, into, SUBJECT_RECORD, &field, &sealed)?);
        }
    }
    let mut traits = read_map(&into_row.traits_ct)?;
    for (name, sealed) in read_map(&from_row.traits_ct)? {
        let resealed = reseal(from, into, SUBJECT_RECORD, &name, &sealed)?;
        if let Slot::Vacant(slot) = traits.entry(name) {
            slot.insert(resealed);
        }
    }
    subject_store::update_encrypted(
        conn,
        &into.pk,
        &write_map(&identifiers),
        &write_map(&traits),
        now,
    )?;
    link_store::move_profile(conn, &from.pk, &into.pk)?;
    // Anonymous ids linked to the merged person before follow them.
    let mut aliases = link_store::aliases_of(conn, &from.pk)?;
    for alias in &mut aliases {
        alias.alias_ct = reseal_bytes(
            &from.key,
            &alias_context(&from.pk, &alias.alias_index),
            &into.key,
            &alias_context(&into.pk, &alias.alias_index),
            &alias.alias_ct,
        )?;
        alias.subject_pk = into.pk.clone();
    }
    link_store::move_aliases(conn, &aliases)?;
    // The merged person's own anonymous id becomes an alias: the caller links it.
    Ok(moved + statements.len())
}

/// Interactions moved per consolidation step: one short transaction each, so that a large
/// anonymous history never holds the writer or the person for long.
const CONSOLIDATION_STEP: i64 = 500;

/// What one consolidation step did.
#[derive(Debug)]
pub struct Consolidated {
    /// Interactions given to the person (re-sealed under their key).
    pub moved: usize,
    /// A member left with nothing was deleted: its destroyed key, whose old copies are to leave
    /// the database files.
    pub finished: Option<ErasedKey>,
}

/// One step of folding the oldest member into its person, in a write transaction of its own:
/// up to [`CONSOLIDATION_STEP`] of the member's interactions are opened with the member's key,
/// sealed with the person's for the person's internal id, and given to the person; a member
/// with none left is deleted, key first. `None`: nobody is a member. Reads are correct before,
/// between and after the steps (a person's owners only ever shrink to the person).
pub fn consolidate_step(
    conn: &mut DbConnection,
    vault: &Vault,
) -> Result<Option<Consolidated>, SubjectError> {
    crate::store::write_transaction(conn, |conn| {
        let Some((member_pk, person_pk)) = link_store::oldest_member(conn)? else {
            return Ok(None);
        };
        // The person first, then the member: the order an erasure of the person locks them in.
        subject_store::lock_for_write(conn, &[person_pk.as_str()])?;
        subject_store::lock_for_write(conn, &[member_pk.as_str()])?;
        if !link_store::is_member(conn, &member_pk, &person_pk)? {
            // Erased or consolidated by another process meanwhile.
            return Ok(Some(Consolidated {
                moved: 0,
                finished: None,
            }));
        }
        let from = handle(conn, vault, &member_pk)?;
        let rows = link_store::interactions_of(conn, &member_pk, CONSOLIDATION_STEP)?;
        if rows.is_empty() {
            // Nothing left: the member goes as it would with its person's erasure, key first.
            let deleted =
                crate::store::erasure::delete_member(conn, &member_pk, from.key.pseudonym())?;
            return Ok(Some(Consolidated {
                moved: 0,
                finished: Some(deleted.key),
            }));
        }
        let into = handle(conn, vault, &person_pk)?;
        let moved = rows.len();
        let resealed = reseal_interactions(&from, &into, rows)?;
        link_store::move_interactions(conn, &into.pk, &resealed)?;
        Ok(Some(Consolidated {
            moved,
            finished: None,
        }))
    })
}

/// Each interaction's client id and data, opened with `from`'s key and sealed with `into`'s.
fn reseal_interactions(
    from: &SubjectHandle,
    into: &SubjectHandle,
    rows: Vec<crate::store::interactions::InteractionRow>,
) -> Result<Vec<link_store::Resealed>, DecryptError> {
    let one = |row: &crate::store::interactions::InteractionRow| {
        let data = reseal_map(from, into, &row.id, &row.data_ct, |name| name.to_owned())?;
        let field = crate::interactions::CLIENT_ID_FIELD;
        let client_id_ct = reseal_bytes(
            &from.key,
            &FieldContext {
                subject: &from.pk,
                record: &row.id,
                field,
            },
            &into.key,
            &FieldContext {
                subject: &into.pk,
                record: &row.id,
                field,
            },
            &row.client_id_ct,
        )?;
        Ok((row.id.clone(), client_id_ct, write_map(&data)))
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || rows.len() < 1_000 {
        return rows.iter().map(one).collect();
    }
    let per_thread = rows.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = rows
            .chunks(per_thread)
            .map(|chunk| scope.spawn(move || chunk.iter().map(one).collect::<Result<Vec<_>, _>>()))
            .collect();
        let mut resealed = Vec::with_capacity(rows.len());
        for worker in workers {
            match worker.join() {
                Ok(rows) => resealed.extend(rows?),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok(resealed)
    })
}

/// The current statements of a merged person, per purpose, by the policy's rule: under
/// `most_restrictive` a withdrawal on either side wins over a grant (the later of two of the
/// same status stands); under `latest` the later statement stands.
fn merged_current(rule: MergeConsent, into_pk: &str, rows: Vec<CurrentRow>) -> Vec<CurrentRow> {
    let mut by_purpose: BTreeMap<String, CurrentRow> = BTreeMap::new();
    for mut row in rows {
        row.subject_pk = into_pk.to_owned();
        let keep_new = match by_purpose.get(&row.purpose) {
            None => true,
            Some(held) => {
                let later = (row.since, row.sequence) > (held.since, held.sequence);
                match rule {
                    MergeConsent::Latest => later,
                    MergeConsent::MostRestrictive => {
                        let (new_granted, held_granted) =
                            (row.status == "granted", held.status == "granted");
                        if new_granted == held_granted {
                            later
                        } else {
                            !new_granted
                        }
                    }
                }
            }
        };
        if keep_new {
            by_purpose.insert(row.purpose.clone(), row);
        }
    }
    by_purpose.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current(
        pk: &str,
        purpose: &str,
        status: &str,
        since_secs: i64,
        sequence: i64,
    ) -> CurrentRow {
        CurrentRow {
            subject_pk: pk.into(),
            purpose: purpose.into(),
            status: status.into(),
            sequence,
            since: chrono::DateTime::from_timestamp(since_secs, 0)
                .expect("a time")
                .naive_utc(),
            record_id: format!("{pk}-{purpose}-{sequence}"),
        }
    }

    #[test]
    fn most_restrictive_keeps_a_withdrawal_from_either_side_and_latest_keeps_the_later() {
        let rows = || {
            vec![
                // marketing: the anonymous side granted later, the known side withdrew earlier.
                current("known", "marketing", "withdrawn", 100, 1),
                current("anon", "marketing", "granted", 200, 7),
                // analytics: both granted; the later one stands.
                current("known", "analytics", "granted", 300, 2),
                current("anon", "analytics", "granted", 100, 8),
                // support: only one side.
                current("anon", "support", "granted", 50, 9),
            ]
        };
        let strict = merged_current(MergeConsent::MostRestrictive, "known", rows());
        let latest = merged_current(MergeConsent::Latest, "known", rows());
        let status = |rows: &[CurrentRow], purpose: &str| {
            let row = rows.iter().find(|r| r.purpose == purpose).expect("merged");
            assert_eq!(row.subject_pk, "known");
            (row.status.clone(), row.sequence)
        };
        assert_eq!(status(&strict, "marketing"), ("withdrawn".into(), 1));
        assert_eq!(status(&latest, "marketing"), ("granted".into(), 7));
        assert_eq!(status(&strict, "analytics"), ("granted".into(), 2));
        assert_eq!(status(&strict, "support"), ("granted".into(), 9));
        assert_eq!(strict.len(), 3);
        assert_eq!(latest.len(), 3);
    }
}
