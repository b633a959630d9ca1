//! Command-line flags and environment variables (a flag wins over its variable), resolved into
//! [`Settings`] with the embedded defaults of SPEC §1.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::store::DatabaseUrl;

/// The address `serve` listens on by default.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// The data directory used by default.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// The policy directory used by default.
pub const DEFAULT_POLICY_DIR: &str = "./policies";
/// Access token lifetime by default, in seconds.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 900;
/// Default seconds between retention runs.
pub const DEFAULT_RETENTION_SECS: u64 = 3_600;
/// Default seconds between signed audit checkpoints.
pub const DEFAULT_AUDIT_CHECKPOINT_SECS: u64 = 60;
/// Seconds a request body may take to arrive by default.
pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 30;
/// Open connections one client address may hold at once, unless set.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: u32 = 128;
/// The largest JSON body accepted, in bytes.
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

/// `custodia`: a privacy- and consent-first customer data platform.
#[derive(Debug, Parser)]
#[command(name = "custodia", version, about)]
pub struct Cli {
    /// Settings shared by every command.
    #[command(flatten)]
    pub options: Options,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by every command.
#[derive(Debug, Default, Clone, Args)]
pub struct Options {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "CUSTODIA_BIND", global = true)]
    pub bind: Option<String>,
    /// Directory for the SQLite database and the master key [default: ./data].
    #[arg(long, env = "CUSTODIA_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// postgres://… for PostgreSQL, or sqlite://PATH [default: DATA_DIR/custodia.db].
    #[arg(
        long,
        env = "CUSTODIA_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Directory of policy files (*.toml) [default: ./policies].
    #[arg(long = "policies", env = "CUSTODIA_POLICY_DIR", global = true)]
    pub policy_dir: Option<PathBuf>,
    /// The master key file, created on first start [default: DATA_DIR/master.key].
    #[arg(long, env = "CUSTODIA_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<PathBuf>,
    /// Access token lifetime in seconds (1–86400) [default: 900].
    #[arg(long, env = "CUSTODIA_TOKEN_TTL", global = true,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub token_ttl: Option<u64>,
    /// Seconds between the signed audit checkpoints a server writes (1–86400) [default: 60].
    #[arg(long, env = "CUSTODIA_AUDIT_CHECKPOINT_INTERVAL", global = true,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub audit_checkpoint_interval: Option<u64>,
    /// Seconds between the retention runs a server does (1–86400) [default: 3600].
    #[arg(long, env = "CUSTODIA_RETENTION_INTERVAL", global = true,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub retention_interval: Option<u64>,
    /// Seconds a key epoch lasts before the next one starts and every key is re-wrapped into
    /// it (60–31536000) [default: 86400].
    #[arg(long, env = "CUSTODIA_KEY_EPOCH", global = true,
          value_parser = clap::value_parser!(u64).range(60..=31_536_000))]
    pub key_epoch: Option<u64>,
    /// Seconds backups and WAL archives are kept: a retired key epoch's key is destroyed this
    /// long after nothing live was wrapped in it (600–315360000) [default: 2592000, 30 days].
    #[arg(long, env = "CUSTODIA_BACKUP_RETENTION", global = true,
          value_parser = clap::value_parser!(u64).range(600..=315_360_000))]
    pub backup_retention: Option<u64>,
    /// Log format [default: human].
    #[arg(long, env = "CUSTODIA_LOG_FORMAT", value_enum, global = true)]
    pub log_format: Option<LogFormat>,
    /// Requests per second per API key, bursts of twice that; 0 turns the limit off
    /// [default: 1000].
    #[arg(long, env = "CUSTODIA_RATE_LIMIT", global = true)]
    pub rate_limit: Option<u32>,
    /// Keep the population in memory to answer segment counts (`on`), or count in the database
    /// only (`off`) [default: on]. See docs/segments.md, "The population index".
    #[arg(long, env = "CUSTODIA_POPULATION_INDEX", global = true)]
    pub population_index: Option<Switch>,
    /// The public base URL of this service (`https://cdp.example.com`), used for every link it
    /// hands out (OpenDSR `results_url`, the discovery document). Never taken from a request's
    /// `Host` or `X-Forwarded-*` headers [default: http:// and the address it listens on].
    #[arg(long, env = "CUSTODIA_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// A reverse proxy (address or network, e.g. 10.0.0.0/8; repeat or comma-separate) whose
    /// `X-Forwarded-For` names the client (for per-address rate limits). Without one, forwarded
    /// headers are ignored.
    #[arg(
        long = "trusted-proxy",
        env = "CUSTODIA_TRUSTED_PROXIES",
        global = true,
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<String>,
    /// Seconds a request body may take to arrive in full; past it the answer is 408 and the
    /// connection is closed (1–3600) [default: 30].
    #[arg(long, env = "CUSTODIA_BODY_TIMEOUT", global = true,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub body_timeout: Option<u64>,
    /// Open connections one client address may hold at once; past it, a new connection's
    /// requests are answered 429 `too_many_connections` and it is closed. Trusted proxies are
    /// exempt (1–100000) [default: 128].
    #[arg(long, env = "CUSTODIA_MAX_CONNECTIONS_PER_ADDRESS", global = true,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_connections_per_address: Option<u32>,
    /// OpenDSR: accept and call `http://` callback URLs and ones that are (or resolve to)
    /// loopback, private or link-local addresses. For development and private networks only.
    #[arg(long, env = "CUSTODIA_OPENDSR_ALLOW_PRIVATE_CALLBACKS", global = true)]
    pub opendsr_allow_private_callbacks: bool,
    /// OpenDSR: the processor's domain, sent as `X-OpenDSR-Processor-Domain` and named by the
    /// development certificate [default: localhost].
    #[arg(long, env = "CUSTODIA_OPENDSR_DOMAIN", global = true)]
    pub opendsr_domain: Option<String>,
    /// OpenDSR: the processor's certificate (PEM), issued for the domain by a trusted CA
    /// [default: a self-signed development certificate made on first start].
    #[arg(
        long,
        env = "CUSTODIA_OPENDSR_CERTIFICATE",
        global = true,
        requires = "opendsr_private_key"
    )]
    pub opendsr_certificate: Option<PathBuf>,
    /// OpenDSR: the certificate's private key (PEM, PKCS#8; ECDSA P-256 or RSA).
    #[arg(
        long,
        env = "CUSTODIA_OPENDSR_PRIVATE_KEY",
        global = true,
        requires = "opendsr_certificate"
    )]
    pub opendsr_private_key: Option<PathBuf>,
    /// OpenDSR: a directory of controllers' certificates, `<controller domain>.pem`. When set,
    /// every request must be signed by one of them (`X-OpenDSR-Signature`,
    /// `X-OpenDSR-Controller-Domain`) on top of the API key.
    #[arg(long, env = "CUSTODIA_OPENDSR_CONTROLLERS", global = true)]
    pub opendsr_controllers: Option<PathBuf>,
}

