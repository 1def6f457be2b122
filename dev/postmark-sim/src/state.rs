//! What the simulator holds: servers, accepted messages, suppressions, bounces, engagement, faults
//! and counters. Each part has its own lock, held only for a few map operations.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use chrono::{DateTime, FixedOffset, Offset as _, Utc};
use postmark::webhook::{SuppressionOrigin, SuppressionReason};
use postmark::{Header, TrackLinks};
use serde::{Deserialize, Serialize};

use crate::address;
use crate::config::{ServerConfig, SimOptions, StreamConfig, StreamType, WebhookConfig};
use crate::faults::{FaultState, Faults, XorShift};
use crate::webhooks::Outbox;

/// Takes a lock even after a panic elsewhere: the data are plain maps that stay consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A configured server.
#[derive(Debug)]
pub(crate) struct Server {
    pub id: u64,
    pub config: ServerConfig,
    pub created_at: DateTime<FixedOffset>,
}

impl Server {
    pub fn stream(&self, id: &str) -> Option<&StreamConfig> {
        self.config.streams.iter().find(|stream| stream.id == id)
    }

    /// The stream of a message that names none: the first transactional stream.
    pub fn default_stream(&self) -> &str {
        self.config
            .streams
            .iter()
            .find(|stream| stream.stream_type == StreamType::Transactional)
            .map_or(crate::config::DEFAULT_TRANSACTIONAL_STREAM, |stream| {
                stream.id.as_str()
            })
    }

    /// Whether `from` (an address) may send: a confirmed address or a verified domain.
    pub fn may_send_as(&self, from: &str) -> bool {
        let domain = address::domain_of(from);
        self.config.sender_signatures.iter().any(|signature| {
            let signature = signature.trim();
            if signature.contains('@') {
                signature.eq_ignore_ascii_case(from)
            } else {
                signature.eq_ignore_ascii_case(&domain)
            }
        })
    }

    /// Whether a recipient files a spam complaint after delivery.
    pub fn complains(&self, recipient_key: &str) -> bool {
        let domain = address::domain_of(recipient_key);
        domain == crate::config::SPAM_COMPLAINT_DOMAIN
            || self.config.spam_complaint_addresses.iter().any(|entry| {
                match entry.trim().strip_prefix('@') {
                    Some(only_domain) => only_domain.eq_ignore_ascii_case(&domain),
                    None => entry.trim().eq_ignore_ascii_case(recipient_key),
                }
            })
    }
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub servers: Vec<Arc<Server>>,
    by_token: HashMap<String, Arc<Server>>,
}

impl Registry {
    /// Header values are case-insensitive for Postmark, tokens included.
    pub fn by_token(&self, token: &str) -> Option<&Arc<Server>> {
        self.by_token.get(&token.trim().to_ascii_lowercase())
    }

    fn with(&self, server: Arc<Server>) -> Self {
        let mut servers: Vec<_> = self
            .servers
            .iter()
            .filter(|existing| existing.id != server.id)
            .cloned()
            .collect();
        servers.push(server);
        servers.sort_by_key(|server| server.id);
        let by_token = servers
            .iter()
            .flat_map(|server| {
                server
                    .config
                    .tokens
                    .iter()
                    .map(move |token| (token.trim().to_ascii_lowercase(), server.clone()))
            })
            .collect();
        Self { servers, by_token }
    }
}

/// How a message reached the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// `POST /email` or `POST /email/batch`.
    Api,
    /// SMTP submission.
    Smtp,
}

/// What happened to one recipient of an accepted message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RecipientOutcome {
    /// Delivered.
    Delivered,
    /// Bounced with this `Type`.
    Bounced {
        /// Postmark's bounce `Type`.
        bounce_type: String,
    },
    /// Delivered, then the recipient complained.
    Complained,
    /// Not sent: the address is suppressed on the stream.
    Inactive,
}

/// An attachment as the simulator records it (its content is dropped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentInfo {
    /// File name.
    pub name: String,
    /// MIME type.
    pub content_type: String,
    /// Inline content ID.
    pub content_id: Option<String>,
    /// Decoded size in bytes.
    pub size: usize,
}

/// A message the simulator accepted, as `/_sim/messages` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Postmark's `MessageID`.
    pub message_id: String,
    /// The server that accepted it.
    pub server_id: u64,
    /// The stream.
    pub message_stream: String,
    /// API or SMTP.
    pub via: Via,
    /// `SubmittedAt`.
    pub submitted_at: String,
    /// `From` as given.
    pub from: String,
    /// `To` as given.
    pub to: Option<String>,
    /// `Cc` as given.
    pub cc: Option<String>,
    /// `Bcc` as given (for SMTP: envelope recipients that are in neither To nor Cc).
    pub bcc: Option<String>,
    /// `ReplyTo`.
    pub reply_to: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// HTML body.
    pub html_body: Option<String>,
    /// Text body.
    pub text_body: Option<String>,
    /// Tag.
    pub tag: Option<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// Custom headers (SMTP: the headers that are neither standard nor `X-PM-*`).
    pub headers: Vec<Header>,
    /// Open tracking in effect (the server's setting wins when on).
    pub track_opens: bool,
    /// Link tracking in effect.
    pub track_links: TrackLinks,
    /// Attachments.
    pub attachments: Vec<AttachmentInfo>,
    /// Every recipient address (To, Cc, Bcc), in order.
    pub recipients: Vec<String>,
    /// What happened to each recipient (by lower-case address).
    pub outcomes: BTreeMap<String, RecipientOutcome>,
}

