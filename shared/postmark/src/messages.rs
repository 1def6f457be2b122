//! The Messages API (outbound): search by metadata and read one message's events.
//!
//! The sender uses it after an ambiguous send (see [`crate::PostmarkError::may_have_been_accepted`])
//! to find out what Postmark accepted before sending again.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// The most messages one search page may hold.
pub const MAX_SEARCH_COUNT: u32 = 500;
/// Postmark refuses searches whose `count + offset` exceed this; narrow with dates instead.
pub const MAX_SEARCH_WINDOW: u32 = 10_000;

/// How Postmark's date filters (`fromdate`, `todate`) are written: Eastern Time, no offset.
pub(crate) const EASTERN_DATE: &str = "%Y-%m-%dT%H:%M:%S";

/// Whether Postmark takes this paging: `count` 1 to [`MAX_SEARCH_COUNT`], `count + offset` at most
/// [`MAX_SEARCH_WINDOW`] (the same rule for messages, bounces, opens and clicks).
pub(crate) fn paging_ok(count: u32, offset: u32) -> bool {
    (1..=MAX_SEARCH_COUNT).contains(&count) && count.saturating_add(offset) <= MAX_SEARCH_WINDOW
}

/// A search of sent messages (`GET /messages/outbound`), built step by step.
///
/// ```
/// use postmark::OutboundSearch;
///
/// let search = OutboundSearch::new(500).stream("broadcast").metadata("send_id", "s-1");
/// assert_eq!(search.count(), 500);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundSearch {
    count: u32,
    offset: u32,
    recipient: Option<String>,
    from_email: Option<String>,
    tag: Option<String>,
    subject: Option<String>,
    status: Option<String>,
    from_date: Option<NaiveDateTime>,
    to_date: Option<NaiveDateTime>,
    message_stream: Option<String>,
    metadata: Option<(String, String)>,
}

impl OutboundSearch {
    /// The first `count` matches (1 to [`MAX_SEARCH_COUNT`]; checked when the search is made).
    pub fn new(count: u32) -> Self {
        Self {
            count,
            offset: 0,
            recipient: None,
            from_email: None,
            tag: None,
            subject: None,
            status: None,
            from_date: None,
            to_date: None,
            message_stream: None,
            metadata: None,
        }
    }

    /// Skips this many matches (`count + offset` at most [`MAX_SEARCH_WINDOW`]).
    pub fn offset(mut self, offset: u32) -> Self {
        self.offset = offset;
        self
    }

    /// Only messages with this address in To, Cc or Bcc.
    pub fn recipient(mut self, recipient: impl Into<String>) -> Self {
        self.recipient = Some(recipient.into());
        self
    }

    /// Only messages from this address.
    pub fn from_email(mut self, from: impl Into<String>) -> Self {
        self.from_email = Some(from.into());
        self
    }

    /// Only messages with this tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Only messages whose subject contains this text.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Only messages in this status (`queued`, `sent`, `processed`).
    pub fn status(mut self, status: impl Into<String>) -> Self {
        self.status = Some(status.into());
        self
    }

    /// Only messages sent at or after this time. Postmark reads it as US Eastern Time (daylight
    /// saving included), so convert UTC bounds to `America/New_York` first and widen windows around
    /// the DST changes.
    pub fn from_date(mut self, eastern: NaiveDateTime) -> Self {
        self.from_date = Some(eastern);
        self
    }

    /// Only messages sent at or before this time, read as US Eastern Time like
    /// [`OutboundSearch::from_date`].
    pub fn to_date(mut self, eastern: NaiveDateTime) -> Self {
        self.to_date = Some(eastern);
        self
    }

    /// Only this stream. Without it Postmark searches the default `outbound` stream only, so a
    /// sender on several streams must search each one.
    pub fn stream(mut self, stream: impl Into<String>) -> Self {
        self.message_stream = Some(stream.into());
        self
    }

