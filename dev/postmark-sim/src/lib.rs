//! A local stand-in for [Postmark](https://postmarkapp.com) — not Postmark. It speaks Postmark's
//! email API and SMTP submission, answers with Postmark's error codes, and posts Postmark-shaped
//! webhooks back (deliveries, fake bounces, spam complaints, opens and clicks on request,
//! subscription changes), with faults on demand. Tests start it in-process on free ports; the
//! binary serves the local stack, the demo and load runs.
//!
//! ```no_run
//! use postmark_sim::{ServerConfig, SimOptions, Simulator, WebhookConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let sim = Simulator::start(SimOptions::for_tests()).await?;
//! let server = sim.add_server(
//!     ServerConfig::new("server-token")
//!         .sender_domain("example.com")
//!         .webhook(WebhookConfig::new("http://127.0.0.1:9000/wh/postmark?password=pw")),
//! );
//! // Point the Postmark client at sim.api_url() and SMTP at sim.smtp_addr(), trusting sim.ca_pem().
//! sim.settle(std::time::Duration::from_secs(10)).await;
//! for message in sim.messages() {
//!     println!("{} to {:?} on {}", message.message_id, message.recipients, message.message_stream);
//! }
//! # let _ = server;
//! # Ok(())
//! # }
//! ```
//!
//! The control API under `/_sim/` does the same over HTTP (see the README).

#![warn(missing_docs)]

mod address;
mod api;
mod bounces_api;
mod config;
mod control;
mod faults;
mod http;
mod messages_api;
mod pipeline;
mod smtp;
mod state;
mod tls;
mod webhooks;
mod webhooks_api;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use api::SuppressedAddress;
pub use config::{
    BOUNCE_TESTING_DOMAIN, DEFAULT_BROADCAST_STREAM, DEFAULT_TRANSACTIONAL_STREAM, HttpAuth,
    SPAM_COMPLAINT_DOMAIN, ServerConfig, SimOptions, StreamConfig, StreamType, Triggers,
    WebhookConfig, WebhookLoss, WebhookOptions,
};
pub use control::Settled;
pub use faults::{FaultAction, FaultRule, Faults};
pub use pipeline::{ClickRequest, EngagementError, EngagementOutcome, OpenRequest};
pub use state::{AttachmentInfo, Counters, RecipientOutcome, StoredMessage, Via};
pub use tls::TlsError;
pub use webhooks::{DeliveryState, WebhookAttempt, WebhookDelivery};

use control::MessageFilterRef;
use state::Sim;

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not bind.
    #[error("could not listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// TLS for SMTP could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A configured server, as the simulator reports it (its tokens are not repeated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSummary {
    /// `ServerID`.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Stream IDs.
    pub streams: Vec<String>,
    /// Sender signatures.
    pub sender_signatures: Vec<String>,
    /// Number of webhook endpoints.
    pub webhooks: usize,
    /// Whether webhooks are posted.
    pub webhooks_enabled: bool,
}

impl ServerSummary {
    fn of(server: &state::Server) -> Self {
        Self {
            id: server.id,
            name: server.config.name.clone(),
            streams: server.config.streams.iter().map(|s| s.id.clone()).collect(),
            sender_signatures: server.config.sender_signatures.clone(),
            webhooks: server.config.webhooks.len(),
            webhooks_enabled: server.config.webhooks_enabled,
        }
    }
}

/// A running simulator. Dropping it stops the listeners.
pub struct Simulator {
    sim: Arc<Sim>,
    api_addr: SocketAddr,
    smtp_addr: Option<SocketAddr>,
    ca_pem: Arc<str>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("api_addr", &self.api_addr)
            .field("smtp_addr", &self.smtp_addr)
            .finish_non_exhaustive()
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

impl Simulator {
    /// Starts the HTTP API and (unless disabled) the SMTP listener on the current Tokio runtime.
    pub async fn start(options: SimOptions) -> Result<Self, StartError> {
        let tls = tls::generate(&options.hostname)?;
        let ca_pem: Arc<str> = Arc::from(tls.ca_pem.as_str());
        let api_listener = bind(options.api_addr).await?;
        let api_addr = api_listener
            .local_addr()
            .map_err(|source| StartError::Bind {
                addr: options.api_addr,
                source,
            })?;
        let smtp_listener = match options.smtp_addr {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let smtp_addr = smtp_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok());
        let sim = Arc::new(Sim::new(options));
        let router = api::routes()
            .merge(control::routes(ca_pem.clone()))
            .fallback(|| async {
                api::json_reply(404, &serde_json::json!({ "Message": "Not found." }))
            })
            .with_state(sim.clone());
        let mut tasks = vec![tokio::spawn(http::serve(api_listener, router))];
        if let Some(listener) = smtp_listener {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config);
            tasks.push(tokio::spawn(smtp::serve(listener, sim.clone(), acceptor)));
        }
        Ok(Self {
            sim,
            api_addr,
            smtp_addr,
            ca_pem,
            tasks,
        })
    }

