//! The key commands of the CLI, against the same database the server uses.

use reqwest::StatusCode;

use crate::helpers::spawn_app;

#[tokio::test]
async fn keys_create_prints_only_the_key_which_then_works_over_http() {
    let app = spawn_app().await;

    let output = app.run_cli(&[
        "keys",
        "create",
        "--role",
        "compliance",
        "--name",
        "officer",
    ]);

    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout holds the key alone: {stdout:?}");
    let api_key = lines[0];
    assert!(api_key.starts_with("ck_") && api_key.len() == 3 + 16 + 1 + 64);
    let token = app.token_for_key(api_key).await;
    assert_eq!(
        app.get("/v1/policy", Some(&token)).await.status(),
        StatusCode::OK
    );

    let key_id = api_key.split('_').nth(1).unwrap();
    let listed = app.run_cli(&["keys", "list"]);
    let listing = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listing.contains(key_id) && listing.contains("compliance") && listing.contains("officer")
    );
    assert!(
        !listing.contains(api_key.split('_').nth(2).unwrap()),
        "no secret is listed"
    );
}

#[tokio::test]
async fn keys_create_refuses_a_role_the_policy_does_not_define() {
    let app = spawn_app().await;

    let output = app.run_cli(&["keys", "create", "--role", "superuser", "--name", "x"]);

    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8(output.stderr)
        .unwrap()
        .contains("unknown role `superuser`"));
    assert_eq!(crate::helpers::stored_key_count(&app).await, 0);
}

#[tokio::test]
async fn keys_revoke_of_an_unknown_id_exits_1() {
    let app = spawn_app().await;

    let output = app.run_cli(&["keys", "revoke", "0123456789abcdef"]);

    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8(output.stderr)
        .unwrap()
        .contains("no API key has the id"));
}
