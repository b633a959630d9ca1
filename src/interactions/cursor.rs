//! Opaque page cursors: the position after the last row returned, base64url-encoded.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::DateTime;

use crate::rejection::Rejection;
use crate::store::interactions::PagePosition;

/// Where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(PagePosition);

impl Cursor {
    /// A cursor after this position.
    pub fn new(position: PagePosition) -> Cursor {
        Cursor(position)
    }

    /// The position it points after.
    pub fn position(&self) -> PagePosition {
        self.0.clone()
    }

    /// The opaque text form.
    pub fn encode(&self) -> String {
        let micros = self.0.occurred_at.and_utc().timestamp_micros();
        URL_SAFE_NO_PAD.encode(format!("{micros}:{}", self.0.id))
    }

    /// Reads a cursor given back by a caller.
    pub fn decode(text: &str) -> Result<Cursor, Rejection> {
        let invalid = || {
            Rejection::bad_request(
                "invalid_cursor",
                "the cursor is not one this service issued",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
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
