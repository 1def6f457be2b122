//! The webhook function's handler, driven with the API Gateway events in `events/webhook/`, against the
//! AWS emulator; every check reads the state back through the store, the counters after the stream
//! function has read the table's stream (in process, through the local event source mapping).

use std::collections::BTreeMap;
use std::time::Duration;

use domain::ports::RecipientStandings;
use domain::trace::{Campaign, CampaignKind};
use domain::tracking::{TokenSigner, TrackingTarget};
use domain::{JobId, SubscriberStatus, SuppressionReason};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use local_stack::stream_poller::StreamPoller;
use serde_json::{Value, json};
use store::subscribers::SubscriberProfile;
use testkit::{TestTable, unique};
use webhook::{App, Config};

const PASSWORD: &str = "local-webhook-password";
const TRACKING_KEY: &str = "local-tracking-key-for-tests";

struct Env {
    t: TestTable,
    app: App,
    password_secret: String,
    /// The stream function reading the table's stream, on a client of its own (not counted).
    stream: StreamPoller,
}

async fn env_with_grace(grace: chrono::Duration) -> Env {
    let t = TestTable::new().await;
    let password_secret = unique("test/webhook-password");
    let tracking_secret = unique("test/tracking-key");
    for (name, value) in [
        (&password_secret, PASSWORD),
        (&tracking_secret, TRACKING_KEY),
    ] {
        t.aws
            .secrets
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }
    let config = Config {
        table_name: t.table.name().to_owned(),
        webhook_password_secret: password_secret.clone(),
        tracking_key_secret: tracking_secret,
        password_grace: grace,
        secrets_ttl: Duration::from_secs(300),
        password_recheck: Duration::ZERO,
    };
    let app = App::with_clients(t.aws.dynamodb.clone(), t.aws.secrets.clone(), config);
    let stream = local_stack::stream_poller::in_process(
        &t.aws.config,
        store::aws::dynamodb_client(&t.aws.config, &testkit::test_policy()),
        t.table.name(),
        1000,
        Duration::ZERO,
    )
    .await
    .unwrap();
    t.aws.requests.reset();
    Env {
        t,
        app,
        password_secret,
        stream,
    }
}

async fn env() -> Env {
    env_with_grace(chrono::Duration::hours(24)).await
}

fn event_file(name: &str) -> Value {
    let path = format!(
        "{}/../../events/webhook/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn request(event: &Value) -> Request {
    lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway event")
}

/// The event `name` with its Postmark body changed by `edit`.
fn with_body(name: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut e = event_file(name);
    let mut body: Value = serde_json::from_str(e["body"].as_str().unwrap()).unwrap();
    edit(&mut body);
    e["body"] = Value::String(body.to_string());
    e
}

fn in_broadcast(body: &mut Value, job: &str) {
    body["Metadata"] = json!({ "broadcast_id": "b-1", "job_id": job, "email_type": "broadcast" });
}

async fn call(env: &Env, event: &Value) -> Response<Body> {
    webhook::handle(&env.app, request(event)).await
}

fn body_json(r: &Response<Body>) -> Value {
    serde_json::from_slice(r.body().as_ref()).unwrap_or(Value::Null)
}

async fn profile(env: &Env, email: &str) -> Option<SubscriberProfile> {
    let email = domain::EmailAddress::parse(email).unwrap();
    env.t.table.subscriber_profile(&email).await.unwrap()
}

async fn activity_kinds(env: &Env, email: &str) -> Vec<String> {
    env.t
        .table
        .activity(email, 100, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// The campaign's counters once the stream function has read everything written so far.
async fn stats(env: &Env) -> store::stats::CampaignStats {
    env.stream.drain().await.unwrap();
    env.t
        .table
        .campaign_stats(&Campaign {
            kind: CampaignKind::Broadcast,
            id: "b-1".into(),
        })
        .await
        .unwrap()
}

fn status(p: &SubscriberProfile) -> &'static str {
    p.status.as_str()
}

fn reason(p: &SubscriberProfile) -> Option<&'static str> {
    p.suppression_reason.map(|r| r.as_str())
}

/// The suppression list as `{reason}#{email}`.
async fn suppression_list(env: &Env) -> Vec<String> {
    env.t
        .table
        .suppressions(None, 100, None)
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| format!("{}#{}", e.reason.as_str(), e.email.as_str()))
        .collect()
}

