//! Each job sent once whatever fails and when: Postmark's answer lost after it accepted, a search that
//! does not show the call yet, the invocation's deadline, a long outage (backoff on the message itself,
//! and the shared breaker), DynamoDB's answers lost after the write.

mod common;

use std::time::Duration;

use common::*;
use postmark_sim::{FaultAction, FaultRule, Faults};
use store::jobs::JobStatus;
use testkit::faults::{DynamoFaults, FaultKind};

async fn sent_counter(env: &Env) -> i64 {
    counters(env).await.get("sent").copied().unwrap_or(0)
}

/// An app on the same table and simulator with other settings.
fn app_with(env: &Env, change: impl FnOnce(&mut Config)) -> App {
    let mut config = config(&env.t, &env.sim, &env.prefix, &env.tracking_secret);
    change(&mut config);
    App::with_clients(
        env.t.aws.dynamodb.clone(),
        env.t.aws.secrets.clone(),
        env.t.aws.sqs.clone(),
        config,
    )
    .unwrap()
}

/// Messages the simulator accepted per job id, for the jobs of `records`.
fn accepted(env: &Env, records: &[(String, String)]) -> Vec<usize> {
    records
        .iter()
        .map(|(sqs, _)| accepted_for(env, sqs.trim_start_matches("sqs-")))
        .collect()
}

#[tokio::test]
async fn a_batch_postmark_took_whose_answer_was_lost_is_looked_up_not_sent_again() {
    for (name, fault) in [
        ("timeout", FaultAction::AcceptThenTimeout { ms: 3_000 }),
        ("reset", FaultAction::AcceptThenDrop),
        ("502", FaultAction::AcceptThenStatus { status: 502 }),
        ("504", FaultAction::AcceptThenStatus { status: 504 }),
        ("garbage", FaultAction::AcceptThenGarbage),
    ] {
        let env = Env::new().await;
        let app = app_with(&env, |c| c.postmark_timeout = Duration::from_secs(1));
        env.sim.set_faults(
            Faults::seeded(1).rule(FaultRule::new(fault).path("/email/batch").times(1)),
        );
        let records = jobs(&format!("lost-{name}"), 3);

        let first = failures(sender::handle(&app, event(&records)).await);
        assert_eq!(first.len(), 3, "{name}: handed back, {first:?}");
        assert_eq!(
            accepted(&env, &records),
            [1, 1, 1],
            "{name}: Postmark took them"
        );
        for (sqs, _) in &records {
            let job = sqs.trim_start_matches("sqs-");
            assert_eq!(env.status(job).await, Some(JobStatus::Unknown), "{name}");
        }

        // SQS delivers them again: Postmark's search says they went out; nothing is sent again.
        let calls = batch_calls(&env);
        let again = failures(sender::handle(&app, event(&records)).await);
        assert!(again.is_empty(), "{name}: {again:?}");
        assert_eq!(batch_calls(&env), calls, "{name}: no new call");
        assert_eq!(accepted(&env, &records), [1, 1, 1], "{name}: sent once");
        for (sqs, _) in &records {
            let job = env.job(sqs.trim_start_matches("sqs-")).await;
            assert_eq!(job.status, Some(JobStatus::Sent), "{name}");
            let id = job.message_id.expect("Postmark's MessageID");
            assert!(env.sim.messages().iter().any(|m| m.message_id == id));
        }
        assert_eq!(sent_counter(&env).await, 3, "{name}: counted once");
    }
}

#[tokio::test]
async fn an_smtp_message_whose_answer_was_lost_after_data_is_looked_up_not_sent_again() {
    let env = Env::new().await;
    env.store_smtp_server("smtp-lost").await;
    let app = app_with(&env, |c| c.postmark_timeout = Duration::from_secs(1));
    env.sim.set_faults(
        Faults::seeded(1).rule(
            FaultRule::new(FaultAction::AcceptThenDrop)
                .path("smtp")
                .times(1),
        ),
    );
    let records: Vec<_> = (0..2)
        .map(|i| {
            let mut job =
                transactional(&format!("smtp-lost-{i}"), &format!("buyer{i}@example.org"));
            job["server_id"] = serde_json::json!("smtp-lost");
            record(&job)
        })
        .collect();
    let first = failures(sender::handle(&app, event(&records)).await);
    assert_eq!(
        first.len(),
        1,
        "the message whose reply was lost: {first:?}"
    );
    let lost = first[0].trim_start_matches("sqs-").to_owned();
    assert_eq!(env.status(&lost).await, Some(JobStatus::Unknown));
    assert_eq!(accepted(&env, &records), [1, 1]);

    assert!(failures(sender::handle(&app, event(&records)).await).is_empty());
    assert_eq!(accepted(&env, &records), [1, 1], "sent once");
    assert_eq!(env.status(&lost).await, Some(JobStatus::Sent));
}

