//! Erasure (Art. 17) by crypto-shredding: the subject's data key is destroyed first, then every
//! row about the person, in one transaction with its audit entry; a tombstone without any
//! identifier and a signed receipt prove it.

use chrono::{NaiveDateTime, SubsecRound, Utc};
use serde::Serialize;

use super::{subject_index, SubjectError, SubjectId};
use crate::audit::{self, Actor, Entry};
use crate::crypto::JwsSigner;
use crate::policy::Policy;
use crate::store::erasure::{self as erasure_store, ErasedCounts, ErasureRow};
use crate::store::subjects as subject_store;
use crate::store::{write_transaction, DbConnection};
use crate::vault::Vault;

/// The audit action of an erasure.
pub const ACTION_ERASE: &str = "subjects.erase";

/// What an erasure did, with its signed receipt.
#[derive(Debug, Clone)]
pub struct Erasure {
    /// The erasure's id.
    pub id: String,
    /// When.
    pub erased_at: NaiveDateTime,
    /// What was deleted, by kind.
    pub counts: ErasedCounts,
    /// A compact JWS (EdDSA, the receipt key) over [`ErasureClaims`].
    pub receipt: String,
    /// The internal id the subject had (for the caller to drop caches; never shown).
    pub subject_pk: String,
}

/// The claims of an erasure receipt.
#[derive(Debug, Serialize)]
pub struct ErasureClaims<'a> {
    /// `custodia`.
    pub iss: &'static str,
    /// `erasure`.
    pub typ: &'static str,
    /// The erasure's id.
    pub jti: &'a str,
    /// The app's subject_id of the person erased.
    pub sub: &'a str,
    /// Seconds since the epoch.
    pub iat: i64,
    /// When, RFC 3339.
    pub erased_at: String,
    /// What was deleted, by kind.
    pub erased: &'a ErasedCounts,
    /// The pseudonym the person had in the audit log, which names this erasure too.
    pub audit_pseudonym: &'a str,
    /// The policy in force.
    pub policy_sha256: &'a str,
}

/// Erases a subject; `None` when no subject has this id.
pub fn erase(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    signer: &JwsSigner,
    subject_id: &SubjectId,
    actor: &Actor,
) -> Result<Option<Erasure>, SubjectError> {
    let index = subject_index(vault, subject_id);
    write_transaction(conn, |conn| {
        let Some(row) = subject_store::find_by_index(conn, &index)? else {
            return Ok(None);
        };
        // The pseudonym comes from the data key, which is about to be destroyed.
        let pseudonym = vault.data_key_for(conn, &row.id)?.pseudonym().to_owned();
        let counts = erasure_store::delete_subject(conn, &row.id)?;
        let id = uuid::Uuid::now_v7().simple().to_string();
        let erased_at = Utc::now().naive_utc().trunc_subsecs(6);
        let receipt = signer.sign(&ErasureClaims {
            iss: "custodia",
            typ: "erasure",
            jti: &id,
            sub: subject_id.as_str(),
            iat: erased_at.and_utc().timestamp(),
            erased_at: audit::format_time(&erased_at),
            erased: &counts,
            audit_pseudonym: &pseudonym,
            policy_sha256: policy.sha256(),
        });
        let receipt_sha256 = hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            receipt.as_bytes(),
        ));
        erasure_store::insert_tombstone(
            conn,
            &ErasureRow {
                id: id.clone(),
                pseudonym: pseudonym.clone(),
                erased_at,
                erased_by: actor.key_id.clone(),
                counts: serde_json::to_string(&counts).expect("counts encode"),
                receipt_sha256,
            },
        )?;
        let mut entry = Entry::new(actor, ACTION_ERASE)
            .pseudonym(Some(pseudonym))
            .target(id.clone())
            .records(counts.total());
        for (category, count) in [
            ("identifiers", counts.identifiers),
            ("traits", counts.traits),
            ("interactions", counts.interactions),
            ("consent", counts.consent_records + counts.objections),
        ] {
            if count > 0 {
                entry.add_category(category);
            }
        }
        audit::append(conn, policy.sha256(), vec![entry])?;
        Ok(Some(Erasure {
            id,
            erased_at,
            counts,
            receipt,
            subject_pk: row.id,
        }))
    })
}
