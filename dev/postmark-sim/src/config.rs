//! What the simulator is told: its servers (tokens, streams, sender signatures, webhooks) and how it runs.
//!
//! These are the simulator's own JSON shapes (snake_case), used by the control API under `/_sim/` and by
//! the library; Postmark's shapes (PascalCase) appear only on the Postmark API and in webhooks.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use postmark::TrackLinks;
use serde::{Deserialize, Serialize};

/// The default transactional stream every Postmark server has.
pub const DEFAULT_TRANSACTIONAL_STREAM: &str = "outbound";
/// The ID Postmark gives the default broadcast stream.
pub const DEFAULT_BROADCAST_STREAM: &str = "broadcast";
/// Any address at this domain files a spam complaint after delivery. A convention of the simulator,
/// not of Postmark (Postmark has no way to fake a complaint).
pub const SPAM_COMPLAINT_DOMAIN: &str = "spam-complaint.postmarkapp.com";
/// Postmark's fake-bounce domain: `<Type>@bounce-testing.postmarkapp.com` bounces with that type.
pub const BOUNCE_TESTING_DOMAIN: &str = "bounce-testing.postmarkapp.com";

/// One Postmark "server": its API tokens, streams, sender signatures, tracking defaults and webhooks.
///
/// ```
/// use postmark_sim::{ServerConfig, WebhookConfig};
///
/// let server = ServerConfig::new("server-token")
///     .sender_domain("example.com")
///     .webhook(WebhookConfig::new("http://127.0.0.1:9000/wh/postmark?password=s3cret"));
/// assert_eq!(server.streams.len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The server's ID (`ServerID` in webhooks); assigned when absent. A known ID replaces that server.
    pub id: Option<u64>,
    /// The server's name.
    pub name: String,
    /// Server API tokens: each works as `X-Postmark-Server-Token` and as SMTP user name and password.
    pub tokens: Vec<String>,
    /// Message streams. The first transactional one is the default for a message without a stream.
    pub streams: Vec<StreamConfig>,
    /// Sender signatures: addresses (`shop@example.com`) and whole domains (`example.com`).
    pub sender_signatures: Vec<String>,
    /// Webhook endpoints.
    pub webhooks: Vec<WebhookConfig>,
    /// Off: no webhook at all is posted for this server (pure send loads).
    pub webhooks_enabled: bool,
    /// The server's open tracking: when on, every HTML message is tracked whatever the message says.
    pub track_opens: bool,
    /// The server's link tracking, used when a message does not say.
    pub track_links: Option<TrackLinks>,
    /// Recipients that file a spam complaint after delivery: addresses, or `@domain` for a whole
    /// domain. Any address at [`SPAM_COMPLAINT_DOMAIN`] complains too.
    pub spam_complaint_addresses: Vec<String>,
    /// Whether SMTP submission is allowed (`SmtpApiActivated`).
    pub smtp_api_activated: bool,
    /// `DeliveryType`: `Live` or `Sandbox` (both deliver nothing here).
    pub delivery_type: String,
    /// `PostFirstOpenOnly`: the server-level webhooks (those configured here, like Postmark's
    /// legacy hook URLs) get only the first open of each recipient.
    pub post_first_open_only: bool,
    /// `EnableSmtpApiErrorHooks`: SMTP API errors are posted to the Bounce webhooks.
    pub enable_smtp_api_error_hooks: bool,
    /// `IncludeBounceContentInHook`: the server-level webhooks carry the bounce dump in `Content`.
    pub include_bounce_content_in_hook: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            id: None,
            name: "Simulated server".to_owned(),
            tokens: Vec::new(),
            streams: vec![
                StreamConfig::new(DEFAULT_TRANSACTIONAL_STREAM, StreamType::Transactional)
                    .name("Default Transactional Stream"),
                StreamConfig::new(DEFAULT_BROADCAST_STREAM, StreamType::Broadcasts)
                    .name("Default Broadcast Stream"),
            ],
            sender_signatures: Vec::new(),
            webhooks: Vec::new(),
            webhooks_enabled: true,
            track_opens: false,
            track_links: None,
            spam_complaint_addresses: Vec::new(),
            smtp_api_activated: true,
            delivery_type: "Live".to_owned(),
            post_first_open_only: false,
            enable_smtp_api_error_hooks: false,
            include_bounce_content_in_hook: false,
        }
    }
}

