//! The webhook function: Postmark's webhooks at `POST /wh/postmark`, the native open pixel at
//! `GET /t/o/{token}` and click redirects at `GET /t/c/{token}`.
//!
//! Answers to Postmark follow its retry rules: 200 for every event accepted, recognised as a duplicate or
//! not acted on (kept for audit); 401 for a wrong or missing password; 400 only for a body that is not
//! JSON; 413 over 1 MiB; 503 when the store or the secrets cannot be reached, so that Postmark retries.

pub mod auth;
mod config;
pub mod mapping;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use domain::automation::automated_reason;
use domain::events::{ClientInfo, Event, EventKind, Source};
use domain::trace::MessageTrace;
use domain::tracking::{TokenSigner, TrackingTarget};
use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use secrecy::ExposeSecret;
use serde_json::json;
use store::aws::StorePolicy;
use store::events::Recorded;
use store::{SecretCache, StoreError, Table};
use tracing::{error, info, warn};

pub use config::{Config, ConfigError};

/// Largest webhook body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A 1x1 transparent GIF.
pub const PIXEL_GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// How long a native open or click waits for the store before answering without it.
pub const DEFAULT_NATIVE_STORE_BUDGET: Duration = Duration::from_millis(800);

/// Clients and configuration, built once per cold start.
#[derive(Clone, Debug)]
pub struct App {
    pub config: Arc<Config>,
    pub table: Table,
    pub secrets: SecretCache,
    /// The time a native open or click gives the store: past it, the person gets the pixel or the
    /// redirect and the count is lost (logged).
    pub native_store_budget: Duration,
}

impl App {
    /// The function's clients: DynamoDB through [`store::aws::dynamodb_client`] with the default
    /// [`StorePolicy`], Secrets Manager read through a stale-tolerant cache.
    pub fn new(sdk: &aws_config::SdkConfig, config: Config) -> Self {
        Self::with_clients(
            store::aws::dynamodb_client(sdk, &StorePolicy::default()),
            store::aws::secrets_client(sdk, &StorePolicy::default()),
            config,
        )
    }

    pub fn with_clients(
        dynamodb: aws_sdk_dynamodb::Client,
        secrets: aws_sdk_secretsmanager::Client,
        config: Config,
    ) -> Self {
        Self {
            table: Table::new(dynamodb, config.table_name.clone()),
            secrets: SecretCache::new(secrets, config.secrets_ttl),
            config: Arc::new(config),
            native_store_budget: DEFAULT_NATIVE_STORE_BUDGET,
        }
    }

    /// With another budget for the store work of native opens and clicks.
    pub fn with_native_store_budget(mut self, budget: Duration) -> Self {
        self.native_store_budget = budget;
        self
    }

    async fn signer(&self) -> Result<TokenSigner, StoreError> {
        let key = self
            .secrets
            .current(&self.config.tracking_key_secret)
            .await?;
        Ok(TokenSigner::new(key.value.expose_secret().as_bytes()))
    }
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::Text(body.to_string()))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

fn message(status: StatusCode, text: &str) -> Response<Body> {
    json_response(status, json!({ "message": text }))
}

fn path(req: &Request) -> String {
    let raw = req.raw_http_path();
    if raw.is_empty() {
        req.uri().path().to_owned()
    } else {
        raw.to_owned()
    }
}

/// The function's entry point: routes a request and never fails (every outcome is an HTTP answer).
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let path = path(&req);
    let method = req.method().clone();
    if path == "/wh/postmark" {
        return match method.as_str() {
            "POST" => postmark_webhook(app, req).await,
            _ => message(StatusCode::METHOD_NOT_ALLOWED, "use POST"),
        };
    }
    let tracking = path
        .strip_prefix("/t/o/")
        .map(|t| (false, t))
        .or_else(|| path.strip_prefix("/t/c/").map(|t| (true, t)));
    if let Some((is_click, token)) = tracking {
        return match method.as_str() {
            "GET" | "HEAD" => native(app, &req, is_click, token, method == "HEAD").await,
            _ => message(StatusCode::METHOD_NOT_ALLOWED, "use GET"),
        };
    }
    message(StatusCode::NOT_FOUND, "not found")
}

