//! Posting webhooks the way Postmark does: in the background, a bounded number at once, retried on
//! 5xx, 408, 429 and timeouts by the schedule (with `X-PM-Retries-Remaining`), dropped on any other
//! 4xx, each event with an `X-PM-Webhook-Trace-Id` that stays the same across its retries.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use postmark::webhook::WebhookEvent;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, Semaphore, watch};
use url::Url;

use crate::config::{WebhookConfig, WebhookLoss, WebhookOptions};
use crate::faults::XorShift;
use crate::state::lock;

/// The webhook-loss fault with its generator.
#[derive(Debug)]
struct LossState {
    plan: WebhookLoss,
    rng: XorShift,
}

impl LossState {
    fn new(plan: WebhookLoss) -> Self {
        Self {
            rng: XorShift::new(plan.seed),
            plan,
        }
    }

    /// Whether a post of this payload is lost; draws only for matching posts.
    fn loses(&mut self, payload: &serde_json::Value) -> bool {
        if self.plan.share <= 0.0 {
            return false;
        }
        let field = |name: &str| payload.get(name).and_then(serde_json::Value::as_str);
        if self
            .plan
            .tag
            .as_deref()
            .is_some_and(|tag| field("Tag") != Some(tag))
            || self
                .plan
                .stream
                .as_deref()
                .is_some_and(|stream| field("MessageStream") != Some(stream))
        {
            return false;
        }
        self.plan.share >= 1.0 || self.rng.next_unit() < self.plan.share
    }
}

/// Where a webhook posts: the URL without user-info and the Basic credentials (`HttpAuth` wins over
/// user-info), or `None` when the URL is not a URL.
pub(crate) fn endpoint(target: &WebhookConfig) -> Option<(Url, Option<(String, String)>)> {
    let mut url = Url::parse(&target.url).ok()?;
    let mut basic = None;
    if !url.username().is_empty() {
        basic = Some((
            percent_decode(url.username()),
            percent_decode(url.password().unwrap_or_default()),
        ));
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    if let Some(auth) = &target.http_auth {
        basic = Some((auth.username.clone(), auth.password.clone()));
    }
    Some((url, basic))
}

/// Where a webhook post stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not answered with success yet; more attempts may follow.
    Pending,
    /// A 2xx answer.
    Delivered,
    /// A 4xx other than 408 and 429 (or a 3xx): Postmark gives up at once.
    Dropped,
    /// Every retry failed.
    Exhausted,
    /// Cancelled by a reset.
    Cancelled,
    /// Lost for good by the webhook-loss fault: never posted, as if every retry had failed.
    Lost,
}

/// One attempt at posting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookAttempt {
    /// The HTTP status, if an answer came.
    pub status: Option<u16>,
    /// What went wrong without an answer (timeout, connection refused, ...).
    pub error: Option<String>,
    /// The `X-PM-Retries-Remaining` value sent with it.
    pub retries_remaining: u32,
}

/// One webhook event and its posting, as `/_sim/webhooks` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    /// Sequence number.
    pub id: u64,
    /// `X-PM-Webhook-Trace-Id`.
    pub trace_id: String,
    /// `RecordType`.
    pub record_type: String,
    /// `MessageID` of the payload.
    pub message_id: Option<String>,
    /// The recipient (`Recipient`, or `Email` for bounces and complaints).
    pub recipient: Option<String>,
    /// The target, with credentials masked.
    pub url: String,
    /// The JSON body posted.
    pub payload: serde_json::Value,
    /// Every attempt, in order.
    pub attempts: Vec<WebhookAttempt>,
    /// Where it stands.
    pub state: DeliveryState,
}

#[derive(Debug, Default)]
struct DeliveryLog {
    records: VecDeque<WebhookDelivery>,
}

impl DeliveryLog {
    fn get_mut(&mut self, id: u64) -> Option<&mut WebhookDelivery> {
        let first = self.records.front()?.id;
        let index = usize::try_from(id.checked_sub(first)?).ok()?;
        self.records.get_mut(index)
    }
}

/// A post ready to go out.
struct Post {
    id: u64,
    url: Url,
    basic: Option<(String, String)>,
    headers: Vec<(String, String)>,
    body: Bytes,
    trace_id: String,
}

