//! The control and inspection API under `/_sim/` (the simulator's own JSON, snake_case).

// Handlers answer with a ready HTTP response as their error; its size is irrelevant per request.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::{json_reply, suppressed_addresses};
use crate::config::{ServerConfig, WebhookLoss};
use crate::faults::Faults;
use crate::pipeline::{ClickRequest, EngagementError, OpenRequest};
use crate::state::{Sim, StoredMessage, Via, lock};
use crate::webhooks::{DeliveryState, WebhookDelivery};
use crate::{Counters, ServerSummary};

/// The control routes; `ca_pem` is the SMTP listener's CA certificate.
pub(crate) fn routes(ca_pem: Arc<str>) -> axum::Router<Arc<Sim>> {
    Router::new()
        .route(
            "/_sim/health",
            get(|| async { Json(json!({ "ok": true })) }),
        )
        .route("/_sim/servers", get(list_servers).post(configure_server))
        .route("/_sim/messages", get(list_messages))
        .route("/_sim/messages/{id}", get(get_message))
        .route("/_sim/webhooks", get(list_webhooks))
        .route("/_sim/opens", post(open))
        .route("/_sim/clicks", post(click))
        .route(
            "/_sim/faults",
            get(get_faults).put(set_faults).delete(clear_faults),
        )
        .route(
            "/_sim/search_delay",
            get(get_search_delay).put(set_search_delay),
        )
        .route(
            "/_sim/webhook_loss",
            get(get_webhook_loss)
                .put(set_webhook_loss)
                .delete(clear_webhook_loss),
        )
        .route("/_sim/api_webhooks", get(list_api_webhooks))
        .route("/_sim/api_webhooks/{id}", put(set_api_webhook_status))
        .route("/_sim/reset", post(reset))
        .route("/_sim/settle", post(settle))
        .route("/_sim/counters", get(counters))
        .route("/_sim/suppressions/{server_id}/{stream}", get(suppressions))
        .route(
            "/_sim/ca.pem",
            get(move || {
                let pem = ca_pem.clone();
                async move { pem.to_string() }
            }),
        )
}

fn bad_request(message: impl std::fmt::Display) -> Response {
    json_reply(400, &json!({ "error": message.to_string() }))
}

fn body<T>(payload: Result<Json<T>, JsonRejection>) -> Result<T, Response> {
    payload
        .map(|Json(value)| value)
        .map_err(|rejection| bad_request(rejection.body_text()))
}

async fn list_servers(State(sim): State<Arc<Sim>>) -> Response {
    let servers: Vec<ServerSummary> = sim
        .registry()
        .servers
        .iter()
        .map(|server| ServerSummary::of(server))
        .collect();
    json_reply(200, &servers)
}

async fn configure_server(
    State(sim): State<Arc<Sim>>,
    payload: Result<Json<ServerConfig>, JsonRejection>,
) -> Result<Response, Response> {
    let config = body(payload)?;
    let server = sim.configure_server(config);
    Ok(json_reply(201, &ServerSummary::of(&server)))
}

/// Filters of `GET /_sim/messages`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MessageFilter {
    server_id: Option<u64>,
    stream: Option<String>,
    recipient: Option<String>,
    tag: Option<String>,
    via: Option<Via>,
}

pub(crate) fn filtered_messages(sim: &Sim, filter: &MessageFilterRef<'_>) -> Vec<StoredMessage> {
    lock(&sim.messages)
        .iter()
        .filter(|message| {
            filter.server_id.is_none_or(|id| message.server_id == id)
                && filter
                    .stream
                    .is_none_or(|stream| message.message_stream == stream)
                && filter
                    .tag
                    .is_none_or(|tag| message.tag.as_deref() == Some(tag))
                && filter.via.is_none_or(|via| message.via == via)
                && filter.recipient.is_none_or(|recipient| {
                    message
                        .recipients
                        .iter()
                        .any(|known| known.eq_ignore_ascii_case(recipient))
                })
        })
        .map(|message| StoredMessage::clone(message))
        .collect()
}

/// Borrowed message filters, shared by the HTTP route and the library.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct MessageFilterRef<'a> {
    pub server_id: Option<u64>,
    pub stream: Option<&'a str>,
    pub recipient: Option<&'a str>,
    pub tag: Option<&'a str>,
    pub via: Option<Via>,
}

