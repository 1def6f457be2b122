//! Postmark's Webhooks API: `GET/POST /webhooks`, `GET/PUT/DELETE /webhooks/{id}` and
//! `POST /webhooks/{id}/verify`, per server and stream.
//!
//! As Postmark documents it (2026): creating or editing a webhook test-posts a sample of every
//! enabled trigger to its URL, with its Basic credentials and headers, and refuses (422 / 1364,
//! nothing saved) unless each answers 200; `Verify: false` skips that and saves the webhook
//! `unverified`, and an unverified webhook receives no events until `POST /webhooks/{id}/verify`
//! passes. `PUT` is a merge: absent fields keep their value, an empty `HttpHeaders` clears them.

// Handlers answer with a ready HTTP response as their error; its size is irrelevant per request.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{error, json_reply, management, parse_json, read_body};
use crate::config::{HttpAuth, Triggers, WebhookConfig};
use crate::http::ConnectionKiller;
use crate::state::{ApiWebhook, Server, Sim, lock};

type Reply = Result<Response, Response>;

/// Webhooks a stream may have ("Add up to 10 different URLs").
const MAX_PER_STREAM: usize = 10;
const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, Default, Deserialize)]
struct AuthBody {
    #[serde(rename = "Username", default)]
    username: Option<String>,
    #[serde(rename = "Password", default)]
    password: Option<String>,
}

