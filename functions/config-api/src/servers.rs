//! Email servers: list, create, read, update (optimistic, on `version`), delete, each with its secret.
//!
//! Lifecycle of the secret `{SECRETS_PREFIX}/servers/{id}`:
//! - create: the secret is written first, then the item; if the item cannot be written the secret is
//!   deleted again, so that no item ever names a missing secret.
//! - update: the item's version is checked; when a credential changes, the credentials are written as a
//!   new version of the secret; then the item, naming that version, is written on condition that its
//!   version is unchanged (else 409). Readers fetch the version the item names, so a losing update's
//!   secret version is never used, whichever write reached Secrets Manager last.
//! - delete: the secret goes first (at once, without a recovery window), then the item; a failure in
//!   between leaves a server without credentials that the next DELETE finishes removing.

use std::collections::{BTreeMap, BTreeSet};

use ::http::header::{ETAG, HeaderValue, IF_MATCH, LOCATION};
use ::http::{HeaderMap, StatusCode};
use chrono::Utc;
use domain::servers::{
    CredentialHint, CredentialHints, Delivery, DeliveryMethod, EmailServer, LinkTracking,
    PostmarkTracking, ServerId, SmtpAuthentication, SmtpSettings, Vendor,
};
use domain::{EmailType, MessageStream};
use lambda_http::{Body, Request, Response};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::{Map, Value, json};
use store::StoreError;
use store::servers::ServerCredentials;

use crate::App;
use crate::http::{ApiError, ApiResult, json};
use crate::input::{
    Errors, join, json_object, merge_patch, only_fields, opt_bool, opt_object, opt_str, single_line,
};

const TOP_FIELDS: &[&str] = &[
    "label",
    "vendor",
    "delivery_method",
    "api_token",
    "smtp",
    "email_types",
    "message_streams",
    "tracking",
    "active",
];
const SMTP_FIELDS: &[&str] = &[
    "host",
    "port",
    "username",
    "password",
    "authentication",
    "starttls",
];
const TRACKING_FIELDS: &[&str] = &["track_opens", "track_links"];
const MAX_LABEL: usize = 100;
const MAX_CREDENTIAL: usize = 512;
const DEFAULT_SMTP_PORT: u16 = 587;

/// A credential as answers show it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct CredentialView {
    pub set: bool,
    pub last4: Option<String>,
}

