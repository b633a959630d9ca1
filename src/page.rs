//! Paging, one way everywhere: a `limit` between 1 and the list's maximum (with its default), and
//! an opaque `cursor` this API gave (URL-safe base64 of a position each list defines). The same
//! mistake gets the same answer on every list: `400 invalid_limit`, `400 invalid_cursor`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::rejection::Rejection;

/// The page size asked for, or `default`; refused outside `1..=max`.
pub fn limit(asked: Option<i64>, default: i64, max: i64) -> Result<i64, Rejection> {
    let limit = asked.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(Rejection::bad_request(
            "invalid_limit",
            format!("`limit` must be between 1 and {max}"),
        ))
    }
}

/// The refusal of a cursor this API did not give.
pub fn invalid_cursor() -> Rejection {
    Rejection::bad_request(
        "invalid_cursor",
        "the cursor is not one this service issued",
    )
}

/// The opaque form of a list's position.
pub fn encode_cursor(position: &str) -> String {
    URL_SAFE_NO_PAD.encode(position)
}

/// The position inside a cursor (what [`encode_cursor`] was given); each list then parses its
/// own form and answers [`invalid_cursor`] when it does not parse.
pub fn decode_cursor(cursor: &str) -> Result<String, Rejection> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|position| !position.is_empty() && position.len() <= 128)
        .ok_or_else(invalid_cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cursors_are_refused_alike_everywhere() {
        assert_eq!(limit(None, 50, 500), Ok(50));
        assert_eq!(limit(Some(500), 50, 500), Ok(500));
        for bad in [0, -1, 501] {
            assert_eq!(limit(Some(bad), 50, 500).unwrap_err().code, "invalid_limit");
        }
        assert_eq!(decode_cursor(&encode_cursor("seq:7")).unwrap(), "seq:7");
        for bad in ["xyz!", "", "_w"] {
            assert_eq!(decode_cursor(bad).unwrap_err().code, "invalid_cursor");
        }
    }
}
