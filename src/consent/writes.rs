//! Recording consent statements as the API receives them: concurrent calls are stored
//! together (`crate::coalesce`: one transaction, one audit append for the group), and each
//! statement is answered with its signed receipt.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{record_all, ConsentJob, ConsentOutcome, ConsentStringRef, NoticeRef, Recorded};
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
    /// A compact JWS (EdDSA) over the statement, verifiable with the receipt key (none when
    /// the call recorded no statement of its own, only a GPC signal's withdrawals).
    pub receipt: Option<String>,
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
        self.record_call(vec![job])
            .await?
            .pop()
            .ok_or_else(no_outcome)
    }

    /// Records the statements of one call together (one transaction: all of them or none, the
    /// first job's GPC signal applied first) and signs each one's receipt.
    pub(crate) async fn record_call(
        &self,
        jobs: Vec<ConsentJob>,
    ) -> Result<Vec<Receipted>, SubjectError> {
        let subjects: Vec<_> = jobs.iter().map(|job| job.subject_id.clone()).collect();
        let outcomes = self.queue.submit(jobs).await?;
        if outcomes.len() != subjects.len() {
            return Err(no_outcome());
        }
        let mut receipted = Vec::with_capacity(outcomes.len());
        for (outcome, subject_id) in outcomes.into_iter().zip(subjects) {
            let outcome = outcome?;
            let receipt = outcome.recorded.as_ref().map(|recorded| {
                receipt(&self.receipts, &self.policy, subject_id.as_str(), recorded)
            });
            receipted.push(Receipted { outcome, receipt });
        }
        Ok(receipted)
    }
}

fn no_outcome() -> SubjectError {
    SubjectError::Store(StoreError::GroupCommit(
        "a consent call got no outcome".into(),
    ))
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
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    consent_strings: &'a [ConsentStringRef],
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
        consent_strings: &recorded.consent_strings,
    })
}