impl CredentialView {
    fn of(hint: &Option<CredentialHint>) -> Self {
        Self {
            set: hint.is_some(),
            last4: hint
                .as_ref()
                .map(|h| h.last4.clone())
                .filter(|s| !s.is_empty()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SmtpView {
    pub host: String,
    pub port: u16,
    pub authentication: SmtpAuthentication,
    pub starttls: bool,
    pub username: CredentialView,
    pub password: CredentialView,
}

/// A server as answers show it.
#[derive(Debug, Serialize)]
pub struct ServerView {
    pub id: ServerId,
    pub label: String,
    pub vendor: Vendor,
    pub delivery_method: DeliveryMethod,
    pub api_token: CredentialView,
    pub smtp: Option<SmtpView>,
    pub email_types: Vec<EmailType>,
    pub message_streams: BTreeMap<EmailType, MessageStream>,
    pub tracking: PostmarkTracking,
    pub active: bool,
    pub version: u64,
    pub created_at: String,
    pub updated_at: String,
}

impl ServerView {
    pub fn of(s: &EmailServer) -> Self {
        Self {
            id: s.id.clone(),
            label: s.label.clone(),
            vendor: s.vendor,
            delivery_method: s.delivery.method(),
            api_token: CredentialView::of(&s.credentials.api_token),
            smtp: match &s.delivery {
                Delivery::Api => None,
                Delivery::Smtp(smtp) => Some(SmtpView {
                    host: smtp.host.clone(),
                    port: smtp.port,
                    authentication: smtp.authentication,
                    starttls: smtp.starttls,
                    username: CredentialView::of(&s.credentials.smtp_username),
                    password: CredentialView::of(&s.credentials.smtp_password),
                }),
            },
            email_types: s.streams.keys().copied().collect(),
            message_streams: s.streams.clone(),
            tracking: s.tracking,
            active: s.active,
            version: s.version,
            created_at: store::activity::sortable_time(s.created_at),
            updated_at: store::activity::sortable_time(s.updated_at),
        }
    }
}

/// A new server, with where its managed webhooks stand (nothing is changed in Postmark).
#[derive(Debug, Serialize)]
struct CreatedView {
    #[serde(flatten)]
    server: ServerView,
    webhooks: crate::managed_webhooks::ServerWebhooks,
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn server_response(status: StatusCode, server: &EmailServer) -> Response<Body> {
    let mut r = json(status, &ServerView::of(server));
    r.headers_mut().insert(ETAG, etag(server.version));
    r
}

/// A server id from the path: one that cannot be an id cannot name a server either.
fn parse_id(id: &str) -> Result<ServerId, ApiError> {
    ServerId::parse(id).map_err(|_| ApiError::not_found(format!("no email server {id:?}")))
}

async fn load(app: &App, id: &ServerId) -> Result<EmailServer, ApiError> {
    app.table
        .server(id)
        .await
        .map_err(|e| ApiError::store("reading an email server", e))?
        .ok_or_else(|| ApiError::not_found(format!("no email server {id}")))
}

pub async fn list(app: &App) -> ApiResult {
    let mut servers = app
        .table
        .servers()
        .await
        .map_err(|e| ApiError::store("listing email servers", e))?;
    servers.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let items: Vec<ServerView> = servers.iter().map(ServerView::of).collect();
    Ok(json(StatusCode::OK, &json!({ "items": items })))
}

pub async fn get(app: &App, id: &str) -> ApiResult {
    let server = load(app, &parse_id(id)?).await?;
    Ok(server_response(StatusCode::OK, &server))
}

/// Credentials given in a request, by name. Absent ones are kept (on update) or missing (on create).
#[derive(Default)]
struct GivenCredentials {
    api_token: Option<String>,
    smtp_username: Option<String>,
    smtp_password: Option<String>,
}

/// A server's settings as a request describes them, checked.
struct Draft {
    label: String,
    vendor: Vendor,
    delivery: Delivery,
    streams: BTreeMap<EmailType, MessageStream>,
    tracking: PostmarkTracking,
    active: bool,
    given: GivenCredentials,
}

/// Reads and checks a whole server description. `existing` are the hints of the credentials the server
/// already has (none on create): a credential that is set need not be given again.
fn parse_draft(obj: &Map<String, Value>, existing: &CredentialHints) -> Result<Draft, ApiError> {
    let mut errors = Errors::default();
    only_fields(obj, TOP_FIELDS, "", &mut errors);

    let label = match opt_str(obj, "label", "", &mut errors) {
        Some(text) => {
            let trimmed = text.trim();
            match single_line(trimmed, MAX_LABEL) {
                Ok(()) => Some(trimmed.to_owned()),
                Err(why) => {
                    errors.add("label", why);
                    None
                }
            }
        }
        None => {
            if obj.get("label").is_none_or(Value::is_null) {
                errors.add("label", "required: a name for this server");
            }
            None
        }
    };

    let vendor = match opt_str(obj, "vendor", "", &mut errors) {
        None | Some("postmark") => Vendor::Postmark,
        Some(_) => {
            errors.add("vendor", "must be \"postmark\"");
            Vendor::Postmark
        }
    };

    let method = match opt_str(obj, "delivery_method", "", &mut errors) {
        Some("api") => Some(DeliveryMethod::Api),
        Some("smtp") => Some(DeliveryMethod::Smtp),
        Some(_) => {
            errors.add("delivery_method", "must be \"api\" or \"smtp\"");
            None
        }
        None => {
            if obj.get("delivery_method").is_none_or(Value::is_null) {
                errors.add("delivery_method", "required: \"api\" or \"smtp\"");
            }
            None
        }
    };

    let mut given = GivenCredentials {
        api_token: credential(obj, "api_token", "", &mut errors),
        ..GivenCredentials::default()
    };
    let smtp_obj = opt_object(obj, "smtp", "", &mut errors);

    let delivery = match method {
        Some(DeliveryMethod::Api) => {
            if smtp_obj.is_some() {
                errors.add("smtp", "only for delivery_method \"smtp\"");
            }
            if given.api_token.is_none()
                && existing.api_token.is_none()
                && obj.get("api_token").is_none_or(Value::is_null)
            {
                errors.add(
                    "api_token",
                    "required for delivery_method \"api\": the Server API Token of the Postmark \
                     server (Servers > your server > API Tokens)",
                );
            }
            Some(Delivery::Api)
        }
        Some(DeliveryMethod::Smtp) => {
            if obj.get("api_token").is_some_and(|v| !v.is_null()) {
                errors.add("api_token", "only for delivery_method \"api\"");
            }
            match smtp_obj {
                None => {
                    if obj.get("smtp").is_none_or(Value::is_null) {
                        errors.add(
                            "smtp",
                            "required for delivery_method \"smtp\": host, port, username, password",
                        );
                    }
                    None
                }
                Some(smtp) => {
                    parse_smtp(smtp, existing, &mut given, &mut errors).map(Delivery::Smtp)
                }
            }
        }
        None => None,
    };

    let streams = parse_streams(obj, &mut errors);
    let tracking = parse_tracking(obj, &mut errors);
    let active = opt_bool(obj, "active", "", &mut errors).unwrap_or(true);

    let draft = match (label, delivery, streams) {
        (Some(label), Some(delivery), Some(streams)) => Some(Draft {
            label,
            vendor,
            delivery,
            streams,
            tracking,
            active,
            given,
        }),
        _ => None,
    };
    errors.finish(draft)
}

/// A credential member: single-line text without surrounding white space (a pasted token with a
/// trailing newline would otherwise fail at send time, far from here).
fn credential(
    obj: &Map<String, Value>,
    name: &str,
    path: &str,
    errors: &mut Errors,
) -> Option<String> {
    let text = opt_str(obj, name, path, errors)?;
    match single_line(text, MAX_CREDENTIAL) {
        Ok(()) if text.trim() != text => {
            errors.add(join(path, name), "must not start or end with white space");
            None
        }
        Ok(()) => Some(text.to_owned()),
        Err(why) => {
            errors.add(join(path, name), why);
            None
        }
    }
}

fn parse_smtp(
    smtp: &Map<String, Value>,
    existing: &CredentialHints,
    given: &mut GivenCredentials,
    errors: &mut Errors,
) -> Option<SmtpSettings> {
    only_fields(smtp, SMTP_FIELDS, "smtp", errors);
    let host = match opt_str(smtp, "host", "smtp", errors) {
        Some(h) => {
            let h = h.trim();
            let ok = !h.is_empty()
                && h.len() <= 253
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
            if ok {
                Some(h.to_owned())
            } else {
                errors.add(
                    "smtp.host",
                    "must be a host name or IP address such as smtp.postmarkapp.com",
                );
                None
            }
        }
        None => {
            errors.add("smtp.host", "required, e.g. smtp.postmarkapp.com");
            None
        }
    };
    let port = match smtp.get("port") {
        None | Some(Value::Null) => Some(DEFAULT_SMTP_PORT),
        Some(v) => match v.as_u64().and_then(|p| u16::try_from(p).ok()) {
            Some(p) if p > 0 => Some(p),
            _ => {
                errors.add(
                    "smtp.port",
                    "must be a port number from 1 to 65535 (Postmark: 587, 2525 or 25)",
                );
                None
            }
        },
    };
    let authentication = match opt_str(smtp, "authentication", "smtp", errors) {
        None | Some("plain") => Some(SmtpAuthentication::Plain),
        Some("login") => Some(SmtpAuthentication::Login),
        Some(_) => {
            errors.add("smtp.authentication", "must be \"plain\" or \"login\"");
            None
        }
    };
    let starttls = opt_bool(smtp, "starttls", "smtp", errors).unwrap_or(true);
    if !starttls
        && host
            .as_deref()
            .is_some_and(|h| !domain::servers::is_loopback_host(h))
    {
        errors.add(
            "smtp.starttls",
            "must be true: without STARTTLS the credentials would travel in clear (it may be off \
             only for a loopback host)",
        );
    }
    given.smtp_username = credential(smtp, "username", "smtp", errors);
    given.smtp_password = credential(smtp, "password", "smtp", errors);
    for (name, given_now, set_before) in [
        (
            "username",
            given.smtp_username.is_some(),
            existing.smtp_username.is_some(),
        ),
        (
            "password",
            given.smtp_password.is_some(),
            existing.smtp_password.is_some(),
        ),
    ] {
        if !given_now && !set_before && smtp.get(name).is_none_or(Value::is_null) {
            errors.add(
                format!("smtp.{name}"),
                "required (for Postmark: the Server API Token, or an SMTP token's access key and \
                 secret key)",
            );
        }
    }
    Some(SmtpSettings {
        host: host?,
        port: port?,
        authentication: authentication?,
        starttls,
    })
}

fn parse_streams(
    obj: &Map<String, Value>,
    errors: &mut Errors,
) -> Option<BTreeMap<EmailType, MessageStream>> {
    let types: Vec<EmailType> = match obj.get("email_types") {
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut types = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str().map(str::parse::<EmailType>) {
                    Some(Ok(t)) if !types.contains(&t) => types.push(t),
                    Some(Ok(_)) => errors.add(format!("email_types[{i}]"), "listed twice"),
                    _ => errors.add(
                        format!("email_types[{i}]"),
                        "must be one of broadcast, sequence, transactional",
                    ),
                }
            }
            types
        }
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            errors.add(
                "email_types",
                "required: at least one of broadcast, sequence, transactional",
            );
            return None;
        }
        Some(_) => {
            errors.add("email_types", "must be an array");
            return None;
        }
    };
    let mut streams: BTreeMap<EmailType, MessageStream> =
        types.iter().map(|t| (*t, t.default_stream())).collect();
    if let Some(given) = opt_object(obj, "message_streams", "", errors) {
        for (name, value) in given {
            let field = format!("message_streams.{name}");
            let Ok(t) = name.parse::<EmailType>() else {
                errors.add(field, "must be one of broadcast, sequence, transactional");
                continue;
            };
            if !types.contains(&t) {
                errors.add(
                    field,
                    "this server does not carry that type (see email_types)",
                );
                continue;
            }
            match value.as_str().map(MessageStream::parse) {
                Some(Ok(stream)) => {
                    streams.insert(t, stream);
                }
                Some(Err(e)) => errors.add(field, e.why),
                None => errors.add(field, "must be a message stream id such as \"outbound\""),
            }
        }
    }
    Some(streams)
}

fn parse_tracking(obj: &Map<String, Value>, errors: &mut Errors) -> PostmarkTracking {
    let mut tracking = PostmarkTracking::default();
    if let Some(t) = opt_object(obj, "tracking", "", errors) {
        only_fields(t, TRACKING_FIELDS, "tracking", errors);
        tracking.track_opens = opt_bool(t, "track_opens", "tracking", errors).unwrap_or(false);
        if let Some(text) = opt_str(t, "track_links", "tracking", errors) {
            match text.parse::<LinkTracking>() {
                Ok(mode) => tracking.track_links = mode,
                Err(e) => errors.add("tracking.track_links", e.why),
            }
        }
    }
    tracking
}

/// The credentials a server keeps after a change: those its delivery method uses, given now or kept.
fn credentials_for(
    delivery: &Delivery,
    given: &GivenCredentials,
    kept: Option<&ServerCredentials>,
) -> ServerCredentials {
    let pick = |now: &Option<String>, before: Option<&Option<SecretString>>| {
        now.clone()
            .map(SecretString::from)
            .or_else(|| before.cloned().flatten())
    };
    match delivery {
        Delivery::Api => ServerCredentials {
            api_token: pick(&given.api_token, kept.map(|k| &k.api_token)),
            ..ServerCredentials::default()
        },
        Delivery::Smtp(_) => ServerCredentials {
            smtp_username: pick(&given.smtp_username, kept.map(|k| &k.smtp_username)),
            smtp_password: pick(&given.smtp_password, kept.map(|k| &k.smtp_password)),
            ..ServerCredentials::default()
        },
    }
}

pub async fn create(app: &App, req: &Request) -> ApiResult {
    let body = json_object(req)?;
    let draft = parse_draft(&body, &CredentialHints::default())?;
    let credentials = credentials_for(&draft.delivery, &draft.given, None);
    let id = ServerId::parse(&uuid::Uuid::new_v4().simple().to_string()).map_err(|_| {
        tracing::error!("a generated server id was refused");
        ApiError::internal()
    })?;
    let secret_version = app
        .server_secrets
        .create(&id, &credentials)
        .await
        .map_err(|e| ApiError::store("creating the secret of a new email server", e))?;
    let now = Utc::now();
    let server = EmailServer {
        id: id.clone(),
        label: draft.label,
        vendor: draft.vendor,
        delivery: draft.delivery,
        streams: draft.streams,
        tracking: draft.tracking,
        active: draft.active,
        credentials: credentials.hints(secret_version),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let stored = app.table.create_server(&server).await;
    if !matches!(stored, Ok(true))
        && let Err(e) = app.server_secrets.delete(&id).await
    {
        tracing::error!(
            server = %id,
            error = %crate::http::chain(&e),
            "the secret of a server that could not be stored was left behind"
        );
    }
    match stored {
        Ok(true) => {}
        Ok(false) => {
            return Err(ApiError::conflict(
                "a server with this id exists; try again",
            ));
        }
        Err(e) => return Err(ApiError::store("storing a new email server", e)),
    }
    tracing::info!(server = %id, method = server.delivery.method().as_str(), "email server created");
    let webhooks = crate::managed_webhooks::report_for(app, &server).await;
    let mut r = json(
        StatusCode::CREATED,
        &CreatedView {
            server: ServerView::of(&server),
            webhooks,
        },
    );
    r.headers_mut().insert(ETAG, etag(server.version));
    if let Ok(location) = HeaderValue::from_str(&format!("/api/email-servers/{id}")) {
        r.headers_mut().insert(LOCATION, location);
    }
    Ok(r)
}

/// The version an update or delete is based on: `version` in the body, or `If-Match`.
fn expected_version(
    headers: &HeaderMap,
    body: Option<&mut Map<String, Value>>,
) -> Result<Option<u64>, ApiError> {
    let from_header = match headers.get(IF_MATCH) {
        None => None,
        Some(value) => {
            let text = value.to_str().unwrap_or_default().trim();
            let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
            Some(text.parse::<u64>().map_err(|_| {
                ApiError::invalid_field(
                    "If-Match",
                    "must be the server's ETag, e.g. \"3\" (its version)",
                )
            })?)
        }
    };
    let from_body = match body.and_then(|b| b.remove("version")) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            ApiError::invalid_field("version", "must be the version you read, a whole number")
        })?),
    };
    match (from_header, from_body) {
        (Some(h), Some(b)) if h != b => Err(ApiError::invalid_field(
            "version",
            "differs from the If-Match header; send one of them",
        )),
        (h, b) => Ok(h.or(b)),
    }
}

