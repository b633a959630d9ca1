//! The population a query describes: the filter tree of SPEC §6, as the domain parses it
//! (`segments::filter`, with precise errors) and the store compiles it to SQL
//! (`store::segments`). Only data and its canonical form live here, so that both may use it
//! without the store depending on a domain module.

use serde_json::{Map, Value};

use crate::policy::FieldName;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Every child holds.
    All(Vec<Filter>),
    /// At least one child holds.
    Any(Vec<Filter>),
    /// The child does not hold.
    Not(Box<Filter>),
    /// A segmentable trait has one of these values (in their filterable form).
    Trait {
        /// The field.
        field: FieldName,
        /// Accepted values.
        values: Vec<String>,
    },
    /// Enough interactions usable for the purpose.
    Interactions(InteractionCondition),
}

/// The leaf `{"interactions": {…}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InteractionCondition {
    /// Only interactions of this type.
    pub kind: Option<String>,
    /// Only through this channel.
    pub channel: Option<String>,
    /// Only those that occurred in the last this many days.
    pub within_days: Option<u32>,
    /// How many are needed (at least 1).
    pub at_least: u32,
}

/// SHA-256 of a text, in hex.
pub(crate) fn sha256_hex(text: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()))
}

impl Filter {
    /// A canonical encoding: equal for filters that are the same tree (used to recognise a
    /// repeated query).
    pub fn canonical(&self) -> String {
        self.to_json().to_string()
    }

    /// SHA-256 (hex) of the canonical form: how the audit log names a filter.
    pub fn sha256(&self) -> String {
        sha256_hex(&self.canonical())
    }

    /// The filter as JSON, in the request's shape.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Filter::All(children) => {
                serde_json::json!({"all": children.iter().map(Filter::to_json).collect::<Vec<_>>()})
            }
            Filter::Any(children) => {
                serde_json::json!({"any": children.iter().map(Filter::to_json).collect::<Vec<_>>()})
            }
            Filter::Not(child) => serde_json::json!({"not": child.to_json()}),
            Filter::Trait { field, values } => {
                serde_json::json!({"trait": field.as_str(), "in": values})
            }
            Filter::Interactions(condition) => {
                let mut leaf = Map::new();
                if let Some(kind) = &condition.kind {
                    leaf.insert("type".into(), kind.clone().into());
                }
                if let Some(channel) = &condition.channel {
                    leaf.insert("channel".into(), channel.clone().into());
                }
                if let Some(days) = condition.within_days {
                    leaf.insert("within_days".into(), days.into());
                }
                leaf.insert("at_least".into(), condition.at_least.into());
                serde_json::json!({ "interactions": leaf })
            }
        }
    }
}
