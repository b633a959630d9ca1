//! Identifier newtypes for policy entities. Each is built only by `parse`, so a value of the
//! type is always well-formed.

use std::borrow::Borrow;
use std::fmt;

use serde::Serialize;

/// Checks one dot-free segment: a lowercase letter, then lowercase letters, digits or `_`.
fn is_segment(segment: &str) -> bool {
    let mut chars = segment.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// Checks a dotted id such as `marketing.email`.
fn is_dotted(id: &str, max_len: usize) -> bool {
    !id.is_empty() && id.len() <= max_len && id.split('.').all(is_segment)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses the id, or says what is wrong with it.
            pub fn parse(raw: &str) -> Result<Self, String> {
                let check: fn(&str) -> bool = $check;
                if check(raw) {
                    Ok(Self(raw.to_owned()))
                } else {
                    Err(format!(
                        "`{}` is not a valid {}: {}",
                        raw.escape_debug(),
                        $what,
                        Self::GRAMMAR
                    ))
                }
            }

            /// The id as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A dotted purpose id; `marketing.email` descends from `marketing`.
    PurposeId,
    "purpose id",
    |raw| is_dotted(raw, 100)
);
id_type!(
    /// A dotted data category; `contact` covers `contact.email`.
    CategoryId,
    "data category",
    |raw| is_dotted(raw, 100)
);
id_type!(
    /// The name of a field apps may send.
    FieldName,
    "field name",
    |raw| raw.len() <= 64 && is_segment(raw)
);
id_type!(
    /// A role id.
    RoleId,
    "role id",
    |raw| raw.len() <= 64 && is_segment(raw)
);

impl PurposeId {
    const GRAMMAR: &'static str =
        "dot-separated segments of lowercase letters, digits and `_`, each starting with a letter";

    /// The parent purpose (`marketing` for `marketing.email`), if any.
    pub(crate) fn parent(&self) -> Option<PurposeId> {
        self.0
            .rsplit_once('.')
            .map(|(parent, _)| PurposeId(parent.to_owned()))
    }

    /// Whether this purpose is `ancestor` or descends from it.
    pub(crate) fn is_within(&self, ancestor: &PurposeId) -> bool {
        dotted_within(&self.0, &ancestor.0)
    }
}

impl CategoryId {
    const GRAMMAR: &'static str = PurposeId::GRAMMAR;

    /// Whether this category is `ancestor` or is covered by it (`contact` covers `contact.email`).
    pub(crate) fn is_within(&self, ancestor: &CategoryId) -> bool {
        dotted_within(&self.0, &ancestor.0)
    }

    /// This category and every category covering it, narrowest first.
    pub(crate) fn with_ancestors(&self) -> impl Iterator<Item = CategoryId> + '_ {
        let mut current = Some(self.0.as_str());
        std::iter::from_fn(move || {
            let id = current?;
            current = id.rsplit_once('.').map(|(parent, _)| parent);
            Some(CategoryId(id.to_owned()))
        })
    }
}

impl FieldName {
    const GRAMMAR: &'static str =
        "lowercase letters, digits and `_`, starting with a letter, at most 64 characters";
}

impl RoleId {
    const GRAMMAR: &'static str = FieldName::GRAMMAR;
}

/// `id == ancestor` or `id` starts with `ancestor.`.
fn dotted_within(id: &str, ancestor: &str) -> bool {
    id == ancestor
        || (id.len() > ancestor.len()
            && id.starts_with(ancestor)
            && id.as_bytes()[ancestor.len()] == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_ids_parse_and_nest() {
        let child = PurposeId::parse("marketing.email").unwrap();
        let parent = PurposeId::parse("marketing").unwrap();
        assert_eq!(child.parent(), Some(parent.clone()));
        assert!(child.is_within(&parent));
        assert!(!parent.is_within(&child));
        assert!(!PurposeId::parse("marketingx").unwrap().is_within(&parent));
        for bad in ["", "Marketing", "a..b", ".a", "a.", "1a", "a-b", "a b"] {
            assert!(PurposeId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn category_ancestors_run_narrowest_first() {
        let category = CategoryId::parse("contact.email.work").unwrap();
        let chain: Vec<String> = category
            .with_ancestors()
            .map(|c| c.as_str().to_owned())
            .collect();
        assert_eq!(chain, ["contact.email.work", "contact.email", "contact"]);
    }
}