/// The server as a request body would describe it (without credentials): the base a PATCH merges into.
fn as_input(server: &EmailServer) -> Value {
    let mut obj = json!({
        "label": server.label,
        "vendor": server.vendor,
        "delivery_method": server.delivery.method(),
        "email_types": server.streams.keys().collect::<Vec<_>>(),
        "message_streams": server.streams,
        "tracking": server.tracking,
        "active": server.active,
    });
    if let Delivery::Smtp(smtp) = &server.delivery {
        obj["smtp"] = json!({
            "host": smtp.host,
            "port": smtp.port,
            "authentication": smtp.authentication,
            "starttls": smtp.starttls,
        });
    }
    obj
}

/// Applies a PATCH to the current settings. Settings the patch makes meaningless go with it: the SMTP
/// block when the method changes to `api`, and the streams of types no longer carried.
fn merged(current: &EmailServer, patch: &Map<String, Value>) -> Map<String, Value> {
    let mut base = as_input(current);
    let method_changes = patch
        .get("delivery_method")
        .is_some_and(|m| m.as_str() != Some(current.delivery.method().as_str()));
    if method_changes
        && !patch.contains_key("smtp")
        && let Some(obj) = base.as_object_mut()
    {
        obj.remove("smtp");
    }
    merge_patch(&mut base, &Value::Object(patch.clone()));
    let Value::Object(mut obj) = base else {
        return Map::new();
    };
    let carried: BTreeSet<String> = obj
        .get("email_types")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let given_streams: BTreeSet<String> = patch
        .get("message_streams")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    if let Some(Value::Object(streams)) = obj.get_mut("message_streams") {
        streams.retain(|k, _| carried.contains(k) || given_streams.contains(k));
    }
    obj
}

