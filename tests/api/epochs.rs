//! Key epochs: a backup made before an erasure becomes unreadable for everyone once the epoch
//! that wrapped its keys is destroyed (the clock is simulated by running the maintenance with a
//! later `now`), written as an attacker would read it: every master key and the epoch file from
//! disk, every wrapped key in the backup, unwrap, decrypt. Also: the erasure receipt's bound,
//! the command line, and a host whose epoch file differs.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use custodia::crypto::{
    epoch_file_for, unwrap_secret, DataKey, EpochRatchet, FieldContext, MasterKey, MasterKeyring,
    WrapContext, DATA_KEY_ID_LEN,
};
use custodia::store::schema::{data_keys, key_epochs, key_material, subject_requests, subjects};
use custodia::vault::{maintain_epochs, Vault};
use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

/// A wrapped data key as stored: (subject_pk, key id, master key id, epoch, wrapped).
pub type WrappedDataKey = (String, String, String, Option<i64>, Vec<u8>);

/// What a copy of the database holds that matters to an attacker: the wrapped keys and the
/// subject ids sealed under them.
#[derive(Debug, Clone, Default)]
pub struct Backup {
    /// The wrapped data keys.
    pub data_keys: Vec<WrappedDataKey>,
    /// (name, master key id, epoch, wrapped).
    pub key_material: Vec<(String, String, Option<i64>, Vec<u8>)>,
    /// subject_pk → sealed subject id.
    pub sealed_ids: BTreeMap<String, Vec<u8>>,
    /// Data-subject requests: (id, key id, master key id, epoch, wrapped key, sealed identity).
    pub requests: Vec<WrappedRequest>,
}

/// A request's wrapped key and sealed identity, as stored.
pub type WrappedRequest = (
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<Vec<u8>>,
    Option<String>,
);

fn read_backup(conn: &mut custodia::store::DbConnection) -> Backup {
    let data_keys = data_keys::table
        .select((
            data_keys::subject_pk,
            data_keys::key_id,
            data_keys::master_key_id,
            data_keys::epoch,
            data_keys::wrapped,
        ))
        .load(conn)
        .unwrap();
    let key_material = key_material::table
        .select((
            key_material::name,
            key_material::master_key_id,
            key_material::epoch,
            key_material::wrapped,
        ))
        .load(conn)
        .unwrap();
    let sealed_ids = subjects::table
        .select((subjects::id, subjects::subject_id_ct))
        .load::<(String, Vec<u8>)>(conn)
        .unwrap()
        .into_iter()
        .collect();
    let requests = subject_requests::table
        .select((
            subject_requests::id,
            subject_requests::key_id,
            subject_requests::key_master_key_id,
            subject_requests::key_epoch,
            subject_requests::key_wrapped,
            subject_requests::identity_ct,
        ))
        .load(conn)
        .unwrap();
    Backup {
        data_keys,
        key_material,
        sealed_ids,
        requests,
    }
}

/// A backup as an operator makes one: on SQLite a copy of the database files, read back from
/// the copy; on PostgreSQL the rows as a logical dump holds them.
pub async fn take_backup(app: &TestApp) -> Backup {
    if let custodia::store::DatabaseUrl::Sqlite(path) = &app.settings.database_url {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("backup.db");
        for suffix in ["", "-wal"] {
            let mut from = path.as_os_str().to_owned();
            from.push(suffix);
            let mut to = copy.as_os_str().to_owned();
            to.push(suffix);
            if std::path::Path::new(&from).exists() {
                std::fs::copy(&from, &to).unwrap();
            }
        }
        let mut conn = custodia::store::DbConnection::Sqlite(
            diesel::SqliteConnection::establish(copy.to_str().unwrap()).unwrap(),
        );
        return read_backup(&mut conn);
    }
    let database = app.database();
    tokio::task::spawn_blocking(move || read_backup(&mut database.connection().unwrap()))
        .await
        .unwrap()
}

