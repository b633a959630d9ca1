//! The W3C Data Privacy Vocabulary (DPV 2.2: core, EU GDPR and personal data), embedded from
//! `standards/dpv/` (W3C Software and Document license; the notice is in that folder and in
//! `docs/standards.md`). The policy's DPV terms are checked against it, and the JSON-LD
//! Custodia writes uses only terms it defines.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

/// The namespaces of the embedded vocabulary: prefix, IRI and the Turtle file defining it.
pub const NAMESPACES: [(&str, &str, &str); 3] = [
    (
        "dpv",
        "https://w3id.org/dpv#",
        include_str!("../../standards/dpv/dpv.ttl"),
    ),
    (
        "eu-gdpr",
        "https://w3id.org/dpv/legal/eu/gdpr#",
        include_str!("../../standards/dpv/eu-gdpr.ttl"),
    ),
    (
        "pd",
        "https://w3id.org/dpv/pd#",
        include_str!("../../standards/dpv/pd.ttl"),
    ),
];

/// Every term the embedded files define, as compact IRIs (`dpv:Marketing`, `pd:EmailAddress`),
/// with its parents in the vocabulary: its `rdf:type`s and `skos:broader` terms.
fn vocabulary() -> &'static BTreeMap<String, Vec<String>> {
    static VOCABULARY: OnceLock<BTreeMap<String, Vec<String>>> = OnceLock::new();
    VOCABULARY.get_or_init(|| {
        let mut terms = BTreeMap::new();
        for (prefix, _, turtle) in NAMESPACES {
            let head = format!("{prefix}:");
            // The files are in rdflib's canonical layout: each subject starts a line in column
            // 0 (`dpv:Marketing a rdfs:Class,`), its properties are indented beneath it.
            let mut current: Option<String> = None;
            // Whether the values being read are parents (`a …` types or `skos:broader`), and
            // whether the previous line's list goes on (it ended with a comma).
            let (mut parents_list, mut continuing) = (false, false);
            for line in turtle.lines() {
                let trimmed = line.trim();
                let goes_on = trimmed.ends_with(',');
                if let Some(rest) = line.strip_prefix(&head) {
                    let local: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                        .collect();
                    let term = format!("{prefix}:{local}");
                    parents_list = false;
                    current = None;
                    if let Some(types) = rest[local.len()..].strip_prefix(" a ") {
                        if !local.is_empty() {
                            parents_list = true;
                            terms.entry(term.clone()).or_default();
                            add_terms(&mut terms, &term, types);
                            current = Some(term);
                        }
                    }
                } else if !line.starts_with(' ') {
                    current = None;
                    parents_list = false;
                } else if let Some(term) = &current {
                    if continuing {
                        if parents_list {
                            add_terms(&mut terms, term, trimmed);
                        }
                    } else if let Some(values) = trimmed.strip_prefix("skos:broader ") {
                        parents_list = true;
                        add_terms(&mut terms, term, values);
                    } else {
                        parents_list = false;
                    }
                }
                continuing = goes_on;
            }
        }
        terms
    })
}

/// Whether `term` (a compact IRI such as `dpv:Marketing`) is defined by the embedded vocabulary.
pub fn defines(term: &str) -> bool {
    vocabulary().contains_key(term)
}

/// Whether `term` is defined and is a subclass (by `skos:broader`, transitively) of `ancestor`,
/// or is `ancestor` itself: a purpose must be a `dpv:Purpose`, a data category a
/// `dpv:PersonalData`.
pub fn is_a(term: &str, ancestor: &str) -> bool {
    if term == ancestor {
        return defines(term);
    }
    let mut seen = BTreeSet::new();
    let mut frontier = vec![term];
    while let Some(current) = frontier.pop() {
        if !seen.insert(current) {
            continue;
        }
        for parent in vocabulary().get(current).into_iter().flatten() {
            if parent == ancestor {
                return true;
            }
            frontier.push(parent);
        }
    }
    false
}

/// Adds the compact IRIs of a Turtle object list (`dpv:A,` or `dpv:B ;`) to `term`'s parents.
fn add_terms(parents: &mut BTreeMap<String, Vec<String>>, term: &str, values: &str) {
    for value in values.split(',') {
        let value = value.trim().trim_end_matches([';', '.']).trim();
        if NAMESPACES
            .iter()
            .any(|(prefix, _, _)| value.starts_with(&format!("{prefix}:")))
        {
            parents
                .entry(term.to_owned())
                .or_default()
                .push(value.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_files_define_the_terms_custodia_uses() {
        for term in [
            "dpv:Marketing",
            "dpv:ConsentRecord",
            "dpv:ConsentGiven",
            "dpv:ConsentWithdrawn",
            "dpv:hasConsentStatus",
            "eu-gdpr:A6-1-a",
            "eu-gdpr:A7-3",
            "pd:EmailAddress",
        ] {
            assert!(defines(term), "{term}");
        }
        assert!(!defines("dpv:Marketin"));
        assert!(!defines("pd:NoSuchThing"));
        assert!(!defines("foo:Marketing"));
    }

    #[test]
    fn subclasses_are_followed_through_broader_terms() {
        assert!(is_a("dpv:DirectMarketing", "dpv:Purpose"));
        assert!(is_a("dpv:Marketing", "dpv:Purpose"));
        assert!(is_a("pd:EmailAddress", "dpv:PersonalData"));
        assert!(!is_a("pd:EmailAddress", "dpv:Purpose"));
        assert!(!is_a("dpv:Marketing", "dpv:PersonalData"));
        assert!(is_a("eu-gdpr:A6-1-a", "dpv:LegalBasis"));
    }
}