async fn postmark_webhook(app: &App, req: Request) -> Response<Body> {
    match auth::check(app, auth::presented_password(&req).as_deref()).await {
        Ok(()) => {}
        Err(auth::AuthError::Unavailable(e)) => {
            error!(error = ?e, "webhook password unavailable");
            return message(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable");
        }
        Err(e) => {
            warn!(reason = %e, "webhook refused");
            return message(StatusCode::UNAUTHORIZED, "missing or wrong password");
        }
    }
    let body: &[u8] = req.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return message(StatusCode::PAYLOAD_TOO_LARGE, "body over 1 MiB");
    }
    let webhook = match postmark::WebhookEvent::from_slice(body) {
        Ok(w) => w,
        Err(e) => {
            warn!(error = %e, "webhook body is not a JSON object");
            return message(StatusCode::BAD_REQUEST, "the body must be a JSON object");
        }
    };
    let trace_id = req
        .headers()
        .get("x-pm-webhook-trace-id")
        .and_then(|v| v.to_str().ok());
    // Only a click can name one of our own tracking links. A tracking key that cannot be read only means
    // Postmark's clicks on our links keep the wrapped URL.
    let signer = match webhook {
        postmark::WebhookEvent::Click(_) => app.signer().await.ok(),
        _ => None,
    };
    let event = mapping::to_event(&webhook, trace_id, body, signer.as_ref());
    let kind = event.kind.name();
    match app.table.record_event(event).await {
        Ok((Recorded::New, event)) => {
            info!(kind, dedup = %event.dedup_key, "event recorded");
            let status = if matches!(event.kind, EventKind::Unknown { .. }) {
                "ignored"
            } else {
                "accepted"
            };
            json_response(StatusCode::OK, json!({ "status": status }))
        }
        Ok((Recorded::Duplicate, event)) => {
            info!(kind, dedup = %event.dedup_key, "duplicate event");
            json_response(StatusCode::OK, json!({ "status": "duplicate" }))
        }
        Err(e) => {
            error!(kind, error = ?e, "event not recorded; asking Postmark to retry");
            message(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable")
        }
    }
}

fn pixel() -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "image/gif")
        .header(
            header::CACHE_CONTROL,
            "no-store, no-cache, must-revalidate, max-age=0",
        )
        .header(header::PRAGMA, "no-cache")
        .header(header::EXPIRES, "0")
        .body(Body::Binary(PIXEL_GIF.to_vec()))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

fn redirect(url: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, url)
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::Empty)
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

/// A native open or click. The person always gets the pixel or the redirect once the token is verified:
/// a store failure, or a store slower than the budget, loses the count (logged), never the person's click.
async fn native(
    app: &App,
    req: &Request,
    is_click: bool,
    token: &str,
    head: bool,
) -> Response<Body> {
    let signer = match app.signer().await {
        Ok(s) => s,
        Err(e) => {
            error!(error = ?e, "tracking key unavailable");
            return message(StatusCode::SERVICE_UNAVAILABLE, "temporarily unavailable");
        }
    };
    let target = match signer.verify(token) {
        Ok(t) if matches!(t, TrackingTarget::Click { .. }) == is_click => t,
        Ok(_) | Err(_) => return message(StatusCode::NOT_FOUND, "not found"),
    };
    let answer = match &target {
        TrackingTarget::Open { .. } => pixel(),
        TrackingTarget::Click { url, .. } => redirect(url),
    };
    // HEAD is what link checkers and prefetchers send: answered, not counted.
    if head {
        return answer;
    }
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let job = target.job().to_string();
    let (kind, link) = match &target {
        TrackingTarget::Open { .. } => (EventKind::Opened, None),
        TrackingTarget::Click { url, .. } => (EventKind::Clicked { url: url.clone() }, Some(url)),
    };
    let event = Event {
        automated: automated_reason(user_agent.as_deref(), is_click, None),
        dedup_key: domain::dedup::native_event_key(&uuid::Uuid::new_v4().simple().to_string()),
        recipient: None,
        message_id: None,
        at: Utc::now(),
        trace: MessageTrace {
            job_id: Some(job),
            ..MessageTrace::default()
        },
        stream: None,
        client: Some(ClientInfo {
            user_agent,
            ..ClientInfo::default()
        }),
        source: Source::Native,
        kind,
        detail: json!({ "link": link }),
    };
    // The person does not wait on a slow store: past the budget the count is given up, not the answer.
    let started = Instant::now();
    match tokio::time::timeout(app.native_store_budget, app.table.record_event(event)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => error!(error = ?e, "native tracking event not recorded"),
        Err(_) => error!(
            budget_ms = app.native_store_budget.as_millis() as u64,
            waited_ms = started.elapsed().as_millis() as u64,
            "native tracking event not recorded: the store did not answer within the budget"
        ),
    }
    answer
}
