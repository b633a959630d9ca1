//! API key parsing and token verification on arbitrary text: refused, never a panic.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use custodia::auth::{PresentedApiKey, TokenService};
use custodia::crypto::Secret;
use libfuzzer_sys::fuzz_target;

fn tokens() -> &'static TokenService {
    static TOKENS: OnceLock<TokenService> = OnceLock::new();
    TOKENS.get_or_init(|| TokenService::new(&Secret::generate(), Duration::from_secs(60)))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = PresentedApiKey::parse(&text);
    assert!(tokens().verify(&text).is_err());
});