/// Requests per second per API key by default.
pub const DEFAULT_RATE_LIMIT: u32 = 1000;

/// How logs are written (always to stderr).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// A feature turned on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// On.
    On,
    /// Off.
    Off,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service.
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Work with policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Work with the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Apply the policy's retention periods.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Load people, interactions and consent statements from a file (NDJSON in the native or
    /// the tracking protocol's shapes, or CSV with a header), under the same rules and audit
    /// as the API; idempotent by id, so a rerun resumes. Bad lines are reported as
    /// `file:line: message`; a JSON summary is printed at the end (docs/import.md).
    Import {
        /// The file: `.csv` is read as CSV, anything else as NDJSON.
        file: PathBuf,
        /// The role whose permissions the import acts with (its purposes and actions).
        #[arg(long)]
        role: String,
        /// Check every line and store nothing.
        #[arg(long)]
        dry_run: bool,
        /// Lines per transaction: 10,000 by default on SQLite (at most 50,000; a server
        /// sharing the database waits for each batch's commit to write), 1,000 on PostgreSQL
        /// (at most 5,000).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=crate::import::MAX_BATCH_LINES as i64))]
        batch_size: Option<u32>,
    },
}

/// `custodia retention …`
#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Remove each purpose from the interactions older than its retention and delete those no
    /// purpose holds any more; prints what was removed (JSON).
    Run,
}

/// `custodia audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the audit chain in the database (hashes, sequence, head, stored checkpoints) and,
    /// given saved checkpoints (JSON from `GET /v1/audit/checkpoint`), that nothing they cover
    /// was removed or rewritten. Prints the report as JSON; exits 1 on any failure.
    Verify {
        /// A saved checkpoint file; may be given several times.
        #[arg(long = "checkpoint", value_name = "FILE")]
        checkpoints: Vec<PathBuf>,
    },
}

/// `custodia keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints the new API key alone on stdout, once.
    Create {
        /// A role defined in the policy.
        #[arg(long)]
        role: String,
        /// A human name for the key.
        #[arg(long)]
        name: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id.
    Revoke {
        /// The key id (the part after `ck_`).
        id: String,
    },
    /// Make a new master key current and re-wrap every data key under it (re-run to finish an
    /// interrupted rotation). Data stays readable throughout.
    RotateMaster,
    /// Start a new key epoch now, re-wrap every key into it, retire the epochs nothing is
    /// wrapped in any more and destroy this host's keys of those whose backup retention has
    /// passed (`serve` does the same on schedule). Prints what it did as JSON.
    RotateEpoch,
}

