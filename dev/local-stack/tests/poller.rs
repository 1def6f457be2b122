//! The poller against the AWS emulator's SQS, invoking a small HTTP endpoint that answers like the Lambda
//! invoke API with partial batch failures.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::routing::post;
use local_stack::poller::{Poller, PollerConfig};
use serde_json::{Value, json};
use testkit::{Aws, unique};

/// Serves the invoke API: records each batch's bodies and reports as failed every record whose body
/// contains "fail".
async fn function() -> (String, Arc<Mutex<Vec<Vec<String>>>>) {
    let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/invoke",
        post(move |Json(event): Json<Value>| {
            let log = log.clone();
            async move {
                let records = event["Records"].as_array().cloned().unwrap_or_default();
                let bodies: Vec<String> = records
                    .iter()
                    .map(|r| r["body"].as_str().unwrap_or_default().to_owned())
                    .collect();
                assert!(records.iter().all(|r| r["eventSource"] == "aws:sqs"
                    && r["messageId"].is_string()
                    && r["md5OfBody"].as_str().is_some_and(|m| m.len() == 32)));
                log.lock().unwrap().push(bodies);
                let failures: Vec<Value> = records
                    .iter()
                    .filter(|r| r["body"].as_str().unwrap_or_default().contains("fail"))
                    .map(|r| json!({ "itemIdentifier": r["messageId"] }))
                    .collect();
                Json(json!({ "batchItemFailures": failures }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/invoke", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn batches_fill_successes_are_deleted_and_failures_end_in_the_dlq() {
    let aws = Aws::new().await;
    let queues = store::sqs::create_queue_with_dlq(&aws.sqs, &unique("poller"), 2, 1)
        .await
        .unwrap();
    let (invoke_url, seen) = function().await;
    let poller = Poller::new(
        aws.sqs.clone(),
        PollerConfig {
            queue_url: queues.url.clone(),
            queue_arn: queues.arn.clone(),
            region: "us-east-1".into(),
            invoke_url,
            batch_size: 30,
            window: Duration::from_millis(500),
        },
    );
    let mut bodies: Vec<String> = (0..45).map(|i| format!("{{\"n\":{i}}}")).collect();
    bodies.push("{\"fail\":true}".into());
    store::sqs::send_bodies(&aws.sqs, &queues.url, &bodies)
        .await
        .unwrap();

    let first = poller
        .poll_once(Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.messages, 30, "a full batch");
    let second = poller
        .poll_once(Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.messages, 16);
    assert_eq!(first.deleted + second.deleted, 45);
    assert_eq!(first.failed + second.failed, 1);

    // The failed record returns after the visibility timeout and moves to the DLQ after two receives.
    let mut in_dlq = Vec::new();
    for _ in 0..20 {
        let _ = poller.poll_once(Duration::from_secs(2)).await.unwrap();
        in_dlq = store::sqs::receive(&aws.sqs, &queues.dlq_url, 10, 0)
            .await
            .unwrap();
        if !in_dlq.is_empty() {
            break;
        }
    }
    assert_eq!(in_dlq.len(), 1);
    assert_eq!(in_dlq[0].body(), Some("{\"fail\":true}"));
    let batches = seen.lock().unwrap().clone();
    let delivered: usize = batches.iter().map(Vec::len).sum();
    assert!(
        delivered >= 47,
        "the failing record was offered again: {delivered}"
    );
}

#[tokio::test]
async fn a_failed_invocation_leaves_every_message_for_a_retry() {
    let aws = Aws::new().await;
    let queues = store::sqs::create_queue_with_dlq(&aws.sqs, &unique("poller"), 5, 30)
        .await
        .unwrap();
    let poller = Poller::new(
        aws.sqs.clone(),
        PollerConfig {
            queue_url: queues.url.clone(),
            queue_arn: queues.arn.clone(),
            region: "us-east-1".into(),
            invoke_url: "http://127.0.0.1:9/nothing-listens-here".into(),
            batch_size: 10,
            window: Duration::from_millis(200),
        },
    );
    store::sqs::send_bodies(&aws.sqs, &queues.url, &["{}".to_owned(), "{}".to_owned()])
        .await
        .unwrap();
    let report = poller
        .poll_once(Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((report.messages, report.deleted, report.failed), (2, 0, 2));
    assert!(report.invoke_error.is_some());
}
