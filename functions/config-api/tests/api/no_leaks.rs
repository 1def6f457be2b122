//! No answer and no log line carries a token, a password or the admin key, through every path that
//! handles one: create, update, test (API and SMTP, passing and failing), list, read, delete, refused
//! requests, managed webhooks (create, test, sync, refresh) and suppressions both ways, and the webhook
//! password's refresh (whose answers show the password by design, and whose logs must not).

use base64::Engine;
use http::Method;
use lambda_http::Body;
use postmark_sim::{ServerConfig, SimOptions, Simulator};
use serde_json::json;

use crate::support::{
    SmtpServer, TestApp, api_server, capture_logs, captured_logs, make_pki, smtp_server,
};

#[tokio::test]
async fn no_answer_or_log_line_contains_a_secret() {
    capture_logs();
    let sim = Simulator::start(SimOptions::for_tests()).await.unwrap();
    let good_token = "leak-check-good-token-1111";
    sim.add_server(ServerConfig::new(good_token).name("Leak check"));
    let pki = make_pki();
    let smtp_user = "leak-check-smtp-user";
    let smtp_password = "leak-check-smtp-pass-2222";
    let smtp = SmtpServer::start(&pki, smtp_user, "the-server-wants-another-3333");
    let rx = crate::managed::receiver().await;
    let app = TestApp::with_env(&[
        ("POSTMARK_API_URL", &sim.api_url()),
        ("SMTP_EXTRA_CA_PEM", &pki.ca_pem),
        ("PUBLIC_BASE_URL", &rx.base),
    ])
    .await;
    let bad_token = "leak-check-bad-token-4444";
    let invalid_token = "leak-check\ninvalid-5555";

    // API servers: a good token, then a bad one, tested each time.
    let r = app
        .post("/api/email-servers", api_server("Leak", good_token))
        .await;
    assert_eq!(r.status, 201);
    let api_id = r.json()["id"].as_str().unwrap().to_owned();
    let api_path = format!("/api/email-servers/{api_id}");
    let r = app
        .call(Method::POST, &format!("{api_path}/test"), None)
        .await;
    assert_eq!(r.json()["ok"], true, "{}", r.text);
    let r = app
        .patch(&api_path, json!({"version": 1, "api_token": bad_token}))
        .await;
    assert_eq!(r.status, 200);
    let r = app
        .call(Method::POST, &format!("{api_path}/test"), None)
        .await;
    assert_eq!(r.json()["failed_step"], "token", "{}", r.text);
    let r = app
        .patch(&api_path, json!({"version": 2, "api_token": invalid_token}))
        .await;
    assert_eq!(r.status, 422);

    // An SMTP server whose password the server refuses.
    let r = app
        .post(
            "/api/email-servers",
            smtp_server("localhost", smtp.port, smtp_user, smtp_password),
        )
        .await;
    assert_eq!(r.status, 201);
    let smtp_id = r.json()["id"].as_str().unwrap().to_owned();
    let r = app
        .call(
            Method::POST,
            &format!("/api/email-servers/{smtp_id}/test"),
            None,
        )
        .await;
    assert_eq!(r.json()["failed_step"], "authenticate", "{}", r.text);

    app.get("/api/email-servers").await;
    app.get(&api_path).await;
    app.raw(
        Method::GET,
        "/api/email-servers",
        &[("authorization", format!("Bearer {}-wrong", app.admin_key))],
        Body::Empty,
    )
    .await;
    app.delete(&api_path).await;
    app.delete(&format!("/api/email-servers/{smtp_id}")).await;

    // Managed webhooks and suppressions both ways on an API server whose webhooks are in place: the
    // answers outside the webhook route must not carry the webhook password.
    let r = app
        .post("/api/email-servers", api_server("Managed", good_token))
        .await;
    assert_eq!(r.status, 201);
    let managed_path = format!("/api/email-servers/{}", r.json()["id"].as_str().unwrap());
    // The sync's answer is the webhook route's: it shows the password by design.
    let sync_reply = app.replies.lock().unwrap().len();
    let r = app
        .call(Method::POST, "/api/postmark/webhook/sync", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    managed_checks(&app, &managed_path).await;

    // The webhook password: its answers show it; the logs must not.
    let webhook_replies_from = app.replies.lock().unwrap().len();
    let first = app.get("/api/postmark/webhook").await.json()["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = app
        .call(Method::POST, "/api/postmark/webhook/refresh-password", None)
        .await
        .json()["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .call(Method::POST, "/api/postmark/webhook/refresh", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let third = r.json()["password"].as_str().unwrap().to_owned();
    let after_webhook_route = managed_checks(&app, &managed_path).await;

    let auth_plain =
        base64::engine::general_purpose::STANDARD.encode(format!("\0{smtp_user}\0{smtp_password}"));
    let secrets = [
        good_token,
        bad_token,
        "invalid-5555",
        smtp_user,
        smtp_password,
        &auth_plain,
        &app.admin_key,
    ];
    let replies = app.replies.lock().unwrap().clone();
    assert!(replies.len() > 10);
    for (i, reply) in replies.iter().enumerate() {
        for secret in secrets {
            assert!(
                !reply.contains(secret),
                "answer {i} contains {secret:?}:\n{reply}"
            );
        }
        if (i < webhook_replies_from && i != sync_reply) || i >= after_webhook_route {
            assert!(
                !reply.contains(&first) && !reply.contains(&second) && !reply.contains(&third),
                "answer {i}:\n{reply}"
            );
        }
    }
    let logs = captured_logs();
    assert!(
        logs.contains("email server created") && logs.contains("email server tested"),
        "the logs were captured:\n{logs}"
    );
    for secret in secrets
        .iter()
        .copied()
        .chain([first.as_str(), second.as_str(), third.as_str()])
    {
        assert!(!logs.contains(secret), "a log line contains {secret:?}");
    }
}

/// A test of the managed server and a suppression added and lifted; answers the index of the first
/// reply it made.
async fn managed_checks(app: &TestApp, path: &str) -> usize {
    let from = app.replies.lock().unwrap().len();
    let r = app.call(Method::POST, &format!("{path}/test"), None).await;
    assert_eq!(
        r.json()["webhooks"]["streams"][0]["state"],
        "in_place",
        "{}",
        r.text
    );
    let r = app
        .post("/api/suppressions", json!({"email": "leak@example.org"}))
        .await;
    assert!(r.status < 300, "{}", r.text);
    let r = app.delete("/api/suppressions/leak@example.org").await;
    assert_eq!(r.status, 200, "{}", r.text);
    from
}
