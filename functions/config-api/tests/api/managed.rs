//! Managed webhooks, suppressions both ways and the settings report, against the Postmark simulator.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::post;
use base64::Engine;
use http::Method;
use postmark::{HttpAuth, NewWebhook, PostmarkClient, ServerEdit, ServerToken, WebhookTriggers};
use postmark_sim::{ServerConfig, SimOptions, Simulator};
use serde_json::{Value, json};

use crate::support::{TestApp, api_server, smtp_server};

const TOKEN: &str = "managed-server-token-0001";

/// A webhook receiver: answers 200 and keeps every `(Authorization, body)`.
pub(crate) struct Receiver {
    pub(crate) base: String,
    seen: Arc<Mutex<Vec<(String, Value)>>>,
}

pub(crate) async fn receiver() -> Receiver {
    let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let kept = seen.clone();
    let app = Router::new().route(
        "/wh/postmark",
        post(move |headers: HeaderMap, body: String| {
            let kept = kept.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body = serde_json::from_str(&body).unwrap_or(Value::Null);
                kept.lock().unwrap().push((auth, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver {
        base: format!("http://{addr}"),
        seen,
    }
}

struct Setup {
    sim: Simulator,
    app: TestApp,
    rx: Receiver,
    client: PostmarkClient,
}

async fn setup() -> Setup {
    let sim = Simulator::start(SimOptions::for_tests())
        .await
        .expect("the Postmark simulator starts");
    sim.add_server(
        ServerConfig::new(TOKEN)
            .name("Marketing")
            .sender_domain("example.com"),
    );
    let rx = receiver().await;
    let app = TestApp::with_env(&[
        ("POSTMARK_API_URL", &sim.api_url()),
        ("PUBLIC_BASE_URL", &rx.base),
    ])
    .await;
    let client = PostmarkClient::new(
        sim.api_url().parse().unwrap(),
        ServerToken::from(TOKEN.to_owned()),
        Duration::from_secs(5),
    )
    .unwrap();
    Setup {
        sim,
        app,
        rx,
        client,
    }
}

async fn create(app: &TestApp, body: Value) -> Value {
    let r = app.post("/api/email-servers", body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

fn stream<'a>(view: &'a Value, server: &str, stream: &str) -> &'a Value {
    view["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["server_id"] == server)
        .and_then(|s| {
            s["streams"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["stream"] == stream)
        })
        .unwrap_or_else(|| panic!("{server}/{stream} in {view}"))
}

async fn password(app: &TestApp) -> String {
    app.secret(&app.app.config.webhook_password_secret)
        .await
        .unwrap()
}

fn basic(password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("postmark:{password}"))
    )
}

async fn sync(app: &TestApp) -> Value {
    let r = app
        .call(Method::POST, "/api/postmark/webhook/sync", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

#[tokio::test]
async fn sync_creates_webhooks_that_receive_real_events_with_our_credentials() {
    let s = setup().await;
    let created = create(&s.app, api_server("Main", TOKEN)).await;
    let id = created["id"].as_str().unwrap().to_owned();
    // Creating reports without changing anything.
    assert_eq!(
        created["webhooks"]["streams"][0]["state"], "missing",
        "{created}"
    );
    assert!(s.client.list_webhooks(None).await.unwrap().is_empty());
    let view = s.app.get("/api/postmark/webhook").await.json();
    assert_eq!(stream(&view, &id, "outbound")["state"], "missing");

    let after = sync(&s.app).await;
    for name in ["outbound", "broadcast"] {
        let st = stream(&after, &id, name);
        assert_eq!(st["state"], "in_place", "{after}");
        assert_eq!(st["change"], "created", "{after}");
        assert!(st["webhook_id"].is_i64());
    }
    let hooks = s.client.list_webhooks(None).await.unwrap();
    assert_eq!(hooks.len(), 2);
    let pw = password(&s.app).await;
    for hook in &hooks {
        assert_eq!(
            hook.url.as_deref(),
            Some(format!("{}/wh/postmark", s.rx.base).as_str())
        );
        assert_eq!(hook.http_auth, Some(HttpAuth::new("postmark", &pw)));
        assert_eq!(hook.triggers, Some(WebhookTriggers::all(true)));
    }
    // A real message's Delivery arrives with our Basic credentials.
    s.rx.seen.lock().unwrap().clear();
    s.client
        .send(
            &postmark::Email::new("shop@example.com", "reader@example.org")
                .subject("Hi")
                .text_body("Hello")
                .message_stream("outbound"),
        )
        .await
        .unwrap();
    assert!(s.sim.settle(Duration::from_secs(10)).await);
    let seen = s.rx.seen.lock().unwrap().clone();
    let delivery = seen
        .iter()
        .find(|(_, body)| {
            body["RecordType"] == "Delivery" && body["Recipient"] == "reader@example.org"
        })
        .unwrap_or_else(|| panic!("no Delivery posted: {seen:?}"));
    assert_eq!(delivery.0, basic(&pw));
    // A second sync changes nothing.
    let again = sync(&s.app).await;
    assert!(
        stream(&again, &id, "outbound").get("change").is_none(),
        "{again}"
    );
    // Testing the server reports the same state.
    let r = s
        .app
        .call(Method::POST, &format!("/api/email-servers/{id}/test"), None)
        .await;
    assert_eq!(
        r.json()["webhooks"]["streams"][0]["state"],
        "in_place",
        "{}",
        r.text
    );
}

#[tokio::test]
async fn a_paused_webhook_is_drifted_and_sync_puts_it_right() {
    let s = setup().await;
    let id = create(&s.app, api_server("Main", TOKEN)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sync(&s.app).await;
    let hook = s.client.list_webhooks(Some("outbound")).await.unwrap()[0].clone();
    let r = reqwest::Client::new()
        .put(format!("{}/_sim/api_webhooks/{}", s.sim.api_url(), hook.id))
        .json(&json!({"status": "unverified"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let view = s.app.get("/api/postmark/webhook").await.json();
    let st = stream(&view, &id, "outbound");
    assert_eq!(st["state"], "drifted", "{view}");
    assert!(st["problems"].to_string().contains("paused"), "{st}");
    assert_eq!(stream(&view, &id, "broadcast")["state"], "in_place");
    let after = sync(&s.app).await;
    let st = stream(&after, &id, "outbound");
    assert_eq!(st["state"], "in_place", "{after}");
    assert_eq!(st["change"], "updated");
    assert!(!s.client.webhook(hook.id).await.unwrap().is_unverified());
}

#[tokio::test]
async fn a_wrong_password_is_drifted_and_webhooks_of_others_are_left_alone() {
    let s = setup().await;
    let id = create(&s.app, api_server("Main", TOKEN)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = format!("{}/wh/postmark", s.rx.base);
    let wrong = HttpAuth::new("postmark", "not-the-password");
    let triggers = WebhookTriggers::all(true);
    s.client
        .create_webhook(
            &NewWebhook::new(&url)
                .message_stream("outbound")
                .http_auth(&wrong)
                .triggers(&triggers),
        )
        .await
        .unwrap();
    let other_url = format!("{}/wh/postmark-other", s.rx.base);
    let r = s
        .client
        .create_webhook(
            &NewWebhook::new(&other_url)
                .message_stream("outbound")
                .triggers(&triggers)
                .verify(false),
        )
        .await
        .unwrap();
    let view = s.app.get("/api/postmark/webhook").await;
    let body = view.json();
    let st = stream(&body, &id, "outbound");
    assert_eq!(st["state"], "drifted", "{body}");
    assert!(st["problems"].to_string().contains("password"), "{st}");
    assert!(!st.to_string().contains("not-the-password"));
    sync(&s.app).await;
    // The other webhook is untouched.
    let other = s.client.webhook(r.id).await.unwrap();
    assert_eq!(other.url.as_deref(), Some(other_url.as_str()));
    assert!(other.http_auth.is_none_or(|a| a.password.is_none()));
}

#[tokio::test]
async fn refresh_updates_every_managed_webhook_password() {
    let s = setup().await;
    let id = create(&s.app, api_server("Main", TOKEN)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sync(&s.app).await;
    let old = password(&s.app).await;
    let r = s
        .app
        .call(Method::POST, "/api/postmark/webhook/refresh", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    let new = body["password"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    for name in ["outbound", "broadcast"] {
        assert_eq!(stream(&body, &id, name)["change"], "updated", "{body}");
        assert_eq!(stream(&body, &id, name)["state"], "in_place", "{body}");
    }
    assert!(body["note"].as_str().unwrap().contains("grace period"));
    let hooks = s.client.list_webhooks(None).await.unwrap();
    assert_eq!(hooks.len(), 2);
    for hook in hooks {
        assert_eq!(hook.http_auth, Some(HttpAuth::new("postmark", &new)));
    }
}

#[tokio::test]
async fn an_smtp_server_is_unmanageable_with_what_to_do() {
    let s = setup().await;
    let created = create(&s.app, smtp_server("127.0.0.1", 2525, "user-x", "pass-y")).await;
    let id = created["id"].as_str().unwrap();
    let st = &created["webhooks"]["streams"][0];
    assert_eq!(st["state"], "unmanageable", "{created}");
    let action = st["action"].as_str().unwrap();
    for needle in [
        "Servers",
        "Webhooks",
        "Add webhook",
        &format!("{}/wh/postmark", s.rx.base),
        "\"postmark\"",
        "Delivery",
        "Subscription",
        "outbound",
    ] {
        assert!(action.contains(needle), "{needle}: {action}");
    }
    let view = s.app.get("/api/postmark/webhook").await.json();
    assert_eq!(stream(&view, id, "outbound")["state"], "unmanageable");
    let r = s
        .app
        .call(Method::POST, &format!("/api/email-servers/{id}/test"), None)
        .await;
    let report = r.json();
    assert_eq!(report["settings"]["checked"], false, "{report}");
    assert!(
        report["settings"]["note"]
            .as_str()
            .unwrap()
            .contains("EnableSmtpApiErrorHooks")
    );
}

async fn dump(client: &PostmarkClient, stream: &str) -> Vec<String> {
    client
        .suppressions(stream, &postmark::SuppressionQuery::default())
        .await
        .unwrap()
        .into_iter()
        .filter_map(|s| s.email_address)
        .collect()
}

#[tokio::test]
async fn a_manual_suppression_is_made_in_postmark_and_reactivation_lifts_it() {
    let s = setup().await;
    create(&s.app, api_server("Main", TOKEN)).await;
    let r = s
        .app
        .post("/api/suppressions", json!({"email": "jane@example.org"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let results = r.json()["postmark"].clone();
    assert_eq!(results.as_array().unwrap().len(), 2, "{results}");
    assert!(
        results
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["status"] == "suppressed")
    );
    for name in ["outbound", "broadcast"] {
        assert_eq!(
            dump(&s.client, name).await,
            vec!["jane@example.org".to_owned()]
        );
    }
    let r = s.app.delete("/api/suppressions/jane@example.org").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(body["status"], "active");
    assert_eq!(body["postmark"]["will_refuse"], "no");
    assert_eq!(
        body["postmark"]["streams"][0]["status"], "deleted",
        "{body}"
    );
    for name in ["outbound", "broadcast"] {
        assert!(dump(&s.client, name).await.is_empty());
    }
}

#[tokio::test]
async fn a_spam_complaint_is_not_reactivated_on_either_side() {
    let s = setup().await;
    create(&s.app, api_server("Main", TOKEN)).await;
    // A complaint in the simulator (its spam-complaint domain), recorded here as the webhook would.
    let complainer = "someone@spam-complaint.postmarkapp.com";
    s.client
        .send(
            &postmark::Email::new("shop@example.com", complainer)
                .subject("Hi")
                .text_body("Hello")
                .message_stream("outbound"),
        )
        .await
        .unwrap();
    assert!(s.sim.settle(Duration::from_secs(10)).await);
    let before = dump(&s.client, "outbound").await;
    assert!(
        before.iter().any(|a| a.eq_ignore_ascii_case(complainer)),
        "{before:?}"
    );
    let email = domain::EmailAddress::parse(complainer).unwrap();
    s.app
        .t
        .table
        .change_standing_with_activity(
            &email,
            domain::events::StatusChange::Suppress(domain::SuppressionReason::HardBounce),
            chrono::Utc::now(),
            |_| store::activity::ActivityEntry {
                at: chrono::Utc::now(),
                id: "t-1".into(),
                kind: "bounced".into(),
                detail: json!({}),
            },
        )
        .await
        .unwrap();
    // Even recorded here as a bounce, Postmark's complaint refuses the reactivation before any change.
    let r = s
        .app
        .delete(&format!("/api/suppressions/{complainer}"))
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("spam complaint")
    );
    assert_eq!(dump(&s.client, "outbound").await, before);
    let sub = s
        .app
        .get(&format!("/api/subscribers/{complainer}"))
        .await
        .json();
    assert_ne!(sub["status"], "active", "{sub}");
}

#[tokio::test]
async fn a_server_postmark_refuses_does_not_block_reactivation_and_is_reported() {
    let s = setup().await;
    create(&s.app, api_server("Main", TOKEN)).await;
    let refused = create(&s.app, api_server("Old", "a-token-postmark-does-not-know")).await;
    let refused = refused["id"].as_str().unwrap().to_owned();
    let r = s
        .app
        .post("/api/suppressions", json!({"email": "jane@example.org"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = s.app.delete("/api/suppressions/jane@example.org").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(body["status"], "active", "{body}");
    let streams = body["postmark"]["streams"].as_array().unwrap();
    for x in streams {
        if x["server_id"] == refused.as_str() {
            assert_eq!(x["status"], "skipped", "{body}");
            let message = x["message"].as_str().unwrap();
            assert!(message.contains("refused"), "{message}");
            assert!(
                message.contains(&format!("PATCH /api/email-servers/{refused}")),
                "{message}"
            );
        } else {
            assert_eq!(x["status"], "deleted", "{body}");
        }
    }
    assert_eq!(streams.len(), 4, "{body}");
    // Postmark may still refuse the address on the streams of the server left out.
    assert_eq!(body["postmark"]["will_refuse"], "maybe", "{body}");
    for name in ["outbound", "broadcast"] {
        assert!(dump(&s.client, name).await.is_empty());
    }
}

#[tokio::test]
async fn an_unreachable_postmark_blocks_reactivation_unless_the_server_is_inactive() {
    let port = crate::support::closed_port();
    let app = TestApp::with_env(&[("POSTMARK_API_URL", &format!("http://127.0.0.1:{port}"))]).await;
    let id = create(&app, api_server("Main", TOKEN)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post("/api/suppressions", json!({"email": "jane@example.org"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(
        r.json()["postmark"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["status"] == "failed"),
        "{}",
        r.text
    );
    // An outage of a server that carries mail: 503, and nothing changed here.
    let r = app.delete("/api/suppressions/jane@example.org").await;
    assert_eq!(r.status, 503, "{}", r.text);
    let sub = app.get("/api/subscribers/jane@example.org").await.json();
    assert_eq!(sub["suppression_reason"], "ManualSuppression", "{sub}");
    // The same server made inactive is left out, with what to do, and the reactivation goes through.
    let r = app
        .patch(
            &format!("/api/email-servers/{id}"),
            json!({"version": 1, "active": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.delete("/api/suppressions/jane@example.org").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(body["status"], "active", "{body}");
    assert_eq!(body["postmark"]["will_refuse"], "maybe", "{body}");
    let streams = body["postmark"]["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "{body}");
    for x in streams {
        assert_eq!(x["status"], "skipped", "{body}");
        assert!(
            x["message"].as_str().unwrap().contains("inactive"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn the_settings_report_follows_the_server_in_postmark() {
    let s = setup().await;
    let id = create(&s.app, api_server("Main", TOKEN)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let test = || async {
        let r = s
            .app
            .call(Method::POST, &format!("/api/email-servers/{id}/test"), None)
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()
    };
    let setting = |report: &Value, name: &str| -> Value {
        report["settings"]["server"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["setting"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {report}"))
    };
    let report = test().await;
    assert_eq!(report["settings"]["checked"], true, "{report}");
    let hooks = setting(&report, "EnableSmtpApiErrorHooks");
    assert_eq!(hooks["value"], false);
    assert!(hooks["meaning"].as_str().unwrap().contains("PUT /server"));
    assert_eq!(setting(&report, "TrackOpens")["value"], false);
    let streams = report["settings"]["streams"].as_array().unwrap();
    let broadcast = streams.iter().find(|x| x["stream"] == "broadcast").unwrap();
    assert_eq!(broadcast["unsubscribe_handling"], "Postmark");
    s.client
        .edit_server(&ServerEdit {
            track_opens: Some(true),
            enable_smtp_api_error_hooks: Some(true),
            post_first_open_only: Some(true),
            ..ServerEdit::default()
        })
        .await
        .unwrap();
    let report = test().await;
    assert_eq!(setting(&report, "EnableSmtpApiErrorHooks")["value"], true);
    let opens = setting(&report, "TrackOpens");
    assert_eq!(opens["value"], true);
    assert!(
        opens["meaning"]
            .as_str()
            .unwrap()
            .contains("track_opens=false")
    );
    let first = setting(&report, "PostFirstOpenOnly");
    assert_eq!(first["value"], true);
    assert!(
        first["meaning"]
            .as_str()
            .unwrap()
            .contains("repeated opens")
    );
}
