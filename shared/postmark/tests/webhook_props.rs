//! Property tests: no JSON object, whatever its fields and value types, panics the webhook parser or
//! makes it fail; and whatever it parses serialises and parses again.

use postmark::webhook::{RecordKind, WebhookEvent};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Field names Postmark uses, so that generated objects hit the typed fields with wrong types.
const KNOWN_FIELDS: &[&str] = &[
    "RecordType",
    "ServerID",
    "ServerId",
    "MessageStream",
    "MessageID",
    "Recipient",
    "Tag",
    "DeliveredAt",
    "Details",
    "Metadata",
    "ID",
    "Type",
    "TypeCode",
    "Name",
    "Description",
    "Email",
    "From",
    "BouncedAt",
    "DumpAvailable",
    "Inactive",
    "CanActivate",
    "Subject",
    "Content",
    "FirstOpen",
    "ReceivedAt",
    "ReadSeconds",
    "Platform",
    "Client",
    "OS",
    "UserAgent",
    "Geo",
    "ClickLocation",
    "OriginalLink",
    "ChangedAt",
    "Origin",
    "SuppressSending",
    "SuppressionReason",
    "FromFull",
    "CountryISOCode",
    "IP",
];

const RECORD_TYPES: &[&str] = &[
    "Delivery",
    "Bounce",
    "SpamComplaint",
    "Open",
    "Click",
    "SubscriptionChange",
    "Inbound",
    "delivery",
    "",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("2019-11-05T16:33:54.9070259Z"),
            Just("2016-12-01T15:41:45-05:00"),
            Just("2022-09-02T14:29:57.123456Z"),
            Just("not a date"),
            Just("HardBounce"),
            Just("SpamComplaint"),
            Just("42"),
            Just("true"),
        ]
        .prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..5)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(KNOWN_FIELDS).prop_map(str::to_owned),
        1 => "[A-Za-z]{1,10}",
    ]
}

fn object() -> impl Strategy<Value = Map<String, Value>> {
    (
        prop::collection::btree_map(key(), json_value(), 0..16),
        prop::option::of(prop_oneof![
            prop::sample::select(RECORD_TYPES).prop_map(Value::from),
            leaf(),
        ]),
    )
        .prop_map(|(fields, record_type)| {
            let mut object: Map<String, Value> = fields.into_iter().collect();
            if let Some(record_type) = record_type {
                object.insert("RecordType".to_owned(), record_type);
            }
            object
        })
}

fn exercise(event: &WebhookEvent) {
    let _ = event.kind();
    let _ = event.record_type();
    let _ = event.recipient();
    let _ = event.message_id();
    let _ = event.event_time();
    let _ = event.tag();
    let _ = event.message_stream();
    let _ = event.server_id();
    let _ = event.bounce_class();
    let _ = event.as_bounce().map(|b| b.class());
    if let Some(metadata) = event.metadata() {
        let _ = metadata.to_string_map();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_object_parses(object in object()) {
        let body = serde_json::to_vec(&Value::Object(object.clone())).expect("serialise");
        let event = WebhookEvent::from_slice(&body);
        prop_assert!(event.is_ok(), "{:?}", event);
        let event = event.expect("checked");
        exercise(&event);

        // A known RecordType always gives that kind, whatever the other fields hold.
        if let Some(Value::String(record_type)) = object.get("RecordType") {
            let known = ["Delivery", "Bounce", "SpamComplaint", "Open", "Click", "SubscriptionChange"]
                .iter()
                .find(|known| known.eq_ignore_ascii_case(record_type));
            match known {
                Some(known) => prop_assert_eq!(event.kind().as_str(), *known),
                None => prop_assert_eq!(event.kind(), RecordKind::Unknown),
            }
        }

        // Whatever was parsed serialises, and parses again into the same kind.
        let written = serde_json::to_vec(&event).expect("serialises");
        let again = WebhookEvent::from_slice(&written).expect("still an object");
        prop_assert_eq!(again.kind(), event.kind());
    }

    #[test]
    fn any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(event) = WebhookEvent::from_slice(&bytes) {
            exercise(&event);
        }
    }

    #[test]
    fn only_non_objects_fail(value in json_value()) {
        let body = serde_json::to_vec(&value).expect("serialise");
        prop_assert_eq!(WebhookEvent::from_slice(&body).is_ok(), value.is_object());
    }
}
