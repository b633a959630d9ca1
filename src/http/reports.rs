//! `/v1/reports/consents`: consent reporting for compliance, in JSON or CSV.

use actix_web::{http::header, web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::app::reports::{self, Bucket, ConsentReport, ReportQuery, ReportRow};
use crate::audit::Actor;

/// What to report.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsentReportQuery {
    /// The first day (`YYYY-MM-DD`, UTC).
    pub(crate) from: String,
    /// The last day (included; at most 731 days after `from`).
    pub(crate) to: String,
    /// `week` (ISO weeks, the default) or `day`.
    pub(crate) bucket: Option<String>,
    /// Only this purpose.
    pub(crate) purpose: Option<String>,
    /// `json` (the default) or `csv`.
    pub(crate) format: Option<String>,
}

/// One row of a consent report.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ReportRowBody {
    /// The day or ISO week (`2026-W05`); absent in totals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) period: Option<String>,
    /// The purpose.
    pub(crate) purpose: String,
    /// The notice the statements named (`null` for withdrawals without one, GPC signals and
    /// objections).
    pub(crate) notice_id: Option<String>,
    /// Its version.
    pub(crate) notice_version: Option<String>,
    /// Grants.
    pub(crate) grants: i64,
    /// Withdrawals.
    pub(crate) withdrawals: i64,
    /// Withdrawals by a Global Privacy Control signal.
    pub(crate) gpc_withdrawals: i64,
    /// Objections (Art. 21) made in the period and still standing.
    pub(crate) objections: i64,
    /// Grants over grants and withdrawals (`null` without either).
    pub(crate) opt_in_rate: Option<f64>,
    /// GPC withdrawals over withdrawals (`null` without withdrawals).
    pub(crate) gpc_share: Option<f64>,
}

/// A consent report.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ConsentReportBody {
    /// The first day.
    pub(crate) from: String,
    /// The last day.
    pub(crate) to: String,
    /// `day` or `week`.
    pub(crate) bucket: String,
    /// Per period, purpose and notice version (periods with nothing are absent).
    pub(crate) rows: Vec<ReportRowBody>,
    /// Per purpose over the whole range.
    pub(crate) totals: Vec<ReportRowBody>,
}

fn row_body(row: ReportRow) -> ReportRowBody {
    ReportRowBody {
        opt_in_rate: row.opt_in_rate(),
        gpc_share: row.gpc_share(),
        period: row.period,
        purpose: row.purpose,
        notice_id: row.notice_id,
        notice_version: row.notice_version,
        grants: row.grants,
        withdrawals: row.withdrawals,
        gpc_withdrawals: row.gpc_withdrawals,
        objections: row.objections,
    }
}

fn csv(report: &ConsentReport) -> Result<String, ApiError> {
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    let rate = |value: Option<f64>| value.map(|v| format!("{v:.4}")).unwrap_or_default();
    let write = |writer: &mut ::csv::Writer<Vec<u8>>, record: &[String]| {
        writer
            .write_record(record)
            .map_err(|error| ApiError::Internal(error.into()))
    };
    write(
        &mut writer,
        &[
            "period",
            "purpose",
            "notice_id",
            "notice_version",
            "grants",
            "withdrawals",
            "gpc_withdrawals",
            "objections",
            "opt_in_rate",
            "gpc_share",
        ]
        .map(String::from),
    )?;
    for row in &report.rows {
        write(
            &mut writer,
            &[
                row.period.clone().unwrap_or_default(),
                row.purpose.clone(),
                row.notice_id.clone().unwrap_or_default(),
                row.notice_version.clone().unwrap_or_default(),
                row.grants.to_string(),
                row.withdrawals.to_string(),
                row.gpc_withdrawals.to_string(),
                row.objections.to_string(),
                rate(row.opt_in_rate()),
                rate(row.gpc_share()),
            ],
        )?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|error| ApiError::Internal(anyhow::anyhow!(error.to_string())))?;
    String::from_utf8(bytes).map_err(|error| ApiError::Internal(error.into()))
}

/// Consent statements and objections per purpose and notice version, per day or week, with the
/// opt-in rate and the share of GPC withdrawals: exact aggregates, no person.
#[utoipa::path(get, operation_id = "reports_consents", path = "/v1/reports/consents", tag = "reports", security(("bearer" = [])),
    params(ConsentReportQuery),
    responses(
        (status = 200, description = "The report (JSON, or CSV with `format=csv`)",
            content((ConsentReportBody = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A bad query (naming what)",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Unknown purpose",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn consents(
    state: web::Data<AppState>,
    actor: Actor,
    query: web::Query<ConsentReportQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let csv_wanted = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "`format` is `json` or `csv`",
            ))
        }
    };
    let report = reports::consents(
        &state.services,
        &actor,
        ReportQuery {
            from: query.from,
            to: query.to,
            bucket: query.bucket,
            purpose: query.purpose,
        },
    )
    .await?;
    if csv_wanted {
        let body = csv(&report)?;
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"consents-{}-{}.csv\"",
                    report.from, report.to
                ),
            ))
            .body(body));
    }
    Ok(HttpResponse::Ok().json(ConsentReportBody {
        from: report.from.to_string(),
        to: report.to.to_string(),
        bucket: match report.bucket {
            Bucket::Day => "day",
            Bucket::Week => "week",
        }
        .to_owned(),
        rows: report.rows.into_iter().map(row_body).collect(),
        totals: report.totals.into_iter().map(row_body).collect(),
    }))
}
