//! The read-back side of Postmark: the Webhooks API (and the webhooks it makes post), the Bounces
//! API, the opens and clicks API, server settings, and the webhook-loss fault.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::*;
use postmark_sim::{
    ClickRequest, OpenRequest, ServerConfig, SimOptions, Simulator, WebhookConfig, WebhookLoss,
};
use reqwest::Method;
use serde_json::{Value, json};

const ZERO_ID: &str = "00000000-0000-0000-0000-000000000000";

async fn put(sim: &Simulator, path: &str, body: &Value) -> (u16, Value) {
    call(sim, Method::PUT, path, Some(TOKEN), Some(body)).await
}

async fn delete(sim: &Simulator, path: &str) -> (u16, Value) {
    call(sim, Method::DELETE, path, Some(TOKEN), None).await
}

async fn send(sim: &Simulator, body: &Value) -> String {
    let (status, answer) = post(sim, "/email", body).await;
    assert_eq!(status, 200, "{answer}");
    answer["MessageID"].as_str().unwrap().to_owned()
}

fn basic(username: &str, password: &str) -> String {
    format!("Basic {}", BASE64.encode(format!("{username}:{password}")))
}

fn error_code(answer: &Value) -> i64 {
    answer["ErrorCode"].as_i64().unwrap_or(-1)
}