    /// Only messages whose metadata `key` is `value`. Postmark filters on one metadata field at a
    /// time, so a second call replaces the first. Re-check the returned
    /// [`OutboundMessage::metadata`]: an ignored filter must never look like a duplicate.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata = Some((key.into(), value.into()));
        self
    }

    /// Messages per page.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Messages skipped.
    pub fn skipped(&self) -> u32 {
        self.offset
    }

    /// Whether Postmark would take this paging.
    pub(crate) fn paging_ok(&self) -> bool {
        paging_ok(self.count, self.offset)
    }

    /// The query string pairs, in a fixed order.
    pub(crate) fn pairs(&self) -> Vec<(String, String)> {
        const DATE: &str = EASTERN_DATE;
        let mut pairs = vec![
            ("count".to_owned(), self.count.to_string()),
            ("offset".to_owned(), self.offset.to_string()),
        ];
        let texts = [
            ("recipient", &self.recipient),
            ("fromemail", &self.from_email),
            ("tag", &self.tag),
            ("subject", &self.subject),
            ("status", &self.status),
        ];
        for (name, value) in texts {
            if let Some(value) = value {
                pairs.push((name.to_owned(), value.clone()));
            }
        }
        if let Some(from) = &self.from_date {
            pairs.push(("fromdate".to_owned(), from.format(DATE).to_string()));
        }
        if let Some(to) = &self.to_date {
            pairs.push(("todate".to_owned(), to.format(DATE).to_string()));
        }
        if let Some(stream) = &self.message_stream {
            pairs.push(("messagestream".to_owned(), stream.clone()));
        }
        if let Some((key, value)) = &self.metadata {
            pairs.push((format!("metadata_{key}"), value.clone()));
        }
        pairs
    }
}

/// One page of a search: `TotalCount` is every match, not only this page's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundMessages {
    /// `TotalCount`.
    pub total_count: u64,
    /// `Messages`, newest first.
    pub messages: Vec<OutboundMessage>,
}

/// A recipient as the Messages API lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipient {
    /// `Email`.
    pub email: String,
    /// `Name`; an empty name (older answers) is `None`, as is `null`.
    pub name: Option<String>,
}

/// A sent message as search lists it (no bodies).
///
/// Only `MessageID` is required: fields came and went over the years (2017 answers have no
/// `MessageStream`, `Metadata`, `Tag` or `Sandboxed`), and a field of the wrong type reads as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundMessage {
    /// `MessageID`.
    pub message_id: String,
    /// `MessageStream`.
    pub message_stream: Option<String>,
    /// `Tag`.
    pub tag: Option<String>,
    /// `From`.
    pub from: Option<String>,
    /// `To`.
    pub to: Vec<Recipient>,
    /// `Cc`.
    pub cc: Vec<Recipient>,
    /// `Bcc`.
    pub bcc: Vec<Recipient>,
    /// `Recipients`: every address of To, Cc and Bcc.
    pub recipients: Vec<String>,
    /// `ReceivedAt`, as Postmark wrote it (Eastern offset, 7 fractional digits).
    pub received_at: Option<String>,
    /// `Subject`.
    pub subject: Option<String>,
    /// `Attachments`: file names (objects are read by their `Name`).
    pub attachments: Vec<String>,
    /// `Status` (`Sent`, `Queued`, `Processed`...).
    pub status: Option<String>,
    /// `TrackOpens`.
    pub track_opens: Option<bool>,
    /// `TrackLinks` (`None`, `HtmlAndText`, `HtmlOnly`, `TextOnly`).
    pub track_links: Option<String>,
    /// `Metadata`; non-string values are kept as their JSON text.
    pub metadata: BTreeMap<String, String>,
    /// `Sandboxed`: sent by a sandbox server, never delivered.
    pub sandboxed: Option<bool>,
}

/// One message with its bodies and what happened to it
/// (`GET /messages/outbound/{id}/details`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundMessageDetails {
    /// The fields search also gives.
    pub message: OutboundMessage,
    /// `TextBody`.
    pub text_body: Option<String>,
    /// `HtmlBody`.
    pub html_body: Option<String>,
    /// `Body`: the raw SMTP source.
    pub body: Option<String>,
    /// `MessageEvents`, one per recipient per event.
    pub message_events: Vec<MessageEvent>,
}

