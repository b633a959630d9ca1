//! Segment filters (SPEC §6): a small tree parsed into a typed AST with precise errors, each
//! naming where in the tree it is (`filter.all[1].trait`).
//!
//! ```json
//! {"all": [{"trait": "country", "in": ["DE", "AT"]},
//!          {"not": {"interactions": {"type": "purchase", "within_days": 30, "at_least": 2}}}]}
//! ```
//! `all` and `any` take 1 to [`MAX_CHILDREN`] filters; `not` one; `trait` names a declared
//! **segmentable** field and `in` 1 to [`MAX_VALUES`] values; `interactions` counts the person's
//! interactions usable for the purpose, optionally of one `type` and `channel`, that occurred in
//! the last `within_days` days, and asks for `at_least` of them (default 1).

use serde_json::{Map, Value};

use crate::policy::{Policy, Purpose};
pub use crate::population::{Filter, InteractionCondition};
use crate::rejection::Rejection;
use crate::subjects::FieldValue;

/// The deepest nesting accepted.
pub const MAX_DEPTH: usize = 8;
/// The most nodes in one filter.
pub const MAX_NODES: usize = 64;
/// The most children of `all` / `any`.
pub const MAX_CHILDREN: usize = 32;
/// The most values in one `in`.
pub const MAX_VALUES: usize = 100;
/// The longest look-back of an interaction condition.
pub const MAX_WITHIN_DAYS: u32 = 3_650;
/// The largest `at_least`.
pub const MAX_AT_LEAST: u32 = 10_000;

fn invalid(path: &str, message: impl std::fmt::Display) -> Rejection {
    Rejection::invalid("invalid_filter", format!("{path}: {message}"))
}

struct Parser<'a> {
    policy: &'a Policy,
    purpose: &'a Purpose,
    nodes: usize,
}

impl Filter {
    /// Parses and validates a filter against the policy, for `purpose`: a trait leaf may name
    /// only a segmentable field whose category the purpose may use (rule 4).
    pub fn parse(policy: &Policy, purpose: &Purpose, value: &Value) -> Result<Filter, Rejection> {
        Parser {
            policy,
            purpose,
            nodes: 0,
        }
        .node(value, "filter", 1)
    }
}

