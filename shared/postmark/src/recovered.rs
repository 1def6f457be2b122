//! Webhook events rebuilt from what Postmark's read APIs report about the same events.
//!
//! A bounce from `GET /bounces`, an open or click from `/messages/outbound/opens|clicks`, and a message
//! event from `/messages/outbound/{id}/details` describe the very events that Postmark posts as webhooks.
//! Each is rebuilt here into the webhook's own shape (and parsed by the webhook's own parser), so that an
//! event read back later is the same [`WebhookEvent`] as the one whose post was lost: the same record
//! type, `MessageID`, recipient, time and distinguishing fields. The read APIs leave out what a webhook
//! carries about the message (`Metadata`, `Tag`, stream); [`MessageContext`] brings it from the message.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::api_types::Suppression;
use crate::messages::{MessageEvent, OutboundMessage, OutboundMessageDetails};
use crate::webhook::{Bounce, Click, Open, WebhookEvent};

/// What a webhook carries about the message an event belongs to, and the read APIs omit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageContext {
    /// `MessageID`.
    pub message_id: String,
    /// `MessageStream`.
    pub stream: Option<String>,
    /// `Tag`.
    pub tag: Option<String>,
    /// `Metadata`.
    pub metadata: BTreeMap<String, String>,
}

impl From<&OutboundMessage> for MessageContext {
    fn from(m: &OutboundMessage) -> Self {
        Self {
            message_id: m.message_id.clone(),
            stream: m.message_stream.clone(),
            tag: m.tag.clone().filter(|t| !t.is_empty()),
            metadata: m.metadata.clone(),
        }
    }
}

impl MessageContext {
    /// Adds the message's fields that the record lacks (a field the record has wins).
    fn complete(&self, record: &mut Map<String, Value>) {
        let mut fill = |key: &str, value: Value| {
            let missing = record.get(key).is_none_or(|v| {
                v.is_null()
                    || v.as_str().is_some_and(str::is_empty)
                    || v.as_object().is_some_and(Map::is_empty)
            });
            if missing {
                record.insert(key.to_owned(), value);
            }
        };
        fill("MessageID", json!(self.message_id));
        if let Some(stream) = &self.stream {
            fill("MessageStream", json!(stream));
        }
        if let Some(tag) = &self.tag {
            fill("Tag", json!(tag));
        }
        if !self.metadata.is_empty() {
            fill("Metadata", json!(self.metadata));
        }
    }
}

