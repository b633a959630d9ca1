//! Rebuilds the crate when a migration is added: the migrations are embedded at compile time.
//!
//! Also tells the tests whether the console's browser tests can run here (Chromium and
//! Node.js installed): where they cannot, `cfg(browser_tests_unavailable)` marks them ignored,
//! with the reason, so that they show as not run rather than passed. With
//! `CUSTODIA_REQUIRE_BROWSER_TESTS=1` (`.ci/run`) they are never ignored: they run, and fail
//! loudly if the browser is missing.
//!
//! The same for the tests with the real tracking SDKs: `cfg(node_sdk_tests_unavailable)`
//! without Node.js, `cfg(python_sdk_tests_unavailable)` without Segment's Python library;
//! never with `CUSTODIA_REQUIRE_SDK_TESTS=1`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rustc-check-cfg=cfg(browser_tests_unavailable)");
    println!("cargo:rerun-if-env-changed=CUSTODIA_CHROMIUM");
    println!("cargo:rerun-if-env-changed=CUSTODIA_REQUIRE_BROWSER_TESTS");
    println!("cargo:rerun-if-env-changed=PATH");
    let chromium = std::env::var_os("CUSTODIA_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    println!("cargo:rerun-if-changed={}", chromium.display());
    let required = std::env::var("CUSTODIA_REQUIRE_BROWSER_TESTS").is_ok_and(|v| v == "1");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    let can_run = chromium.exists() && node;
    if !(required || can_run) {
        println!("cargo:rustc-cfg=browser_tests_unavailable");
    }

    println!("cargo:rustc-check-cfg=cfg(node_sdk_tests_unavailable)");
    println!("cargo:rustc-check-cfg=cfg(python_sdk_tests_unavailable)");
    println!("cargo:rerun-if-env-changed=CUSTODIA_REQUIRE_SDK_TESTS");
    println!("cargo:rerun-if-changed=tests/sdk/requirements.txt");
    let sdks_required = std::env::var("CUSTODIA_REQUIRE_SDK_TESTS").is_ok_and(|v| v == "1");
    if !(sdks_required || node) {
        println!("cargo:rustc-cfg=node_sdk_tests_unavailable");
    }
    let python_sdk = Command::new("python3")
        .args(["-c", "import segment.analytics, rdflib"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !(sdks_required || python_sdk) {
        println!("cargo:rustc-cfg=python_sdk_tests_unavailable");
    }
}
