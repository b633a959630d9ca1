//! The segments capability as the API offers it: previews, saved segments and their members.
//! Each function takes parsed input, decides with the policy engine, and owns its
//! transaction and its audit entries (reads included: a read answers only once its entry is
//! durable).

use std::time::Duration;

use chrono::{NaiveDateTime, SubsecRound};
use serde_json::Value;

use super::insights::{self, InsightError};
use super::Services;
use crate::audit::{Actor, Entry, Unrecorded};
use crate::insights::mechanism;
use crate::insights::{segment_size_sha256, Bound};
use crate::page::Page;
use crate::policy::{Action, PurposeId};
use crate::policy::{SegmentCounts, EPSILON_UNITS};
use crate::rejection::Rejection;
use crate::segments::filter::Filter;
use crate::segments::{
    answer, authorize, count, Answer, ACTION_CREATE, ACTION_EXPORT, ACTION_LIST, ACTION_PREVIEW,
};
use crate::store::segments::{self as segment_store, SegmentRow};
use crate::store::StoreError;
use crate::subjects::{reveal_subject_id, SubjectError};

/// How long a population query waits for its turn before the caller is told to come back.
pub(crate) const POPULATION_QUEUE_WAIT: Duration = Duration::from_secs(15);
/// The most members one page lists.
pub(crate) const MAX_MEMBERS_PAGE: i64 = 1_000;

/// Why a segments call did not answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SegmentError {
    /// Refused as asked (a purpose not permitted, a bad filter or name).
    #[error("refused: {}", .0.code)]
    Rejected(Rejection),
    /// No segment has this id.
    #[error("no segment has this id")]
    NotFound,
    /// Too many population queries are running; try again shortly.
    #[error("too many segment queries are running")]
    Busy,
    /// The segment has fewer people than the policy's `min_size`: its members are not given
    /// (the refusal is audited).
    #[error("the segment is smaller than min_size")]
    TooSmall {
        /// The policy's k.
        min_size: u32,
    },
    /// The audit entry of a read could not be written: nothing is answered.
    #[error(transparent)]
    Unrecorded(#[from] Unrecorded),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A person's data could not be read.
    #[error(transparent)]
    Subject(#[from] SubjectError),
    /// A stored filter is not JSON.
    #[error("a stored filter does not parse")]
    Corrupt,
    /// A noisy size could not be drawn or recorded.
    #[error("a noisy size failed: {0}")]
    Noise(String),
}

impl From<Rejection> for SegmentError {
    fn from(rejection: Rejection) -> Self {
        SegmentError::Rejected(rejection)
    }
}

/// A saved segment.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    /// Its id.
    pub(crate) id: String,
    /// Its name.
    pub(crate) name: String,
    /// The purpose it is evaluated for.
    pub(crate) purpose: String,
    /// The filter, in canonical form.
    pub(crate) filter: Value,
    /// When it was saved.
    pub(crate) created_at: NaiveDateTime,
}

impl From<&SegmentRow> for Segment {
    fn from(row: &SegmentRow) -> Segment {
        Segment {
            id: row.id.clone(),
            name: row.name.clone(),
            purpose: row.purpose.clone(),
            filter: serde_json::from_str(&row.filter).unwrap_or(Value::Null),
            created_at: row.created_at,
        }
    }
}

/// A segment to save, as asked.
#[derive(Debug, Clone)]
pub(crate) struct NewSegment {
    /// A name for people (1 to 200 characters once trimmed).
    pub(crate) name: String,
    /// The purpose it is evaluated for.
    pub(crate) purpose: String,
    /// The filter tree, as sent.
    pub(crate) filter: Value,
}

