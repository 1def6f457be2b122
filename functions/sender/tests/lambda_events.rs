//! The sample SQS event in `events/sender/` through the real `sender` binary, run as Lambda runs it (the
//! binary's runtime loop polls a local Lambda Runtime API).

use testkit::TestTable;
use testkit::lambda::{event_files, invoke_all};

#[tokio::test]
async fn the_sample_batch_gets_a_partial_batch_answer_from_the_binary() {
    let t = TestTable::new().await;
    let mut env = testkit::aws_env();
    env.push(("TABLE_NAME", t.table.name().to_owned()));
    env.push(("SECRETS_PREFIX", testkit::unique("lambda/postmark")));
    env.push((
        "TRACKING_KEY_SECRET",
        testkit::secret(&t.aws, "lambda/tracking-key", "local-tracking-key").await,
    ));
    env.push(("TRACKING_BASE_URL", "https://track.example.com".to_owned()));
    env.push(("POSTMARK_API_URL", "http://127.0.0.1:9".to_owned()));
    let events: Vec<_> = event_files("sender")
        .into_iter()
        .filter(|(_, e)| e.get("Records").is_some())
        .collect();
    assert!(!events.is_empty(), "an SQS event in events/sender");
    let answers = invoke_all(env!("CARGO_BIN_EXE_sender"), &env, events.clone()).await;
    assert_eq!(answers.len(), events.len());
    for (answer, (_, event)) in answers.iter().zip(&events) {
        assert!(answer.ok, "{}: {}", answer.name, answer.body);
        let failed: Vec<&str> = answer.body["batchItemFailures"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: not a batch answer: {}", answer.name, answer.body))
            .iter()
            .filter_map(|f| f["itemIdentifier"].as_str())
            .collect();
        // No email server is configured: every valid job waits for one (retried), while a job that does
        // not parse is rejected for good and never retried.
        for record in event["Records"].as_array().into_iter().flatten() {
            let id = record["messageId"].as_str().unwrap_or_default();
            let valid =
                domain::jobs::SendJob::parse(record["body"].as_str().unwrap_or_default(), Some(id))
                    .is_ok();
            assert_eq!(failed.contains(&id), valid, "{}: record {id}", answer.name);
        }
    }
}