#[tokio::test]
async fn every_published_payload_is_accepted_and_acted_on() {
    /// (event, recipient, status afterwards, suppression, activity kind)
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>, &'a str);
    let cases: &[Case] = &[
        (
            "postmark-symfony_delivery",
            "john@example.com",
            None,
            None,
            "delivered",
        ),
        (
            "postmark-skills_delivery",
            "john@example.com",
            None,
            None,
            "delivered",
        ),
        (
            "postmark-docs_delivery_legacy_support_article",
            "recipeint@example.com",
            None,
            None,
            "delivered",
        ),
        (
            "postmark-symfony_bounce",
            "john@example.com",
            Some("deactivated"),
            Some("HardBounce"),
            "hard_bounce",
        ),
        (
            "postmark-skills_bounce",
            "john@example.com",
            Some("deactivated"),
            Some("HardBounce"),
            "hard_bounce",
        ),
        (
            "postmark-docs_bounce_support_article",
            "john@example.com",
            Some("deactivated"),
            Some("HardBounce"),
            "hard_bounce",
        ),
        (
            "postmark-symfony_spam_complaint",
            "john@example.com",
            Some("complained"),
            Some("SpamComplaint"),
            "spam_complaint",
        ),
        (
            "postmark-skills_spam_complaint",
            "john@example.com",
            Some("complained"),
            Some("SpamComplaint"),
            "spam_complaint",
        ),
        (
            "postmark-docs_spam_complaint",
            "john@example.com",
            Some("complained"),
            Some("SpamComplaint"),
            "spam_complaint",
        ),
        (
            "postmark-docs_spam_complaint_curl_example",
            "john@example.com",
            Some("complained"),
            Some("SpamComplaint"),
            "spam_complaint",
        ),
        (
            "postmark-symfony_open",
            "john@example.com",
            None,
            None,
            "open",
        ),
        (
            "postmark-skills_open",
            "john@example.com",
            None,
            None,
            "open",
        ),
        (
            "postmark-symfony_click",
            "john@example.com",
            None,
            None,
            "click",
        ),
        (
            "postmark-skills_click",
            "john@example.com",
            None,
            None,
            "click",
        ),
        (
            "postmark-symfony_subscription_change",
            "john@example.com",
            Some("deactivated"),
            Some("HardBounce"),
            "suppressed",
        ),
        (
            "postmark-docs_subscription_change",
            "bounced-address@wildbit.com",
            Some("deactivated"),
            Some("HardBounce"),
            "suppressed",
        ),
        (
            "postmark-docs_subscription_change_older_version",
            "bounced-address@wildbit.com",
            Some("unsubscribed"),
            Some("Unsubscribed"),
            "suppressed",
        ),
        (
            "postmark-skills_subscription_change",
            "john@example.com",
            Some("unsubscribed"),
            Some("Unsubscribed"),
            "suppressed",
        ),
    ];
    let fixtures = std::fs::read_dir(format!(
        "{}/../../shared/postmark/tests/fixtures/webhooks",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .count();
    assert_eq!(cases.len(), fixtures, "every webhook fixture has a case");
    for (name, recipient, want_status, want_reason, want_kind) in cases {
        let env = env().await;
        let r = call(&env, &event_file(name)).await;
        assert_eq!(r.status(), StatusCode::OK, "{name}: {:?}", body_json(&r));
        assert_eq!(body_json(&r)["status"], "accepted", "{name}");
        assert_eq!(
            activity_kinds(&env, recipient).await,
            vec![*want_kind],
            "{name}"
        );
        let p = profile(&env, recipient)
            .await
            .unwrap_or_else(|| panic!("{name}: no profile"));
        match want_status {
            Some(s) => {
                assert_eq!(status(&p), *s, "{name}");
                assert_eq!(reason(&p), *want_reason, "{name}");
                assert_eq!(
                    suppression_list(&env).await,
                    vec![format!("{}#{recipient}", want_reason.unwrap())],
                    "{name}: listed as suppressed"
                );
            }
            None => {
                assert_eq!(status(&p), "active", "{name}");
                assert_eq!(reason(&p), None, "{name}");
            }
        }
    }
}

#[tokio::test]
async fn a_soft_bounce_is_recorded_and_the_subscriber_stays_active() {
    let env = env().await;
    let e = with_body("postmark-symfony_bounce", |b| {
        b["Type"] = json!("SoftBounce");
        b["TypeCode"] = json!(4096);
        in_broadcast(b, "job-soft");
    });
    assert_eq!(call(&env, &e).await.status(), StatusCode::OK);
    let p = profile(&env, "john@example.com").await.unwrap();
    assert_eq!(status(&p), "active", "no status change");
    assert_eq!(p.counters.get("bounced_soft"), Some(&1));
    assert_eq!(
        activity_kinds(&env, "john@example.com").await,
        vec!["soft_bounce"]
    );
    let s = stats(&env).await;
    assert_eq!(s.counters["bounced_soft"], 1);
    assert_eq!(s.counters["bounced_hard"], 0);
}

#[tokio::test]
async fn an_event_with_huge_details_is_kept_with_its_details_capped() {
    let env = env().await;
    // 450 KB of bounce details: the record would be over DynamoDB's 400 KB item limit.
    let huge = "x".repeat(450 * 1024);
    let e = with_body("postmark-symfony_bounce", |b| {
        b["Type"] = json!("SoftBounce");
        b["TypeCode"] = json!(4096);
        b["Details"] = json!(huge);
    });
    let answer = call(&env, &e).await;
    assert_eq!(answer.status(), StatusCode::OK, "{}", body_json(&answer));
    let entry = env
        .t
        .table
        .activity("john@example.com", 10, None)
        .await
        .unwrap()
        .items
        .remove(0);
    let kept = entry.detail.to_string();
    assert!(kept.len() < 10_000, "{} bytes kept", kept.len());
    assert!(kept.contains("xxx…"), "marked where it was cut");
}

#[tokio::test]
async fn campaign_counters_follow_the_metadata() {
    let env = env().await;
    for (name, job) in [
        ("postmark-symfony_delivery", "job-1"),
        ("postmark-skills_delivery", "job-2"),
        ("postmark-symfony_bounce", "job-3"),
        ("postmark-symfony_spam_complaint", "job-4"),
        ("postmark-symfony_open", "job-1"),
        ("postmark-symfony_click", "job-1"),
        ("postmark-skills_click", "job-2"),
    ] {
        let e = with_body(name, |b| in_broadcast(b, job));
        assert_eq!(call(&env, &e).await.status(), StatusCode::OK, "{name}");
    }
    let s = stats(&env).await;
    let c = &s.counters;
    assert_eq!(c["delivered"], 2);
    assert_eq!(c["bounced_hard"], 1);
    assert_eq!(c["complaints"], 1);
    assert_eq!((c["opens"], c["opens_unique"]), (1, 1));
    assert_eq!((c["clicks"], c["clicks_unique"]), (2, 2));
    let links: BTreeMap<_, _> = s.links.iter().map(|l| (l.url.as_str(), l.clicks)).collect();
    assert_eq!(
        links,
        BTreeMap::from([
            ("https://example.com", 1),
            ("https://yourdomain.com/pricing", 1)
        ])
    );
    let job_1 = env
        .t
        .table
        .message_engagement("job-1")
        .await
        .unwrap()
        .expect("job-1 was opened and clicked");
    let times = job_1.times;
    assert!(times.first_opened_at.is_some() && times.first_opened_at == times.last_opened_at);
    assert!(times.first_clicked_at.is_some());
    assert_eq!((job_1.opens.postmark, job_1.clicks.postmark), (1, 1));
    let p = profile(&env, "john@example.com").await.unwrap();
    assert_eq!(
        p.counters.get("delivered"),
        Some(&2),
        "both deliveries went to john"
    );
}

#[tokio::test]
async fn the_same_event_five_times_in_a_row_counts_once() {
    let env = env().await;
    let e = with_body("postmark-symfony_delivery", |b| in_broadcast(b, "job-1"));
    let mut answers = Vec::new();
    for _ in 0..5 {
        let r = call(&env, &e).await;
        assert_eq!(r.status(), StatusCode::OK);
        answers.push(body_json(&r)["status"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        answers,
        [
            "accepted",
            "duplicate",
            "duplicate",
            "duplicate",
            "duplicate"
        ]
    );
    assert_eq!(stats(&env).await.counters["delivered"], 1);
    assert_eq!(activity_kinds(&env, "john@example.com").await.len(), 1);
}

#[tokio::test]
async fn the_same_event_five_times_at_once_counts_once() {
    let env = env().await;
    for name in ["postmark-symfony_open", "postmark-symfony_bounce"] {
        let e = with_body(name, |b| in_broadcast(b, "job-1"));
        let calls = (0..5).map(|_| call(&env, &e));
        let answers = futures::future::join_all(calls).await;
        assert!(
            answers.iter().all(|r| r.status() == StatusCode::OK),
            "{name}"
        );
        let accepted = answers
            .iter()
            .filter(|r| body_json(r)["status"] == "accepted")
            .count();
        assert_eq!(accepted, 1, "{name}");
    }
    let s = stats(&env).await;
    assert_eq!((s.counters["opens"], s.counters["opens_unique"]), (1, 1));
    assert_eq!(s.counters["bounced_hard"], 1);
    assert_eq!(activity_kinds(&env, "john@example.com").await.len(), 2);
}

/// A job of campaign b-1 sent to `recipient` an hour ago, as the sender records it: claimed, then sent.
async fn put_job(env: &Env, job: &str, recipient: &str) {
    let id = JobId::parse(job).unwrap();
    let recipient = domain::EmailAddress::parse(recipient).unwrap();
    let campaign = Campaign {
        kind: CampaignKind::Broadcast,
        id: "b-1".into(),
    };
    let now = chrono::Utc::now() - chrono::Duration::hours(1);
    let claim = store::jobs::JobClaim {
        id: &id,
        token: "test-claim",
        recipient: &recipient,
        email_type: domain::EmailType::Broadcast,
        campaign: Some(&campaign),
        subscriber_id: None,
        now,
        lease: Duration::from_secs(180),
        send: None,
    };
    env.t.table.claim_job(&claim).await.unwrap();
    let sent = store::jobs::JobOutcome::Sent {
        message_id: Some(format!("message-of-{job}")),
        server_id: "server-1".into(),
        stream: "broadcast".into(),
    };
    env.t
        .table
        .record_job_outcome(&id, "test-claim", &sent, now)
        .await
        .unwrap();
}

fn tracking_event(route: &str, token: &str, user_agent: &str) -> Value {
    let mut e = event_file(route);
    let path = e["rawPath"].as_str().unwrap().replace("TOKEN", token);
    e["rawPath"] = json!(path);
    e["requestContext"]["http"]["path"] = json!(path);
    e["headers"]["user-agent"] = json!(user_agent);
    e
}

const BROWSER: &str =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko)";

#[tokio::test]
async fn one_open_seen_natively_and_by_postmark_counts_once() {
    let env = env().await;
    put_job(&env, "job-7", "john@example.com").await;
    let signer = TokenSigner::new(TRACKING_KEY.as_bytes());
    let open = signer
        .sign(&TrackingTarget::Open {
            job: JobId::parse("job-7").unwrap(),
        })
        .unwrap();
    let r = call(&env, &tracking_event("track-open", &open, BROWSER)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/gif");
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("no-store")
    );
    assert_eq!(r.body().as_ref(), webhook::PIXEL_GIF);

    let pm = with_body("postmark-symfony_open", |b| in_broadcast(b, "job-7"));
    assert_eq!(call(&env, &pm).await.status(), StatusCode::OK);
    let s = stats(&env).await;
    assert_eq!((s.counters["opens"], s.counters["opens_unique"]), (1, 1));
    assert_eq!(
        (s.counters["opens_human"], s.counters["opens_unique_human"]),
        (1, 1)
    );

    // A second native open is a second open; Postmark's copy of the first does not add one.
    assert_eq!(
        call(&env, &tracking_event("track-open", &open, BROWSER))
            .await
            .status(),
        StatusCode::OK
    );
    let s = stats(&env).await;
    assert_eq!((s.counters["opens"], s.counters["opens_unique"]), (2, 1));
    let kinds = activity_kinds(&env, "john@example.com").await;
    assert_eq!(
        kinds,
        vec!["open", "open", "open"],
        "every observation is in the log"
    );
}

#[tokio::test]
async fn native_clicks_redirect_and_count_and_scanners_are_flagged() {
    let env = env().await;
    put_job(&env, "job-8", "jane@example.com").await;
    let signer = TokenSigner::new(TRACKING_KEY.as_bytes());
    let url = "https://shop.example.com/sale?utm_source=email";
    let token = signer
        .sign(&TrackingTarget::Click {
            job: JobId::parse("job-8").unwrap(),
            url: url.into(),
        })
        .unwrap();

    let head = call(&env, &tracking_event("track-click-head", &token, BROWSER)).await;
    assert_eq!(head.status(), StatusCode::FOUND);
    assert_eq!(
        stats(&env).await.counters["clicks"],
        0,
        "HEAD is not counted"
    );

    let scanner = call(
        &env,
        &tracking_event(
            "track-click",
            &token,
            "Mozilla/5.0 (compatible; Barracuda Sentinel)",
        ),
    )
    .await;
    assert_eq!(scanner.status(), StatusCode::FOUND);
    let person = call(&env, &tracking_event("track-click", &token, BROWSER)).await;
    assert_eq!(person.status(), StatusCode::FOUND);
    assert_eq!(person.headers()["location"], url);

    let s = stats(&env).await;
    assert_eq!((s.counters["clicks"], s.counters["clicks_unique"]), (2, 1));
    assert_eq!(
        (
            s.counters["clicks_human"],
            s.counters["clicks_unique_human"]
        ),
        (1, 1)
    );
    assert_eq!(s.links.len(), 1);
    assert_eq!(
        (
            s.links[0].url.as_str(),
            s.links[0].clicks,
            s.links[0].clicks_human
        ),
        (url, 2, 1)
    );
    let log = env
        .t
        .table
        .activity("jane@example.com", 10, None)
        .await
        .unwrap()
        .items;
    assert_eq!(log.len(), 2);
    assert_eq!(
        log.iter()
            .filter(|e| e.detail.get("automated").is_some())
            .count(),
        1
    );
}

#[tokio::test]
async fn tampered_forged_and_truncated_tokens_answer_404() {
    let env = env().await;
    let signer = TokenSigner::new(TRACKING_KEY.as_bytes());
    let token = signer
        .sign(&TrackingTarget::Click {
            job: JobId::parse("job-9").unwrap(),
            url: "https://example.com/".into(),
        })
        .unwrap();
    let forged = TokenSigner::new(b"someone else's key")
        .sign(&TrackingTarget::Click {
            job: JobId::parse("job-9").unwrap(),
            url: "https://evil.example/".into(),
        })
        .unwrap();
    let open_as_click = signer
        .sign(&TrackingTarget::Open {
            job: JobId::parse("job-9").unwrap(),
        })
        .unwrap();
    let mut tampered = token.clone().into_bytes();
    tampered[3] = if tampered[3] == b'x' { b'y' } else { b'x' };
    for bad in [
        String::from_utf8(tampered).unwrap(),
        forged,
        token[..token.len() - 4].to_owned(),
        open_as_click,
        "TOKEN".to_owned(),
    ] {
        let r = call(&env, &tracking_event("track-click", &bad, BROWSER)).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{bad}");
        assert!(r.headers().get("location").is_none());
    }
    let r = call(&env, &tracking_event("track-open", "TOKEN", BROWSER)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn passwords_are_checked_and_nothing_is_stored_without_one() {
    let env = env().await;
    for name in ["postmark-wrong-password", "postmark-no-password"] {
        assert_eq!(
            call(&env, &event_file(name)).await.status(),
            StatusCode::UNAUTHORIZED,
            "{name}"
        );
    }
    assert!(
        activity_kinds(&env, "john@example.com").await.is_empty(),
        "nothing stored"
    );
    assert_eq!(
        call(&env, &event_file("postmark-basic-auth"))
            .await
            .status(),
        StatusCode::OK,
        "Basic credentials in the URL"
    );
}

async fn refresh_password(env: &Env, new: &str) {
    env.t
        .aws
        .secrets
        .put_secret_value()
        .secret_id(&env.password_secret)
        .secret_string(new)
        .send()
        .await
        .unwrap();
}

fn with_password(name: &str, password: &str) -> Value {
    let mut e = event_file(name);
    e["queryStringParameters"]["password"] = json!(password);
    e["rawQueryString"] = json!(format!("password={password}"));
    e
}

#[tokio::test]
async fn the_previous_password_works_during_the_grace_period_only() {
    let within = env_with_grace(chrono::Duration::hours(1)).await;
    // Warm the cache with the old password, then refresh it elsewhere.
    assert_eq!(
        call(&within, &event_file("postmark-symfony_delivery"))
            .await
            .status(),
        StatusCode::OK
    );
    refresh_password(&within, "a-brand-new-password").await;
    let new = with_password("postmark-skills_delivery", "a-brand-new-password");
    assert_eq!(
        call(&within, &new).await.status(),
        StatusCode::OK,
        "the new password works at once"
    );
    let old = with_password("postmark-symfony_open", PASSWORD);
    assert_eq!(
        call(&within, &old).await.status(),
        StatusCode::OK,
        "the old one within the grace"
    );

    let after = env_with_grace(chrono::Duration::zero()).await;
    refresh_password(&after, "a-brand-new-password").await;
    let old = with_password("postmark-symfony_open", PASSWORD);
    assert_eq!(
        call(&after, &old).await.status(),
        StatusCode::UNAUTHORIZED,
        "grace over"
    );
    let new = with_password("postmark-symfony_open", "a-brand-new-password");
    assert_eq!(call(&after, &new).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_bodies_get_clear_answers() {
    let env = env().await;
    let r = call(&env, &event_file("postmark-not-json")).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(body_json(&r)["message"].as_str().unwrap().contains("JSON"));

    let mut big = event_file("postmark-symfony_delivery");
    big["body"] = json!(format!(
        "{{\"Pad\":\"{}\"}}",
        "x".repeat(webhook::MAX_BODY_BYTES)
    ));
    assert_eq!(
        call(&env, &big).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );

    assert_eq!(
        call(&env, &event_file("postmark-base64-body"))
            .await
            .status(),
        StatusCode::OK
    );

    let r = call(&env, &event_file("postmark-unknown-record-type")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body_json(&r)["status"], "ignored");
    let day = chrono::Utc::now().date_naive();
    let audits = [day.pred_opt().unwrap(), day, day.succ_opt().unwrap()];
    let mut kept = Vec::new();
    for d in audits {
        kept.extend(env.t.table.audits(d).await.unwrap());
    }
    assert_eq!(kept.len(), 1, "kept for audit");
    assert_eq!(kept[0].record_type.as_deref(), Some("Inbound"));

    let mut wrong_method = event_file("postmark-symfony_delivery");
    wrong_method["requestContext"]["http"]["method"] = json!("GET");
    assert_eq!(
        call(&env, &wrong_method).await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn a_store_failure_answers_503_and_writes_nothing() {
    let env = env().await;
    let broken = App::with_clients(
        env.t.aws.dynamodb.clone(),
        env.t.aws.secrets.clone(),
        Config {
            table_name: unique("missing-table"),
            ..(*env.app.config).clone()
        },
    );
    let e = with_body("postmark-symfony_bounce", |b| in_broadcast(b, "job-1"));
    let r = webhook::handle(&broken, request(&e)).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Then Postmark retries and the store is back: exactly one effect.
    let r = call(&env, &e).await;
    assert_eq!(body_json(&r)["status"], "accepted");
    let p = profile(&env, "john@example.com").await.unwrap();
    assert_eq!(p.status, SubscriberStatus::Deactivated);
    assert_eq!(p.suppression_reason, Some(SuppressionReason::HardBounce));
    assert_eq!(stats(&env).await.counters["bounced_hard"], 1);
}

#[tokio::test]
async fn an_out_of_order_reactivation_does_not_undo_a_later_suppression() {
    let env = env().await;
    let bounce = event_file("postmark-symfony_subscription_change");
    assert_eq!(call(&env, &bounce).await.status(), StatusCode::OK);
    let older_reactivation = with_body("postmark-symfony_subscription_change", |b| {
        b["SuppressSending"] = json!(false);
        b["SuppressionReason"] = Value::Null;
        b["ChangedAt"] = json!("2000-01-01T00:00:00Z");
    });
    assert_eq!(
        call(&env, &older_reactivation).await.status(),
        StatusCode::OK
    );
    let p = profile(&env, "john@example.com").await.unwrap();
    assert_eq!(status(&p), "deactivated");
    let log = env
        .t
        .table
        .activity("john@example.com", 10, None)
        .await
        .unwrap()
        .items;
    assert_eq!(log.len(), 2, "both events are in the log");
    assert!(
        log.iter()
            .any(|e| e.detail.get("standing_unchanged") == Some(&json!(true)))
    );
}

/// A status-changing webhook for john@example.com at `at`.
fn status_event(kind: &str, at: &str) -> Value {
    let subscription_change = |suppress: bool, reason: Value, origin: &str| {
        with_body("postmark-symfony_subscription_change", |b| {
            b["SuppressSending"] = json!(suppress);
            b["SuppressionReason"] = reason;
            b["Origin"] = json!(origin);
            b["ChangedAt"] = json!(at);
        })
    };
    match kind {
        "complaint" => with_body("postmark-symfony_spam_complaint", |b| {
            b["BouncedAt"] = json!(at);
        }),
        "hard_bounce" => with_body("postmark-symfony_bounce", |b| b["BouncedAt"] = json!(at)),
        "unsubscribe" => subscription_change(true, json!("ManualSuppression"), "Recipient"),
        "no_reason" => subscription_change(true, Value::Null, "Customer"),
        "reactivation" => subscription_change(false, Value::Null, "Customer"),
        other => panic!("no such status event {other}"),
    }
}

/// The standing as every reader sees it: the profile's status and reason, the suppression list's entry,
/// and the sender's batched read.
async fn standing_seen(env: &Env) -> (Option<String>, Option<String>, Option<String>, Vec<String>) {
    let p = profile(env, "john@example.com").await.unwrap();
    let list = suppression_list(env).await;
    let john = domain::EmailAddress::parse("john@example.com").unwrap();
    let read = env.t.table.standings(&[john]).await.unwrap();
    let sender = &read["john@example.com"];
    assert_eq!(p.status, sender.status, "the sender reads the same status");
    assert_eq!(p.suppression_reason, sender.suppression);
    (
        Some(status(&p).to_owned()),
        reason(&p).map(str::to_owned),
        p.suppressed_at.map(store::activity::sortable_time),
        list,
    )
}

#[tokio::test]
async fn status_events_in_any_arrival_order_end_in_one_standing() {
    type Scenario<'a> = (&'a [(&'a str, &'a str)], (&'a str, &'a str, &'a str));
    let scenarios: &[Scenario] = &[
        (
            // The complaint is the oldest suppression but the strongest; the reactivation is older still.
            &[
                ("reactivation", "2026-05-01T10:00:00Z"),
                ("complaint", "2026-05-01T10:02:00Z"),
                ("hard_bounce", "2026-05-01T10:03:00Z"),
                ("unsubscribe", "2026-05-01T10:04:00Z"),
                ("no_reason", "2026-05-01T10:05:00Z"),
            ],
            ("complained", "SpamComplaint", "2026-05-01T10:02:00.000000Z"),
        ),
        (
            // A reactivation after the bounce lifts it and the complaint; the later suppressions hold, and
            // the one at the reactivation's very instant too.
            &[
                ("complaint", "2026-05-01T10:02:00Z"),
                ("hard_bounce", "2026-05-01T10:03:00Z"),
                ("reactivation", "2026-05-01T10:04:00Z"),
                ("unsubscribe", "2026-05-01T10:04:00Z"),
                ("no_reason", "2026-05-01T10:01:00Z"),
            ],
            (
                "unsubscribed",
                "Unsubscribed",
                "2026-05-01T10:04:00.000000Z",
            ),
        ),
    ];
    for (events, (want_status, want_reason, want_since)) in scenarios {
        let n = events.len();
        let orders: Vec<Vec<usize>> = vec![
            (0..n).collect(),
            (0..n).rev().collect(),
            vec![2, 0, 4, 1, 3],
            vec![4, 2, 3, 0, 1],
            vec![1, 3, 0, 4, 2],
        ];
        let mut seen = Vec::new();
        for order in &orders {
            let env = env().await;
            for &i in order {
                let (kind, at) = events[i];
                let r = call(&env, &status_event(kind, at)).await;
                assert_eq!(body_json(&r)["status"], "accepted", "{kind} at {at}");
            }
            let got = standing_seen(&env).await;
            assert_eq!(
                (got.0.as_deref(), got.1.as_deref(), got.2.as_deref()),
                (Some(*want_status), Some(*want_reason), Some(*want_since)),
                "order {order:?}"
            );
            assert_eq!(
                got.3,
                vec![format!("{want_reason}#john@example.com")],
                "order {order:?}: one entry on the suppression list, with the reason"
            );
            let log = env
                .t
                .table
                .activity("john@example.com", 100, None)
                .await
                .unwrap()
                .items;
            assert_eq!(log.len(), n, "order {order:?}: every event is in the log");
            seen.push(got);
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    }
}

#[tokio::test]
async fn an_unsubscribe_after_a_hard_bounce_keeps_receipts_blocked() {
    let env = env().await;
    for (kind, at) in [
        ("hard_bounce", "2026-05-01T10:00:00Z"),
        ("unsubscribe", "2026-05-01T11:00:00Z"),
    ] {
        assert_eq!(
            body_json(&call(&env, &status_event(kind, at)).await)["status"],
            "accepted"
        );
    }
    let john = domain::EmailAddress::parse("john@example.com").unwrap();
    let read = env.t.table.standings(&[john]).await.unwrap();
    let standing = &read["john@example.com"];
    assert_eq!(standing.status, SubscriberStatus::Deactivated);
    assert_eq!(
        domain::jobs::skip_reason(domain::EmailType::Transactional, Some(standing)),
        Some(domain::jobs::SkipReason::Suppressed(
            SuppressionReason::HardBounce
        ))
    );
    let log = env
        .t
        .table
        .activity("john@example.com", 10, None)
        .await
        .unwrap()
        .items;
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].kind, "suppressed");
    assert_eq!(
        log[0].detail.get("standing_unchanged"),
        Some(&json!(true)),
        "the unsubscribe is logged, marked as changing nothing visible"
    );
}

#[tokio::test]
async fn a_status_change_reads_the_standing_once_and_a_delivery_does_not() {
    let env = env().await;
    let warm = with_body("postmark-symfony_delivery", |b| in_broadcast(b, "job-1"));
    assert_eq!(call(&env, &warm).await.status(), StatusCode::OK);
    env.t.aws.requests.reset();
    let bounce = status_event("hard_bounce", "2026-05-01T10:00:00Z");
    assert_eq!(body_json(&call(&env, &bounce).await)["status"], "accepted");
    let counts = env.t.aws.requests.snapshot();
    assert_eq!(counts.get("DynamoDB.GetItem"), Some(&1), "{counts:?}");
    assert_eq!(
        counts.get("DynamoDB.TransactWriteItems"),
        Some(&1),
        "{counts:?}"
    );
}

#[tokio::test]
async fn one_delivery_costs_one_dynamodb_request() {
    let env = env().await;
    let e = with_body("postmark-symfony_delivery", |b| in_broadcast(b, "job-1"));
    // Warm the secret cache, as a warm Lambda would be.
    assert_eq!(call(&env, &e).await.status(), StatusCode::OK);
    env.t.aws.requests.reset();
    let e = with_body("postmark-skills_delivery", |b| in_broadcast(b, "job-2"));
    assert_eq!(call(&env, &e).await.status(), StatusCode::OK);
    let counts = env.t.aws.requests.snapshot();
    assert_eq!(counts.get("DynamoDB.PutItem"), Some(&1), "{counts:?}");
    assert_eq!(env.t.aws.requests.total(), 1, "{counts:?}");
    // The counters follow from the stream.
    assert_eq!(stats(&env).await.counters["delivered"], 2);
}
