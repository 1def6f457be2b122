//! The API client against wiremock: the exact requests, and every fixture answer of the endpoints
//! it implements.

mod common;

use std::time::Duration;

use common::{fixture, fixture_json};
use postmark::{
    Attachment, Email, ErrorClass, PostmarkClient, PostmarkError, ServerToken, SuppressionOrigin,
    SuppressionQuery, SuppressionReason, SuppressionStatus, TrackLinks,
};
use postmark::{BounceClass, BounceType, DeliveryType, parse_timestamp};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "server-token-0000";

async fn client_for(server: &MockServer) -> PostmarkClient {
    client_with_timeout(server, Duration::from_secs(5)).await
}

async fn client_with_timeout(server: &MockServer, timeout: Duration) -> PostmarkClient {
    PostmarkClient::new(
        server.uri().parse().expect("mock URL"),
        ServerToken::new(TOKEN),
        timeout,
    )
    .expect("client")
}

/// A mock that insists on Postmark's documented headers.
fn postmark_mock(http_method: &str, route: &str) -> wiremock::MockBuilder {
    Mock::given(method(http_method))
        .and(path(route))
        .and(header("Accept", "application/json"))
        .and(header("Content-Type", "application/json"))
        .and(header("X-Postmark-Server-Token", TOKEN))
}

fn json_answer(status: u16, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.to_owned(), "application/json")
}

fn receipt_email() -> Email {
    Email::new("Shop <shop@example.com>", "receiver@example.com")
        .cc("copy@example.com")
        .subject("Your receipt")
        .html_body("<p>Thanks</p>")
        .text_body("Thanks")
        .header("X-Job", "j-1")
        .tag("receipt")
        .metadata("job_id", "j-1")
        .message_stream("outbound")
        .track_opens(true)
        .track_links(TrackLinks::HtmlAndText)
        .attachment(Attachment::from_bytes("r.txt", "text/plain", b"receipt"))
}

#[tokio::test]
async fn send_posts_the_exact_request_and_reads_the_receipt() {
    let server = MockServer::start().await;
    postmark_mock("POST", "/email")
        .and(body_json(json!({
            "From": "Shop <shop@example.com>",
            "To": "receiver@example.com",
            "Cc": "copy@example.com",
            "Subject": "Your receipt",
            "HtmlBody": "<p>Thanks</p>",
            "TextBody": "Thanks",
            "Headers": [{"Name": "X-Job", "Value": "j-1"}],
            "Tag": "receipt",
            "Metadata": {"job_id": "j-1"},
            "MessageStream": "outbound",
            "TrackOpens": true,
            "TrackLinks": "HtmlAndText",
            "Attachments": [{"Name": "r.txt", "Content": "cmVjZWlwdA==", "ContentType": "text/plain"}],
        })))
        .respond_with(json_answer(200, &fixture("api/postmark_rs_send_success.json")))
        .expect(1)
        .mount(&server)
        .await;

    let receipt = client_for(&server)
        .await
        .send(&receipt_email())
        .await
        .expect("sent");
    assert_eq!(
        receipt.message_id.as_deref(),
        Some("0a129aee-e1cd-480d-b08d-4f48548ff48d")
    );
    assert_eq!(receipt.to.as_deref(), Some("receiver@example.com"));
    assert_eq!(receipt.error_code, Some(0));
    assert_eq!(receipt.message.as_deref(), Some("OK"));
    assert_eq!(
        receipt.submitted_at,
        parse_timestamp("2014-02-17T07:25:01.4178645-05:00")
    );
    assert!(receipt.inactive_recipients().is_empty());
}

#[tokio::test]
async fn send_accepts_the_test_token_answer() {
    let server = MockServer::start().await;
    postmark_mock("POST", "/email")
        .respond_with(json_answer(
            200,
            &fixture("api/postmarker_send_success_recorded_test_job.json"),
        ))
        .mount(&server)
        .await;
    let receipt = client_for(&server)
        .await
        .send(&receipt_email())
        .await
        .expect("sent");
    assert_eq!(receipt.message.as_deref(), Some("Test job accepted"));
    assert_eq!(
        receipt.message_id.as_deref(),
        Some("806aa9ad-689d-48d3-9887-ac0c2bc6f57d")
    );
}