/// The attacker: every master key on disk (current and retired) and the epoch file, against
/// every wrapped key of `backup`. Returns the subject ids it can decrypt (from subjects and from
/// data-subject requests' identities), and whether a deployment secret unwrapped.
pub fn read_as_attacker(app: &TestApp, backup: &Backup) -> (Vec<String>, bool) {
    let keyring = MasterKeyring::load(&app.settings.master_key_file).unwrap();
    let ratchet = EpochRatchet::load(&epoch_file_for(&app.settings.master_key_file)).unwrap();
    let wrapping = |master_id: &str, epoch: Option<i64>| -> Option<MasterKey> {
        let master = keyring.find(master_id)?;
        match epoch {
            Some(epoch) => Some(ratchet.key(epoch)?.wrapping_key(master)),
            None => None,
        }
    };
    let mut read = Vec::new();
    for (pk, key_id, master_id, epoch, wrapped) in &backup.data_keys {
        let Some(key) = wrapping(master_id, *epoch) else {
            continue;
        };
        let context = WrapContext {
            label: "data-key",
            owner: pk,
        };
        let Ok(secret) = unwrap_secret(&key, &context, wrapped) else {
            continue;
        };
        let mut id = [0u8; DATA_KEY_ID_LEN];
        hex::decode_to_slice(key_id, &mut id).unwrap();
        let data_key = DataKey::new(id, &secret);
        let place = FieldContext {
            subject: pk,
            record: "subject",
            field: "$subject_id",
        };
        if let Some(sealed) = backup.sealed_ids.get(pk) {
            let plain = data_key
                .decrypt(&place, sealed)
                .expect("an unwrapped key decrypts");
            read.push(String::from_utf8(plain).unwrap());
        }
    }
    for (id, key_id, master_id, epoch, wrapped, identity) in &backup.requests {
        let (Some(key_id), Some(master_id), Some(wrapped), Some(identity)) =
            (key_id, master_id, wrapped, identity)
        else {
            continue;
        };
        let Some(key) = wrapping(master_id, *epoch) else {
            continue;
        };
        let context = WrapContext {
            label: "request-key",
            owner: id,
        };
        let Ok(secret) = unwrap_secret(&key, &context, wrapped) else {
            continue;
        };
        let mut key_bytes = [0u8; DATA_KEY_ID_LEN];
        hex::decode_to_slice(key_id, &mut key_bytes).unwrap();
        let request_key = DataKey::new(key_bytes, &secret);
        let place = FieldContext {
            subject: "request",
            record: id,
            field: "identity",
        };
        let plain = custodia::subjects::sealed::open(&request_key, &place, identity)
            .expect("an unwrapped request key decrypts");
        read.push(format!("request:{}", String::from_utf8(plain).unwrap()));
    }
    let secret_readable = backup
        .key_material
        .iter()
        .any(|(name, master_id, epoch, wrapped)| {
            wrapping(master_id, *epoch).is_some_and(|key| {
                unwrap_secret(
                    &key,
                    &WrapContext {
                        label: "root",
                        owner: name,
                    },
                    wrapped,
                )
                .is_ok()
            })
        });
    read.sort();
    (read, secret_readable)
}

