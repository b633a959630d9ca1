//! Logging through `tracing`, to stderr, as readable lines (coloured only at a terminal) or JSON. The level comes from
//! `CUSTODIA_LOG` (or `RUST_LOG`), `info` by default.
//!
//! What is logged is decided at the call sites, which never pass personal data: request logs
//! carry route patterns, statuses, key ids and request ids only.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; does nothing if one is already installed.
pub fn init(format: LogFormat) {
    let filter = std::env::var("CUSTODIA_LOG")
        .ok()
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    // Colours only for a person at a terminal: a log file or a collector gets plain text.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
        .with_writer(std::io::stderr);
    let _already_installed = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
