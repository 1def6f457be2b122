//! The read-side API calls against wiremock: webhooks, bounces, opens and clicks, server and
//! stream settings. For each call the exact request (method, path, query, headers, body) and the
//! parse of a published answer.

mod common;

use std::time::Duration;

use common::{fixture, fixture_json};
use postmark::{
    BounceClass, BounceQuery, BounceType, DeliveryType, ErrorClass, HttpAuth, HttpHeader,
    NewWebhook, PostmarkClient, PostmarkError, ServerEdit, ServerToken, TrackLinks, TrackingQuery,
    UnsubscribeHandlingType, WebhookEdit, WebhookTriggers, parse_timestamp,
};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "server-token-0000";

fn client_for(server: &MockServer) -> PostmarkClient {
    PostmarkClient::new(
        server.uri().parse().expect("mock URL"),
        ServerToken::new(TOKEN),
        Duration::from_secs(5),
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

/// Matches when the query string holds exactly these pairs (in any order), nothing more.
struct ExactQuery(Vec<(String, String)>);

fn exact_query(pairs: &[(&str, &str)]) -> ExactQuery {
    let mut pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    pairs.sort();
    ExactQuery(pairs)
}

impl Match for ExactQuery {
    fn matches(&self, request: &Request) -> bool {
        let mut pairs: Vec<(String, String)> = request
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        pairs.sort();
        pairs == self.0
    }
}

/// Matches a request without a body.
struct NoBody;

impl Match for NoBody {
    fn matches(&self, request: &Request) -> bool {
        request.body.is_empty()
    }
}

/// A server that must receive no request at all.
async fn silent_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(json_answer(200, "{}"))
        .expect(0)
        .mount(&server)
        .await;
    server
}

// ---------------------------------------------------------------- webhooks

#[tokio::test]
async fn list_webhooks_of_the_server_reads_the_published_answer() {
    let server = MockServer::start().await;
    postmark_mock("GET", "/webhooks")
        .and(exact_query(&[]))
        .and(NoBody)
        .respond_with(json_answer(200, &fixture("api/mrz1836_webhooks_list.json")))
        .expect(1)
        .mount(&server)
        .await;
    let hooks = client_for(&server).list_webhooks(None).await.expect("list");
    assert_eq!(hooks.len(), 2);
    let tracking = &hooks[0];
    assert_eq!(tracking.id, 1_234_567);
    assert_eq!(
        tracking.url.as_deref(),
        Some("http://www.example.com/webhook-test-tracking")
    );
    assert_eq!(tracking.message_stream.as_deref(), Some("outbound"));
    assert_eq!(tracking.http_auth, Some(HttpAuth::new("user", "pass")));
    assert_eq!(tracking.http_headers, [HttpHeader::new("name", "value")]);
    assert_eq!(tracking.status, None);
    assert!(!tracking.is_unverified());
    let triggers = tracking.triggers.expect("triggers");
    assert!(triggers.open_enabled());
    assert_eq!(
        triggers.open.and_then(|open| open.post_first_open_only),
        Some(false)
    );
    assert!(triggers.click_enabled());
    assert!(triggers.delivery_enabled());
    assert!(!triggers.bounce_enabled());
    assert_eq!(
        triggers.bounce.and_then(|bounce| bounce.include_content),
        Some(false)
    );
    assert!(!triggers.spam_complaint_enabled());
    assert!(triggers.subscription_change_enabled());

    let bounce_hook = &hooks[1];
    assert_eq!(bounce_hook.id, 1_234_568);
    let triggers = bounce_hook.triggers.expect("triggers");
    assert!(triggers.bounce_enabled());
    assert!(!triggers.open_enabled() && !triggers.click_enabled());
}

#[tokio::test]
async fn list_webhooks_of_one_stream_sends_message_stream() {
    let server = MockServer::start().await;
    postmark_mock("GET", "/webhooks")
        .and(exact_query(&[("MessageStream", "broadcast")]))
        .respond_with(json_answer(200, r#"{"Webhooks":[]}"#))
        .expect(1)
        .mount(&server)
        .await;
    let hooks = client_for(&server)
        .list_webhooks(Some("broadcast"))
        .await
        .expect("list");
    assert!(hooks.is_empty());
}

#[tokio::test]
async fn webhook_by_id_and_not_found() {
    let server = MockServer::start().await;
    let one = fixture_json("api/mrz1836_webhooks_list.json")["Webhooks"][0].clone();
    postmark_mock("GET", "/webhooks/1234567")
        .and(exact_query(&[]))
        .respond_with(json_answer(200, &one.to_string()))
        .expect(1)
        .mount(&server)
        .await;
    postmark_mock("GET", "/webhooks/99")
        .respond_with(json_answer(
            422,
            r#"{"ErrorCode":1352,"Message":"The webhook for the provided 'ID' was not found."}"#,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(&server);
    let hook = client.webhook(1_234_567).await.expect("webhook");
    assert_eq!(hook.id, 1_234_567);
    assert_eq!(
        hook.http_auth.and_then(|auth| auth.username).as_deref(),
        Some("user")
    );
    let error = client.webhook(99).await.expect_err("1352");
    assert_eq!(error.error_code(), Some(1352));
    assert_eq!(error.class(), ErrorClass::InvalidRequest);
}

#[tokio::test]
async fn create_webhook_posts_the_exact_body() {
    let server = MockServer::start().await;
    let expected_body = json!({
        "Url": "https://hooks.example.com/postmark",
        "MessageStream": "outbound",
        "HttpAuth": {"Username": "hook", "Password": "s3cret"},
        "HttpHeaders": [{"Name": "X-Env", "Value": "prod"}],
        "Triggers": {
            "Open": {"Enabled": true, "PostFirstOpenOnly": true},
            "Click": {"Enabled": true},
            "Delivery": {"Enabled": true},
            "Bounce": {"Enabled": true, "IncludeContent": true},
            "SpamComplaint": {"Enabled": true, "IncludeContent": false},
            "SubscriptionChange": {"Enabled": false}
        }
    });
    let mut answer = expected_body.clone();
    answer["ID"] = json!(4_323_372_036_854_775_807_i64);
    postmark_mock("POST", "/webhooks")
        .and(exact_query(&[]))
        .and(body_json(&expected_body))
        .respond_with(json_answer(200, &answer.to_string()))
        .expect(1)
        .mount(&server)
        .await;

    let auth = HttpAuth::new("hook", "s3cret");
    let headers = [HttpHeader::new("X-Env", "prod")];
    let mut triggers = WebhookTriggers::all(true);
    triggers.open.as_mut().unwrap().post_first_open_only = Some(true);
    triggers.bounce.as_mut().unwrap().include_content = Some(true);
    triggers.subscription_change.as_mut().unwrap().enabled = Some(false);
    let new = NewWebhook::new("https://hooks.example.com/postmark")
        .message_stream("outbound")
        .http_auth(&auth)
        .http_headers(&headers)
        .triggers(&triggers);
    let hook = client_for(&server)
        .create_webhook(&new)
        .await
        .expect("created");
    assert_eq!(
        hook.id, 4_323_372_036_854_775_807,
        "IDs beyond 2^53 stay exact"
    );
    assert_eq!(hook.triggers, Some(triggers));
    assert_eq!(hook.http_headers, headers);
}

#[tokio::test]
async fn create_webhook_unverified_sends_verify_false_in_body_and_query() {
    let server = MockServer::start().await;
    postmark_mock("POST", "/webhooks")
        .and(exact_query(&[("verify", "false")]))
        .and(body_json(json!({
            "Url": "https://hooks.example.com/postmark",
            "Verify": false
        })))
        .respond_with(json_answer(
            200,
            r#"{"ID":5,"Url":"https://hooks.example.com/postmark","MessageStream":"outbound","Status":"unverified"}"#,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let hook = client_for(&server)
        .create_webhook(&NewWebhook::new("https://hooks.example.com/postmark").verify(false))
        .await
        .expect("created");
    assert_eq!(hook.id, 5);
    assert!(hook.is_unverified());
}

#[tokio::test]
async fn a_failed_verification_is_its_own_error_with_the_trigger_results() {
    let server = MockServer::start().await;
    postmark_mock("POST", "/webhooks")
        .respond_with(json_answer(
            422,
            &fixture("api/skills_webhook_verify_partial_failure.json"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let error = client_for(&server)
        .create_webhook(&NewWebhook::new("https://yourdomain.com/webhooks/postmark"))
        .await
        .expect_err("not verified");
    let PostmarkError::WebhookNotVerified {
        http_status,
        verification,
        ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(*http_status, 422);
    assert!(!verification.succeeded());
    let failed: Vec<_> = verification.failed_triggers().collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].trigger_type.as_deref(), Some("Bounce"));
    assert_eq!(failed[0].status_code, Some(500));
    assert_eq!(error.class(), ErrorClass::InvalidRequest);
    assert!(!error.is_retryable());
    assert!(!error.may_have_been_accepted());
    assert!(error.to_string().contains("4/5 triggers"), "{error}");
}

#[tokio::test]
async fn a_failed_verification_with_only_an_error_code_is_1364() {
    let server = MockServer::start().await;
    postmark_mock("PUT", "/webhooks/7")
        .respond_with(json_answer(
            422,
            r#"{"ErrorCode":1364,"Message":"Webhook verification failed."}"#,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let error = client_for(&server)
        .edit_webhook(7, &WebhookEdit::new().url("https://down.example.com"))
        .await
        .expect_err("1364");
    let api = error.api_error().expect("Postmark's error");
    assert!(api.is_webhook_verification_failed());
    assert_eq!(error.error_code(), Some(1364));
    assert_eq!(error.class(), ErrorClass::InvalidRequest);
}

#[tokio::test]
async fn edit_webhook_puts_only_what_changes() {
    let server = MockServer::start().await;
    postmark_mock("PUT", "/webhooks/1234567")
        .and(exact_query(&[]))
        .and(body_json(json!({
            "Url": "https://new.example.com/hook",
            "HttpHeaders": [],
            "Triggers": {"Click": {"Enabled": false}}
        })))
        .respond_with(json_answer(
            200,
            &fixture_json("api/mrz1836_webhooks_list.json")["Webhooks"][0].to_string(),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let triggers = WebhookTriggers {
        click: Some(postmark::Trigger {
            enabled: Some(false),
        }),
        ..WebhookTriggers::default()
    };
    let edit = WebhookEdit::new()
        .url("https://new.example.com/hook")
        .http_headers(&[])
        .triggers(&triggers);
    let hook = client_for(&server)
        .edit_webhook(1_234_567, &edit)
        .await
        .expect("edited");
    assert_eq!(hook.id, 1_234_567);
}

#[tokio::test]
async fn delete_webhook_and_an_unknown_one() {
    let server = MockServer::start().await;
    postmark_mock("DELETE", "/webhooks/1234")
        .and(NoBody)
        .respond_with(json_answer(
            200,
            r#"{"ErrorCode":0,"Message":"Webhook 1234 removed."}"#,
        ))
        .expect(1)
        .mount(&server)
        .await;
    postmark_mock("DELETE", "/webhooks/99")
        .respond_with(json_answer(
            422,
            r#"{"ErrorCode":1352,"Message":"The webhook for the provided 'ID' was not found."}"#,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(&server);
    client.delete_webhook(1234).await.expect("deleted");
    let error = client.delete_webhook(99).await.expect_err("unknown");
    assert_eq!(error.error_code(), Some(1352));
}

#[tokio::test]
async fn verify_webhook_answers_200_also_when_it_failed() {
    let server = MockServer::start().await;
    postmark_mock("POST", "/webhooks/12345/verify")
        .and(NoBody)
        .respond_with(json_answer(
            200,
            &fixture("api/skills_webhook_verify_partial_failure.json"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let result = client_for(&server)
        .verify_webhook(12_345)
        .await
        .expect("verified");
    assert_eq!(result.id, Some(12_345));
    assert!(!result.succeeded());
    assert_eq!(result.results.len(), 5);
    assert_eq!(
        result.message.as_deref(),
        Some("4/5 triggers verified successfully")
    );
}

#[tokio::test]
async fn webhook_statistics_name_the_paused_triggers() {
    let server = MockServer::start().await;
    postmark_mock("GET", "/webhooks/12345/statistics")
        .and(exact_query(&[]))
        .and(NoBody)
        .respond_with(json_answer(
            200,
            &fixture("api/skills_webhook_statistics.json"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let stats = client_for(&server)
        .webhook_statistics(12_345)
        .await
        .expect("statistics");
    assert_eq!(stats.webhook_id, Some(12_345));
    assert_eq!(stats.unverified_triggers(), ["Bounce"]);
    let metrics = stats.metrics.as_ref().expect("metrics");
    assert_eq!(metrics.total_requests, Some(1000));
    assert_eq!(metrics.failure_count, Some(50));
    assert_eq!(metrics.success_rate, Some(95.0));
    assert_eq!(metrics.very_slow_count, Some(4));
    let by_trigger = stats.metrics_by_trigger.as_ref().expect("by trigger");
    assert_eq!(by_trigger["Delivery"].average_retry_response_time_ms, None);
    assert_eq!(
        by_trigger["Bounce"].average_retry_response_time_ms,
        Some(1850.0)
    );
}

#[tokio::test]
async fn no_debug_output_shows_a_webhook_password_or_a_server_token() {
    let server = MockServer::start().await;
    postmark_mock("GET", "/webhooks")
        .respond_with(json_answer(
            200,
            &json!({"Webhooks": [{
                "ID": 1,
                "HttpAuth": {"Username": "hook-user", "Password": "hook-pa55word"},
                "HttpHeaders": [{"Name": "Authorization", "Value": "Bearer header-secret"}]
            }]})
            .to_string(),
        ))
        .mount(&server)
        .await;
    postmark_mock("GET", "/server")
        .respond_with(json_answer(
            200,
            &fixture("api/postmarker_server_get_recorded.json"),
        ))
        .mount(&server)
        .await;
    let client = client_for(&server);
    let hooks = client.list_webhooks(None).await.expect("list");
    assert_eq!(
        hooks[0].http_auth.as_ref().unwrap().password.as_deref(),
        Some("hook-pa55word"),
        "the password is read"
    );
    let shown = format!("{hooks:?} {hooks:#?}");
    assert!(shown.contains("hook-user"), "{shown}");
    assert!(!shown.contains("hook-pa55word"), "{shown}");
    assert!(!shown.contains("header-secret"), "{shown}");

    let info = client.server().await.expect("server");
    let shown = format!(
        "{info:?} {info:#?} {}",
        serde_json::to_string(&info).unwrap()
    );
    assert!(shown.contains("example.com"), "{shown}");
    assert!(
        !shown.contains("2bcc50cb-72c6-4ae5-954a-dffc01667789"),
        "{shown}"
    );
    assert!(!shown.contains("ApiTokens"), "{shown}");
}

// ---------------------------------------------------------------- bounces

#[tokio::test]
async fn bounces_sends_every_filter_and_reads_the_published_answer() {
    let server = MockServer::start().await;
    postmark_mock("GET", "/bounces")
        .and(exact_query(&[
            ("count", "500"),
            ("offset", "9500"),
            ("type", "HardBounce"),
            ("inactive", "true"),
            ("emailFilter", "yahoo.com"),
            ("tag", "Invitation"),
            ("messageID", "623b2e90-82d0-4050-ae9e-2c3a734ba091"),
            ("fromdate", "2026-03-08T01:30:00"),
            ("todate", "2026-03-08T03:30:00"),
            ("messagestream", "outbound"),
        ]))
        .and(NoBody)
        .respond_with(json_answer(
            200,
            &fixture("api/mrz1836_bounces_list_recordtype_messagestream.json"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
    let query = BounceQuery::new(500)
        .offset(9_500)
        .bounce_type(BounceType::HardBounce)
        .inactive(true)
        .email_filter("yahoo.com")
        .tag("Invitation")
        .message_id("623b2e90-82d0-4050-ae9e-2c3a734ba091")
        .from_date(day.and_hms_opt(1, 30, 0).unwrap())
        .to_date(day.and_hms_opt(3, 30, 0).unwrap())
        .stream("outbound");
    let page = client_for(&server).bounces(&query).await.expect("bounces");
    assert_eq!(page.total_count, 253);
    assert_eq!(page.bounces.len(), 2);
    let first = &page.bounces[0];
    assert_eq!(first.id, Some(692_560_173));
    assert_eq!(first.bounce_type, Some(BounceType::HardBounce));
    assert_eq!(first.type_code, Some(1));
    assert_eq!(first.name.as_deref(), Some("Hard bounce"));
    assert_eq!(first.tag.as_deref(), Some("Invitation"));
    assert_eq!(
        first.message_id.as_deref(),
        Some("2c1b63fe-43f2-4db5-91b0-8bdfa44a9316")
    );
    assert_eq!(first.message_stream.as_deref(), Some("outbound"));
    assert_eq!(first.details.as_deref(), Some("action: failed\r\n"));
    assert_eq!(
        first.email.as_deref(),
        Some("anything@blackhole.postmarkap.com")
    );
    assert_eq!(
        first.bounced_at,
        parse_timestamp("2014-01-15T16:09:19.6421112-05:00")
    );
    assert_eq!(first.dump_available, Some(false));
    assert_eq!(first.inactive, Some(false));
    assert_eq!(first.can_activate, Some(true));
    assert_eq!(first.subject.as_deref(), Some("SC API5 Test"));
    assert_eq!(
        first.content.as_deref(),
        Some("Return-Path: <>\r\nReceived: ...")
    );
    assert_eq!(first.class(), BounceClass::Hard);
    assert_eq!(page.bounces[1].inactive, Some(true));
}

#[tokio::test]
async fn bounces_of_the_2016_recording_and_only_the_paging_sent() {
    let server = MockServer::start().await;
    postmark_mock("GET", "/bounces")
        .and(exact_query(&[("count", "2"), ("offset", "0")]))
        .respond_with(json_answer(
            200,
            &fixture("api/postmarker_bounces_list_recorded.json"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let page = client_for(&server)
        .bounces(&BounceQuery::new(2))
        .await
        .expect("bounces");
    assert_eq!(page.total_count, 2);
    let [hard, soft] = &page.bounces[..] else {
        panic!("{page:?}");
    };
    assert_eq!(hard.id, Some(943_247_350));
    assert_eq!(hard.dump_available, Some(true));
    assert_eq!(hard.message_stream, None, "2016 answers have no stream");
    assert_eq!(hard.server_id, None);
    assert_eq!(hard.tag, None);
    assert_eq!(soft.bounce_type, Some(BounceType::SoftBounce));
    assert_eq!(soft.type_code, Some(4096));
    assert_eq!(soft.class(), BounceClass::Soft);
    assert_eq!(soft.details.as_deref(), Some("X-Postfix; Mailbox is full"));
}

#[tokio::test]
async fn one_bounce_and_smtp_api_errors() {
    let server = MockServer::start().await;
    let first = fixture_json("api/mrz1836_bounces_list_recordtype_messagestream.json")["Bounces"]
        [0]
    .clone();
    postmark_mock("GET", "/bounces/692560173")
        .and(exact_query(&[]))
        .respond_with(json_answer(200, &first.to_string()))
        .expect(1)
        .mount(&server)
        .await;
    postmark_mock("GET", "/bounces/4323372036854775807")
        .respond_with(json_answer(
            200,
            r#"{"RecordType":"Bounce","ID":4323372036854775807,"Type":"SMTPApiError","TypeCode":100007,
                "Name":"SMTP API error","Description":"An error occurred while accepting an email through the SMTP API.",
                "Email":"suppressed@example.com","ServerID":23,"MessageStream":"outbound","Inactive":false,"CanActivate":false}"#,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(&server);
    let bounce = client.bounce(692_560_173).await.expect("bounce");
    assert_eq!(bounce.id, Some(692_560_173));
    assert!(!bounce.is_smtp_api_error());

    let smtp = client
        .bounce(4_323_372_036_854_775_807)
        .await
        .expect("bounce");
    assert_eq!(smtp.id, Some(4_323_372_036_854_775_807));
    assert_eq!(smtp.bounce_type(), BounceType::SMTPApiError);
    assert!(smtp.is_smtp_api_error());
    assert_eq!(
        smtp.class(),
        BounceClass::Other,
        "not the recipient's mailbox"
    );
    assert_eq!(smtp.server_id, Some(23));

    let by_code: postmark::Bounce =
        serde_json::from_value(json!({"ID": 1, "TypeCode": 100007})).unwrap();
    assert!(by_code.is_smtp_api_error());
    let other_code: postmark::Bounce =
        serde_json::from_value(json!({"ID": 1, "TypeCode": 1})).unwrap();
    assert!(!other_code.is_smtp_api_error());
}

#[tokio::test]
async fn bounce_query_type_smtp_api_error_is_sent_by_name() {
    let server = MockServer::start().await;
    postmark_mock("GET", "/bounces")
        .and(exact_query(&[
            ("count", "100"),
            ("offset", "0"),
            ("type", "SMTPApiError"),
        ]))
        .respond_with(json_answer(200, r#"{"TotalCount":0,"Bounces":[]}"#))
        .expect(1)
        .mount(&server)
        .await;
    let page = client_for(&server)
        .bounces(&BounceQuery::new(100).bounce_type(BounceType::SMTPApiError))
        .await
        .expect("bounces");
    assert_eq!(page.total_count, 0);
    assert!(page.bounces.is_empty());
}

#[tokio::test]
async fn paging_out_of_range_is_refused_before_any_request() {
    let server = silent_server().await;
    let client = client_for(&server);
    let refused = |result: Result<(), PostmarkError>| {
        let error = result.expect_err("refused");
        assert!(
            matches!(error, PostmarkError::InvalidSearch { .. }),
            "{error:?}"
        );
        assert_eq!(error.class(), ErrorClass::InvalidRequest);
        assert!(!error.may_have_been_accepted());
    };
    for (count, offset) in [(0, 0), (501, 0), (500, 9_501), (1, u32::MAX)] {
        refused(
            client
                .bounces(&BounceQuery::new(count).offset(offset))
                .await
                .map(drop),
        );
        refused(
            client
                .opens(&TrackingQuery::new(count).offset(offset))
                .await
                .map(drop),
        );
        refused(
            client
                .clicks(&TrackingQuery::new(count).offset(offset))
                .await
                .map(drop),
        );
        refused(client.message_opens("m-1", count, offset).await.map(drop));
        refused(client.message_clicks("m-1", count, offset).await.map(drop));
    }
}

// ---------------------------------------------------------------- opens and clicks

#[tokio::test]
async fn opens_sends_the_filters_and_reads_the_recorded_gmail_proxy_open() {
    let server = MockServer::start().await;
    postmark_mock("GET", "/messages/outbound/opens")
        .and(exact_query(&[
            ("count", "1"),
            ("offset", "20"),
            ("recipient", "test@example.com"),
            ("tag", "welcome"),
            ("client_name", "Gmail"),
            ("os_name", "unknown"),
            ("platform", "Unknown"),
            ("country", "Serbia"),
            ("fromdate", "2017-02-24T00:00:00"),
            ("todate", "2017-02-25T00:00:00"),
            ("messagestream", "outbound"),
        ]))
        .and(NoBody)
        .respond_with(json_answer(
            200,
            &fixture("api/postmarker_messages_opens_gmail_proxy_recorded.json"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let day = chrono::NaiveDate::from_ymd_opt(2017, 2, 24).unwrap();
    let query = TrackingQuery::new(1)
        .offset(20)
        .recipient("test@example.com")
        .tag("welcome")
        .client_name("Gmail")
        .os_name("unknown")
        .platform("Unknown")
        .country("Serbia")
        .from_date(day.and_hms_opt(0, 0, 0).unwrap())
        .to_date(day.succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap())
        .stream("outbound");
    let page = client_for(&server).opens(&query).await.expect("opens");
    assert_eq!(page.total_count, 259);
    let [open] = &page.opens[..] else {
        panic!("{page:?}");
    };
    assert_eq!(
        open.message_id.as_deref(),
        Some("c3485015-9a04-4126-8524-034660932c91")
    );
    assert_eq!(open.recipient.as_deref(), Some("test@example.com"));
    assert_eq!(
        open.received_at,
        parse_timestamp("2017-02-24T23:50:09.8976957-05:00")
    );
    assert_eq!(open.first_open, None, "the recording has no FirstOpen");
    assert_eq!(open.tag, None);
    assert_eq!(open.message_stream, None);
    assert_eq!(open.read_seconds, Some(0));
    assert_eq!(open.platform.as_deref(), Some("Unknown"));
    let client_part = open.client.as_ref().expect("Client");
    assert_eq!(client_part.name.as_deref(), Some("Gmail"));
    assert_eq!(client_part.company.as_deref(), Some("Google"));
    assert_eq!(
        open.os.as_ref().and_then(|os| os.family.as_deref()),
        Some("unknown")
    );
    let geo = open.geo.as_ref().expect("Geo: {}");
    assert_eq!(geo.country, None);
    assert_eq!(geo.ip, None);
    assert!(
        open.user_agent
            .as_deref()
            .is_some_and(|ua| ua.contains("GoogleImageProxy"))
    );
    assert_eq!(open.metadata, None);
}

#[tokio::test]
async fn clicks_read_html_and_text_clicks() {
    let server = MockServer::start().await;
    postmark_mock("GET", "/messages/outbound/clicks")
        .and(exact_query(&[
            ("count", "50"),
            ("offset", "0"),
            ("recipient", "john.doe@yahoo.com"),
            ("messagestream", "outbound"),
        ]))
        .respond_with(json_answer(
            200,
            &fixture("api/mrz1836_messages_api_clicks_html_and_text.json"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let page = client_for(&server)
        .clicks(
            &TrackingQuery::new(50)
                .recipient("john.doe@yahoo.com")
                .stream("outbound"),
        )
        .await
        .expect("clicks");
    assert_eq!(page.total_count, 2);
    let [html, text] = &page.clicks[..] else {
        panic!("{page:?}");
    };
    assert_eq!(html.click_location.as_deref(), Some("HTML"));
    assert_eq!(text.click_location.as_deref(), Some("Text"));
    assert_eq!(
        html.original_link.as_deref(),
        Some("http://example.com/click-me")
    );
    assert_eq!(html.platform.as_deref(), Some("Desktop"));
    assert_eq!(html.tag.as_deref(), Some("Invitation"));
    assert_eq!(html.message_stream.as_deref(), Some("outbound"));
    assert_eq!(html.recipient.as_deref(), Some("john.doe@yahoo.com"));
    assert_eq!(
        html.received_at,
        parse_timestamp("2014-02-14T11:13:10.8054242-05:00")
    );
    let geo = html.geo.as_ref().expect("geo");
    assert_eq!(geo.city.as_deref(), Some("Novi Sad"));
    assert_eq!(geo.country_iso_code.as_deref(), Some("RS"));
    assert_eq!(geo.ip.as_deref(), Some("188.2.95.4"));
    assert_eq!(
        html.os.as_ref().and_then(|os| os.name.as_deref()),
        Some("OS X 10.7 Lion")
    );
    assert_eq!(text.recipient.as_deref(), Some("jane.doe@gmail.com"));
}

#[tokio::test]
async fn message_opens_701_means_none_yet() {
    let server = MockServer::start().await;
    postmark_mock(
        "GET",
        "/messages/outbound/opens/c3485015-9a04-4126-8524-034660932c91",
    )
    .and(exact_query(&[("count", "10"), ("offset", "0")]))
    .respond_with(json_answer(
        422,
        &fixture("api/postmarker_error_701_message_not_found_http422.json"),
    ))
    .expect(1)
    .mount(&server)
    .await;
    let page = client_for(&server)
        .message_opens("c3485015-9a04-4126-8524-034660932c91", 10, 0)
        .await
        .expect("701 is an empty list");
    assert_eq!(page.total_count, 0);
    assert!(page.opens.is_empty());
}

#[tokio::test]
async fn message_clicks_read_the_clicks_and_other_errors_stay_errors() {
    let server = MockServer::start().await;
    postmark_mock(
        "GET",
        "/messages/outbound/clicks/927e56d4-dc66-4c01-a0be-645b4b6f5fd7",
    )
    .and(exact_query(&[("count", "500"), ("offset", "0")]))
    .respond_with(json_answer(
        200,
        &fixture("api/mrz1836_messages_api_clicks_html_and_text.json"),
    ))
    .expect(1)
    .mount(&server)
    .await;
    postmark_mock("GET", "/messages/outbound/clicks/gone")
        .respond_with(json_answer(
            422,
            &fixture("api/postmarker_error_701_message_not_found_http422.json"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    postmark_mock("GET", "/messages/outbound/opens/m-1")
        .respond_with(json_answer(
            401,
            &fixture("api/pipedream_issue_error_10_invalid_server_token_http401.json"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(&server);
    let page = client
        .message_clicks("927e56d4-dc66-4c01-a0be-645b4b6f5fd7", 500, 0)
        .await
        .expect("clicks");
    assert_eq!(page.clicks.len(), 2);
    let none = client
        .message_clicks("gone", 1, 0)
        .await
        .expect("701 is an empty list");
    assert!(none.clicks.is_empty());
    let error = client
        .message_opens("m-1", 1, 0)
        .await
        .expect_err("a bad token is still an error");
    assert_eq!(error.error_code(), Some(10));
    assert_eq!(error.class(), ErrorClass::Configuration);
}

// ---------------------------------------------------------------- server and streams

#[tokio::test]
async fn server_reads_tracking_and_smtp_api_error_settings() {
    let server = MockServer::start().await;
    postmark_mock("GET", "/server")
        .and(exact_query(&[]))
        .respond_with(json_answer(
            200,
            r#"{"ID":9,"Name":"Prod","ApiTokens":["tok-secret-1"],"TrackOpens":true,
                "TrackLinks":"HtmlAndTextTracking","PostFirstOpenOnly":true,"SmtpApiActivated":false,
                "EnableSmtpApiErrorHooks":true,"IncludeBounceContentInHook":false,"DeliveryType":"Live",
                "BounceHookUrl":"https://user:hookpass@example.com/b"}"#,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let info = client_for(&server).server().await.expect("server");
    assert_eq!(info.id, Some(9));
    assert_eq!(info.track_opens, Some(true));
    assert_eq!(info.track_links, Some(TrackLinks::HtmlAndText));
    assert_eq!(info.post_first_open_only, Some(true));
    assert_eq!(info.smtp_api_activated, Some(false));
    assert_eq!(info.enable_smtp_api_error_hooks, Some(true));
    assert_eq!(info.include_bounce_content_in_hook, Some(false));
    assert_eq!(info.delivery_type, Some(DeliveryType::Live));
    let shown = format!("{info:?} {}", serde_json::to_string(&info).unwrap());
    assert!(!shown.contains("tok-secret-1"), "{shown}");
    assert!(!shown.contains("hookpass"), "{shown}");

    for (spelling, expected) in [
        ("HtmlAndText", TrackLinks::HtmlAndText),
        ("HtmlOnlyTracking", TrackLinks::HtmlOnly),
        ("HtmlOnly", TrackLinks::HtmlOnly),
        ("TextOnlyTracking", TrackLinks::TextOnly),
        ("None", TrackLinks::None),
    ] {
        let info: postmark::ServerInfo =
            serde_json::from_value(json!({ "TrackLinks": spelling })).unwrap();
        assert_eq!(info.track_links, Some(expected), "{spelling}");
    }

    let recorded: postmark::ServerInfo =
        serde_json::from_str(&fixture("api/postmarker_server_get_recorded.json")).unwrap();
    assert_eq!(recorded.post_first_open_only, Some(false));
    assert_eq!(recorded.track_links, None);
    assert_eq!(recorded.enable_smtp_api_error_hooks, None);
}

#[tokio::test]
async fn edit_server_puts_only_the_settings_given() {
    let server = MockServer::start().await;
    postmark_mock("PUT", "/server")
        .and(exact_query(&[]))
        .and(body_json(json!({
            "EnableSmtpApiErrorHooks": true,
            "TrackLinks": "HtmlOnly",
            "IncludeBounceContentInHook": false
        })))
        .respond_with(json_answer(
            200,
            r#"{"ID":9,"Name":"Prod","EnableSmtpApiErrorHooks":true,"TrackLinks":"HtmlOnly","ApiTokens":["t"]}"#,
        ))
        .expect(1)
        .mount(&server)
        .await;
    let edit = ServerEdit {
        enable_smtp_api_error_hooks: Some(true),
        track_links: Some(TrackLinks::HtmlOnly),
        include_bounce_content_in_hook: Some(false),
        ..ServerEdit::default()
    };
    let info = client_for(&server)
        .edit_server(&edit)
        .await
        .expect("edited");
    assert_eq!(info.enable_smtp_api_error_hooks, Some(true));
    assert_eq!(info.track_links, Some(TrackLinks::HtmlOnly));
}

#[tokio::test]
async fn list_message_streams_reads_lowercase_none() {
    let server = MockServer::start().await;
    postmark_mock("GET", "/message-streams")
        .and(exact_query(&[]))
        .respond_with(json_answer(
            200,
            &fixture("api/mrz1836_message_streams_list_lowercase_none.json"),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let streams = client_for(&server)
        .list_message_streams()
        .await
        .expect("streams");
    let ids: Vec<_> = streams.iter().filter_map(|s| s.id.as_deref()).collect();
    assert_eq!(ids, ["outbound", "inbound", "transactional-dev"]);
    for stream in &streams {
        assert_eq!(
            stream.unsubscribe_handling(),
            Some(UnsubscribeHandlingType::None)
        );
        assert!(!stream.is_archived());
    }
    assert_eq!(
        streams[1].message_stream_type,
        Some(postmark::MessageStreamType::Inbound)
    );
}

#[test]
fn unsubscribe_handling_is_read_case_insensitively() {
    for (text, expected) in [
        ("None", UnsubscribeHandlingType::None),
        ("none", UnsubscribeHandlingType::None),
        ("Postmark", UnsubscribeHandlingType::Postmark),
        ("postmark", UnsubscribeHandlingType::Postmark),
        ("Custom", UnsubscribeHandlingType::Custom),
        ("CUSTOM", UnsubscribeHandlingType::Custom),
        ("Later", UnsubscribeHandlingType::Other("Later".into())),
    ] {
        let parsed: UnsubscribeHandlingType = serde_json::from_value(json!(text)).unwrap();
        assert_eq!(parsed, expected, "{text}");
    }
    assert_eq!(UnsubscribeHandlingType::None.as_str(), "None");
    assert_eq!(
        serde_json::to_value(UnsubscribeHandlingType::from("other-Value")).unwrap(),
        "other-Value"
    );
}

// ---------------------------------------------------------------- message details

#[tokio::test]
async fn message_event_details_as_strings_numbers_or_booleans() {
    let server = MockServer::start().await;
    postmark_mock(
        "GET",
        "/messages/outbound/07311c54-0687-4ab9-b034-b54b5bad88ba/details",
    )
    .respond_with(json_answer(
        200,
        &fixture("api/as_email_service_docs_message_details_six_event_types.json"),
    ))
    .mount(&server)
    .await;
    postmark_mock("GET", "/messages/outbound/m-2/details")
        .respond_with(json_answer(
            200,
            r#"{"MessageID":"m-2","MessageEvents":[
                {"Recipient":"a@example.org","Type":"Bounced","ReceivedAt":"2026-01-01T10:00:00-05:00",
                 "Details":{"Summary":"mailbox unknown","BounceID":374814878}},
                {"Recipient":"a@example.org","Type":"SubscriptionChanged","ReceivedAt":"2026-01-01T10:00:01-05:00",
                 "Details":{"Origin":"Recipient","SuppressSending":false}},
                {"Recipient":"a@example.org","Type":"Opened","Details":{"BounceID":"not a number","SuppressSending":"maybe"}}
            ]}"#,
        ))
        .mount(&server)
        .await;
    let client = client_for(&server);
    let docs = client
        .outbound_message_details("07311c54-0687-4ab9-b034-b54b5bad88ba")
        .await
        .expect("details");
    let events = &docs.message_events;
    assert_eq!(events[3].kind, "Bounced");
    assert_eq!(
        events[3].bounce_id(),
        Some(374_814_878),
        "\"BounceID\": string"
    );
    assert_eq!(events[4].suppress_sending(), Some(true), "\"True\"");
    assert_eq!(events[0].bounce_id(), None);
    assert!(events[0].delivery_message().is_some());
    assert!(events[5].link().is_some());
    assert!(events[2].summary().is_some());

    let typed = client
        .outbound_message_details("m-2")
        .await
        .expect("details");
    let events = &typed.message_events;
    assert_eq!(events[0].bounce_id(), Some(374_814_878), "BounceID: number");
    assert_eq!(events[0].summary().as_deref(), Some("mailbox unknown"));
    assert_eq!(events[1].suppress_sending(), Some(false), "a JSON boolean");
    assert_eq!(
        events[1].detail("SuppressSending").as_deref(),
        Some("False")
    );
    assert_eq!(events[2].bounce_id(), None);
    assert_eq!(events[2].suppress_sending(), None);
}
