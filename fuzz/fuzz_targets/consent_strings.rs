//! TC strings and GPP strings on arbitrary input, read through the sample policy's mapping:
//! a statement set or a precise refusal, never a panic.
#![no_main]

use std::sync::OnceLock;

use custodia::policy::{load_dir, Policy};
use custodia::standards::signals;
use libfuzzer_sys::fuzz_target;

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"))
            .expect("the sample policy loads")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = chrono::Utc::now();
    let _ = signals::read(policy(), Some(text), None, now);
    let _ = signals::read(policy(), None, Some(text), now);
});
