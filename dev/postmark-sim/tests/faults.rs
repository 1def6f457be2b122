//! Faults on demand: statuses, marked recipients, slow answers, dropped connections, seeded runs.

mod common;

use common::*;
use postmark_sim::{FaultAction, FaultRule, Faults};
use serde_json::json;

#[tokio::test]
async fn statuses_answer_with_postmarks_bodies_and_accept_nothing() {
    let (sim, _) = with_server(None).await;
    for (status, code) in [(429, Some(429)), (503, Some(100)), (500, None)] {
        sim.set_faults(
            Faults::seeded(1).rule(FaultRule::new(FaultAction::Status { status }).times(1)),
        );
        let (got, body) = post(&sim, "/email", &email("ada@example.org")).await;
        assert_eq!(got, status);
        assert_eq!(body["ErrorCode"].as_i64(), code, "{body}");
        let class = postmark::ErrorClass::classify(got, body["ErrorCode"].as_i64());
        assert!(class.is_retryable(), "{status} is retryable for the client");
        assert_eq!(
            post(&sim, "/email", &email("ada@example.org")).await.0,
            200,
            "times(1)"
        );
    }
    assert_eq!(sim.messages().len(), 3);
    assert_eq!(
        sim.counters().requests["POST /email"],
        6,
        "faulted requests count too"
    );
}

#[tokio::test]
async fn a_marked_recipient_always_fails() {
    let (sim, _) = with_server(None).await;
    sim.set_faults(
        Faults::seeded(1).rule(
            FaultRule::new(FaultAction::Status { status: 500 }).recipient("Broken@Example.org"),
        ),
    );
    for _ in 0..3 {
        assert_eq!(
            post(&sim, "/email", &email("broken@example.org")).await.0,
            500
        );
    }
    assert_eq!(
        post(
            &sim,
            "/email/batch",
            &json!([email("ada@example.org"), email("broken@example.org")])
        )
        .await
        .0,
        500
    );
    assert_eq!(post(&sim, "/email", &email("ada@example.org")).await.0, 200);
    assert_eq!(get(&sim, "/server").await.0, 200);
}

#[tokio::test]
async fn a_dropped_connection_gets_no_answer() {
    let (sim, _) = with_server(None).await;
    sim.set_faults(Faults::seeded(1).rule(FaultRule::new(FaultAction::Drop).path("/email/batch")));
    let result = reqwest::Client::new()
        .post(format!("{}/email/batch", sim.api_url()))
        .header("X-Postmark-Server-Token", TOKEN)
        .header("Accept", "application/json")
        .json(&json!([email("ada@example.org")]))
        .send()
        .await;
    let error = result.expect_err("no answer");
    assert!(!error.is_status(), "{error}");
    assert!(sim.messages().is_empty());
    assert_eq!(
        post(&sim, "/email", &email("ada@example.org")).await.0,
        200,
        "other paths answer"
    );
}

#[tokio::test]
async fn a_delay_then_the_normal_answer() {
    let (sim, _) = with_server(None).await;
    sim.set_faults(Faults::seeded(1).rule(FaultRule::new(FaultAction::Delay { ms: 50 })));
    let (status, body) = post(&sim, "/email", &email("ada@example.org")).await;
    assert_eq!(status, 200);
    assert_eq!(body["Message"], "OK");
}

#[tokio::test]
async fn a_seeded_fraction_repeats_exactly() {
    async fn run(seed: u64) -> Vec<u16> {
        let (sim, _) = with_server(None).await;
        sim.set_faults(
            Faults::seeded(seed)
                .rule(FaultRule::new(FaultAction::Status { status: 503 }).fraction(0.3)),
        );
        let mut statuses = Vec::new();
        for _ in 0..60 {
            statuses.push(post(&sim, "/email", &email("ada@example.org")).await.0);
        }
        statuses
    }
    let first = run(42).await;
    assert_eq!(first, run(42).await);
    let failures = first.iter().filter(|status| **status == 503).count();
    assert!(
        (5..35).contains(&failures),
        "{failures} of 60 for a fraction of 0.3"
    );
    assert_ne!(first, run(43).await, "another seed, another run");
}

#[tokio::test]
async fn accept_then_faults_through_the_control_api_store_the_message() {
    let (sim, _) = with_server(None).await;
    let put = |rules: serde_json::Value| {
        let url = format!("{}/_sim/faults", sim.api_url());
        async move {
            reqwest::Client::new()
                .put(url)
                .json(&json!({ "seed": 4, "rules": rules }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        put(json!([{"kind": "accept_then_status", "status": 200}])).await,
        400,
        "only a gateway's 5xx"
    );
    assert_eq!(
        put(json!([{"kind": "accept_then_status", "status": 502, "path": "/email", "times": 1}]))
            .await,
        200
    );
    let response = reqwest::Client::new()
        .post(format!("{}/email", sim.api_url()))
        .header("X-Postmark-Server-Token", TOKEN)
        .header("Accept", "application/json")
        .json(&email("ada@example.org"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 502);
    assert!(
        response.text().await.unwrap().contains("<html>"),
        "a gateway's HTML, not Postmark's JSON"
    );
    assert_eq!(sim.messages().len(), 1, "accepted before the 502");

    assert_eq!(
        put(json!([{"kind": "accept_then_garbage", "recipient": "bob@example.org"}])).await,
        200
    );
    let (status, body) = post(&sim, "/email", &email("bob@example.org")).await;
    assert_eq!((status, body), (200, serde_json::Value::Null), "not JSON");
    assert_eq!(post(&sim, "/email", &email("ada@example.org")).await.0, 200);
    assert_eq!(sim.messages().len(), 3);

    assert_eq!(put(json!([{"kind": "accept_then_drop"}])).await, 200);
    let dropped = reqwest::Client::new()
        .post(format!("{}/email/batch", sim.api_url()))
        .header("X-Postmark-Server-Token", TOKEN)
        .header("Accept", "application/json")
        .json(&json!([email("ada@example.org"), email("bob@example.org")]))
        .send()
        .await;
    assert!(dropped.is_err(), "no answer");
    assert_eq!(sim.messages().len(), 5);
    assert_eq!(get(&sim, "/server").await.0, 200, "sends only");
}
