//! The Postmark webhooks this system keeps in place: one per message stream that an API server's email
//! types use, pointing at our webhook URL with HTTP Basic credentials (`postmark` and the current
//! webhook password) and all six triggers on.
//!
//! Reading the state costs one `GET /webhooks` per API server. Putting it right costs, per stream that
//! needs it, one `POST /webhooks` (missing) or `PUT /webhooks/{id}` (drifted, plus
//! `POST /webhooks/{id}/verify` when Postmark still has it paused), then one more `GET /webhooks` per
//! server to show the result. A webhook whose URL is not ours is never touched.
//!
//! Answers never carry the password: problems say what is off, never the values.

use std::collections::BTreeSet;

use domain::servers::{Delivery, EmailServer};
use postmark::{
    HttpAuth, NewWebhook, PostmarkClient, PostmarkError, ServerToken, Webhook, WebhookEdit,
    WebhookTriggers,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use url::Url;

use crate::App;
use crate::http::{ApiError, chain};
use crate::webhook::{BASIC_USER, webhook_url};

/// Where one stream's webhook stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    /// Our webhook is there, verified, with our credentials and every trigger.
    InPlace,
    /// No webhook of ours on the stream.
    Missing,
    /// Ours is there but something is off: see `problems`.
    Drifted,
    /// This system cannot manage it (SMTP server, no token or a token Postmark refuses): see `action`.
    Unmanageable,
    /// Postmark could not be asked (network, 5xx): see `error`.
    Error,
}

/// What a call changed on one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Created,
    Updated,
    Failed,
}

/// One stream of one server.
#[derive(Debug, Clone, Serialize)]
pub struct StreamWebhook {
    pub stream: String,
    pub state: StreamState,
    /// Our webhook's ID in Postmark, when there is one.
    pub webhook_id: Option<i64>,
    /// What is off (drifted), empty otherwise.
    pub problems: Vec<String>,
    /// What to do in Postmark's UI (unmanageable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Postmark's message when it could not be asked or refused a change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What this call changed (sync and refresh only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
}

/// The streams of one server.
#[derive(Debug, Clone, Serialize)]
pub struct ServerWebhooks {
    pub server_id: String,
    pub label: String,
    pub streams: Vec<StreamWebhook>,
}

/// The credentials and URL a managed webhook must have.
pub struct Desired {
    pub url: Url,
    pub auth: HttpAuth,
    pub triggers: WebhookTriggers,
}

impl Desired {
    pub fn new(base: &Url, password: &SecretString) -> Self {
        Self {
            url: webhook_url(base),
            auth: HttpAuth::new(BASIC_USER, password.expose_secret()),
            triggers: WebhookTriggers::all(true),
        }
    }
}

