//! Recording consent statements as the API receives them: concurrent calls are stored
//! together (`crate::coalesce`: one transaction, one audit append for the group), and each
//! statement is answered with its signed receipt.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{record_all, ConsentJob, ConsentOutcome, NoticeRef, Recorded};
use crate::coalesce::Coalescer;
use crate::crypto::JwsSigner;
use crate::policy::Policy;
use crate::store::{Database, StoreError};
use crate::subjects::SubjectError;
use crate::vault::Vault;

/// The most consent statements recorded in one transaction.
const MAX_GROUP: usize = 256;

/// A recorded statement with its receipt.
#[derive(Debug, Clone)]
pub struct Receipted {
    /// What the call did.
    pub outcome: ConsentOutcome,
    /// A compact JWS (EdDSA) over the statement, verifiable with the receipt key.
    pub receipt: String,
}

/// Where consent statements are recorded.
pub struct ConsentWrites {
    queue: Coalescer<ConsentJob, Result<ConsentOutcome, SubjectError>, SubjectError>,
    receipts: Arc<JwsSigner>,
    policy: Arc<Policy>,
}

impl ConsentWrites {
    /// Starts the queue's task on the current runtime.
    pub(crate) fn start(
        db: Database,
        vault: Arc<Vault>,
        policy: Arc<Policy>,
        receipts: Arc<JwsSigner>,
    ) -> ConsentWrites {
        let (for_queue, queue_policy) = (db, policy.clone());
        let queue = Coalescer::start(MAX_GROUP, move |jobs: Vec<ConsentJob>| {
            let (db, vault, policy) = (for_queue.clone(), vault.clone(), queue_policy.clone());
            async move {
                db.run_write(move |conn| record_all(conn, &vault, &policy, &jobs))
                    .await
            }
        });
        ConsentWrites {
            queue,
            receipts,
            policy,
        }
    }

    /// Records one consent call (its GPC signal first, if any) and signs its receipt.
    pub(crate) async fn record(&self, job: ConsentJob) -> Result<Receipted, SubjectError> {
        let subject_id = job.subject_id.clone();
        let outcome = self.queue.submit(vec![job]).await?.pop().ok_or_else(|| {
            SubjectError::Store(StoreError::GroupCommit(
                "a consent call got no outcome".into(),
            ))
        })??;
        let receipt = receipt(
            &self.receipts,
            &self.policy,
            subject_id.as_str(),
            &outcome.recorded,
        );
        Ok(Receipted { outcome, receipt })
    }
}

#[derive(Serialize)]
struct ReceiptClaims<'a> {
    iss: &'static str,
    sub: &'a str,
    jti: &'a str,
    iat: i64,
    purpose: &'a str,
    status: &'a str,
    notice: Option<&'a NoticeRef>,
    source: &'a str,
    method: &'a str,
    recorded_at: DateTime<Utc>,
    policy_sha256: &'a str,
}

/// The signed receipt of a statement about `subject_id`: what was recorded, when, under
/// which notice and policy.
pub fn receipt(
    signer: &JwsSigner,
    policy: &Policy,
    subject_id: &str,
    recorded: &Recorded,
) -> String {
    let recorded_at = recorded.recorded_at.and_utc();
    signer.sign(&ReceiptClaims {
        iss: "custodia",
        sub: subject_id,
        jti: &recorded.id,
        iat: recorded_at.timestamp(),
        purpose: &recorded.purpose,
        status: &recorded.status,
        notice: recorded.notice.as_ref(),
        source: &recorded.source,
        method: &recorded.method,
        recorded_at,
        policy_sha256: policy.sha256(),
    })
}