/// A turn among the population queries of this process (segment counts and member pages are
/// the heaviest reads: two at once, the rest wait up to [`POPULATION_QUEUE_WAIT`]).
pub(crate) async fn population_turn(
    services: &Services,
) -> Result<tokio::sync::OwnedSemaphorePermit, SegmentError> {
    tokio::time::timeout(
        POPULATION_QUEUE_WAIT,
        services.population_queries.clone().acquire_owned(),
    )
    .await
    .map_err(|_| SegmentError::Busy)?
    .map_err(|_| SegmentError::Busy)
}

/// Counts the people matching `filter` for `purpose` (an authorized purpose), in its turn among
/// the population queries.
async fn count_in_turn(
    services: &Services,
    purpose: &PurposeId,
    filter: &Filter,
) -> Result<crate::segments::Count, SegmentError> {
    let (policy, purpose, filter) = (services.policy.clone(), purpose.clone(), filter.clone());
    let index = services.population_index.clone();
    let turn = population_turn(services).await?;
    let counted = services
        .db
        .run(move |conn| {
            let declared = policy
                .purpose(purpose.as_str())
                .expect("an authorized purpose is declared");
            count(conn, Some(&index), &policy, declared, &filter)
        })
        .await?;
    drop(turn);
    Ok(counted)
}

/// Counts the people matching `filter` for `purpose`, then answers under suppression and the
/// differencing guard (audited with the answer, in the guard's transaction).
async fn count_and_answer(
    services: &Services,
    actor: &Actor,
    purpose: PurposeId,
    filter: Filter,
    target: Option<String>,
) -> Result<Answer, SegmentError> {
    if services.policy.segment_limits().counts == SegmentCounts::Noisy {
        return noisy_count(services, actor, purpose, filter, target).await;
    }
    let count = count_in_turn(services, &purpose, &filter).await?;
    let (policy, actor) = (services.policy.clone(), actor.clone());
    Ok(services
        .db
        .run_write(move |conn| {
            let declared = policy
                .purpose(purpose.as_str())
                .expect("an authorized purpose is declared");
            answer(
                conn,
                &policy,
                &actor,
                declared,
                &filter,
                &count,
                ACTION_PREVIEW,
                target,
            )
        })
        .await?)
}

/// The noisy size of `filter` for `purpose` (`docs/segments.md`, "Noisy counts"): the exact count
/// plus discrete Laplace noise of sensitivity one, charged to the purpose's insights budget; the
/// same filter asked again that day gets the same size, free. No `min_size` and no differencing
/// guard: the budget bounds what all answers together reveal.
async fn noisy_count(
    services: &Services,
    actor: &Actor,
    purpose: PurposeId,
    filter: Filter,
    target: Option<String>,
) -> Result<Answer, SegmentError> {
    let policy = services.policy.clone();
    let chain = insights::chain_of(&policy, &purpose)?;
    let epsilon_micros = policy.segment_limits().epsilon_micros;
    let ticket = insights::Ticket {
        purpose: purpose.clone(),
        action: ACTION_PREVIEW,
        question_sha256: segment_size_sha256(&purpose, &filter, epsilon_micros),
        filter_sha256: filter.sha256(),
        target_prefix: target.map(|id| format!("segment:{id}")),
        chain,
        epsilon_micros: epsilon_micros as i64,
        delta_picos: 0,
    };
    let compute = || async {
        let size = match count_in_turn(services, &purpose, &filter).await {
            Ok(counted) => counted.size,
            Err(SegmentError::Store(error)) => return Err(InsightError::Store(error)),
            Err(_) => return Err(InsightError::Busy),
        };
        let (values, spent) = mechanism::release_all(
            &[size],
            Bound {
                cells: 1,
                per_cell: 1,
            },
            epsilon_micros as f64 / EPSILON_UNITS,
        )?;
        Ok(insights::Released {
            cells: values
                .into_iter()
                .map(|noisy| insights::CellAnswer {
                    key: Default::default(),
                    value: noisy.value,
                    interval: noisy.interval,
                })
                .collect(),
            threshold: None,
            noise_scale: spent.scale,
        })
    };
    match insights::release_once(services, actor, ticket, compute).await {
        Ok(release) => {
            let cell = &release.released.cells[0];
            Ok(Answer::Noisy {
                size: cell.value,
                interval: cell.interval,
                epsilon_spent: release.epsilon_spent,
            })
        }
        Err(InsightError::Exhausted { retry_after, .. }) => {
            Ok(Answer::BudgetExhausted { retry_after })
        }
        Err(InsightError::Rejected(rejection)) => Err(rejection.into()),
        Err(InsightError::Busy) => Err(SegmentError::Busy),
        Err(InsightError::Store(error)) => Err(error.into()),
        Err(other) => Err(SegmentError::Noise(other.to_string())),
    }
}