pub async fn update(app: &App, req: &Request, id: &str) -> ApiResult {
    let id = parse_id(id)?;
    let mut patch = json_object(req)?;
    let expected = expected_version(req.headers(), Some(&mut patch))?.ok_or_else(|| {
        ApiError::invalid_field(
            "version",
            "required: the version you read (or send it as an If-Match header)",
        )
    })?;
    let current = load(app, &id).await?;
    if current.version != expected {
        return Err(ApiError::conflict(format!(
            "the server changed since you read it (version {expected}, now {}); read it again and \
             reapply your change",
            current.version
        )));
    }
    let mut existing = current.credentials.clone();
    let draft_delivery_method = patch
        .get("delivery_method")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if draft_delivery_method.is_some_and(|m| m != current.delivery.method().as_str()) {
        // A new method needs its own credentials: the old method's do not count as set.
        existing = CredentialHints::default();
    }
    let draft = parse_draft(&merged(&current, &patch), &existing)?;

    let given_any = draft.given.api_token.is_some()
        || draft.given.smtp_username.is_some()
        || draft.given.smtp_password.is_some();
    let method_changed = draft.delivery.method() != current.delivery.method();
    let new_credentials = if given_any || method_changed {
        // Credentials not given are kept from the server's secret (none survive a change of method).
        let kept = if method_changed {
            None
        } else {
            app.server_secrets
                .credentials(&current)
                .await
                .map_err(|e| ApiError::store("reading the secret of an email server", e))?
        };
        let credentials = credentials_for(&draft.delivery, &draft.given, kept.as_deref());
        let version = match app.server_secrets.put(&id, &credentials).await {
            Ok(version) => version,
            Err(StoreError::ConditionFailed) => {
                return Err(ApiError::conflict(
                    "the server was deleted while this update ran",
                ));
            }
            Err(e) => {
                return Err(ApiError::store("writing the secret of an email server", e));
            }
        };
        Some(credentials.hints(version))
    } else {
        None
    };

    let server = EmailServer {
        id: id.clone(),
        label: draft.label,
        vendor: draft.vendor,
        delivery: draft.delivery,
        streams: draft.streams,
        tracking: draft.tracking,
        active: draft.active,
        credentials: new_credentials
            .clone()
            .unwrap_or_else(|| current.credentials.clone()),
        version: expected + 1,
        created_at: current.created_at,
        updated_at: Utc::now(),
    };
    // The new secret version (if any) counts only if this write wins; a losing one is never read.
    match app.table.update_server(&server, expected).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(ApiError::conflict(
                "the server changed (or was deleted) while this update ran; read it again and \
                 reapply your change",
            ));
        }
        Err(e) => return Err(ApiError::store("updating an email server", e)),
    }
    tracing::info!(server = %id, version = server.version, credentials_replaced = new_credentials.is_some(), "email server updated");
    Ok(server_response(StatusCode::OK, &server))
}

