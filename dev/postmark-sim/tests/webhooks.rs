//! Webhooks as the simulator posts them: payload shapes, credentials, routing, fake bounces, spam
//! complaints, opens, clicks and Postmark's retry rules.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use postmark::webhook::{RecordKind, WebhookEvent};
use postmark_sim::{
    ClickRequest, DeliveryState, EngagementError, OpenRequest, ServerConfig, SimOptions, Simulator,
    Triggers, WebhookConfig,
};
use serde_json::{Value, json};

/// The keys of a payload published by Postmark (or mirroring its docs).
fn fixture_keys(name: &str) -> BTreeSet<String> {
    let path = format!(
        "{}/../../shared/postmark/tests/fixtures/webhooks/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let value: Value = serde_json::from_str(&text).unwrap();
    value.as_object().unwrap().keys().cloned().collect()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

fn assert_has_fixture_keys(payload: &Value, fixture: &str) {
    let missing: Vec<_> = fixture_keys(fixture)
        .difference(&keys(payload))
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "{fixture}: missing {missing:?} in {payload}"
    );
}

#[tokio::test]
async fn one_delivery_per_recipient_with_tag_metadata_and_stream() {
    let receiver = Receiver::start().await;
    let (sim, server) = with_server(Some(WebhookConfig::new(
        receiver.url("/wh/postmark?password=s3cret"),
    )))
    .await;
    let mut message = email("Ada <ada@example.org>, bob@example.org");
    message["Tag"] = json!("welcome");
    message["Metadata"] = json!({"job_id": "j-42", "subscriber": "s-7"});
    message["MessageStream"] = json!("broadcast");
    let (_, answer) = post(&sim, "/email", &message).await;
    let message_id = answer["MessageID"].as_str().unwrap().to_owned();
    assert!(sim.settle(SETTLE).await);

    let deliveries = receiver.of_type("Delivery");
    assert_eq!(deliveries.len(), 2);
    let recipients: BTreeSet<&str> = deliveries
        .iter()
        .map(|d| d.body["Recipient"].as_str().unwrap())
        .collect();
    assert_eq!(
        recipients,
        BTreeSet::from(["ada@example.org", "bob@example.org"])
    );
    let traces: BTreeSet<&str> = deliveries
        .iter()
        .map(|d| d.header("X-PM-Webhook-Trace-Id").unwrap())
        .collect();
    assert_eq!(traces.len(), 2, "one trace id per event");
    for delivery in &deliveries {
        assert_has_fixture_keys(&delivery.body, "symfony_delivery.json");
        assert_eq!(delivery.body["MessageID"], message_id.as_str());
        assert_eq!(delivery.body["Tag"], "welcome");
        assert_eq!(
            delivery.body["Metadata"],
            json!({"job_id": "j-42", "subscriber": "s-7"})
        );
        assert_eq!(delivery.body["MessageStream"], "broadcast");
        assert_eq!(delivery.body["ServerID"], server.id);
        assert!(is_postmark_timestamp(
            delivery.body["DeliveredAt"].as_str().unwrap()
        ));
        assert_eq!(
            delivery.uri.path_and_query().unwrap().as_str(),
            "/wh/postmark?password=s3cret"
        );
        assert_eq!(delivery.header("content-type"), Some("application/json"));
        assert!(uuid::Uuid::parse_str(delivery.header("X-PM-Webhook-Trace-Id").unwrap()).is_ok());
        let event = WebhookEvent::from_value(delivery.body.clone()).unwrap();
        assert_eq!(event.kind(), RecordKind::Delivery);
    }
    let records = sim.webhooks();
    assert_eq!(records.len(), 2);
    assert!(
        records
            .iter()
            .all(|r| r.state == DeliveryState::Delivered && r.attempts.len() == 1)
    );
    assert!(
        records.iter().all(|r| r.url.ends_with("password=***")),
        "credentials masked"
    );
}

#[tokio::test]
async fn credentials_from_user_info_and_http_auth_go_as_basic() {
    let receiver = Receiver::start().await;
    let with_user_info = receiver
        .url("/a")
        .replace("http://", "http://hook%40user:p%40ss@");
    let sim = simulator().await;
    sim.add_server(
        server_config(Some(WebhookConfig::new(with_user_info))).webhook(
            WebhookConfig::new(receiver.url("/b"))
                .http_auth("admin", "secret")
                .http_header("X-Shared", "abc"),
        ),
    );
    post(&sim, "/email", &email("ada@example.org")).await;
    assert!(sim.settle(SETTLE).await);
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    let by_path = |path: &str| received.iter().find(|r| r.uri.path() == path).unwrap();
    use base64::Engine as _;
    let basic = |user_pass: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    };
    assert_eq!(
        by_path("/a").header("authorization"),
        Some(basic("hook@user:p@ss").as_str())
    );
    assert_eq!(
        by_path("/b").header("authorization"),
        Some(basic("admin:secret").as_str())
    );
    assert_eq!(by_path("/b").header("x-shared"), Some("abc"));
}