fn rebuilt(record_type: &str, fields: Value, context: &MessageContext) -> WebhookEvent {
    let mut record = match fields {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    record.insert("RecordType".into(), json!(record_type));
    context.complete(&mut record);
    WebhookEvent::from_object(record)
}

/// A bounce from the Bounces API as its Bounce (or SpamComplaint) webhook.
pub fn bounce_event(bounce: &Bounce, context: &MessageContext) -> WebhookEvent {
    let record_type = match bounce.bounce_type.as_ref().map(|t| t.as_str()) {
        Some("SpamComplaint") => "SpamComplaint",
        _ => "Bounce",
    };
    let fields = serde_json::to_value(bounce).unwrap_or(Value::Null);
    rebuilt(record_type, fields, context)
}

/// An open from the opens API as its Open webhook.
pub fn open_event(open: &Open, context: &MessageContext) -> WebhookEvent {
    rebuilt(
        "Open",
        serde_json::to_value(open).unwrap_or(Value::Null),
        context,
    )
}

/// A click from the clicks API as its Click webhook.
pub fn click_event(click: &Click, context: &MessageContext) -> WebhookEvent {
    rebuilt(
        "Click",
        serde_json::to_value(click).unwrap_or(Value::Null),
        context,
    )
}

/// A message event from the message's details as its webhook: `Delivered` as a Delivery, `Opened` as an
/// Open, `LinkClicked` as a Click, `SubscriptionChanged` as a SubscriptionChange. `Bounced` gives `None`:
/// its bounce is read from the Bounces API (by its `BounceID`), which has what the webhook carries.
/// `Transient` (a retry in progress) gives `None` too.
pub fn message_event(
    details: &OutboundMessageDetails,
    event: &MessageEvent,
) -> Option<WebhookEvent> {
    let context = MessageContext::from(&details.message);
    let recipient = event.recipient.clone();
    let at = event.received_at.clone();
    let (record_type, fields) = match event.kind.as_str() {
        "Delivered" => (
            "Delivery",
            json!({
                "Recipient": recipient,
                "DeliveredAt": at,
                "Details": event.delivery_message(),
            }),
        ),
        "Opened" => ("Open", json!({ "Recipient": recipient, "ReceivedAt": at })),
        "LinkClicked" => (
            "Click",
            json!({
                "Recipient": recipient,
                "ReceivedAt": at,
                "OriginalLink": event.link(),
                "ClickLocation": event.detail("ClickLocation"),
            }),
        ),
        "SubscriptionChanged" => (
            "SubscriptionChange",
            json!({
                "Recipient": recipient,
                "ChangedAt": at,
                "SuppressSending": event.suppress_sending(),
                "Origin": event.detail("Origin"),
                "SuppressionReason": event.detail("SuppressionReason"),
            }),
        ),
        _ => return None,
    };
    Some(rebuilt(record_type, strip_nulls(fields), &context))
}

/// An entry of a stream's suppression dump as the SubscriptionChange webhook that would have announced it
/// (`SuppressSending: true`, changed when the suppression was created). The dump names no message; the
/// event is about the address alone.
pub fn suppression_event(suppression: &Suppression, stream: &str) -> WebhookEvent {
    let fields = json!({
        "RecordType": "SubscriptionChange",
        "Recipient": suppression.email_address,
        "SuppressSending": true,
        "SuppressionReason": suppression.suppression_reason.as_ref().map(|r| r.as_str()),
        "Origin": suppression.origin.as_ref().map(|o| o.as_str()),
        "ChangedAt": suppression.created_at.map(|t| t.to_rfc3339()),
        "MessageStream": stream,
    });
    match strip_nulls(fields) {
        Value::Object(map) => WebhookEvent::from_object(map),
        _ => WebhookEvent::Unknown(Map::new()),
    }
}

fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::RecordKind;

    fn context() -> MessageContext {
        MessageContext {
            message_id: "m-1".into(),
            stream: Some("broadcast".into()),
            tag: Some("news".into()),
            metadata: BTreeMap::from([("job_id".into(), "j-1".into())]),
        }
    }

    #[test]
    fn a_bounce_read_back_is_the_webhook_it_was_posted_as() {
        let posted = WebhookEvent::from_slice(
            br#"{"RecordType":"Bounce","ID":42,"Type":"HardBounce","TypeCode":1,"MessageID":"m-1",
                 "Email":"a@example.com","BouncedAt":"2026-01-02T03:04:05Z","MessageStream":"broadcast",
                 "Tag":"news","Metadata":{"job_id":"j-1"}}"#,
        )
        .unwrap();
        let WebhookEvent::Bounce(b) = &posted else {
            panic!("a bounce")
        };
        // The Bounces API has no metadata: the message's context brings it.
        let mut read = b.clone();
        read.metadata = None;
        read.tag = None;
        let event = bounce_event(&read, &context());
        assert_eq!(event.kind(), RecordKind::Bounce);
        assert_eq!(event.recipient(), posted.recipient());
        assert_eq!(event.event_time(), posted.event_time());
        assert_eq!(
            event.metadata().map(|m| m.to_string_map()),
            posted.metadata().map(|m| m.to_string_map())
        );
        assert_eq!(event, posted);
    }

    #[test]
    fn a_suppression_in_the_dump_is_a_subscription_change_that_suppresses() {
        let entry: Suppression = serde_json::from_value(json!({
            "EmailAddress": "a@example.com", "SuppressionReason": "ManualSuppression",
            "Origin": "Customer", "CreatedAt": "2026-01-02T03:04:05-05:00"
        }))
        .unwrap();
        let WebhookEvent::SubscriptionChange(change) = suppression_event(&entry, "broadcast")
        else {
            panic!("a subscription change")
        };
        assert_eq!(change.suppress_sending, Some(true));
        assert_eq!(change.recipient.as_deref(), Some("a@example.com"));
        assert_eq!(change.message_stream.as_deref(), Some("broadcast"));
        assert_eq!(
            change
                .suppression_reason
                .map(|r| r.as_str().to_owned())
                .as_deref(),
            Some("ManualSuppression")
        );
        assert_eq!(
            change.origin.map(|o| o.as_str().to_owned()).as_deref(),
            Some("Customer")
        );
        assert!(change.changed_at.is_some());
    }

    #[test]
    fn a_spam_complaint_bounce_is_a_spam_complaint() {
        let b: Bounce = serde_json::from_value(json!({"ID": 7, "Type": "SpamComplaint"})).unwrap();
        assert_eq!(
            bounce_event(&b, &context()).kind(),
            RecordKind::SpamComplaint
        );
    }

    #[test]
    fn message_events_become_their_webhooks() {
        let details: OutboundMessageDetails = serde_json::from_value(json!({
            "MessageID": "m-1", "MessageStream": "broadcast", "Metadata": {"job_id": "j-1"},
            "MessageEvents": [
                {"Recipient": "a@example.com", "Type": "Delivered", "ReceivedAt": "2026-01-02T03:04:05-05:00",
                 "Details": {"DeliveryMessage": "250 OK"}},
                {"Recipient": "a@example.com", "Type": "LinkClicked", "ReceivedAt": "2026-01-02T04:00:00-05:00",
                 "Details": {"Link": "https://a.example/", "ClickLocation": "HTML"}},
                {"Recipient": "a@example.com", "Type": "SubscriptionChanged", "ReceivedAt": "2026-01-02T05:00:00-05:00",
                 "Details": {"Origin": "Recipient", "SuppressSending": "True"}},
                {"Recipient": "a@example.com", "Type": "Bounced", "ReceivedAt": "2026-01-02T05:00:00-05:00",
                 "Details": {"BounceID": "9"}},
                {"Recipient": "a@example.com", "Type": "Transient", "ReceivedAt": "2026-01-02T05:00:00-05:00"}
            ]
        }))
        .unwrap();
        let events: Vec<WebhookEvent> = details
            .message_events
            .iter()
            .filter_map(|e| message_event(&details, e))
            .collect();
        let kinds: Vec<RecordKind> = events.iter().map(WebhookEvent::kind).collect();
        assert_eq!(
            kinds,
            [
                RecordKind::Delivery,
                RecordKind::Click,
                RecordKind::SubscriptionChange
            ]
        );
        for e in &events {
            assert_eq!(e.message_id(), Some("m-1"));
            assert_eq!(e.recipient(), Some("a@example.com"));
            assert_eq!(
                e.metadata()
                    .map(|m| m.to_string_map())
                    .and_then(|m| m.get("job_id").cloned())
                    .as_deref(),
                Some("j-1")
            );
        }
        let WebhookEvent::Click(c) = &events[1] else {
            panic!("a click")
        };
        assert_eq!(c.original_link.as_deref(), Some("https://a.example/"));
        let WebhookEvent::SubscriptionChange(s) = &events[2] else {
            panic!("a subscription change")
        };
        assert_eq!(s.suppress_sending, Some(true));
    }
}