#[tokio::test]
async fn a_success_without_error_code_or_to_is_still_a_success() {
    let server = MockServer::start().await;
    postmark_mock("POST", "/email")
        .respond_with(json_answer(
            200,
            r#"{"Message":"Message accepted, but delivery may be delayed.","MessageID":"m-1","SubmittedAt":"2024-08-01T10:00:00Z"}"#,
        ))
        .mount(&server)
        .await;
    let receipt = client_for(&server)
        .await
        .send(&receipt_email())
        .await
        .expect("sent");
    assert_eq!(receipt.message_id.as_deref(), Some("m-1"));
    assert_eq!(receipt.to, None);
    assert_eq!(receipt.error_code, None);
}

#[tokio::test]
async fn a_success_that_skipped_inactive_recipients_names_them() {
    let server = MockServer::start().await;
    postmark_mock("POST", "/email")
        .respond_with(json_answer(
            200,
            r#"{"To":"a@x.com","SubmittedAt":"2024-08-01T10:00:00Z","MessageID":"m-2","ErrorCode":0,
               "Message":"Message OK, but will not deliver to these inactive addresses: b@y.com, c@z.com. Inactive recipients are ones that have generated a hard bounce or a spam complaint."}"#,
        ))
        .mount(&server)
        .await;
    let receipt = client_for(&server)
        .await
        .send(&receipt_email())
        .await
        .expect("sent");
    assert_eq!(receipt.inactive_recipients(), vec!["b@y.com", "c@z.com"]);
}

/// Every error fixture of the send endpoint: HTTP status, ErrorCode, class and message kept.
#[tokio::test]
async fn send_errors_from_fixtures_are_classified() {
    let cases = [
        (
            "api/anymail_error_406_inactive_http422.json",
            422,
            406,
            ErrorClass::RecipientInactive,
        ),
        (
            "api/anymail_error_300_invalid_to_http422.json",
            422,
            300,
            ErrorClass::InvalidRequest,
        ),
        (
            "api/anymail_error_300_invalid_from_http422.json",
            422,
            300,
            ErrorClass::InvalidRequest,
        ),
        (
            "api/anymail_error_300_metadata_http422.json",
            422,
            300,
            ErrorClass::InvalidRequest,
        ),
        (
            "api/docs_support_error_300_unverified_sender.json",
            422,
            300,
            ErrorClass::InvalidRequest,
        ),
        (
            "api/pipedream_issue_error_10_invalid_server_token_http401.json",
            401,
            10,
            ErrorClass::Configuration,
        ),
        (
            "api/ehealth_issue_error_412_account_pending.json",
            422,
            412,
            ErrorClass::Configuration,
        ),
        (
            "api/postmarker_error_1101_template_not_found_http422.json",
            422,
            1101,
            ErrorClass::InvalidRequest,
        ),
    ];
    for (file, status, code, class) in cases {
        let server = MockServer::start().await;
        let body = fixture(file);
        postmark_mock("POST", "/email")
            .respond_with(json_answer(status, &body))
            .mount(&server)
            .await;
        let error = client_for(&server)
            .await
            .send(&receipt_email())
            .await
            .expect_err(file);
        let api = error
            .api_error()
            .unwrap_or_else(|| panic!("{file}: {error:?}"));
        assert_eq!(api.class(), class, "{file}");
        assert_eq!(error.class(), class, "{file}");
        assert_eq!(api.http_status(), status, "{file}");
        assert_eq!(api.error_code(), Some(code), "{file}");
        assert_eq!(
            api.message(),
            fixture_json(file)["Message"].as_str().expect("message"),
            "{file}"
        );
        assert!(!error.is_retryable(), "{file}");
        assert!(
            !error.to_string().contains(TOKEN),
            "{file}: the token leaked"
        );
    }
}

#[tokio::test]
async fn an_inactive_recipient_error_names_the_addresses() {
    let server = MockServer::start().await;
    postmark_mock("POST", "/email")
        .respond_with(json_answer(
            422,
            &fixture("api/anymail_error_406_inactive_http422.json"),
        ))
        .mount(&server)
        .await;
    let error = client_for(&server)
        .await
        .send(&receipt_email())
        .await
        .expect_err("406");
    assert_eq!(
        error.api_error().expect("api error").inactive_recipients(),
        ["hardbounce@example.com", "spam@example.com"]
    );
}

