//! The function's configuration, read once at cold start.

use std::time::Duration as StdDuration;

use chrono::Duration;
use url::Url;

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// Servers' credentials live in `{secrets_prefix}/servers/{id}`.
    pub secrets_prefix: String,
    /// Secret holding the key that signs tracking tokens (to read the real link of a native click).
    pub tracking_key_secret: String,
    pub postmark_api_url: Url,
    pub postmark_timeout: StdDuration,
    pub secrets_ttl: StdDuration,
    /// How far back a server's first run asks.
    pub first_lookback: Duration,
    /// How far before the watermark each run starts again, for events Postmark indexed late.
    pub overlap: Duration,
    /// How long before now a run stops: events younger than this are left to their webhooks.
    pub settle: Duration,
    /// Postmark's retention: nothing older is asked for.
    pub retention_days: i64,
    /// The longest window one run asks about: a backlog (a first run, a long outage) is worked off over
    /// several runs, each well within the function's timeout, each moving the watermark.
    pub max_window: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

fn var(name: &str) -> Result<String, ConfigError> {
    optional(name).ok_or_else(|| ConfigError(format!("{name} is not set")))
}

fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number(name: &str, default: i64) -> Result<i64, ConfigError> {
    match optional(name) {
        Some(v) => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| ConfigError(format!("{name} must be a whole number, 0 or more"))),
        None => Ok(default),
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let api =
            optional("POSTMARK_API_URL").unwrap_or_else(|| postmark::DEFAULT_BASE_URL.to_owned());
        let seconds = |name, default| number(name, default).map(|n| n.unsigned_abs());
        Ok(Self {
            table_name: var("TABLE_NAME")?,
            secrets_prefix: var("SECRETS_PREFIX")?,
            tracking_key_secret: var("TRACKING_KEY_SECRET")?,
            postmark_api_url: Url::parse(&api)
                .map_err(|e| ConfigError(format!("POSTMARK_API_URL is not a URL: {e}")))?,
            postmark_timeout: StdDuration::from_secs(seconds("POSTMARK_TIMEOUT_SECONDS", 20)?),
            secrets_ttl: StdDuration::from_secs(seconds("SECRETS_CACHE_SECONDS", 300)?),
            first_lookback: Duration::hours(number("RECOVERY_FIRST_LOOKBACK_HOURS", 48)?),
            overlap: Duration::seconds(number("RECOVERY_OVERLAP_SECONDS", 900)?),
            settle: Duration::seconds(number("RECOVERY_SETTLE_SECONDS", 300)?),
            retention_days: number("POSTMARK_RETENTION_DAYS", 45)?,
            max_window: Duration::hours(number("RECOVERY_MAX_WINDOW_HOURS", 6)?.max(1)),
        })
    }
}
