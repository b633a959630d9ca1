//! Paging, one way everywhere: a `limit` between 1 and the list's maximum (with its default), and
//! an opaque `cursor` this API gave (URL-safe base64 of a position each list defines). The same
//! mistake gets the same answer on every list: `400 invalid_limit`, `400 invalid_cursor`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::rejection::Rejection;

/// The page size asked for, or `default`; refused outside `1..=max`.
pub(crate) fn limit(asked: Option<i64>, default: i64, max: i64) -> Result<i64, Rejection> {
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
pub(crate) fn invalid_cursor() -> Rejection {
    Rejection::bad_request(
        "invalid_cursor",
        "the cursor is not one this service issued",
    )
}

/// The opaque form of a list's position.
pub(crate) fn encode_cursor(position: &str) -> String {
    URL_SAFE_NO_PAD.encode(position)
}

/// The position inside a cursor (what [`encode_cursor`] was given); each list then parses its
/// own form and answers [`invalid_cursor`] when it does not parse.
pub(crate) fn decode_cursor(cursor: &str) -> Result<String, Rejection> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|position| !position.is_empty() && position.len() <= 128)
        .ok_or_else(invalid_cursor)
}

/// One page of a list: its items and the cursor of the next page (`None` on the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in the list's order.
    pub items: Vec<T>,
    /// Where the next page starts, as a cursor; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from the rows of a query that asked for `limit + 1` (one more tells whether a
    /// next page exists): at most `limit` items, and the cursor of the last one's `position`
    /// when more followed.
    pub(crate) fn from_rows(
        mut rows: Vec<T>,
        limit: i64,
        position: impl Fn(&T) -> String,
    ) -> Page<T> {
        let limit = usize::try_from(limit).unwrap_or(0);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| encode_cursor(&position(last)))
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }

    /// The same page with each item changed.
    pub(crate) fn map<U>(self, change: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(change).collect(),
            next_cursor: self.next_cursor,
        }
    }
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

    #[test]
    fn a_page_holds_at_most_its_limit_and_points_past_its_last_item_only_when_more_follow() {
        let full = Page::from_rows(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(full.items, [1, 2]);
        assert_eq!(
            decode_cursor(full.next_cursor.as_deref().unwrap()).unwrap(),
            "2"
        );
        let last = Page::from_rows(vec![1, 2], 2, |n| n.to_string());
        assert_eq!((last.items, last.next_cursor), (vec![1, 2], None));
    }
}
