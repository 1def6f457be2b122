//! Postmark's webhook payloads: parse anything Postmark posts, never fail on shape.
//!
//! ```
//! use postmark::webhook::{RecordKind, WebhookEvent};
//! use postmark::BounceClass;
//!
//! let body = br#"{"RecordType":"Bounce","Type":"HardBounce","TypeCode":1,
//!     "MessageID":"883953f4-6105-42a2-a16a-77a8eac79483","Email":"john@example.com",
//!     "BouncedAt":"2019-11-05T16:33:54.9070259Z","MessageStream":"outbound",
//!     "Metadata":{"job_id":"j-42","user_id":43}}"#;
//! let event = WebhookEvent::from_slice(body)?;
//! assert_eq!(event.kind(), RecordKind::Bounce);
//! assert_eq!(event.recipient(), Some("john@example.com"));
//! assert_eq!(event.bounce_class(), Some(BounceClass::Hard));
//! let metadata = event.metadata().expect("has metadata");
//! assert_eq!(metadata.get_str("user_id").as_deref(), Some("43"));
//! # Ok::<(), postmark::webhook::WebhookParseError>(())
//! ```

mod records;

use std::fmt;

use chrono::{DateTime, FixedOffset};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

pub use records::{
    Bounce, Click, Delivery, Geo, Open, SubscriptionChange, SuppressionOrigin, SuppressionReason,
    UserAgentPart,
};

use crate::bounce::{BounceClass, BounceType};
use crate::metadata::Metadata;
use crate::serde_util::parse_timestamp;

/// The record types Postmark posts, plus `Unknown` for anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// `Delivery`.
    Delivery,
    /// `Bounce`.
    Bounce,
    /// `SpamComplaint`.
    SpamComplaint,
    /// `Open`.
    Open,
    /// `Click`.
    Click,
    /// `SubscriptionChange`.
    SubscriptionChange,
    /// Any other `RecordType` (e.g. `Inbound`), or a body whose kind cannot be told.
    Unknown,
}

impl RecordKind {
    /// Postmark's `RecordType` (`"Unknown"` for [`RecordKind::Unknown`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivery => "Delivery",
            Self::Bounce => "Bounce",
            Self::SpamComplaint => "SpamComplaint",
            Self::Open => "Open",
            Self::Click => "Click",
            Self::SubscriptionChange => "SubscriptionChange",
            Self::Unknown => "Unknown",
        }
    }

    const KNOWN: [RecordKind; 6] = [
        Self::Delivery,
        Self::Bounce,
        Self::SpamComplaint,
        Self::Open,
        Self::Click,
        Self::SubscriptionChange,
    ];

    fn from_record_type(record_type: &str) -> Self {
        Self::KNOWN
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(record_type.trim()))
            .unwrap_or(Self::Unknown)
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One webhook post.
///
/// Serialising it gives Postmark's shape (with `RecordType`); `Unknown` gives back the body as received.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookEvent {
    /// A delivery.
    Delivery(Delivery),
    /// A bounce (of any `Type` except when the record is a `SpamComplaint`).
    Bounce(Bounce),
    /// A spam complaint (same payload shape as a bounce).
    SpamComplaint(Bounce),
    /// An open.
    Open(Open),
    /// A click.
    Click(Click),
    /// A suppression change.
    SubscriptionChange(SubscriptionChange),
    /// Anything else, kept whole: another `RecordType`, an inbound message, or a body without
    /// `RecordType` whose kind cannot be told from its fields.
    Unknown(Map<String, Value>),
}

/// The body is not a webhook at all.
#[derive(Debug, thiserror::Error)]
pub enum WebhookParseError {
    /// Not JSON.
    #[error("the webhook body is not JSON")]
    InvalidJson(#[source] serde_json::Error),
    /// JSON, but not an object.
    #[error("the webhook body is JSON but not an object (found {found})")]
    NotAnObject {
        /// What was found: `array`, `string`, `number`, `boolean` or `null`.
        found: &'static str,
    },
}

impl WebhookEvent {
    /// Parses a webhook body. Fails only when the body is not a JSON object; any object gives an
    /// event (at worst [`WebhookEvent::Unknown`]).
    pub fn from_slice(body: &[u8]) -> Result<Self, WebhookParseError> {
        let value: Value = serde_json::from_slice(body).map_err(WebhookParseError::InvalidJson)?;
        Self::from_value(value)
    }

    /// Like [`WebhookEvent::from_slice`], from parsed JSON.
    pub fn from_value(value: Value) -> Result<Self, WebhookParseError> {
        match value {
            Value::Object(object) => Ok(Self::from_object(object)),
            other => Err(WebhookParseError::NotAnObject {
                found: json_type_name(&other),
            }),
        }
    }

