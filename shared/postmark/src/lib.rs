//! Postmark, and nothing else: the HTTP API client, the SMTP transport, the webhook payload types,
//! and the classes of Postmark's errors that callers decide on.
//!
//! This crate knows Postmark's protocol only (no AWS, no application types). The facts it is built on
//! are in `REFERENCE.md` of the project's shared notes; the payloads it is tested against are in
//! `tests/fixtures`.
//!
//! # Sending one email through the API
//!
//! ```no_run
//! use std::time::Duration;
//! use postmark::{Email, ErrorClass, PostmarkClient, ServerToken};
//!
//! # async fn run() -> Result<(), postmark::PostmarkError> {
//! let client = PostmarkClient::new(
//!     postmark::DEFAULT_BASE_URL.parse().expect("valid URL"),
//!     ServerToken::new("server-token"),
//!     Duration::from_secs(10),
//! )?;
//! let email = Email::new("Shop <shop@example.com>", "ada@example.org")
//!     .subject("Your receipt")
//!     .html_body("<p>Thanks!</p>")
//!     .metadata("job_id", "j-42");
//! match client.send(&email).await {
//!     Ok(receipt) => println!("MessageID {:?}", receipt.message_id),
//!     Err(e) if e.is_retryable() => { /* leave the job on the queue */ }
//!     Err(e) if e.class() == ErrorClass::RecipientInactive => {
//!         let suppressed = e.api_error().map(|api| api.inactive_recipients());
//!         println!("suppressed: {suppressed:?}");
//!     }
//!     Err(e) => println!("failed for good: {e}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Parsing a webhook
//!
//! ```
//! use postmark::webhook::{RecordKind, WebhookEvent};
//!
//! let body = br#"{"RecordType":"Delivery","ServerID":23,"MessageStream":"outbound",
//!   "MessageID":"883953f4-6105-42a2-a16a-77a8eac79483","Recipient":"john@example.com",
//!   "DeliveredAt":"2025-04-05T16:33:54.9070259Z","Metadata":{"job_id":"j-42"}}"#;
//! let event = WebhookEvent::from_slice(body).expect("a JSON object");
//! assert_eq!(event.kind(), RecordKind::Delivery);
//! assert_eq!(event.recipient(), Some("john@example.com"));
//! assert_eq!(event.message_id(), Some("883953f4-6105-42a2-a16a-77a8eac79483"));
//! assert!(event.event_time().is_some());
//! assert_eq!(
//!     event.metadata().and_then(|m| m.get_str("job_id")).as_deref(),
//!     Some("j-42")
//! );
//! ```

#![warn(missing_docs)]

mod api_types;
mod bounce;
mod client;
pub mod eastern;
mod error;
mod message;
mod messages;
mod metadata;
mod reads;
pub mod recovered;
mod serde_util;
pub mod smtp;
mod string_enum;
mod token;
pub mod webhook;
mod webhooks_api;

pub use api_types::{
    BatchItemOutcome, BounceActivation, DeliveryType, MessageStreamInfo, MessageStreamType,
    SendReceipt, ServerEdit, ServerInfo, Suppression, SuppressionChange, SuppressionQuery,
    SuppressionStatus, UnsubscribeHandlingType,
};
pub use bounce::{BounceClass, BounceType};
pub use client::{DEFAULT_BASE_URL, DEFAULT_TIMEOUT, MAX_BATCH_SIZE, PostmarkClient};
pub use error::{ApiError, ErrorClass, PostmarkError, parse_inactive_addresses};
pub use message::{Attachment, Email, Header, MAX_RECIPIENTS, TrackLinks};
pub use messages::{
    MAX_SEARCH_COUNT, MAX_SEARCH_WINDOW, MessageEvent, OutboundMessage, OutboundMessageDetails,
    OutboundMessages, OutboundSearch, Recipient,
};
pub use metadata::Metadata;
pub use reads::{BounceQuery, Bounces, Clicks, Opens, TrackingQuery};
pub use serde_util::{format_timestamp, parse_timestamp};
pub use token::ServerToken;
pub use webhook::{
    Bounce, Click, Open, SuppressionOrigin, SuppressionReason, WebhookEvent, WebhookParseError,
};
pub use webhooks_api::{
    ContentTrigger, HttpAuth, HttpHeader, NewWebhook, OpenTrigger, Trigger, TriggerVerification,
    Webhook, WebhookEdit, WebhookMetrics, WebhookStatistics, WebhookTriggers, WebhookVerification,
};