/// How many people with a legal basis for `purpose` match `filter` (rule 1 for the role first).
pub(crate) async fn preview(
    services: &Services,
    actor: &Actor,
    role: &str,
    purpose: &str,
    filter: &Value,
) -> Result<Answer, SegmentError> {
    let declared = authorize(&services.policy, role, Action::SegmentsQuery, purpose)?;
    let filter = Filter::parse(&services.policy, declared, filter)?;
    count_and_answer(services, actor, declared.id.clone(), filter, None).await
}

/// Saves a segment (audited in its transaction); it is evaluated whenever it is read.
pub(crate) async fn create(
    services: &Services,
    actor: &Actor,
    role: &str,
    new: NewSegment,
) -> Result<Segment, SegmentError> {
    let name = new.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(
            Rejection::invalid("invalid_name", "a segment's name has 1 to 200 characters").into(),
        );
    }
    let policy = services.policy.clone();
    let declared = authorize(&policy, role, Action::SegmentsQuery, &new.purpose)?;
    let filter = Filter::parse(&policy, declared, &new.filter)?;
    let row = SegmentRow {
        id: uuid::Uuid::now_v7().to_string(),
        name,
        purpose: declared.id.to_string(),
        filter: filter.canonical(),
        created_by: actor.key_id.clone(),
        created_at: services.clock.now_naive(),
    };
    let (purpose, saved, actor) = (declared.id.clone(), row.clone(), actor.clone());
    services
        .db
        .run_write(move |conn| {
            crate::store::write_transaction(conn, |conn| {
                segment_store::insert_segment(conn, &saved)?;
                let entry = Entry::new(&actor, ACTION_CREATE)
                    .purpose(&policy, &purpose)
                    .target(saved.id.clone());
                crate::audit::append(conn, policy.sha256(), vec![entry])
            })
        })
        .await?;
    Ok(Segment::from(&row))
}

/// The saved segments for the purposes the role may query, newest first, after `before` (a
/// segment id from the previous page's cursor).
pub(crate) async fn list(
    services: &Services,
    actor: &Actor,
    role: &str,
    limit: i64,
    before: Option<String>,
) -> Result<Page<Segment>, SegmentError> {
    let policy = &services.policy;
    let purposes: Vec<String> = policy
        .purposes()
        .filter(|purpose| {
            authorize(policy, role, Action::SegmentsQuery, purpose.id.as_str()).is_ok()
        })
        .map(|purpose| purpose.id.to_string())
        .collect();
    let rows = services
        .db
        .run(move |conn| {
            segment_store::list_segments(conn, &purposes, before.as_deref(), limit + 1)
        })
        .await?;
    let page = Page::from_rows(rows, limit, |row| row.id.clone());
    let entry = Entry::new(actor, ACTION_LIST).records(page.items.len());
    services.read_audit.record(vec![entry]).await?;
    Ok(page.map(|row| Segment::from(&row)))
}

