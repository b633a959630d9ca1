//! The in-memory decision (`Policy::legal_basis`) and the SQL filter built from the same policy
//! (`store::legal_basis`) agree on randomly generated ledgers, for every declared purpose.

use custodia::policy::load_dir;
use custodia::store::legal_basis::subjects_with_legal_basis;
use custodia::store::schema::restrictions;
use custodia::subjects::{find, processing_state, SubjectId};
use custodia::vault::Vault;
use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

/// A small deterministic generator (xorshift64*), so a failure can be replayed from its seed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const CONSENT_PURPOSES: [&str; 4] = [
    "marketing",
    "marketing.email",
    "marketing.sms",
    "marketing.personalization",
];
const OBJECTABLE: [&str; 4] = [
    "marketing",
    "marketing.sms",
    "analytics",
    "fraud_prevention",
];
const SUBJECTS: usize = 48;

#[tokio::test]
async fn the_sql_filter_and_the_in_memory_decision_agree_on_random_ledgers() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let seed = 0x5eed_0000_0000_0001_u64;
    let mut random = Random(seed);
    let mut restricted = Vec::new();
    for subject in 0..SUBJECTS {
        let subject_id = format!("s{subject}");
        let put = app
            .request(
                reqwest::Method::PUT,
                &format!("/v1/subjects/{subject_id}"),
                Some(&collector),
                Some(&json!({})),
            )
            .await;
        assert_eq!(put.status(), StatusCode::CREATED);
        for _ in 0..random.below(7) {
            let status = if random.below(2) == 0 {
                "granted"
            } else {
                "withdrawn"
            };
            let body = json!({"purpose": random.pick(&CONSENT_PURPOSES), "status": status, "source": "web",
                              "method": "checkbox", "notice": {"id": "newsletter", "version": "3"}});
            let response = app
                .post_json(
                    &format!("/v1/subjects/{subject_id}/consents"),
                    Some(&collector),
                    &body,
                )
                .await;
            assert_eq!(response.status(), StatusCode::CREATED);
        }
        for _ in 0..random.below(3) {
            if random.below(3) == 0 {
                let body = json!({"purpose": random.pick(&OBJECTABLE)});
                let response = app
                    .post_json(
                        &format!("/v1/subjects/{subject_id}/objections"),
                        Some(&collector),
                        &body,
                    )
                    .await;
                assert_eq!(response.status(), StatusCode::OK);
            }
        }
        if random.below(8) == 0 {
            restricted.push(subject_id);
        }
    }

    let settings = app.settings.clone();
    let database = app.database();
    tokio::task::spawn_blocking(move || {
        let policy = load_dir(&settings.policy_dir).unwrap();
        let mut conn = database.connection().unwrap();
        let vault = Vault::open(&mut conn, &settings.master_key_file).unwrap();
        let mut pks = Vec::new();
        for subject in 0..SUBJECTS {
            let subject_id = SubjectId::parse(&format!("s{subject}")).unwrap();
            let handle = find(&mut conn, &vault, &subject_id).unwrap().unwrap();
            if restricted.contains(&subject_id.as_str().to_owned()) {
                diesel::insert_into(restrictions::table)
                    .values((
                        restrictions::subject_pk.eq(&handle.pk),
                        restrictions::since.eq(chrono::Utc::now().naive_utc()),
                        restrictions::recorded_by.eq("test"),
                    ))
                    .execute(&mut *conn)
                    .unwrap();
            }
            pks.push(handle.pk);
        }
        let mut checked = 0;
        for purpose in policy.purposes() {
            let mut in_memory: Vec<String> = pks
                .iter()
                .filter(|pk| {
                    let state = processing_state(&mut conn, pk).unwrap();
                    policy.legal_basis(purpose, &state).is_ok()
                })
                .cloned()
                .collect();
            in_memory.sort();
            let rule = policy.population_rule(purpose);
            let in_sql = subjects_with_legal_basis(&mut conn, &rule, None).unwrap();
            assert_eq!(in_sql, in_memory, "purpose {} (seed {seed:#x})", purpose.id);
            checked += in_memory.len();
        }
        assert!(checked > 0, "the generated ledgers allow something");
        assert!(
            checked < pks.len() * policy.purposes().count(),
            "and deny something"
        );
    })
    .await
    .unwrap();
}
