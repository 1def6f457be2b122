//! Ambiguous failures (may Postmark have accepted the request?) and the Messages API, against
//! wiremock and a raw TCP listener.

mod common;

use std::time::Duration;

use common::{fixture, fixture_json};
use postmark::{
    Email, ErrorClass, OutboundSearch, PostmarkClient, PostmarkError, Recipient, ServerToken,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "server-token-0000";

fn client_at(url: &str, timeout: Duration) -> PostmarkClient {
    PostmarkClient::new(url.parse().expect("URL"), ServerToken::new(TOKEN), timeout)
        .expect("client")
}

fn client_for(server: &MockServer) -> PostmarkClient {
    client_at(&server.uri(), Duration::from_secs(5))
}

fn json_answer(status: u16, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.to_owned(), "application/json")
}

fn email() -> Email {
    Email::new("shop@example.com", "ada@example.org")
        .subject("Hi")
        .text_body("Hi")
        .metadata("job_id", "j-1")
        .metadata("send_id", "s-1")
}

async fn send_error(server: &MockServer, timeout: Duration) -> PostmarkError {
    client_at(&server.uri(), timeout)
        .send(&email())
        .await
        .expect_err("fails")
}

#[tokio::test]
async fn a_timeout_after_the_request_may_have_been_accepted() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/email"))
        .respond_with(
            json_answer(200, &fixture("api/postmark_rs_send_success.json"))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let error = send_error(&server, Duration::from_millis(200)).await;
    assert!(matches!(error, PostmarkError::Timeout { .. }), "{error:?}");
    assert!(error.is_retryable());
    assert!(error.may_have_been_accepted());
}

#[tokio::test]
async fn gateway_statuses_may_hide_an_accepted_request() {
    for status in [500, 502, 504] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/email"))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_raw("<html><body>Bad gateway</body></html>", "text/html"),
            )
            .mount(&server)
            .await;
        let error = send_error(&server, Duration::from_secs(5)).await;
        assert_eq!(error.http_status(), Some(status));
        assert!(error.is_retryable(), "{status}");
        assert!(error.may_have_been_accepted(), "{status}");
    }
}

#[tokio::test]
async fn clean_refusals_were_not_accepted() {
    for (status, body) in [
        (503, r#"{"ErrorCode":100,"Message":"Maintenance"}"#),
        (503, "Service Unavailable"),
        (429, r#"{"ErrorCode":429,"Message":"Rate limit"}"#),
        (
            422,
            r#"{"ErrorCode":300,"Message":"Invalid email request"}"#,
        ),
        (500, r#"{"ErrorCode":100,"Message":"Maintenance"}"#),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/email"))
            .respond_with(json_answer(status, body))
            .mount(&server)
            .await;
        let error = send_error(&server, Duration::from_secs(5)).await;
        assert!(!error.may_have_been_accepted(), "{status} {body}");
    }
}

#[tokio::test]
async fn a_success_with_a_truncated_body_may_have_been_accepted() {
    let server = MockServer::start().await;
    let full = fixture("api/postmark_rs_send_success.json");
    Mock::given(method("POST"))
        .and(path("/email"))
        .respond_with(json_answer(200, &full[..full.len() / 2]))
        .mount(&server)
        .await;
    let error = send_error(&server, Duration::from_secs(5)).await;
    assert!(
        matches!(error, PostmarkError::UnexpectedResponse { status: 200, .. }),
        "{error:?}"
    );
    assert!(error.may_have_been_accepted());
}

/// A server that reads the request, then closes the connection without answering.
async fn closes_after_reading() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buffer = vec![0; 64 * 1024];
            let _ = stream.read(&mut buffer).await;
            let _ = stream.shutdown().await;
        }
    });
    url
}

#[tokio::test]
async fn a_reset_while_waiting_may_have_been_accepted() {
    let url = closes_after_reading().await;
    let error = client_at(&url, Duration::from_secs(5))
        .send(&email())
        .await
        .expect_err("no answer");
    assert!(
        matches!(error, PostmarkError::Connection { .. }),
        "{error:?}"
    );
    assert!(error.may_have_been_accepted());
}

