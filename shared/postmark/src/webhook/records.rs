//! The payload of each webhook record type.
//!
//! Every field is optional and tolerant (a value of the wrong type reads as `None`), and fields this
//! crate does not know are kept in `extra`, so that serialising a record gives back what Postmark sent.
//! Field names on the wire are Postmark's (`MessageID`, `ServerID`, `ID`, `OS`, `IP`, ...); `ServerId`
//! is read as `ServerID`.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::bounce::{BounceClass, BounceType};
use crate::metadata::Metadata;
use crate::serde_util::{
    lenient, lenient_bool, lenient_i64, lenient_string, lenient_timestamp, serialize_timestamp,
};
use crate::string_enum::string_enum;

/// A `Delivery` record: the receiving server accepted the message for one recipient.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Delivery {
    /// `ServerID`.
    #[serde(
        rename = "ServerID",
        default,
        deserialize_with = "lenient_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub server_id: Option<i64>,
    /// `MessageStream`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_stream: Option<String>,
    /// `MessageID`.
    #[serde(
        rename = "MessageID",
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_id: Option<String>,
    /// `Recipient`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub recipient: Option<String>,
    /// `Tag` (may be `""`).
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub tag: Option<String>,
    /// `DeliveredAt`.
    #[serde(
        default,
        deserialize_with = "lenient_timestamp",
        serialize_with = "serialize_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub delivered_at: Option<DateTime<FixedOffset>>,
    /// `Details`: the receiving server's answer, e.g. `smtp;250 2.0.0 OK`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub details: Option<String>,
    /// `Metadata`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub metadata: Option<Metadata>,
    /// Fields this crate does not know, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `Bounce` or `SpamComplaint` record (the same shape), also what the bounce API returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Bounce {
    /// `ID`: the bounce's id, for `PUT /bounces/{id}/activate`.
    #[serde(
        rename = "ID",
        default,
        deserialize_with = "lenient_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<i64>,
    /// `Type`: what decides the class.
    #[serde(
        rename = "Type",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub bounce_type: Option<BounceType>,
    /// `TypeCode` (informational: real payloads disagree on codes).
    #[serde(
        default,
        deserialize_with = "lenient_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub type_code: Option<i64>,
    /// `Name`, e.g. `Hard bounce`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// `Tag` (may be `""`).
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub tag: Option<String>,
    /// `MessageID`.
    #[serde(
        rename = "MessageID",
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_id: Option<String>,
    /// `Metadata`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub metadata: Option<Metadata>,
    /// `ServerID`.
    #[serde(
        rename = "ServerID",
        default,
        deserialize_with = "lenient_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub server_id: Option<i64>,
    /// `MessageStream`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_stream: Option<String>,
    /// `Description`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<String>,
    /// `Details`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub details: Option<String>,
    /// `Email`: the bounced address (bounces have no `Recipient`).
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub email: Option<String>,
    /// `From`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub from: Option<String>,
    /// `BouncedAt`.
    #[serde(
        default,
        deserialize_with = "lenient_timestamp",
        serialize_with = "serialize_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub bounced_at: Option<DateTime<FixedOffset>>,
    /// `DumpAvailable`.
    #[serde(
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub dump_available: Option<bool>,
    /// `Inactive`: Postmark deactivated (suppressed) the address. The ground truth for suppression.
    #[serde(
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub inactive: Option<bool>,
    /// `CanActivate`.
    #[serde(
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub can_activate: Option<bool>,
    /// `Subject`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub subject: Option<String>,
    /// `Content`: the full dump, only when the webhook asks for it.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub content: Option<String>,
    /// Fields this crate does not know, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Bounce {
    /// The bounce type; a bounce without `Type` counts as Postmark's `Unknown` type.
    pub fn bounce_type(&self) -> BounceType {
        self.bounce_type.clone().unwrap_or(BounceType::Unknown)
    }

    /// The class of this bounce, keyed on `Type`.
    pub fn class(&self) -> BounceClass {
        self.bounce_type
            .as_ref()
            .map_or(BounceType::Unknown.class(), BounceType::class)
    }

    /// An SMTP API error (`Type` `SMTPApiError`, or TypeCode 100007 when `Type` is missing):
    /// Postmark accepted the message over SMTP, then refused it (typically a suppressed
    /// recipient). Not sent, and not a bounce of the recipient's mailbox.
    pub fn is_smtp_api_error(&self) -> bool {
        match &self.bounce_type {
            Some(bounce_type) => *bounce_type == BounceType::SMTPApiError,
            None => self.type_code == Some(100_007),
        }
    }
}