#[derive(Debug, Deserialize)]
struct HeaderBody {
    #[serde(rename = "Name", default)]
    name: Option<String>,
    #[serde(rename = "Value", default)]
    value: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct TriggerBody {
    #[serde(rename = "Enabled", default)]
    enabled: Option<bool>,
    #[serde(rename = "PostFirstOpenOnly", default)]
    post_first_open_only: Option<bool>,
    #[serde(rename = "IncludeContent", default)]
    include_content: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
struct TriggersBody {
    #[serde(rename = "Open", default)]
    open: Option<TriggerBody>,
    #[serde(rename = "Click", default)]
    click: Option<TriggerBody>,
    #[serde(rename = "Delivery", default)]
    delivery: Option<TriggerBody>,
    #[serde(rename = "Bounce", default)]
    bounce: Option<TriggerBody>,
    #[serde(rename = "SpamComplaint", default)]
    spam_complaint: Option<TriggerBody>,
    #[serde(rename = "SubscriptionChange", default)]
    subscription_change: Option<TriggerBody>,
}

/// The body of `POST` and `PUT /webhooks[/{id}]`.
#[derive(Debug, Default, Deserialize)]
struct WebhookBody {
    #[serde(rename = "ID", default)]
    id: Option<Value>,
    #[serde(rename = "Url", default)]
    url: Option<String>,
    #[serde(rename = "MessageStream", default)]
    message_stream: Option<String>,
    #[serde(rename = "HttpAuth", default)]
    http_auth: Option<AuthBody>,
    #[serde(rename = "HttpHeaders", default)]
    http_headers: Option<Vec<HeaderBody>>,
    #[serde(rename = "Triggers", default)]
    triggers: Option<TriggersBody>,
    #[serde(rename = "Verify", default)]
    verify: Option<bool>,
    #[serde(rename = "Status", default)]
    status: Option<Value>,
}

fn not_found() -> Response {
    error(
        422,
        1352,
        "The webhook for the provided 'ID' was not found.",
    )
}

/// Triggers of a new webhook: all off until the body turns them on.
fn no_triggers() -> Triggers {
    Triggers {
        delivery: false,
        bounce: false,
        bounce_include_content: false,
        spam_complaint: false,
        spam_complaint_include_content: false,
        open: false,
        post_first_open_only: false,
        click: false,
        subscription_change: false,
    }
}

fn merge_triggers(triggers: &mut Triggers, body: TriggersBody) {
    let set = |flag: &mut bool, value: Option<bool>| {
        if let Some(value) = value {
            *flag = value;
        }
    };
    if let Some(open) = body.open {
        set(&mut triggers.open, open.enabled);
        set(
            &mut triggers.post_first_open_only,
            open.post_first_open_only,
        );
    }
    if let Some(click) = body.click {
        set(&mut triggers.click, click.enabled);
    }
    if let Some(delivery) = body.delivery {
        set(&mut triggers.delivery, delivery.enabled);
    }
    if let Some(bounce) = body.bounce {
        set(&mut triggers.bounce, bounce.enabled);
        set(&mut triggers.bounce_include_content, bounce.include_content);
    }
    if let Some(complaint) = body.spam_complaint {
        set(&mut triggers.spam_complaint, complaint.enabled);
        set(
            &mut triggers.spam_complaint_include_content,
            complaint.include_content,
        );
    }
    if let Some(change) = body.subscription_change {
        set(&mut triggers.subscription_change, change.enabled);
    }
}

fn valid_url(url: &str) -> bool {
    url::Url::parse(url.trim())
        .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

/// Applies a create or edit body to `config` (Postmark's checks first).
fn apply(config: &mut WebhookConfig, body: WebhookBody) -> Result<(), Response> {
    if let Some(url) = body.url {
        if !valid_url(&url) {
            return Err(error(422, 1354, "The request must contain a valid 'Url'."));
        }
        config.url = url.trim().to_owned();
    }
    if let Some(auth) = body.http_auth {
        let username = auth.username.unwrap_or_default();
        let password = auth.password.unwrap_or_default();
        config.http_auth = (!username.is_empty() || !password.is_empty())
            .then_some(HttpAuth { username, password });
    }
    if let Some(headers) = body.http_headers {
        let mut map = BTreeMap::new();
        for header in headers {
            let name = header.name.unwrap_or_default();
            if !valid_header_name(&name) {
                return Err(error(
                    422,
                    1358,
                    "One or more of the provided 'HttpHeaders' have an invalid 'Name'.",
                ));
            }
            map.insert(name, header.value.unwrap_or_default());
        }
        config.http_headers = map;
    }
    if let Some(triggers) = body.triggers {
        merge_triggers(&mut config.triggers, triggers);
    }
    Ok(())
}

/// The webhook as Postmark shows it (`HttpAuth.Password` in clear text, as Postmark does).
fn shape(webhook: &ApiWebhook) -> Value {
    let config = &webhook.config;
    let t = &config.triggers;
    json!({
        "ID": webhook.id,
        "Url": config.url,
        "MessageStream": config.message_stream,
        "HttpAuth": config.http_auth.as_ref().map(|auth| json!({
            "Username": auth.username,
            "Password": auth.password,
        })),
        "HttpHeaders": config.http_headers.iter()
            .map(|(name, value)| json!({ "Name": name, "Value": value }))
            .collect::<Vec<_>>(),
        "Triggers": {
            "Open": { "Enabled": t.open, "PostFirstOpenOnly": t.post_first_open_only },
            "Click": { "Enabled": t.click },
            "Delivery": { "Enabled": t.delivery },
            "Bounce": { "Enabled": t.bounce, "IncludeContent": t.bounce_include_content },
            "SpamComplaint": {
                "Enabled": t.spam_complaint,
                "IncludeContent": t.spam_complaint_include_content,
            },
            "SubscriptionChange": { "Enabled": t.subscription_change },
        },
        "Status": if webhook.verified { "verified" } else { "unverified" },
    })
}

const ZERO_ID: &str = "00000000-0000-0000-0000-000000000000";

/// Postmark's test payloads: one per enabled trigger, shaped like the docs' examples.
fn samples(server: &Server, config: &WebhookConfig) -> Vec<(&'static str, Value)> {
    let stream = config.message_stream.clone().unwrap_or_default();
    let at = crate::pipeline::postmark_time(&crate::state::now());
    let t = &config.triggers;
    let bounce = |record_type: &str, kind: &str, code: i64, name: &str| {
        json!({
            "RecordType": record_type, "ID": 42, "Type": kind, "TypeCode": code, "Name": name,
            "Tag": "Test", "MessageID": ZERO_ID, "Metadata": {}, "ServerID": server.id,
            "MessageStream": stream, "Description": "Test description",
            "Details": "Test bounce details", "Email": "john@example.com",
            "From": "sender@example.com", "BouncedAt": at, "DumpAvailable": true,
            "Inactive": true, "CanActivate": record_type == "Bounce", "Subject": "Test subject",
        })
    };
    let mut samples = Vec::new();
    if t.delivery {
        samples.push((
            "Delivery",
            json!({
                "RecordType": "Delivery", "ServerID": server.id, "MessageStream": stream,
                "MessageID": ZERO_ID, "Recipient": "john@example.com", "Tag": "welcome-email",
                "DeliveredAt": at, "Details": "Test delivery webhook details", "Metadata": {},
            }),
        ));
    }
    if t.bounce {
        samples.push(("Bounce", bounce("Bounce", "HardBounce", 1, "Hard bounce")));
    }
    if t.spam_complaint {
        samples.push((
            "SpamComplaint",
            bounce("SpamComplaint", "SpamComplaint", 100_001, "Spam complaint"),
        ));
    }
    if t.open {
        samples.push((
            "Open",
            json!({
                "RecordType": "Open", "MessageStream": stream, "Metadata": {}, "FirstOpen": true,
                "Recipient": "john@example.com", "MessageID": ZERO_ID, "ReceivedAt": at,
                "Platform": "WebMail", "ReadSeconds": 5, "Tag": "welcome-email",
                "UserAgent": "Mozilla/5.0", "OS": {}, "Client": {}, "Geo": {},
            }),
        ));
    }
    if t.click {
        samples.push((
            "Click",
            json!({
                "RecordType": "Click", "MessageStream": stream, "Metadata": {},
                "Recipient": "john@example.com", "MessageID": ZERO_ID, "ReceivedAt": at,
                "Platform": "Desktop", "ClickLocation": "HTML",
                "OriginalLink": "https://example.com", "Tag": "welcome-email",
                "UserAgent": "Mozilla/5.0", "OS": {}, "Client": {}, "Geo": {},
            }),
        ));
    }
    if t.subscription_change {
        samples.push((
            "SubscriptionChange",
            json!({
                "RecordType": "SubscriptionChange", "MessageID": ZERO_ID, "ServerID": server.id,
                "MessageStream": stream, "ChangedAt": at, "Recipient": "john@example.com",
                "Origin": "Recipient", "SuppressSending": true,
                "SuppressionReason": "HardBounce", "Tag": "welcome-email", "Metadata": {},
            }),
        ));
    }
    samples
}

/// Test-posts every enabled trigger; the results (`TriggerType, Success, StatusCode, Message`).
async fn verify(sim: &Sim, server: &Server, config: &WebhookConfig) -> Vec<Value> {
    let mut results = Vec::new();
    for (trigger, body) in samples(server, config) {
        let (success, status, message) = match sim.outbox.test_post(config, &body).await {
            Ok(200) => (true, Some(200), "OK".to_owned()),
            Ok(status) => (
                false,
                Some(status),
                format!("The URL answered HTTP {status}."),
            ),
            Err(problem) => (false, None, problem),
        };
        results.push(json!({
            "TriggerType": trigger, "Success": success, "StatusCode": status, "Message": message,
        }));
    }
    results
}

fn all_passed(results: &[Value]) -> bool {
    results.iter().all(|result| result["Success"] == true)
}

fn verification_failed(results: &[Value]) -> Response {
    let failed: Vec<&str> = results
        .iter()
        .filter(|result| result["Success"] != true)
        .filter_map(|result| result["TriggerType"].as_str())
        .collect();
    json_reply(
        422,
        &json!({
            "ErrorCode": 1364,
            "Message": format!(
                "Webhook verification failed: the URL did not answer 200 to the test post of {}. Nothing was saved; fix the endpoint or send 'Verify': false.",
                failed.join(", ")
            ),
            "Results": results,
        }),
    )
}

#[derive(Debug, Default)]
struct ListQuery {
    stream: Option<String>,
}

fn list_query(query: Option<&str>) -> ListQuery {
    let mut list = ListQuery::default();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if name.eq_ignore_ascii_case("MessageStream") {
            list.stream = Some(value.into_owned());
        }
    }
    list
}

pub(crate) async fn list(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Reply {
    let (server, _) =
        management(&sim, "GET /webhooks", "/webhooks", &headers, false, &killer).await?;
    let query = list_query(query.as_deref());
    if let Some(stream) = &query.stream
        && server.stream(stream).is_none()
    {
        return Err(crate::api::stream_not_found());
    }
    let webhooks: Vec<Value> = lock(&sim.api_webhooks)
        .values()
        .filter(|webhook| {
            webhook.server_id == server.id
                && query
                    .stream
                    .as_deref()
                    .is_none_or(|stream| webhook.config.message_stream.as_deref() == Some(stream))
        })
        .map(shape)
        .collect();
    Ok(json_reply(200, &json!({ "Webhooks": webhooks })))
}

fn own_webhook(sim: &Sim, server: &Server, id: &str) -> Result<ApiWebhook, Response> {
    let id: i64 = id.trim().parse().map_err(|_| not_found())?;
    lock(&sim.api_webhooks)
        .get(&id)
        .filter(|webhook| webhook.server_id == server.id)
        .cloned()
        .ok_or_else(not_found)
}

pub(crate) async fn get_one(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Reply {
    let (server, _) = management(
        &sim,
        "GET /webhooks/{id}",
        &format!("/webhooks/{id}"),
        &headers,
        false,
        &killer,
    )
    .await?;
    Ok(json_reply(200, &shape(&own_webhook(&sim, &server, &id)?)))
}

async fn read_webhook_body(body: Body) -> Result<WebhookBody, Response> {
    let bytes = read_body(body, MAX_BODY).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(error(422, 1355, "The request body is required."));
    }
    parse_json(&bytes)
}

pub(crate) async fn create(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let (server, _) =
        management(&sim, "POST /webhooks", "/webhooks", &headers, true, &killer).await?;
    let body = read_webhook_body(body).await?;
    if body.id.is_some() {
        return Err(error(
            422,
            1356,
            "The 'ID' must not be provided when creating a webhook.",
        ));
    }
    if body.status.is_some() {
        return Err(error(
            422,
            1363,
            "The 'Status' cannot be set when creating or updating a webhook.",
        ));
    }
    if body.url.as_deref().is_none_or(|url| url.trim().is_empty()) {
        return Err(error(422, 1354, "The request must contain a valid 'Url'."));
    }
    let stream = body
        .message_stream
        .clone()
        .unwrap_or_else(|| crate::config::DEFAULT_TRANSACTIONAL_STREAM.to_owned());
    if server.stream(&stream).is_none() {
        return Err(crate::api::stream_not_found());
    }
    let verify_first = body.verify.unwrap_or(true);
    let mut config = WebhookConfig {
        triggers: no_triggers(),
        ..WebhookConfig::new("")
    }
    .message_stream(stream.clone());
    apply(&mut config, body)?;
    let on_stream = lock(&sim.api_webhooks)
        .values()
        .filter(|w| w.server_id == server.id && w.config.message_stream.as_deref() == Some(&stream))
        .count();
    if on_stream >= MAX_PER_STREAM {
        return Err(error(
            422,
            1359,
            "The maximum number of webhooks for this message stream has been reached.",
        ));
    }
    if verify_first {
        let results = verify(&sim, &server, &config).await;
        if !all_passed(&results) {
            return Err(verification_failed(&results));
        }
    }
    let webhook = ApiWebhook {
        id: sim.webhook_id(),
        server_id: server.id,
        config,
        verified: verify_first,
    };
    lock(&sim.api_webhooks).insert(webhook.id, webhook.clone());
    Ok(json_reply(200, &shape(&webhook)))
}

pub(crate) async fn edit(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let (server, _) = management(
        &sim,
        "PUT /webhooks/{id}",
        &format!("/webhooks/{id}"),
        &headers,
        true,
        &killer,
    )
    .await?;
    let existing = own_webhook(&sim, &server, &id)?;
    let body = read_webhook_body(body).await?;
    let same_id = body.id.as_ref().is_none_or(|given| {
        given.as_i64() == Some(existing.id) || given.as_str() == Some(&existing.id.to_string())
    });
    let same_stream = body
        .message_stream
        .as_deref()
        .is_none_or(|stream| existing.config.message_stream.as_deref() == Some(stream));
    if !same_id || !same_stream {
        return Err(error(
            422,
            1357,
            "The 'ID' and 'MessageStream' of a webhook cannot be changed.",
        ));
    }
    if body.status.is_some() {
        return Err(error(
            422,
            1363,
            "The 'Status' cannot be set when creating or updating a webhook.",
        ));
    }
    let verify_first = body.verify.unwrap_or(true);
    let mut config = existing.config.clone();
    apply(&mut config, body)?;
    if verify_first {
        let results = verify(&sim, &server, &config).await;
        if !all_passed(&results) {
            return Err(verification_failed(&results));
        }
    }
    let webhook = ApiWebhook {
        config,
        verified: verify_first,
        ..existing
    };
    let mut webhooks = lock(&sim.api_webhooks);
    if !webhooks.contains_key(&webhook.id) {
        return Err(not_found());
    }
    webhooks.insert(webhook.id, webhook.clone());
    drop(webhooks);
    Ok(json_reply(200, &shape(&webhook)))
}

pub(crate) async fn delete(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Reply {
    let (server, _) = management(
        &sim,
        "DELETE /webhooks/{id}",
        &format!("/webhooks/{id}"),
        &headers,
        false,
        &killer,
    )
    .await?;
    let webhook = own_webhook(&sim, &server, &id)?;
    lock(&sim.api_webhooks).remove(&webhook.id);
    Ok(json_reply(
        200,
        &json!({ "ErrorCode": 0, "Message": format!("Webhook {} removed.", webhook.id) }),
    ))
}

/// `POST /webhooks/{id}/verify`: HTTP 200 whatever the result; a pass marks the webhook verified.
pub(crate) async fn verify_now(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Reply {
    let (server, _) = management(
        &sim,
        "POST /webhooks/{id}/verify",
        &format!("/webhooks/{id}/verify"),
        &headers,
        false,
        &killer,
    )
    .await?;
    let webhook = own_webhook(&sim, &server, &id)?;
    let results = verify(&sim, &server, &webhook.config).await;
    let passed = results
        .iter()
        .filter(|result| result["Success"] == true)
        .count();
    let success = passed == results.len();
    if success && let Some(stored) = lock(&sim.api_webhooks).get_mut(&webhook.id) {
        stored.verified = true;
    }
    Ok(json_reply(
        200,
        &json!({
            "Id": webhook.id,
            "Url": webhook.config.url,
            "Success": success,
            "Results": results,
            "Message": format!("{passed}/{} triggers verified successfully", results.len()),
        }),
    ))
}

/// Every webhook of the Webhooks API, for `/_sim/api_webhooks`.
pub(crate) fn all(sim: &Sim) -> Vec<Value> {
    lock(&sim.api_webhooks)
        .values()
        .map(|webhook| {
            let mut item = shape(webhook);
            item["ServerID"] = json!(webhook.server_id);
            item
        })
        .collect()
}