#[tokio::test]
async fn an_invalid_token_says_which_token_to_use() {
    let server = MockServer::start().await;
    postmark_mock("GET", "/server")
        .respond_with(json_answer(
            401,
            &fixture("api/pipedream_issue_error_10_invalid_server_token_http401.json"),
        ))
        .mount(&server)
        .await;
    let error = client_for(&server).await.server().await.expect_err("401");
    assert_eq!(error.class(), ErrorClass::Configuration);
    let text = error.to_string();
    assert!(text.contains("Server API Token"), "{text}");
    assert!(text.contains("not an Account API Token"), "{text}");
    assert!(
        text.contains("Request does not contain a valid Server token."),
        "{text}"
    );
}

#[tokio::test]
async fn transient_statuses_are_retryable() {
    let cases: [(u16, &str, &str); 6] = [
        (
            500,
            "application/json",
            r#"{"ErrorCode":500,"Message":"Internal Server Error"}"#,
        ),
        (500, "text/html", "<html><body>Internal error</body></html>"),
        (502, "text/html", "<html>Bad gateway</html>"),
        (
            503,
            "application/json",
            r#"{"ErrorCode":100,"Message":"Maintenance"}"#,
        ),
        (504, "text/plain", ""),
        (
            429,
            "application/json",
            r#"{"ErrorCode":429,"Message":"We have detected that you are making requests at a rate that exceeds acceptable use of the API."}"#,
        ),
    ];
    for (status, content_type, body) in cases {
        let server = MockServer::start().await;
        postmark_mock("POST", "/email")
            .respond_with(ResponseTemplate::new(status).set_body_raw(body, content_type))
            .mount(&server)
            .await;
        let error = client_for(&server)
            .await
            .send(&receipt_email())
            .await
            .expect_err("fails");
        assert!(error.is_retryable(), "{status} {body}: {error:?}");
        assert_eq!(error.class(), ErrorClass::Retryable);
        assert_eq!(error.http_status(), Some(status));
    }
}

