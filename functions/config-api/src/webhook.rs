//! The Postmark webhook's URL and password.
//!
//! The password is one Secrets Manager secret. Refreshing it writes a new version, and Secrets Manager
//! keeps the old one as `AWSPREVIOUS`; the webhook function still accepts that one while less than the
//! grace period has passed since the new one was created, so that Postmark's settings can be updated
//! without losing events.
//!
//! These answers are the only ones that carry a secret: showing the password is what they are for.

use std::time::Duration;

use ::http::StatusCode;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use chrono::{DateTime, Utc};
use rand::RngExt;
use rand::distr::Alphanumeric;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use url::Url;

use crate::App;
use crate::http::{ApiError, ApiResult, chain, json};
use crate::managed_webhooks::{self, Desired, ServerWebhooks};

/// The path the webhook function serves.
pub const WEBHOOK_PATH: &str = "/wh/postmark";
/// The user name of the Basic-auth form (the webhook function checks only the password).
pub const BASIC_USER: &str = "postmark";
const PASSWORD_LEN: usize = 40;

#[derive(Debug, Serialize)]
pub struct WebhookView {
    /// The URL without credentials (for display; Postmark needs one of the forms with the password).
    pub url: String,
    /// The URL with the password as a query parameter: paste it as the webhook URL in Postmark.
    pub url_with_password: String,
    /// The same with HTTP Basic credentials, for Postmark's "HTTP Auth" form.
    pub basic_auth_url: String,
    pub password: String,
    pub password_created_at: Option<String>,
    pub grace_period_seconds: u64,
    /// Until when the password before the last refresh is still accepted, if it still is.
    pub previous_password_valid_until: Option<String>,
}

