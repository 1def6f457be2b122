//! Postmark's API: `/email`, `/email/batch`, `/server`, `/message-streams...`, suppressions and bounce
//! reactivation, with Postmark's checks and answers (the Messages API is in `messages_api`).

// Handlers answer with a ready HTTP response as their error; its size is irrelevant per request.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Router};
use postmark::{Email, MessageStreamInfo, MessageStreamType, SendReceipt, ServerToken};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::address;
use crate::config::StreamType;
use crate::faults::{AfterAccept, Outcome};
use crate::http::ConnectionKiller;
use crate::pipeline::{
    Incoming, MAX_BATCH_BYTES, MAX_BATCH_MESSAGES, MAX_MESSAGE_BYTES, Rejection, postmark_time,
};
use crate::state::{Server, Sim, Via, lock, now};

type Reply = Result<Response, Response>;

pub(crate) fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/email", post(send_email))
        .route("/email/batch", post(send_batch))
        .route("/message-streams", get(list_streams))
        .route("/message-streams/{stream}", get(get_stream))
        .route(
            "/message-streams/{stream}/suppressions/dump",
            get(dump_suppressions),
        )
        .route(
            "/message-streams/{stream}/suppressions",
            post(create_suppressions),
        )
        .route(
            "/message-streams/{stream}/suppressions/delete",
            post(delete_suppressions),
        )
        .route("/server", get(server_info).put(edit_server))
        .route("/bounces", get(crate::bounces_api::list))
        .route("/bounces/{id}", get(crate::bounces_api::get_one))
        .route("/bounces/{id}/dump", get(crate::bounces_api::dump))
        .route("/bounces/{id}/activate", put(activate_bounce))
        .route(
            "/webhooks",
            get(crate::webhooks_api::list).post(crate::webhooks_api::create),
        )
        .route(
            "/webhooks/{id}",
            get(crate::webhooks_api::get_one)
                .put(crate::webhooks_api::edit)
                .delete(crate::webhooks_api::delete),
        )
        .route(
            "/webhooks/{id}/verify",
            post(crate::webhooks_api::verify_now),
        )
        .route("/messages/outbound/opens", get(crate::messages_api::opens))
        .route(
            "/messages/outbound/clicks",
            get(crate::messages_api::clicks),
        )
        .route(
            "/messages/outbound/opens/{id}",
            get(crate::messages_api::opens_of),
        )
        .route(
            "/messages/outbound/clicks/{id}",
            get(crate::messages_api::clicks_of),
        )
        .route("/messages/outbound", get(crate::messages_api::search))
        .route(
            "/messages/outbound/{id}/details",
            get(crate::messages_api::details),
        )
}

/// A JSON answer with Postmark's content type.
pub(crate) fn json_reply(status: u16, body: &impl Serialize) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            bytes,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn rejection(rejection: &Rejection) -> Response {
    json_reply(rejection.http_status, &rejection.receipt())
}

pub(crate) fn error(status: u16, code: i64, message: &str) -> Response {
    rejection(&Rejection::new(status, code, message))
}

fn too_large() -> Response {
    json_reply(
        413,
        &json!({"Message": "Payload too large: the request exceeded Postmark's size limit of 10 MB for our Email API and 50 MB total for batch."}),
    )
}

enum Caller {
    Server(Arc<Server>, String),
    /// `POSTMARK_API_TEST`: send endpoints validate and answer without sending.
    Test,
}

