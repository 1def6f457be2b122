//! Postmark's API as the simulator serves it: checks, error codes and answer shapes.

mod common;

use common::*;
use postmark_sim::{ServerConfig, StreamConfig, StreamType};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn a_send_answers_like_postmark() {
    let (sim, _) = with_server(None).await;
    let (status, body) = post(&sim, "/email", &email("Ada <ada@example.org>")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ErrorCode"], 0);
    assert_eq!(body["Message"], "OK");
    assert_eq!(body["To"], "Ada <ada@example.org>");
    let id = body["MessageID"].as_str().expect("a MessageID");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let submitted = body["SubmittedAt"].as_str().expect("SubmittedAt");
    assert!(is_postmark_timestamp(submitted), "{submitted}");
    assert!(submitted.ends_with("-05:00"), "{submitted}");

    let stored = sim.message(id).expect("stored");
    assert_eq!(stored.message_stream, "outbound");
    assert_eq!(stored.recipients, vec!["ada@example.org"]);
    assert_eq!(stored.subject.as_deref(), Some("Hello"));
    assert!(stored.was_delivered_to("ADA@example.org"));
}

#[tokio::test]
async fn tokens_are_checked_with_postmarks_messages() {
    let (sim, _) = with_server(None).await;
    let message = email("ada@example.org");
    let (status, body) = call(&sim, Method::POST, "/email", None, Some(&message)).await;
    assert_eq!((status, body["ErrorCode"].as_i64()), (401, Some(10)));
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .starts_with("No Account or Server API tokens were supplied")
    );

    let (status, body) = call(&sim, Method::POST, "/email", Some("wrong"), Some(&message)).await;
    assert_eq!((status, body["ErrorCode"].as_i64()), (401, Some(10)));
    assert_eq!(
        body["Message"],
        "Request does not contain a valid Server token."
    );

    // Header values are case-insensitive for Postmark, the token included.
    let (status, _) = call(
        &sim,
        Method::POST,
        "/email",
        Some(&TOKEN.to_uppercase()),
        Some(&message),
    )
    .await;
    assert_eq!(status, 200);

    let response = reqwest::Client::new()
        .post(format!("{}/email", sim.api_url()))
        .header("Accept", "application/json")
        .header("X-Postmark-Account-Token", "account")
        .json(&message)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["Message"],
        "Request does not contain a valid Server token."
    );

    let response = reqwest::Client::new()
        .post(format!("{}/email", sim.api_url()))
        .header("Accept", "application/json")
        .header("X-Postmark-Account-Token", "account")
        .header("X-Postmark-Server-Token", TOKEN)
        .json(&message)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["Message"],
        "Please do not include Account API Token for Server API Token calls."
    );
    assert!(sim.messages().len() == 1);
}