    /// Builds the event from a JSON object; never fails.
    pub fn from_object(object: Map<String, Value>) -> Self {
        let kind = match object.get("RecordType") {
            Some(Value::String(record_type)) => RecordKind::from_record_type(record_type),
            None | Some(Value::Null) => infer_kind(&object),
            Some(_) => RecordKind::Unknown,
        };
        if kind == RecordKind::Unknown {
            return Self::Unknown(object);
        }
        let mut fields = object.clone();
        fields.remove("RecordType");
        if let Some(server_id) = fields.remove("ServerId") {
            fields.entry("ServerID").or_insert(server_id);
        }
        let fields = Value::Object(fields);
        let parsed = match kind {
            RecordKind::Delivery => Delivery::deserialize(fields).map(Self::Delivery),
            RecordKind::Bounce => Bounce::deserialize(fields).map(Self::Bounce),
            RecordKind::SpamComplaint => Bounce::deserialize(fields).map(Self::SpamComplaint),
            RecordKind::Open => Open::deserialize(fields).map(Self::Open),
            RecordKind::Click => Click::deserialize(fields).map(Self::Click),
            RecordKind::SubscriptionChange => {
                SubscriptionChange::deserialize(fields).map(Self::SubscriptionChange)
            }
            RecordKind::Unknown => return Self::Unknown(object),
        };
        // Every field is tolerant, so this cannot fail today; if it ever does, keep the body.
        parsed.unwrap_or(Self::Unknown(object))
    }

    /// The record kind.
    pub fn kind(&self) -> RecordKind {
        match self {
            Self::Delivery(_) => RecordKind::Delivery,
            Self::Bounce(_) => RecordKind::Bounce,
            Self::SpamComplaint(_) => RecordKind::SpamComplaint,
            Self::Open(_) => RecordKind::Open,
            Self::Click(_) => RecordKind::Click,
            Self::SubscriptionChange(_) => RecordKind::SubscriptionChange,
            Self::Unknown(_) => RecordKind::Unknown,
        }
    }

    /// The `RecordType` as Postmark named it; for `Unknown`, the body's own (if it is a string).
    pub fn record_type(&self) -> Option<&str> {
        match self {
            Self::Unknown(raw) => raw.get("RecordType").and_then(Value::as_str),
            known => Some(known.kind().as_str()),
        }
    }

    /// The recipient the event is about: `Email` for bounces and spam complaints, `Recipient` for the
    /// others (for `Unknown`, whichever of the two the body has).
    pub fn recipient(&self) -> Option<&str> {
        match self {
            Self::Delivery(d) => d.recipient.as_deref(),
            Self::Bounce(b) | Self::SpamComplaint(b) => b.email.as_deref(),
            Self::Open(o) => o.recipient.as_deref(),
            Self::Click(c) => c.recipient.as_deref(),
            Self::SubscriptionChange(s) => s.recipient.as_deref(),
            Self::Unknown(raw) => raw_str(raw, "Recipient").or_else(|| raw_str(raw, "Email")),
        }
    }

    /// `MessageID` (shared by every event about the same message: not unique per event).
    pub fn message_id(&self) -> Option<&str> {
        match self {
            Self::Delivery(d) => d.message_id.as_deref(),
            Self::Bounce(b) | Self::SpamComplaint(b) => b.message_id.as_deref(),
            Self::Open(o) => o.message_id.as_deref(),
            Self::Click(c) => c.message_id.as_deref(),
            Self::SubscriptionChange(s) => s.message_id.as_deref(),
            Self::Unknown(raw) => raw_str(raw, "MessageID"),
        }
    }

    /// When it happened: `DeliveredAt`, `BouncedAt`, `ReceivedAt` (opens, clicks) or `ChangedAt`.
    pub fn event_time(&self) -> Option<DateTime<FixedOffset>> {
        match self {
            Self::Delivery(d) => d.delivered_at,
            Self::Bounce(b) | Self::SpamComplaint(b) => b.bounced_at,
            Self::Open(o) => o.received_at,
            Self::Click(c) => c.received_at,
            Self::SubscriptionChange(s) => s.changed_at,
            Self::Unknown(raw) => ["DeliveredAt", "BouncedAt", "ReceivedAt", "ChangedAt"]
                .into_iter()
                .find_map(|key| raw_str(raw, key).and_then(parse_timestamp)),
        }
    }

