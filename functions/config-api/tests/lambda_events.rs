//! Every sample event in `events/config-api/` through the real `config-api` binary, run as Lambda runs it
//! (the binary's runtime loop polls a local Lambda Runtime API).

use testkit::TestTable;
use testkit::lambda::{event_files, invoke_all};

#[tokio::test]
async fn every_sample_event_gets_its_answer_from_the_binary() {
    let t = TestTable::new().await;
    let mut env = testkit::aws_env();
    env.push(("TABLE_NAME", t.table.name().to_owned()));
    env.push(("SECRETS_PREFIX", testkit::unique("lambda/postmark")));
    env.push((
        "ADMIN_KEY_SECRET",
        testkit::secret(&t.aws, "lambda/admin-key", "local-admin-key").await,
    ));
    env.push((
        "WEBHOOK_PASSWORD_SECRET",
        testkit::secret(&t.aws, "lambda/webhook-password", "local-webhook-password").await,
    ));
    env.push(("PUBLIC_BASE_URL", "https://api.example.com".to_owned()));
    env.push(("POSTMARK_API_URL", "http://127.0.0.1:9".to_owned()));
    let events = event_files("config-api");
    assert!(events.len() >= 15, "{} sample events", events.len());
    let answers = invoke_all(env!("CARGO_BIN_EXE_config-api"), &env, events.clone()).await;
    assert_eq!(answers.len(), events.len());
    for answer in &answers {
        assert!(
            answer.ok,
            "{}: the function reported an error: {}",
            answer.name, answer.body
        );
        let status = answer.body["statusCode"].as_u64().unwrap_or(0);
        let want: &[u64] = match answer.name.as_str() {
            "health"
            | "list-email-servers"
            | "get-webhook"
            | "refresh-webhook-password"
            | "list-suppressions"
            | "broadcast-stats"
            | "sequence-stats"
            | "list-failed-jobs" => &[200],
            "create-email-server-api" | "create-email-server-smtp" | "add-suppression" => &[201],
            // The samples name a server, a job and a subscriber that this fresh table does not have.
            "get-email-server"
            | "update-email-server"
            | "delete-email-server"
            | "test-email-server"
            | "get-job" => &[404],
            // Suppressed by `add-suppression`, on an API server made by `create-email-server-api`
            // (the events run in name order); nothing listens at POSTMARK_API_URL, and a Postmark that
            // cannot be reached for an active server leaves the suppression in place: 503.
            "remove-suppression" => &[503],
            _ => &[200, 404],
        };
        assert!(
            want.contains(&status),
            "{}: {status} {}",
            answer.name,
            answer.body
        );
    }
}