#[tokio::test]
async fn too_large_and_network_blocks_are_their_own_cases() {
    let server = MockServer::start().await;
    postmark_mock("POST", "/email")
        .respond_with(ResponseTemplate::new(413))
        .mount(&server)
        .await;
    let error = client_for(&server)
        .await
        .send(&receipt_email())
        .await
        .expect_err("413");
    assert_eq!(error.class(), ErrorClass::TooLarge);
    assert_eq!(error.http_status(), Some(413));

    let server = MockServer::start().await;
    postmark_mock("POST", "/email")
        .respond_with(ResponseTemplate::new(403).set_body_raw(
            "<html><head><title>403 Forbidden</title></head><body>Request blocked.</body></html>",
            "text/html",
        ))
        .mount(&server)
        .await;
    let error = client_for(&server)
        .await
        .send(&receipt_email())
        .await
        .expect_err("403");
    assert_eq!(error.class(), ErrorClass::BlockedByNetwork);
    assert!(
        matches!(error, PostmarkError::BlockedByNetwork { status: 403, .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("network security layer"),
        "{error}"
    );
}

#[tokio::test]
async fn a_timeout_is_retryable() {
    let server = MockServer::start().await;
    postmark_mock("POST", "/email")
        .respond_with(
            json_answer(200, &fixture("api/postmark_rs_send_success.json"))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let client = client_with_timeout(&server, Duration::from_millis(200)).await;
    let error = client.send(&receipt_email()).await.expect_err("times out");
    assert!(matches!(error, PostmarkError::Timeout { .. }), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_connection_error_is_retryable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let client = PostmarkClient::new(
        format!("http://127.0.0.1:{port}").parse().expect("url"),
        ServerToken::new(TOKEN),
        Duration::from_secs(2),
    )
    .expect("client");
    let error = client
        .send(&receipt_email())
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(error, PostmarkError::Connection { .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_success_with_a_non_json_body_is_unexpected() {
    let server = MockServer::start().await;
    postmark_mock("POST", "/email")
        .respond_with(ResponseTemplate::new(200).set_body_raw("<html>ok</html>", "text/html"))
        .mount(&server)
        .await;
    let error = client_for(&server)
        .await
        .send(&receipt_email())
        .await
        .expect_err("not JSON");
    assert_eq!(error.class(), ErrorClass::Unexpected);
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn send_batch_posts_an_array_and_answers_per_item_in_order() {
    let server = MockServer::start().await;
    let first = Email::new("shop@example.com", "receiver@example.com")
        .subject("One")
        .text_body("1");
    let second = Email::new("shop@example.com", "example@example.com")
        .subject("Two")
        .text_body("2");
    postmark_mock("POST", "/email/batch")
        .and(body_json(json!([
            {"From": "shop@example.com", "To": "receiver@example.com", "Subject": "One", "TextBody": "1"},
            {"From": "shop@example.com", "To": "example@example.com", "Subject": "Two", "TextBody": "2"},
        ])))
        .respond_with(json_answer(200, &fixture("api/postmark_rs_batch_mixed_406.json")))
        .expect(1)
        .mount(&server)
        .await;

    let outcomes = client_for(&server)
        .await
        .send_batch(&[first, second])
        .await
        .expect("batch answered");
    assert_eq!(outcomes.len(), 2);
    let receipt = outcomes[0].as_ref().expect("first accepted");
    assert_eq!(
        receipt.message_id.as_deref(),
        Some("0a129aee-e1cd-480d-b08d-4f48548ff48d")
    );
    let error = outcomes[1].as_ref().expect_err("second refused");
    assert_eq!(error.class(), ErrorClass::RecipientInactive);
    assert_eq!(error.error_code(), Some(406));
    assert_eq!(error.http_status(), 200);
    assert_eq!(error.inactive_recipients(), ["example@example.com"]);
}

#[tokio::test]
async fn send_batch_all_accepted() {
    let server = MockServer::start().await;
    postmark_mock("POST", "/email/batch")
        .respond_with(json_answer(200, &fixture("api/docs_batch_success.json")))
        .mount(&server)
        .await;
    let emails = [
        Email::new("a@example.com", "receiver1@example.com").text_body("1"),
        Email::new("a@example.com", "receiver2@example.com").text_body("2"),
    ];
    let outcomes = client_for(&server)
        .await
        .send_batch(&emails)
        .await
        .expect("answered");
    let ids: Vec<_> = outcomes
        .iter()
        .map(|outcome| outcome.as_ref().expect("accepted").message_id.clone())
        .collect();
    assert_eq!(
        ids,
        [
            Some("b7bc2f4a-e38e-4336-af7d-e6c392c2f817".to_owned()),
            Some("e2ecbbfc-fe12-463d-b933-9fe22915106d".to_owned())
        ]
    );
    assert_eq!(
        outcomes[1].as_ref().expect("ok").to.as_deref(),
        Some("receiver2@example.com")
    );
}

#[tokio::test]
async fn send_batch_refuses_more_than_500_before_any_request() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let client = client_for(&server).await;
    let emails = vec![Email::new("a@example.com", "b@example.com").text_body("x"); 501];
    let error = client.send_batch(&emails).await.expect_err("too many");
    assert!(
        matches!(
            error,
            PostmarkError::BatchTooLarge {
                count: 501,
                max: 500
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.class(), ErrorClass::TooLarge);
    assert!(client.send_batch(&[]).await.expect("empty").is_empty());
}

#[tokio::test]
async fn send_batch_rejected_whole_and_length_mismatch() {
    let server = MockServer::start().await;
    postmark_mock("POST", "/email/batch")
        .respond_with(json_answer(
            422,
            r#"{"ErrorCode":410,"Message":"You may only send up to 500 messages in a single batched request."}"#,
        ))
        .mount(&server)
        .await;
    let emails = [Email::new("a@example.com", "b@example.com").text_body("x")];
    let error = client_for(&server)
        .await
        .send_batch(&emails)
        .await
        .expect_err("410");
    assert_eq!(error.class(), ErrorClass::TooLarge);
    assert_eq!(error.error_code(), Some(410));

    let server = MockServer::start().await;
    postmark_mock("POST", "/email/batch")
        .respond_with(json_answer(200, &fixture("api/docs_batch_success.json")))
        .mount(&server)
        .await;
    let error = client_for(&server)
        .await
        .send_batch(&emails)
        .await
        .expect_err("2 answers for 1");
    assert!(
        matches!(
            error,
            PostmarkError::BatchLengthMismatch {
                sent: 1,
                answered: 2
            }
        ),
        "{error:?}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn server_reads_the_settings_and_never_keeps_the_tokens() {
    let server = MockServer::start().await;
    postmark_mock("GET", "/server")
        .respond_with(json_answer(
            200,
            &fixture("api/postmarker_server_get_recorded.json"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let info = client_for(&server).await.server().await.expect("server");
    assert_eq!(info.id, Some(1));
    assert_eq!(info.name.as_deref(), Some("example.com"));
    assert_eq!(info.smtp_api_activated, Some(true));
    assert_eq!(info.track_opens, Some(false));
    assert_eq!(
        info.delivery_type, None,
        "the 2016 recording predates DeliveryType"
    );
    let shown = format!("{info:?} {}", serde_json::to_string(&info).expect("json"));
    assert!(
        !shown.contains("2bcc50cb"),
        "a server API token was kept: {shown}"
    );

    let server = MockServer::start().await;
    postmark_mock("GET", "/server")
        .respond_with(json_answer(
            200,
            r#"{"ID":7,"Name":"Prod","DeliveryType":"Sandbox"}"#,
        ))
        .mount(&server)
        .await;
    let info = client_for(&server).await.server().await.expect("server");
    assert_eq!(info.delivery_type, Some(DeliveryType::Sandbox));
}

#[tokio::test]
async fn message_stream_found_and_not_found() {
    let server = MockServer::start().await;
    postmark_mock("GET", "/message-streams/broadcast")
        .respond_with(json_answer(
            200,
            r#"{"ID":"broadcast","ServerID":123457,"Name":"Broadcast Stream","Description":"Newsletters",
                "MessageStreamType":"Broadcasts","CreatedAt":"2020-07-01T00:00:00-04:00",
                "UpdatedAt":"2020-07-02T00:00:00-04:00","ArchivedAt":null,"ExpectedPurgeDate":null,
                "SubscriptionManagementConfiguration":{"UnsubscribeHandlingType":"Postmark"}}"#,
        ))
        .mount(&server)
        .await;
    postmark_mock("GET", "/message-streams/nope")
        .respond_with(json_answer(
            422,
            &fixture("api/mrz1836_error_1226_stream_not_found.json"),
        ))
        .mount(&server)
        .await;
    let client = client_for(&server).await;
    let stream = client.message_stream("broadcast").await.expect("stream");
    assert_eq!(stream.id.as_deref(), Some("broadcast"));
    assert_eq!(
        stream.message_stream_type,
        Some(postmark::MessageStreamType::Broadcasts)
    );
    assert!(!stream.is_archived());
    assert_eq!(
        stream.extra["SubscriptionManagementConfiguration"]["UnsubscribeHandlingType"],
        "Postmark"
    );

    let error = client.message_stream("nope").await.expect_err("1226");
    assert_eq!(error.error_code(), Some(1226));
    assert_eq!(error.class(), ErrorClass::InvalidRequest);
    assert_eq!(
        error.api_error().expect("api").message(),
        "The message stream for the provided 'ID' was not found."
    );
}

#[tokio::test]
async fn suppressions_dump_with_filters() {
    let server = MockServer::start().await;
    postmark_mock("GET", "/message-streams/outbound/suppressions/dump")
        .and(query_param("SuppressionReason", "HardBounce"))
        .and(query_param("Origin", "Recipient"))
        .and(query_param("fromdate", "2019-12-01"))
        .respond_with(json_answer(
            200,
            &fixture("api/docs_suppressions_dump.json"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let query = SuppressionQuery {
        reason: Some(SuppressionReason::HardBounce),
        origin: Some(SuppressionOrigin::Recipient),
        from_date: Some("2019-12-01".to_owned()),
        ..SuppressionQuery::default()
    };
    let entries = client_for(&server)
        .await
        .suppressions("outbound", &query)
        .await
        .expect("dump");
    assert_eq!(entries.len(), 3);
    assert_eq!(
        entries[0].email_address.as_deref(),
        Some("address@wildbit.com")
    );
    assert_eq!(
        entries[0].suppression_reason,
        Some(SuppressionReason::ManualSuppression)
    );
    assert_eq!(
        entries[1].suppression_reason,
        Some(SuppressionReason::HardBounce)
    );
    assert_eq!(
        entries[2].suppression_reason,
        Some(SuppressionReason::SpamComplaint)
    );
    assert_eq!(entries[2].origin, Some(SuppressionOrigin::Recipient));
    assert_eq!(
        entries[2].created_at,
        parse_timestamp("2019-12-17T08:58:33-05:00")
    );
}

#[tokio::test]
async fn create_suppressions_answers_per_address() {
    let server = MockServer::start().await;
    postmark_mock("POST", "/message-streams/outbound/suppressions")
        .and(body_json(json!({"Suppressions": [
            {"EmailAddress": "good.address@wildbit.com"},
            {"EmailAddress": "spammy.address@wildbit.com"},
            {"EmailAddress": "invalid-email-address"},
        ]})))
        .respond_with(json_answer(
            200,
            &fixture("api/postmark_rs_suppressions_create_mixed.json"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let changes = client_for(&server)
        .await
        .create_suppressions(
            "outbound",
            &[
                "good.address@wildbit.com",
                "spammy.address@wildbit.com",
                "invalid-email-address",
            ],
        )
        .await
        .expect("answered");
    assert_eq!(changes.len(), 3);
    assert!(changes[0].succeeded());
    assert_eq!(changes[0].status, Some(SuppressionStatus::Suppressed));
    assert_eq!(changes[0].message, None);
    assert!(!changes[1].succeeded());
    assert_eq!(
        changes[1].message.as_deref(),
        Some("You do not have the required authority to change this suppression.")
    );
    assert_eq!(
        changes[2].message.as_deref(),
        Some("An invalid email address was provided.")
    );
}

#[tokio::test]
async fn delete_suppressions_answers_per_address() {
    let server = MockServer::start().await;
    postmark_mock("POST", "/message-streams/broadcast/suppressions/delete")
        .and(body_json(json!({"Suppressions": [
            {"EmailAddress": "good.address@wildbit.com"},
            {"EmailAddress": "not.suppressed@wildbit.com"},
            {"EmailAddress": "spammy.address@wildbit.com"},
        ]})))
        .respond_with(json_answer(
            200,
            &fixture("api/postmark_rs_suppressions_delete_mixed.json"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let addresses = vec![
        "good.address@wildbit.com".to_owned(),
        "not.suppressed@wildbit.com".to_owned(),
        "spammy.address@wildbit.com".to_owned(),
    ];
    let changes = client_for(&server)
        .await
        .delete_suppressions("broadcast", &addresses)
        .await
        .expect("answered");
    let statuses: Vec<_> = changes.iter().map(|c| c.status.clone()).collect();
    assert_eq!(
        statuses,
        [
            Some(SuppressionStatus::Deleted),
            Some(SuppressionStatus::Deleted),
            Some(SuppressionStatus::Failed)
        ]
    );
}

#[tokio::test]
async fn activate_bounce_puts_and_reads_the_bounce() {
    let server = MockServer::start().await;
    postmark_mock("PUT", "/bounces/723626745/activate")
        .respond_with(json_answer(
            200,
            &fixture("api/postmarker_bounce_activate_recorded.json"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    postmark_mock("PUT", "/bounces/42/activate")
        .respond_with(json_answer(
            200,
            &fixture("api/postmark_rs_bounce_activate_null_fields.json"),
        ))
        .mount(&server)
        .await;
    let client = client_for(&server).await;

    let activation = client
        .activate_bounce(723_626_745)
        .await
        .expect("activated");
    assert_eq!(activation.message.as_deref(), Some("OK"));
    let bounce = activation.bounce.expect("bounce");
    assert_eq!(bounce.id, Some(723_626_745));
    assert_eq!(bounce.inactive, Some(false));
    assert_eq!(bounce.can_activate, Some(true));
    assert_eq!(bounce.email.as_deref(), Some("example@example.com"));
    assert_eq!(bounce.bounce_type, Some(BounceType::HardBounce));
    assert_eq!(bounce.class(), BounceClass::Hard);
    assert_eq!(
        bounce.bounced_at,
        parse_timestamp("2014-05-13T19:56:14.4218626-04:00")
    );

    let activation = client.activate_bounce(42).await.expect("activated");
    assert_eq!(activation.message.as_deref(), Some("Bounce activated"));
    let bounce = activation.bounce.expect("bounce");
    assert_eq!(bounce.content, None);
    assert_eq!(bounce.subject, None);
    assert_eq!(bounce.message_id.as_deref(), Some("0aa96361"));
}

#[tokio::test]
async fn activate_bounce_that_cannot_be_reactivated() {
    let server = MockServer::start().await;
    postmark_mock("PUT", "/bounces/9/activate")
        .respond_with(json_answer(
            422,
            r#"{"ErrorCode":1003,"Message":"Due to the type of bounce, this address cannot be reactivated."}"#,
        ))
        .mount(&server)
        .await;
    let error = client_for(&server)
        .await
        .activate_bounce(9)
        .await
        .expect_err("1003");
    assert_eq!(error.error_code(), Some(1003));
    assert_eq!(error.class(), ErrorClass::InvalidRequest);
}
