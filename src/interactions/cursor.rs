//! Opaque page cursors: the position after the last row returned, base64url-encoded.

use chrono::DateTime;

use crate::page::{decode_cursor, invalid_cursor};
use crate::rejection::Rejection;
use crate::store::interactions::PagePosition;

/// Where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(PagePosition);

impl Cursor {
    /// The position it points after.
    pub(crate) fn position(&self) -> PagePosition {
        self.0.clone()
    }

    /// The position of a page's last row, as its cursor holds it (`micros:id`).
    pub(crate) fn position_text(position: &PagePosition) -> String {
        let micros = position.occurred_at.and_utc().timestamp_micros();
        format!("{micros}:{}", position.id)
    }

    /// Reads a cursor given back by a caller.
    pub(crate) fn decode(text: &str) -> Result<Cursor, Rejection> {
        let invalid = invalid_cursor;
        let text = decode_cursor(text)?;
        let (micros, id) = text.split_once(':').ok_or_else(invalid)?;
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        let occurred_at = DateTime::from_timestamp_micros(micros)
            .ok_or_else(invalid)?
            .naive_utc();
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(invalid());
        }
        Ok(Cursor(PagePosition {
            occurred_at,
            id: id.to_owned(),
        }))
    }
}
