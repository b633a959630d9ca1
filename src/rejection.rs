//! Why the domain refused a request, in a form the HTTP boundary maps to a problem: a kind
//! (which decides the status), a stable code and a detail that never repeats a value.

/// A failure of what the service stands on (the database): either it is away for now — the
/// caller should try again (503) — or something is broken (500, logged). Domain errors carry
/// such failures, and the HTTP boundary maps them by this, without knowing their type.
pub trait Outage: std::error::Error + Send + Sync + 'static {
    /// Whether the failure is an outage (unreachable, saturated) rather than a fault.
    fn is_outage(&self) -> bool;
}

/// What kind of refusal this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// Malformed input (400).
    BadRequest,
    /// Well-formed input that breaks a rule (422).
    Invalid,
    /// The policy denies it (403).
    Forbidden,
    /// The subject or record does not exist (404).
    NotFound,
}

/// A refusal with a stable code and a detail written for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Decides the HTTP status.
    pub kind: RejectionKind,
    /// The stable code.
    pub code: &'static str,
    /// What is wrong, naming fields but never repeating values.
    pub detail: String,
}

impl Rejection {
    /// A 400 refusal.
    pub(crate) fn bad_request(code: &'static str, detail: impl Into<String>) -> Rejection {
        Rejection {
            kind: RejectionKind::BadRequest,
            code,
            detail: detail.into(),
        }
    }

    /// A 422 refusal.
    pub(crate) fn invalid(code: &'static str, detail: impl Into<String>) -> Rejection {
        Rejection {
            kind: RejectionKind::Invalid,
            code,
            detail: detail.into(),
        }
    }

    /// A 403 refusal.
    pub(crate) fn forbidden(code: &'static str, detail: impl Into<String>) -> Rejection {
        Rejection {
            kind: RejectionKind::Forbidden,
            code,
            detail: detail.into(),
        }
    }

    /// A 404 refusal.
    pub(crate) fn not_found(code: &'static str, detail: impl Into<String>) -> Rejection {
        Rejection {
            kind: RejectionKind::NotFound,
            code,
            detail: detail.into(),
        }
    }
}

/// Rewrites a serde error message so that it names fields and types but never repeats a value
/// the caller sent (which might be personal data).
pub(crate) fn describe_serde_message(message: &str) -> String {
    // serde_json appends " at line L column C"; the caller gets those separately.
    let message = message
        .rsplit_once(" at line ")
        .map_or(message, |(head, _)| head);
    let redacted = |prefix: &str| -> Option<String> {
        let rest = message.strip_prefix(prefix)?;
        let (unexpected, expected) = rest.split_once(", expected ")?;
        let kind = unexpected
            .find(['"', '`', '\''])
            .map_or(unexpected, |index| &unexpected[..index])
            .trim();
        Some(format!("{prefix}{kind}, expected {expected}"))
    };
    if message.starts_with("unknown field")
        || message.starts_with("missing field")
        || message.starts_with("duplicate field")
        || message.starts_with("invalid length")
    {
        return message.to_owned();
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let expected = rest
            .split_once(", expected ")
            .map_or("a known value", |(_, expected)| expected);
        return format!("unknown value, expected {expected}");
    }
    redacted("invalid type: ")
        .or_else(|| redacted("invalid value: "))
        .unwrap_or_else(|| "the body does not have the expected shape".to_owned())
}

#[cfg(test)]
mod tests {
    use super::describe_serde_message;

    #[test]
    fn values_are_never_repeated() {
        let cases = [
            (
                "invalid type: string \"jane@example.com\", expected u32 at line 1 column 9",
                "invalid type: string, expected u32",
            ),
            (
                "unknown variant `jane@example.com`, expected `granted` or `withdrawn`",
                "unknown value, expected `granted` or `withdrawn`",
            ),
            (
                "invalid value: integer `-4`, expected a positive number",
                "invalid value: integer, expected a positive number",
            ),
            (
                "unknown field `nmae`, expected `name` or `role`",
                "unknown field `nmae`, expected `name` or `role`",
            ),
            (
                "some custom message with jane@example.com",
                "the body does not have the expected shape",
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(describe_serde_message(message), expected);
        }
    }
}
