//! The two migration folders stay in step, and migrating is idempotent and safe when several
//! processes start at once.

use std::collections::BTreeSet;
use std::path::Path;

use crate::helpers::{custodia_command, fresh_database};

fn migration_names(backend: &str) -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn both_backends_have_the_same_migrations() {
    let sqlite = migration_names("sqlite");
    let postgres = migration_names("postgres");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, postgres);
    for name in &sqlite {
        for backend in ["sqlite", "postgres"] {
            for file in ["up.sql", "down.sql"] {
                let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("migrations")
                    .join(backend)
                    .join(name)
                    .join(file);
                assert!(path.is_file(), "{} is missing", path.display());
            }
        }
    }
}

#[test]
fn concurrent_migrations_of_a_fresh_database_all_succeed_and_repeat_harmlessly() {
    let database = fresh_database();
    let data_dir = tempfile::tempdir().unwrap();
    let migrate = || {
        let mut command = custodia_command();
        command
            .arg("migrate")
            .env("CUSTODIA_DATA_DIR", data_dir.path())
            .env("CUSTODIA_DATABASE_URL", &database.url);
        command
    };

    let handles: Vec<_> = (0..3)
        .map(|_| {
            let mut command = migrate();
            std::thread::spawn(move || command.output().unwrap())
        })
        .collect();

    for handle in handles {
        let output = handle.join().unwrap();
        assert!(output.status.success(), "{output:?}");
    }
    let again = migrate().output().unwrap();
    assert!(again.status.success(), "{again:?}");
    let keys = {
        let mut command = custodia_command();
        command
            .args(["keys", "list"])
            .env("CUSTODIA_DATA_DIR", data_dir.path())
            .env("CUSTODIA_DATABASE_URL", &database.url)
            .output()
            .unwrap()
    };
    assert!(
        keys.status.success(),
        "the migrated schema answers queries: {keys:?}"
    );
}
