//! Every sample event in `events/webhook/` through the real `webhook` binary, run as Lambda runs it (the
//! binary's runtime loop polls a local Lambda Runtime API).

use testkit::TestTable;
use testkit::lambda::{event_files, invoke_all};

fn expected_status(name: &str) -> u16 {
    match name {
        "postmark-wrong-password" | "postmark-no-password" => 401,
        "postmark-not-json" => 400,
        // Their token is a placeholder that no key signed.
        n if n.starts_with("track-") => 404,
        _ => 200,
    }
}

#[tokio::test]
async fn every_sample_event_gets_its_answer_from_the_binary() {
    let t = TestTable::new().await;
    let mut env = testkit::aws_env();
    env.push(("TABLE_NAME", t.table.name().to_owned()));
    env.push((
        "WEBHOOK_PASSWORD_SECRET",
        testkit::secret(&t.aws, "lambda/webhook-password", "local-webhook-password").await,
    ));
    env.push((
        "TRACKING_KEY_SECRET",
        testkit::secret(&t.aws, "lambda/tracking-key", "local-tracking-key").await,
    ));
    let events = event_files("webhook");
    assert!(events.len() >= 20, "{} sample events", events.len());
    let answers = invoke_all(env!("CARGO_BIN_EXE_webhook"), &env, events.clone()).await;
    assert_eq!(answers.len(), events.len());
    for answer in &answers {
        assert!(
            answer.ok,
            "{}: the function reported an error: {}",
            answer.name, answer.body
        );
        assert_eq!(
            answer.body["statusCode"].as_u64(),
            Some(u64::from(expected_status(&answer.name))),
            "{}: {}",
            answer.name,
            answer.body
        );
    }
    // The events did land: the hard bounce's recipient is suppressed.
    let john = domain::EmailAddress::parse("john@example.com").unwrap();
    let profile = t
        .table
        .subscriber_profile(&john)
        .await
        .unwrap()
        .expect("a profile for the fixtures' recipient");
    assert!(profile.suppression_reason.is_some());
}