impl ServerConfig {
    /// A server with one API token, the default streams (`outbound`, `broadcast`), no sender signature.
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            tokens: vec![token.into()],
            ..Self::default()
        }
    }

    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Adds a verified domain: any address at it may send.
    pub fn sender_domain(mut self, domain: impl Into<String>) -> Self {
        self.sender_signatures.push(domain.into());
        self
    }

    /// Adds a confirmed sender signature for one address.
    pub fn sender_address(mut self, address: impl Into<String>) -> Self {
        self.sender_signatures.push(address.into());
        self
    }

    /// Adds a stream (replacing one with the same ID).
    pub fn stream(mut self, stream: StreamConfig) -> Self {
        self.streams.retain(|existing| existing.id != stream.id);
        self.streams.push(stream);
        self
    }

    /// Adds a webhook endpoint.
    pub fn webhook(mut self, webhook: WebhookConfig) -> Self {
        self.webhooks.push(webhook);
        self
    }

    /// Turns every webhook of this server on or off.
    pub fn webhooks_enabled(mut self, on: bool) -> Self {
        self.webhooks_enabled = on;
        self
    }

    /// Sets the server's open tracking.
    pub fn track_opens(mut self, on: bool) -> Self {
        self.track_opens = on;
        self
    }

    /// Sets the server's link tracking.
    pub fn track_links(mut self, mode: TrackLinks) -> Self {
        self.track_links = Some(mode);
        self
    }

    /// Adds a recipient (address or `@domain`) that files a spam complaint after delivery.
    pub fn spam_complaint_address(mut self, address: impl Into<String>) -> Self {
        self.spam_complaint_addresses.push(address.into());
        self
    }
}

/// A stream's type, as Postmark writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StreamType {
    /// `Transactional`.
    Transactional,
    /// `Broadcasts` (plural, as Postmark spells it).
    Broadcasts,
}

impl StreamType {
    /// The value as Postmark writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transactional => "Transactional",
            Self::Broadcasts => "Broadcasts",
        }
    }
}

/// One message stream of a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// The stream ID (`MessageStream` in a send).
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub stream_type: StreamType,
    /// Display name (defaults to the ID).
    #[serde(default)]
    pub name: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
}

impl StreamConfig {
    /// A stream.
    pub fn new(id: impl Into<String>, stream_type: StreamType) -> Self {
        Self {
            id: id.into(),
            stream_type,
            name: None,
            description: None,
        }
    }

    /// Sets the display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// A webhook endpoint of a server, like Postmark's `POST /webhooks` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to post. A password may sit in the query (`?password=...`) or in the user-info
    /// (`http://user:pass@host/...`, sent as Basic credentials, as Postmark does).
    pub url: String,
    /// The stream whose events go here; absent = every stream of the server.
    #[serde(default)]
    pub message_stream: Option<String>,
    /// Basic credentials (`HttpAuth`).
    #[serde(default)]
    pub http_auth: Option<HttpAuth>,
    /// Extra headers sent with every post (`HttpHeaders`).
    #[serde(default)]
    pub http_headers: BTreeMap<String, String>,
    /// Which record types are posted.
    #[serde(default)]
    pub triggers: Triggers,
}

impl WebhookConfig {
    /// An endpoint for every stream and every record type.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            message_stream: None,
            http_auth: None,
            http_headers: BTreeMap::new(),
            triggers: Triggers::default(),
        }
    }

    /// Limits it to one stream.
    pub fn message_stream(mut self, stream: impl Into<String>) -> Self {
        self.message_stream = Some(stream.into());
        self
    }

    /// Sets Basic credentials.
    pub fn http_auth(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.http_auth = Some(HttpAuth {
            username: username.into(),
            password: password.into(),
        });
        self
    }

    /// Adds a header.
    pub fn http_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.http_headers.insert(name.into(), value.into());
        self
    }

    /// Sets the triggers.
    pub fn triggers(mut self, triggers: Triggers) -> Self {
        self.triggers = triggers;
        self
    }
}

/// Basic credentials for a webhook.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpAuth {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpAuth")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// Which record types a webhook receives (all of them by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Triggers {
    /// Delivery.
    pub delivery: bool,
    /// Bounce.
    pub bounce: bool,
    /// Include the bounce dump in `Content`.
    pub bounce_include_content: bool,
    /// SpamComplaint.
    pub spam_complaint: bool,
    /// Include the complaint dump in `Content`.
    pub spam_complaint_include_content: bool,
    /// Open.
    pub open: bool,
    /// Post only the first open of each recipient.
    pub post_first_open_only: bool,
    /// Click.
    pub click: bool,
    /// SubscriptionChange.
    pub subscription_change: bool,
}