impl Parser<'_> {
    fn node(&mut self, value: &Value, path: &str, depth: usize) -> Result<Filter, Rejection> {
        if depth > MAX_DEPTH {
            return Err(Rejection::invalid(
                "filter_too_deep",
                format!("{path}: filters nest at most {MAX_DEPTH} levels"),
            ));
        }
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(Rejection::invalid(
                "filter_too_large",
                format!("a filter has at most {MAX_NODES} nodes"),
            ));
        }
        let object = value
            .as_object()
            .ok_or_else(|| invalid(path, "expected an object"))?;
        if object.contains_key("trait") {
            return self.trait_leaf(object, path);
        }
        let (key, inner) = match object.iter().next() {
            Some(entry) if object.len() == 1 => entry,
            _ => return Err(invalid(
                path,
                "expected exactly one of `all`, `any`, `not`, `trait` (with `in`), `interactions`",
            )),
        };
        let path = format!("{path}.{key}");
        match key.as_str() {
            "all" | "any" => {
                let children = inner
                    .as_array()
                    .ok_or_else(|| invalid(&path, "expected an array of filters"))?;
                if children.is_empty() || children.len() > MAX_CHILDREN {
                    return Err(invalid(
                        &path,
                        format!("expected 1 to {MAX_CHILDREN} filters"),
                    ));
                }
                let parsed = children
                    .iter()
                    .enumerate()
                    .map(|(index, child)| self.node(child, &format!("{path}[{index}]"), depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(if key == "all" {
                    Filter::All(parsed)
                } else {
                    Filter::Any(parsed)
                })
            }
            "not" => Ok(Filter::Not(Box::new(self.node(inner, &path, depth + 1)?))),
            "interactions" => interactions_leaf(inner, &path),
            other => Err(invalid(
                &path,
                format!(
                    "unknown filter `{}`: use `all`, `any`, `not`, `trait`, `interactions`",
                    other.escape_debug()
                ),
            )),
        }
    }

    fn trait_leaf(&self, object: &Map<String, Value>, path: &str) -> Result<Filter, Rejection> {
        if let Some(extra) = object
            .keys()
            .find(|key| !["trait", "in"].contains(&key.as_str()))
        {
            return Err(invalid(
                path,
                format!(
                    "unexpected `{}` beside `trait`: a trait filter is {{\"trait\", \"in\"}}",
                    extra.escape_debug()
                ),
            ));
        }
        let name = object["trait"]
            .as_str()
            .ok_or_else(|| invalid(&format!("{path}.trait"), "expected a field name"))?;
        let field = self.policy.field(name).ok_or_else(|| {
            Rejection::invalid(
                "undeclared_field",
                format!(
                    "{path}.trait: field `{}` is not declared in the policy",
                    name.escape_debug()
                ),
            )
        })?;
        if !field.segmentable {
            return Err(Rejection::invalid(
                "non_segmentable_trait",
                format!(
                    "{path}.trait: `{name}` is not segmentable: it is stored encrypted and cannot be filtered on"
                ),
            ));
        }
        if !self.policy.purpose_may_use(self.purpose, &field.category) {
            return Err(Rejection::invalid(
                "trait_not_permitted",
                format!(
                    "{path}.trait: `{name}` (category `{}`) is not among the categories purpose `{}` may use",
                    field.category, self.purpose.id
                ),
            ));
        }
        let values = object
            .get("in")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid(&format!("{path}.in"), "expected an array of values"))?;
        if values.is_empty() || values.len() > MAX_VALUES {
            return Err(invalid(
                &format!("{path}.in"),
                format!("expected 1 to {MAX_VALUES} values"),
            ));
        }
        let mut filterable = values
            .iter()
            .enumerate()
            .map(|(index, value)| {
                FieldValue::parse(name, value)
                    .map(|value| value.to_filterable())
                    .map_err(|message| invalid(&format!("{path}.in[{index}]"), message))
            })
            .collect::<Result<Vec<_>, _>>()?;
        filterable.sort();
        filterable.dedup();
        Ok(Filter::Trait {
            field: field.name.clone(),
            values: filterable,
        })
    }
}

fn interactions_leaf(value: &Value, path: &str) -> Result<Filter, Rejection> {
    let object = value
        .as_object()
        .ok_or_else(|| invalid(path, "expected an object"))?;
    let mut condition = InteractionCondition {
        kind: None,
        channel: None,
        within_days: None,
        at_least: 1,
    };
    for (key, value) in object {
        let at = format!("{path}.{key}");
        match key.as_str() {
            "type" | "channel" => {
                let text = value
                    .as_str()
                    .ok_or_else(|| invalid(&at, "expected a string"))?;
                let token = crate::interactions::token(key, text).map_err(|_| {
                    invalid(&at, "1 to 64 lowercase letters, digits, `_`, `.` or `-`")
                })?;
                if key == "type" {
                    condition.kind = Some(token);
                } else {
                    condition.channel = Some(token);
                }
            }
            "within_days" => {
                condition.within_days = Some(bounded(value, &at, 1, MAX_WITHIN_DAYS)?);
            }
            "at_least" => condition.at_least = bounded(value, &at, 1, MAX_AT_LEAST)?,
            other => {
                return Err(invalid(
                    &at,
                    format!(
                        "unknown key `{}`: use `type`, `channel`, `within_days`, `at_least`",
                        other.escape_debug()
                    ),
                ))
            }
        }
    }
    Ok(Filter::Interactions(condition))
}

