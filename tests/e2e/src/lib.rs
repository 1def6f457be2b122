//! The local stack in one process, for end-to-end tests: a table and secrets in the AWS emulator, the
//! Postmark simulator, the sender's handler, and the webhook function's handler behind a small HTTP
//! server that the simulator posts its webhooks to (each request turned into the API Gateway request the
//! function gets in Lambda), and the stream function reading the table's stream through the local event
//! source mapping.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use axum::body::Body as AxumBody;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use domain::servers::{EmailServer, ServerId};
use lambda_http::RequestExt;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use postmark_sim::{ServerConfig, SimOptions, Simulator, WebhookConfig};
use secrecy::SecretString;
use store::servers::{ServerCredentials, ServerSecrets};
use testkit::{TestTable, unique};
use tokio::task::JoinHandle;

pub const TOKEN: &str = "e2e-server-token-5f0a";
pub const WEBHOOK_PASSWORD: &str = "e2e-webhook-password";
pub const TRACKING_KEY: &str = "e2e-tracking-key";

/// Everything one end-to-end test runs against. Dropping it stops the servers and deletes the table.
pub struct Stack {
    pub t: TestTable,
    pub sim: Simulator,
    pub sender: sender::App,
    pub webhook: Arc<webhook::App>,
    pub webhook_addr: SocketAddr,
    /// The recovery function, asking the simulator (no settle time: every event is old enough).
    pub recover: recover::App,
    /// The stream function on the table's stream (the counters follow from it).
    pub stream: local_stack::stream_poller::StreamPoller,
    receiver: JoinHandle<()>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.receiver.abort();
    }
}

/// Hands a request to the webhook function as Lambda would: the body, the headers and the query
/// string parameters.
async fn forward(State(app): State<Arc<webhook::App>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 4 * webhook::MAX_BODY_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let mut query: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()) {
        query
            .entry(k.into_owned())
            .or_default()
            .push(v.into_owned());
    }
    let mut builder = lambda_http::http::Request::builder()
        .method(parts.method)
        .uri(parts.uri);
    for (name, value) in &parts.headers {
        builder = builder.header(name, value);
    }
    let body = match String::from_utf8(bytes.to_vec()) {
        Ok(text) => lambda_http::Body::Text(text),
        Err(e) => lambda_http::Body::Binary(e.into_bytes()),
    };
    let Ok(request) = builder.body(body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let request = request.with_query_string_parameters(QueryMap::from(query));
    let answer = webhook::handle(&app, request).await;
    let (parts, body) = answer.into_parts();
    let bytes: &[u8] = body.as_ref();
    Response::from_parts(parts, AxumBody::from(bytes.to_vec()))
}

/// A server carrying every type on Postmark's default streams, through the API.
pub fn api_server(id: &str) -> EmailServer {
    EmailServer::api(
        ServerId::parse(id).expect("a valid id"),
        format!("Postmark {id}"),
        Utc::now(),
    )
}

