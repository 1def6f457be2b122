//! `POST /api/email-servers/{id}/test`: SMTP against a real SMTP server, the API against the Postmark
//! simulator.

use postmark_sim::{ServerConfig, SimOptions, Simulator, StreamConfig, StreamType};
use serde_json::{Value, json};

use crate::support::{SmtpServer, TestApp, api_server, closed_port, make_pki, smtp_server};

const USER: &str = "smtp-user-name";
const PASSWORD: &str = "smtp-pass-word-1234";

async fn create(app: &TestApp, body: Value) -> String {
    let r = app.post("/api/email-servers", body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()["id"].as_str().unwrap().to_owned()
}

async fn test(app: &TestApp, id: &str) -> Value {
    let r = app
        .call(
            http::Method::POST,
            &format!("/api/email-servers/{id}/test"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

fn steps(report: &Value) -> Vec<(String, bool)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_owned(),
                s["ok"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn smtp_good_credentials_pass_every_stage() {
    let pki = make_pki();
    let smtp = SmtpServer::start(&pki, USER, PASSWORD);
    let app = TestApp::with_env(&[("SMTP_EXTRA_CA_PEM", &pki.ca_pem)]).await;
    let id = create(&app, smtp_server("localhost", smtp.port, USER, PASSWORD)).await;
    let report = test(&app, &id).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["failed_step"], json!(null));
    assert_eq!(
        steps(&report),
        vec![
            ("connect".into(), true),
            ("starttls".into(), true),
            ("authenticate".into(), true)
        ]
    );
}

#[tokio::test]
async fn smtp_a_wrong_password_fails_at_authentication() {
    let pki = make_pki();
    let smtp = SmtpServer::start(&pki, USER, PASSWORD);
    let app = TestApp::with_env(&[("SMTP_EXTRA_CA_PEM", &pki.ca_pem)]).await;
    let wrong = "not-the-password-9876";
    let id = create(&app, smtp_server("localhost", smtp.port, USER, wrong)).await;
    let report = test(&app, &id).await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["failed_step"], "authenticate", "{report}");
    assert_eq!(
        steps(&report),
        vec![
            ("connect".into(), true),
            ("starttls".into(), true),
            ("authenticate".into(), false)
        ]
    );
    let message = report["message"].as_str().unwrap();
    assert!(
        message.contains("refused the user name or password"),
        "{message}"
    );
    assert!(!report.to_string().contains(wrong));
}

#[tokio::test]
async fn smtp_no_server_listening_fails_at_connect() {
    let app = TestApp::new().await;
    let port = closed_port();
    let id = create(&app, smtp_server("127.0.0.1", port, USER, PASSWORD)).await;
    let report = test(&app, &id).await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["failed_step"], "connect", "{report}");
    assert_eq!(steps(&report), vec![("connect".into(), false)]);
    let message = report["message"].as_str().unwrap();
    assert!(message.contains(&port.to_string()), "{message}");
    assert!(message.contains("nothing is listening"), "{message}");
}

#[tokio::test]
async fn smtp_an_untrusted_certificate_fails_at_starttls() {
    let pki = make_pki();
    let smtp = SmtpServer::start(&pki, USER, PASSWORD);
    // No extra CA: the test CA is not trusted.
    let app = TestApp::new().await;
    let id = create(&app, smtp_server("localhost", smtp.port, USER, PASSWORD)).await;
    let report = test(&app, &id).await;
    assert_eq!(report["failed_step"], "starttls", "{report}");
}

async fn simulator() -> Simulator {
    let sim = Simulator::start(SimOptions::for_tests())
        .await
        .expect("the Postmark simulator starts");
    sim.add_server(
        ServerConfig::new("good-server-token-0001")
            .name("Marketing")
            .stream(StreamConfig::new("newsletters", StreamType::Broadcasts)),
    );
    sim
}

#[tokio::test]
async fn api_a_good_token_and_existing_streams_pass() {
    let sim = simulator().await;
    let app = TestApp::with_env(&[("POSTMARK_API_URL", &sim.api_url())]).await;
    let mut body = api_server("Main", "good-server-token-0001");
    body["email_types"] = json!(["transactional", "broadcast", "sequence"]);
    body["message_streams"] = json!({"sequence": "newsletters"});
    let id = create(&app, body).await;
    let report = test(&app, &id).await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(
        steps(&report),
        vec![
            ("token".into(), true),
            ("stream.broadcast".into(), true),
            ("stream.sequence".into(), true),
            ("stream.transactional".into(), true),
        ]
    );
    assert!(
        report["steps"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Marketing")
    );
}

#[tokio::test]
async fn api_a_bad_token_says_which_token_postmark_wants() {
    let sim = simulator().await;
    let app = TestApp::with_env(&[("POSTMARK_API_URL", &sim.api_url())]).await;
    // An Account API Token looks like any other token; Postmark refuses it on server endpoints.
    let account_token = "account-token-5555-6666";
    let id = create(&app, api_server("Main", account_token)).await;
    let report = test(&app, &id).await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["failed_step"], "token", "{report}");
    assert_eq!(steps(&report), vec![("token".into(), false)]);
    let message = report["message"].as_str().unwrap();
    assert!(message.contains("Server API Token"), "{message}");
    assert!(message.contains("not an Account API Token"), "{message}");
    assert!(!report.to_string().contains(account_token));
}

#[tokio::test]
async fn api_a_missing_stream_is_named_with_the_fix() {
    let sim = simulator().await;
    let app = TestApp::with_env(&[("POSTMARK_API_URL", &sim.api_url())]).await;
    let mut body = api_server("Main", "good-server-token-0001");
    body["message_streams"] = json!({"broadcast": "no-such-stream"});
    let id = create(&app, body).await;
    let report = test(&app, &id).await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["failed_step"], "stream.broadcast", "{report}");
    assert_eq!(
        steps(&report),
        vec![
            ("token".into(), true),
            ("stream.broadcast".into(), false),
            ("stream.transactional".into(), true),
        ]
    );
    let message = report["message"].as_str().unwrap();
    assert!(message.contains("\"no-such-stream\""), "{message}");
    assert!(message.contains("does not exist"), "{message}");
    assert!(message.contains("message_streams.broadcast"), "{message}");
}

#[tokio::test]
async fn api_marketing_mail_on_a_transactional_stream_is_refused() {
    let sim = simulator().await;
    let app = TestApp::with_env(&[("POSTMARK_API_URL", &sim.api_url())]).await;
    let mut body = api_server("Main", "good-server-token-0001");
    body["message_streams"] = json!({"broadcast": "outbound"});
    let id = create(&app, body).await;
    let report = test(&app, &id).await;
    assert_eq!(report["failed_step"], "stream.broadcast", "{report}");
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("Broadcasts stream")
    );
}

#[tokio::test]
async fn api_postmark_unreachable_is_said_plainly() {
    let app = TestApp::new().await;
    let id = create(&app, api_server("Main", "good-server-token-0001")).await;
    let report = test(&app, &id).await;
    assert_eq!(report["failed_step"], "token", "{report}");
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("Could not reach Postmark")
    );
}
