//! Signed checkpoints: the chain's size and head hash at a moment, signed with the
//! deployment's audit key (Ed25519, compact JWS). A checkpoint kept outside the database lets a
//! verifier detect truncation and rewritten history, which a chain alone cannot show.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::crypto::{JwsError, JwsSigner};
use crate::store::audit::{self as audit_store, CheckpointRow};
use crate::store::{DbConnection, StoreError};

/// The issuer named in every checkpoint's claims.
const ISSUER: &str = "custodia-audit";

/// A signed checkpoint, as `GET /v1/audit/checkpoint` answers it and `custodia audit verify
/// --checkpoint FILE` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// How many entries the chain had.
    pub size: i64,
    /// The hash of entry `size` (64 zeros for an empty chain).
    pub head_hash: String,
    /// When it was signed.
    pub time: DateTime<Utc>,
    /// The signing key's id (the `kid` of `GET /v1/audit/checkpoint-key`).
    pub key_id: String,
    /// A compact JWS (EdDSA) whose claims are `iss`, `size`, `head_hash` and `time`.
    pub signature: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    size: i64,
    head_hash: String,
    time: String,
}

/// Why a checkpoint is not to be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The signature is not by this deployment's audit key, or was altered.
    #[error("the checkpoint's signature does not verify with this deployment's audit key")]
    Signature,
    /// The signed claims differ from the checkpoint's fields.
    #[error("the checkpoint's fields differ from what was signed")]
    Mismatch,
}

fn claims_of(size: i64, head_hash: &str, time: &NaiveDateTime) -> Claims {
    Claims {
        iss: ISSUER.to_owned(),
        size,
        head_hash: head_hash.to_owned(),
        time: super::format_time(time),
    }
}

/// Signs the chain's current head and stores the checkpoint.
pub fn sign_head(conn: &mut DbConnection, signer: &JwsSigner) -> Result<Checkpoint, StoreError> {
    let (size, head_hash) = audit_store::head(conn)?;
    let signed_at = Utc::now().naive_utc().trunc_subsecs(6);
    let signature = signer.sign(&claims_of(size, &head_hash, &signed_at));
    let row = CheckpointRow {
        id: uuid::Uuid::now_v7().simple().to_string(),
        size,
        head_hash,
        signed_at,
        key_id: signer.key_id().to_owned(),
        signature,
    };
    audit_store::insert_checkpoint(conn, &row)?;
    Ok(Checkpoint::from(row))
}

impl From<CheckpointRow> for Checkpoint {
    fn from(row: CheckpointRow) -> Self {
        Checkpoint {
            size: row.size,
            head_hash: row.head_hash,
            time: row.signed_at.and_utc(),
            key_id: row.key_id,
            signature: row.signature,
        }
    }
}

/// Checks that `checkpoint` was signed by `signer`'s key and that its fields are what was
/// signed.
pub fn verify_checkpoint(
    signer: &JwsSigner,
    checkpoint: &Checkpoint,
) -> Result<(), CheckpointError> {
    let claims: Claims = signer
        .verify(&checkpoint.signature)
        .map_err(|_: JwsError| CheckpointError::Signature)?;
    let expected = claims_of(
        checkpoint.size,
        &checkpoint.head_hash,
        &checkpoint.time.naive_utc(),
    );
    if claims.iss != expected.iss
        || claims.size != expected.size
        || claims.head_hash != expected.head_hash
        || claims.time != expected.time
    {
        return Err(CheckpointError::Mismatch);
    }
    Ok(())
}
