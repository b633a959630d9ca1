//! `GET /v1/subjects/{subject_id}/export`: the Art. 15/20 bundle, streamed.
//!
//! The export is read and audited by `app::exports`; this streams its chunks as the response. A
//! failure after the first byte aborts the connection, so a client never mistakes a cut-off
//! export for a whole one (the JSON would not close; the zip would have no central directory).

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::app::exports::{self, Streaming};
use crate::audit::Actor;
use crate::export::{ExportError, Format};
use crate::interactions::subject_not_found;
use crate::rejection::Rejection;
use crate::subjects::SubjectId;

/// Options of an export.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    /// `json` (default): one JSON document. `csv`: a zip of CSV files (see `docs/api.md`).
    #[param(pattern = "^(json|csv)$")]
    pub(crate) format: Option<String>,
}

/// Parses `?format=`.
pub(crate) fn parse_format(raw: Option<&str>) -> Result<Format, Rejection> {
    match raw {
        None | Some("json") => Ok(Format::Json),
        Some("csv") => Ok(Format::CsvZip),
        Some(other) => Err(Rejection::invalid(
            "invalid_format",
            format!(
                "unknown export format `{}`: use `json` or `csv`",
                other.escape_debug()
            ),
        )),
    }
}

/// The streaming answer of an export: its chunks as they are read, broken off if the export
/// fails part-way.
pub(crate) fn respond(streaming: Streaming, format: Format) -> HttpResponse {
    let stream = futures_util::stream::unfold(streaming.chunks, |mut chunks| async move {
        chunks
            .recv()
            .await
            .map(|chunk| (chunk.map(Bytes::from), chunks))
    });
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    match format {
        Format::Json => {
            response.content_type("application/json");
        }
        Format::CsvZip => {
            response.content_type("application/zip").insert_header((
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"custodia-export.zip\"",
            ));
        }
    }
    response.streaming(stream)
}

/// Everything held about one person (Art. 15), decrypted, with the processing context from the
/// policy and the log of who read their data; `?format=csv` gives the portable form (Art. 20),
/// a zip of CSV files. Streamed from one database snapshot.
#[utoipa::path(get, operation_id = "export_export_subject", path = "/v1/subjects/{subject_id}/export", tag = "subjects",
    security(("bearer" = [])),
    params(("subject_id" = String, Path, description = "The app's id for the person"), ExportQuery),
    responses(
        (status = 200, description = "The export (JSON, or application/zip for `csv`)",
            content_type = "application/json"),
        (status = 404, description = "No such subject", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
        (status = 422, description = "Unknown format", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn export_subject(
    state: web::Data<AppState>,
    actor: Actor,
    path: web::Path<String>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let format = parse_format(query.format.as_deref())?;
    let subject_id = SubjectId::parse(&path.into_inner()).map_err(|_| subject_not_found())?;
    let streaming = exports::start(&state.services, &actor, subject_id, format, None)
        .await?
        .ok_or_else(subject_not_found)?;
    Ok(respond(streaming, format))
}

impl From<ExportError> for ApiError {
    fn from(error: ExportError) -> Self {
        match error {
            ExportError::Subject(error) => error.into(),
            ExportError::Io(error) => ApiError::Internal(anyhow::Error::new(error)),
        }
    }
}
