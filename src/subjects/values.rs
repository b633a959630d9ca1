//! Parsed values: subject ids, e-mail addresses, phone numbers and field values. Each is built
//! only by `parse`, which says what is wrong without repeating the value.

use std::fmt;

use serde_json::Value;

/// The longest subject id, in bytes.
pub const MAX_SUBJECT_ID_LEN: usize = 200;
/// The longest text field value, in characters.
pub const MAX_TEXT_VALUE_CHARS: usize = 4_096;

/// The id of a person as the app names them: its own user id (`subject_id`), or an anonymous
/// id a tracking SDK gave a device or browser before anyone logged in (`anonymousId`). The two
/// are separate namespaces, each blind-indexed under its own key, so that an anonymous id can
/// never name a known person (`docs/tracking.md`, "Identity resolution"). An identifier: never
/// logged, never stored in clear.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SubjectId {
    id: String,
    anonymous: bool,
}

impl fmt::Debug for SubjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectId(..)")
    }
}

impl SubjectId {
    /// The app's user id: 1 to 200 bytes, no control characters, no surrounding whitespace.
    pub fn parse(raw: &str) -> Result<SubjectId, String> {
        check_id(raw, "a subject_id")?;
        Ok(SubjectId {
            id: raw.to_owned(),
            anonymous: false,
        })
    }

    /// An anonymous id (a tracking SDK's `anonymousId`), held to the same rules.
    pub fn anonymous(raw: &str) -> Result<SubjectId, String> {
        check_id(raw, "an anonymous id")?;
        Ok(SubjectId {
            id: raw.to_owned(),
            anonymous: true,
        })
    }

    /// The id as the app wrote it.
    pub fn as_str(&self) -> &str {
        &self.id
    }

    /// Whether this is an anonymous id rather than the app's user id.
    pub fn is_anonymous(&self) -> bool {
        self.anonymous
    }

    /// The id as sealed in `subjects.subject_id_ct`: a user id as it is; an anonymous id after
    /// a NUL byte and `anonymous:`, which no user id can begin with (no control characters).
    pub(crate) fn sealed_form(&self) -> Vec<u8> {
        if self.anonymous {
            [ANONYMOUS_PREFIX, self.id.as_bytes()].concat()
        } else {
            self.id.as_bytes().to_vec()
        }
    }

    /// The id a sealed form holds (see [`SubjectId::sealed_form`]).
    pub(crate) fn from_sealed_form(bytes: &[u8]) -> Result<SubjectId, String> {
        match bytes.strip_prefix(ANONYMOUS_PREFIX) {
            Some(rest) => {
                SubjectId::anonymous(std::str::from_utf8(rest).map_err(|_| "not UTF-8".to_owned())?)
            }
            None => {
                SubjectId::parse(std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?)
            }
        }
    }
}

const ANONYMOUS_PREFIX: &[u8] = b"\0anonymous:";

fn check_id(raw: &str, what: &str) -> Result<(), String> {
    if raw.is_empty() || raw.len() > MAX_SUBJECT_ID_LEN {
        return Err(format!(
            "{what} must be 1 to {MAX_SUBJECT_ID_LEN} bytes long"
        ));
    }
    if raw.chars().any(char::is_control) || raw.trim() != raw {
        return Err(format!(
            "{what} may not contain control characters or surrounding spaces"
        ));
    }
    Ok(())
}

/// An e-mail address, normalized (trimmed, lowercase).
#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(..)")
    }
}

impl Email {
    /// A plausible address: one `@` with text on both sides, a dot in the domain, no spaces,
    /// at most 254 characters.
    pub fn parse(raw: &str) -> Result<Email, String> {
        let normalized = raw.trim().to_lowercase();
        let valid = normalized.len() <= 254
            && !normalized
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
            && matches!(normalized.split_once('@'), Some((local, domain))
                if !local.is_empty() && domain.contains('.') && !domain.contains('@')
                    && !domain.starts_with('.') && !domain.ends_with('.'));
        if valid {
            Ok(Email(normalized))
        } else {
            Err("`email` is not a valid e-mail address".into())
        }
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A phone number, normalized to `+` and digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Phone(String);

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Phone(..)")
    }
}