#[tokio::test]
async fn a_call_that_the_search_does_not_show_yet_holds_its_jobs_until_it_does() {
    let env = Env::new().await;
    let app = app_with(&env, |c| {
        c.postmark_timeout = Duration::from_secs(1);
        c.search_settle = Duration::from_secs(30);
    });
    env.sim.set_search_delay(Duration::from_secs(6));
    env.sim
        .set_faults(Faults::seeded(1).rule(FaultRule::new(FaultAction::AcceptThenDrop).times(1)));
    let records = jobs("slow-index", 2);
    assert_eq!(
        failures(sender::handle(&app, event(&records)).await).len(),
        2
    );

    // Not in the search yet, and the search has not had its time: the jobs wait, nothing is sent.
    assert_eq!(
        failures(sender::handle(&app, event(&records)).await).len(),
        2
    );
    assert_eq!(accepted(&env, &records), [1, 1]);
    assert_eq!(env.status("slow-index-0").await, Some(JobStatus::Unknown));

    tokio::time::sleep(Duration::from_millis(6_500)).await;
    assert!(failures(sender::handle(&app, event(&records)).await).is_empty());
    assert_eq!(accepted(&env, &records), [1, 1], "sent once");
    assert_eq!(env.status("slow-index-1").await, Some(JobStatus::Sent));
}

#[tokio::test]
async fn a_call_postmark_never_took_is_sent_once_the_search_has_had_its_time() {
    let env = Env::new().await;
    let app = app_with(&env, |c| {
        c.postmark_timeout = Duration::from_secs(1);
        c.search_settle = Duration::from_secs(1);
    });
    // A 500 with no Postmark body: it may have been a gateway after Postmark, so it is looked up.
    env.sim.set_faults(
        Faults::seeded(1).rule(FaultRule::new(FaultAction::Status { status: 500 }).times(1)),
    );
    let records = jobs("never-took", 2);
    assert_eq!(
        failures(sender::handle(&app, event(&records)).await).len(),
        2
    );
    assert_eq!(accepted(&env, &records), [0, 0]);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(failures(sender::handle(&app, event(&records)).await).is_empty());
    assert_eq!(accepted(&env, &records), [1, 1]);
    assert_eq!(sent_counter(&env).await, 2);
}

#[tokio::test]
async fn no_call_starts_that_the_deadline_would_cut_short() {
    let env = Env::new().await;
    let records = jobs("deadline", 3);
    // Ten seconds a call (the test configuration), five left: nothing is handed to Postmark.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let answer = failures(sender::handle_until(&env.app, event(&records), Some(deadline)).await);
    assert_eq!(answer.len(), 3, "{answer:?}");
    assert_eq!(batch_calls(&env), 0);
    assert_eq!(env.status("deadline-0").await, Some(JobStatus::Retrying));
    // With time enough, they go.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    assert!(
        failures(sender::handle_until(&env.app, event(&records), Some(deadline)).await).is_empty()
    );
    assert_eq!(accepted(&env, &records), [1, 1, 1]);
}