impl StoredMessage {
    /// Whether `recipient` (any case) received it.
    pub fn was_delivered_to(&self, recipient: &str) -> bool {
        matches!(
            self.outcomes.get(&address::key(recipient)),
            Some(RecipientOutcome::Delivered | RecipientOutcome::Complained)
        )
    }
}

/// Accepted messages, oldest first, bounded.
#[derive(Debug, Default)]
pub(crate) struct MessageLog {
    order: VecDeque<Arc<StoredMessage>>,
    by_id: HashMap<String, Arc<StoredMessage>>,
}

impl MessageLog {
    /// Adds a message; answers the IDs of the messages forgotten to make room.
    pub fn push(&mut self, message: Arc<StoredMessage>, max: usize) -> Vec<String> {
        let mut forgotten = Vec::new();
        while self.order.len() >= max.max(1) {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old.message_id);
                forgotten.push(old.message_id.clone());
            }
        }
        self.by_id
            .insert(message.message_id.clone(), message.clone());
        self.order.push_back(message);
        forgotten
    }

    pub fn get(&self, id: &str) -> Option<Arc<StoredMessage>> {
        self.by_id.get(id).cloned()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<StoredMessage>> {
        self.order.iter()
    }
}

/// One suppressed address on one stream.
#[derive(Debug, Clone)]
pub(crate) struct SuppressionEntry {
    pub address: String,
    pub reason: SuppressionReason,
    pub origin: SuppressionOrigin,
    pub created_at: DateTime<FixedOffset>,
}

/// (server, stream, lower-case address).
pub(crate) type SuppressionKey = (u64, String, String);

/// A bounce as the bounce API knows it.
#[derive(Debug, Clone)]
pub(crate) struct BounceRecord {
    pub server_id: u64,
    pub stream: String,
    pub bounce: postmark::webhook::Bounce,
}

/// Counts for load runs and checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Postmark API requests per endpoint (`POST /email/batch`, ...), whatever their answer.
    pub requests: BTreeMap<String, u64>,
    /// Messages accepted (API and SMTP).
    pub messages_accepted: u64,
    /// Messages refused with an error (per message: a refused batch item counts one).
    pub messages_rejected: u64,
    /// Messages accepted over SMTP.
    pub smtp_messages: u64,
    /// SMTP connections.
    pub smtp_connections: u64,
    /// Webhook posts attempted (retries included).
    pub webhook_attempts: u64,
}

/// One entry of a message's `MessageEvents` (Messages API details).
#[derive(Debug, Clone)]
pub(crate) struct EventRecord {
    pub recipient: String,
    /// `Delivered`, `Bounced`, `Opened`, `LinkClicked`, `SubscriptionChanged`.
    pub kind: &'static str,
    pub at: DateTime<FixedOffset>,
    pub details: serde_json::Value,
}

/// A webhook created with Postmark's Webhooks API (`POST /webhooks`).
#[derive(Debug, Clone)]
pub(crate) struct ApiWebhook {
    pub id: i64,
    pub server_id: u64,
    /// `message_stream` is always set.
    pub config: WebhookConfig,
    /// `Status`: an unverified webhook receives no events.
    pub verified: bool,
}

/// An open or click as the opens and clicks API lists it.
#[derive(Debug, Clone)]
pub(crate) struct EngagementRecord {
    pub server_id: u64,
    pub stream: String,
    pub message_id: String,
    pub recipient: String,
    pub tag: Option<String>,
    /// The list item (Postmark's shape).
    pub item: serde_json::Value,
}

/// Opens and clicks already seen, for `FirstOpen` and one click event per recipient and link.
#[derive(Debug, Default)]
pub(crate) struct Engagement {
    pub opened: HashSet<(String, String)>,
    pub clicked: HashSet<(String, String, String)>,
    /// First opens, oldest first.
    pub opens: Vec<EngagementRecord>,
    /// First clicks per recipient and link, oldest first.
    pub clicks: Vec<EngagementRecord>,
}

/// The simulator's state; shared by the API, SMTP and control handlers.
pub(crate) struct Sim {
    pub options: SimOptions,
    registry: RwLock<Arc<Registry>>,
    next_server_id: AtomicU64,
    pub messages: Mutex<MessageLog>,
    pub suppressions: Mutex<HashMap<SuppressionKey, SuppressionEntry>>,
    pub bounces: Mutex<BTreeMap<i64, BounceRecord>>,
    next_bounce_id: AtomicI64,
    pub engagement: Mutex<Engagement>,
    /// Webhooks of the Webhooks API, by ID.
    pub api_webhooks: Mutex<BTreeMap<i64, ApiWebhook>>,
    next_webhook_id: AtomicI64,
    /// `MessageEvents` by MessageID.
    pub events: Mutex<HashMap<String, Vec<EventRecord>>>,
    /// How long after acceptance a message becomes visible to the Messages API.
    search_delay_ms: AtomicU64,
    pub faults: Mutex<FaultState>,
    pub counters: Mutex<Counters>,
    ids: Mutex<XorShift>,
    pub outbox: Arc<Outbox>,
}