impl Default for Triggers {
    fn default() -> Self {
        Self {
            delivery: true,
            bounce: true,
            bounce_include_content: false,
            spam_complaint: true,
            spam_complaint_include_content: false,
            open: true,
            post_first_open_only: false,
            click: true,
            subscription_change: true,
        }
    }
}

/// How webhooks are posted.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookOptions {
    /// At most this many posts in flight at once.
    pub workers: usize,
    /// How long to wait for an answer; past it the post counts as a timeout (and is retried).
    pub timeout: Duration,
    /// The wait before each retry: after the first attempt fails, the first entry, and so on. Its
    /// length is the number of retries.
    pub retry_schedule: Vec<Duration>,
    /// Multiplies every wait of the schedule: 1.0 is Postmark's pace, 0.0 retries at once (tests).
    pub delay_scale: f64,
}

impl WebhookOptions {
    /// Postmark's newest documented schedule (9 retries over about 72 minutes: 1, 5 and 15 minutes,
    /// then 1, 5, 10, 10, 10 and 15 minutes; ActiveCampaign/postmark-skills#6).
    pub fn postmark_schedule() -> Vec<Duration> {
        [1, 5, 15, 1, 5, 10, 10, 10, 15]
            .into_iter()
            .map(|minutes| Duration::from_secs(minutes * 60))
            .collect()
    }
}

impl Default for WebhookOptions {
    fn default() -> Self {
        Self {
            workers: 32,
            timeout: Duration::from_secs(10),
            retry_schedule: Self::postmark_schedule(),
            delay_scale: 1.0,
        }
    }
}

/// How the simulator runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SimOptions {
    /// Where the HTTP API (Postmark's API and `/_sim/`) listens; port 0 picks a free port.
    pub api_addr: SocketAddr,
    /// Where SMTP listens (port 0 picks a free one); `None` = no SMTP listener.
    pub smtp_addr: Option<SocketAddr>,
    /// Refuse AUTH and MAIL before STARTTLS.
    pub smtp_require_tls: bool,
    /// The host name in SMTP greetings.
    pub hostname: String,
    /// Webhook posting.
    pub webhooks: WebhookOptions,
    /// Accepted messages kept for inspection (the oldest are forgotten first); webhook records too.
    pub max_stored: usize,
    /// How long after acceptance a message appears in the Messages API (search and details):
    /// Postmark's search is eventually consistent, and code that looks a send up must cope.
    pub search_delay: Duration,
    /// Webhook events lost for good (as if every retry had failed).
    pub webhook_loss: WebhookLoss,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            api_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            smtp_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            smtp_require_tls: true,
            hostname: "localhost".to_owned(),
            webhooks: WebhookOptions::default(),
            max_stored: 200_000,
            search_delay: Duration::ZERO,
            webhook_loss: WebhookLoss::default(),
        }
    }
}

impl SimOptions {
    /// Free loopback ports, retries without waiting, a short webhook timeout: for tests.
    pub fn for_tests() -> Self {
        Self {
            webhooks: WebhookOptions {
                workers: 8,
                timeout: Duration::from_secs(5),
                delay_scale: 0.0,
                ..WebhookOptions::default()
            },
            ..Self::default()
        }
    }
}

/// A fault of the webhook posting: a seeded share of the webhook posts (one event to one webhook)
/// is never delivered, as if every retry had failed. Everything else about their messages (search,
/// details, bounces, opens and clicks, suppressions) stays as it was, so that a recovery process
/// can find them.
///
/// ```
/// use postmark_sim::WebhookLoss;
///
/// let loss: WebhookLoss = serde_json::from_str(r#"{"share": 0.25, "seed": 7, "tag": "welcome"}"#).unwrap();
/// assert_eq!(loss.stream, None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookLoss {
    /// Share of the matching posts lost, 0.0 to 1.0 (0 = none).
    pub share: f64,
    /// Seed of the generator that picks them: the same posts in the same order lose the same ones.
    pub seed: u64,
    /// Only events of messages with this tag.
    pub tag: Option<String>,
    /// Only events of this stream.
    pub stream: Option<String>,
}