/// `Client` and `OS` of an open or click.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserAgentPart {
    /// `Name`, e.g. `Chrome 35.0.1916.153`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// `Company`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub company: Option<String>,
    /// `Family`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub family: Option<String>,
    /// Fields this crate does not know, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `Geo` of an open or click (may be `{}`; values may be `"unknown"`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Geo {
    /// `CountryISOCode`.
    #[serde(
        rename = "CountryISOCode",
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub country_iso_code: Option<String>,
    /// `Country`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub country: Option<String>,
    /// `RegionISOCode`.
    #[serde(
        rename = "RegionISOCode",
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub region_iso_code: Option<String>,
    /// `Region`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub region: Option<String>,
    /// `City`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub city: Option<String>,
    /// `Zip`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub zip: Option<String>,
    /// `Coords`, e.g. `"45.2517,19.8369"`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub coords: Option<String>,
    /// `IP`.
    #[serde(
        rename = "IP",
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub ip: Option<String>,
    /// Fields this crate does not know, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An `Open` record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Open {
    /// `FirstOpen`: false for the later opens of the same recipient.
    #[serde(
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub first_open: Option<bool>,
    /// `ServerID`.
    #[serde(
        rename = "ServerID",
        default,
        deserialize_with = "lenient_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub server_id: Option<i64>,
    /// `MessageStream`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_stream: Option<String>,
    /// `MessageID`.
    #[serde(
        rename = "MessageID",
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_id: Option<String>,
    /// `Recipient`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub recipient: Option<String>,
    /// `Tag`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub tag: Option<String>,
    /// `ReceivedAt`: when the open happened.
    #[serde(
        default,
        deserialize_with = "lenient_timestamp",
        serialize_with = "serialize_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub received_at: Option<DateTime<FixedOffset>>,
    /// `ReadSeconds`.
    #[serde(
        default,
        deserialize_with = "lenient_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub read_seconds: Option<i64>,
    /// `Platform`: `WebMail`, `Desktop`, `Mobile` or `Unknown`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub platform: Option<String>,
    /// `Client`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub client: Option<UserAgentPart>,
    /// `OS`.
    #[serde(
        rename = "OS",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub os: Option<UserAgentPart>,
    /// `UserAgent`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub user_agent: Option<String>,
    /// `Geo`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub geo: Option<Geo>,
    /// `Metadata`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub metadata: Option<Metadata>,
    /// Fields this crate does not know, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `Click` record (one per unique recipient and link).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Click {
    /// `ClickLocation`: `HTML` or `Text`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub click_location: Option<String>,
    /// `ServerID`.
    #[serde(
        rename = "ServerID",
        default,
        deserialize_with = "lenient_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub server_id: Option<i64>,
    /// `MessageStream`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_stream: Option<String>,
    /// `MessageID`.
    #[serde(
        rename = "MessageID",
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_id: Option<String>,
    /// `Recipient`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub recipient: Option<String>,
    /// `Tag`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub tag: Option<String>,
    /// `OriginalLink`: the link as it was in the message.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub original_link: Option<String>,
    /// `ReceivedAt`: when the click happened.
    #[serde(
        default,
        deserialize_with = "lenient_timestamp",
        serialize_with = "serialize_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub received_at: Option<DateTime<FixedOffset>>,
    /// `Platform`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub platform: Option<String>,
    /// `Client`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub client: Option<UserAgentPart>,
    /// `OS`.
    #[serde(
        rename = "OS",
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub os: Option<UserAgentPart>,
    /// `UserAgent`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub user_agent: Option<String>,
    /// `Geo`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub geo: Option<Geo>,
    /// `Metadata`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub metadata: Option<Metadata>,
    /// Fields this crate does not know, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

string_enum! {
    /// Why an address is suppressed (`SuppressionReason`).
    pub enum SuppressionReason {
        /// A hard bounce.
        HardBounce => "HardBounce",
        /// A spam complaint.
        SpamComplaint => "SpamComplaint",
        /// Suppressed by hand, or the recipient unsubscribed through Postmark's link.
        ManualSuppression => "ManualSuppression",
    }
}

string_enum! {
    /// Who changed a suppression (`Origin`).
    pub enum SuppressionOrigin {
        /// The recipient (bounce, complaint, unsubscribe link).
        Recipient => "Recipient",
        /// The customer, through the API.
        Customer => "Customer",
        /// A Postmark admin.
        Admin => "Admin",
    }
}

/// A `SubscriptionChange` record: an address was added to or removed from a stream's suppression list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubscriptionChange {
    /// `ServerID`.
    #[serde(
        rename = "ServerID",
        default,
        deserialize_with = "lenient_i64",
        skip_serializing_if = "Option::is_none"
    )]
    pub server_id: Option<i64>,
    /// `MessageStream`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_stream: Option<String>,
    /// `MessageID`: null for manual changes and reactivations.
    #[serde(
        rename = "MessageID",
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_id: Option<String>,
    /// `Recipient`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub recipient: Option<String>,
    /// `Tag`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub tag: Option<String>,
    /// `ChangedAt`.
    #[serde(
        default,
        deserialize_with = "lenient_timestamp",
        serialize_with = "serialize_timestamp",
        skip_serializing_if = "Option::is_none"
    )]
    pub changed_at: Option<DateTime<FixedOffset>>,
    /// `Origin`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub origin: Option<SuppressionOrigin>,
    /// `SuppressSending`: true = now suppressed, false = reactivated.
    #[serde(
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub suppress_sending: Option<bool>,
    /// `SuppressionReason`: null on reactivation.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub suppression_reason: Option<SuppressionReason>,
    /// `Metadata`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub metadata: Option<Metadata>,
    /// Fields this crate does not know, as sent.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