impl Phone {
    /// An international number: `+` then 7 to 15 digits; spaces, dots, dashes and parentheses
    /// are ignored.
    pub fn parse(raw: &str) -> Result<Phone, String> {
        let trimmed = raw.trim();
        let digits: String = trimmed
            .chars()
            .filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')'))
            .collect();
        let valid = digits.starts_with('+')
            && (8..=16).contains(&digits.len())
            && digits[1..].chars().all(|c| c.is_ascii_digit());
        if valid {
            Ok(Phone(digits))
        } else {
            Err("`phone` must be an international number: + and 7 to 15 digits".into())
        }
    }

    /// The normalized number.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A field value: a string of bounded length or a finite number.
#[derive(Clone, PartialEq)]
pub enum FieldValue {
    /// A string.
    Text(String),
    /// A number, as JSON wrote it.
    Number(serde_json::Number),
}

impl fmt::Debug for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FieldValue(..)")
    }
}

impl FieldValue {
    /// Accepts strings up to 4,096 characters and numbers; anything else names the field.
    pub fn parse(field: &str, value: &Value) -> Result<FieldValue, String> {
        match value {
            Value::String(text) if text.chars().count() <= MAX_TEXT_VALUE_CHARS => {
                Ok(FieldValue::Text(text.clone()))
            }
            Value::String(_) => Err(format!(
                "the value of `{field}` is longer than {MAX_TEXT_VALUE_CHARS} characters"
            )),
            Value::Number(number) => Ok(FieldValue::Number(number.clone())),
            _ => Err(format!(
                "the value of `{field}` must be a string or a number"
            )),
        }
    }

    /// The bytes that get encrypted: the value's JSON encoding, so numbers stay numbers.
    pub(crate) fn to_plaintext(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_json()).expect("a string or number encodes")
    }

    /// Reads a decrypted value back.
    pub(crate) fn from_plaintext(bytes: &[u8]) -> Option<FieldValue> {
        match serde_json::from_slice(bytes).ok()? {
            Value::String(text) => Some(FieldValue::Text(text)),
            Value::Number(number) => Some(FieldValue::Number(number)),
            _ => None,
        }
    }

    /// The value as JSON.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            FieldValue::Text(text) => Value::String(text.clone()),
            FieldValue::Number(number) => Value::Number(number.clone()),
        }
    }

    /// The value as stored for filtering (segmentable traits): text as is, numbers as JSON.
    pub(crate) fn to_filterable(&self) -> String {
        match self {
            FieldValue::Text(text) => text.clone(),
            FieldValue::Number(number) => number.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_normalize() {
        assert_eq!(
            Email::parse(" Jane@Example.COM ").unwrap().as_str(),
            "jane@example.com"
        );
        for bad in [
            "jane",
            "@example.com",
            "jane@",
            "jane@example",
            "ja ne@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Phone::parse("+49 (30) 1234-567").unwrap().as_str(),
            "+49301234567"
        );
        for bad in ["0301234567", "+12", "+49 30 abc"] {
            assert!(Phone::parse(bad).is_err(), "{bad}");
        }
        assert!(SubjectId::parse(" cust-1").is_err());
        assert!(SubjectId::parse("cust\n1").is_err());
        assert!(SubjectId::parse("cust-1").is_ok());
    }

    #[test]
    fn errors_never_repeat_the_value() {
        let error = Email::parse("not-an-address-but-secret").unwrap_err();
        assert!(!error.contains("secret"));
        let error = FieldValue::parse("message", &serde_json::json!({"a": "secret"})).unwrap_err();
        assert!(!error.contains("secret"));
    }
}
