//! The real `sender` binary, run as Lambda runs it, killed at chosen points of a batch: while Postmark
//! holds the call before accepting it, and between Postmark's acceptance and the outcome writes. The next
//! delivery of the same records sends each job exactly once.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use postmark_sim::{FaultAction, FaultRule, Faults};
use serde_json::{Value, json};
use store::jobs::JobStatus;
use testkit::faults::{DynamoFaults, FaultKind};
use testkit::lambda::invoke_and_kill;

fn sqs_event(records: &[(String, String)]) -> Value {
    json!({
        "Records": records.iter().map(|(id, body)| json!({
            "messageId": id,
            "receiptHandle": format!("receipt-{id}"),
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:send-jobs",
            "awsRegion": "us-east-1",
        })).collect::<Vec<_>>()
    })
}

fn binary_env(env: &Env) -> Vec<(&'static str, String)> {
    let mut vars = testkit::aws_env();
    vars.extend([
        ("TABLE_NAME", env.t.table.name().to_owned()),
        ("SECRETS_PREFIX", env.prefix.clone()),
        ("TRACKING_KEY_SECRET", env.tracking_secret.clone()),
        ("TRACKING_BASE_URL", TRACKING_BASE.to_owned()),
        ("POSTMARK_API_URL", env.sim.api_url().to_owned()),
        // A short lease, so that the next delivery may take the jobs of the killed run.
        ("CLAIM_LEASE_SECONDS", "2".to_owned()),
        ("SEARCH_SETTLE_SECONDS", "0".to_owned()),
        ("SERVERS_CACHE_SECONDS", "0".to_owned()),
        ("POSTMARK_TIMEOUT_SECONDS", "30".to_owned()),
    ]);
    vars
}

/// Kills the binary when `kill_when` holds, then delivers the same records to a live sender after the
/// killed run's lease: every job ends sent, each with exactly one message in Postmark.
async fn killed_then_delivered_again(
    env: &Env,
    records: &[(String, String)],
    kill_when: impl Fn() -> bool,
) {
    let killed = invoke_and_kill(
        env!("CARGO_BIN_EXE_sender"),
        &binary_env(env),
        sqs_event(records),
        kill_when,
    )
    .await;
    assert!(killed, "the binary answered before it could be killed");
    for (sqs, _) in records {
        let job = sqs.trim_start_matches("sqs-");
        assert_eq!(
            env.status(job).await,
            Some(JobStatus::Sending),
            "{job}: the killed run left it sending"
        );
    }
    env.sim.set_faults(Faults::default());
    // The lease is kept in whole seconds.
    tokio::time::sleep(Duration::from_millis(3_100)).await;

    let again = env.run(records).await;
    assert!(again.is_empty(), "{again:?}");
    for (sqs, _) in records {
        let job = sqs.trim_start_matches("sqs-");
        assert_eq!(env.status(job).await, Some(JobStatus::Sent), "{job}");
        assert_eq!(accepted_for(env, job), 1, "{job}: sent exactly once");
    }
}

#[tokio::test]
async fn killed_after_postmark_accepted_the_batch_each_job_is_sent_once() {
    let env = Env::new().await;
    // Postmark takes the batch and does not answer: the binary is killed while it waits.
    env.sim.set_faults(
        Faults::seeded(1).rule(
            FaultRule::new(FaultAction::AcceptThenTimeout { ms: 60_000 })
                .path("/email/batch")
                .times(1),
        ),
    );
    let records = jobs("crash-accepted", 3);
    killed_then_delivered_again(&env, &records, || env.sim.messages().len() >= 3).await;
    assert_eq!(batch_calls(&env), 1, "the jobs were found, not sent again");
}

#[tokio::test]
async fn killed_while_postmark_held_the_call_each_job_is_sent_once() {
    let env = Env::new().await;
    // Postmark holds the call and then drops it without accepting anything: the binary is killed while
    // it waits.
    env.sim.set_faults(
        Faults::seeded(1)
            .rule(
                FaultRule::new(FaultAction::Delay { ms: 30_000 })
                    .path("/email/batch")
                    .times(1),
            )
            .rule(
                FaultRule::new(FaultAction::Drop)
                    .path("/email/batch")
                    .times(1),
            ),
    );
    let records = jobs("crash-held", 3);
    killed_then_delivered_again(&env, &records, || batch_calls(&env) >= 1).await;
}

#[tokio::test]
async fn killed_after_the_outcomes_were_written_each_job_is_sent_and_counted_once() {
    let env = Env::new().await;
    // The activity entries, written after the outcomes, take a while: the binary is killed then, with
    // every outcome recorded and nothing answered to SQS.
    DynamoFaults::new([env.t.table.name()])
        .seed(1)
        .rate(1.0)
        .kinds([FaultKind::Delay { ms: 20_000 }])
        .operations(["BatchWriteItem"])
        .apply(testkit::endpoint())
        .await
        .unwrap();
    let records = jobs("crash-recorded", 3);
    let recorded = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (table, recorded) = (env.t.table.clone(), recorded.clone());
        tokio::spawn(async move {
            loop {
                let mut sent = 0;
                for i in 0..3 {
                    if let Ok(Some(job)) = table.job(&format!("crash-recorded-{i}")).await
                        && job.status == Some(JobStatus::Sent)
                    {
                        sent += 1;
                    }
                }
                if sent == 3 {
                    recorded.store(true, Ordering::SeqCst);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let killed = invoke_and_kill(
        env!("CARGO_BIN_EXE_sender"),
        &binary_env(&env),
        sqs_event(&records),
        || recorded.load(Ordering::SeqCst),
    )
    .await;
    watcher.abort();
    DynamoFaults::clear(testkit::endpoint(), Some(env.t.table.name()))
        .await
        .unwrap();
    assert!(killed, "the binary answered before it could be killed");

    // SQS delivers the batch again: every job is done, nothing is sent or counted again.
    assert!(env.run(&records).await.is_empty());
    for (sqs, _) in &records {
        let job = sqs.trim_start_matches("sqs-");
        assert_eq!(accepted_for(&env, job), 1, "{job}: sent exactly once");
    }
    assert_eq!(batch_calls(&env), 1);
    assert_eq!(counters(&env).await.get("sent"), Some(&3), "counted once");
}