/// The background poster.
pub(crate) struct Outbox {
    client: reqwest::Client,
    options: WebhookOptions,
    max_stored: usize,
    permits: Arc<Semaphore>,
    pending: AtomicUsize,
    idle: Notify,
    next_id: AtomicU64,
    log: Mutex<DeliveryLog>,
    generation: watch::Sender<u64>,
    loss: Mutex<LossState>,
}

impl Outbox {
    pub fn new(options: WebhookOptions, max_stored: usize, loss: WebhookLoss) -> Self {
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            client,
            permits: Arc::new(Semaphore::new(options.workers.max(1))),
            options,
            max_stored,
            pending: AtomicUsize::new(0),
            idle: Notify::new(),
            next_id: AtomicU64::new(1),
            log: Mutex::default(),
            generation: watch::Sender::new(0),
            loss: Mutex::new(LossState::new(loss)),
        }
    }

    /// Replaces the webhook-loss fault (its generator starts again from the seed).
    pub fn set_loss(&self, loss: WebhookLoss) {
        *lock(&self.loss) = LossState::new(loss);
    }

    pub fn loss(&self) -> WebhookLoss {
        lock(&self.loss).plan.clone()
    }

    /// One test post, as Postmark's verification makes: the status, or what went wrong.
    pub async fn test_post(
        &self,
        target: &WebhookConfig,
        body: &serde_json::Value,
    ) -> Result<u16, String> {
        let (url, basic) = endpoint(target).ok_or_else(|| "not a URL".to_owned())?;
        let mut request = self
            .client
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some((username, password)) = &basic {
            let credentials = BASE64.encode(format!("{username}:{password}"));
            request = request.header(http::header::AUTHORIZATION, format!("Basic {credentials}"));
        }
        for (name, value) in &target.http_headers {
            request = request.header(name.as_str(), value.as_str());
        }
        match request.send().await {
            Ok(response) => Ok(response.status().as_u16()),
            Err(error) if error.is_timeout() => Err("timeout".to_owned()),
            Err(error) if error.is_connect() => Err("connection failed".to_owned()),
            Err(error) => Err(error_chain(&error)),
        }
    }

    /// Queues `event` for `target`; returns at once.
    pub fn enqueue(self: &Arc<Self>, target: &WebhookConfig, event: &WebhookEvent) {
        let mut payload = match serde_json::to_value(event) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::error!(%error, "a webhook payload did not serialise");
                return;
            }
        };
        // Postmark writes these as null on a reactivation or a manual change; the payload types
        // leave absent fields out.
        if let (WebhookEvent::SubscriptionChange(_), serde_json::Value::Object(fields)) =
            (event, &mut payload)
        {
            for key in ["MessageID", "SuppressionReason", "Tag"] {
                fields.entry(key).or_insert(serde_json::Value::Null);
            }
        }
        let body = Bytes::from(payload.to_string());
        // Postmark sends user-info credentials as Basic auth; HttpAuth wins when both are given.
        let Some((url, basic)) = endpoint(target) else {
            tracing::warn!("webhook URL is not a URL; event not posted");
            return;
        };
        let lost = lock(&self.loss).loses(&payload);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let trace_id = uuid::Uuid::new_v4().to_string();
        let record = WebhookDelivery {
            id,
            trace_id: trace_id.clone(),
            record_type: event.kind().as_str().to_owned(),
            message_id: event.message_id().map(str::to_owned),
            recipient: event.recipient().map(str::to_owned),
            url: masked(&target.url),
            payload,
            attempts: Vec::new(),
            state: if lost {
                DeliveryState::Lost
            } else {
                DeliveryState::Pending
            },
        };
        {
            let mut log = lock(&self.log);
            while log.records.len() >= self.max_stored.max(1) {
                log.records.pop_front();
            }
            log.records.push_back(record);
        }
        if lost {
            return;
        }
        let post = Post {
            id,
            url,
            basic,
            headers: target
                .http_headers
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            body,
            trace_id,
        };
        self.pending.fetch_add(1, Ordering::SeqCst);
        let outbox = self.clone();
        tokio::spawn(async move {
            outbox.deliver(post).await;
            if outbox.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
                outbox.idle.notify_waiters();
            }
        });
    }

    async fn deliver(&self, post: Post) {
        let mut cancelled = self.generation.subscribe();
        let generation = *cancelled.borrow_and_update();
        let retries = self.options.retry_schedule.len();
        for attempt in 0..=retries {
            let retries_remaining = u32::try_from(retries - attempt).unwrap_or(u32::MAX);
            let result = tokio::select! {
                result = self.attempt(&post, retries_remaining) => result,
                _ = cancelled.changed() => None,
            };
            if *self.generation.borrow() != generation {
                return;
            }
            let Some((status, error)) = result else {
                return;
            };
            let retry = match status {
                Some(status) if (200..300).contains(&status) => false,
                Some(status) => status >= 500 || status == 408 || status == 429,
                None => true,
            };
            let state = match (status, retry) {
                (Some(status), _) if (200..300).contains(&status) => DeliveryState::Delivered,
                (_, false) => DeliveryState::Dropped,
                (_, true) if attempt == retries => DeliveryState::Exhausted,
                (_, true) => DeliveryState::Pending,
            };
            self.record(post.id, status, error, retries_remaining, state);
            if state != DeliveryState::Pending {
                return;
            }
            let wait =
                self.options.retry_schedule[attempt].mul_f64(self.options.delay_scale.max(0.0));
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = cancelled.changed() => return,
                }
            }
        }
    }

    /// One post; `None` when the simulator is shutting down.
    async fn attempt(
        &self,
        post: &Post,
        retries_remaining: u32,
    ) -> Option<(Option<u16>, Option<String>)> {
        let _permit = self.permits.acquire().await.ok()?;
        let mut request = self
            .client
            .post(post.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("X-PM-Webhook-Trace-Id", &post.trace_id)
            .header("X-PM-Retries-Remaining", retries_remaining.to_string())
            .body(post.body.clone());
        if let Some((username, password)) = &post.basic {
            let credentials = BASE64.encode(format!("{username}:{password}"));
            request = request.header(http::header::AUTHORIZATION, format!("Basic {credentials}"));
        }
        for (name, value) in &post.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        Some(match request.send().await {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(error) if error.is_timeout() => (None, Some("timeout".to_owned())),
            Err(error) if error.is_connect() => (None, Some("connection failed".to_owned())),
            Err(error) => (None, Some(error_chain(&error))),
        })
    }

    fn record(
        &self,
        id: u64,
        status: Option<u16>,
        error: Option<String>,
        retries_remaining: u32,
        state: DeliveryState,
    ) {
        if let Some(record) = lock(&self.log).get_mut(id) {
            record.attempts.push(WebhookAttempt {
                status,
                error,
                retries_remaining,
            });
            record.state = state;
        }
    }

    pub fn deliveries(&self) -> Vec<WebhookDelivery> {
        lock(&self.log).records.iter().cloned().collect()
    }

    pub fn attempts(&self) -> u64 {
        lock(&self.log)
            .records
            .iter()
            .map(|record| record.attempts.len() as u64)
            .sum()
    }

    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// Waits until no post is pending, at most `timeout`; true when settled.
    pub async fn settle(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, async {
            loop {
                let idle = self.idle.notified();
                if self.pending.load(Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await
        .is_ok()
    }

    /// Cancels every pending post and forgets the records.
    pub fn reset(&self) {
        self.generation.send_modify(|generation| *generation += 1);
        {
            let mut loss = lock(&self.loss);
            *loss = LossState::new(loss.plan.clone());
        }
        lock(&self.log).records.clear();
    }
}

/// The URL with user-info password and password-like query values masked.
fn masked(url: &str) -> String {
    let Ok(mut parsed) = Url::parse(url) else {
        return "(not a URL)".to_owned();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(key, value)| {
                let secret = ["pass", "secret", "token", "key"]
                    .iter()
                    .any(|word| key.to_ascii_lowercase().contains(word));
                let value = if secret {
                    "***".to_owned()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// User-info arrives percent-encoded in a URL.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = bytes
            .get(index + 1..index + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[index], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_credentials() {
        assert_eq!(
            masked("http://user:pw@127.0.0.1:9/wh/postmark?password=s3cret&x=1"),
            "http://user:***@127.0.0.1:9/wh/postmark?password=***&x=1"
        );
        assert_eq!(masked("http://127.0.0.1/wh"), "http://127.0.0.1/wh");
        assert_eq!(percent_decode("p%40ss%3Aword%2"), "p@ss:word%2");
    }
}