    /// The API's base URL, e.g. `http://127.0.0.1:41234` (Postmark's API and `/_sim/`).
    pub fn api_url(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    /// The API's address.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The SMTP listener's address, if it runs.
    pub fn smtp_addr(&self) -> Option<SocketAddr> {
        self.smtp_addr
    }

    /// The PEM of the CA that signed the SMTP certificate (valid for `localhost` and `127.0.0.1`).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Adds a server (or replaces the one with the same `id`).
    pub fn add_server(&self, config: ServerConfig) -> ServerSummary {
        ServerSummary::of(&self.sim.configure_server(config))
    }

    /// Every accepted message still kept, oldest first.
    pub fn messages(&self) -> Vec<StoredMessage> {
        control::filtered_messages(&self.sim, &MessageFilterRef::default())
    }

    /// Accepted messages sent to `recipient` (any case).
    pub fn messages_to(&self, recipient: &str) -> Vec<StoredMessage> {
        control::filtered_messages(
            &self.sim,
            &MessageFilterRef {
                recipient: Some(recipient),
                ..MessageFilterRef::default()
            },
        )
    }

    /// One accepted message.
    pub fn message(&self, message_id: &str) -> Option<StoredMessage> {
        state::lock(&self.sim.messages)
            .get(message_id)
            .map(|message| StoredMessage::clone(&message))
    }

    /// Every webhook event and its posting, oldest first.
    pub fn webhooks(&self) -> Vec<WebhookDelivery> {
        self.sim.outbox.deliveries()
    }

    /// The addresses suppressed on a stream of a server.
    pub fn suppressions(&self, server_id: u64, stream: &str) -> Vec<SuppressedAddress> {
        api::suppressed_addresses(&self.sim, server_id, stream)
    }

    /// Simulates an open (posted to the Open webhooks of the message's stream).
    pub fn open(&self, request: OpenRequest) -> Result<EngagementOutcome, EngagementError> {
        self.sim.open(request)
    }

    /// Simulates a click.
    pub fn click(&self, request: ClickRequest) -> Result<EngagementOutcome, EngagementError> {
        self.sim.click(request)
    }

    /// Sets how long after acceptance a message appears in the Messages API (search and
    /// details), as `SimOptions::search_delay` does at start.
    pub fn set_search_delay(&self, delay: Duration) {
        self.sim.set_search_delay(delay);
    }

    /// Replaces the webhook-loss fault (its generator starts again from its seed), as
    /// `SimOptions::webhook_loss` does at start.
    pub fn set_webhook_loss(&self, loss: WebhookLoss) {
        self.sim.outbox.set_loss(loss);
    }

    /// The webhook posts lost for good by the webhook-loss fault, oldest first.
    pub fn lost_webhooks(&self) -> Vec<WebhookDelivery> {
        self.sim
            .outbox
            .deliveries()
            .into_iter()
            .filter(|delivery| delivery.state == DeliveryState::Lost)
            .collect()
    }

    /// Replaces the fault plan.
    pub fn set_faults(&self, faults: Faults) {
        self.sim.set_faults(faults);
    }

    /// Forgets messages, webhooks, suppressions, bounces, faults and counters (servers stay).
    pub fn reset(&self) {
        self.sim.reset();
    }

    /// Waits until every queued webhook post is done (delivered, dropped or out of retries), at
    /// most `timeout`. True when settled.
    pub async fn settle(&self, timeout: Duration) -> bool {
        self.sim.outbox.settle(timeout).await
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        control::counters_of(&self.sim)
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
