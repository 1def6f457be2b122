//! What the API endpoints answer.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{ApiError, parse_inactive_addresses};
use crate::message::TrackLinks;
use crate::serde_util::{
    lenient, lenient_bool, lenient_i64, lenient_string, lenient_timestamp, serialize_timestamp,
};
use crate::string_enum::string_enum;
use crate::webhook::{Bounce, SuppressionOrigin, SuppressionReason};

/// Postmark accepted a message (`POST /email`, or one item of `POST /email/batch`).
///
/// `ErrorCode` may be missing and `To` is absent for Cc/Bcc-only messages: still a success.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendReceipt {
    /// `To`, as Postmark echoes it.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub to: Option<String>,
    /// `SubmittedAt`.
    #[serde(
        default,
        deserialize_with = "lenient_timestamp",
        serialize_with = "serialize_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub submitted_at: Option<DateTime<FixedOffset>>,
    /// `MessageID`: the id that every webhook about this message carries.
    #[serde(
        rename = "MessageID",
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_id: Option<String>,
    /// `ErrorCode` (0 or absent on success).
    #[serde(
        default,
        deserialize_with = "lenient_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_code: Option<i64>,
    /// `Message`, e.g. `OK`, `Test job accepted`, or a note on skipped inactive recipients.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub message: Option<String>,
}

impl SendReceipt {
    /// Addresses Postmark skipped because they are inactive (a success can say
    /// `"Message OK, but will not deliver to these inactive addresses: ..."`).
    pub fn inactive_recipients(&self) -> Vec<String> {
        self.message
            .as_deref()
            .map(parse_inactive_addresses)
            .unwrap_or_default()
    }
}

/// The outcome of one message of a batch: accepted, or Postmark's error for that message.
pub type BatchItemOutcome = Result<SendReceipt, ApiError>;

string_enum! {
    /// `DeliveryType` of a server.
    pub enum DeliveryType {
        /// Real delivery.
        Live => "Live",
        /// Sandbox: processed, never delivered, counted in volume.
        Sandbox => "Sandbox",
    }
}

/// The server a Server API Token belongs to (`GET /server`).
///
/// Only settings are kept: the answer also holds the server's API tokens and hook URLs (which can
/// carry credentials), and those are not read at all so that they can never be logged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServerInfo {
    /// `ID`.
    #[serde(
        rename = "ID",
        default,
        deserialize_with = "lenient_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<i64>,
    /// `Name`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// `Color`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub color: Option<String>,
    /// `DeliveryType`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub delivery_type: Option<DeliveryType>,
    /// `SmtpApiActivated`: whether SMTP sending is on.
    #[serde(
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub smtp_api_activated: Option<bool>,
    /// `RawEmailEnabled`.
    #[serde(
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub raw_email_enabled: Option<bool>,
    /// `TrackOpens`: server-wide open tracking (overrides a per-message `false`).
    #[serde(
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub track_opens: Option<bool>,
    /// `TrackLinks`: the server's default link tracking. The account API spells the values
    /// `HtmlAndTextTracking`, `HtmlOnlyTracking`, `TextOnlyTracking`; both spellings are read.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub track_links: Option<TrackLinks>,
    /// `PostFirstOpenOnly`: only the first open of each recipient is posted to the server's open
    /// hook.
    #[serde(
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub post_first_open_only: Option<bool>,
    /// `EnableSmtpApiErrorHooks`: SMTP API errors are posted to the bounce webhooks.
    #[serde(
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_smtp_api_error_hooks: Option<bool>,
    /// `IncludeBounceContentInHook`: the server's bounce hook carries the dump in `Content`.
    #[serde(
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub include_bounce_content_in_hook: Option<bool>,
    /// `ServerLink`: the server's page in Postmark.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub server_link: Option<String>,
    /// `InboundAddress`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub inbound_address: Option<String>,
}