#[tokio::test]
async fn webhooks_follow_their_stream_and_can_be_off() {
    let receiver = Receiver::start().await;
    let sim = simulator().await;
    sim.add_server(server_config(Some(
        WebhookConfig::new(receiver.url("/broadcast")).message_stream("broadcast"),
    )));
    sim.add_server(
        ServerConfig::new("quiet-token")
            .sender_domain("example.com")
            .webhook(WebhookConfig::new(receiver.url("/quiet")))
            .webhooks_enabled(false),
    );
    post(&sim, "/email", &email("ada@example.org")).await;
    let mut broadcast = email("bob@example.org");
    broadcast["MessageStream"] = json!("broadcast");
    post(&sim, "/email", &broadcast).await;
    let (status, _) = call(
        &sim,
        reqwest::Method::POST,
        "/email",
        Some("quiet-token"),
        Some(&email("cy@example.org")),
    )
    .await;
    assert_eq!(status, 200);
    assert!(sim.settle(SETTLE).await);
    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].body["Recipient"], "bob@example.org");
    assert_eq!(received[0].uri.path(), "/broadcast");
}

#[tokio::test]
async fn a_hard_bounce_suppresses_and_tells_with_a_subscription_change() {
    let receiver = Receiver::start().await;
    let hook = WebhookConfig::new(receiver.url("/wh")).triggers(Triggers {
        bounce_include_content: true,
        ..Triggers::default()
    });
    let (sim, server) = with_server(Some(hook)).await;
    let mut message = email("HardBounce@bounce-testing.postmarkapp.com");
    message["Tag"] = json!("t1");
    message["Metadata"] = json!({"job_id": "j-1"});
    let (_, answer) = post(&sim, "/email", &message).await;
    let message_id = answer["MessageID"].as_str().unwrap();
    assert!(sim.settle(SETTLE).await);

    assert!(receiver.of_type("Delivery").is_empty());
    let bounces = receiver.of_type("Bounce");
    assert_eq!(bounces.len(), 1);
    let bounce = &bounces[0].body;
    assert_has_fixture_keys(bounce, "symfony_bounce.json");
    assert_eq!(bounce["Type"], "HardBounce");
    assert_eq!(bounce["TypeCode"], 1);
    assert_eq!(bounce["Email"], "HardBounce@bounce-testing.postmarkapp.com");
    assert_eq!(bounce["Inactive"], true);
    assert_eq!(bounce["CanActivate"], true);
    assert_eq!(bounce["MessageID"], message_id);
    assert_eq!(bounce["Tag"], "t1");
    assert_eq!(bounce["Metadata"]["job_id"], "j-1");
    assert_eq!(bounce["From"], FROM);
    assert!(bounce["Content"].is_string());
    let event = WebhookEvent::from_value(bounce.clone()).unwrap();
    assert_eq!(event.bounce_class(), Some(postmark::BounceClass::Hard));

    let changes = receiver.of_type("SubscriptionChange");
    assert_eq!(changes.len(), 1);
    let change = &changes[0].body;
    assert_has_fixture_keys(change, "docs_subscription_change.json");
    assert_eq!(change["SuppressSending"], true);
    assert_eq!(change["SuppressionReason"], "HardBounce");
    assert_eq!(change["Origin"], "Recipient");
    assert_eq!(change["MessageID"], message_id);
    assert_eq!(
        change["Recipient"],
        "HardBounce@bounce-testing.postmarkapp.com"
    );
    assert_eq!(change["Metadata"]["job_id"], "j-1");

    let suppressed = sim.suppressions(server.id, "outbound");
    assert_eq!(suppressed.len(), 1);
    assert_eq!(suppressed[0].reason, "HardBounce");
}

