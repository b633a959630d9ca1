//! The commands of the `custodia` binary.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use crate::audit::Checkpoint;
use crate::audit::{self, Actor, Entry};
use crate::auth::{create_key, list_keys, revoke_key, KeyError, ACTION_LIST, ACTION_ROTATE_MASTER};
use crate::config::{
    AuditCommand, Cli, Command, KeysCommand, PolicyCommand, RetentionCommand, Settings,
};
use crate::crypto::JwsSigner;
use crate::policy::load_dir;
use crate::startup::{load_policy, open_database, open_vault, Application};
use crate::vault::rotate_master_key;

/// `custodia import`: progress on stderr (a line redrawn in place on a terminal, a plain line
/// every few seconds otherwise), bad lines on stderr, the summary as JSON on stdout. Exits 1
/// when a line could not be imported.
fn import(
    settings: &Settings,
    file: std::path::PathBuf,
    role: &str,
    dry_run: bool,
    batch_lines: Option<usize>,
) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let policy = load_policy(settings)?;
    let role = crate::policy::RoleId::parse(role)
        .map_err(|_| anyhow::anyhow!("`{role}` is not a role id"))?;
    let database = open_database(settings)?;
    let mut conn = database.connection()?;
    let vault = open_vault(settings, &database)?;
    let options = crate::import::ImportOptions {
        path: file,
        dry_run,
        role,
        batch_lines,
    };
    let terminal = std::io::stderr().is_terminal();
    let mut last_shown = std::time::Instant::now();
    let shown_on_line = std::cell::Cell::new(false);
    let mut progress = |at: crate::import::Progress| {
        let finished = at.bytes >= at.total_bytes;
        if !terminal && !finished && last_shown.elapsed().as_secs() < 5 {
            return;
        }
        if terminal && !finished && last_shown.elapsed().as_millis() < 200 {
            return;
        }
        last_shown = std::time::Instant::now();
        let rate = at.lines as f64 / at.seconds.max(1e-9);
        let share = at.bytes as f64 / (at.total_bytes.max(1)) as f64;
        let eta = if share > 0.0 {
            (at.seconds / share - at.seconds).max(0.0)
        } else {
            0.0
        };
        let text = format!(
            "{} lines, {:.0} lines/s, {:.0}% read, ETA {}:{:02}",
            at.lines,
            rate,
            share * 100.0,
            (eta as u64) / 60,
            (eta as u64) % 60
        );
        if terminal {
            const WIDTH: usize = 40;
            let filled = ((share * WIDTH as f64) as usize).min(WIDTH);
            eprint!(
                "\r[{}{}] {text}\x1b[K",
                "#".repeat(filled),
                " ".repeat(WIDTH - filled)
            );
            shown_on_line.set(true);
        } else {
            eprintln!("{text}");
        }
    };
    let mut bad = |line: String| {
        if terminal && shown_on_line.get() {
            eprint!("\r\x1b[K");
        }
        eprintln!("{line}");
    };
    let summary = crate::import::run(
        &mut conn,
        &vault,
        &policy,
        &options,
        &mut bad,
        &mut progress,
    )?;
    if terminal {
        eprintln!();
    }
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(if summary.invalid > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs a command; errors are printed to stderr and turn into exit status 1.
pub fn run(cli: Cli) -> ExitCode {
    match execute(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("custodia: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::resolve(&cli.options)?;
    match cli.command {
        Command::Serve => serve(&settings),
        Command::Migrate => {
            open_database(&settings)?;
            eprintln!("database {} is up to date", settings.database_url);
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(command) => keys(&settings, command),
        Command::Audit(AuditCommand::Verify { checkpoints }) => {
            verify_audit(&settings, &checkpoints)
        }
        Command::Retention(RetentionCommand::Run) => {
            let policy = load_policy(&settings)?;
            let database = open_database(&settings)?;
            let mut conn = database.connection()?;
            let report = crate::retention::run(&mut conn, &policy, &Actor::operator())?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            eprintln!(
                "retention applied: {} interactions deleted",
                report.interactions_deleted
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Import {
            file,
            role,
            dry_run,
            batch_size,
        } => import(
            &settings,
            file,
            &role,
            dry_run,
            batch_size.map(|lines| lines as usize),
        ),
        Command::Policy(PolicyCommand::Check { dir }) => {
            let dir = dir.unwrap_or_else(|| settings.policy_dir.clone());
            match load_dir(&dir) {
                Ok(policy) => {
                    println!(
                        "{}: ok ({} purposes, {} fields, {} roles; sha256 {})",
                        dir.display(),
                        policy.purposes().count(),
                        policy.fields().count(),
                        policy.roles().count(),
                        policy.sha256()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

/// `custodia audit verify`: offline, against the database, with the deployment's audit key.
fn verify_audit(settings: &Settings, files: &[std::path::PathBuf]) -> anyhow::Result<ExitCode> {
    let mut checkpoints = Vec::with_capacity(files.len());
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the checkpoint {}", file.display()))?;
        let checkpoint: Checkpoint = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a checkpoint (the JSON of GET /v1/audit/checkpoint)",
                file.display()
            )
        })?;
        checkpoints.push(checkpoint);
    }
    let database = open_database(settings)?;
    let vault = open_vault(settings, &database)?;
    let signer = JwsSigner::new(vault.audit_seed());
    let mut conn = database.connection()?;
    let report = audit::verify(&mut conn, &signer, &checkpoints)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if report.ok {
        eprintln!(
            "the audit log verifies: {} entries, {} signed checkpoints",
            report.entries, report.checkpoints
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "custodia: the audit log does NOT verify: {}",
            report.detail.as_deref().unwrap_or("unknown failure")
        );
        Ok(ExitCode::FAILURE)
    }
}

fn serve(settings: &Settings) -> anyhow::Result<ExitCode> {
    actix_web::rt::System::new().block_on(async {
        let application = Application::build(settings)?;
        tracing::info!(
            address = %settings.bind,
            port = application.port(),
            database = %settings.database_url,
            "custodia is listening"
        );
        // The one line `serve` writes to standard output, once it listens: the address it
        // bound, with the port the system chose when asked for port 0 (scripts and tests start
        // it on port 0 and read the address back, rather than guess a free port).
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{}", application.address())?;
        stdout.flush()?;
        drop(stdout);
        application
            .run_until_stopped()
            .await
            .context("the server stopped with an error")?;
        Ok(ExitCode::SUCCESS)
    })
}

fn keys(settings: &Settings, command: KeysCommand) -> anyhow::Result<ExitCode> {
    let database = open_database(settings)?;
    let mut conn = database.connection()?;
    let policy = load_policy(settings)?;
    let operator = Actor::operator();
    match command {
        KeysCommand::Create { role, name } => {
            let created = create_key(&mut conn, &policy, &name, &role, &operator)?;
            eprintln!(
                "created key {} ({}) with role {}; store the key now, it is not shown again:",
                created.info.id, created.info.name, created.info.role
            );
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{}", created.api_key.as_str())?;
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::List => {
            let mut stdout = std::io::stdout().lock();
            writeln!(
                stdout,
                "{:<16}  {:<12}  {:<20}  {:<20}  NAME",
                "ID", "ROLE", "CREATED", "REVOKED"
            )?;
            let keys = list_keys(&mut conn)?;
            let entry = Entry::new(&operator, ACTION_LIST).records(keys.len());
            audit::record(&mut conn, policy.sha256(), vec![entry])?;
            for key in keys {
                let revoked = key
                    .revoked_at
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_else(|| "-".into());
                writeln!(
                    stdout,
                    "{:<16}  {:<12}  {:<20}  {:<20}  {}",
                    key.id,
                    key.role,
                    key.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
                    revoked,
                    key.name
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::RotateMaster => {
            let report = rotate_master_key(&mut conn, &settings.master_key_file)?;
            let entry = Entry::new(&operator, ACTION_ROTATE_MASTER)
                .target(report.to_key_id.clone())
                .records(usize::try_from(report.rewrapped).unwrap_or(usize::MAX));
            audit::record(&mut conn, policy.sha256(), vec![entry])?;
            eprintln!(
                "{} rotation: master key {} → {}; re-wrapped {} keys. Retired keys are kept in {}{}; keep them until no backup needs them.",
                if report.resumed { "finished an interrupted" } else { "completed" },
                report.from_key_id,
                report.to_key_id,
                report.rewrapped,
                settings.master_key_file.display(),
                crate::crypto::RETIRED_SUFFIX,
            );
            println!("{}", report.to_key_id);
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::RotateEpoch => {
            let vault = crate::vault::Vault::open(&mut conn, &settings.master_key_file)?
                .with_schedule(settings.epochs);
            let report = crate::vault::maintain_epochs(
                &mut conn,
                &vault,
                chrono::Utc::now().naive_utc(),
                true,
            )?;
            crate::vault::audit_epoch_report(&mut conn, policy.sha256(), &operator, &report)?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Revoke { id } => match revoke_key(&mut conn, &policy, &id, &operator) {
            Ok(key) => {
                eprintln!(
                    "revoked key {}; its tokens stop working within seconds",
                    key.id
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(KeyError::NotFound) => {
                eprintln!("custodia: no API key has the id `{}`", id.escape_debug());
                Ok(ExitCode::FAILURE)
            }
            Err(error) => Err(error.into()),
        },
    }
}