#[tokio::test]
async fn a_retried_job_waits_on_the_queue_longer_at_every_receive() {
    let env = Env::new().await;
    // A queue whose own visibility timeout hands a message out again at once: only the sender's wait
    // keeps it back.
    let queue = env
        .t
        .aws
        .sqs
        .create_queue()
        .queue_name(testkit::unique("backoff"))
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "0",
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let app = app_with(&env, |c| c.queue_url = Some(queue.clone()));
    env.sim
        .set_faults(Faults::seeded(1).rule(FaultRule::new(FaultAction::Status { status: 429 })));
    let body = broadcast("backoff-1", "wait@example.org").to_string();
    store::sqs::send_bodies(&env.t.aws.sqs, &queue, &[body])
        .await
        .unwrap();
    let received = store::sqs::receive(&env.t.aws.sqs, &queue, 1, 5)
        .await
        .unwrap();
    assert_eq!(received.len(), 1);
    let message = &received[0];
    let mut e = event(&[(
        message.message_id().unwrap().to_owned(),
        message.body().unwrap().to_owned(),
    )]);
    e.records[0].receipt_handle = message.receipt_handle().map(str::to_owned);
    e.records[0]
        .attributes
        .insert("ApproximateReceiveCount".into(), "1".into());

    assert_eq!(failures(sender::handle(&app, e).await).len(), 1);
    assert_eq!(env.status("backoff-1").await, Some(JobStatus::Retrying));
    // Handed back with a wait of 30–60 s (the first step of the schedule), not at once.
    let again = store::sqs::receive(&env.t.aws.sqs, &queue, 1, 2)
        .await
        .unwrap();
    assert!(again.is_empty(), "the message came back at once");
}

#[tokio::test]
async fn a_failing_server_pauses_for_every_invocation_then_a_probe_closes_it() {
    let env = Env::new().await;
    let policy = sender::BreakerPolicy {
        threshold: 2,
        cooldown: Duration::from_secs(2),
        max_cooldown: Duration::from_secs(10),
        probe_jobs: 1,
        probe_lease: Duration::from_secs(30),
    };
    let app = app_with(&env, |c| c.breaker = policy);
    let other = app_with(&env, |c| c.breaker = policy);
    env.sim
        .set_faults(Faults::seeded(1).rule(FaultRule::new(FaultAction::Status { status: 503 })));
    let records = jobs("outage", 3);
    assert_eq!(
        failures(sender::handle(&app, event(&records)).await).len(),
        3
    );
    assert_eq!(
        failures(sender::handle(&other, event(&records)).await).len(),
        3
    );
    assert_eq!(batch_calls(&env), 2);

    // Open: no invocation calls Postmark until the pause ends.
    assert_eq!(
        failures(sender::handle(&other, event(&records)).await).len(),
        3
    );
    assert_eq!(
        failures(sender::handle(&app, event(&records)).await).len(),
        3
    );
    assert_eq!(batch_calls(&env), 2, "paused");
    let breaker = env.t.table.breaker(env.server.id.as_str()).await.unwrap();
    assert!(breaker.open_until.is_some(), "{breaker:?}");

    // Postmark is back; after the pause one invocation probes with one job and closes the breaker.
    env.sim.set_faults(Faults::default());
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let probe = failures(sender::handle(&app, event(&records)).await);
    assert_eq!(probe.len(), 2, "one job probes: {probe:?}");
    assert_eq!(batch_calls(&env), 3);
    let breaker = env.t.table.breaker(env.server.id.as_str()).await.unwrap();
    assert_eq!(breaker.open_until, None, "{breaker:?}");
    assert!(failures(sender::handle(&other, event(&records)).await).is_empty());
    assert_eq!(accepted(&env, &records), [1, 1, 1]);
}

#[tokio::test]
async fn outcomes_whose_answers_are_lost_are_recorded_and_counted_once() {
    let env = Env::new().await;
    DynamoFaults::new([env.t.table.name()])
        .seed(5)
        .rate(0.5)
        .kinds([FaultKind::LostAnswer])
        .operations(["TransactWriteItems", "UpdateItem"])
        .apply(testkit::endpoint())
        .await
        .unwrap();
    // An outcome that could not be written at all leaves its job claimed: after the (short) lease the
    // next delivery looks it up in Postmark and records it.
    let app = app_with(&env, |c| c.claim_lease = Duration::from_secs(2));
    let records = jobs("lost-answer", 40);
    let mut left = records.clone();
    for _ in 0..8 {
        let again = failures(sender::handle(&app, event(&left)).await);
        left.retain(|(sqs, _)| again.contains(sqs));
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2_100)).await;
    }
    let fired = DynamoFaults::fired_on(
        testkit::endpoint(),
        env.t.table.name(),
        FaultKind::LostAnswer,
    )
    .await
    .unwrap();
    DynamoFaults::clear(testkit::endpoint(), Some(env.t.table.name()))
        .await
        .unwrap();
    assert!(fired > 5, "the fault struck {fired} times");
    assert!(left.is_empty(), "{left:?}");
    assert!(accepted(&env, &records).iter().all(|n| *n == 1));
    assert_eq!(sent_counter(&env).await, 40, "counted once");
}
