//! Key epochs at work: the schedule (how long an epoch lasts, how long backups are kept), the
//! first epoch, and the periodic maintenance that starts a new epoch, re-wraps every live key
//! into it, retires the epochs nothing live is wrapped in any more, and destroys their keys
//! once every backup that may still need them has expired.
//!
//! An epoch's life: started (new keys are wrapped in it) → a period later, the next one starts
//! and every key is re-wrapped into that → retired (nothing live wrapped in it) → a backup
//! retention later, destroyed: this host's epoch file is advanced past it, and every copy of a
//! key wrapped in it (backups, WAL archives, replicas, dead rows) is unreadable for good.

use std::time::Duration;

use chrono::NaiveDateTime;
use serde::Serialize;

use super::{rotation, Vault, VaultError};
use crate::crypto::EpochRatchet;
use crate::store::keys::{self as key_store, EpochRow};
use crate::store::DbConnection;

/// The default length of a key epoch: a day.
pub const DEFAULT_KEY_EPOCH: Duration = Duration::from_secs(86_400);
/// How long a re-wrap lease lasts without renewal (a batch renews it).
const REWRAP_LEASE: Duration = Duration::from_secs(120);
/// The default backup retention: 30 days.
pub const DEFAULT_BACKUP_RETENTION: Duration = Duration::from_secs(30 * 86_400);

/// How long an epoch lasts and how long backups are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochSchedule {
    /// A new epoch starts this long after the current one did.
    pub period: Duration,
    /// How long backups (and WAL archives) are kept: a retired epoch's key is destroyed this
    /// long after nothing live was wrapped in it any more.
    pub backup_retention: Duration,
}

impl Default for EpochSchedule {
    fn default() -> Self {
        EpochSchedule {
            period: DEFAULT_KEY_EPOCH,
            backup_retention: DEFAULT_BACKUP_RETENTION,
        }
    }
}

fn after(at: NaiveDateTime, duration: Duration) -> NaiveDateTime {
    at + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// The time allowed between an epoch's end and its retirement: the maintenance tick, the
/// re-wrap (about 13 minutes for a million keys under full write load, docs/benchmarks.md) and
/// the pass that finds nothing left in the old epoch.
pub const RETIREMENT_ALLOWANCE: Duration = Duration::from_secs(3_600);

/// When everything wrapped in an epoch started at `started` is unreadable in every copy: the
/// epoch ends a period after it started (or now, if that is past), is retired once its keys are
/// re-wrapped (within [`RETIREMENT_ALLOWANCE`]), and its key is destroyed a backup retention
/// after that.
pub(crate) fn reaches_backups_by(
    schedule: &EpochSchedule,
    started: NaiveDateTime,
    now: NaiveDateTime,
) -> NaiveDateTime {
    after(
        after(
            after(started, schedule.period).max(now),
            RETIREMENT_ALLOWANCE,
        ),
        schedule.backup_retention,
    )
}

/// The current epoch, starting the first one (the oldest this host's file can compute) when the
/// database has none. Refuses an epoch file that does not match the database's epoch.
pub(super) fn ensure_current(
    conn: &mut DbConnection,
    ratchet: &EpochRatchet,
    now: NaiveDateTime,
) -> Result<EpochRow, VaultError> {
    loop {
        if let Some(row) = key_store::current_epoch(conn)? {
            let ours = ratchet.key(row.epoch).map(|key| key.check());
            if ours.as_deref() != Some(row.key_check.as_str()) {
                return Err(VaultError::EpochMismatch {
                    path: format!("epoch file (oldest epoch {})", ratchet.oldest()),
                    epoch: row.epoch,
                });
            }
            return Ok(row);
        }
        let epoch = ratchet.oldest();
        let row = EpochRow {
            epoch,
            key_check: ratchet
                .key(epoch)
                .map(|key| key.check())
                .unwrap_or_default(),
            started_at: now,
            retired_at: None,
            destroyed_at: None,
            rewrap_until: None,
        };
        key_store::insert_epoch(conn, &row)?;
    }
}

/// What one maintenance run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EpochReport {
    /// The current epoch afterwards.
    pub current: i64,
    /// The epoch this run started, if it did.
    pub started: Option<i64>,
    /// Keys re-wrapped into the current epoch.
    pub rewrapped: i64,
    /// Whether another process held the re-wrap lease, so this run left re-wrapping to it.
    pub rewrap_deferred: bool,
    /// Epochs retired by this run (nothing live wrapped in them any more).
    pub retired: Vec<i64>,
    /// Epochs whose keys this host destroyed in this run.
    pub destroyed: Vec<i64>,
    /// The oldest epoch this host can still compute afterwards.
    pub oldest_kept: i64,
}

