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
