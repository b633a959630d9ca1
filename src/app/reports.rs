//! Consent reporting for compliance (`docs/insights.md`, "Consent reporting"): exact aggregates
//! of consent statements and objections per purpose and notice version, per day or ISO week,
//! with the opt-in rate and the share of withdrawals that came from a Global Privacy Control
//! signal. No person is read or named; the report's reading is audited.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};

use super::{audit_read, Failed, Services};
use crate::audit::{Actor, Entry};
use crate::insights::{parse_day, TimeAxis, TimeUnit};
use crate::policy::PurposeId;
use crate::rejection::Rejection;
use crate::store::reports as store;
use crate::store::StoreError;

/// The audit action of reading a consent report.
pub(crate) const ACTION_CONSENTS: &str = "reports.consents";
/// The most days one report spans.
pub(crate) const MAX_DAYS: i64 = 731;

/// Why a report was not given.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReportError {
    /// A bad query.
    #[error("refused: {}", .0.code)]
    Rejected(Rejection),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Rejection> for ReportError {
    fn from(rejection: Rejection) -> Self {
        ReportError::Rejected(rejection)
    }
}

/// A report's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bucket {
    Day,
    Week,
}

/// What is asked, as sent.
#[derive(Debug, Clone)]
pub(crate) struct ReportQuery {
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) bucket: Option<String>,
    pub(crate) purpose: Option<String>,
}

/// The counts of one period, purpose and notice version (or of the whole range: `period`
/// `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReportRow {
    pub(crate) period: Option<String>,
    pub(crate) purpose: String,
    pub(crate) notice_id: Option<String>,
    pub(crate) notice_version: Option<String>,
    pub(crate) grants: i64,
    pub(crate) withdrawals: i64,
    /// Withdrawals made by a Global Privacy Control signal (method `gpc`).
    pub(crate) gpc_withdrawals: i64,
    /// Objections (Art. 21) made then and still standing.
    pub(crate) objections: i64,
}

impl ReportRow {
    /// Grants over grants and withdrawals (`None` when there were neither).
    pub(crate) fn opt_in_rate(&self) -> Option<f64> {
        let statements = self.grants + self.withdrawals;
        (statements > 0).then(|| self.grants as f64 / statements as f64)
    }

    /// The share of withdrawals that came from a GPC signal (`None` without withdrawals).
    pub(crate) fn gpc_share(&self) -> Option<f64> {
        (self.withdrawals > 0).then(|| self.gpc_withdrawals as f64 / self.withdrawals as f64)
    }
}

/// A consent report.
#[derive(Debug, Clone)]
pub(crate) struct ConsentReport {
    pub(crate) from: NaiveDate,
    pub(crate) to: NaiveDate,
    pub(crate) bucket: Bucket,
    /// Per period, purpose and notice version, in that order.
    pub(crate) rows: Vec<ReportRow>,
    /// Per purpose over the whole range.
    pub(crate) totals: Vec<ReportRow>,
}

fn date(name: &str, text: &str) -> Result<NaiveDate, Rejection> {
    parse_day(text).ok_or_else(|| {
        Rejection::bad_request(
            "invalid_query",
            format!("`{name}` must be a date written YYYY-MM-DD"),
        )
    })
}

/// The consent report asked for, its reading audited before it is given.
pub(crate) async fn consents(
    services: &Services,
    actor: &Actor,
    query: ReportQuery,
) -> Result<ConsentReport, Failed<ReportError>> {
    let (from, to) = (
        date("from", &query.from).map_err(ReportError::from)?,
        date("to", &query.to).map_err(ReportError::from)?,
    );
    if to < from || (to - from).num_days() >= MAX_DAYS {
        return Err(ReportError::from(Rejection::bad_request(
            "invalid_query",
            format!("`to` must not be before `from`, and a report spans at most {MAX_DAYS} days"),
        ))
        .into());
    }
    let bucket = match query.bucket.as_deref() {
        None | Some("week") => Bucket::Week,
        Some("day") => Bucket::Day,
        Some(_) => {
            return Err(ReportError::from(Rejection::bad_request(
                "invalid_query",
                "`bucket` is `day` or `week`",
            ))
            .into())
        }
    };
    let purpose: Option<PurposeId> = match &query.purpose {
        None => None,
        Some(raw) => Some(
            PurposeId::parse(raw)
                .ok()
                .filter(|id| services.policy.purpose(id.as_str()).is_some())
                .ok_or_else(|| {
                    ReportError::from(Rejection::invalid(
                        "unknown_purpose",
                        format!("unknown purpose `{}`", raw.escape_debug()),
                    ))
                })?,
        ),
    };
    let start = from.and_time(chrono::NaiveTime::MIN);
    let until = (to + Days::new(1)).and_time(chrono::NaiveTime::MIN);
    let only = purpose.as_ref().map(ToString::to_string);
    let (statements, objections) = services
        .db
        .run(move |conn| {
            crate::store::export::snapshot(conn, |conn| {
                let only = only.as_deref();
                Ok::<_, StoreError>((
                    store::statements(conn, start, until, only)?,
                    store::objections(conn, start, until, only)?,
                ))
            })
        })
        .await
        .map_err(ReportError::from)?;
    let mut rows: BTreeMap<(String, String, Option<String>, Option<String>), ReportRow> =
        BTreeMap::new();
    // The period a day falls in: the day, or its ISO week (`2026-W05`), labelled as insights
    // label theirs.
    let axis = TimeAxis::new(
        match bucket {
            Bucket::Day => TimeUnit::Day,
            Bucket::Week => TimeUnit::Week,
        },
        from,
        to,
    );
    let period = |text: &str| parse_day(text).map(|day| axis.label_of(day));
    for count in statements {
        let Some(period) = period(&count.day) else {
            continue;
        };
        let row = rows
            .entry((
                period,
                count.purpose.clone(),
                count.notice_id.clone(),
                count.notice_version.clone(),
            ))
            .or_default();
        if count.status == "granted" {
            row.grants += count.count;
        } else {
            row.withdrawals += count.count;
            if count.method == "gpc" {
                row.gpc_withdrawals += count.count;
            }
        }
    }
    for count in objections {
        let Some(period) = period(&count.day) else {
            continue;
        };
        rows.entry((period, count.purpose.clone(), None, None))
            .or_default()
            .objections += count.count;
    }
    let rows: Vec<ReportRow> = rows
        .into_iter()
        .map(
            |((period, purpose, notice_id, notice_version), row)| ReportRow {
                period: Some(period),
                purpose,
                notice_id,
                notice_version,
                ..row
            },
        )
        .collect();
    let mut totals: BTreeMap<String, ReportRow> = BTreeMap::new();
    for row in &rows {
        let total = totals
            .entry(row.purpose.clone())
            .or_insert_with(|| ReportRow {
                purpose: row.purpose.clone(),
                ..ReportRow::default()
            });
        total.grants += row.grants;
        total.withdrawals += row.withdrawals;
        total.gpc_withdrawals += row.gpc_withdrawals;
        total.objections += row.objections;
    }
    let mut entry = Entry::new(actor, ACTION_CONSENTS)
        .target(format!("consents:{from}..{to}"))
        .records(rows.len());
    if let Some(purpose) = &purpose {
        entry = entry.purpose(&services.policy, purpose);
    }
    audit_read(services, vec![entry]).await?;
    Ok(ConsentReport {
        from,
        to,
        bucket,
        rows,
        totals: totals.into_values().collect(),
    })
}
