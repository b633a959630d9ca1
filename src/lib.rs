//! Custodia: a privacy- and consent-first customer data platform.
//!
//! See `docs/ARCHITECTURE.md` for the map of this crate.
//!
//! The library exists for the `custodia` binary: its public API is the command line
//! ([`cli`]), the settings ([`config`]) and the logs ([`telemetry`]). Every other module is
//! crate-private, and public only with the `test-support` feature, which the API tests, the
//! benchmarks and the fuzz targets turn on to seed and inspect the database the way an old
//! version or an attacker would.

pub mod cli;
pub mod config;
pub mod telemetry;

/// Declares modules crate-private, or public with the `test-support` feature.
macro_rules! internal {
    ($($module:ident),* $(,)?) => {$(
        #[cfg(feature = "test-support")]
        pub mod $module;
        #[cfg(not(feature = "test-support"))]
        pub(crate) mod $module;
    )*};
}

internal! {
    app, audit, auth, clock, coalesce, consent, crypto, export, http, import, insights, interactions, jobs, net,
    page, policy, population, rejection, requests, retention, segments, startup, store,
    standards, subjects, tracking, vault,
}