#[tokio::test]
async fn webhooks_api_creates_verifies_edits_and_deletes() {
    let (sim, _) = with_server(None).await;
    let receiver = Receiver::start().await;
    let create = json!({
        "Url": receiver.url("/hook"),
        "HttpAuth": { "Username": "hook", "Password": "s3cret" },
        "HttpHeaders": [{ "Name": "X-Shared-Secret", "Value": "abc" }],
        "Triggers": {
            "Delivery": { "Enabled": true },
            "Bounce": { "Enabled": true, "IncludeContent": true },
            "Open": { "Enabled": true, "PostFirstOpenOnly": true },
        },
    });
    let (status, webhook) = post(&sim, "/webhooks", &create).await;
    assert_eq!(status, 200, "{webhook}");
    let id = webhook["ID"].as_i64().expect("an ID");
    assert_eq!(webhook["MessageStream"], "outbound");
    assert_eq!(webhook["Url"], receiver.url("/hook"));
    assert_eq!(
        webhook["HttpAuth"],
        json!({"Username": "hook", "Password": "s3cret"})
    );
    assert_eq!(
        webhook["HttpHeaders"],
        json!([{"Name": "X-Shared-Secret", "Value": "abc"}])
    );
    assert_eq!(
        webhook["Triggers"],
        json!({
            "Open": {"Enabled": true, "PostFirstOpenOnly": true},
            "Click": {"Enabled": false},
            "Delivery": {"Enabled": true},
            "Bounce": {"Enabled": true, "IncludeContent": true},
            "SpamComplaint": {"Enabled": false, "IncludeContent": false},
            "SubscriptionChange": {"Enabled": false},
        })
    );
    assert_eq!(webhook["Status"], "verified");

    // One test post per enabled trigger, with the credentials and headers, all-zero MessageID.
    let tests = receiver.received();
    let mut kinds: Vec<&str> = tests.iter().map(Received::record_type).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["Bounce", "Delivery", "Open"]);
    for test in &tests {
        assert_eq!(
            test.header("authorization"),
            Some(basic("hook", "s3cret").as_str())
        );
        assert_eq!(test.header("x-shared-secret"), Some("abc"));
        assert_eq!(test.body["MessageID"], ZERO_ID);
    }

    // Reading back.
    let (status, one) = get(&sim, &format!("/webhooks/{id}")).await;
    assert_eq!((status, &one), (200, &webhook));
    let (status, list) = get(&sim, "/webhooks").await;
    assert_eq!(status, 200);
    assert_eq!(list, json!({ "Webhooks": [webhook.clone()] }));
    let (_, list) = get(&sim, "/webhooks?MessageStream=outbound").await;
    assert_eq!(list["Webhooks"].as_array().unwrap().len(), 1);
    let (_, list) = get(&sim, "/webhooks?MessageStream=broadcast").await;
    assert_eq!(list, json!({ "Webhooks": [] }));
    let (status, refused) = get(&sim, "/webhooks?MessageStream=nope").await;
    assert_eq!((status, error_code(&refused)), (422, 1226), "{refused}");

    // A partial edit: only Click changes; an empty HttpHeaders clears the headers.
    let (status, edited) = put(
        &sim,
        &format!("/webhooks/{id}"),
        &json!({ "Triggers": { "Click": { "Enabled": true } }, "HttpHeaders": [] }),
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["Triggers"]["Click"]["Enabled"], true);
    assert_eq!(edited["Triggers"]["Delivery"]["Enabled"], true);
    assert_eq!(edited["Triggers"]["Open"]["PostFirstOpenOnly"], true);
    assert_eq!(edited["HttpHeaders"], json!([]));
    assert_eq!(edited["HttpAuth"]["Password"], "s3cret");
    assert_eq!(edited["Url"], receiver.url("/hook"));
    // The edit was verified too: the four enabled triggers were posted again.
    assert_eq!(receiver.received().len(), 3 + 4);

    // Refusals.
    let refusals = [
        (json!({ "MessageStream": "outbound" }), 1354),
        (json!({ "Url": "not a url" }), 1354),
        (json!({ "ID": 5, "Url": receiver.url("/x") }), 1356),
        (
            json!({ "Url": receiver.url("/x"), "HttpHeaders": [{"Name": "Bad Name", "Value": "v"}] }),
            1358,
        ),
        (
            json!({ "Url": receiver.url("/x"), "MessageStream": "nope" }),
            1226,
        ),
        (
            json!({ "Url": receiver.url("/x"), "Status": "verified" }),
            1363,
        ),
    ];
    for (body, code) in refusals {
        let (status, refused) = post(&sim, "/webhooks", &body).await;
        assert_eq!(
            (status, error_code(&refused)),
            (422, code),
            "{body}: {refused}"
        );
    }
    let (status, refused) = put(
        &sim,
        &format!("/webhooks/{id}"),
        &json!({ "MessageStream": "broadcast" }),
    )
    .await;
    assert_eq!((status, error_code(&refused)), (422, 1357), "{refused}");
    let (status, refused) = call(&sim, Method::GET, "/webhooks", None, None).await;
    assert_eq!((status, error_code(&refused)), (401, 10));

    // An endpoint that answers 500 is refused and nothing is saved; an edit to it changes nothing.
    let failing = Receiver::start().await;
    failing.answer(&[500]);
    let (status, refused) = post(
        &sim,
        "/webhooks",
        &json!({ "Url": failing.url("/down"), "Triggers": { "Delivery": { "Enabled": true } } }),
    )
    .await;
    assert_eq!((status, error_code(&refused)), (422, 1364), "{refused}");
    assert_eq!(failing.received().len(), 1);
    failing.answer(&[500]);
    let (status, refused) = put(
        &sim,
        &format!("/webhooks/{id}"),
        &json!({ "Url": failing.url("/down") }),
    )
    .await;
    assert_eq!((status, error_code(&refused)), (422, 1364), "{refused}");
    let (_, list) = get(&sim, "/webhooks").await;
    assert_eq!(list["Webhooks"].as_array().unwrap().len(), 1);
    assert_eq!(list["Webhooks"][0]["Url"], receiver.url("/hook"));

    // Verify:false skips the test posts and saves it unverified; a passing verify marks it verified.
    failing.answer(&[500]);
    let (status, unverified) = post(
        &sim,
        "/webhooks",
        &json!({ "Url": failing.url("/later"), "MessageStream": "broadcast", "Verify": false,
                 "Triggers": { "Delivery": { "Enabled": true } } }),
    )
    .await;
    assert_eq!(status, 200, "{unverified}");
    assert_eq!(unverified["Status"], "unverified");
    assert_eq!(unverified["MessageStream"], "broadcast");
    assert_eq!(failing.received().len(), 5, "Verify:false posted nothing");
    let second = unverified["ID"].as_i64().unwrap();
    let (status, result) = post(&sim, &format!("/webhooks/{second}/verify"), &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(result["Success"], false, "{result}");
    assert_eq!(result["Results"][0]["StatusCode"], 500);
    let (_, result) = post(&sim, &format!("/webhooks/{second}/verify"), &json!({})).await;
    assert_eq!(result["Success"], true, "{result}");
    assert_eq!(result["Message"], "1/1 triggers verified successfully");
    let (_, now) = get(&sim, &format!("/webhooks/{second}")).await;
    assert_eq!(now["Status"], "verified");

    // Delete.
    let (status, removed) = delete(&sim, &format!("/webhooks/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        removed,
        json!({"ErrorCode": 0, "Message": format!("Webhook {id} removed.")})
    );
    let (status, gone) = get(&sim, &format!("/webhooks/{id}")).await;
    assert_eq!((status, error_code(&gone)), (422, 1352));
    assert_eq!(
        gone["Message"],
        "The webhook for the provided 'ID' was not found."
    );
    let (status, gone) = delete(&sim, &format!("/webhooks/{id}")).await;
    assert_eq!((status, error_code(&gone)), (422, 1352));
}

#[tokio::test]
async fn webhooks_api_needs_a_body_and_caps_a_stream_at_ten() {
    let (sim, _) = with_server(None).await;
    let empty = reqwest::Client::new()
        .post(format!("{}/webhooks", sim.api_url()))
        .header("Accept", "application/json")
        .header("Content-Type", "application/json")
        .header("X-Postmark-Server-Token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 422);
    let answer: Value = empty.json().await.unwrap();
    assert_eq!(error_code(&answer), 1355, "{answer}");
    for n in 0..10 {
        let (status, created) = post(
            &sim,
            "/webhooks",
            &json!({ "Url": format!("http://127.0.0.1:9/{n}"), "MessageStream": "broadcast",
                     "Verify": false }),
        )
        .await;
        assert_eq!(status, 200, "{created}");
    }
    let (status, refused) = post(
        &sim,
        "/webhooks",
        &json!({ "Url": "http://127.0.0.1:9/x", "MessageStream": "broadcast", "Verify": false }),
    )
    .await;
    assert_eq!((status, error_code(&refused)), (422, 1359), "{refused}");
    // Another stream has room; an unreachable URL fails verification.
    let (status, refused) = post(
        &sim,
        "/webhooks",
        &json!({ "Url": "http://127.0.0.1:9/x", "Triggers": { "Click": { "Enabled": true } } }),
    )
    .await;
    assert_eq!((status, error_code(&refused)), (422, 1364), "{refused}");
    assert_eq!(refused["Results"][0]["TriggerType"], "Click");
    let (_, list) = get(&sim, "/webhooks").await;
    assert_eq!(list["Webhooks"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn api_webhooks_get_their_streams_events_with_basic_credentials() {
    let sim = simulator().await;
    sim.add_server(server_config(None).track_opens(true));
    let first_only = Receiver::start().await;
    let every_open = Receiver::start().await;
    let broadcast = Receiver::start().await;
    let mut ids = Vec::new();
    for (receiver, first, stream) in [
        (&first_only, true, "outbound"),
        (&every_open, false, "outbound"),
        (&broadcast, false, "broadcast"),
    ] {
        let (status, webhook) = post(
            &sim,
            "/webhooks",
            &json!({
                "Url": receiver.url("/events"),
                "MessageStream": stream,
                "HttpAuth": { "Username": "pm", "Password": "pa:ss" },
                "HttpHeaders": [{ "Name": "X-Hook", "Value": stream }],
                "Triggers": {
                    "Delivery": { "Enabled": true },
                    "Bounce": { "Enabled": true },
                    "Open": { "Enabled": true, "PostFirstOpenOnly": first },
                    "SubscriptionChange": { "Enabled": false },
                },
            }),
        )
        .await;
        assert_eq!(status, 200, "{webhook}");
        ids.push(webhook["ID"].as_i64().unwrap());
    }
    assert!(sim.settle(SETTLE).await);
    let tests = |receiver: &Receiver| receiver.received().len();
    let before = [tests(&first_only), tests(&every_open), tests(&broadcast)];
    assert_eq!(before, [3, 3, 3]);

    let delivered = send(&sim, &email("ada@example.org")).await;
    let bounced = send(&sim, &email("HardBounce@bounce-testing.postmarkapp.com")).await;
    for _ in 0..3 {
        sim.open(OpenRequest::new(&delivered, "ada@example.org"))
            .unwrap();
    }
    assert!(sim.settle(SETTLE).await);

    let real = |receiver: &Receiver, kind: &str| -> Vec<Received> {
        receiver
            .of_type(kind)
            .into_iter()
            .filter(|r| r.body["MessageID"] != ZERO_ID)
            .collect()
    };
    for receiver in [&first_only, &every_open] {
        let deliveries = real(receiver, "Delivery");
        assert_eq!(deliveries.len(), 1);
        assert_eq!(deliveries[0].body["MessageID"], delivered.as_str());
        assert_eq!(
            deliveries[0].header("authorization"),
            Some(basic("pm", "pa:ss").as_str())
        );
        assert_eq!(deliveries[0].header("x-hook"), Some("outbound"));
        assert_eq!(deliveries[0].uri.path(), "/events");
        let bounces = real(receiver, "Bounce");
        assert_eq!(bounces.len(), 1);
        assert_eq!(bounces[0].body["MessageID"], bounced.as_str());
        assert!(
            bounces[0].body.get("Content").is_none(),
            "IncludeContent is off"
        );
        assert!(real(receiver, "SubscriptionChange").is_empty());
    }
    // PostFirstOpenOnly: one open posted; without it, all three (the later ones not first).
    let opens = real(&first_only, "Open");
    assert_eq!(opens.len(), 1);
    assert_eq!(opens[0].body["FirstOpen"], true);
    let opens = real(&every_open, "Open");
    assert_eq!(opens.len(), 3);
    assert_eq!(
        opens.iter().filter(|o| o.body["FirstOpen"] == true).count(),
        1
    );
    // The broadcast stream's webhook heard nothing of the outbound stream.
    assert_eq!(broadcast.received().len(), 3);

    // Marked unverified through the control API, a webhook gets nothing until verified again.
    let client = reqwest::Client::new();
    let answer = client
        .put(format!("{}/_sim/api_webhooks/{}", sim.api_url(), ids[0]))
        .json(&json!({ "status": "unverified" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let (_, shown) = get(&sim, &format!("/webhooks/{}", ids[0])).await;
    assert_eq!(shown["Status"], "unverified");
    let listed: Value = client
        .get(format!("{}/_sim/api_webhooks", sim.api_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3);
    let later = send(&sim, &email("bob@example.org")).await;
    assert!(sim.settle(SETTLE).await);
    assert!(
        real(&first_only, "Delivery")
            .iter()
            .all(|r| r.body["MessageID"] != later.as_str())
    );
    assert!(
        real(&every_open, "Delivery")
            .iter()
            .any(|r| r.body["MessageID"] == later.as_str())
    );
    // A deleted webhook gets nothing either.
    let (status, _) = delete(&sim, &format!("/webhooks/{}", ids[1])).await;
    assert_eq!(status, 200);
    let last = send(&sim, &email("cy@example.org")).await;
    assert!(sim.settle(SETTLE).await);
    assert!(
        real(&every_open, "Delivery")
            .iter()
            .all(|r| r.body["MessageID"] != last.as_str())
    );
}

#[tokio::test]
async fn bounces_api_lists_every_bounce_and_refuses_bad_queries() {
    let (sim, server) = with_server(None).await;
    let mut hard = email("HardBounce@bounce-testing.postmarkapp.com");
    hard["Tag"] = json!("welcome");
    let hard_id = send(&sim, &hard).await;
    let soft_id = send(&sim, &email("SoftBounce@bounce-testing.postmarkapp.com")).await;
    let spam_id = send(&sim, &email("eve@spam-complaint.postmarkapp.com")).await;
    let _delivered = send(&sim, &email("ada@example.org")).await;

    let (status, all) = get(&sim, "/bounces?count=10&offset=0").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["TotalCount"], 3);
    let bounces = all["Bounces"].as_array().unwrap();
    // Newest first.
    let types: Vec<&str> = bounces
        .iter()
        .map(|b| b["Type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["SpamComplaint", "SoftBounce", "HardBounce"]);
    let hard_bounce = &bounces[2];
    for field in [
        "ID",
        "Type",
        "TypeCode",
        "Name",
        "Tag",
        "MessageID",
        "ServerID",
        "MessageStream",
        "Description",
        "Details",
        "Email",
        "From",
        "BouncedAt",
        "DumpAvailable",
        "Inactive",
        "CanActivate",
        "Subject",
    ] {
        assert!(hard_bounce.get(field).is_some(), "{field} in {hard_bounce}");
    }
    assert!(hard_bounce["ID"].is_i64());
    assert_eq!(hard_bounce["TypeCode"], 1);
    assert_eq!(hard_bounce["Name"], "Hard bounce");
    assert_eq!(hard_bounce["Tag"], "welcome");
    assert_eq!(hard_bounce["MessageID"], hard_id.as_str());
    assert_eq!(hard_bounce["ServerID"], server.id);
    assert_eq!(hard_bounce["MessageStream"], "outbound");
    assert_eq!(
        hard_bounce["Email"],
        "HardBounce@bounce-testing.postmarkapp.com"
    );
    assert_eq!(hard_bounce["From"], FROM);
    assert_eq!(hard_bounce["Subject"], "Hello");
    assert_eq!(hard_bounce["Inactive"], true);
    assert_eq!(hard_bounce["CanActivate"], true);
    assert!(is_postmark_timestamp(
        hard_bounce["BouncedAt"].as_str().unwrap()
    ));
    let spam = &bounces[0];
    assert_eq!(spam["TypeCode"], 100001);
    assert_eq!(spam["Name"], "Spam complaint");
    assert_eq!(spam["CanActivate"], false);
    assert_eq!(spam["Inactive"], true);
    assert_eq!(bounces[1]["Inactive"], false);

    let count = |query: &str| {
        let sim = &sim;
        let query = query.to_owned();
        async move {
            let (status, answer) = get(sim, &format!("/bounces?count=10&offset=0&{query}")).await;
            assert_eq!(status, 200, "{query}: {answer}");
            assert_eq!(
                answer["TotalCount"].as_u64().unwrap() as usize,
                answer["Bounces"].as_array().unwrap().len()
            );
            answer["TotalCount"].as_u64().unwrap()
        }
    };
    assert_eq!(count("type=HardBounce").await, 1);
    assert_eq!(count("type=SMTPApiError").await, 0);
    assert_eq!(count("inactive=true").await, 2);
    assert_eq!(count("inactive=false").await, 1);
    assert_eq!(count("emailFilter=softbounce@").await, 1);
    assert_eq!(count("tag=welcome").await, 1);
    assert_eq!(count(&format!("messageID={soft_id}")).await, 1);
    assert_eq!(count("messagestream=broadcast").await, 0);
    assert_eq!(count("fromdate=2999-01-01T00:00:00").await, 0);
    assert_eq!(count("todate=2999-01-01T00:00:00").await, 3);
    let (_, paged) = get(&sim, "/bounces?count=1&offset=1").await;
    assert_eq!(paged["TotalCount"], 3);
    assert_eq!(paged["Bounces"][0]["Type"], "SoftBounce");

    for query in [
        "count=501&offset=0",
        "count=500&offset=9501",
        "offset=0",
        "count=10",
        "count=10&offset=0&inactive=sometimes",
        "count=10&offset=0&fromdate=yesterday",
    ] {
        let (status, refused) = get(&sim, &format!("/bounces?{query}")).await;
        assert_eq!((status, error_code(&refused)), (422, 1000), "{query}");
    }

    // One bounce; the details' Bounced event names it; reactivation agrees with CanActivate.
    let id = hard_bounce["ID"].as_i64().unwrap();
    let (status, one) = get(&sim, &format!("/bounces/{id}")).await;
    assert_eq!((status, &one), (200, hard_bounce));
    let (status, missing) = get(&sim, "/bounces/999999999").await;
    assert_eq!((status, error_code(&missing)), (422, 1001));
    let (_, details) = get(&sim, &format!("/messages/outbound/{hard_id}/details")).await;
    let events = details["MessageEvents"].as_array().unwrap();
    let bounced = events.iter().find(|e| e["Type"] == "Bounced").unwrap();
    assert_eq!(bounced["Details"]["BounceID"], id.to_string());
    assert!(events.iter().any(|e| e["Type"] == "SubscriptionChanged"));
    let spam_bounce = spam["ID"].as_i64().unwrap();
    let (status, refused) = put(
        &sim,
        &format!("/bounces/{spam_bounce}/activate"),
        &json!({}),
    )
    .await;
    assert_eq!((status, error_code(&refused)), (422, 1003), "{refused}");
    let (_, details) = get(&sim, &format!("/messages/outbound/{spam_id}/details")).await;
    let kinds: Vec<&str> = details["MessageEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Delivered", "SubscriptionChanged"]);
    let (status, activated) = put(&sim, &format!("/bounces/{id}/activate"), &json!({})).await;
    assert_eq!(status, 200, "{activated}");
    assert_eq!(activated["Bounce"]["Inactive"], false);
    assert_eq!(count("inactive=true").await, 1);
    let (_, dump) = get(&sim, &format!("/bounces/{id}/dump")).await;
    assert!(dump["Body"].as_str().unwrap().contains(&hard_id));
}

#[tokio::test]
async fn opens_and_clicks_api_and_message_events() {
    let sim = simulator().await;
    sim.add_server(server_config(None).track_opens(true));
    let mut first = email("ada@example.org, bob@example.org");
    first["Tag"] = json!("news");
    first["TrackLinks"] = json!("HtmlAndText");
    first["Metadata"] = json!({ "job": "j-1", "color": "blue" });
    let read = send(&sim, &first).await;
    let mut other = email("cy@example.org");
    other["Metadata"] = json!({ "job": "j-2" });
    let unread = send(&sim, &other).await;
    let mut broadcast = email("dee@example.org");
    broadcast["MessageStream"] = json!("broadcast");
    let on_broadcast = send(&sim, &broadcast).await;

    for recipient in ["ada@example.org", "ada@example.org", "bob@example.org"] {
        sim.open(OpenRequest::new(&read, recipient)).unwrap();
    }
    sim.open(OpenRequest::new(&on_broadcast, "dee@example.org"))
        .unwrap();
    for _ in 0..2 {
        sim.click(ClickRequest::new(
            &read,
            "ada@example.org",
            "https://example.com/offer",
        ))
        .unwrap();
    }

    // Only first opens are stored: one per recipient.
    let (status, opens) = get(&sim, "/messages/outbound/opens?count=10&offset=0").await;
    assert_eq!(status, 200, "{opens}");
    assert_eq!(opens["TotalCount"], 2);
    let open = &opens["Opens"][1];
    assert_eq!(open["RecordType"], "Open");
    assert_eq!(open["MessageID"], read.as_str());
    assert_eq!(open["Recipient"], "ada@example.org");
    assert_eq!(open["Tag"], "news");
    assert_eq!(open["FirstOpen"], true);
    assert_eq!(open["MessageStream"], "outbound");
    for field in ["Client", "OS", "Platform", "UserAgent", "Geo", "ReceivedAt"] {
        assert!(open.get(field).is_some(), "{field}");
    }
    assert!(open.get("Metadata").is_none());
    let (_, filtered) = get(
        &sim,
        "/messages/outbound/opens?count=10&offset=0&recipient=BOB@example.org",
    )
    .await;
    assert_eq!(filtered["TotalCount"], 1);
    let (_, filtered) = get(&sim, "/messages/outbound/opens?count=10&offset=0&tag=other").await;
    assert_eq!(filtered["TotalCount"], 0);
    let (_, filtered) = get(
        &sim,
        "/messages/outbound/opens?count=10&offset=0&messagestream=broadcast",
    )
    .await;
    assert_eq!(filtered["TotalCount"], 1);
    let (_, filtered) = get(
        &sim,
        "/messages/outbound/opens?count=10&offset=0&platform=Mobile",
    )
    .await;
    assert_eq!(filtered["TotalCount"], 0);
    let (_, paged) = get(&sim, "/messages/outbound/opens?count=1&offset=1").await;
    assert_eq!(paged["TotalCount"], 2);
    assert_eq!(paged["Opens"].as_array().unwrap().len(), 1);
    let (status, refused) = get(&sim, "/messages/outbound/opens?count=501&offset=0").await;
    assert_eq!((status, error_code(&refused)), (422, 700));

    let (status, of_message) = get(
        &sim,
        &format!("/messages/outbound/opens/{read}?count=10&offset=0"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(of_message["TotalCount"], 2);
    let (status, none) = get(
        &sim,
        &format!("/messages/outbound/opens/{unread}?count=10&offset=0"),
    )
    .await;
    assert_eq!((status, error_code(&none)), (422, 701), "{none}");
    assert_eq!(none["Message"], "This message was not found.");

    // Clicks: one per recipient and link.
    let (status, clicks) = get(&sim, "/messages/outbound/clicks?count=10&offset=0").await;
    assert_eq!(status, 200);
    assert_eq!(clicks["TotalCount"], 1);
    let click = &clicks["Clicks"][0];
    assert_eq!(click["RecordType"], "Click");
    assert_eq!(click["OriginalLink"], "https://example.com/offer");
    assert_eq!(click["ClickLocation"], "HTML");
    assert_eq!(click["Recipient"], "ada@example.org");
    let (status, _) = get(
        &sim,
        &format!("/messages/outbound/clicks/{read}?count=10&offset=0"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, none) = get(
        &sim,
        &format!("/messages/outbound/clicks/{unread}?count=10&offset=0"),
    )
    .await;
    assert_eq!((status, error_code(&none)), (422, 701));

    // Details list the events; search returns Metadata and filters by one metadata field.
    let (_, details) = get(&sim, &format!("/messages/outbound/{read}/details")).await;
    let kinds: Vec<(&str, &str)> = details["MessageEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["Type"].as_str().unwrap(),
                e["Recipient"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("Delivered", "ada@example.org"),
            ("Delivered", "bob@example.org"),
            ("Opened", "ada@example.org"),
            ("Opened", "bob@example.org"),
            ("LinkClicked", "ada@example.org"),
        ]
    );
    let clicked = &details["MessageEvents"][4]["Details"];
    assert_eq!(clicked["Link"], "https://example.com/offer");
    assert_eq!(clicked["ClickLocation"], "HTML");
    let (_, found) = get(
        &sim,
        "/messages/outbound?count=10&offset=0&metadata_job=j-1",
    )
    .await;
    assert_eq!(found["TotalCount"], 1);
    assert_eq!(found["Messages"][0]["MessageID"], read.as_str());
    assert_eq!(
        found["Messages"][0]["Metadata"],
        json!({"job": "j-1", "color": "blue"})
    );
}

#[tokio::test]
async fn server_settings_are_reported_and_edited() {
    let (sim, _) = with_server(None).await;
    let (status, server) = get(&sim, "/server").await;
    assert_eq!(status, 200);
    for (field, value) in [
        ("TrackOpens", json!(false)),
        ("TrackLinks", json!("None")),
        ("PostFirstOpenOnly", json!(false)),
        ("SmtpApiActivated", json!(true)),
        ("EnableSmtpApiErrorHooks", json!(false)),
        ("IncludeBounceContentInHook", json!(false)),
        ("DeliveryType", json!("Live")),
    ] {
        assert_eq!(server[field], value, "{field}");
    }
    let (status, edited) = put(
        &sim,
        "/server",
        &json!({
            "TrackOpens": true, "TrackLinks": "HtmlAndTextTracking", "PostFirstOpenOnly": true,
            "SmtpApiActivated": false, "EnableSmtpApiErrorHooks": true,
            "IncludeBounceContentInHook": true, "DeliveryType": "Sandbox",
        }),
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    let (_, server) = get(&sim, "/server").await;
    assert_eq!(server, edited);
    for (field, value) in [
        ("TrackOpens", json!(true)),
        ("TrackLinks", json!("HtmlAndText")),
        ("PostFirstOpenOnly", json!(true)),
        ("SmtpApiActivated", json!(false)),
        ("EnableSmtpApiErrorHooks", json!(true)),
        ("IncludeBounceContentInHook", json!(true)),
        ("DeliveryType", json!("Sandbox")),
    ] {
        assert_eq!(server[field], value, "{field}");
    }
    // A partial edit keeps the rest.
    let (_, edited) = put(&sim, "/server", &json!({ "TrackOpens": false })).await;
    assert_eq!(edited["TrackOpens"], false);
    assert_eq!(edited["EnableSmtpApiErrorHooks"], true);
    // Server-level open tracking now applies to new messages.
    let (_, edited) = put(&sim, "/server", &json!({ "TrackOpens": true })).await;
    assert_eq!(edited["TrackOpens"], true);
    let id = send(&sim, &email("ada@example.org")).await;
    assert!(sim.message(&id).unwrap().track_opens);
    for body in [
        json!({ "TrackLinks": "Sometimes" }),
        json!({ "DeliveryType": "Dry" }),
    ] {
        let (status, refused) = put(&sim, "/server", &body).await;
        assert_eq!(status, 422, "{body}: {refused}");
    }

    let (_, streams) = get(&sim, "/message-streams").await;
    let handling: Vec<(&str, &str)> = streams["MessageStreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["ID"].as_str().unwrap(),
                s["SubscriptionManagementConfiguration"]["UnsubscribeHandlingType"]
                    .as_str()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(handling, [("outbound", "None"), ("broadcast", "Postmark")]);
}

#[tokio::test]
async fn server_level_post_first_open_only_applies_to_configured_webhooks() {
    let receiver = Receiver::start().await;
    let sim = simulator().await;
    sim.add_server(server_config(Some(WebhookConfig::new(receiver.url("/wh")))).track_opens(true));
    let (status, _) = put(&sim, "/server", &json!({ "PostFirstOpenOnly": true })).await;
    assert_eq!(status, 200);
    let id = send(&sim, &email("ada@example.org")).await;
    for _ in 0..3 {
        sim.open(OpenRequest::new(&id, "ada@example.org")).unwrap();
    }
    assert!(sim.settle(SETTLE).await);
    assert_eq!(receiver.of_type("Open").len(), 1);
}

/// Sends `count` messages, one at a time, to distinct recipients; the MessageIDs in order.
async fn send_many(sim: &Simulator, count: usize, tag: Option<&str>) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..count {
        let mut body = email(&format!("r{n}@example.org"));
        if let Some(tag) = tag {
            body["Tag"] = json!(tag);
        }
        ids.push(send(sim, &body).await);
    }
    ids
}

/// A simulator losing `loss` of the webhooks, with one Delivery-and-Bounce webhook.
async fn lossy(loss: WebhookLoss, receiver: &Receiver) -> Simulator {
    let sim = Simulator::start(SimOptions {
        webhook_loss: loss,
        ..SimOptions::for_tests()
    })
    .await
    .unwrap();
    sim.add_server(
        ServerConfig::new(TOKEN)
            .sender_domain("example.com")
            .webhook(
                WebhookConfig::new(receiver.url("/wh")).triggers(postmark_sim::Triggers {
                    open: false,
                    click: false,
                    subscription_change: false,
                    ..postmark_sim::Triggers::default()
                }),
            ),
    );
    sim
}

#[tokio::test]
async fn lost_webhooks_are_exactly_the_seeded_share_and_listed() {
    let loss = WebhookLoss {
        share: 0.3,
        seed: 11,
        ..WebhookLoss::default()
    };
    let receiver = Receiver::start().await;
    let sim = lossy(loss.clone(), &receiver).await;
    let ids = send_many(&sim, 60, None).await;
    assert!(sim.settle(SETTLE).await);

    let lost = sim.lost_webhooks();
    let lost_ids: Vec<String> = lost
        .iter()
        .map(|record| record.message_id.clone().unwrap())
        .collect();
    assert!(
        (8..=28).contains(&lost.len()),
        "{} of 60 lost for a share of 0.3",
        lost.len()
    );
    assert!(lost.iter().all(|record| record.attempts.is_empty()));
    // What was lost is exactly what never arrived, and everything else arrived once.
    let received: Vec<String> = receiver
        .of_type("Delivery")
        .iter()
        .map(|r| r.body["MessageID"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(received.len() + lost.len(), 60);
    for id in &ids {
        assert_ne!(
            received.contains(id),
            lost_ids.contains(id),
            "{id} is either received or lost"
        );
    }
    // The control API lists the same.
    let report: Value = reqwest::get(format!("{}/_sim/webhook_loss", sim.api_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["share"], 0.3);
    assert_eq!(report["seed"], 11);
    assert_eq!(report["lost"], lost.len());
    let listed: Vec<&str> = report["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, lost_ids);
    let by_state: Value = reqwest::get(format!("{}/_sim/webhooks?state=lost", sim.api_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_state.as_array().unwrap().len(), lost.len());

    // Everything else stays: search and details still show the lost messages as delivered.
    for id in lost_ids.iter().take(3) {
        let (status, details) = get(&sim, &format!("/messages/outbound/{id}/details")).await;
        assert_eq!(status, 200);
        assert_eq!(details["MessageEvents"][0]["Type"], "Delivered");
    }
    let (_, found) = get(&sim, "/messages/outbound?count=100&offset=0").await;
    assert_eq!(found["TotalCount"], 60);

    // The same seed and sends lose the same positions.
    let again = Receiver::start().await;
    let twin = lossy(loss, &again).await;
    let twin_ids = send_many(&twin, 60, None).await;
    assert!(twin.settle(SETTLE).await);
    let positions = |ids: &[String], lost: &[String]| -> Vec<usize> {
        ids.iter()
            .enumerate()
            .filter(|(_, id)| lost.contains(id))
            .map(|(n, _)| n)
            .collect()
    };
    let twin_lost: Vec<String> = twin
        .lost_webhooks()
        .iter()
        .map(|r| r.message_id.clone().unwrap())
        .collect();
    assert_eq!(positions(&ids, &lost_ids), positions(&twin_ids, &twin_lost));
}

#[tokio::test]
async fn webhook_loss_limited_to_a_tag_keeps_bounces_and_events() {
    let receiver = Receiver::start().await;
    let sim = lossy(WebhookLoss::default(), &receiver).await;
    // Set at run time, for one tag only.
    let answer = reqwest::Client::new()
        .put(format!("{}/_sim/webhook_loss", sim.api_url()))
        .json(&json!({ "share": 1.0, "seed": 1, "tag": "lossy" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let refused = reqwest::Client::new()
        .put(format!("{}/_sim/webhook_loss", sim.api_url()))
        .json(&json!({ "share": 1.5 }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);

    let mut lossy_bounce = email("HardBounce@bounce-testing.postmarkapp.com");
    lossy_bounce["Tag"] = json!("lossy");
    let bounced = send(&sim, &lossy_bounce).await;
    let kept = send_many(&sim, 3, Some("kept")).await;
    assert!(sim.settle(SETTLE).await);

    assert_eq!(receiver.of_type("Bounce").len(), 0);
    assert_eq!(receiver.of_type("Delivery").len(), 3);
    let lost = sim.lost_webhooks();
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].record_type, "Bounce");
    assert_eq!(lost[0].message_id.as_deref(), Some(bounced.as_str()));
    assert!(
        kept.iter()
            .all(|id| lost[0].message_id.as_deref() != Some(id))
    );

    // The bounce API, the details and the suppression still tell the story.
    let (_, bounces) = get(
        &sim,
        &format!("/bounces?count=10&offset=0&messageID={bounced}"),
    )
    .await;
    assert_eq!(bounces["TotalCount"], 1);
    assert_eq!(bounces["Bounces"][0]["Type"], "HardBounce");
    let (_, details) = get(&sim, &format!("/messages/outbound/{bounced}/details")).await;
    assert_eq!(details["MessageEvents"][0]["Type"], "Bounced");
    assert_eq!(
        details["MessageEvents"][0]["Details"]["BounceID"],
        bounces["Bounces"][0]["ID"].as_i64().unwrap().to_string()
    );
    let (_, dump) = get(&sim, "/message-streams/outbound/suppressions/dump").await;
    assert_eq!(dump["Suppressions"].as_array().unwrap().len(), 1);

    // Cleared, nothing more is lost.
    let cleared: Value = reqwest::Client::new()
        .delete(format!("{}/_sim/webhook_loss", sim.api_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cleared["share"], 0.0);
    lossy_bounce["To"] = json!("Hard_Bounce@bounce-testing.postmarkapp.com");
    let again = send(&sim, &lossy_bounce).await;
    assert!(sim.settle(SETTLE).await);
    assert!(
        receiver
            .of_type("Bounce")
            .iter()
            .any(|r| r.body["MessageID"] == again.as_str())
    );
}