#[tokio::test]
async fn bounce_testing_addresses_pick_the_type() {
    let receiver = Receiver::start().await;
    let (sim, server) = with_server(Some(WebhookConfig::new(receiver.url("/wh")))).await;
    for to in [
        "soft_bounce@Bounce-Testing.PostmarkApp.com",
        "Transient@bounce-testing.postmarkapp.com",
        "whatever@bounce-testing.postmarkapp.com",
    ] {
        assert_eq!(post(&sim, "/email", &email(to)).await.0, 200);
    }
    let mut forced = email("x@bounce-testing.postmarkapp.com");
    forced["Headers"] = json!([{"Name": "X-PM-Bounce-Type", "Value": "DnsError"}]);
    post(&sim, "/email", &forced).await;
    assert!(sim.settle(SETTLE).await);
    let types: BTreeSet<(String, i64, bool)> = receiver
        .of_type("Bounce")
        .iter()
        .map(|b| {
            (
                b.body["Type"].as_str().unwrap().to_owned(),
                b.body["TypeCode"].as_i64().unwrap(),
                b.body["Inactive"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        types,
        BTreeSet::from([
            ("DnsError".to_owned(), 256, false),
            ("HardBounce".to_owned(), 1, true),
            ("SoftBounce".to_owned(), 4096, false),
            ("Transient".to_owned(), 2, false),
        ])
    );
    assert_eq!(
        receiver.of_type("SubscriptionChange").len(),
        1,
        "only the hard bounce suppresses"
    );
    let suppressed = sim.suppressions(server.id, "outbound");
    assert_eq!(suppressed.len(), 1);
    assert_eq!(
        suppressed[0].email_address,
        "whatever@bounce-testing.postmarkapp.com"
    );
}

#[tokio::test]
async fn spam_complaints_come_after_delivery_and_suppress() {
    let receiver = Receiver::start().await;
    let sim = simulator().await;
    let server = sim.add_server(
        server_config(Some(WebhookConfig::new(receiver.url("/wh")).triggers(
            Triggers {
                spam_complaint_include_content: true,
                ..Triggers::default()
            },
        )))
        .spam_complaint_address("grumpy@example.org"),
    );
    post(&sim, "/email", &email("grumpy@Example.org")).await;
    post(
        &sim,
        "/email",
        &email("anyone@spam-complaint.postmarkapp.com"),
    )
    .await;
    post(&sim, "/email", &email("happy@example.org")).await;
    assert!(sim.settle(SETTLE).await);
    let complaints = receiver.of_type("SpamComplaint");
    assert_eq!(complaints.len(), 2);
    for complaint in &complaints {
        assert_has_fixture_keys(&complaint.body, "symfony_spam_complaint.json");
        assert_eq!(complaint.body["Type"], "SpamComplaint");
        assert_eq!(complaint.body["TypeCode"], 100001);
        assert_eq!(complaint.body["CanActivate"], false);
        let event = WebhookEvent::from_value(complaint.body.clone()).unwrap();
        assert_eq!(event.kind(), RecordKind::SpamComplaint);
    }
    assert_eq!(receiver.of_type("Delivery").len(), 3);
    let changes = receiver.of_type("SubscriptionChange");
    assert_eq!(changes.len(), 2);
    assert!(
        changes
            .iter()
            .all(|c| c.body["SuppressionReason"] == "SpamComplaint")
    );
    let reasons: Vec<String> = sim
        .suppressions(server.id, "outbound")
        .into_iter()
        .map(|s| s.reason)
        .collect();
    assert_eq!(reasons, vec!["SpamComplaint", "SpamComplaint"]);
}

#[tokio::test]
async fn failed_posts_are_retried_with_the_same_trace_id() {
    let receiver = Receiver::start().await;
    receiver.answer(&[500, 503, 408, 429]);
    let (sim, _) = with_server(Some(WebhookConfig::new(receiver.url("/wh")))).await;
    post(&sim, "/email", &email("ada@example.org")).await;
    assert!(sim.settle(SETTLE).await);
    let received = receiver.received();
    assert_eq!(received.len(), 5);
    let traces: BTreeSet<&str> = received
        .iter()
        .map(|r| r.header("X-PM-Webhook-Trace-Id").unwrap())
        .collect();
    assert_eq!(traces.len(), 1);
    let remaining: Vec<&str> = received
        .iter()
        .map(|r| r.header("X-PM-Retries-Remaining").unwrap())
        .collect();
    assert_eq!(remaining, vec!["9", "8", "7", "6", "5"]);
    let record = &sim.webhooks()[0];
    assert_eq!(record.state, DeliveryState::Delivered);
    let statuses: Vec<Option<u16>> = record.attempts.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses,
        vec![Some(500), Some(503), Some(408), Some(429), Some(200)]
    );
}

#[tokio::test]
async fn other_client_errors_are_dropped_at_once() {
    for status in [400, 401, 403, 404, 410, 422] {
        let receiver = Receiver::start().await;
        receiver.answer(&[status]);
        let (sim, _) = with_server(Some(WebhookConfig::new(receiver.url("/wh")))).await;
        post(&sim, "/email", &email("ada@example.org")).await;
        assert!(sim.settle(SETTLE).await);
        assert_eq!(receiver.received().len(), 1, "{status}");
        let record = &sim.webhooks()[0];
        assert_eq!(record.state, DeliveryState::Dropped, "{status}");
    }
}

#[tokio::test]
async fn retries_run_out() {
    let receiver = Receiver::start().await;
    receiver.answer(&[500; 12]);
    let (sim, _) = with_server(Some(WebhookConfig::new(receiver.url("/wh")))).await;
    post(&sim, "/email", &email("ada@example.org")).await;
    assert!(sim.settle(SETTLE).await);
    assert_eq!(
        receiver.received().len(),
        10,
        "the first attempt and 9 retries"
    );
    let record = &sim.webhooks()[0];
    assert_eq!(record.state, DeliveryState::Exhausted);
    assert_eq!(record.attempts.last().unwrap().retries_remaining, 0);
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_retried() {
    let receiver = Receiver::start().await;
    receiver.delay_next(Duration::from_secs(5));
    let mut options = SimOptions::for_tests();
    options.webhooks.timeout = Duration::from_millis(200);
    let sim = Simulator::start(options).await.unwrap();
    sim.add_server(server_config(Some(WebhookConfig::new(receiver.url("/wh")))));
    post(&sim, "/email", &email("ada@example.org")).await;
    assert!(sim.settle(SETTLE).await);
    let record = &sim.webhooks()[0];
    assert_eq!(record.state, DeliveryState::Delivered);
    assert_eq!(record.attempts[0].error.as_deref(), Some("timeout"));
    assert_eq!(record.attempts[1].status, Some(200));

    // Nothing listens on the port of a closed listener.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/wh", closed.local_addr().unwrap());
    drop(closed);
    let (sim, _) = with_server(Some(WebhookConfig::new(url))).await;
    post(&sim, "/email", &email("ada@example.org")).await;
    assert!(sim.settle(SETTLE).await);
    let record = &sim.webhooks()[0];
    assert_eq!(record.state, DeliveryState::Exhausted);
    assert_eq!(record.attempts.len(), 10);
    assert_eq!(
        record.attempts[0].error.as_deref(),
        Some("connection failed")
    );
}

#[tokio::test]
async fn opens_and_clicks_on_request() {
    let receiver = Receiver::start().await;
    let first_only = Receiver::start().await;
    let sim = simulator().await;
    sim.add_server(
        server_config(Some(WebhookConfig::new(receiver.url("/wh"))))
            .webhook(
                WebhookConfig::new(first_only.url("/first")).triggers(Triggers {
                    post_first_open_only: true,
                    ..Triggers::default()
                }),
            )
            .track_opens(true),
    );
    let mut message = email("ada@example.org");
    message["TrackLinks"] = json!("HtmlAndText");
    message["Tag"] = json!("promo");
    message["Metadata"] = json!({"broadcast": "b-1"});
    let (_, answer) = post(&sim, "/email", &message).await;
    let id = answer["MessageID"].as_str().unwrap();

    let opened = sim.open(OpenRequest::new(id, "ADA@example.org")).unwrap();
    assert!(opened.first);
    assert_eq!(opened.posted, 2);
    let again = sim
        .open(OpenRequest {
            platform: Some("Mobile".into()),
            ..OpenRequest::new(id, "ada@example.org")
        })
        .unwrap();
    assert!(!again.first);
    assert_eq!(again.posted, 1, "the first-open-only webhook skips it");
    let clicked = sim
        .click(ClickRequest::new(
            id,
            "ada@example.org",
            "https://example.com/offer",
        ))
        .unwrap();
    assert_eq!((clicked.first, clicked.posted), (true, 2));
    let repeat = sim
        .click(ClickRequest::new(
            id,
            "ada@example.org",
            "https://example.com/offer",
        ))
        .unwrap();
    assert_eq!(
        (repeat.first, repeat.posted),
        (false, 0),
        "one click event per recipient and link"
    );
    assert!(sim.settle(SETTLE).await);

    let opens = receiver.of_type("Open");
    assert_eq!(opens.len(), 2);
    let first = opens.iter().find(|o| o.body["FirstOpen"] == true).unwrap();
    let later = opens.iter().find(|o| o.body["FirstOpen"] == false).unwrap();
    assert_has_fixture_keys(&first.body, "symfony_open.json");
    assert_eq!(first.body["Recipient"], "ada@example.org");
    assert_eq!(first.body["Tag"], "promo");
    assert_eq!(first.body["Metadata"]["broadcast"], "b-1");
    assert_eq!(later.body["Platform"], "Mobile");
    assert!(first.body["Geo"]["City"].is_string());
    assert_eq!(first_only.of_type("Open").len(), 1);

    let clicks = receiver.of_type("Click");
    assert_eq!(clicks.len(), 1);
    assert_has_fixture_keys(&clicks[0].body, "symfony_click.json");
    assert_eq!(clicks[0].body["OriginalLink"], "https://example.com/offer");
    assert_eq!(clicks[0].body["ClickLocation"], "HTML");
    assert_eq!(clicks[0].body["MessageID"], id);

    assert_eq!(
        sim.open(OpenRequest::new(id, "stranger@example.org")),
        Err(EngagementError::NotARecipient)
    );
    assert_eq!(
        sim.open(OpenRequest::new("unknown", "ada@example.org")),
        Err(EngagementError::UnknownMessage)
    );
}

#[tokio::test]
async fn untracked_messages_have_no_opens_or_clicks() {
    let (sim, _) = with_server(None).await;
    let (_, answer) = post(&sim, "/email", &email("ada@example.org")).await;
    let id = answer["MessageID"].as_str().unwrap();
    assert!(matches!(
        sim.open(OpenRequest::new(id, "ada@example.org")),
        Err(EngagementError::NotTracked(_))
    ));
    assert!(matches!(
        sim.click(ClickRequest::new(
            id,
            "ada@example.org",
            "https://example.com"
        )),
        Err(EngagementError::NotTracked(_))
    ));
    let mut opened = email("ada@example.org");
    opened["TrackOpens"] = json!(true);
    let (_, answer) = post(&sim, "/email", &opened).await;
    assert!(
        sim.open(OpenRequest::new(
            answer["MessageID"].as_str().unwrap(),
            "ada@example.org"
        ))
        .is_ok()
    );
}

#[tokio::test]
async fn a_reset_cancels_pending_posts() {
    let receiver = Receiver::start().await;
    receiver.answer(&[500; 20]);
    let mut options = SimOptions::for_tests();
    options.webhooks.delay_scale = 1.0;
    let sim = Simulator::start(options).await.unwrap();
    sim.add_server(server_config(Some(WebhookConfig::new(receiver.url("/wh")))));
    post(&sim, "/email", &email("ada@example.org")).await;
    // The first retry waits a minute: the post is pending until the reset cancels it.
    assert!(!sim.settle(Duration::from_millis(300)).await);
    sim.reset();
    assert!(sim.settle(SETTLE).await);
    assert!(sim.webhooks().is_empty());
    assert!(sim.messages().is_empty());
    assert!(receiver.received().len() <= 1, "no retry after the reset");
}