/// The webhook URL under the public base URL (which may carry a path, e.g. an API Gateway stage).
pub fn webhook_url(base: &Url) -> Url {
    let mut url = base.clone();
    let path = format!("{}{WEBHOOK_PATH}", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(None);
    url.set_fragment(None);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url
}

fn view(
    base: &Url,
    password: &SecretString,
    created_at: Option<DateTime<Utc>>,
    has_previous: bool,
    grace: Duration,
    now: DateTime<Utc>,
) -> WebhookView {
    let url = webhook_url(base);
    let mut with_password = url.clone();
    with_password
        .query_pairs_mut()
        .append_pair("password", password.expose_secret());
    let mut basic = url.clone();
    let _ = basic.set_username(BASIC_USER);
    let _ = basic.set_password(Some(password.expose_secret()));
    let valid_until = match (has_previous, created_at) {
        (true, Some(created)) => chrono::Duration::from_std(grace)
            .ok()
            .map(|g| created + g)
            .filter(|until| *until > now),
        _ => None,
    };
    WebhookView {
        url: url.to_string(),
        url_with_password: with_password.to_string(),
        basic_auth_url: basic.to_string(),
        password: password.expose_secret().to_owned(),
        password_created_at: created_at.map(store::activity::sortable_time),
        grace_period_seconds: grace.as_secs(),
        previous_password_valid_until: valid_until.map(store::activity::sortable_time),
    }
}

/// The view and the current password.
async fn current(app: &App) -> Result<(WebhookView, SecretString), ApiError> {
    let name = &app.config.webhook_password_secret;
    let unreadable = |e: store::StoreError| {
        tracing::error!(error = %chain(&e), "the webhook password could not be read");
        ApiError::unavailable(
            "the webhook password cannot be read right now; if it was never set, POST \
             /api/postmark/webhook/refresh-password creates it",
        )
    };
    let current = app.secrets.current(name).await.map_err(unreadable)?;
    let previous = app.secrets.previous(name).await.map_err(unreadable)?;
    Ok((
        view(
            &app.config.public_base_url,
            &current.value,
            current.created_at,
            previous.is_some(),
            app.config.webhook_password_grace,
            Utc::now(),
        ),
        current.value.clone(),
    ))
}

/// The URL and password, and where each API server's managed webhooks stand (one `GET /webhooks` per
/// API server).
pub async fn get(app: &App) -> ApiResult {
    let (view, password) = current(app).await?;
    let desired = Desired::new(&app.config.public_base_url, &password);
    let servers = managed_webhooks::all_states(app, &desired).await?;
    Ok(json(
        StatusCode::OK,
        &WithServers {
            view,
            servers,
            note: None,
        },
    ))
}

/// `POST /api/postmark/webhook/sync`: creates the missing managed webhooks and edits the drifted ones.
pub async fn sync(app: &App) -> ApiResult {
    let (view, password) = current(app).await?;
    let desired = Desired::new(&app.config.public_base_url, &password);
    let servers = app
        .table
        .servers()
        .await
        .map_err(|e| ApiError::store("listing email servers", e))?;
    let mut out = Vec::with_capacity(servers.len());
    for server in &servers {
        out.push(managed_webhooks::sync_server(app, server, &desired).await?);
    }
    Ok(json(
        StatusCode::OK,
        &WithServers {
            view,
            servers: out,
            note: None,
        },
    ))
}

/// The webhook view with every server's managed webhooks.
#[derive(Debug, Serialize)]
struct WithServers {
    #[serde(flatten)]
    view: WebhookView,
    servers: Vec<ServerWebhooks>,
    /// What happens to the previous password (refresh only).
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// A new random password: letters and digits only, so that it needs no escaping in a URL.
fn new_password() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(PASSWORD_LEN)
        .map(char::from)
        .collect()
}

pub async fn refresh(app: &App) -> ApiResult {
    let name = &app.config.webhook_password_secret;
    let client = app.secrets.client();
    let password = new_password();
    let put = client
        .put_secret_value()
        .secret_id(name)
        .secret_string(&password)
        .send()
        .await;
    let outcome = match put {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .and_then(|s| s.code())
                .is_some_and(|c| c == "ResourceNotFoundException") =>
        {
            client
                .create_secret()
                .name(name)
                .description("Password of the Postmark webhook URL")
                .secret_string(&password)
                .send()
                .await
                .map(|_| ())
                .map_err(store::error::classify)
        }
        Err(e) => Err(store::error::classify(e)),
    };
    app.secrets.invalidate(name).await;
    outcome.map_err(|e| ApiError::store("refreshing the webhook password", e))?;
    tracing::info!(
        grace_seconds = app.config.webhook_password_grace.as_secs(),
        "webhook password refreshed"
    );
    let (view, password) = current(app).await?;
    let desired = Desired::new(&app.config.public_base_url, &password);
    let servers = app
        .table
        .servers()
        .await
        .map_err(|e| ApiError::store("listing email servers", e))?;
    let mut out = Vec::with_capacity(servers.len());
    for server in &servers {
        out.push(managed_webhooks::refresh_server(app, server, &desired).await?);
    }
    let note = format!(
        "The previous password stays valid for the grace period ({} seconds{}), so webhooks that \
         could not be updated (see each stream's `change` and `error`) and events already on their \
         way keep working until then; put them right before it ends (POST \
         /api/postmark/webhook/sync, or by hand in Postmark for unmanageable streams).",
        app.config.webhook_password_grace.as_secs(),
        view.previous_password_valid_until
            .as_deref()
            .map(|u| format!(", until {u}"))
            .unwrap_or_default()
    );
    Ok(json(
        StatusCode::OK,
        &WithServers {
            view,
            servers: out,
            note: Some(note),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_base_path_and_carry_the_password() {
        let base = Url::parse("https://api.example.com/prod/").unwrap();
        let pw = SecretString::from("Abc123");
        let now = Utc::now();
        let v = view(&base, &pw, Some(now), true, Duration::from_secs(60), now);
        assert_eq!(v.url, "https://api.example.com/prod/wh/postmark");
        assert_eq!(
            v.url_with_password,
            "https://api.example.com/prod/wh/postmark?password=Abc123"
        );
        assert_eq!(
            v.basic_auth_url,
            "https://postmark:Abc123@api.example.com/prod/wh/postmark"
        );
        assert!(v.previous_password_valid_until.is_some());
        let later = now + chrono::Duration::seconds(61);
        let v = view(&base, &pw, Some(now), true, Duration::from_secs(60), later);
        assert!(v.previous_password_valid_until.is_none());
        let v = view(&base, &pw, Some(now), false, Duration::from_secs(60), now);
        assert!(v.previous_password_valid_until.is_none());
    }

    #[test]
    fn passwords_are_long_and_url_safe() {
        let a = new_password();
        assert_eq!(a.len(), PASSWORD_LEN);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, new_password());
    }
}