/// `PUT /server`: settings to change; what is left out stays as it is.
///
/// Which token may change `EnableSmtpApiErrorHooks` is not settled (Postmark's page shows
/// `PUT /servers/{id}` with the account token): check the answer, or `GET /server`, rather than
/// assume it took.
///
/// ```
/// use postmark::ServerEdit;
///
/// let edit = ServerEdit { enable_smtp_api_error_hooks: Some(true), ..ServerEdit::default() };
/// assert_eq!(serde_json::to_string(&edit).unwrap(), r#"{"EnableSmtpApiErrorHooks":true}"#);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServerEdit<'a> {
    /// `Name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    /// `Color`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<&'a str>,
    /// `SmtpApiActivated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_api_activated: Option<bool>,
    /// `RawEmailEnabled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_email_enabled: Option<bool>,
    /// `TrackOpens`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_opens: Option<bool>,
    /// `TrackLinks`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_links: Option<TrackLinks>,
    /// `PostFirstOpenOnly`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_first_open_only: Option<bool>,
    /// `EnableSmtpApiErrorHooks`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_smtp_api_error_hooks: Option<bool>,
    /// `IncludeBounceContentInHook`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub include_bounce_content_in_hook: Option<bool>,
}

string_enum! {
    /// `MessageStreamType`.
    pub enum MessageStreamType {
        /// Transactional.
        Transactional => "Transactional",
        /// Broadcasts (plural, as Postmark spells it).
        Broadcasts => "Broadcasts",
        /// Inbound.
        Inbound => "Inbound",
    }
}

/// A message stream (`GET /message-streams/{id}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageStreamInfo {
    /// `ID`, e.g. `outbound`, `broadcast`.
    #[serde(
        rename = "ID",
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<String>,
    /// `ServerID`.
    #[serde(
        rename = "ServerID",
        default,
        deserialize_with = "lenient_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub server_id: Option<i64>,
    /// `Name`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// `Description`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<String>,
    /// `MessageStreamType`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_stream_type: Option<MessageStreamType>,
    /// `CreatedAt`.
    #[serde(
        default,
        deserialize_with = "lenient_timestamp",
        serialize_with = "serialize_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<DateTime<FixedOffset>>,
    /// `UpdatedAt`.
    #[serde(
        default,
        deserialize_with = "lenient_timestamp",
        serialize_with = "serialize_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub updated_at: Option<DateTime<FixedOffset>>,
    /// `ArchivedAt`: set when the stream is archived (it cannot send then).
    #[serde(
        default,
        deserialize_with = "lenient_timestamp",
        serialize_with = "serialize_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub archived_at: Option<DateTime<FixedOffset>>,
    /// Other fields (`SubscriptionManagementConfiguration`, `ExpectedPurgeDate`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MessageStreamInfo {
    /// True when the stream is archived.
    pub fn is_archived(&self) -> bool {
        self.archived_at.is_some()
    }

    /// `SubscriptionManagementConfiguration.UnsubscribeHandlingType`, read case-insensitively
    /// (Postmark's own examples write `none`).
    pub fn unsubscribe_handling(&self) -> Option<UnsubscribeHandlingType> {
        self.extra
            .get("SubscriptionManagementConfiguration")?
            .get("UnsubscribeHandlingType")?
            .as_str()
            .map(UnsubscribeHandlingType::from)
    }
}

/// How a stream handles unsubscribes (`UnsubscribeHandlingType`), read case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UnsubscribeHandlingType {
    /// `None`: no unsubscribe management (default for transactional and inbound streams).
    None,
    /// `Postmark`: Postmark adds the link and List-Unsubscribe headers and suppresses
    /// (broadcast streams).
    Postmark,
    /// `Custom`: the sender adds and handles unsubscribes itself.
    Custom,
    /// A value this crate does not know, kept as Postmark sent it.
    Other(String),
}