/// `Accept` must allow JSON; a request with a body must say it is JSON.
fn check_json_headers(headers: &HeaderMap, with_body: bool) -> Result<(), Response> {
    let value = |name| {
        headers
            .get(name)
            .and_then(|value: &header::HeaderValue| value.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    let accept_ok = value(header::ACCEPT).is_some_and(|accept| {
        accept.split(',').any(|part| {
            let media = part.split(';').next().unwrap_or_default().trim();
            matches!(media, "application/json" | "application/*" | "*/*")
        })
    });
    let content_ok = !with_body
        || value(header::CONTENT_TYPE).is_some_and(|content| {
            content.split(';').next().unwrap_or_default().trim() == "application/json"
        });
    if accept_ok && content_ok {
        Ok(())
    } else {
        Err(error(
            415,
            409,
            "Your HTTP request does not have the Accept and Content-Type headers set to application/json.",
        ))
    }
}

fn authorize(sim: &Sim, headers: &HeaderMap, send: bool) -> Result<Caller, Response> {
    let server_token = headers
        .get("X-Postmark-Server-Token")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|token| !token.is_empty());
    let account_token = headers.contains_key("X-Postmark-Account-Token");
    let unauthorized = |message| Err(error(401, 10, message));
    match (server_token, account_token) {
        (Some(_), true) => {
            unauthorized("Please do not include Account API Token for Server API Token calls.")
        }
        (None, true) => unauthorized("Request does not contain a valid Server token."),
        (None, false) => unauthorized(
            "No Account or Server API tokens were supplied in the HTTP headers. Please add a header for either X-Postmark-Server-Token or X-Postmark-Account-Token.",
        ),
        (Some(token), false) => {
            if send && token == ServerToken::TEST {
                return Ok(Caller::Test);
            }
            match sim.registry().by_token(token) {
                Some(server) => Ok(Caller::Server(server.clone(), token.to_owned())),
                None => unauthorized("Request does not contain a valid Server token."),
            }
        }
    }
}

pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}

/// Postmark's answer to JSON it cannot use: 402 for broken JSON, 403 for JSON of the wrong shape.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(bytes).map_err(|parse_error| {
        if parse_error.is_data() {
            error(422, 403, "Received valid, but incompatible JSON input.")
        } else {
            error(422, 402, "Received invalid JSON input.")
        }
    })
}

/// Applies the fault plan: `Err` is the answer to give instead of processing the request,
/// `Ok(Some)` what to do with the answer once the request was processed.
async fn apply_faults(
    sim: &Sim,
    path: &str,
    recipients: &[String],
    killer: &ConnectionKiller,
) -> Result<Option<AfterAccept>, Response> {
    let decision = {
        let mut faults = lock(&sim.faults);
        if faults.is_empty() {
            return Ok(None);
        }
        faults.decide(path, recipients)
    };
    if let Some(delay) = decision.delay {
        tokio::time::sleep(delay).await;
    }
    match decision.before_or_after() {
        Ok(after) => Ok(after),
        Err(Outcome::Drop) => killer.drop_connection().await,
        Err(Outcome::Status(status)) => Err(fault_reply(status)),
        Err(Outcome::AfterAccept(after)) => Ok(Some(after)),
    }
}

/// Gives the answer of a processed request, or loses or spoils it as the fault plan said.
async fn finish(
    answer: Response,
    after: Option<AfterAccept>,
    killer: &ConnectionKiller,
) -> Response {
    match after {
        None => answer,
        Some(AfterAccept::Drop) => killer.drop_connection().await,
        Some(AfterAccept::Timeout(hold)) => {
            tokio::time::sleep(hold).await;
            killer.drop_connection().await
        }
        Some(AfterAccept::Status(status)) => gateway_reply(status),
        Some(AfterAccept::Garbage) => {
            let bytes = axum::body::to_bytes(answer.into_body(), usize::MAX)
                .await
                .unwrap_or_default();
            let cut = bytes.slice(..bytes.len() / 2);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
                cut,
            )
                .into_response()
        }
    }
}

/// What a load balancer or proxy in front of Postmark answers: HTML, no `ErrorCode`.
fn gateway_reply(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html")],
        format!(
            "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
        ),
    )
        .into_response()
}

fn fault_reply(status: u16) -> Response {
    match status {
        429 => error(
            429,
            429,
            "We have detected that you are making requests at a rate that exceeds acceptable use of the API. You should reduce the rate at which you query the API.",
        ),
        503 => error(
            503,
            100,
            "Postmark is in maintenance: the API is temporarily unavailable.",
        ),
        other => {
            let reason = StatusCode::from_u16(other)
                .ok()
                .and_then(|status| status.canonical_reason())
                .unwrap_or("Error");
            json_reply(other, &json!({ "Message": reason }))
        }
    }
}

fn recipient_keys<'a>(emails: impl IntoIterator<Item = &'a Email>) -> Vec<String> {
    emails
        .into_iter()
        .flat_map(|email| email.recipients())
        .filter_map(address::parse_mailbox)
        .map(address::key)
        .collect()
}