fn bounded(value: &Value, path: &str, min: u32, max: u32) -> Result<u32, Rejection> {
    value
        .as_u64()
        .filter(|n| (u64::from(min)..=u64::from(max)).contains(n))
        .map(|n| n as u32)
        .ok_or_else(|| invalid(path, format!("expected a whole number from {min} to {max}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> Policy {
        crate::policy::load_dir(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies"
        )))
        .unwrap()
    }

    fn parse(purpose: &str, value: &Value) -> Result<Filter, Rejection> {
        let policy = policy();
        let purpose = policy.purpose(purpose).unwrap();
        Filter::parse(&policy, purpose, value)
    }

    fn error(value: Value) -> (String, String) {
        let rejection = parse("marketing", &value).unwrap_err();
        (rejection.code.to_owned(), rejection.detail)
    }

    #[test]
    fn a_tree_parses_into_its_ast() {
        let filter = parse(
            "marketing",
            &json!({"all": [{"trait": "country", "in": ["DE", "AT", "DE"]},
                            {"not": {"interactions": {"type": "purchase", "within_days": 30,
                                                      "at_least": 2}}}]}),
        )
        .unwrap();
        assert_eq!(
            filter.to_json(),
            json!({"all": [{"trait": "country", "in": ["AT", "DE"]},
                           {"not": {"interactions": {"type": "purchase", "within_days": 30,
                                                     "at_least": 2}}}]})
        );
    }

    #[test]
    fn errors_name_the_place_and_the_problem() {
        assert_eq!(
            error(json!({"all": [{"trait": "full_name", "in": ["x"]}]})),
            (
                "non_segmentable_trait".into(),
                "filter.all[0].trait: `full_name` is not segmentable: it is stored encrypted and cannot be filtered on".into()
            )
        );
        assert_eq!(
            error(json!({"any": [{"trait": "shoe_size", "in": ["44"]}]})).0,
            "undeclared_field"
        );
        assert_eq!(
            error(json!({"any": []})),
            (
                "invalid_filter".into(),
                format!("filter.any: expected 1 to {MAX_CHILDREN} filters")
            )
        );
        assert_eq!(
            error(json!({"all": [{"interactions": {"at_least": 0}}]})).1,
            format!("filter.all[0].interactions.at_least: expected a whole number from 1 to {MAX_AT_LEAST}")
        );
        assert_eq!(
            error(json!({"all": [{"xor": []}]})).1,
            "filter.all[0].xor: unknown filter `xor`: use `all`, `any`, `not`, `trait`, `interactions`"
        );
        assert_eq!(error(json!({"all": [], "any": []})).0, "invalid_filter");
        assert_eq!(
            error(json!({"trait": "country", "in": []})).0,
            "invalid_filter"
        );
        assert_eq!(error(json!([1])).0, "invalid_filter");
    }

    #[test]
    fn a_trait_outside_the_purposes_categories_is_refused() {
        // `marketing.sms` declares contact.phone, location.country, preferences.language.
        let rejection = parse(
            "marketing.sms",
            &json!({"any": [{"trait": "country", "in": ["DE"]},
                            {"trait": "loyalty_tier", "in": ["gold"]}]}),
        )
        .unwrap_err();
        assert_eq!(rejection.code, "trait_not_permitted");
        assert_eq!(
            rejection.detail,
            "filter.any[1].trait: `loyalty_tier` (category `preferences.loyalty`) is not among the categories purpose `marketing.sms` may use"
        );
        // `marketing` declares `preferences`, which covers `preferences.loyalty`; a purpose
        // without categories of its own uses its parent's.
        assert!(parse(
            "marketing",
            &json!({"trait": "loyalty_tier", "in": ["gold"]})
        )
        .is_ok());
        assert!(parse(
            "marketing.personalization",
            &json!({"trait": "loyalty_tier", "in": ["gold"]})
        )
        .is_ok());
        assert!(parse("marketing.sms", &json!({"trait": "language", "in": ["de"]})).is_ok());
    }

    #[test]
    fn depth_and_size_are_bounded() {
        let mut deep = json!({"trait": "country", "in": ["DE"]});
        for _ in 0..MAX_DEPTH {
            deep = json!({ "not": deep });
        }
        assert_eq!(error(deep).0, "filter_too_deep");
        let wide: Vec<Value> = (0..MAX_CHILDREN)
            .map(|_| json!({"any": [{"trait": "country", "in": ["DE"]}, {"trait": "country", "in": ["AT"]}]}))
            .collect();
        assert_eq!(error(json!({ "all": wide })).0, "filter_too_large");
    }
}