/// A saved segment the role may use with `action`, with its filter parsed under the policy
/// now (a filter saved under an earlier policy that no longer holds is refused, never
/// evaluated loosely).
async fn load(
    services: &Services,
    role: &str,
    action: Action,
    raw_id: &str,
) -> Result<(SegmentRow, Filter), SegmentError> {
    let id = uuid::Uuid::parse_str(raw_id)
        .map_err(|_| SegmentError::NotFound)?
        .to_string();
    let row = services
        .db
        .run(move |conn| segment_store::find_segment(conn, &id))
        .await?
        .ok_or(SegmentError::NotFound)?;
    let declared = authorize(&services.policy, role, action, &row.purpose)?;
    let stored: Value = serde_json::from_str(&row.filter).map_err(|_| SegmentError::Corrupt)?;
    let filter = Filter::parse(&services.policy, declared, &stored)?;
    Ok((row, filter))
}

/// A saved segment with its size now (under suppression and the differencing guard).
pub(crate) async fn show(
    services: &Services,
    actor: &Actor,
    role: &str,
    id: &str,
) -> Result<(Segment, Answer), SegmentError> {
    let (row, filter) = load(services, role, Action::SegmentsQuery, id).await?;
    let purpose = PurposeId::parse(&row.purpose).map_err(|_| SegmentError::Corrupt)?;
    let answer = count_and_answer(services, actor, purpose, filter, Some(row.id.clone())).await?;
    Ok((Segment::from(&row), answer))
}

/// A page of a saved segment's members (their subject ids), evaluated now: only people with a
/// legal basis for its purpose; refused (and audited as refused) while the segment is smaller
/// than `min_size`. The page and the size it is checked against are read in one snapshot, and
/// the export is audited with every member's pseudonym before it is answered.
pub(crate) async fn members(
    services: &Services,
    actor: &Actor,
    role: &str,
    id: &str,
    limit: i64,
    after: Option<String>,
) -> Result<Page<crate::subjects::SubjectId>, SegmentError> {
    let (row, filter) = load(services, role, Action::SegmentsExport, id).await?;
    let purpose = PurposeId::parse(&row.purpose).map_err(|_| SegmentError::Corrupt)?;
    let (policy, vault) = (services.policy.clone(), services.vault.clone());
    let (counted_purpose, now) = (
        purpose.clone(),
        services.clock.now().naive_utc().trunc_subsecs(6),
    );
    let turn = population_turn(services).await?;
    let (size, members) = services
        .db
        .run(move |conn| {
            crate::store::export::snapshot(conn, |conn| {
                let declared = policy
                    .purpose(counted_purpose.as_str())
                    .expect("an authorized purpose is declared");
                // In the export's snapshot, with the page below: from the database.
                let size = count(conn, None, &policy, declared, &filter)?.size;
                if size < i64::from(policy.segment_limits().min_size) {
                    return Ok::<_, SegmentError>((size, Vec::new()));
                }
                let rule = policy.population_rule(declared);
                let pks = segment_store::members_page(
                    conn,
                    &rule,
                    Some(&filter),
                    now,
                    after.as_deref(),
                    limit + 1,
                )?;
                let mut members = Vec::with_capacity(pks.len());
                for pk in pks {
                    let (subject_id, pseudonym) = reveal_subject_id(conn, &vault, &pk)?;
                    members.push((pk, subject_id, pseudonym));
                }
                Ok((size, members))
            })
        })
        .await?;
    drop(turn);
    let min_size = services.policy.segment_limits().min_size;
    let mut entry = Entry::new(actor, ACTION_EXPORT)
        .purpose(&services.policy, &purpose)
        .target(row.id.clone());
    if size < i64::from(min_size) {
        services
            .read_audit
            .record(vec![entry.denied("segment_too_small")])
            .await?;
        return Err(SegmentError::TooSmall { min_size });
    }
    let page = Page::from_rows(members, limit, |(pk, _, _)| pk.clone());
    for (_, _, pseudonym) in &page.items {
        entry = entry.pseudonym(Some(pseudonym.clone()));
    }
    services
        .read_audit
        .record(vec![entry.records(page.items.len())])
        .await?;
    Ok(page.map(|(_, subject_id, _)| subject_id))
}
