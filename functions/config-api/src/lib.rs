//! The config API: what an admin (or the platform's backend) uses to set up and watch the Postmark
//! integration. JSON over HTTP under `/api`, behind API Gateway (HTTP API, payload 2.0), described by
//! `openapi.yaml` beside this crate.
//!
//! Every route but `GET /api/health` needs the admin key (`Authorization: Bearer <key>`). Credentials
//! are write-only: they go to Secrets Manager and answers show only whether one is set and its last four
//! characters. The one exception is the webhook password, which the webhook route exists to show.

pub mod auth;
pub mod config;
pub mod http;
pub mod input;
pub mod local;
pub mod managed_webhooks;
pub mod readback;
pub mod router;
pub mod servers;
pub mod suppressions;
pub mod test_server;
pub mod webhook;

use std::time::Instant;

use ::http::StatusCode;
use aws_config::SdkConfig;
use lambda_http::{Body, Request, RequestExt, Response};
use store::servers::ServerSecrets;
use store::{SecretCache, Table};

pub use crate::config::{Config, ConfigError};
use crate::http::{ApiError, ApiResult};
use crate::router::{HEALTH_PATH, Route};

/// Everything a request needs, built once per cold start.
#[derive(Clone, Debug)]
pub struct App {
    pub config: Config,
    pub table: Table,
    /// The admin key and the webhook password, cached.
    pub secrets: SecretCache,
    pub server_secrets: ServerSecrets,
}

impl App {
    /// Reads the configuration from the environment and builds the clients.
    pub fn from_env(sdk: &SdkConfig) -> Result<Self, ConfigError> {
        Ok(Self::new(Config::from_env()?, sdk))
    }

    /// DynamoDB and Secrets Manager with the default [`store::aws::StorePolicy`].
    pub fn new(config: Config, sdk: &SdkConfig) -> Self {
        let policy = store::aws::StorePolicy::default();
        let dynamodb = store::aws::dynamodb_client(sdk, &policy);
        let secretsmanager = store::aws::secrets_client(sdk, &policy);
        Self::with_clients(config, dynamodb, secretsmanager)
    }

    /// With clients built by the caller (tests attach request counters to theirs).
    pub fn with_clients(
        config: Config,
        dynamodb: aws_sdk_dynamodb::Client,
        secretsmanager: aws_sdk_secretsmanager::Client,
    ) -> Self {
        Self {
            table: Table::new(dynamodb, config.table_name.clone()),
            secrets: SecretCache::new(secretsmanager.clone(), config::SECRET_TTL),
            server_secrets: ServerSecrets::new(secretsmanager, config.secrets_prefix.clone()),
            config,
        }
    }
}

/// The request's path without an API Gateway stage prefix.
fn path_of(req: &Request) -> &str {
    let raw = req.raw_http_path();
    if raw.is_empty() {
        req.uri().path()
    } else {
        raw
    }
}

/// Handles one request. Never fails: every problem is an answer.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = path_of(&req).to_owned();
    let (route_name, response) = match dispatch(app, &req, &path).await {
        Ok((name, response)) => (name, response),
        Err((name, error)) => (name, error.into_response()),
    };
    let status = response.status();
    let elapsed_ms = started.elapsed().as_millis() as u64;
    if status.is_server_error() {
        tracing::warn!(%method, route = route_name, status = status.as_u16(), elapsed_ms, "request");
    } else {
        tracing::info!(%method, route = route_name, status = status.as_u16(), elapsed_ms, "request");
    }
    response
}

type Dispatched = Result<(&'static str, Response<Body>), (&'static str, ApiError)>;

async fn dispatch(app: &App, req: &Request, path: &str) -> Dispatched {
    if path != HEALTH_PATH {
        auth::authorize(app, req.headers())
            .await
            .map_err(|e| ("unauthorized", e))?;
    }
    let route = router::resolve(req.method(), path).map_err(|e| ("unrouted", e))?;
    input::body_bytes(req).map_err(|e| (route.name(), e))?;
    let name = route.name();
    run(app, req, route)
        .await
        .map(|r| (name, r))
        .map_err(|e| (name, e))
}

async fn run(app: &App, req: &Request, route: Route) -> ApiResult {
    match route {
        Route::Health => Ok(crate::http::json(
            StatusCode::OK,
            &serde_json::json!({"status": "ok"}),
        )),
        Route::ListServers => servers::list(app).await,
        Route::CreateServer => servers::create(app, req).await,
        Route::GetServer(id) => servers::get(app, &id).await,
        Route::UpdateServer(id) => servers::update(app, req, &id).await,
        Route::DeleteServer(id) => servers::delete(app, req, &id).await,
        Route::TestServer(id) => test_server::test(app, &id).await,
        Route::GetWebhook => webhook::get(app).await,
        Route::ListRecoveries => readback::recoveries(app, req).await,
        Route::RefreshWebhookPassword => webhook::refresh(app).await,
        Route::SyncWebhooks => webhook::sync(app).await,
        Route::ListSuppressions => suppressions::list(app, req).await,
        Route::AddSuppression => suppressions::add(app, req).await,
        Route::RemoveSuppression(email) => suppressions::remove(app, &email).await,
        Route::GetSubscriber(email) => readback::subscriber(app, &email).await,
        Route::SubscriberActivity(email) => readback::activity(app, req, &email).await,
        Route::BroadcastStats(id) => {
            readback::campaign(app, domain::trace::CampaignKind::Broadcast, &id).await
        }
        Route::SequenceStats(id) => {
            readback::campaign(app, domain::trace::CampaignKind::Sequence, &id).await
        }
        Route::ListJobs => readback::jobs(app, req).await,
        Route::GetJob(id) => readback::job(app, &id).await,
    }
}