/// `custodia policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy directory; exits 1 with `file:line: message` lines on any error.
    Check {
        /// The directory [default: the configured policy directory].
        dir: Option<PathBuf>,
    },
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on.
    pub bind: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// The database.
    pub database_url: DatabaseUrl,
    /// Policy directory.
    pub policy_dir: PathBuf,
    /// Master key file.
    pub master_key_file: PathBuf,
    /// Access token lifetime.
    pub token_ttl: Duration,
    /// Largest accepted JSON body, in bytes.
    pub body_limit: usize,
    /// How often a server signs an audit checkpoint.
    pub audit_checkpoint_interval: Duration,
    /// How often a server applies retention.
    pub retention_interval: Duration,
    /// OpenDSR settings.
    pub opendsr: OpenDsrSettings,
    /// Requests per second per API key (0: no limit).
    pub rate_limit: u32,
    /// Whether segment counts are answered from the process's population index.
    pub population_index: bool,
    /// Key epochs: how long one lasts, how long backups are kept.
    pub epochs: crate::vault::EpochSchedule,
    /// The configured public base URL; `None`: the listening address.
    pub public_url: Option<crate::net::PublicUrl>,
    /// Proxies whose forwarded headers are believed.
    pub trusted_proxies: crate::net::TrustedProxies,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
    /// Open connections one client address may hold at once.
    pub max_connections_per_address: u32,
}

/// How the OpenDSR interface signs and whom it trusts.
#[derive(Debug, Clone)]
pub struct OpenDsrSettings {
    /// The processor's domain.
    pub domain: String,
    /// A configured certificate and private key (PEM files); `None`: the development one.
    pub certificate: Option<(PathBuf, PathBuf)>,
    /// The controllers' certificates directory, when signatures are required.
    pub controllers: Option<PathBuf>,
    /// Whether callback URLs may be http:// or reach internal addresses.
    pub allow_private_callbacks: bool,
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Settings {
    /// Where SQLite puts its temporary files for this database (`store::sqlite_temporary_dir`);
    /// `None` on PostgreSQL.
    pub fn sqlite_temporary_dir(&self) -> Option<PathBuf> {
        match &self.database_url {
            DatabaseUrl::Sqlite(path) => Some(crate::store::sqlite_temporary_dir(path)),
            DatabaseUrl::Postgres(_) => None,
        }
    }

    /// Applies defaults to what the flags and environment gave.
    pub fn resolve(options: &Options) -> Result<Settings, ConfigError> {
        let data_dir = options
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = match &options.database_url {
            Some(raw) => DatabaseUrl::parse(raw).map_err(ConfigError)?,
            None => DatabaseUrl::Sqlite(data_dir.join("custodia.db")),
        };
        let public_url = options
            .public_url
            .as_deref()
            .map(crate::net::PublicUrl::parse)
            .transpose()
            .map_err(ConfigError)?;
        let trusted_proxies =
            crate::net::TrustedProxies::parse(options.trusted_proxies.iter().map(String::as_str))
                .map_err(ConfigError)?;
        Ok(Settings {
            body_timeout: Duration::from_secs(
                options.body_timeout.unwrap_or(DEFAULT_BODY_TIMEOUT_SECS),
            ),
            max_connections_per_address: options
                .max_connections_per_address
                .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_ADDRESS),
            public_url,
            trusted_proxies,
            bind: options
                .bind
                .clone()
                .unwrap_or_else(|| DEFAULT_BIND.to_owned()),
            master_key_file: options
                .master_key_file
                .clone()
                .unwrap_or_else(|| data_dir.join("master.key")),
            policy_dir: options
                .policy_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_POLICY_DIR)),
            token_ttl: Duration::from_secs(options.token_ttl.unwrap_or(DEFAULT_TOKEN_TTL_SECS)),
            body_limit: DEFAULT_BODY_LIMIT,
            retention_interval: Duration::from_secs(
                options.retention_interval.unwrap_or(DEFAULT_RETENTION_SECS),
            ),
            audit_checkpoint_interval: Duration::from_secs(
                options
                    .audit_checkpoint_interval
                    .unwrap_or(DEFAULT_AUDIT_CHECKPOINT_SECS),
            ),
            rate_limit: options.rate_limit.unwrap_or(DEFAULT_RATE_LIMIT),
            population_index: options.population_index != Some(Switch::Off),
            epochs: crate::vault::EpochSchedule {
                period: options
                    .key_epoch
                    .map(Duration::from_secs)
                    .unwrap_or(crate::vault::DEFAULT_KEY_EPOCH),
                backup_retention: options
                    .backup_retention
                    .map(Duration::from_secs)
                    .unwrap_or(crate::vault::DEFAULT_BACKUP_RETENTION),
            },
            opendsr: OpenDsrSettings {
                domain: options
                    .opendsr_domain
                    .clone()
                    .unwrap_or_else(|| "localhost".to_owned()),
                certificate: options
                    .opendsr_certificate
                    .clone()
                    .zip(options.opendsr_private_key.clone()),
                controllers: options.opendsr_controllers.clone(),
                allow_private_callbacks: options.opendsr_allow_private_callbacks,
            },
            database_url,
            data_dir,
        })
    }
}