async fn store_people(app: &TestApp, token: &str, people: &[&str]) {
    for person in people {
        let response = app
            .post_json(
                "/v1/interactions",
                Some(token),
                &json!({"id": "e1", "subject_id": person, "type": "note", "channel": "web",
                        "occurred_at": "2026-11-01T10:00:00Z", "purposes": ["support"],
                        "data": {"message": format!("note about {person}")}}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
}

/// Runs the epoch maintenance at a simulated `now`, as `serve` would then.
async fn maintain_at(app: &TestApp, now: NaiveDateTime) -> custodia::vault::EpochReport {
    let database = app.database();
    let key_file = app.settings.master_key_file.clone();
    let schedule = app.settings.epochs;
    tokio::task::spawn_blocking(move || {
        let mut conn = database.connection().unwrap();
        let vault = Vault::open(&mut conn, &key_file)
            .unwrap()
            .with_schedule(schedule);
        maintain_epochs(&mut conn, &vault, now, false).unwrap()
    })
    .await
    .unwrap()
}

async fn epoch_started(app: &TestApp, epoch: i64) -> NaiveDateTime {
    let database = app.database();
    tokio::task::spawn_blocking(move || {
        key_epochs::table
            .find(epoch)
            .select(key_epochs::started_at)
            .first(&mut *database.connection().unwrap())
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_backup_from_before_an_erasure_is_unreadable_for_everyone_once_its_epoch_is_destroyed() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    store_people(&app, &collector, &["erased-person", "kept-person"]).await;
    let filed = app
        .post_json(
            "/v1/requests",
            Some(&compliance),
            &json!({"type": "access", "regulation": "gdpr", "subject_id": "erased-person"}),
        )
        .await;
    assert_eq!(filed.status(), StatusCode::CREATED);
    let backup = take_backup(&app).await;

    // Before: the backup is readable with the keys on disk (so this test can fail).
    let (read, secrets) = read_as_attacker(&app, &backup);
    assert_eq!(
        read,
        vec!["erased-person", "kept-person", "request:erased-person"],
        "{backup:?}"
    );
    assert!(secrets);

    let erased = app
        .delete("/v1/subjects/erased-person", Some(&compliance))
        .await;
    assert_eq!(erased.status(), StatusCode::OK);
    let receipt: Value = erased.json().await.unwrap();
    let bound: DateTime<Utc> = receipt["backups_unreadable_by"]
        .as_str()
        .expect("the receipt states the bound")
        .parse()
        .unwrap();
    let started = epoch_started(&app, 1).await;
    let schedule = app.settings.epochs;
    let promised = started
        + chrono::Duration::from_std(
            schedule.period + custodia::vault::RETIREMENT_ALLOWANCE + schedule.backup_retention,
        )
        .unwrap();
    assert!(
        (bound.naive_utc() - promised).num_seconds().abs() <= 1,
        "the bound is the end of the epoch, the allowance for re-wrapping and the retention: \
         {bound} vs {promised}"
    );

    // Within the bound the old backup is still readable: that is what the bound says.
    let (read, _) = read_as_attacker(&app, &backup);
    assert!(read.contains(&"erased-person".to_owned()));

    // The epoch ends: a new one starts and every live key is re-wrapped into it.
    let end_of_epoch = started + chrono::Duration::from_std(schedule.period).unwrap();
    let rotated = maintain_at(&app, end_of_epoch).await;
    assert_eq!(rotated.started, Some(2));
    assert_eq!(
        rotated.rewrapped,
        1 + 3,
        "the kept person's key and the three secrets"
    );
    assert_eq!(rotated.retired, vec![1]);
    assert!(
        rotated.destroyed.is_empty(),
        "kept for the backup retention"
    );
    let (read, _) = read_as_attacker(&app, &backup);
    assert!(
        read.contains(&"erased-person".to_owned()),
        "not yet: backups may be restored"
    );

    // The retention passes: epoch 1's key is destroyed, and with it the whole backup.
    let after_retention = end_of_epoch
        + chrono::Duration::from_std(schedule.backup_retention).unwrap()
        + chrono::Duration::seconds(1);
    assert!(after_retention <= bound.naive_utc() + chrono::Duration::seconds(2));
    let destroyed = maintain_at(&app, after_retention).await;
    assert_eq!(destroyed.destroyed, vec![1]);
    assert_eq!(destroyed.oldest_kept, 2);
    let (read, secrets) = read_as_attacker(&app, &backup);
    assert!(
        read.is_empty(),
        "nothing in the old backup decrypts: {read:?}"
    );
    assert!(!secrets, "not even the deployment secrets");

    // The live database is whole: a new backup reads the kept person, and the API serves them.
    let (read, secrets) = read_as_attacker(&app, &take_backup(&app).await);
    assert_eq!(read, vec!["kept-person"]);
    assert!(secrets);
    let support = app.token_for("support").await;
    let history = app
        .get(
            "/v1/subjects/kept-person/interactions?purpose=support",
            Some(&support),
        )
        .await;
    assert_eq!(history.status(), StatusCode::OK);
    let body: Value = history.json().await.unwrap();
    assert_eq!(
        body["interactions"][0]["data"]["message"],
        "note about kept-person"
    );
}

#[tokio::test]
async fn rotate_epoch_on_the_command_line_rewraps_every_key_and_is_audited() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    store_people(&app, &collector, &["a", "b", "c"]).await;

    let output = app.run_cli(&["keys", "rotate-epoch"]);

    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["started"], 2, "{report}");
    assert_eq!(report["current"], 2, "{report}");
    assert_eq!(report["rewrapped"], 3 + 3, "{report}");
    assert_eq!(report["retired"], json!([1]), "{report}");
    assert_eq!(report["destroyed"], json!([]), "{report}");
    let backup = take_backup(&app).await;
    assert!(backup.data_keys.iter().all(|row| row.3 == Some(2)));
    assert!(backup.key_material.iter().all(|row| row.2 == Some(2)));
    let (read, _) = read_as_attacker(&app, &backup);
    assert_eq!(read, vec!["a", "b", "c"]);

    let compliance = app.token_for("compliance").await;
    let entries: Value = app
        .get_json("/v1/audit?action=keys.rotate_epoch", Some(&compliance))
        .await;
    assert_eq!(entries["entries"][0]["target"], "2", "{entries}");
    assert_eq!(entries["entries"][0]["records"], 6, "{entries}");
}

#[tokio::test]
async fn a_host_whose_epoch_file_differs_refuses_to_start() {
    let app = spawn_app().await;
    let epoch_file = epoch_file_for(&app.settings.master_key_file);
    std::fs::remove_file(&epoch_file).unwrap();
    EpochRatchet::load_or_create(&epoch_file).unwrap();
    let output = app.run_cli(&["keys", "rotate-epoch"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not match"), "{stderr}");
}