async fn list_messages(
    State(sim): State<Arc<Sim>>,
    Query(filter): Query<MessageFilter>,
) -> Response {
    let filter = MessageFilterRef {
        server_id: filter.server_id,
        stream: filter.stream.as_deref(),
        recipient: filter.recipient.as_deref(),
        tag: filter.tag.as_deref(),
        via: filter.via,
    };
    json_reply(200, &filtered_messages(&sim, &filter))
}

async fn get_message(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    match lock(&sim.messages).get(&id) {
        Some(message) => json_reply(200, &*message),
        None => json_reply(404, &json!({ "error": "no message with this MessageID" })),
    }
}

/// Filters of `GET /_sim/webhooks`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WebhookFilter {
    record_type: Option<String>,
    message_id: Option<String>,
    recipient: Option<String>,
    state: Option<DeliveryState>,
}

async fn list_webhooks(
    State(sim): State<Arc<Sim>>,
    Query(filter): Query<WebhookFilter>,
) -> Response {
    let deliveries: Vec<WebhookDelivery> = sim
        .outbox
        .deliveries()
        .into_iter()
        .filter(|delivery| {
            filter
                .record_type
                .as_deref()
                .is_none_or(|kind| delivery.record_type.eq_ignore_ascii_case(kind))
                && filter
                    .message_id
                    .as_deref()
                    .is_none_or(|id| delivery.message_id.as_deref() == Some(id))
                && filter.recipient.as_deref().is_none_or(|recipient| {
                    delivery
                        .recipient
                        .as_deref()
                        .is_some_and(|known| known.eq_ignore_ascii_case(recipient))
                })
                && filter.state.is_none_or(|state| delivery.state == state)
        })
        .collect();
    json_reply(200, &deliveries)
}

fn engagement_reply(result: Result<crate::EngagementOutcome, EngagementError>) -> Response {
    match result {
        Ok(outcome) => json_reply(200, &outcome),
        Err(EngagementError::UnknownMessage) => json_reply(
            404,
            &json!({ "error": EngagementError::UnknownMessage.to_string() }),
        ),
        Err(refused) => json_reply(409, &json!({ "error": refused.to_string() })),
    }
}

async fn open(
    State(sim): State<Arc<Sim>>,
    payload: Result<Json<OpenRequest>, JsonRejection>,
) -> Result<Response, Response> {
    Ok(engagement_reply(sim.open(body(payload)?)))
}

async fn click(
    State(sim): State<Arc<Sim>>,
    payload: Result<Json<ClickRequest>, JsonRejection>,
) -> Result<Response, Response> {
    let request = body(payload)?;
    if request.link.is_empty() {
        return Err(bad_request("a click needs a link"));
    }
    Ok(engagement_reply(sim.click(request)))
}

async fn get_faults(State(sim): State<Arc<Sim>>) -> Response {
    json_reply(200, lock(&sim.faults).plan())
}

async fn set_faults(
    State(sim): State<Arc<Sim>>,
    payload: Result<Json<Faults>, JsonRejection>,
) -> Result<Response, Response> {
    let faults = body(payload)?;
    if let Some(rule) = faults
        .rules
        .iter()
        .find(|rule| !(0.0..=1.0).contains(&rule.fraction))
    {
        return Err(bad_request(format!(
            "fraction {} is outside 0.0..=1.0",
            rule.fraction
        )));
    }
    if let Some(status) = faults.rules.iter().find_map(|rule| match rule.action {
        crate::faults::FaultAction::AcceptThenStatus { status }
            if !(500..=599).contains(&status) =>
        {
            Some(status)
        }
        _ => None,
    }) {
        return Err(bad_request(format!(
            "accept_then_status takes a gateway's 5xx status, not {status}"
        )));
    }
    sim.set_faults(faults.clone());
    Ok(json_reply(200, &faults))
}

async fn clear_faults(State(sim): State<Arc<Sim>>) -> Response {
    sim.set_faults(Faults::default());
    json_reply(200, &Faults::default())
}

/// The body of `GET`/`PUT /_sim/search_delay`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct SearchDelay {
    ms: u64,
}

async fn get_search_delay(State(sim): State<Arc<Sim>>) -> Response {
    let ms = u64::try_from(sim.search_delay().as_millis()).unwrap_or(u64::MAX);
    json_reply(200, &SearchDelay { ms })
}