/// One event of a message (`Delivered`, `Transient`, `Opened`, `LinkClicked`, `Bounced`,
/// `SubscriptionChanged`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageEvent {
    /// `Recipient`.
    pub recipient: Option<String>,
    /// `Type`.
    pub kind: String,
    /// `ReceivedAt`.
    pub received_at: Option<String>,
    /// `Details`, kept as JSON: Postmark sends `BounceID` and `SuppressSending` as strings where
    /// clients expect numbers and booleans.
    pub details: Value,
}

impl MessageEvent {
    /// A detail as text, whether Postmark sent it as a string, number or boolean.
    pub fn detail(&self, key: &str) -> Option<String> {
        match self.details.get(key)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(flag) => Some(if *flag { "True" } else { "False" }.to_owned()),
            _ => None,
        }
    }

    /// A detail as an integer, whether sent as a number (`374814878`) or a string
    /// (`"374814878"`).
    pub fn detail_i64(&self, key: &str) -> Option<i64> {
        self.details
            .get(key)
            .and_then(crate::serde_util::value_as_i64)
    }

    /// A detail as a boolean: `true`/`false`, or a string compared case-insensitively (`"True"`).
    pub fn detail_bool(&self, key: &str) -> Option<bool> {
        match self.details.get(key)? {
            Value::Bool(flag) => Some(*flag),
            Value::String(text) if text.trim().eq_ignore_ascii_case("true") => Some(true),
            Value::String(text) if text.trim().eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }

    /// `Details.BounceID` of a `Bounced` event: the id for [`crate::PostmarkClient::bounce`].
    pub fn bounce_id(&self) -> Option<i64> {
        self.detail_i64("BounceID")
    }

    /// `Details.SuppressSending` of a `SubscriptionChanged` event: `true` when the recipient was
    /// suppressed, `false` when reactivated.
    pub fn suppress_sending(&self) -> Option<bool> {
        self.detail_bool("SuppressSending")
    }

    /// `Details.Summary` (`Opened`, `LinkClicked`, `Bounced`).
    pub fn summary(&self) -> Option<String> {
        self.detail("Summary")
    }

    /// `Details.Link` of a `LinkClicked` event.
    pub fn link(&self) -> Option<String> {
        self.detail("Link")
    }

    /// `Details.DeliveryMessage` of a `Delivered` or `Transient` event: the SMTP reply.
    pub fn delivery_message(&self) -> Option<String> {
        self.detail("DeliveryMessage")
    }
}

fn text(object: &Map<String, Value>, key: &str) -> Option<String> {
    match object.get(key)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn flag(object: &Map<String, Value>, key: &str) -> Option<bool> {
    match object.get(key)? {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) if text.eq_ignore_ascii_case("true") => Some(true),
        Value::String(text) if text.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn array<'a>(object: &'a Map<String, Value>, key: &str) -> &'a [Value] {
    object
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn recipients(object: &Map<String, Value>, key: &str) -> Vec<Recipient> {
    array(object, key)
        .iter()
        .filter_map(|entry| match entry {
            Value::Object(entry) => Some(Recipient {
                email: text(entry, "Email")?,
                name: text(entry, "Name").filter(|name| !name.is_empty()),
            }),
            Value::String(email) => Some(Recipient {
                email: email.clone(),
                name: None,
            }),
            _ => None,
        })
        .collect()
}

impl OutboundMessage {
    fn from_object(object: &Map<String, Value>) -> Option<Self> {
        let metadata = object
            .get("Metadata")
            .and_then(Value::as_object)
            .map(|entries| {
                entries
                    .iter()
                    .map(|(key, value)| {
                        let value = match value {
                            Value::String(text) => text.clone(),
                            other => other.to_string(),
                        };
                        (key.clone(), value)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            message_id: text(object, "MessageID")?,
            message_stream: text(object, "MessageStream"),
            tag: text(object, "Tag"),
            from: text(object, "From"),
            to: recipients(object, "To"),
            cc: recipients(object, "Cc"),
            bcc: recipients(object, "Bcc"),
            recipients: array(object, "Recipients")
                .iter()
                .filter_map(|entry| entry.as_str().map(str::to_owned))
                .collect(),
            received_at: text(object, "ReceivedAt"),
            subject: text(object, "Subject"),
            attachments: array(object, "Attachments")
                .iter()
                .filter_map(|entry| match entry {
                    Value::String(name) => Some(name.clone()),
                    Value::Object(attachment) => text(attachment, "Name"),
                    _ => None,
                })
                .collect(),
            status: text(object, "Status"),
            track_opens: flag(object, "TrackOpens"),
            track_links: text(object, "TrackLinks"),
            metadata,
            sandboxed: flag(object, "Sandboxed"),
        })
    }
}

fn object<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Map<String, Value>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Object(object) => Ok(object),
        _ => Err(serde::de::Error::custom("expected a JSON object")),
    }
}

fn missing_id<E: serde::de::Error>() -> E {
    E::custom("a message without MessageID")
}

impl<'de> Deserialize<'de> for OutboundMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::from_object(&object(deserializer)?).ok_or_else(missing_id)
    }
}