    /// `Tag`; an empty tag reads as `None`.
    pub fn tag(&self) -> Option<&str> {
        let tag = match self {
            Self::Delivery(d) => d.tag.as_deref(),
            Self::Bounce(b) | Self::SpamComplaint(b) => b.tag.as_deref(),
            Self::Open(o) => o.tag.as_deref(),
            Self::Click(c) => c.tag.as_deref(),
            Self::SubscriptionChange(s) => s.tag.as_deref(),
            Self::Unknown(raw) => raw_str(raw, "Tag"),
        };
        tag.filter(|tag| !tag.is_empty())
    }

    /// `Metadata` (absent for `Unknown`; read the raw body there).
    pub fn metadata(&self) -> Option<&Metadata> {
        match self {
            Self::Delivery(d) => d.metadata.as_ref(),
            Self::Bounce(b) | Self::SpamComplaint(b) => b.metadata.as_ref(),
            Self::Open(o) => o.metadata.as_ref(),
            Self::Click(c) => c.metadata.as_ref(),
            Self::SubscriptionChange(s) => s.metadata.as_ref(),
            Self::Unknown(_) => None,
        }
    }

    /// `MessageStream` (absent in legacy payloads, which come from the default `outbound` stream).
    pub fn message_stream(&self) -> Option<&str> {
        match self {
            Self::Delivery(d) => d.message_stream.as_deref(),
            Self::Bounce(b) | Self::SpamComplaint(b) => b.message_stream.as_deref(),
            Self::Open(o) => o.message_stream.as_deref(),
            Self::Click(c) => c.message_stream.as_deref(),
            Self::SubscriptionChange(s) => s.message_stream.as_deref(),
            Self::Unknown(raw) => raw_str(raw, "MessageStream"),
        }
    }

    /// `ServerID` (or `ServerId`).
    pub fn server_id(&self) -> Option<i64> {
        match self {
            Self::Delivery(d) => d.server_id,
            Self::Bounce(b) | Self::SpamComplaint(b) => b.server_id,
            Self::Open(o) => o.server_id,
            Self::Click(c) => c.server_id,
            Self::SubscriptionChange(s) => s.server_id,
            Self::Unknown(raw) => raw
                .get("ServerID")
                .or_else(|| raw.get("ServerId"))
                .and_then(crate::serde_util::value_as_i64),
        }
    }

    /// The bounce or complaint payload, for `Bounce` and `SpamComplaint`.
    pub fn as_bounce(&self) -> Option<&Bounce> {
        match self {
            Self::Bounce(b) | Self::SpamComplaint(b) => Some(b),
            _ => None,
        }
    }

    /// For bounces, the class of the bounce `Type`; for spam complaints, always
    /// [`BounceClass::Complaint`]; `None` for the other kinds.
    pub fn bounce_class(&self) -> Option<BounceClass> {
        match self {
            Self::Bounce(b) => Some(b.class()),
            Self::SpamComplaint(_) => Some(BounceType::SpamComplaint.class()),
            _ => None,
        }
    }
}

/// Guesses the kind of a body without `RecordType` (legacy delivery hooks, the curl test bodies of
/// Postmark's docs) from the fields only one kind has. Ambiguous or unrecognisable bodies (inbound
/// messages, which carry `FromFull`) are `Unknown`.
fn infer_kind(object: &Map<String, Value>) -> RecordKind {
    let has = |key: &str| object.contains_key(key);
    if has("FromFull") || has("ToFull") {
        return RecordKind::Unknown;
    }
    let mut candidates = Vec::with_capacity(2);
    if has("BouncedAt") || has("TypeCode") || (has("Type") && has("Email")) {
        let complaint = object.get("Type").and_then(Value::as_str) == Some("SpamComplaint");
        candidates.push(if complaint {
            RecordKind::SpamComplaint
        } else {
            RecordKind::Bounce
        });
    }
    if has("DeliveredAt") {
        candidates.push(RecordKind::Delivery);
    }
    if has("FirstOpen") || has("ReadSeconds") {
        candidates.push(RecordKind::Open);
    }
    if has("OriginalLink") || has("ClickLocation") {
        candidates.push(RecordKind::Click);
    }
    if has("SuppressSending") || has("ChangedAt") {
        candidates.push(RecordKind::SubscriptionChange);
    }
    match candidates.as_slice() {
        [only] => *only,
        _ => RecordKind::Unknown,
    }
}

fn raw_str<'a>(raw: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    raw.get(key).and_then(Value::as_str)
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[derive(Serialize)]
struct Tagged<'a, T> {
    #[serde(rename = "RecordType")]
    record_type: &'static str,
    #[serde(flatten)]
    record: &'a T,
}

