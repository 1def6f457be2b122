//! The function's configuration, read once at cold start.

use std::time::Duration;

use url::Url;

use crate::{Backoff, BreakerPolicy};

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// Servers' credentials live in `{secrets_prefix}/servers/{id}`.
    pub secrets_prefix: String,
    /// Secret holding the key that signs tracking tokens.
    pub tracking_key_secret: String,
    /// Where the webhook function serves `/t/o/{token}` and `/t/c/{token}` (no trailing slash).
    pub tracking_base_url: String,
    pub postmark_api_url: Url,
    /// Extra root CA (PEM) trusted for SMTP: the local Postmark simulator's.
    pub smtp_extra_ca_pem: Option<String>,
    /// How long a claim holds a job. Longer than the function's timeout, so that a live run never loses
    /// its claim; a crashed run's claim lets the job go after it.
    pub claim_lease: Duration,
    pub secrets_ttl: Duration,
    /// How long the list of email servers is cached.
    pub servers_ttl: Duration,
    pub postmark_timeout: Duration,
    /// Pooled SMTP connections per server (Postmark advises at most 10 per IP).
    pub smtp_connections: u32,
    /// How long after a call's timeout Postmark's message search is trusted to show what the call
    /// delivered: a job not found by then is sent again.
    pub search_settle: Duration,
    /// The time kept free at the end of an invocation for the outcome writes.
    pub deadline_margin: Duration,
    /// The waits of retried jobs.
    pub backoff: Backoff,
    /// The servers' circuit breakers.
    pub breaker: BreakerPolicy,
    /// The send queue (for handing messages back with a wait); read from the records' ARN if unset.
    pub queue_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

fn var(name: &str) -> Result<String, ConfigError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ConfigError(format!("{name} is not set")))
}

fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number(name: &str, default: u64) -> Result<u64, ConfigError> {
    match optional(name) {
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| ConfigError(format!("{name} must be a whole number"))),
        None => Ok(default),
    }
}

fn seconds(name: &str, default: Duration) -> Result<Duration, ConfigError> {
    number(name, default.as_secs()).map(Duration::from_secs)
}

/// A base URL for links in emails: absolute http(s), kept without a trailing slash.
pub fn tracking_base(text: &str) -> Result<String, ConfigError> {
    let url = Url::parse(text.trim())
        .map_err(|e| ConfigError(format!("TRACKING_BASE_URL is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError(
            "TRACKING_BASE_URL must be an absolute http or https URL".into(),
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let api =
            optional("POSTMARK_API_URL").unwrap_or_else(|| postmark::DEFAULT_BASE_URL.to_owned());
        let smtp_extra_ca_pem = match optional("SMTP_EXTRA_CA_PEM_FILE") {
            Some(path) => Some(std::fs::read_to_string(&path).map_err(|e| {
                ConfigError(format!("SMTP_EXTRA_CA_PEM_FILE {path} cannot be read: {e}"))
            })?),
            None => None,
        };
        let (backoff, breaker) = (Backoff::default(), BreakerPolicy::default());
        Ok(Self {
            table_name: var("TABLE_NAME")?,
            secrets_prefix: var("SECRETS_PREFIX")?,
            tracking_key_secret: var("TRACKING_KEY_SECRET")?,
            tracking_base_url: tracking_base(&var("TRACKING_BASE_URL")?)?,
            postmark_api_url: Url::parse(&api)
                .map_err(|e| ConfigError(format!("POSTMARK_API_URL is not a URL: {e}")))?,
            smtp_extra_ca_pem,
            claim_lease: Duration::from_secs(number("CLAIM_LEASE_SECONDS", 180)?),
            secrets_ttl: Duration::from_secs(number("SECRETS_CACHE_SECONDS", 300)?),
            servers_ttl: Duration::from_secs(number("SERVERS_CACHE_SECONDS", 30)?),
            postmark_timeout: Duration::from_secs(number("POSTMARK_TIMEOUT_SECONDS", 20)?),
            smtp_connections: u32::try_from(number("SMTP_CONNECTIONS", 4)?)
                .map_err(|_| ConfigError("SMTP_CONNECTIONS is too large".into()))?,
            search_settle: Duration::from_secs(number("SEARCH_SETTLE_SECONDS", 120)?),
            deadline_margin: Duration::from_secs(number("DEADLINE_MARGIN_SECONDS", 10)?),
            backoff: Backoff {
                base: seconds("RETRY_BASE_SECONDS", backoff.base)?,
                max: seconds("RETRY_MAX_SECONDS", backoff.max)?,
            },
            breaker: BreakerPolicy {
                threshold: i64::try_from(number(
                    "BREAKER_THRESHOLD",
                    u64::try_from(breaker.threshold).unwrap_or(5),
                )?)
                .map_err(|_| ConfigError("BREAKER_THRESHOLD is too large".into()))?,
                cooldown: seconds("BREAKER_COOLDOWN_SECONDS", breaker.cooldown)?,
                max_cooldown: seconds("BREAKER_MAX_COOLDOWN_SECONDS", breaker.max_cooldown)?,
                probe_jobs: usize::try_from(number(
                    "BREAKER_PROBE_JOBS",
                    breaker.probe_jobs as u64,
                )?)
                .unwrap_or(breaker.probe_jobs),
                probe_lease: seconds("BREAKER_PROBE_LEASE_SECONDS", breaker.probe_lease)?,
            },
            queue_url: optional("SEND_QUEUE_URL"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_base_urls_are_absolute_and_lose_the_trailing_slash() {
        assert_eq!(
            tracking_base("https://t.example.com/prod/").unwrap(),
            "https://t.example.com/prod"
        );
        assert_eq!(
            tracking_base("https://t.example.com").unwrap(),
            "https://t.example.com"
        );
        assert!(tracking_base("/t").is_err());
        assert!(tracking_base("ftp://t.example.com").is_err());
    }
}