#[tokio::test]
async fn a_failed_connect_was_not_accepted() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let error = client_at(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2))
        .send(&email())
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(error, PostmarkError::Connection { .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert!(!error.may_have_been_accepted());
}

#[tokio::test]
async fn search_sends_every_filter_by_postmarks_names() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/messages/outbound"))
        .and(header("Accept", "application/json"))
        .and(header("X-Postmark-Server-Token", TOKEN))
        .and(query_param("count", "500"))
        .and(query_param("offset", "9500"))
        .and(query_param("recipient", "ada@example.org"))
        .and(query_param("fromemail", "shop@example.com"))
        .and(query_param("tag", "welcome"))
        .and(query_param("subject", "Hello there"))
        .and(query_param("status", "sent"))
        .and(query_param("fromdate", "2026-03-08T01:30:00"))
        .and(query_param("todate", "2026-03-08T03:30:00"))
        .and(query_param("messagestream", "broadcast"))
        .and(query_param("metadata_send_id", "s-1"))
        .respond_with(json_answer(
            200,
            &fixture("api/postmarker_messages_outbound_search_recorded.json"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
    let search = OutboundSearch::new(500)
        .offset(9_500)
        .recipient("ada@example.org")
        .from_email("shop@example.com")
        .tag("welcome")
        .subject("Hello there")
        .status("sent")
        .from_date(day.and_hms_opt(1, 30, 0).unwrap())
        .to_date(day.and_hms_opt(3, 30, 0).unwrap())
        .stream("broadcast")
        .metadata("send_id", "s-1");
    let page = client_for(&server).search_outbound(&search).await.unwrap();
    assert_eq!(page.total_count, 1893);
    let message = &page.messages[0];
    assert_eq!(message.message_id, "21895802-5d50-442b-b039-27cf5b462c54");
    assert_eq!(
        message.to,
        [Recipient {
            email: "test@example.com".into(),
            name: None
        }]
    );
    assert_eq!(message.recipients, ["test@example.com"]);
    assert_eq!(message.status.as_deref(), Some("Sent"));
    assert_eq!(
        message.received_at.as_deref(),
        Some("2017-02-25T13:59:44.0453616-05:00")
    );
    assert_eq!(message.track_opens, Some(true));
    assert_eq!(message.track_links.as_deref(), Some("None"));
    assert!(message.metadata.is_empty());
    assert_eq!(message.message_stream, None);
    assert_eq!(message.tag, None);
    assert_eq!(message.sandboxed, None);
}

#[tokio::test]
async fn search_sends_only_what_was_asked() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/messages/outbound"))
        .and(query_param("count", "10"))
        .and(query_param("offset", "0"))
        .and(query_param_is_missing("messagestream"))
        .and(query_param_is_missing("recipient"))
        .and(query_param_is_missing("fromdate"))
        .respond_with(json_answer(200, r#"{"TotalCount":0,"Messages":[]}"#))
        .expect(1)
        .mount(&server)
        .await;
    let page = client_for(&server)
        .search_outbound(&OutboundSearch::new(10))
        .await
        .unwrap();
    assert_eq!(page.total_count, 0);
    assert!(page.messages.is_empty());
}

#[tokio::test]
async fn search_paging_out_of_range_is_refused_before_any_request() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(json_answer(200, r#"{"TotalCount":0,"Messages":[]}"#))
        .expect(0)
        .mount(&server)
        .await;
    let client = client_for(&server);
    for search in [
        OutboundSearch::new(0),
        OutboundSearch::new(501),
        OutboundSearch::new(500).offset(9_501),
    ] {
        let error = client.search_outbound(&search).await.unwrap_err();
        assert!(
            matches!(error, PostmarkError::InvalidSearch { .. }),
            "{error:?}"
        );
        assert_eq!(error.class(), ErrorClass::InvalidRequest);
        assert!(!error.may_have_been_accepted());
    }
}

#[tokio::test]
async fn details_read_all_six_event_types() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(
            "/messages/outbound/07311c54-0687-4ab9-b034-b54b5bad88ba/details",
        ))
        .and(header("X-Postmark-Server-Token", TOKEN))
        .respond_with(json_answer(
            200,
            &fixture("api/as_email_service_docs_message_details_six_event_types.json"),
        ))
        .mount(&server)
        .await;
    let details = client_for(&server)
        .outbound_message_details("07311c54-0687-4ab9-b034-b54b5bad88ba")
        .await
        .unwrap();
    let message = &details.message;
    assert_eq!(message.tag.as_deref(), Some("product-orders"));
    assert_eq!(message.message_stream.as_deref(), Some("outbound"));
    assert_eq!(message.to[0].name, None, "Name: null");
    assert_eq!(message.metadata["client-id"], "12345");
    assert_eq!(message.attachments, ["myimage.png", "mypaper.doc"]);
    assert_eq!(message.sandboxed, Some(false));
    assert_eq!(details.body.as_deref(), Some("SMTP dump data"));
    assert_eq!(
        details.html_body.as_deref(),
        Some("<p>Thank you for your order...</p>")
    );
    let kinds: Vec<&str> = details
        .message_events
        .iter()
        .map(|event| event.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "Delivered",
            "Transient",
            "Opened",
            "Bounced",
            "SubscriptionChanged",
            "LinkClicked"
        ]
    );
    let bounced = &details.message_events[3];
    assert_eq!(
        bounced.recipient.as_deref(),
        Some("badrecipient@example.com")
    );
    assert_eq!(bounced.detail("BounceID").as_deref(), Some("374814878"));
    assert_eq!(
        details.message_events[4]
            .detail("SuppressSending")
            .as_deref(),
        Some("True")
    );
    assert_eq!(
        details.message_events[5].detail("ClickLocation").as_deref(),
        Some("HTML")
    );
    let fixture = fixture_json("api/as_email_service_docs_message_details_six_event_types.json");
    assert_eq!(
        details.message_events[0].details,
        fixture["MessageEvents"][0]["Details"]
    );
}

#[tokio::test]
async fn details_of_a_recorded_delivered_message() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(
            "/messages/outbound/21895802-5d50-442b-b039-27cf5b462c54/details",
        ))
        .respond_with(json_answer(
            200,
            &fixture("api/postmarker_message_details_delivered_recorded.json"),
        ))
        .mount(&server)
        .await;
    let details = client_for(&server)
        .outbound_message_details("21895802-5d50-442b-b039-27cf5b462c54")
        .await
        .unwrap();
    assert_eq!(details.message.to[0].name, None, "Name: \"\"");
    assert_eq!(details.message_events.len(), 1);
    let delivered = &details.message_events[0];
    assert_eq!(delivered.kind, "Delivered");
    assert_eq!(
        delivered.received_at.as_deref(),
        Some("2017-02-25T13:59:44.0000000-05:00")
    );
    assert_eq!(
        delivered.detail("DestinationServer").as_deref(),
        Some("ASPMX.L.GOOGLE.com (127.0.0.1)")
    );
    assert_eq!(details.text_body, None);
}

#[tokio::test]
async fn details_of_an_unknown_message_is_701() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/messages/outbound/nope/details"))
        .respond_with(json_answer(
            422,
            &fixture("api/postmarker_error_701_message_not_found_http422.json"),
        ))
        .mount(&server)
        .await;
    let error = client_for(&server)
        .outbound_message_details("nope")
        .await
        .unwrap_err();
    let api = error.api_error().expect("Postmark's error");
    assert!(api.is_message_not_found());
    assert_eq!(api.error_code(), Some(701));
    assert_eq!(api.message(), "This message was not found.");
    assert!(!error.may_have_been_accepted());
}
