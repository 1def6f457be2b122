//! The control and inspection API under `/_sim/`, over HTTP as the demo and load runs use it.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

async fn control(
    sim: &postmark_sim::Simulator,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    call(sim, method, path, None, body.as_ref()).await
}

#[tokio::test]
async fn configure_send_inspect_engage_settle_reset() {
    let receiver = Receiver::start().await;
    let sim = simulator().await;
    let (status, server) = control(
        &sim,
        Method::POST,
        "/_sim/servers",
        Some(json!({
            "name": "Demo",
            "tokens": ["demo-token"],
            "sender_signatures": ["example.com"],
            "track_opens": true,
            "track_links": "HtmlAndText",
            "streams": [
                {"id": "outbound", "type": "Transactional"},
                {"id": "news", "type": "Broadcasts", "name": "News"}
            ],
            "webhooks": [{"url": receiver.url("/wh"), "message_stream": "news", "triggers": {"delivery": false}}]
        })),
    )
    .await;
    assert_eq!(status, 201, "{server}");
    assert_eq!(server["streams"], json!(["outbound", "news"]));
    assert!(!server.to_string().contains("demo-token"));
    let (status, error) = control(
        &sim,
        Method::POST,
        "/_sim/servers",
        Some(json!({"tokenz": []})),
    )
    .await;
    assert_eq!(status, 400, "{error}");

    let mut message = email("ada@example.org");
    message["From"] = json!("news@example.com");
    message["MessageStream"] = json!("news");
    message["Tag"] = json!("spring");
    let (status, answer) = call(
        &sim,
        Method::POST,
        "/email",
        Some("demo-token"),
        Some(&message),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["MessageID"].as_str().unwrap();

    let (_, messages) = control(&sim, Method::GET, "/_sim/messages?tag=spring&via=api", None).await;
    assert_eq!(messages.as_array().unwrap().len(), 1);
    assert_eq!(messages[0]["message_id"], id);
    assert_eq!(messages[0]["message_stream"], "news");
    assert_eq!(messages[0]["html_body"], message["HtmlBody"]);
    let (_, none) = control(
        &sim,
        Method::GET,
        "/_sim/messages?recipient=other@example.org",
        None,
    )
    .await;
    assert!(none.as_array().unwrap().is_empty());
    let (status, one) = control(&sim, Method::GET, &format!("/_sim/messages/{id}"), None).await;
    assert_eq!(
        (status, one["recipients"].clone()),
        (200, json!(["ada@example.org"]))
    );

    let (status, opened) = control(
        &sim,
        Method::POST,
        "/_sim/opens",
        Some(json!({"message_id": id, "platform": "WebMail"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(opened, json!({"first": true, "posted": 1}));
    let (status, _) = control(
        &sim,
        Method::POST,
        "/_sim/clicks",
        Some(json!({"message_id": id, "recipient": "ada@example.org", "link": "https://example.com/offer", "click_location": "Text"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = control(
        &sim,
        Method::POST,
        "/_sim/opens",
        Some(json!({"message_id": "nope"})),
    )
    .await;
    assert_eq!(status, 404);

    let (status, settled) =
        control(&sim, Method::POST, "/_sim/settle?timeout_ms=20000", None).await;
    assert_eq!(
        (status, settled),
        (200, json!({"settled": true, "pending": 0}))
    );
    let (_, hooks) = control(&sim, Method::GET, "/_sim/webhooks", None).await;
    let kinds: Vec<&str> = hooks
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["record_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["Open", "Click"],
        "deliveries are off for this webhook"
    );
    assert_eq!(hooks[0]["state"], "delivered");
    assert_eq!(hooks[0]["attempts"][0]["status"], 200);
    assert_eq!(hooks[1]["payload"]["ClickLocation"], "Text");
    assert_eq!(receiver.received().len(), 2);
    let (_, clicks) = control(&sim, Method::GET, "/_sim/webhooks?record_type=click", None).await;
    assert_eq!(clicks.as_array().unwrap().len(), 1);

    let (_, counters) = control(&sim, Method::GET, "/_sim/counters", None).await;
    assert_eq!(counters["requests"]["POST /email"], 1);
    assert_eq!(counters["messages_accepted"], 1);
    assert_eq!(counters["webhook_attempts"], 2);

    let (status, _) = control(
        &sim,
        Method::PUT,
        "/_sim/faults",
        Some(json!({"seed": 9, "rules": [{"kind": "status", "status": 429, "path": "/server"}]})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        call(&sim, Method::GET, "/server", Some("demo-token"), None)
            .await
            .0,
        429
    );
    let (status, _) = control(
        &sim,
        Method::PUT,
        "/_sim/faults",
        Some(json!({"rules": [{"kind": "drop", "fraction": 2.0}]})),
    )
    .await;
    assert_eq!(status, 400);
    control(&sim, Method::DELETE, "/_sim/faults", None).await;
    assert_eq!(
        call(&sim, Method::GET, "/server", Some("demo-token"), None)
            .await
            .0,
        200
    );

    let (status, _) = control(&sim, Method::POST, "/_sim/reset", None).await;
    assert_eq!(status, 200);
    let (_, messages) = control(&sim, Method::GET, "/_sim/messages", None).await;
    assert!(messages.as_array().unwrap().is_empty());
    let (_, counters) = control(&sim, Method::GET, "/_sim/counters", None).await;
    assert_eq!(counters["messages_accepted"], 0);
    assert_eq!(
        call(
            &sim,
            Method::POST,
            "/email",
            Some("demo-token"),
            Some(&message)
        )
        .await
        .0,
        200,
        "servers stay"
    );

    let pem = reqwest::get(format!("{}/_sim/ca.pem", sim.api_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(pem, sim.ca_pem());
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let (_, health) = control(&sim, Method::GET, "/_sim/health", None).await;
    assert_eq!(health["ok"], true);
}

#[tokio::test]
async fn suppressions_are_listed_per_stream() {
    let (sim, server) = with_server(None).await;
    post(
        &sim,
        "/email",
        &email("HardBounce@bounce-testing.postmarkapp.com"),
    )
    .await;
    let (status, list) = call(
        &sim,
        Method::GET,
        &format!("/_sim/suppressions/{}/outbound", server.id),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        list[0]["email_address"],
        "HardBounce@bounce-testing.postmarkapp.com"
    );
    assert_eq!(list[0]["reason"], "HardBounce");
    let (_, empty) = call(
        &sim,
        Method::GET,
        &format!("/_sim/suppressions/{}/broadcast", server.id),
        None,
        None,
    )
    .await;
    assert!(empty.as_array().unwrap().is_empty());
}
