//! The cost of one policy decision (`Policy::decide`): rule 1, rule 2 with a person's state
//! (consents on the purpose's family, an objection elsewhere), rule 4 over three categories.
//!
//! `cargo bench --bench policy_decision`; results in docs/benchmarks.md.

use std::hint::black_box;
use std::time::Instant;

use custodia::policy::{
    load_dir, Action, CategoryId, ConsentStatement, DecisionRequest, PurposeId, SubjectState,
};

const ROUNDS: u32 = 2_000_000;

fn main() {
    let policy = load_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies").as_ref()).unwrap();
    let purpose = PurposeId::parse("marketing.email").unwrap();
    let statement = |name: &str, granted, sequence| ConsentStatement {
        purpose: PurposeId::parse(name).unwrap(),
        granted,
        sequence,
    };
    let state = SubjectState {
        consents: vec![
            statement("marketing", true, 1),
            statement("marketing.sms", false, 2),
            statement("marketing.email", true, 3),
            statement("marketing.personalization", false, 4),
        ],
        objections: vec![PurposeId::parse("analytics").unwrap()],
        restricted: false,
    };
    let categories = [
        CategoryId::parse("contact.email").unwrap(),
        CategoryId::parse("user.content").unwrap(),
        CategoryId::parse("commerce.order").unwrap(),
    ];
    let request = DecisionRequest {
        role: "marketer",
        action: Action::SegmentsQuery,
        purpose: Some(&purpose),
        categories: &categories,
        subject: Some(&state),
    };
    let decision = policy.decide(&request).unwrap();
    assert_eq!(
        decision.withheld,
        [CategoryId::parse("user.content").unwrap()]
    );

    for _ in 0..ROUNDS / 10 {
        black_box(policy.decide(black_box(&request)).unwrap());
    }
    let started = Instant::now();
    for _ in 0..ROUNDS {
        black_box(policy.decide(black_box(&request)).unwrap());
    }
    let nanos = started.elapsed().as_nanos() as f64 / f64::from(ROUNDS);
    println!("policy decision (rules 1, 2, 4; 4 consent statements, 1 objection, 3 categories): {nanos:.0} ns");
}