/// Roughly what one message weighs inside a batch (the strings that make it up).
fn estimated_size(email: &Email) -> usize {
    let text = |value: &Option<String>| value.as_deref().map_or(0, str::len);
    email.from.len()
        + text(&email.to)
        + text(&email.cc)
        + text(&email.bcc)
        + text(&email.subject)
        + text(&email.html_body)
        + text(&email.text_body)
        + email
            .attachments
            .iter()
            .map(|attachment| attachment.content.len() + attachment.name.len())
            .sum::<usize>()
        + email
            .headers
            .iter()
            .map(|header| header.name.len() + header.value.len())
            .sum::<usize>()
}

fn test_receipt(email: &Email, sim: &Sim) -> SendReceipt {
    SendReceipt {
        to: email.to.clone(),
        submitted_at: Some(now()),
        message_id: Some(sim.message_id()),
        error_code: Some(0),
        message: Some("Test job accepted".to_owned()),
    }
}

async fn send_email(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    sim.count_request("POST /email");
    check_json_headers(&headers, true)?;
    let caller = authorize(&sim, &headers, true)?;
    let bytes = read_body(body, MAX_MESSAGE_BYTES).await?;
    let email: Email = parse_json(&bytes)?;
    let after = apply_faults(&sim, "/email", &recipient_keys([&email]), &killer).await?;
    let server = match caller {
        Caller::Test => {
            let answer = json_reply(200, &test_receipt(&email, &sim));
            return Ok(finish(answer, after, &killer).await);
        }
        Caller::Server(server, _) => server,
    };
    let incoming = Incoming {
        email,
        via: Via::Api,
        size: bytes.len(),
    };
    let answer = match sim.submit(&server, vec![incoming]).pop() {
        Some(Ok(receipt)) => json_reply(200, &receipt),
        Some(Err(refused)) => rejection(&refused),
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    Ok(finish(answer, after, &killer).await)
}

async fn send_batch(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    sim.count_request("POST /email/batch");
    check_json_headers(&headers, true)?;
    let caller = authorize(&sim, &headers, true)?;
    let bytes = read_body(body, MAX_BATCH_BYTES).await?;
    let emails: Vec<Email> = parse_json(&bytes)?;
    if emails.len() > MAX_BATCH_MESSAGES {
        return Err(error(
            422,
            410,
            "You may only send up to 500 messages in a single batched request.",
        ));
    }
    let sizes: Vec<usize> = emails.iter().map(estimated_size).collect();
    if sizes.iter().any(|size| *size > MAX_MESSAGE_BYTES) {
        return Err(too_large());
    }
    let after = apply_faults(&sim, "/email/batch", &recipient_keys(&emails), &killer).await?;
    let server = match caller {
        Caller::Test => {
            let receipts: Vec<_> = emails
                .iter()
                .map(|email| test_receipt(email, &sim))
                .collect();
            return Ok(finish(json_reply(200, &receipts), after, &killer).await);
        }
        Caller::Server(server, _) => server,
    };
    let items = emails
        .into_iter()
        .zip(sizes)
        .map(|(email, size)| Incoming {
            email,
            via: Via::Api,
            size,
        })
        .collect();
    let answers: Vec<SendReceipt> = sim
        .submit(&server, items)
        .into_iter()
        .map(|answer| answer.unwrap_or_else(|refused| refused.receipt()))
        .collect();
    Ok(finish(json_reply(200, &answers), after, &killer).await)
}

/// Authorises a non-send request and applies the faults.
pub(crate) async fn management(
    sim: &Sim,
    endpoint: &str,
    path: &str,
    headers: &HeaderMap,
    with_body: bool,
    killer: &ConnectionKiller,
) -> Result<(Arc<Server>, String), Response> {
    sim.count_request(endpoint);
    check_json_headers(headers, with_body)?;
    let Caller::Server(server, token) = authorize(sim, headers, false)? else {
        return Err(error(
            401,
            10,
            "Request does not contain a valid Server token.",
        ));
    };
    // The accept_then_* kinds never match these paths: only the faults before processing apply.
    apply_faults(sim, path, &[], killer).await?;
    Ok((server, token))
}

async fn server_info(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    headers: HeaderMap,
) -> Reply {
    let (server, token) =
        management(&sim, "GET /server", "/server", &headers, false, &killer).await?;
    Ok(server_reply(&server, &token))
}

/// The body of `PUT /server`: the settings the simulator acts on (others are ignored).
#[derive(Debug, Default, Deserialize)]
struct ServerEdit {
    #[serde(rename = "Name", default)]
    name: Option<String>,
    #[serde(rename = "TrackOpens", default)]
    track_opens: Option<bool>,
    #[serde(rename = "TrackLinks", default)]
    track_links: Option<String>,
    #[serde(rename = "PostFirstOpenOnly", default)]
    post_first_open_only: Option<bool>,
    #[serde(rename = "SmtpApiActivated", default)]
    smtp_api_activated: Option<bool>,
    #[serde(rename = "EnableSmtpApiErrorHooks", default)]
    enable_smtp_api_error_hooks: Option<bool>,
    #[serde(rename = "IncludeBounceContentInHook", default)]
    include_bounce_content_in_hook: Option<bool>,
    #[serde(rename = "DeliveryType", default)]
    delivery_type: Option<String>,
}

/// `TrackLinks` as the server API writes it (the account API's `...Tracking` spelling too).
fn track_links_value(text: &str) -> Option<postmark::TrackLinks> {
    use postmark::TrackLinks;
    match text
        .trim()
        .to_ascii_lowercase()
        .trim_end_matches("tracking")
    {
        "none" => Some(TrackLinks::None),
        "htmlandtext" => Some(TrackLinks::HtmlAndText),
        "htmlonly" => Some(TrackLinks::HtmlOnly),
        "textonly" => Some(TrackLinks::TextOnly),
        _ => None,
    }
}

async fn edit_server(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    let (server, token) =
        management(&sim, "PUT /server", "/server", &headers, true, &killer).await?;
    let bytes = read_body(body, MAX_MESSAGE_BYTES).await?;
    let edit: ServerEdit = parse_json(&bytes)?;
    let mut config = server.config.clone();
    if let Some(name) = edit.name {
        if name.trim().is_empty() {
            return Err(error(422, 601, "The server name may not be empty."));
        }
        config.name = name;
    }
    if let Some(links) = edit.track_links {
        config.track_links = Some(track_links_value(&links).ok_or_else(|| {
            error(
                422,
                605,
                "Invalid 'TrackLinks' value: use None, HtmlAndText, HtmlOnly or TextOnly.",
            )
        })?);
    }
    if let Some(kind) = edit.delivery_type {
        let kind = match kind.trim().to_ascii_lowercase().as_str() {
            "live" => "Live",
            "sandbox" => "Sandbox",
            _ => {
                return Err(error(
                    422,
                    606,
                    "Invalid 'DeliveryType' value: use Live or Sandbox.",
                ));
            }
        };
        config.delivery_type = kind.to_owned();
    }
    let set = |flag: &mut bool, value: Option<bool>| {
        if let Some(value) = value {
            *flag = value;
        }
    };
    set(&mut config.track_opens, edit.track_opens);
    set(&mut config.post_first_open_only, edit.post_first_open_only);
    set(&mut config.smtp_api_activated, edit.smtp_api_activated);
    set(
        &mut config.enable_smtp_api_error_hooks,
        edit.enable_smtp_api_error_hooks,
    );
    set(
        &mut config.include_bounce_content_in_hook,
        edit.include_bounce_content_in_hook,
    );
    let server = sim.configure_server(config);
    Ok(server_reply(&server, &token))
}

fn server_reply(server: &Server, token: &str) -> Response {
    let config = &server.config;
    let hash = format!(
        "{:016x}{:016x}",
        server.id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        server.id.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
    );
    // Only the token of this request: another token of the server is never shown.
    json_reply(
        200,
        &json!({
            "ID": server.id,
            "Name": config.name,
            "ApiTokens": [token],
            "Color": "Purple",
            "SmtpApiActivated": config.smtp_api_activated,
            "RawEmailEnabled": false,
            "DeliveryType": config.delivery_type,
            "ServerLink": format!("https://account.postmarkapp.com/servers/{}/streams", server.id),
            "InboundAddress": format!("{hash}@inbound.postmarkapp.com"),
            "InboundHookUrl": "",
            "BounceHookUrl": "",
            "OpenHookUrl": "",
            "DeliveryHookUrl": "",
            "ClickHookUrl": "",
            "PostFirstOpenOnly": config.post_first_open_only,
            "InboundDomain": "",
            "InboundHash": hash,
            "InboundSpamThreshold": 0,
            "TrackOpens": config.track_opens,
            "TrackLinks": config.track_links.unwrap_or(postmark::TrackLinks::None),
            "IncludeBounceContentInHook": config.include_bounce_content_in_hook,
            "EnableSmtpApiErrorHooks": config.enable_smtp_api_error_hooks,
        }),
    )
}

fn stream_info(server: &Server, stream: &crate::config::StreamConfig) -> MessageStreamInfo {
    let (kind, unsubscribe) = match stream.stream_type {
        StreamType::Transactional => (MessageStreamType::Transactional, "None"),
        StreamType::Broadcasts => (MessageStreamType::Broadcasts, "Postmark"),
    };
    let mut extra = serde_json::Map::new();
    extra.insert("UpdatedAt".to_owned(), Value::Null);
    extra.insert("ArchivedAt".to_owned(), Value::Null);
    extra.insert("ExpectedPurgeDate".to_owned(), Value::Null);
    extra.insert(
        "SubscriptionManagementConfiguration".to_owned(),
        json!({ "UnsubscribeHandlingType": unsubscribe }),
    );
    MessageStreamInfo {
        id: Some(stream.id.clone()),
        server_id: Some(server.id as i64),
        name: Some(stream.name.clone().unwrap_or_else(|| stream.id.clone())),
        description: Some(stream.description.clone().unwrap_or_default()),
        message_stream_type: Some(kind),
        created_at: Some(server.created_at),
        extra,
        ..MessageStreamInfo::default()
    }
}

pub(crate) fn stream_not_found() -> Response {
    error(
        422,
        1226,
        "The message stream for the provided 'ID' was not found.",
    )
}

#[derive(Deserialize)]
struct StreamFilter {
    #[serde(rename = "MessageStreamType", default)]
    message_stream_type: Option<String>,
}

async fn list_streams(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    Query(filter): Query<StreamFilter>,
    headers: HeaderMap,
) -> Reply {
    let (server, _) = management(
        &sim,
        "GET /message-streams",
        "/message-streams",
        &headers,
        false,
        &killer,
    )
    .await?;
    let wanted = filter
        .message_stream_type
        .filter(|kind| !kind.eq_ignore_ascii_case("All"));
    let streams: Vec<MessageStreamInfo> = server
        .config
        .streams
        .iter()
        .filter(|stream| {
            wanted
                .as_deref()
                .is_none_or(|kind| kind.eq_ignore_ascii_case(stream.stream_type.as_str()))
        })
        .map(|stream| stream_info(&server, stream))
        .collect();
    Ok(json_reply(
        200,
        &json!({ "MessageStreams": streams, "TotalCount": streams.len() }),
    ))
}

async fn get_stream(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    Path(stream_id): Path<String>,
    headers: HeaderMap,
) -> Reply {
    let (server, _) = management(
        &sim,
        "GET /message-streams/{id}",
        &format!("/message-streams/{stream_id}"),
        &headers,
        false,
        &killer,
    )
    .await?;
    let stream = server.stream(&stream_id).ok_or_else(stream_not_found)?;
    Ok(json_reply(200, &stream_info(&server, stream)))
}

#[derive(Deserialize)]
struct DumpFilter {
    #[serde(rename = "SuppressionReason", default)]
    reason: Option<String>,
    #[serde(rename = "Origin", default)]
    origin: Option<String>,
    #[serde(rename = "EmailAddress", default)]
    email_address: Option<String>,
    #[serde(default)]
    fromdate: Option<String>,
    #[serde(default)]
    todate: Option<String>,
}

async fn dump_suppressions(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    Path(stream_id): Path<String>,
    Query(filter): Query<DumpFilter>,
    headers: HeaderMap,
) -> Reply {
    let (server, _) = management(
        &sim,
        "GET /message-streams/{id}/suppressions/dump",
        &format!("/message-streams/{stream_id}/suppressions/dump"),
        &headers,
        false,
        &killer,
    )
    .await?;
    server.stream(&stream_id).ok_or_else(stream_not_found)?;
    let wanted_address = filter.email_address.as_deref().map(address::key);
    let mut entries: Vec<_> = lock(&sim.suppressions)
        .iter()
        .filter(|((server_id, stream, key), entry)| {
            let day = entry.created_at.format("%Y-%m-%d").to_string();
            *server_id == server.id
                && *stream == stream_id
                && wanted_address.as_ref().is_none_or(|wanted| wanted == key)
                && filter
                    .reason
                    .as_deref()
                    .is_none_or(|reason| reason.eq_ignore_ascii_case(entry.reason.as_str()))
                && filter
                    .origin
                    .as_deref()
                    .is_none_or(|origin| origin.eq_ignore_ascii_case(entry.origin.as_str()))
                && filter
                    .fromdate
                    .as_deref()
                    .is_none_or(|from| day.as_str() >= from)
                && filter.todate.as_deref().is_none_or(|to| day.as_str() <= to)
        })
        .map(|(_, entry)| entry.clone())
        .collect();
    entries.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then(a.address.cmp(&b.address))
    });
    let suppressions: Vec<postmark::Suppression> = entries
        .into_iter()
        .map(|entry| postmark::Suppression {
            email_address: Some(entry.address),
            suppression_reason: Some(entry.reason),
            origin: Some(entry.origin),
            created_at: Some(entry.created_at),
        })
        .collect();
    Ok(json_reply(200, &json!({ "Suppressions": suppressions })))
}