impl Serialize for WebhookEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fn tagged<S: Serializer, T: Serialize>(
            serializer: S,
            kind: RecordKind,
            record: &T,
        ) -> Result<S::Ok, S::Error> {
            Tagged {
                record_type: kind.as_str(),
                record,
            }
            .serialize(serializer)
        }
        let kind = self.kind();
        match self {
            Self::Delivery(d) => tagged(serializer, kind, d),
            Self::Bounce(b) | Self::SpamComplaint(b) => tagged(serializer, kind, b),
            Self::Open(o) => tagged(serializer, kind, o),
            Self::Click(c) => tagged(serializer, kind, c),
            Self::SubscriptionChange(s) => tagged(serializer, kind, s),
            Self::Unknown(raw) => raw.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for WebhookEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::from_value(Value::deserialize(deserializer)?).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> WebhookEvent {
        WebhookEvent::from_value(value).expect("an object always parses")
    }

    #[test]
    fn rejects_only_non_objects() {
        assert!(matches!(
            WebhookEvent::from_slice(b"not json"),
            Err(WebhookParseError::InvalidJson(_))
        ));
        assert!(matches!(
            WebhookEvent::from_slice(b"[1]"),
            Err(WebhookParseError::NotAnObject { found: "array" })
        ));
        assert_eq!(parse(json!({})).kind(), RecordKind::Unknown);
    }

    #[test]
    fn wrong_types_read_as_absent() {
        let event = parse(json!({
            "RecordType": "Bounce", "Email": 42, "BouncedAt": "soon", "ID": "17",
            "Inactive": "true", "Type": 5, "Metadata": "x", "ServerId": 3
        }));
        let bounce = event.as_bounce().expect("bounce");
        assert_eq!(bounce.email.as_deref(), Some("42"));
        assert_eq!(bounce.bounced_at, None);
        assert_eq!(bounce.id, Some(17));
        assert_eq!(bounce.inactive, Some(true));
        assert_eq!(bounce.bounce_type, None);
        assert_eq!(bounce.metadata, None);
        assert_eq!(event.server_id(), Some(3));
        assert_eq!(event.bounce_class(), Some(BounceClass::Soft));
    }

    #[test]
    fn unknown_record_types_keep_the_body() {
        let body = json!({"RecordType": "Inbound", "FromFull": {"Email": "a@x"}, "MessageID": "m"});
        let event = parse(body.clone());
        assert_eq!(event.kind(), RecordKind::Unknown);
        assert_eq!(event.record_type(), Some("Inbound"));
        assert_eq!(event.message_id(), Some("m"));
        assert_eq!(serde_json::to_value(&event).unwrap(), body);
    }

    #[test]
    fn infers_kind_only_when_unambiguous() {
        assert_eq!(
            parse(json!({"DeliveredAt": "x", "Recipient": "a@x"})).kind(),
            RecordKind::Delivery
        );
        assert_eq!(
            parse(json!({"Type": "SpamComplaint", "Email": "a@x"})).kind(),
            RecordKind::SpamComplaint
        );
        assert_eq!(
            parse(json!({"Type": "SoftBounce", "BouncedAt": "x"})).kind(),
            RecordKind::Bounce
        );
        assert_eq!(parse(json!({"FirstOpen": true})).kind(), RecordKind::Open);
        assert_eq!(
            parse(json!({"OriginalLink": "https://x"})).kind(),
            RecordKind::Click
        );
        assert_eq!(
            parse(json!({"SuppressSending": true})).kind(),
            RecordKind::SubscriptionChange
        );
        assert_eq!(
            parse(json!({"DeliveredAt": "x", "BouncedAt": "y"})).kind(),
            RecordKind::Unknown
        );
        assert_eq!(
            parse(json!({"FromFull": {}, "DeliveredAt": "x"})).kind(),
            RecordKind::Unknown
        );
        assert_eq!(
            parse(json!({"RecordType": 7, "DeliveredAt": "x"})).kind(),
            RecordKind::Unknown
        );
    }

    #[test]
    fn serialises_with_record_type_and_postmark_names() {
        let event = WebhookEvent::Delivery(Delivery {
            server_id: Some(23),
            message_id: Some("m-1".into()),
            recipient: Some("a@example.com".into()),
            delivered_at: parse_timestamp("2022-09-02T11:49:27Z"),
            ..Delivery::default()
        });
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({"RecordType": "Delivery", "ServerID": 23, "MessageID": "m-1",
                   "Recipient": "a@example.com", "DeliveredAt": "2022-09-02T11:49:27Z"})
        );
    }
}
