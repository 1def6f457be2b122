//! The webhook URL and its password.

use serde_json::json;

use crate::support::{PUBLIC_BASE_URL, TestApp};

#[tokio::test]
async fn the_webhook_url_comes_with_and_without_the_password() {
    let app = TestApp::new().await;
    let name = app.app.config.webhook_password_secret.clone();
    let password = app.secret(&name).await.unwrap();
    let r = app.get("/api/postmark/webhook").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.headers["cache-control"], "no-store");
    let body = r.json();
    assert_eq!(body["url"], format!("{PUBLIC_BASE_URL}/wh/postmark"));
    assert_eq!(
        body["url_with_password"],
        format!("{PUBLIC_BASE_URL}/wh/postmark?password={password}")
    );
    assert_eq!(
        body["basic_auth_url"],
        format!("https://postmark:{password}@hooks.example.test/wh/postmark")
    );
    assert_eq!(body["password"], password.as_str());
    assert_eq!(body["grace_period_seconds"], 86400);
    assert_eq!(body["previous_password_valid_until"], json!(null));
}

#[tokio::test]
async fn a_refreshed_password_keeps_the_old_one_for_the_grace_period() {
    let app = TestApp::with_env(&[("WEBHOOK_PASSWORD_GRACE_SECONDS", "3600")]).await;
    let name = app.app.config.webhook_password_secret.clone();
    let old = app.get("/api/postmark/webhook").await.json()["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .call(
            http::Method::POST,
            "/api/postmark/webhook/refresh-password",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    let new = body["password"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(new.len(), 40);
    assert_eq!(body["grace_period_seconds"], 3600);
    // Secrets Manager holds the new one as current and the old one as previous: what the webhook
    // function accepts.
    assert_eq!(app.secret(&name).await.unwrap(), new);
    assert_eq!(app.previous_secret(&name).await.unwrap(), old);
    let created =
        chrono::DateTime::parse_from_rfc3339(body["password_created_at"].as_str().unwrap())
            .unwrap();
    let until = chrono::DateTime::parse_from_rfc3339(
        body["previous_password_valid_until"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!((until - created).num_seconds(), 3600);
    // The next read shows the new password at once (the cache was cleared).
    let again = app.get("/api/postmark/webhook").await.json();
    assert_eq!(again["password"], new.as_str());
    assert_eq!(
        again["url_with_password"],
        format!("{PUBLIC_BASE_URL}/wh/postmark?password={new}")
    );
}

#[tokio::test]
async fn refresh_creates_the_password_when_there_is_none_yet() {
    let app = TestApp::new().await;
    let name = app.app.config.webhook_password_secret.clone();
    app.t
        .aws
        .secrets
        .delete_secret()
        .secret_id(&name)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let r = app
        .call(
            http::Method::POST,
            "/api/postmark/webhook/refresh-password",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        app.secret(&name).await.unwrap(),
        r.json()["password"].as_str().unwrap()
    );
    assert_eq!(r.json()["previous_password_valid_until"], json!(null));
}
