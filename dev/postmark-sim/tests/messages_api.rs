//! The Messages API: outbound search (every filter, paging limits, streams, Eastern dates, the
//! indexing delay) and details (events, 701).

mod common;

use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use common::*;
use postmark_sim::{ClickRequest, OpenRequest, ServerConfig};
use serde_json::{Value, json};

fn message(to: &str, subject: &str, tag: &str, job: &str) -> Value {
    json!({
        "From": FROM,
        "To": to,
        "Subject": subject,
        "HtmlBody": "<p>Hi <a href=\"https://example.com/offer\">offer</a></p>",
        "TextBody": "Hi",
        "Tag": tag,
        "Metadata": {"job_id": job, "send_id": "s-1"},
        "TrackOpens": true,
        "TrackLinks": "HtmlAndText",
    })
}

async fn search(sim: &postmark_sim::Simulator, query: &str) -> (u16, Value) {
    get(sim, &format!("/messages/outbound?{query}")).await
}

fn ids(body: &Value) -> Vec<String> {
    body["Messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no Messages in {body}"))
        .iter()
        .map(|m| m["MessageID"].as_str().unwrap().to_owned())
        .collect()
}

async fn send(sim: &postmark_sim::Simulator, body: &Value) -> String {
    let (status, receipt) = post(sim, "/email", body).await;
    assert_eq!(status, 200, "{receipt}");
    receipt["MessageID"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn search_filters_on_every_field() {
    let (sim, _) = with_server(None).await;
    let first = send(
        &sim,
        &message("Ada <ada@example.org>", "Your Receipt", "receipt", "j-1"),
    )
    .await;
    let mut with_cc = message("bob@example.org", "Weekly news", "news", "j-2");
    with_cc["Cc"] = json!("carol@example.org");
    with_cc["Bcc"] = json!("dave@example.org");
    with_cc["From"] = json!("News <news@example.com>");
    let second = send(&sim, &with_cc).await;

    let (status, all) = search(&sim, "count=10&offset=0").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["TotalCount"], 2);
    assert_eq!(ids(&all), [second.clone(), first.clone()], "newest first");

    for (query, expected) in [
        ("recipient=ADA@example.org", vec![first.clone()]),
        ("recipient=carol@example.org", vec![second.clone()]),
        ("recipient=dave@example.org", vec![second.clone()]),
        ("recipient=nobody@example.org", vec![]),
        ("fromemail=news@example.com", vec![second.clone()]),
        ("fromemail=SHOP@example.com", vec![first.clone()]),
        ("tag=receipt", vec![first.clone()]),
        ("tag=Receipt", vec![]),
        ("subject=receipt", vec![first.clone()]),
        ("subject=NEWS", vec![second.clone()]),
        ("status=sent", vec![second.clone(), first.clone()]),
        ("status=queued", vec![]),
        ("metadata_job_id=j-2", vec![second.clone()]),
        ("metadata_send_id=s-1", vec![second.clone(), first.clone()]),
        (
            "Recipient=ada@example.org&MetaData_job_id=j-1",
            vec![first.clone()],
        ),
    ] {
        let (status, body) = search(&sim, &format!("count=10&offset=0&{query}")).await;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(ids(&body), expected, "{query}");
        assert_eq!(body["TotalCount"], expected.len(), "{query}");
    }
}

#[tokio::test]
async fn search_items_have_postmarks_fields() {
    let (sim, _) = with_server(None).await;
    let mut body = message(
        "\"Doe, Ada\" <ada@example.org>, bob@example.org",
        "Hi",
        "t",
        "j-1",
    );
    body["Attachments"] =
        json!([{"Name": "r.txt", "Content": "cmVjZWlwdA==", "ContentType": "text/plain"}]);
    let id = send(&sim, &body).await;
    let (_, page) = search(&sim, "count=1&offset=0").await;
    let item = &page["Messages"][0];
    assert_eq!(item["MessageID"], id);
    assert_eq!(item["MessageStream"], "outbound");
    assert_eq!(
        item["To"],
        json!([{"Email": "ada@example.org", "Name": "Doe, Ada"}, {"Email": "bob@example.org", "Name": null}])
    );
    assert_eq!(item["Cc"], json!([]));
    assert_eq!(
        item["Recipients"],
        json!(["ada@example.org", "bob@example.org"])
    );
    assert_eq!(item["From"], FROM);
    assert_eq!(item["Subject"], "Hi");
    assert_eq!(item["Tag"], "t");
    assert_eq!(item["Attachments"], json!(["r.txt"]));
    assert_eq!(item["Status"], "Sent");
    assert_eq!(item["TrackOpens"], true);
    assert_eq!(item["TrackLinks"], "HtmlAndText");
    assert_eq!(item["Metadata"], json!({"job_id": "j-1", "send_id": "s-1"}));
    assert_eq!(item["Sandboxed"], false);
    assert!(item.get("HtmlBody").is_none(), "no bodies in search");
    let received = item["ReceivedAt"].as_str().unwrap();
    assert!(is_postmark_timestamp(received), "{received}");
    assert!(
        received.ends_with("-05:00") || received.ends_with("-04:00"),
        "an Eastern offset: {received}"
    );
}

#[tokio::test]
async fn paging_and_its_limits() {
    let (sim, _) = with_server(None).await;
    let mut sent = Vec::new();
    for n in 0..5 {
        sent.push(
            send(
                &sim,
                &message("ada@example.org", "Hi", "t", &format!("j-{n}")),
            )
            .await,
        );
    }
    sent.reverse();
    let (_, page) = search(&sim, "count=2&offset=1").await;
    assert_eq!(page["TotalCount"], 5, "every match, not the page");
    assert_eq!(ids(&page), sent[1..3]);
    let (_, past) = search(&sim, "count=2&offset=9998").await;
    assert!(ids(&past).is_empty());
    assert_eq!(search(&sim, "count=500&offset=9500").await.0, 200);
    for query in [
        "count=0&offset=0",
        "count=501&offset=0",
        "count=10",
        "offset=0",
        "count=x&offset=0",
        "count=500&offset=9501",
        "count=10&offset=0&metadata_job_id=j-1&metadata_send_id=s-1",
        "count=10&offset=0&fromdate=not-a-date",
    ] {
        let (status, body) = search(&sim, query).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["ErrorCode"], 700, "{query}: {body}");
        assert!(body["Message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (status, body) = search(&sim, "count=500&offset=9501").await;
    assert_eq!(status, 422);
    assert!(
        body["Message"].as_str().unwrap().contains("10,000"),
        "{body}"
    );
    let (status, body) = call(
        &sim,
        reqwest::Method::GET,
        "/messages/outbound?count=1&offset=0",
        None,
        None,
    )
    .await;
    assert_eq!((status, body["ErrorCode"].as_i64()), (401, Some(10)));
}

#[tokio::test]
async fn the_metadata_filter_is_exact() {
    let (sim, _) = with_server(None).await;
    let one = send(&sim, &message("ada@example.org", "Hi", "t", "j-1")).await;
    send(&sim, &message("ada@example.org", "Hi", "t", "j-10")).await;
    send(&sim, &message("ada@example.org", "Hi", "t", "J-1")).await;
    let (_, page) = search(&sim, "count=10&offset=0&metadata_job_id=j-1").await;
    assert_eq!(ids(&page), [one]);
    let (_, none) = search(&sim, "count=10&offset=0&metadata_job=j-1").await;
    assert!(ids(&none).is_empty(), "another key");
}

#[tokio::test]
async fn only_the_outbound_stream_unless_named() {
    let (sim, _) = with_server(None).await;
    let transactional = send(&sim, &message("ada@example.org", "Hi", "t", "j-1")).await;
    let mut broadcast = message("ada@example.org", "Hi", "t", "j-1");
    broadcast["MessageStream"] = json!("broadcast");
    let broadcast = send(&sim, &broadcast).await;
    let (_, default) = search(&sim, "count=10&offset=0&metadata_job_id=j-1").await;
    assert_eq!(ids(&default), [transactional.as_str()]);
    let (_, named) = search(&sim, "count=10&offset=0&messagestream=broadcast").await;
    assert_eq!(ids(&named), [broadcast]);
    let (_, outbound) = search(&sim, "count=10&offset=0&MessageStream=outbound").await;
    assert_eq!(ids(&outbound), [transactional]);
}

#[tokio::test]
async fn dates_are_read_as_eastern_time() {
    let (sim, _) = with_server(None).await;
    let id = send(&sim, &message("ada@example.org", "Hi", "t", "j-1")).await;
    let (_, page) = search(&sim, "count=1&offset=0").await;
    let received: DateTime<FixedOffset> =
        DateTime::parse_from_rfc3339(page["Messages"][0]["ReceivedAt"].as_str().unwrap()).unwrap();
    let wall = |minutes: i64| {
        (received.naive_local() + chrono::Duration::minutes(minutes))
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    let window = |from: i64, to: i64| {
        format!(
            "count=10&offset=0&fromdate={}&todate={}",
            wall(from),
            wall(to)
        )
    };
    let (_, around) = search(&sim, &window(-1, 1)).await;
    assert_eq!(ids(&around), [id.as_str()], "the Eastern wall-clock minute");
    let (_, before) = search(&sim, &window(-120, -60)).await;
    assert!(ids(&before).is_empty());
    let (_, after) = search(&sim, &window(1, 2)).await;
    assert!(ids(&after).is_empty());
    // The same window read as UTC would be 4 or 5 hours off.
    let utc = received.naive_utc();
    let as_utc = format!(
        "count=10&offset=0&fromdate={}&todate={}",
        (utc - chrono::Duration::minutes(1)).format("%Y-%m-%dT%H:%M:%S"),
        (utc + chrono::Duration::minutes(1)).format("%Y-%m-%dT%H:%M:%S")
    );
    let (_, wrong) = search(&sim, &as_utc).await;
    assert!(ids(&wrong).is_empty(), "dates are not UTC");
    let (_, inclusive) = search(
        &sim,
        &format!(
            "count=10&offset=0&fromdate={}",
            received.naive_local().format("%Y-%m-%d")
        ),
    )
    .await;
    assert_eq!(ids(&inclusive), [id], "a date alone is its start");
}

#[tokio::test]
async fn messages_appear_only_after_the_search_delay() {
    let (sim, _) = with_server(None).await;
    sim.set_search_delay(Duration::from_millis(400));
    let id = send(&sim, &message("ada@example.org", "Hi", "t", "j-1")).await;
    let (_, page) = search(&sim, "count=10&offset=0&metadata_job_id=j-1").await;
    assert!(ids(&page).is_empty(), "not indexed yet");
    let (status, body) = get(&sim, &format!("/messages/outbound/{id}/details")).await;
    assert_eq!((status, body["ErrorCode"].as_i64()), (422, Some(701)));
    assert_eq!(sim.messages().len(), 1, "accepted all the same");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, page) = search(&sim, "count=10&offset=0&metadata_job_id=j-1").await;
    assert_eq!(ids(&page), [id.as_str()]);
    assert_eq!(
        get(&sim, &format!("/messages/outbound/{id}/details"))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn details_tell_what_happened() {
    let (sim, server) = with_server(None).await;
    let delivered = send(&sim, &message("ada@example.org", "Hi", "t", "j-1")).await;
    sim.open(OpenRequest::new(&delivered, "ada@example.org"))
        .unwrap();
    sim.open(OpenRequest::new(&delivered, "ada@example.org"))
        .unwrap();
    sim.click(ClickRequest::new(
        &delivered,
        "ada@example.org",
        "https://example.com/offer",
    ))
    .unwrap();
    let (status, details) = get(&sim, &format!("/messages/outbound/{delivered}/details")).await;
    assert_eq!(status, 200, "{details}");
    assert_eq!(details["MessageID"], delivered);
    assert_eq!(details["TextBody"], "Hi");
    assert!(details["HtmlBody"].as_str().unwrap().contains("offer"));
    assert!(details["Body"].as_str().unwrap().contains("Subject: Hi"));
    assert_eq!(details["Metadata"]["job_id"], "j-1");
    let events = details["MessageEvents"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["Type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["Delivered", "Opened", "LinkClicked"],
        "one stored open"
    );
    assert_eq!(events[0]["Recipient"], "ada@example.org");
    assert!(
        events[0]["Details"]["DeliveryMessage"]
            .as_str()
            .unwrap()
            .starts_with("smtp;250")
    );
    assert!(is_postmark_timestamp(
        events[0]["ReceivedAt"].as_str().unwrap()
    ));
    assert!(
        events[1]["Details"]["Summary"]
            .as_str()
            .unwrap()
            .starts_with("Email opened with ")
    );
    assert_eq!(events[2]["Details"]["Link"], "https://example.com/offer");
    assert_eq!(events[2]["Details"]["ClickLocation"], "HTML");

    let bounced = send(
        &sim,
        &message(
            "HardBounce@bounce-testing.postmarkapp.com",
            "Hi",
            "t",
            "j-2",
        ),
    )
    .await;
    let (_, details) = get(&sim, &format!("/messages/outbound/{bounced}/details")).await;
    let events = details["MessageEvents"].as_array().unwrap();
    assert_eq!(events[0]["Type"], "Bounced");
    let bounce_id = events[0]["Details"]["BounceID"].as_str().expect("a string");
    assert!(bounce_id.parse::<i64>().is_ok(), "{bounce_id}");
    assert_eq!(events[1]["Type"], "SubscriptionChanged");
    assert_eq!(events[1]["Details"]["SuppressSending"], "True");
    assert_eq!(events[1]["Details"]["Origin"], "Recipient");
    let (status, activated) = call(
        &sim,
        reqwest::Method::PUT,
        &format!("/bounces/{bounce_id}/activate"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "the BounceID is the bounce API's: {activated}");

    let (status, missing) = get(&sim, "/messages/outbound/no-such-id/details").await;
    assert_eq!(status, 422);
    assert_eq!(
        missing,
        json!({"ErrorCode": 701, "Message": "This message was not found."})
    );
    // Another server's message is not found either.
    sim.add_server(
        ServerConfig::new("other-token")
            .sender_domain("example.com")
            .name("Other"),
    );
    let (status, _) = call(
        &sim,
        reqwest::Method::GET,
        &format!("/messages/outbound/{delivered}/details"),
        Some("other-token"),
        None,
    )
    .await;
    assert_eq!(status, 422);
    let (_, other) = call(
        &sim,
        reqwest::Method::GET,
        "/messages/outbound?count=10&offset=0",
        Some("other-token"),
        None,
    )
    .await;
    assert_eq!(other["TotalCount"], 0);
    let _ = server;
}

#[tokio::test]
async fn the_control_api_sets_the_search_delay_and_lists_metadata() {
    let (sim, _) = with_server(None).await;
    let client = reqwest::Client::new();
    let url = format!("{}/_sim/search_delay", sim.api_url());
    let set = client
        .put(&url)
        .json(&json!({"ms": 60_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status().as_u16(), 200);
    let read: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(read, json!({"ms": 60_000}));
    send(&sim, &message("ada@example.org", "Hi", "t", "j-7")).await;
    let (_, page) = search(&sim, "count=10&offset=0").await;
    assert_eq!(page["TotalCount"], 0, "a minute to go");
    let listed: Value = client
        .get(format!("{}/_sim/messages", sim.api_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed[0]["metadata"]["job_id"], "j-7",
        "for duplicate counts"
    );
}
