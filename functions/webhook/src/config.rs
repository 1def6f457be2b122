//! The function's configuration, read once at cold start.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// Secret holding the webhook password (refreshed through the config API).
    pub webhook_password_secret: String,
    /// Secret holding the key that signs tracking tokens.
    pub tracking_key_secret: String,
    /// How long the previous password stays valid after a refresh.
    pub password_grace: chrono::Duration,
    /// How long secrets are cached in the process.
    pub secrets_ttl: Duration,
    /// After a password mismatch, the password is fetched again if the cached one is older than this:
    /// a refresh elsewhere is noticed at once, and wrong passwords cost at most one fetch per interval.
    pub password_recheck: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

fn var(name: &str) -> Result<String, ConfigError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ConfigError(format!("{name} is not set")))
}

fn seconds(name: &str, default: u64) -> Result<u64, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| ConfigError(format!("{name} must be a number of seconds"))),
        _ => Ok(default),
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: var("TABLE_NAME")?,
            webhook_password_secret: var("WEBHOOK_PASSWORD_SECRET")?,
            tracking_key_secret: var("TRACKING_KEY_SECRET")?,
            password_grace: chrono::Duration::seconds(seconds(
                "WEBHOOK_PASSWORD_GRACE_SECONDS",
                86_400,
            )? as i64),
            secrets_ttl: Duration::from_secs(seconds("SECRETS_CACHE_SECONDS", 300)?),
            password_recheck: Duration::from_secs(seconds("WEBHOOK_PASSWORD_RECHECK_SECONDS", 5)?),
        })
    }
}