impl<'de> Deserialize<'de> for OutboundMessages {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = object(deserializer)?;
        let total_count = object
            .get("TotalCount")
            .and_then(crate::serde_util::value_as_i64)
            .and_then(|count| u64::try_from(count).ok())
            .unwrap_or_default();
        let messages = array(&object, "Messages")
            .iter()
            .filter_map(Value::as_object)
            .map(|entry| OutboundMessage::from_object(entry).ok_or_else(missing_id))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            total_count,
            messages,
        })
    }
}

impl<'de> Deserialize<'de> for OutboundMessageDetails {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let object = object(deserializer)?;
        let message = OutboundMessage::from_object(&object).ok_or_else(missing_id)?;
        let message_events = array(&object, "MessageEvents")
            .iter()
            .filter_map(Value::as_object)
            .map(|event| MessageEvent {
                recipient: text(event, "Recipient"),
                kind: text(event, "Type").unwrap_or_default(),
                received_at: text(event, "ReceivedAt"),
                details: event.get("Details").cloned().unwrap_or(Value::Null),
            })
            .collect();
        Ok(Self {
            message,
            text_body: text(&object, "TextBody"),
            html_body: text(&object, "HtmlBody"),
            body: text(&object, "Body"),
            message_events,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_follow_postmarks_names() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        let search = OutboundSearch::new(50)
            .offset(100)
            .recipient("ada@example.org")
            .from_email("shop@example.com")
            .tag("t")
            .subject("Hello")
            .status("sent")
            .from_date(day.and_hms_opt(1, 2, 3).unwrap())
            .to_date(day.and_hms_opt(23, 59, 59).unwrap())
            .stream("broadcast")
            .metadata("job_id", "j-1")
            .metadata("send_id", "s-1");
        let pairs: Vec<(String, String)> = search.pairs();
        let as_str: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            as_str,
            [
                ("count", "50"),
                ("offset", "100"),
                ("recipient", "ada@example.org"),
                ("fromemail", "shop@example.com"),
                ("tag", "t"),
                ("subject", "Hello"),
                ("status", "sent"),
                ("fromdate", "2026-03-08T01:02:03"),
                ("todate", "2026-03-08T23:59:59"),
                ("messagestream", "broadcast"),
                ("metadata_send_id", "s-1"),
            ]
        );
    }

    #[test]
    fn paging_limits() {
        assert!(OutboundSearch::new(500).offset(9_500).paging_ok());
        assert!(!OutboundSearch::new(500).offset(9_501).paging_ok());
        assert!(!OutboundSearch::new(0).paging_ok());
        assert!(!OutboundSearch::new(501).paging_ok());
        assert!(!OutboundSearch::new(1).offset(u32::MAX).paging_ok());
    }

    #[test]
    fn a_message_needs_only_its_id() {
        let message: OutboundMessage = serde_json::from_str(
            r#"{"MessageID":"m-1","To":null,"Metadata":{"n":1},"Sandboxed":"false","Extra":{}}"#,
        )
        .unwrap();
        assert_eq!(message.message_id, "m-1");
        assert!(message.to.is_empty());
        assert_eq!(message.metadata["n"], "1");
        assert_eq!(message.sandboxed, Some(false));
        assert!(serde_json::from_str::<OutboundMessage>(r#"{"To":[]}"#).is_err());
    }
}
