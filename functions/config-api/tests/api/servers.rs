//! Email servers over the API, with their secrets, against the AWS emulator.

use http::Method;
use lambda_http::Body;
use serde_json::json;

use crate::support::{TestApp, api_server, smtp_server};

#[tokio::test]
async fn create_read_list_and_the_token_lives_only_in_its_secret() {
    let app = TestApp::new().await;
    let token = "aaaa1111-bbbb-2222-cccc-3333dddd4444";
    let created = app
        .post("/api/email-servers", api_server("Main", token))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let mut server = created.json();
    // Only the create answer carries where the server's managed webhooks stand.
    assert!(server["webhooks"]["streams"].is_array(), "{server}");
    server.as_object_mut().unwrap().remove("webhooks");
    let id = server["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.headers["location"],
        format!("/api/email-servers/{id}").as_str()
    );
    assert_eq!(created.headers["etag"], "\"1\"");
    assert_eq!(server["api_token"], json!({"set": true, "last4": "4444"}));
    assert_eq!(server["smtp"], json!(null));
    assert_eq!(
        server["message_streams"],
        json!({"broadcast": "broadcast", "transactional": "outbound"})
    );
    assert_eq!(server["version"], 1);
    assert_eq!(server["active"], true);
    assert!(!created.text.contains(token));

    let secret = app.server_secret(&id).await.expect("the server's secret");
    assert_eq!(secret, json!({"api_token": token}));
    let table = app
        .t
        .aws
        .dynamodb
        .scan()
        .table_name(app.t.table.name())
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let stored = format!("{:?}", table.items());
    assert!(stored.contains(&id), "the scan sees the server: {stored}");
    assert!(!stored.contains(token), "the table never holds a token");

    let read = app.get(&format!("/api/email-servers/{id}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.json(), server);
    let list = app.get("/api/email-servers").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json()["items"], json!([server]));

    let missing = app.get("/api/email-servers/0123456789abcdef").await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn the_secret_follows_the_server_through_updates_and_deletion() {
    let app = TestApp::new().await;
    let first = "first-token-0000-1111";
    let id = app
        .post("/api/email-servers", api_server("Main", first))
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/email-servers/{id}");
    let name = format!("{}/servers/{id}", app.prefix);

    // A change without credentials leaves the secret alone.
    let r = app
        .patch(
            &path,
            json!({"version": 1, "label": "Renamed", "active": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["label"], "Renamed");
    assert_eq!(r.json()["active"], false);
    assert_eq!(r.json()["version"], 2);
    assert_eq!(r.json()["api_token"]["last4"], "1111");
    assert_eq!(app.previous_secret(&name).await, None);

    // A new token replaces the value; the old one is only the previous version.
    let second = "second-token-2222-3333";
    let r = app
        .patch(&path, json!({"version": 2, "api_token": second}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["api_token"]["last4"], "3333");
    assert_eq!(
        app.server_secret(&id).await.unwrap(),
        json!({"api_token": second})
    );
    assert!(app.previous_secret(&name).await.unwrap().contains(first));

    // Switching to SMTP needs SMTP credentials, and drops the token.
    let r = app
        .patch(&path, json!({"version": 3, "delivery_method": "smtp"}))
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.json()["fields"]["smtp"].is_string());
    let r = app
        .patch(
            &path,
            json!({"version": 3, "delivery_method": "smtp",
                   "smtp": {"host": "smtp.postmarkapp.com", "username": "user-4444",
                            "password": "pass-word-5555"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(body["delivery_method"], "smtp");
    assert_eq!(body["api_token"], json!({"set": false, "last4": null}));
    assert_eq!(body["smtp"]["port"], 587);
    assert_eq!(body["smtp"]["starttls"], true);
    assert_eq!(body["smtp"]["password"]["last4"], "5555");
    assert_eq!(
        app.server_secret(&id).await.unwrap(),
        json!({"smtp_username": "user-4444", "smtp_password": "pass-word-5555"})
    );

    // A new password alone keeps the username.
    let r = app
        .patch(
            &path,
            json!({"version": 4, "smtp": {"password": "new-pass-6666"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        app.server_secret(&id).await.unwrap(),
        json!({"smtp_username": "user-4444", "smtp_password": "new-pass-6666"})
    );

    // Deleting takes the secret with it.
    let r = app.delete(&path).await;
    assert_eq!(r.status, 204);
    assert_eq!(app.secret(&name).await, None);
    assert_eq!(app.get(&path).await.status, 404);
    assert_eq!(app.delete(&path).await.status, 404);
}

#[tokio::test]
async fn a_stale_version_is_refused_and_changes_nothing() {
    let app = TestApp::new().await;
    let id = app
        .post("/api/email-servers", api_server("Main", "token-aaaa-bbbb"))
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/email-servers/{id}");
    assert_eq!(
        app.patch(&path, json!({"version": 1, "label": "B"}))
            .await
            .status,
        200
    );
    let stale = app
        .patch(
            &path,
            json!({"version": 1, "label": "C", "api_token": "token-cccc-dddd"}),
        )
        .await;
    assert_eq!(stale.status, 409, "{}", stale.text);
    let now = app.get(&path).await.json();
    assert_eq!(now["label"], "B");
    assert_eq!(now["api_token"]["last4"], "bbbb");
    assert_eq!(
        app.recorded_secret(&id).await,
        json!({"api_token": "token-aaaa-bbbb"})
    );
    let missing_version = app.patch(&path, json!({"label": "D"})).await;
    assert_eq!(missing_version.status, 422);
    assert!(missing_version.json()["fields"]["version"].is_string());

    // If-Match works as well as a body version; a stale one on DELETE is refused.
    let r = app
        .raw(
            Method::PATCH,
            &path,
            &[
                ("authorization", format!("Bearer {}", app.admin_key)),
                ("if-match", "\"2\"".into()),
            ],
            Body::Text(json!({"label": "E"}).to_string()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.headers["etag"], "\"3\"");
    let r = app
        .raw(
            Method::DELETE,
            &path,
            &[
                ("authorization", format!("Bearer {}", app.admin_key)),
                ("if-match", "\"2\"".into()),
            ],
            Body::Empty,
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(app.get(&path).await.status, 200);
}

#[tokio::test]
async fn concurrent_updates_of_one_server_lose_no_write() {
    let app = TestApp::new().await;
    let id = app
        .post("/api/email-servers", api_server("Main", "token-start-0000"))
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/email-servers/{id}");
    for round in 1..=4u64 {
        let a = format!("token-a-round-{round}-aaaa");
        let b = format!("token-b-round-{round}-bbbb");
        let (ra, rb) = tokio::join!(
            app.patch(
                &path,
                json!({"version": round, "api_token": a, "label": "A"})
            ),
            app.patch(
                &path,
                json!({"version": round, "api_token": b, "label": "B"})
            ),
        );
        let mut statuses = [ra.status, rb.status];
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [200, 409],
            "round {round}: {} / {}",
            ra.text,
            rb.text
        );
        let (winner_label, winner_token) = if ra.status == 200 {
            ("A", &a)
        } else {
            ("B", &b)
        };
        let now = app.get(&path).await.json();
        assert_eq!(now["version"], round + 1);
        assert_eq!(now["label"], winner_label);
        // The item names the winner's secret version: the loser's token is never used.
        assert_eq!(
            app.recorded_secret(&id).await,
            json!({"api_token": winner_token}),
            "round {round}"
        );
        assert_eq!(
            now["api_token"]["last4"],
            &winner_token[winner_token.len() - 4..]
        );
    }
}

#[tokio::test]
async fn every_invalid_field_is_named_in_one_422() {
    let app = TestApp::new().await;
    let r = app
        .post(
            "/api/email-servers",
            json!({
                "label": "  ", "vendor": "sendgrid", "delivery_method": "smtp",
                "smtp": {"host": "smtp.postmarkapp.com", "port": 0, "username": "u",
                         "password": " padded ", "starttls": "yes"},
                "email_types": [], "tracking": {"track_opens": 1},
            }),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let body = r.json();
    assert_eq!(body["error"], "validation_failed");
    for field in [
        "label",
        "vendor",
        "smtp.port",
        "smtp.password",
        "smtp.starttls",
        "email_types",
        "tracking.track_opens",
    ] {
        assert!(body["fields"][field].is_string(), "{field}: {body}");
    }
    let r = app
        .post(
            "/api/email-servers",
            json!({"label": "x", "delivery_method": "api", "api_token": "t-1234567",
                   "email_types": ["transactional"], "message_streams": {"broadcast": "b"}}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.json()["fields"]["message_streams.broadcast"].is_string());
    // Nothing was created by refused requests.
    assert_eq!(
        app.get("/api/email-servers").await.json()["items"],
        json!([])
    );
}

#[tokio::test]
async fn smtp_servers_show_their_settings_but_no_credential() {
    let app = TestApp::new().await;
    let r = app
        .post(
            "/api/email-servers",
            smtp_server(
                "smtp.postmarkapp.com",
                2525,
                "my-user-name-7777",
                "my-password-8888",
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let body = r.json();
    assert_eq!(
        body["smtp"],
        json!({"host": "smtp.postmarkapp.com", "port": 2525, "authentication": "plain",
               "starttls": true,
               "username": {"set": true, "last4": "7777"},
               "password": {"set": true, "last4": "8888"}})
    );
    assert!(!r.text.contains("my-user-name") && !r.text.contains("my-password"));
}

#[tokio::test]
async fn requests_without_the_admin_key_get_401_except_the_health_check() {
    let app = TestApp::new().await;
    let health = app.raw(Method::GET, "/api/health", &[], Body::Empty).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({"status": "ok"}));
    for (method, path) in [
        (Method::GET, "/api/email-servers"),
        (Method::POST, "/api/email-servers"),
        (Method::GET, "/api/postmark/webhook"),
        (Method::GET, "/api/nowhere"),
    ] {
        let none = app.raw(method.clone(), path, &[], Body::Empty).await;
        assert_eq!(none.status, 401, "{method} {path}");
        assert_eq!(none.headers["www-authenticate"], "Bearer");
        let wrong = app
            .raw(
                method.clone(),
                path,
                &[("authorization", format!("Bearer {}x", app.admin_key))],
                Body::Empty,
            )
            .await;
        assert_eq!(wrong.status, 401, "{method} {path}");
        let basic = app
            .raw(
                method.clone(),
                path,
                &[("authorization", format!("Basic {}", app.admin_key))],
                Body::Empty,
            )
            .await;
        assert_eq!(basic.status, 401, "{method} {path}");
    }
}

#[tokio::test]
async fn unknown_routes_wrong_methods_bad_and_oversized_bodies() {
    let app = TestApp::new().await;
    let auth = || vec![("authorization", format!("Bearer {}", app.admin_key))];
    let r = app.get("/api/nowhere").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "not_found");
    let r = app.call(Method::PUT, "/api/email-servers", None).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "GET, POST");
    let r = app
        .raw(
            Method::POST,
            "/api/email-servers",
            &auth(),
            Body::Text("{not json".into()),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "bad_request");
    let r = app
        .raw(Method::POST, "/api/email-servers", &auth(), Body::Empty)
        .await;
    assert_eq!(r.status, 400);
    let r = app.post("/api/email-servers", json!([1, 2])).await;
    assert_eq!(r.status, 422);
    let big = format!("{{\"label\": \"{}\"}}", "x".repeat(1024 * 1024));
    let r = app
        .raw(Method::POST, "/api/email-servers", &auth(), Body::Text(big))
        .await;
    assert_eq!(r.status, 413);
}

#[tokio::test]
async fn every_sample_event_is_a_request_the_function_answers() {
    let app = TestApp::new().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/config-api");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("events/config-api") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace("local-admin-key", &app.admin_key);
        let req = lambda_http::request::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let r = app.send(req).await;
        let unrouted = r.status == 404 && r.text.contains("no route");
        assert!(
            !unrouted && r.status != 405 && r.status < 500,
            "{}: {} {}",
            path.display(),
            r.status,
            r.text
        );
        seen += 1;
    }
    assert!(seen >= 5, "only {seen} sample events");
}

#[tokio::test]
async fn a_server_reads_the_credentials_of_its_own_version() {
    let app = TestApp::new().await;
    let id = app
        .post(
            "/api/email-servers",
            api_server("Main", "version-one-token-1111"),
        )
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let server_id = domain::servers::ServerId::parse(&id).unwrap();
    let before = app.t.table.server(&server_id).await.unwrap().unwrap();
    let r = app
        .patch(
            &format!("/api/email-servers/{id}"),
            json!({"version": 1, "api_token": "version-two-token-2222"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let after = app.t.table.server(&server_id).await.unwrap().unwrap();
    assert_ne!(
        before.credentials.secret_version,
        after.credentials.secret_version
    );
    // What a sender holding either item reads: the credentials that item describes.
    let secrets = store::servers::ServerSecrets::new(app.t.aws.secrets.clone(), app.prefix.clone());
    let token = |c: Option<std::sync::Arc<store::servers::ServerCredentials>>| {
        use secrecy::ExposeSecret;
        c.unwrap()
            .api_token
            .as_ref()
            .unwrap()
            .expose_secret()
            .to_owned()
    };
    assert_eq!(
        token(secrets.credentials(&before).await.unwrap()),
        "version-one-token-1111"
    );
    assert_eq!(
        token(secrets.credentials(&after).await.unwrap()),
        "version-two-token-2222"
    );
    assert_eq!(app.t.table.servers().await.unwrap(), vec![after.clone()]);
    // Deleted with its server: nothing left to read, for either item.
    assert_eq!(
        app.delete(&format!("/api/email-servers/{id}")).await.status,
        204
    );
    let fresh = store::servers::ServerSecrets::new(app.t.aws.secrets.clone(), app.prefix.clone());
    assert!(fresh.credentials(&after).await.unwrap().is_none());
    assert!(app.t.table.servers().await.unwrap().is_empty());
}

#[tokio::test]
async fn starttls_may_be_switched_off_only_for_a_loopback_host() {
    let app = TestApp::new().await;
    let mut remote = smtp_server("smtp.postmarkapp.com", 587, "user-1234", "secret-1234");
    remote["smtp"]["starttls"] = json!(false);
    let r = app.post("/api/email-servers", remote).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(
        r.json()["fields"]["smtp.starttls"]
            .as_str()
            .is_some_and(|m| m.contains("clear")),
        "{}",
        r.text
    );
    let mut local = smtp_server("127.0.0.1", 2525, "user-1234", "secret-1234");
    local["smtp"]["starttls"] = json!(false);
    let r = app.post("/api/email-servers", local).await;
    assert_eq!(r.status, 201, "{}", r.text);
    // Nor can a server be moved to another host with STARTTLS still off.
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let version = r.json()["version"].clone();
    let r = app
        .patch(
            &format!("/api/email-servers/{id}"),
            json!({"version": version, "smtp": {"host": "mail.example.net"}}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
}
