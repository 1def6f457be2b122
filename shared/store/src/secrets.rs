//! Secrets Manager, read through an in-process cache: one `GetSecretValue` per secret and version stage
//! per TTL, never one per request. The previous version (`AWSPREVIOUS`) is readable too, so that a
//! refreshed webhook password keeps the old one valid for a grace period.
//!
//! Stale if error: when a refresh fails transiently (Secrets Manager throttling or unreachable) and a
//! value was fetched before, that value is served for up to [`DEFAULT_STALE_FOR`] (or
//! [`SecretCache::with_stale_for`]) past its TTL, with a warning per failed refresh (never the value);
//! refreshes are tried again at most once per [`RETRY_AFTER_FAILURE`] meanwhile. After the bound, the
//! error.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::{StoreError, classify};

/// How long past its TTL a value is served while Secrets Manager fails, unless the cache is told.
pub const DEFAULT_STALE_FOR: Duration = Duration::from_secs(6 * 3600);
/// While a stale value is served, how often a refresh is tried again (at most; never more often than
/// the TTL).
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// A secret's value with what the rotation logic needs to know about it.
#[derive(Clone)]
pub struct SecretValue {
    pub value: SecretString,
    pub version_id: Option<String>,
    /// When this version was created: for the current version, when the secret was last refreshed.
    pub created_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretValue")
            .field("value", &"[redacted]")
            .field("version_id", &self.version_id)
            .field("created_at", &self.created_at)
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    Current,
    Previous,
}

impl Stage {
    fn label(self) -> &'static str {
        match self {
            Self::Current => "AWSCURRENT",
            Self::Previous => "AWSPREVIOUS",
        }
    }
}

#[derive(Debug)]
struct Cached {
    /// When the value was last fetched successfully.
    fetched: Instant,
    value: Option<Arc<SecretValue>>,
    /// When a refresh last failed, while the value is served stale.
    failed: Option<Instant>,
}

/// The cache. Cheap to clone; clones share entries.
#[derive(Clone, Debug)]
pub struct SecretCache {
    client: Client,
    ttl: Duration,
    stale_for: Duration,
    entries: Arc<Mutex<HashMap<(String, Stage), Cached>>>,
}

impl SecretCache {
    /// A cache keeping values for `ttl`, and serving them up to [`DEFAULT_STALE_FOR`] longer while
    /// Secrets Manager fails.
    pub fn new(client: Client, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            stale_for: DEFAULT_STALE_FOR,
            entries: Arc::default(),
        }
    }

    /// How long past its TTL a value fetched before is served while refreshes fail transiently
    /// (`Duration::ZERO`: never).
    pub fn with_stale_for(mut self, stale_for: Duration) -> Self {
        self.stale_for = stale_for;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The current value of a secret. A missing secret is an error.
    pub async fn current(&self, name: &str) -> Result<Arc<SecretValue>, StoreError> {
        self.current_within(name, self.ttl).await
    }

    /// The current value, fetched again if the cached one is older than `max_age`: after a credential
    /// did not match, this notices a refresh made by another process without waiting for the TTL, while
    /// a stream of wrong credentials still costs at most one fetch per `max_age`.
    pub async fn current_within(
        &self,
        name: &str,
        max_age: Duration,
    ) -> Result<Arc<SecretValue>, StoreError> {
        self.get(name, Stage::Current, max_age.min(self.ttl))
            .await?
            .ok_or_else(|| StoreError::Other(format!("secret {name} has no current value").into()))
    }

    /// The previous value, if the secret was ever refreshed.
    pub async fn previous(&self, name: &str) -> Result<Option<Arc<SecretValue>>, StoreError> {
        self.previous_within(name, self.ttl).await
    }

    /// The previous value, fetched again if the cached one is older than `max_age`.
    pub async fn previous_within(
        &self,
        name: &str,
        max_age: Duration,
    ) -> Result<Option<Arc<SecretValue>>, StoreError> {
        self.get(name, Stage::Previous, max_age.min(self.ttl)).await
    }

    /// Forgets what is cached for `name` (after this process changed the secret itself).
    pub async fn invalidate(&self, name: &str) {
        let mut entries = self.entries.lock().await;
        entries.retain(|(n, _), _| n != name);
    }

    async fn get(
        &self,
        name: &str,
        stage: Stage,
        max_age: Duration,
    ) -> Result<Option<Arc<SecretValue>>, StoreError> {
        let cache_key = (name.to_owned(), stage);
        // The lock is held across the fetch so that concurrent first requests make one call, not many.
        let mut entries = self.entries.lock().await;
        if let Some(cached) = entries.get(&cache_key) {
            if cached.fetched.elapsed() < max_age {
                return Ok(cached.value.clone());
            }
            if self.servable_stale(cached)
                && cached
                    .failed
                    .is_some_and(|f| f.elapsed() < RETRY_AFTER_FAILURE.min(self.ttl))
            {
                return Ok(cached.value.clone());
            }
        }
        match self.fetch(name, stage).await {
            Ok(value) => {
                let cached = Cached {
                    fetched: Instant::now(),
                    value: value.clone(),
                    failed: None,
                };
                entries.insert(cache_key, cached);
                Ok(value)
            }
            Err(e) if e.is_transient() => match entries.get_mut(&cache_key) {
                Some(cached) if self.servable_stale(cached) => {
                    tracing::warn!(
                        secret = name,
                        stage = stage.label(),
                        age_secs = cached.fetched.elapsed().as_secs(),
                        error = %e,
                        "secret refresh failed; serving the value fetched before"
                    );
                    cached.failed = Some(Instant::now());
                    Ok(cached.value.clone())
                }
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Whether a value fetched before may still stand in for a fresh one.
    fn servable_stale(&self, cached: &Cached) -> bool {
        cached.fetched.elapsed() < self.ttl.saturating_add(self.stale_for)
    }

    async fn fetch(
        &self,
        name: &str,
        stage: Stage,
    ) -> Result<Option<Arc<SecretValue>>, StoreError> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(name)
            .version_stage(stage.label())
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            // No AWSPREVIOUS version yet: the secret was never refreshed.
            Err(e)
                if stage == Stage::Previous
                    && e.as_service_error()
                        .and_then(|s| s.code())
                        .is_some_and(|c| c == "ResourceNotFoundException") =>
            {
                return Ok(None);
            }
            Err(e) => return Err(classify(e)),
        };
        let Some(text) = out.secret_string else {
            return Err(StoreError::Other(
                format!("secret {name} has no string value").into(),
            ));
        };
        Ok(Some(Arc::new(SecretValue {
            value: SecretString::from(text),
            version_id: out.version_id,
            created_at: out
                .created_date
                .and_then(|d| DateTime::from_timestamp(d.secs(), d.subsec_nanos())),
        })))
    }
}