impl Sim {
    pub fn new(options: SimOptions) -> Self {
        // Message IDs must differ between runs (the system under test may keep them), so this
        // generator is seeded from the OS, unlike the fault generator.
        let seed = uuid::Uuid::new_v4().as_u64_pair().0;
        let outbox = Arc::new(Outbox::new(
            options.webhooks.clone(),
            options.max_stored,
            options.webhook_loss.clone(),
        ));
        let search_delay_ms = u64::try_from(options.search_delay.as_millis()).unwrap_or(u64::MAX);
        Self {
            options,
            registry: RwLock::default(),
            next_server_id: AtomicU64::new(1),
            messages: Mutex::default(),
            suppressions: Mutex::default(),
            bounces: Mutex::default(),
            next_bounce_id: AtomicI64::new(1_000_001),
            engagement: Mutex::default(),
            api_webhooks: Mutex::default(),
            next_webhook_id: AtomicI64::new(1),
            events: Mutex::default(),
            search_delay_ms: AtomicU64::new(search_delay_ms),
            faults: Mutex::default(),
            counters: Mutex::default(),
            ids: Mutex::new(XorShift::new(seed)),
            outbox,
        }
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Adds a server, or replaces the one with the same ID.
    pub fn configure_server(&self, mut config: ServerConfig) -> Arc<Server> {
        if config.tokens.is_empty() {
            config.tokens.push(uuid::Uuid::new_v4().to_string());
        }
        let id = match config.id {
            Some(id) => {
                self.next_server_id.fetch_max(id + 1, Ordering::Relaxed);
                id
            }
            None => self.next_server_id.fetch_add(1, Ordering::Relaxed),
        };
        config.id = Some(id);
        let created_at = self.server(id).map_or_else(now, |known| known.created_at);
        let server = Arc::new(Server {
            id,
            config,
            created_at,
        });
        let mut registry = self
            .registry
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *registry = Arc::new(registry.with(server.clone()));
        server
    }

    pub fn server(&self, id: u64) -> Option<Arc<Server>> {
        self.registry()
            .servers
            .iter()
            .find(|server| server.id == id)
            .cloned()
    }

    pub fn message_id(&self) -> String {
        let mut ids = lock(&self.ids);
        let (high, low) = (ids.next_u64(), ids.next_u64());
        drop(ids);
        uuid::Builder::from_random_bytes(((u128::from(high) << 64) | u128::from(low)).to_be_bytes())
            .into_uuid()
            .to_string()
    }

    pub fn webhook_id(&self) -> i64 {
        self.next_webhook_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn bounce_id(&self) -> i64 {
        self.next_bounce_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn count_request(&self, endpoint: &str) {
        let mut counters = lock(&self.counters);
        match counters.requests.get_mut(endpoint) {
            Some(count) => *count += 1,
            None => {
                counters.requests.insert(endpoint.to_owned(), 1);
            }
        }
    }

    pub fn search_delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.search_delay_ms.load(Ordering::Relaxed))
    }

    pub fn set_search_delay(&self, delay: std::time::Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.search_delay_ms.store(ms, Ordering::Relaxed);
    }

    /// Adds an entry to a message's `MessageEvents`.
    pub fn note_event(
        &self,
        message_id: &str,
        recipient: &str,
        kind: &'static str,
        details: serde_json::Value,
        at: DateTime<FixedOffset>,
    ) {
        lock(&self.events)
            .entry(message_id.to_owned())
            .or_default()
            .push(EventRecord {
                recipient: recipient.to_owned(),
                kind,
                at,
                details,
            });
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.faults) = FaultState::new(faults);
    }

    /// Forgets messages, webhooks, suppressions, bounces, engagement, faults and counters; keeps the
    /// servers. Pending webhook posts are cancelled.
    pub fn reset(&self) {
        *lock(&self.messages) = MessageLog::default();
        lock(&self.suppressions).clear();
        lock(&self.bounces).clear();
        *lock(&self.engagement) = Engagement::default();
        lock(&self.events).clear();
        *lock(&self.faults) = FaultState::default();
        *lock(&self.counters) = Counters::default();
        self.outbox.reset();
    }
}

/// Postmark's clock: Eastern Standard Time, as its timestamps show (`...-05:00`), with a fraction of
/// seven digits (never all zeros, so that it is always written out).
pub(crate) fn now() -> DateTime<FixedOffset> {
    let eastern = FixedOffset::west_opt(5 * 3600).unwrap_or_else(|| Utc.fix());
    let at = Utc::now().with_timezone(&eastern);
    if at.timestamp_subsec_nanos() / 100 == 0 {
        at + chrono::Duration::nanoseconds(100)
    } else {
        at
    }
}