#[tokio::test]
async fn json_headers_are_required() {
    let (sim, _) = with_server(None).await;
    let body = serde_json::to_vec(&email("ada@example.org")).unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/email", sim.api_url());
    for (accept, content_type) in [
        (Some("application/json"), None),
        (Some("application/json"), Some("text/plain")),
        (Some("text/html"), Some("application/json")),
    ] {
        let mut request = client
            .post(&url)
            .header("X-Postmark-Server-Token", TOKEN)
            .body(body.clone());
        if let Some(accept) = accept {
            request = request.header("Accept", accept);
        }
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 415, "{accept:?} {content_type:?}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["ErrorCode"], 409);
    }
    // Without any Accept header (reqwest always sends one, so by hand).
    let raw = format!(
        "POST /email HTTP/1.1\r\nHost: localhost\r\nX-Postmark-Server-Token: {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(sim.api_addr())
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(raw.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 415"), "{answer}");
    assert!(answer.contains("\"ErrorCode\":409"), "{answer}");

    let response = client
        .post(&url)
        .header("X-Postmark-Server-Token", TOKEN)
        .header("Accept", "*/*")
        .header("Content-Type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn broken_and_incompatible_json() {
    let (sim, _) = with_server(None).await;
    let response = reqwest::Client::new()
        .post(format!("{}/email", sim.api_url()))
        .header("X-Postmark-Server-Token", TOKEN)
        .header("Accept", "application/json")
        .header("Content-Type", "application/json")
        .body("{\"From\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["ErrorCode"], 402);

    let (status, body) = post(&sim, "/email", &json!({"From": 42, "To": "a@example.org"})).await;
    assert_eq!((status, body["ErrorCode"].as_i64()), (422, Some(403)));
    let (status, body) = post(&sim, "/email/batch", &email("a@example.org")).await;
    assert_eq!(
        (status, body["ErrorCode"].as_i64()),
        (422, Some(403)),
        "a batch is an array"
    );
}

#[tokio::test]
async fn the_sender_must_be_a_verified_signature() {
    let sim = simulator().await;
    sim.add_server(
        ServerConfig::new(TOKEN)
            .sender_domain("example.com")
            .sender_address("owner@other.example"),
    );
    let mut message = email("ada@example.org");
    message["From"] = json!("Someone <someone@unverified.example>");
    let (status, body) = post(&sim, "/email", &message).await;
    assert_eq!((status, body["ErrorCode"].as_i64()), (422, Some(300)));
    assert_eq!(
        body["Message"],
        "Invalid 'From' address: 'someone@unverified.example' is not a verified sender signature."
    );
    message["From"] = json!("owner@OTHER.example");
    assert_eq!(post(&sim, "/email", &message).await.0, 200);
    message["From"] = json!("intruder@other.example");
    assert_eq!(post(&sim, "/email", &message).await.1["ErrorCode"], 300);
    message["From"] = json!("anyone@Example.com");
    assert_eq!(post(&sim, "/email", &message).await.0, 200);
    message["From"] = json!("not an address");
    let (_, body) = post(&sim, "/email", &message).await;
    assert_eq!(body["Message"], "Invalid 'From' address: 'not an address'.");
}

#[tokio::test]
async fn recipients_are_checked() {
    let (sim, _) = with_server(None).await;
    let (status, body) = post(&sim, "/email", &email("invalid@localhost")).await;
    assert_eq!((status, body["ErrorCode"].as_i64()), (422, Some(300)));
    assert_eq!(
        body["Message"],
        "Invalid 'To' address: 'invalid@localhost'."
    );

    let mut message = email("ada@example.org");
    message["Cc"] = json!("bad-cc");
    let (_, body) = post(&sim, "/email", &message).await;
    assert_eq!(body["Message"], "Invalid 'Cc' address: 'bad-cc'.");

    let fifty: Vec<String> = (0..50).map(|n| format!("r{n}@example.org")).collect();
    let mut message = email(&fifty[..40].join(", "));
    message["Bcc"] = json!(fifty[40..].join(", "));
    assert_eq!(
        post(&sim, "/email", &message).await.0,
        200,
        "50 recipients in all"
    );
    message["Cc"] = json!("one-more@example.org");
    let (status, body) = post(&sim, "/email", &message).await;
    assert_eq!(
        (status, body["ErrorCode"].as_i64()),
        (422, Some(300)),
        "{body}"
    );

    let mut no_one = email("ada@example.org");
    no_one.as_object_mut().unwrap().remove("To");
    let (_, body) = post(&sim, "/email", &no_one).await;
    assert_eq!(body["Message"], "Zero recipients specified");

    let mut no_body = email("ada@example.org");
    no_body.as_object_mut().unwrap().remove("HtmlBody");
    no_body.as_object_mut().unwrap().remove("TextBody");
    let (_, body) = post(&sim, "/email", &no_body).await;
    assert_eq!(
        body["Message"],
        "Provide either email TextBody or HtmlBody or both."
    );

    let mut long_key = email("ada@example.org");
    long_key["Metadata"] = json!({"a_key_longer_than_twenty": "x"});
    let (_, body) = post(&sim, "/email", &long_key).await;
    assert_eq!(body["ErrorCode"], 300);
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .contains("limited to 20 characters")
    );
}

#[tokio::test]
async fn the_stream_must_exist() {
    let (sim, _) = with_server(None).await;
    let mut message = email("ada@example.org");
    message["MessageStream"] = json!("unknown-stream");
    let (status, body) = post(&sim, "/email", &message).await;
    assert_eq!((status, body["ErrorCode"].as_i64()), (422, Some(1235)));
    assert_eq!(
        body["Message"],
        "The stream provided: 'unknown-stream' does not exist on this server."
    );
    message["MessageStream"] = json!("broadcast");
    let (status, body) = post(&sim, "/email", &message).await;
    assert_eq!(status, 200);
    let id = body["MessageID"].as_str().unwrap();
    assert_eq!(sim.message(id).unwrap().message_stream, "broadcast");
}

#[tokio::test]
async fn batches_answer_per_message_and_stop_at_500() {
    let (sim, _) = with_server(None).await;
    let batch = json!([
        email("ada@example.org"),
        email("invalid@localhost"),
        email("bob@example.org")
    ]);
    let (status, body) = post(&sim, "/email/batch", &batch).await;
    assert_eq!(status, 200);
    let items = body.as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["ErrorCode"], 0);
    assert_eq!(items[1]["ErrorCode"], 300);
    assert!(items[1].get("MessageID").is_none());
    assert_eq!(items[2]["To"], "bob@example.org");

    let too_many: Vec<Value> = (0..501)
        .map(|n| email(&format!("r{n}@example.org")))
        .collect();
    let (status, body) = post(&sim, "/email/batch", &Value::Array(too_many)).await;
    assert_eq!((status, body["ErrorCode"].as_i64()), (422, Some(410)));
    assert_eq!(sim.messages().len(), 2);
    let counters = sim.counters();
    assert_eq!(counters.requests["POST /email/batch"], 2);
    assert_eq!(counters.messages_accepted, 2);
    assert_eq!(counters.messages_rejected, 1);
}

#[tokio::test]
async fn size_limits_answer_413() {
    let (sim, _) = with_server(None).await;
    let mut big = email("ada@example.org");
    big["TextBody"] = json!("x".repeat(10 * 1024 * 1024 + 1));
    let (status, _) = post(&sim, "/email", &big).await;
    assert_eq!(status, 413);
    let (status, _) = post(&sim, "/email/batch", &json!([big])).await;
    assert_eq!(status, 413, "one message over 10 MB fails the batch");

    let mut large = email("ada@example.org");
    large["TextBody"] = json!("y".repeat(9 * 1024 * 1024));
    let batch: Vec<Value> = (0..6).map(|_| large.clone()).collect();
    let (status, _) = post(&sim, "/email/batch", &Value::Array(batch)).await;
    assert_eq!(status, 413, "over 50 MB in all");
    assert!(sim.messages().is_empty());
}

#[tokio::test]
async fn inactive_recipients_are_refused_or_skipped() {
    let (sim, _) = with_server(None).await;
    let body = json!({"Suppressions": [{"EmailAddress": "gone@example.org"}]});
    let (status, _) = post(&sim, "/message-streams/outbound/suppressions", &body).await;
    assert_eq!(status, 200);

    let (status, answer) = post(&sim, "/email", &email("gone@example.org")).await;
    assert_eq!((status, answer["ErrorCode"].as_i64()), (422, Some(406)));
    let text = answer["Message"].as_str().unwrap();
    assert!(
        text.contains("Found inactive addresses: gone@example.org."),
        "{text}"
    );
    assert_eq!(
        postmark::parse_inactive_addresses(text),
        vec!["gone@example.org"]
    );

    let (status, answer) = post(&sim, "/email", &email("gone@example.org, ada@example.org")).await;
    assert_eq!((status, answer["ErrorCode"].as_i64()), (200, Some(0)));
    assert!(answer["Message"].as_str().unwrap().starts_with(
        "Message OK, but will not deliver to these inactive addresses: gone@example.org"
    ));
    let stored = sim.message(answer["MessageID"].as_str().unwrap()).unwrap();
    assert!(!stored.was_delivered_to("gone@example.org"));
    assert!(stored.was_delivered_to("ada@example.org"));

    let (status, answer) = post(
        &sim,
        "/email/batch",
        &json!([email("ada@example.org"), email("gone@example.org")]),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer[0]["ErrorCode"], 0);
    assert_eq!(answer[1]["ErrorCode"], 406);

    // Suppressions are per stream.
    let mut broadcast = email("gone@example.org");
    broadcast["MessageStream"] = json!("broadcast");
    assert_eq!(post(&sim, "/email", &broadcast).await.0, 200);
}

#[tokio::test]
async fn the_test_token_accepts_without_sending() {
    let (sim, _) = with_server(None).await;
    let (status, body) = call(
        &sim,
        Method::POST,
        "/email",
        Some("POSTMARK_API_TEST"),
        Some(&email("ada@example.org")),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["Message"], "Test job accepted");
    assert!(sim.messages().is_empty());
    let (status, _) = call(
        &sim,
        Method::GET,
        "/server",
        Some("POSTMARK_API_TEST"),
        None,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn server_has_postmarks_shape_without_other_tokens() {
    let sim = simulator().await;
    let mut config = ServerConfig::new(TOKEN)
        .name("Shop")
        .sender_domain("example.com");
    config.tokens.push("second-token-never-shown".to_owned());
    let summary = sim.add_server(config);
    let (status, body) = get(&sim, "/server").await;
    assert_eq!(status, 200);
    let recorded: Value = serde_json::from_str(include_str!(
        "../../../shared/postmark/tests/fixtures/api/postmarker_server_get_recorded.json"
    ))
    .unwrap();
    for key in recorded.as_object().unwrap().keys() {
        assert!(body.get(key).is_some(), "GET /server lacks {key}: {body}");
    }
    assert_eq!(body["ID"], summary.id);
    assert_eq!(body["Name"], "Shop");
    assert_eq!(body["ApiTokens"], json!([TOKEN]));
    assert!(!body.to_string().contains("second-token-never-shown"));
    let info: postmark::ServerInfo = serde_json::from_value(body).unwrap();
    assert_eq!(info.delivery_type, Some(postmark::DeliveryType::Live));
}

#[tokio::test]
async fn message_streams_are_listed_and_found() {
    let sim = simulator().await;
    sim.add_server(
        ServerConfig::new(TOKEN)
            .sender_domain("example.com")
            .stream(StreamConfig::new("newsletters", StreamType::Broadcasts).name("Newsletters")),
    );
    let (status, body) = get(&sim, "/message-streams").await;
    assert_eq!(status, 200);
    assert_eq!(body["TotalCount"], 3);
    let ids: Vec<&str> = body["MessageStreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["ID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["outbound", "broadcast", "newsletters"]);
    let (_, body) = get(&sim, "/message-streams?MessageStreamType=Broadcasts").await;
    assert_eq!(body["TotalCount"], 2);

    let (status, body) = get(&sim, "/message-streams/newsletters").await;
    assert_eq!(status, 200);
    assert_eq!(body["MessageStreamType"], "Broadcasts");
    assert_eq!(body["Name"], "Newsletters");
    assert_eq!(
        body["SubscriptionManagementConfiguration"]["UnsubscribeHandlingType"],
        "Postmark"
    );
    assert!(body["ArchivedAt"].is_null());

    let (status, body) = get(&sim, "/message-streams/missing").await;
    assert_eq!((status, body["ErrorCode"].as_i64()), (422, Some(1226)));
    assert_eq!(
        body["Message"],
        "The message stream for the provided 'ID' was not found."
    );
}

#[tokio::test]
async fn suppressions_are_dumped_created_and_deleted() {
    let (sim, _) = with_server(None).await;
    // A hard bounce suppresses on its own; a complaint too, and it cannot be lifted.
    post(
        &sim,
        "/email",
        &email("HardBounce@bounce-testing.postmarkapp.com"),
    )
    .await;
    post(
        &sim,
        "/email",
        &email("angry@spam-complaint.postmarkapp.com"),
    )
    .await;
    let body = json!({"Suppressions": [
        {"EmailAddress": "manual@example.org"},
        {"EmailAddress": "angry@spam-complaint.postmarkapp.com"},
        {"EmailAddress": "invalid-email-address"},
    ]});
    let (status, answer) = post(&sim, "/message-streams/outbound/suppressions", &body).await;
    assert_eq!(status, 200);
    let statuses: Vec<&str> = answer["Suppressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["Suppressed", "Failed", "Failed"]);
    assert_eq!(answer["Suppressions"][0]["Message"], Value::Null);
    assert_eq!(
        answer["Suppressions"][1]["Message"],
        "You do not have the required authority to change this suppression."
    );
    assert_eq!(
        answer["Suppressions"][2]["Message"],
        "An invalid email address was provided."
    );

    let (status, dump) = get(&sim, "/message-streams/outbound/suppressions/dump").await;
    assert_eq!(status, 200);
    let entries = dump["Suppressions"].as_array().unwrap();
    let reasons: std::collections::BTreeMap<&str, (&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["EmailAddress"].as_str().unwrap(),
                (
                    e["SuppressionReason"].as_str().unwrap(),
                    e["Origin"].as_str().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(
        reasons["HardBounce@bounce-testing.postmarkapp.com"],
        ("HardBounce", "Recipient")
    );
    assert_eq!(
        reasons["angry@spam-complaint.postmarkapp.com"],
        ("SpamComplaint", "Recipient")
    );
    assert_eq!(
        reasons["manual@example.org"],
        ("ManualSuppression", "Customer")
    );
    assert!(
        entries
            .iter()
            .all(|e| is_postmark_timestamp(e["CreatedAt"].as_str().unwrap()))
    );
    let (_, only) = get(
        &sim,
        "/message-streams/outbound/suppressions/dump?SuppressionReason=HardBounce",
    )
    .await;
    assert_eq!(only["Suppressions"].as_array().unwrap().len(), 1);

    let body = json!({"Suppressions": [{"EmailAddress": "manual@example.org"}, {"EmailAddress": "angry@spam-complaint.postmarkapp.com"}, {"EmailAddress": "never@example.org"}]});
    let (_, answer) = post(&sim, "/message-streams/outbound/suppressions/delete", &body).await;
    let statuses: Vec<&str> = answer["Suppressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["Deleted", "Failed", "Deleted"]);
    assert_eq!(
        post(&sim, "/email", &email("manual@example.org")).await.0,
        200
    );

    let (status, body) = get(&sim, "/message-streams/nope/suppressions/dump").await;
    assert_eq!((status, body["ErrorCode"].as_i64()), (422, Some(1226)));
}

#[tokio::test]
async fn a_bounce_is_reactivated() {
    let receiver = Receiver::start().await;
    let (sim, _) = with_server(Some(postmark_sim::WebhookConfig::new(receiver.url("/wh")))).await;
    post(
        &sim,
        "/email",
        &email("hard_bounce@bounce-testing.postmarkapp.com"),
    )
    .await;
    assert!(sim.settle(SETTLE).await);
    let bounce = &receiver.of_type("Bounce")[0].body;
    let id = bounce["ID"].as_i64().unwrap();
    assert_eq!(
        post(
            &sim,
            "/email",
            &email("hard_bounce@bounce-testing.postmarkapp.com")
        )
        .await
        .1["ErrorCode"],
        406
    );

    let (status, body) = call(
        &sim,
        Method::PUT,
        &format!("/bounces/{id}/activate"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Message"], "OK");
    assert_eq!(body["Bounce"]["Inactive"], false);
    assert_eq!(body["Bounce"]["ID"], id);
    assert_eq!(body["Bounce"]["Type"], "HardBounce");
    assert!(sim.suppressions(1, "outbound").is_empty());
    assert!(sim.settle(SETTLE).await);
    let changes = receiver.of_type("SubscriptionChange");
    let reactivation = changes.last().unwrap();
    assert_eq!(reactivation.body["SuppressSending"], false);
    assert_eq!(reactivation.body["Origin"], "Customer");
    for key in ["MessageID", "SuppressionReason", "Tag"] {
        assert_eq!(
            reactivation.body.get(key),
            Some(&Value::Null),
            "{key} is null on a reactivation"
        );
    }

    let (status, body) = call(
        &sim,
        Method::PUT,
        "/bounces/999/activate",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 422);
    assert!(body["ErrorCode"].as_i64().is_some());
}