/// The message streams a server's email types use, each once.
pub fn streams_of(server: &EmailServer) -> Vec<String> {
    server
        .streams
        .values()
        .map(|s| s.as_str().to_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// True when `url` is our webhook URL, whatever query or credentials it carries.
pub fn is_ours(url: Option<&str>, ours: &Url) -> bool {
    let Some(Ok(mut url)) = url.map(Url::parse) else {
        return false;
    };
    url.set_query(None);
    url.set_fragment(None);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url == *ours
}

fn stream_of(hook: &Webhook) -> &str {
    hook.message_stream.as_deref().unwrap_or("outbound")
}

/// What is off with one of our webhooks; empty when it is as it should be.
/// The problem of a webhook whose Basic password is not the current one: the only one a refresh mends.
const STALE_PASSWORD: &str = "the Basic credentials' password is not the current webhook password";

pub fn problems(hook: &Webhook, desired: &Desired) -> Vec<String> {
    let mut out = Vec::new();
    if hook
        .url
        .as_deref()
        .and_then(|u| Url::parse(u).ok())
        .is_none_or(|u| u != desired.url)
    {
        out.push(format!(
            "the URL differs from {} (it carries a query, credentials or a fragment)",
            desired.url
        ));
    }
    match &hook.http_auth {
        Some(auth) if auth.username.as_deref().is_some_and(|u| !u.is_empty()) => {
            if auth.username != desired.auth.username {
                out.push(format!(
                    "the Basic credentials' user name is not \"{BASIC_USER}\""
                ));
            }
            if auth.password != desired.auth.password {
                out.push(STALE_PASSWORD.to_owned());
            }
        }
        _ => out.push("no HTTP Basic credentials".to_owned()),
    }
    let t = hook.triggers.unwrap_or_default();
    for (on, name) in [
        (t.delivery_enabled(), "Delivery"),
        (t.bounce_enabled(), "Bounce"),
        (t.spam_complaint_enabled(), "SpamComplaint"),
        (t.open_enabled(), "Open"),
        (t.click_enabled(), "Click"),
        (t.subscription_change_enabled(), "SubscriptionChange"),
    ] {
        if !on {
            out.push(format!("the {name} trigger is off"));
        }
    }
    if t.open.and_then(|o| o.post_first_open_only) == Some(true) {
        out.push(
            "Open posts first opens only (PostFirstOpenOnly): repeated opens are never counted"
                .to_owned(),
        );
    }
    if hook.is_unverified() {
        out.push("Postmark paused it (unverified): it receives no events".to_owned());
    }
    out
}

/// Our webhooks on a stream, best first (fewest problems).
fn ours_on<'a>(
    stream: &str,
    hooks: &'a [Webhook],
    desired: &Desired,
) -> Vec<(&'a Webhook, Vec<String>)> {
    let mut ours: Vec<_> = hooks
        .iter()
        .filter(|h| stream_of(h) == stream && is_ours(h.url.as_deref(), &desired.url))
        .map(|h| (h, problems(h, desired)))
        .collect();
    ours.sort_by_key(|(h, p)| (p.len(), h.id));
    ours
}

/// The state of one stream given the server's webhooks.
pub fn assess(stream: &str, hooks: &[Webhook], desired: &Desired) -> StreamWebhook {
    let ours = ours_on(stream, hooks, desired);
    let (state, webhook_id, problems) = match ours.into_iter().next() {
        None => (StreamState::Missing, None, Vec::new()),
        Some((hook, problems)) if problems.is_empty() => {
            (StreamState::InPlace, Some(hook.id), problems)
        }
        Some((hook, problems)) => (StreamState::Drifted, Some(hook.id), problems),
    };
    StreamWebhook {
        stream: stream.to_owned(),
        state,
        webhook_id,
        problems,
        action: None,
        error: None,
        change: None,
    }
}

/// What an admin does in Postmark's UI for a stream this system cannot manage.
pub fn action_text(server_label: &str, stream: &str, url: &Url) -> String {
    format!(
        "In Postmark: Servers → the server of \"{server_label}\" → the \"{stream}\" message stream \
         → Webhooks → Add webhook. Webhook URL: {url}. Add basic auth credentials: username \
         \"{BASIC_USER}\", password: the current webhook password (the `password` field of GET \
         /api/postmark/webhook). Select all six triggers: Delivery, Bounce (without content), Spam \
         Complaint (without content), Open (not first open only), Link Click and Subscription \
         Change. Save the webhook; after a password refresh, update the password there too."
    )
}

fn every_stream(
    server: &EmailServer,
    state: StreamState,
    action: Option<&str>,
    error: Option<&str>,
    problem: Option<&str>,
) -> ServerWebhooks {
    ServerWebhooks {
        server_id: server.id.to_string(),
        label: server.label.clone(),
        streams: streams_of(server)
            .into_iter()
            .map(|stream| StreamWebhook {
                action: action.map(|a| a.replace("{stream}", &stream)),
                stream,
                state,
                webhook_id: None,
                problems: problem.map(|p| vec![p.to_owned()]).unwrap_or_default(),
                error: error.map(str::to_owned),
                change: None,
            })
            .collect(),
    }
}

/// A server's client, or why there is none (its view with every stream unmanageable).
pub enum Access {
    Client(PostmarkClient),
    No(ServerWebhooks),
}

fn unmanageable(server: &EmailServer, desired: &Desired, why: &str) -> ServerWebhooks {
    let action = action_text(&server.label, "{stream}", &desired.url);
    every_stream(
        server,
        StreamState::Unmanageable,
        Some(&action),
        None,
        Some(why),
    )
}

/// Whether Postmark refused the token itself (not a passing failure).
pub fn is_token_refused(e: &PostmarkError) -> bool {
    e.error_code() == Some(10)
        || e.http_status() == Some(401)
        // A token that cannot even be sent as a header.
        || matches!(e, PostmarkError::Connection { source } if source.is_builder())
}

/// The client for a server's Server API Token, when it has one.
pub async fn access(
    app: &App,
    server: &EmailServer,
    desired: &Desired,
) -> Result<Access, ApiError> {
    if matches!(server.delivery, Delivery::Smtp(_)) {
        return Ok(Access::No(unmanageable(
            server,
            desired,
            "an SMTP server has no Server API Token here, so its webhooks cannot be read or set",
        )));
    }
    match api_client(app, server).await? {
        Some(client) => Ok(Access::Client(client)),
        None => Ok(Access::No(unmanageable(
            server,
            desired,
            "the server's Server API Token is missing from Secrets Manager (set it with PATCH \
             /api/email-servers/{id})",
        ))),
    }
}

/// A client with an API server's Server API Token; `None` when the token is missing.
pub async fn api_client(
    app: &App,
    server: &EmailServer,
) -> Result<Option<PostmarkClient>, ApiError> {
    let credentials = app
        .server_secrets
        .credentials(server)
        .await
        .map_err(|e| ApiError::store("reading the secret of an email server", e))?;
    let Some(token) = credentials.as_deref().and_then(|c| c.api_token.clone()) else {
        return Ok(None);
    };
    match PostmarkClient::new(
        app.config.postmark_api_url.clone(),
        ServerToken::from(token),
        app.config.test_timeout,
    ) {
        Ok(client) => Ok(Some(client)),
        Err(e) => {
            tracing::error!(error = %chain(&e), "a Postmark client could not be built");
            Err(ApiError::internal())
        }
    }
}

/// A server's view from a failed `GET /webhooks`.
fn failed_listing(server: &EmailServer, desired: &Desired, e: &PostmarkError) -> ServerWebhooks {
    if is_token_refused(e) {
        let why = format!("Postmark refused the Server API Token: {e}");
        unmanageable(server, desired, &why)
    } else {
        tracing::warn!(server = %server.id, error = %chain(e), "the webhooks of a server could not be read");
        every_stream(
            server,
            StreamState::Error,
            None,
            Some(&format!("Postmark could not be asked: {e}")),
            None,
        )
    }
}

/// One server's state, read from Postmark (one `GET /webhooks`), nothing changed.
pub async fn server_state(
    app: &App,
    server: &EmailServer,
    desired: &Desired,
) -> Result<ServerWebhooks, ApiError> {
    let client = match access(app, server, desired).await? {
        Access::Client(c) => c,
        Access::No(view) => return Ok(view),
    };
    Ok(read(&client, server, desired).await)
}

async fn read(client: &PostmarkClient, server: &EmailServer, desired: &Desired) -> ServerWebhooks {
    match client.list_webhooks(None).await {
        Ok(hooks) => ServerWebhooks {
            server_id: server.id.to_string(),
            label: server.label.clone(),
            streams: streams_of(server)
                .iter()
                .map(|s| assess(s, &hooks, desired))
                .collect(),
        },
        Err(e) => failed_listing(server, desired, &e),
    }
}

/// One server's state for the answers of other routes (creating and testing a server): never an error,
/// what could not be read is the `error` state.
pub async fn report_for(app: &App, server: &EmailServer) -> ServerWebhooks {
    let password = match app
        .secrets
        .current(&app.config.webhook_password_secret)
        .await
    {
        Ok(current) => current.value.clone(),
        Err(e) => {
            tracing::warn!(error = %chain(&e), "the webhook password could not be read");
            return every_stream(
                server,
                StreamState::Error,
                None,
                Some(
                    "the webhook password cannot be read right now; see GET /api/postmark/webhook",
                ),
                None,
            );
        }
    };
    let desired = Desired::new(&app.config.public_base_url, &password);
    match server_state(app, server, &desired).await {
        Ok(view) => view,
        Err(e) => every_stream(server, StreamState::Error, None, Some(&e.message), None),
    }
}

/// Every server's state.
pub async fn all_states(app: &App, desired: &Desired) -> Result<Vec<ServerWebhooks>, ApiError> {
    let servers = app
        .table
        .servers()
        .await
        .map_err(|e| ApiError::store("listing email servers", e))?;
    let mut out = Vec::with_capacity(servers.len());
    for server in &servers {
        out.push(server_state(app, server, desired).await?);
    }
    Ok(out)
}

/// Creates missing webhooks and edits drifted ones on one server, then reads the result back.
pub async fn sync_server(
    app: &App,
    server: &EmailServer,
    desired: &Desired,
) -> Result<ServerWebhooks, ApiError> {
    let client = match access(app, server, desired).await? {
        Access::Client(c) => c,
        Access::No(view) => return Ok(view),
    };
    let before = read(&client, server, desired).await;
    let mut outcomes: Vec<(String, Change, Option<String>)> = Vec::new();
    let url = desired.url.as_str();
    for stream in &before.streams {
        let outcome = match (stream.state, stream.webhook_id) {
            (StreamState::Missing, _) => {
                let hook = NewWebhook::new(url)
                    .message_stream(&stream.stream)
                    .http_auth(&desired.auth)
                    .triggers(&desired.triggers);
                Some(client.create_webhook(&hook).await.map(|_| Change::Created))
            }
            (StreamState::Drifted, Some(id)) => {
                let edit = WebhookEdit::new()
                    .url(url)
                    .http_auth(&desired.auth)
                    .triggers(&desired.triggers);
                let edited = client.edit_webhook(id, &edit).await;
                Some(match edited {
                    Ok(hook) if hook.is_unverified() => {
                        client.verify_webhook(id).await.and_then(|v| {
                            if v.succeeded() {
                                Ok(Change::Updated)
                            } else {
                                Err(PostmarkError::Api(postmark::ApiError::new(
                                    422,
                                    None,
                                    v.message.unwrap_or_else(|| {
                                        "Postmark could not verify the webhook".into()
                                    }),
                                )))
                            }
                        })
                    }
                    Ok(_) => Ok(Change::Updated),
                    Err(e) => Err(e),
                })
            }
            _ => None,
        };
        match outcome {
            None => {}
            Some(Ok(change)) => outcomes.push((stream.stream.clone(), change, None)),
            Some(Err(e)) => {
                tracing::warn!(server = %server.id, error = %chain(&e), "a managed webhook could not be put right");
                outcomes.push((stream.stream.clone(), Change::Failed, Some(e.to_string())));
            }
        }
    }
    if outcomes.is_empty() {
        return Ok(before);
    }
    tracing::info!(server = %server.id, changed = outcomes.len(), "managed webhooks put right");
    let mut after = read(&client, server, desired).await;
    for stream in &mut after.streams {
        if let Some((_, change, error)) = outcomes.iter().find(|(s, _, _)| *s == stream.stream) {
            stream.change = Some(*change);
            if error.is_some() {
                stream.error.clone_from(error);
            }
        }
    }
    Ok(after)
}

/// After a password refresh: sets the new password on every webhook of ours (in place or drifted) of
/// one server; nothing else is changed.
pub async fn refresh_server(
    app: &App,
    server: &EmailServer,
    desired: &Desired,
) -> Result<ServerWebhooks, ApiError> {
    let client = match access(app, server, desired).await? {
        Access::Client(c) => c,
        Access::No(view) => return Ok(view),
    };
    let hooks = match client.list_webhooks(None).await {
        Ok(hooks) => hooks,
        Err(e) => {
            let mut view = failed_listing(server, desired, &e);
            for s in &mut view.streams {
                s.change = Some(Change::Failed);
            }
            return Ok(view);
        }
    };
    let mut view = ServerWebhooks {
        server_id: server.id.to_string(),
        label: server.label.clone(),
        streams: Vec::new(),
    };
    for stream in streams_of(server) {
        let mut entry = assess(&stream, &hooks, desired);
        let ours = ours_on(&stream, &hooks, desired);
        let mut failures = Vec::new();
        for (hook, _) in &ours {
            let edit = WebhookEdit::new().http_auth(&desired.auth);
            if let Err(e) = client.edit_webhook(hook.id, &edit).await {
                tracing::warn!(server = %server.id, error = %chain(&e), "a managed webhook's password could not be updated");
                failures.push(e.to_string());
            }
        }
        if !ours.is_empty() {
            entry.change = Some(if failures.is_empty() {
                Change::Updated
            } else {
                Change::Failed
            });
            if failures.is_empty() {
                // The password was the only credential problem; it is the new one now.
                entry.problems.retain(|p| p != STALE_PASSWORD);
                if entry.problems.is_empty() {
                    entry.state = StreamState::InPlace;
                }
            } else {
                entry.error = Some(failures.join("; "));
            }
        }
        view.streams.push(entry);
    }
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> Desired {
        Desired::new(
            &Url::parse("https://api.example.com/prod").unwrap(),
            &SecretString::from("pw-1"),
        )
    }

    fn good(id: i64, stream: &str) -> Webhook {
        let d = desired();
        Webhook {
            id,
            url: Some(d.url.to_string()),
            message_stream: Some(stream.into()),
            http_auth: Some(d.auth.clone()),
            triggers: Some(d.triggers),
            status: Some("verified".into()),
            ..Webhook::default()
        }
    }

    #[test]
    fn a_complete_webhook_is_in_place_and_others_are_left_out() {
        let d = desired();
        let mut theirs = good(9, "outbound");
        theirs.url = Some("https://elsewhere.example/hook".into());
        let hooks = vec![theirs, good(3, "outbound")];
        let s = assess("outbound", &hooks, &d);
        assert_eq!(s.state, StreamState::InPlace);
        assert_eq!(s.webhook_id, Some(3));
        assert_eq!(assess("broadcast", &hooks, &d).state, StreamState::Missing);
        let only_theirs = &hooks[..1];
        assert_eq!(
            assess("outbound", only_theirs, &d).state,
            StreamState::Missing
        );
    }

    #[test]
    fn every_kind_of_drift_is_named_without_the_password() {
        let d = desired();
        let mut h = good(1, "outbound");
        h.url = Some(format!("{}?password=pw-0", d.url));
        h.http_auth = Some(HttpAuth::new(BASIC_USER, "pw-0"));
        let mut t = WebhookTriggers::all(true);
        t.click = None;
        t.open = Some(postmark::OpenTrigger {
            enabled: Some(true),
            post_first_open_only: Some(true),
        });
        h.triggers = Some(t);
        h.status = Some("unverified".into());
        let s = assess("outbound", &[h], &d);
        assert_eq!(s.state, StreamState::Drifted);
        let all = s.problems.join("\n");
        for needle in [
            "URL differs",
            "password is not the current",
            "Click trigger is off",
            "first opens only",
            "paused",
        ] {
            assert!(all.contains(needle), "{needle}: {all}");
        }
        assert!(!all.contains("pw-0") && !all.contains("pw-1"), "{all}");
        let mut h = good(1, "outbound");
        h.http_auth = None;
        assert_eq!(
            assess("outbound", &[h], &d).problems,
            vec!["no HTTP Basic credentials".to_owned()]
        );
    }
}
