//! Every list pages the same way: the same mistake gets the same answer on each.

use reqwest::StatusCode;

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn every_list_refuses_a_bad_limit_and_a_foreign_cursor_alike() {
    let app = spawn_app().await;
    let lists = [
        ("compliance", "/v1/audit?", 500),
        ("compliance", "/v1/requests?", 200),
        (
            "support",
            "/v1/subjects/cust-p/interactions?purpose=support&",
            500,
        ),
        ("marketer", "/v1/segments?", 200),
        (
            "marketer",
            "/v1/segments/0191d6a4-0000-7000-8000-000000000000/members?",
            1000,
        ),
    ];
    for (role, list, max) in lists {
        let token = app.token_for(role).await;
        for limit in [0, -1, max + 1] {
            let refused = assert_problem(
                app.get(&format!("{list}limit={limit}"), Some(&token)).await,
                StatusCode::BAD_REQUEST,
                "invalid_limit",
            )
            .await;
            assert_eq!(
                refused["detail"],
                format!("`limit` must be between 1 and {max}"),
                "{list}"
            );
        }
        // Not base64url, and base64url of a position no list gives ("no pe!").
        for cursor in ["xyz!", "bm8gcGUh"] {
            assert_problem(
                app.get(&format!("{list}cursor={cursor}"), Some(&token))
                    .await,
                StatusCode::BAD_REQUEST,
                "invalid_cursor",
            )
            .await;
        }
    }
}
