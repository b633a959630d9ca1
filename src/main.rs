//! The `custodia` binary: configuration → telemetry → command.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    bound_allocator_arenas();
    let cli = custodia::config::Cli::parse();
    keep_sqlite_temporary_files_beside_the_database(&cli.options);
    custodia::telemetry::init(cli.options.log_format.unwrap_or_default());
    custodia::cli::run(cli)
}

/// glibc's allocator gives a thread that meets contention an arena of its own, up to eight per
/// core, and keeps what each arena has touched. The server's blocking threads would each end
/// up with one: tens of MiB that buy nothing on a service whose threads mostly wait on the
/// database (measured in docs/benchmarks.md, "Memory"). One arena per core bounds it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn bound_allocator_arenas() {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let arenas = libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets an allocator parameter; this runs before any other thread
    // exists, so no allocation is in flight.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_allocator_arenas() {}

/// SQLite spills large sorts and journals to temporary files, by default in `/var/tmp`: pages
/// of the database (segmentable traits, internal ids, blind indexes) would land on a file
/// system the operator may not protect or wipe like the database's. They go to the `tmp`
/// directory beside the database file instead (`Settings::sqlite_temporary_dir`, created
/// owner-only with the first connection). SQLite reads the setting once, when it first
/// initializes; this runs before any other thread exists.
fn keep_sqlite_temporary_files_beside_the_database(options: &custodia::config::Options) {
    let Ok(settings) = custodia::config::Settings::resolve(options) else {
        return; // The command reports the configuration error itself.
    };
    if let Some(dir) = settings.sqlite_temporary_dir() {
        std::env::set_var("SQLITE_TMPDIR", dir);
    }
}
