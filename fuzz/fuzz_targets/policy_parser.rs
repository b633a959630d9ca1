//! The policy parser on arbitrary text: errors, never a panic.
#![no_main]

use custodia::policy::{Policy, PolicySource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let _ = Policy::from_sources(&[PolicySource {
        name: "fuzz.toml".into(),
        text,
    }]);
});