impl Stack {
    /// Starts the stack with one email server (`main`, API) whose Postmark server posts every webhook to
    /// the webhook function.
    pub async fn start() -> Self {
        let t = TestTable::new().await;
        let prefix = unique("test/e2e");
        let password_secret = format!("{prefix}/webhook-password");
        let tracking_secret = format!("{prefix}/tracking-key");
        for (name, value) in [
            (&password_secret, WEBHOOK_PASSWORD),
            (&tracking_secret, TRACKING_KEY),
        ] {
            t.aws
                .secrets
                .create_secret()
                .name(name)
                .secret_string(value)
                .send()
                .await
                .expect("a secret in the emulator");
        }

        let webhook = Arc::new(webhook::App::with_clients(
            t.aws.dynamodb.clone(),
            t.aws.secrets.clone(),
            webhook::Config {
                table_name: t.table.name().to_owned(),
                webhook_password_secret: password_secret,
                tracking_key_secret: tracking_secret.clone(),
                password_grace: chrono::Duration::hours(24),
                secrets_ttl: Duration::from_secs(300),
                password_recheck: Duration::from_secs(5),
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let webhook_addr = listener.local_addr().expect("its address");
        let router = axum::Router::new()
            .fallback(forward)
            .with_state(webhook.clone());
        let receiver = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });

        let sim = Simulator::start(SimOptions::for_tests())
            .await
            .expect("the simulator starts");
        sim.add_server(
            ServerConfig::new(TOKEN)
                .name("E2E")
                .sender_domain("example.com")
                .webhook(WebhookConfig::new(format!(
                    "http://{webhook_addr}/wh/postmark?password={WEBHOOK_PASSWORD}"
                ))),
        );

        let credentials = ServerCredentials {
            api_token: Some(SecretString::from(TOKEN)),
            smtp_username: None,
            smtp_password: None,
        };
        let mut server = api_server("main");
        let version = ServerSecrets::new(t.aws.secrets.clone(), prefix.clone())
            .create(&server.id, &credentials)
            .await
            .expect("the server's secret");
        server.credentials = credentials.hints(version);
        assert!(
            t.table
                .create_server(&server)
                .await
                .expect("the server item")
        );

        let sender = sender::App::with_clients(
            t.aws.dynamodb.clone(),
            t.aws.secrets.clone(),
            t.aws.sqs.clone(),
            sender::Config {
                table_name: t.table.name().to_owned(),
                secrets_prefix: prefix.clone(),
                tracking_key_secret: tracking_secret.clone(),
                tracking_base_url: format!("http://{webhook_addr}"),
                postmark_api_url: sim.api_url().parse().expect("the simulator's URL"),
                smtp_extra_ca_pem: Some(sim.ca_pem().to_owned()),
                claim_lease: Duration::from_secs(900),
                secrets_ttl: Duration::from_secs(300),
                servers_ttl: Duration::from_secs(30),
                postmark_timeout: Duration::from_secs(10),
                smtp_connections: 2,
                search_settle: Duration::from_secs(120),
                deadline_margin: Duration::from_secs(10),
                backoff: sender::Backoff::default(),
                breaker: sender::BreakerPolicy::default(),
                queue_url: None,
            },
        )
        .expect("the sender's app");

        let recover = recover::App::with_clients(
            t.aws.dynamodb.clone(),
            t.aws.secrets.clone(),
            recover::Config {
                table_name: t.table.name().to_owned(),
                secrets_prefix: prefix.clone(),
                tracking_key_secret: tracking_secret.clone(),
                postmark_api_url: sim.api_url().parse().expect("the simulator's URL"),
                postmark_timeout: Duration::from_secs(10),
                secrets_ttl: Duration::from_secs(300),
                first_lookback: chrono::Duration::hours(1),
                overlap: chrono::Duration::minutes(15),
                settle: chrono::Duration::zero(),
                retention_days: 45,
                max_window: chrono::Duration::hours(6),
            },
        );

        let stream = local_stack::stream_poller::in_process(
            &t.aws.config,
            t.aws.dynamodb.clone(),
            t.table.name(),
            1000,
            Duration::ZERO,
        )
        .await
        .expect("the table's stream");

        Self {
            t,
            sim,
            sender,
            webhook,
            webhook_addr,
            recover,
            stream,
            receiver,
        }
    }

    /// Runs the sender on SQS records `(message id, body)`; answers the ids to deliver again.
    pub async fn send(&self, records: &[(&str, String)]) -> SqsBatchResponse {
        let mut event = SqsEvent::default();
        event.records = records
            .iter()
            .map(|(id, body)| {
                let mut m = SqsMessage::default();
                m.message_id = Some((*id).to_owned());
                m.body = Some(body.clone());
                m.event_source = Some("aws:sqs".into());
                m
            })
            .collect();
        sender::handle(&self.sender, event).await
    }

    /// Waits until the simulator has posted every webhook (and the webhook function answered), then
    /// until the stream function has read everything written so far.
    pub async fn settle(&self) {
        assert!(
            self.sim.settle(Duration::from_secs(30)).await,
            "the simulator's webhooks did not settle"
        );
        self.stream.drain().await.expect("the table's stream");
    }
}