#[derive(Deserialize)]
struct SuppressionsBody {
    #[serde(rename = "Suppressions")]
    suppressions: Vec<SuppressionAddress>,
}

#[derive(Deserialize)]
struct SuppressionAddress {
    #[serde(rename = "EmailAddress")]
    email_address: String,
}

async fn change_suppressions(
    sim: Arc<Sim>,
    killer: ConnectionKiller,
    stream_id: String,
    headers: HeaderMap,
    body: Body,
    delete: bool,
) -> Reply {
    let (endpoint, path) = if delete {
        (
            "POST /message-streams/{id}/suppressions/delete",
            format!("/message-streams/{stream_id}/suppressions/delete"),
        )
    } else {
        (
            "POST /message-streams/{id}/suppressions",
            format!("/message-streams/{stream_id}/suppressions"),
        )
    };
    let (server, _) = management(&sim, endpoint, &path, &headers, true, &killer).await?;
    let bytes = read_body(body, MAX_MESSAGE_BYTES).await?;
    let request: SuppressionsBody = parse_json(&bytes)?;
    server.stream(&stream_id).ok_or_else(stream_not_found)?;
    let addresses: Vec<String> = request
        .suppressions
        .into_iter()
        .map(|entry| entry.email_address)
        .collect();
    let changes = if delete {
        sim.unsuppress(&server, &stream_id, &addresses)
    } else {
        sim.suppress(&server, &stream_id, &addresses)
    };
    Ok(json_reply(200, &json!({ "Suppressions": changes })))
}

