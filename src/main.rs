//! The `custodia` binary: configuration → telemetry → command.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = custodia::config::Cli::parse();
    custodia::telemetry::init(cli.options.log_format.unwrap_or_default());
    custodia::cli::run(cli)
}