pub async fn delete(app: &App, req: &Request, id: &str) -> ApiResult {
    let id = parse_id(id)?;
    let expected = expected_version(req.headers(), None)?;
    let current = load(app, &id).await?;
    if let Some(expected) = expected
        && expected != current.version
    {
        return Err(ApiError::conflict(format!(
            "the server changed since you read it (version {expected}, now {})",
            current.version
        )));
    }
    app.server_secrets
        .delete(&id)
        .await
        .map_err(|e| ApiError::store("deleting the secret of an email server", e))?;
    app.table
        .delete_server(&id)
        .await
        .map_err(|e| ApiError::store("deleting an email server", e))?;
    tracing::info!(server = %id, "email server deleted");
    Ok(crate::http::empty(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("an object"),
        }
    }

    fn fields(e: ApiError) -> BTreeMap<String, String> {
        assert_eq!(e.status, 422, "{e:?}");
        e.fields
    }

    #[test]
    fn an_api_server_needs_a_token_and_gets_default_streams() {
        let d = parse_draft(
            &obj(json!({
                "label": " Main ", "delivery_method": "api", "api_token": "tok-1234-5678",
                "email_types": ["transactional", "broadcast"],
                "message_streams": {"broadcast": "news"},
            })),
            &CredentialHints::default(),
        )
        .ok()
        .unwrap();
        assert_eq!(d.label, "Main");
        assert_eq!(d.streams[&EmailType::Transactional].as_str(), "outbound");
        assert_eq!(d.streams[&EmailType::Broadcast].as_str(), "news");
        assert!(d.active);
        assert_eq!(d.given.api_token.as_deref(), Some("tok-1234-5678"));

        let f = fields(
            parse_draft(
                &obj(json!({"label": "x", "delivery_method": "api", "email_types": ["sequence"]})),
                &CredentialHints::default(),
            )
            .err()
            .unwrap(),
        );
        assert!(f["api_token"].contains("Server API Token"), "{f:?}");
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let f = fields(
            parse_draft(
                &obj(json!({
                    "label": "", "vendor": "mailgun", "delivery_method": "smtp",
                    "smtp": {"host": "bad host", "port": 70000, "authentication": "cram-md5",
                             "password": "p\nw", "extra": 1},
                    "email_types": ["transactional", "spam", "transactional"],
                    "message_streams": {"broadcast": "x", "transactional": "has space"},
                    "tracking": {"track_links": "Always"},
                    "active": "yes", "colour": "red",
                })),
                &CredentialHints::default(),
            )
            .err()
            .unwrap(),
        );
        for key in [
            "label",
            "vendor",
            "smtp.host",
            "smtp.port",
            "smtp.authentication",
            "smtp.password",
            "smtp.username",
            "smtp.extra",
            "email_types[1]",
            "email_types[2]",
            "message_streams.broadcast",
            "message_streams.transactional",
            "tracking.track_links",
            "active",
            "colour",
        ] {
            assert!(f.contains_key(key), "{key} missing from {f:?}");
        }
    }

    #[test]
    fn a_patch_that_switches_to_api_drops_the_smtp_block_and_unused_streams() {
        let now = Utc::now();
        let current = EmailServer {
            id: ServerId::parse("s1").unwrap(),
            label: "S".into(),
            vendor: Vendor::Postmark,
            delivery: Delivery::Smtp(SmtpSettings {
                host: "smtp.postmarkapp.com".into(),
                port: 587,
                authentication: SmtpAuthentication::Plain,
                starttls: true,
            }),
            streams: [
                (EmailType::Broadcast, MessageStream::parse("b").unwrap()),
                (EmailType::Sequence, MessageStream::parse("s").unwrap()),
            ]
            .into_iter()
            .collect(),
            tracking: PostmarkTracking::default(),
            active: true,
            credentials: CredentialHints::default(),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let m = merged(
            &current,
            &obj(json!({"delivery_method": "api", "email_types": ["broadcast"]})),
        );
        assert!(!m.contains_key("smtp"));
        assert_eq!(m["message_streams"], json!({"broadcast": "b"}));
        let m = merged(&current, &obj(json!({"smtp": {"port": 2525}})));
        assert_eq!(m["smtp"]["port"], 2525);
        assert_eq!(m["smtp"]["host"], "smtp.postmarkapp.com");
    }

    #[test]
    fn the_version_comes_from_the_body_or_if_match() {
        let mut h = HeaderMap::new();
        let mut body = obj(json!({"version": 3, "label": "x"}));
        assert_eq!(expected_version(&h, Some(&mut body)).unwrap(), Some(3));
        assert!(!body.contains_key("version"));
        h.insert(IF_MATCH, HeaderValue::from_static("W/\"4\""));
        assert_eq!(expected_version(&h, None).unwrap(), Some(4));
        let mut body = obj(json!({"version": 3}));
        assert!(expected_version(&h, Some(&mut body)).is_err());
        h.insert(IF_MATCH, HeaderValue::from_static("*"));
        assert!(expected_version(&h, None).is_err());
    }
}