async fn set_search_delay(
    State(sim): State<Arc<Sim>>,
    payload: Result<Json<SearchDelay>, JsonRejection>,
) -> Result<Response, Response> {
    let delay = body(payload)?;
    sim.set_search_delay(Duration::from_millis(delay.ms));
    Ok(json_reply(200, &delay))
}

/// The answer of `GET /_sim/webhook_loss`: the setting and the posts it lost.
#[derive(Debug, Serialize)]
struct LossReport {
    #[serde(flatten)]
    loss: WebhookLoss,
    lost: usize,
    events: Vec<WebhookDelivery>,
}

fn loss_report(sim: &Sim) -> Response {
    let events: Vec<WebhookDelivery> = sim
        .outbox
        .deliveries()
        .into_iter()
        .filter(|delivery| delivery.state == DeliveryState::Lost)
        .collect();
    json_reply(
        200,
        &LossReport {
            loss: sim.outbox.loss(),
            lost: events.len(),
            events,
        },
    )
}

async fn get_webhook_loss(State(sim): State<Arc<Sim>>) -> Response {
    loss_report(&sim)
}

async fn set_webhook_loss(
    State(sim): State<Arc<Sim>>,
    payload: Result<Json<WebhookLoss>, JsonRejection>,
) -> Result<Response, Response> {
    let loss = body(payload)?;
    if !(0.0..=1.0).contains(&loss.share) {
        return Err(bad_request(format!(
            "share {} is outside 0.0..=1.0",
            loss.share
        )));
    }
    sim.outbox.set_loss(loss);
    Ok(loss_report(&sim))
}

async fn clear_webhook_loss(State(sim): State<Arc<Sim>>) -> Response {
    sim.outbox.set_loss(WebhookLoss::default());
    loss_report(&sim)
}

async fn list_api_webhooks(State(sim): State<Arc<Sim>>) -> Response {
    json_reply(200, &crate::webhooks_api::all(&sim))
}

/// The body of `PUT /_sim/api_webhooks/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookStatus {
    /// `verified`, or `unverified` (paused: it receives no events).
    status: String,
}

async fn set_api_webhook_status(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<i64>,
    payload: Result<Json<WebhookStatus>, JsonRejection>,
) -> Result<Response, Response> {
    let status = body(payload)?;
    let verified = match status.status.as_str() {
        "verified" => true,
        "unverified" | "paused" => false,
        other => {
            return Err(bad_request(format!(
                "status {other:?} is neither verified nor unverified"
            )));
        }
    };
    let found = match lock(&sim.api_webhooks).get_mut(&id) {
        Some(webhook) => {
            webhook.verified = verified;
            true
        }
        None => false,
    };
    if !found {
        return Err(json_reply(
            404,
            &json!({ "error": "no webhook with this ID" }),
        ));
    }
    Ok(json_reply(
        200,
        &json!({ "id": id, "status": status.status }),
    ))
}

async fn reset(State(sim): State<Arc<Sim>>) -> Response {
    sim.reset();
    json_reply(200, &json!({ "reset": true }))
}

#[derive(Debug, Deserialize)]
struct SettleQuery {
    #[serde(default = "default_settle_ms")]
    timeout_ms: u64,
}

fn default_settle_ms() -> u64 {
    30_000
}

/// The answer of `POST /_sim/settle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settled {
    /// True when no webhook post is pending.
    pub settled: bool,
    /// Posts still pending.
    pub pending: usize,
}

async fn settle(State(sim): State<Arc<Sim>>, Query(query): Query<SettleQuery>) -> Response {
    let settled = sim
        .outbox
        .settle(Duration::from_millis(query.timeout_ms))
        .await;
    let answer = Settled {
        settled,
        pending: sim.outbox.pending(),
    };
    json_reply(if settled { 200 } else { 504 }, &answer)
}

pub(crate) fn counters_of(sim: &Sim) -> Counters {
    let mut counters = lock(&sim.counters).clone();
    counters.webhook_attempts = sim.outbox.attempts();
    counters
}

async fn counters(State(sim): State<Arc<Sim>>) -> Response {
    json_reply(200, &counters_of(&sim))
}

async fn suppressions(
    State(sim): State<Arc<Sim>>,
    Path((server_id, stream)): Path<(u64, String)>,
) -> Response {
    json_reply(200, &suppressed_addresses(&sim, server_id, &stream))
}