impl UnsubscribeHandlingType {
    /// The value as Postmark documents it (`None`, `Postmark`, `Custom`).
    pub fn as_str(&self) -> &str {
        match self {
            Self::None => "None",
            Self::Postmark => "Postmark",
            Self::Custom => "Custom",
            Self::Other(text) => text,
        }
    }
}

impl From<&str> for UnsubscribeHandlingType {
    fn from(text: &str) -> Self {
        match text.trim().to_ascii_lowercase().as_str() {
            "none" => Self::None,
            "postmark" => Self::Postmark,
            "custom" => Self::Custom,
            _ => Self::Other(text.to_owned()),
        }
    }
}

impl std::fmt::Display for UnsubscribeHandlingType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for UnsubscribeHandlingType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for UnsubscribeHandlingType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|text| Self::from(text.as_str()))
    }
}

/// `{"MessageStreams": [...], "TotalCount": n}`.
#[derive(Debug, Deserialize)]
pub(crate) struct MessageStreamsEnvelope {
    #[serde(rename = "MessageStreams", default)]
    pub(crate) message_streams: Vec<MessageStreamInfo>,
}

/// One entry of a suppression dump.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Suppression {
    /// `EmailAddress`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub email_address: Option<String>,
    /// `SuppressionReason`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub suppression_reason: Option<SuppressionReason>,
    /// `Origin`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub origin: Option<SuppressionOrigin>,
    /// `CreatedAt`.
    #[serde(
        default,
        deserialize_with = "lenient_timestamp",
        serialize_with = "serialize_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<DateTime<FixedOffset>>,
}

/// Filters for a suppression dump; all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuppressionQuery {
    /// Only this reason.
    pub reason: Option<SuppressionReason>,
    /// Only this origin.
    pub origin: Option<SuppressionOrigin>,
    /// From this date (`YYYY-MM-DD`).
    pub from_date: Option<String>,
    /// Up to this date (`YYYY-MM-DD`).
    pub to_date: Option<String>,
    /// Only this address.
    pub email_address: Option<String>,
}

impl SuppressionQuery {
    pub(crate) fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            (
                "SuppressionReason",
                self.reason.as_ref().map(|r| r.as_str()),
            ),
            ("Origin", self.origin.as_ref().map(|o| o.as_str())),
            ("fromdate", self.from_date.as_deref()),
            ("todate", self.to_date.as_deref()),
            ("EmailAddress", self.email_address.as_deref()),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.map(|value| (key, value)))
        .collect()
    }
}

string_enum! {
    /// The result of adding or removing one suppression.
    pub enum SuppressionStatus {
        /// Added to the suppression list.
        Suppressed => "Suppressed",
        /// Removed from it (also answered for an address that was not suppressed).
        Deleted => "Deleted",
        /// Refused; `Message` says why (e.g. spam complaints cannot be removed).
        Failed => "Failed",
    }
}

/// The per-address answer to creating or deleting suppressions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SuppressionChange {
    /// `EmailAddress`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub email_address: Option<String>,
    /// `Status`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub status: Option<SuppressionStatus>,
    /// `Message`: why it failed (null on success).
    #[serde(default, deserialize_with = "lenient_string")]
    pub message: Option<String>,
}

impl SuppressionChange {
    /// True when Postmark did what was asked for this address.
    pub fn succeeded(&self) -> bool {
        matches!(
            self.status,
            Some(SuppressionStatus::Suppressed | SuppressionStatus::Deleted)
        )
    }
}

/// `{"Suppressions": [...]}`, the envelope of the suppression endpoints.
#[derive(Debug, Deserialize)]
pub(crate) struct SuppressionsEnvelope<T> {
    #[serde(rename = "Suppressions", default = "Vec::new")]
    pub(crate) suppressions: Vec<T>,
}

/// The answer to `PUT /bounces/{id}/activate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BounceActivation {
    /// `Message`, e.g. `OK`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub message: Option<String>,
    /// `Bounce`: the bounce as it is now (`Inactive: false` when reactivated).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub bounce: Option<Bounce>,
}