async fn create_suppressions(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    Path(stream_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    change_suppressions(sim, killer, stream_id, headers, body, false).await
}

async fn delete_suppressions(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    Path(stream_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Reply {
    change_suppressions(sim, killer, stream_id, headers, body, true).await
}

async fn activate_bounce(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    Path(bounce_id): Path<String>,
    headers: HeaderMap,
) -> Reply {
    let (server, _) = management(
        &sim,
        "PUT /bounces/{id}/activate",
        &format!("/bounces/{bounce_id}/activate"),
        &headers,
        false,
        &killer,
    )
    .await?;
    let id: i64 = bounce_id
        .parse()
        .map_err(|_| error(422, 1000, "The bounce was not found."))?;
    let bounce = sim
        .activate_bounce(&server, id)
        .map_err(|refused| rejection(&refused))?;
    Ok(json_reply(
        200,
        &postmark::BounceActivation {
            message: Some("OK".to_owned()),
            bounce: Some(bounce),
        },
    ))
}

/// A suppression as the simulator reports it outside Postmark's API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuppressedAddress {
    /// The address.
    pub email_address: String,
    /// Why.
    pub reason: String,
    /// Who.
    pub origin: String,
    /// When (Postmark's format).
    pub created_at: String,
}

pub(crate) fn suppressed_addresses(
    sim: &Sim,
    server_id: u64,
    stream: &str,
) -> Vec<SuppressedAddress> {
    let mut list: Vec<SuppressedAddress> = lock(&sim.suppressions)
        .iter()
        .filter(|((id, entry_stream, _), _)| *id == server_id && entry_stream == stream)
        .map(|(_, entry)| SuppressedAddress {
            email_address: entry.address.clone(),
            reason: entry.reason.as_str().to_owned(),
            origin: entry.origin.as_str().to_owned(),
            created_at: postmark_time(&entry.created_at),
        })
        .collect();
    list.sort_by(|a, b| a.email_address.cmp(&b.email_address));
    list
}
