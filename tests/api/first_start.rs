//! First start with nothing configured, and the master key rules.

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Stdio};

use crate::helpers::{custodia_command, listening_address, sample_policy_dir};

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn copy_sample_policies(to: &std::path::Path) {
    let target = to.join("policies");
    std::fs::create_dir(&target).unwrap();
    for entry in std::fs::read_dir(sample_policy_dir()).unwrap() {
        let path = entry.unwrap().path();
        // The policy files; `notice-texts/` holds the texts the notices' hashes are of.
        if path.is_file() {
            std::fs::copy(&path, target.join(path.file_name().unwrap())).unwrap();
        }
    }
}

/// Starts `custodia serve` with nothing configured in `cwd`: it must say it listens on port
/// 8080 of the loopback address, and answer there as ready.
async fn serve_in(cwd: &std::path::Path) -> Server {
    let mut server = Server(
        custodia_command()
            .arg("serve")
            .current_dir(cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = listening_address(&mut server.0).await;
    assert_eq!(base, "http://127.0.0.1:8080");
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status(), reqwest::StatusCode::OK);
    server
}

#[tokio::test]
async fn serve_with_nothing_configured_creates_its_data_and_listens_on_8080() {
    let cwd = tempfile::tempdir().unwrap();
    copy_sample_policies(cwd.path());

    let server = serve_in(cwd.path()).await;

    let data = cwd.path().join("data");
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let key_path = data.join("master.key");
    let key_meta = std::fs::metadata(&key_path).unwrap();
    assert_eq!(key_meta.len(), 32);
    assert_eq!(key_meta.permissions().mode() & 0o777, 0o600);
    let key = std::fs::read(&key_path).unwrap();
    assert!(data.join("custodia.db").is_file());
    assert!(
        data.join("custodia.db-wal").exists(),
        "SQLite runs in WAL mode"
    );
    // SQLite's temporary files (sorts, journals) stay beside the database, owner-only.
    assert_eq!(
        std::fs::metadata(data.join("tmp"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    drop(server);

    // A second start keeps the key it found.
    let _again = serve_in(cwd.path()).await;
    assert_eq!(
        std::fs::read(&key_path).unwrap(),
        key,
        "the key is never overwritten"
    );
}

fn serve_with_key(contents: &[u8], mode: u32) -> (std::process::Output, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("master.key");
    std::fs::write(&key_path, contents).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(mode)).unwrap();
    let output = custodia_command()
        .arg("serve")
        .arg("--bind=127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--policies")
        .arg(sample_policy_dir())
        .output()
        .unwrap();
    (output, std::fs::read(&key_path).unwrap())
}

#[test]
fn a_master_key_of_the_wrong_size_is_refused_and_left_alone() {
    let (output, after) = serve_with_key(&[1u8; 31], 0o600);

    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("holds 31 bytes") && stderr.contains("exactly 32 bytes"),
        "{stderr}"
    );
    assert_eq!(after, vec![1u8; 31]);
}

#[test]
fn a_master_key_readable_by_others_is_refused() {
    let (output, after) = serve_with_key(&[2u8; 32], 0o644);

    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("mode 0644") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    assert_eq!(after, vec![2u8; 32]);
}
