//! The segment filter parser on arbitrary JSON: errors or a filter whose canonical form parses
//! back to itself, never a panic.
#![no_main]

use std::sync::OnceLock;

use custodia::policy::{load_dir, Policy};
use custodia::segments::filter::Filter;
use libfuzzer_sys::fuzz_target;

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"))
            .expect("the sample policy loads")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let purpose = policy().purpose("marketing").expect("a sample purpose");
    if let Ok(filter) = Filter::parse(policy(), purpose, &value) {
        let canonical: serde_json::Value = serde_json::from_str(&filter.canonical()).unwrap();
        assert_eq!(
            Filter::parse(policy(), purpose, &canonical).ok(),
            Some(filter)
        );
    }
});
