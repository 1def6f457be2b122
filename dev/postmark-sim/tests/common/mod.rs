//! What the simulator's tests share: a simulator with one server, a webhook receiver that records
//! what it gets and answers as told, and a small JSON client.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::any;
use postmark_sim::{ServerConfig, ServerSummary, SimOptions, Simulator, WebhookConfig};
use serde_json::Value;

pub const TOKEN: &str = "4a7c2f9e-sim-test-token";
pub const FROM: &str = "Shop <shop@example.com>";
pub const SETTLE: Duration = Duration::from_secs(20);

pub async fn simulator() -> Simulator {
    Simulator::start(SimOptions::for_tests())
        .await
        .expect("the simulator starts")
}

/// A server with token [`TOKEN`], sender domain `example.com`, and the given webhook.
pub fn server_config(webhook: Option<WebhookConfig>) -> ServerConfig {
    let mut config = ServerConfig::new(TOKEN)
        .name("Test server")
        .sender_domain("example.com");
    if let Some(webhook) = webhook {
        config = config.webhook(webhook);
    }
    config
}

pub async fn with_server(webhook: Option<WebhookConfig>) -> (Simulator, ServerSummary) {
    let sim = simulator().await;
    let server = sim.add_server(server_config(webhook));
    (sim, server)
}

/// A JSON call with Postmark's headers; the status and the body (`Null` when not JSON).
pub async fn call(
    sim: &Simulator,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", sim.api_url()))
        .header("Accept", "application/json");
    if let Some(token) = token {
        request = request.header("X-Postmark-Server-Token", token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("the simulator answers");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("a body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

pub async fn post(sim: &Simulator, path: &str, body: &Value) -> (u16, Value) {
    call(sim, reqwest::Method::POST, path, Some(TOKEN), Some(body)).await
}

pub async fn get(sim: &Simulator, path: &str) -> (u16, Value) {
    call(sim, reqwest::Method::GET, path, Some(TOKEN), None).await
}

/// A JSON message from [`FROM`].
pub fn email(to: &str) -> Value {
    serde_json::json!({
        "From": FROM,
        "To": to,
        "Subject": "Hello",
        "HtmlBody": "<p>Hi <a href=\"https://example.com/offer\">offer</a></p>",
        "TextBody": "Hi",
    })
}

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn record_type(&self) -> &str {
        self.body["RecordType"].as_str().unwrap_or_default()
    }
}

#[derive(Default)]
struct ReceiverState {
    received: Mutex<Vec<Received>>,
    statuses: Mutex<VecDeque<u16>>,
    delays: Mutex<VecDeque<Duration>>,
}

/// An HTTP server that records every request and answers with the queued statuses (then 200).
#[derive(Clone)]
pub struct Receiver {
    pub base: String,
    state: Arc<ReceiverState>,
}

async fn record(
    State(state): State<Arc<ReceiverState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let delay = state.delays.lock().unwrap().pop_front();
    state.received.lock().unwrap().push(Received {
        uri,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let status = state.statuses.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    pub async fn start() -> Self {
        let state = Arc::new(ReceiverState::default());
        let app = Router::new()
            .fallback(any(record))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, state }
    }

    /// The receiver's URL for `path` (e.g. `/wh/postmark?password=x`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The next answers, in order (200 after them).
    pub fn answer(&self, statuses: &[u16]) {
        self.state.statuses.lock().unwrap().extend(statuses);
    }

    /// Waits this long before answering the next request (once per call).
    pub fn delay_next(&self, delay: Duration) {
        self.state.delays.lock().unwrap().push_back(delay);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn of_type(&self, record_type: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|received| received.record_type() == record_type)
            .collect()
    }
}

/// Postmark's `SubmittedAt` and webhook timestamps: seven fraction digits and an offset.
pub fn is_postmark_timestamp(text: &str) -> bool {
    let Some((_, fraction)) = text.split_once('.') else {
        return false;
    };
    let digits: String = fraction.chars().take_while(char::is_ascii_digit).collect();
    let offset = &fraction[digits.len()..];
    digits.len() == 7
        && (offset == "Z"
            || (offset.len() == 6 && (offset.starts_with('-') || offset.starts_with('+'))))
        && chrono::DateTime::parse_from_rfc3339(text).is_ok()
}