/// One maintenance run at `now`: starts the next epoch when the current one's period is over
/// (or at once with `start_new`), re-wraps every key not in the current epoch under the current
/// master key, retires the epochs nothing live is wrapped in, and destroys this host's keys of
/// retired epochs whose backup retention has passed. Safe to run in several processes at once;
/// every step is idempotent, so an interrupted run is finished by the next.
pub fn maintain_epochs(
    conn: &mut DbConnection,
    vault: &Vault,
    now: NaiveDateTime,
    start_new: bool,
) -> Result<EpochReport, VaultError> {
    let schedule = vault.schedule();
    let mut report = EpochReport::default();
    let mut current = key_store::current_epoch(conn)?.ok_or(VaultError::Corrupt("key epochs"))?;
    if start_new || now >= after(current.started_at, schedule.period) {
        let next = current.epoch + 1;
        let check = vault
            .epoch_check(next)
            .ok_or(VaultError::EpochDestroyed(next))?;
        let started = key_store::insert_epoch(
            conn,
            &EpochRow {
                epoch: next,
                key_check: check,
                started_at: now,
                retired_at: None,
                destroyed_at: None,
                rewrap_until: None,
            },
        )?;
        if started {
            report.started = Some(next);
        }
        current = key_store::current_epoch(conn)?.ok_or(VaultError::Corrupt("key epochs"))?;
    }
    if vault.epoch_check(current.epoch).as_deref() != Some(current.key_check.as_str()) {
        return Err(VaultError::EpochMismatch {
            path: "epoch file".into(),
            epoch: current.epoch,
        });
    }
    vault.set_current_epoch(current.epoch);
    report.current = current.epoch;

    // One process at a time re-wraps (a lease in the epoch's row, renewed after every batch);
    // the others leave it to that one. `rotate-epoch` (start_new) waits for its turn.
    let started = std::time::Instant::now();
    let lease_end = |elapsed: std::time::Duration| after(now, elapsed + REWRAP_LEASE);
    loop {
        let at = after(now, started.elapsed());
        if key_store::take_rewrap_lease(conn, current.epoch, at, lease_end(started.elapsed()))? {
            let epoch = current.epoch;
            let rewrapped = rotation::rewrap_all(conn, vault, &mut |conn| {
                key_store::renew_rewrap_lease(conn, epoch, lease_end(started.elapsed()))
            });
            key_store::release_rewrap_lease(conn, epoch)?;
            report.rewrapped = rewrapped?;
            break;
        }
        if !start_new || started.elapsed() > REWRAP_LEASE * 5 {
            report.rewrap_deferred = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }

    let epochs = key_store::epochs(conn)?;
    for epoch in epochs.iter().filter(|row| row.epoch < current.epoch) {
        if epoch.retired_at.is_some() {
            continue;
        }
        if key_store::wrapped_up_to_epoch(conn, epoch.epoch)? > 0 {
            // Keys are still wrapped in it (or an earlier one): a later run retires it.
            break;
        }
        key_store::retire_epoch(conn, epoch.epoch, now)?;
        report.retired.push(epoch.epoch);
    }

    // Destroy, oldest first, every epoch this host still holds that is retired, past its
    // retention, and wraps nothing live (checked again just before).
    let epochs = key_store::epochs(conn)?;
    let mut destroy_before = vault.oldest_epoch();
    for epoch in epochs
        .iter()
        .filter(|row| row.epoch >= vault.oldest_epoch() && row.epoch < current.epoch)
    {
        let due = epoch
            .retired_at
            .is_some_and(|retired| now >= after(retired, schedule.backup_retention));
        if !due {
            break;
        }
        destroy_before = epoch.epoch + 1;
    }
    if destroy_before > vault.oldest_epoch() {
        if key_store::wrapped_up_to_epoch(conn, destroy_before - 1)? == 0 {
            let first = vault.oldest_epoch();
            vault.destroy_epochs_before(destroy_before)?;
            for epoch in first..destroy_before {
                key_store::mark_epoch_destroyed(conn, epoch, now)?;
                report.destroyed.push(epoch);
            }
            tracing::info!(
                destroyed_before = destroy_before,
                "destroyed the keys of retired key epochs"
            );
        } else {
            tracing::error!(
                epoch = destroy_before - 1,
                "a retired key epoch wraps live keys again; its key is kept"
            );
        }
    }
    report.oldest_kept = vault.oldest_epoch();
    Ok(report)
}

/// The audit action of starting a key epoch (target: its number; records: keys re-wrapped).
pub const ACTION_ROTATE_EPOCH: &str = "keys.rotate_epoch";
/// The audit action of destroying a key epoch's key on a host (target: its number).
pub const ACTION_DESTROY_EPOCH: &str = "keys.destroy_epoch";

/// Appends the audit entries of a maintenance run that started or destroyed an epoch.
pub fn audit_epoch_report(
    conn: &mut DbConnection,
    policy_hash: &str,
    actor: &crate::audit::Actor,
    report: &EpochReport,
) -> Result<(), crate::store::StoreError> {
    use crate::audit::Entry;
    let mut entries = Vec::new();
    if let Some(started) = report.started {
        entries.push(
            Entry::new(actor, ACTION_ROTATE_EPOCH)
                .target(started.to_string())
                .records(usize::try_from(report.rewrapped).unwrap_or(usize::MAX)),
        );
    }
    for epoch in &report.destroyed {
        entries.push(Entry::new(actor, ACTION_DESTROY_EPOCH).target(epoch.to_string()));
    }
    crate::audit::record(conn, policy_hash, entries)
}
