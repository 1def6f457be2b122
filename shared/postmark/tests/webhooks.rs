//! Every webhook fixture parses into the right variant with the right values, and serialises back
//! into Postmark's shape.

mod common;

use chrono::{DateTime, FixedOffset, TimeZone};
use common::{fixture, fixture_json, fixture_names};
use postmark::webhook::{RecordKind, SuppressionOrigin, SuppressionReason, WebhookEvent};
use postmark::{BounceClass, BounceType, parse_timestamp};
use serde_json::Value;

/// An instant built by hand (not by the parser under test).
fn at(
    date: (i32, u32, u32),
    time: (u32, u32, u32),
    nanos: u32,
    offset_hours: i32,
) -> DateTime<FixedOffset> {
    let offset = FixedOffset::east_opt(offset_hours * 3600).expect("offset");
    let (y, mo, d) = date;
    let (h, mi, s) = time;
    let whole = offset
        .with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("valid date");
    whole + chrono::Duration::nanoseconds(i64::from(nanos))
}

struct Expected {
    file: &'static str,
    kind: RecordKind,
    recipient: &'static str,
    message_id: Option<&'static str>,
    time: DateTime<FixedOffset>,
    class: Option<BounceClass>,
    tag: Option<&'static str>,
    stream: Option<&'static str>,
    server_id: Option<i64>,
    metadata: Option<(&'static str, &'static str)>,
}

const ZEROS: &str = "00000000-0000-0000-0000-000000000000";
const SKILLS_ID: &str = "883953f4-6105-42a2-a16a-77a8eac79483";

fn table() -> Vec<Expected> {
    use RecordKind::*;
    vec![
        Expected {
            file: "docs_bounce_support_article.json",
            kind: Bounce,
            recipient: "john@example.com",
            message_id: Some(SKILLS_ID),
            time: at((2019, 11, 5), (16, 33, 54), 907_025_900, 0),
            class: Some(BounceClass::Hard),
            tag: Some("Test"),
            stream: Some("transactional"),
            server_id: Some(23),
            metadata: Some(("a_key", "a_value")),
        },
        Expected {
            file: "docs_delivery_legacy_support_article.json",
            kind: Delivery,
            recipient: "recipeint@example.com",
            message_id: Some("a94dfe84-8ab9-43cf-8a1c-ac234c296e25"),
            time: at((2016, 12, 1), (15, 41, 45), 0, -5),
            class: None,
            tag: Some("Your Tag"),
            stream: None,
            server_id: None,
            metadata: None,
        },
        Expected {
            file: "docs_spam_complaint.json",
            kind: SpamComplaint,
            recipient: "john@example.com",
            message_id: Some(ZEROS),
            time: at((2019, 11, 5), (16, 33, 54), 907_025_900, 0),
            class: Some(BounceClass::Complaint),
            tag: Some("Test"),
            stream: Some("outbound"),
            server_id: Some(1234),
            metadata: Some(("b_key", "b_value")),
        },
        Expected {
            file: "docs_spam_complaint_curl_example.json",
            kind: SpamComplaint,
            recipient: "john@example.com",
            message_id: Some(ZEROS),
            time: at((2018, 2, 20), (12, 54, 23), 339_643_400, -5),
            class: Some(BounceClass::Complaint),
            tag: Some("Test"),
            stream: None,
            server_id: Some(1234),
            metadata: None,
        },
        Expected {
            file: "docs_subscription_change.json",
            kind: SubscriptionChange,
            recipient: "bounced-address@wildbit.com",
            message_id: Some(SKILLS_ID),
            time: at((2020, 2, 1), (10, 53, 34), 416_071_000, 0),
            class: None,
            tag: Some("my-tag"),
            stream: Some("outbound"),
            server_id: Some(123_456),
            metadata: Some(("example_2", "value")),
        },
        Expected {
            file: "docs_subscription_change_older_version.json",
            kind: SubscriptionChange,
            recipient: "bounced-address@wildbit.com",
            message_id: None,
            time: at((2020, 2, 1), (10, 53, 34), 416_071_000, 0),
            class: None,
            tag: Some("my-tag"),
            stream: Some("outbound"),
            server_id: Some(123_456),
            metadata: Some(("example", "value")),
        },
        Expected {
            file: "skills_bounce.json",
            kind: Bounce,
            recipient: "john@example.com",
            message_id: Some(SKILLS_ID),
            time: at((2025, 4, 5), (16, 33, 54), 907_025_900, 0),
            class: Some(BounceClass::Hard),
            tag: Some("welcome-email"),
            stream: Some("outbound"),
            server_id: Some(23),
            metadata: Some(("customer_id", "12345")),
        },
        Expected {
            file: "skills_click.json",
            kind: Click,
            recipient: "john@example.com",
            message_id: Some(SKILLS_ID),
            time: at((2025, 4, 5), (16, 33, 54), 907_025_900, 0),
            class: None,
            tag: Some("welcome-email"),
            stream: Some("outbound"),
            server_id: Some(23),
            metadata: Some(("customer_id", "12345")),
        },
        Expected {
            file: "skills_delivery.json",
            kind: Delivery,
            recipient: "john@example.com",
            message_id: Some(SKILLS_ID),
            time: at((2025, 4, 5), (16, 33, 54), 907_025_900, 0),
            class: None,
            tag: Some("welcome-email"),
            stream: Some("outbound"),
            server_id: Some(23),
            metadata: Some(("customer_id", "12345")),
        },
        Expected {
            file: "skills_open.json",
            kind: Open,
            recipient: "john@example.com",
            message_id: Some(SKILLS_ID),
            time: at((2025, 4, 5), (16, 33, 54), 907_025_900, 0),
            class: None,
            tag: Some("welcome-email"),
            stream: Some("outbound"),
            server_id: Some(23),
            metadata: Some(("customer_id", "12345")),
        },
        Expected {
            file: "skills_spam_complaint.json",
            kind: SpamComplaint,
            recipient: "john@example.com",
            message_id: Some(SKILLS_ID),
            time: at((2025, 4, 5), (16, 33, 54), 907_025_900, 0),
            class: Some(BounceClass::Complaint),
            tag: Some("welcome-email"),
            stream: Some("outbound"),
            server_id: Some(23),
            metadata: Some(("customer_id", "12345")),
        },
        Expected {
            file: "skills_subscription_change.json",
            kind: SubscriptionChange,
            recipient: "john@example.com",
            message_id: Some(SKILLS_ID),
            time: at((2025, 4, 5), (16, 33, 54), 907_025_900, 0),
            class: None,
            tag: Some("newsletter"),
            stream: Some("broadcast"),
            server_id: Some(23),
            metadata: Some(("customer_id", "12345")),
        },
        Expected {
            file: "symfony_bounce.json",
            kind: Bounce,
            recipient: "john@example.com",
            message_id: Some(ZEROS),
            time: at((2022, 9, 2), (14, 29, 19), 123_456_700, 0),
            class: Some(BounceClass::Hard),
            tag: Some("Test"),
            stream: Some("outbound"),
            server_id: Some(1234),
            metadata: Some(("example", "value")),
        },
        Expected {
            file: "symfony_click.json",
            kind: Click,
            recipient: "john@example.com",
            message_id: Some(ZEROS),
            time: at((2022, 9, 2), (14, 31, 9), 0, 0),
            class: None,
            tag: Some("welcome-email"),
            stream: Some("outbound"),
            server_id: None,
            metadata: Some(("example_2", "value")),
        },
        Expected {
            file: "symfony_delivery.json",
            kind: Delivery,
            recipient: "john@example.com",
            message_id: Some(ZEROS),
            time: at((2022, 9, 2), (11, 49, 27), 0, 0),
            class: None,
            tag: Some("welcome-email"),
            stream: Some("outbound"),
            server_id: Some(23),
            metadata: Some(("example", "value")),
        },
        Expected {
            file: "symfony_open.json",
            kind: Open,
            recipient: "john@example.com",
            message_id: Some(ZEROS),
            time: at((2022, 9, 2), (14, 30, 47), 0, 0),
            class: None,
            tag: Some("welcome-email"),
            stream: Some("outbound"),
            server_id: None,
            metadata: Some(("example", "value")),
        },
        Expected {
            file: "symfony_spam_complaint.json",
            kind: SpamComplaint,
            recipient: "john@example.com",
            message_id: Some(ZEROS),
            time: at((2022, 9, 2), (14, 29, 57), 123_456_000, 0),
            class: Some(BounceClass::Complaint),
            tag: Some("Test"),
            stream: Some("outbound"),
            server_id: Some(1234),
            metadata: Some(("example", "value")),
        },
        Expected {
            file: "symfony_subscription_change.json",
            kind: SubscriptionChange,
            recipient: "john@example.com",
            message_id: Some(ZEROS),
            time: at((2022, 9, 2), (14, 32, 30), 0, 0),
            class: None,
            tag: Some("welcome-email"),
            stream: Some("outbound"),
            server_id: Some(23),
            metadata: Some(("example", "value")),
        },
    ]
}

fn parse(file: &str) -> WebhookEvent {
    WebhookEvent::from_slice(fixture(&format!("webhooks/{file}")).as_bytes())
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn every_fixture_is_in_the_table() {
    let listed: Vec<&str> = table().iter().map(|e| e.file).collect();
    for name in fixture_names("webhooks") {
        assert!(
            listed.contains(&name.as_str()),
            "{name} has no expectations"
        );
    }
}

#[test]
fn every_fixture_parses_with_the_right_values() {
    for expected in table() {
        let file = expected.file;
        let event = parse(file);
        assert_eq!(event.kind(), expected.kind, "{file}");
        assert_eq!(event.record_type(), Some(expected.kind.as_str()), "{file}");
        assert_eq!(event.recipient(), Some(expected.recipient), "{file}");
        assert_eq!(event.message_id(), expected.message_id, "{file}");
        let time = event
            .event_time()
            .unwrap_or_else(|| panic!("{file}: no time"));
        assert_eq!(time, expected.time, "{file}");
        assert_eq!(time.offset(), expected.time.offset(), "{file}: offset kept");
        assert_eq!(event.bounce_class(), expected.class, "{file}");
        assert_eq!(event.tag(), expected.tag, "{file}");
        assert_eq!(event.message_stream(), expected.stream, "{file}");
        assert_eq!(event.server_id(), expected.server_id, "{file}");
        match expected.metadata {
            Some((key, value)) => {
                let metadata = event
                    .metadata()
                    .unwrap_or_else(|| panic!("{file}: no metadata"));
                assert_eq!(metadata.get_str(key).as_deref(), Some(value), "{file}");
            }
            None => assert!(event.metadata().is_none(), "{file}"),
        }
    }
}

#[test]
fn bounce_details() {
    let event = parse("docs_bounce_support_article.json");
    let bounce = event.as_bounce().expect("bounce");
    assert_eq!(bounce.id, Some(42));
    assert_eq!(bounce.bounce_type, Some(BounceType::HardBounce));
    assert_eq!(bounce.type_code, Some(1));
    assert_eq!(bounce.inactive, Some(true));
    assert_eq!(bounce.can_activate, Some(true));
    assert_eq!(bounce.dump_available, Some(true));
    assert_eq!(bounce.from.as_deref(), Some("sender@example.com"));
    assert_eq!(bounce.content.as_deref(), Some("<Full dump of bounce>"));

    // SpamComplaint is keyed on RecordType/Type, whatever TypeCode says (512 here, 100001 there).
    for file in [
        "docs_spam_complaint.json",
        "symfony_spam_complaint.json",
        "skills_spam_complaint.json",
    ] {
        let event = parse(file);
        let complaint = event.as_bounce().expect("complaint");
        assert_eq!(
            complaint.bounce_type,
            Some(BounceType::SpamComplaint),
            "{file}"
        );
        assert_eq!(complaint.class(), BounceClass::Complaint, "{file}");
    }
    assert_eq!(
        parse("docs_spam_complaint.json")
            .as_bounce()
            .and_then(|b| b.type_code),
        Some(512)
    );
    assert_eq!(
        parse("symfony_spam_complaint.json")
            .as_bounce()
            .and_then(|b| b.type_code),
        Some(100_001)
    );
    // The skills complaint lacks Inactive and friends: absent, not an error.
    assert_eq!(
        parse("skills_spam_complaint.json")
            .as_bounce()
            .and_then(|b| b.inactive),
        None
    );
}

#[test]
fn open_and_click_details() {
    let WebhookEvent::Open(open) = parse("symfony_open.json") else {
        panic!("not an open");
    };
    assert_eq!(open.first_open, Some(true));
    assert_eq!(open.read_seconds, Some(5));
    assert_eq!(open.platform.as_deref(), Some("WebMail"));
    assert_eq!(
        open.client.as_ref().and_then(|c| c.name.as_deref()),
        Some("Chrome 35.0.1916.153")
    );
    assert_eq!(
        open.os.as_ref().and_then(|o| o.family.as_deref()),
        Some("OS X 10")
    );
    let geo = open.geo.expect("geo");
    assert_eq!(geo.country_iso_code.as_deref(), Some("RS"));
    assert_eq!(geo.ip.as_deref(), Some("188.2.95.4"));
    assert!(
        open.user_agent
            .as_deref()
            .is_some_and(|ua| ua.starts_with("Mozilla/5.0"))
    );

    let WebhookEvent::Click(click) = parse("skills_click.json") else {
        panic!("not a click");
    };
    assert_eq!(click.click_location.as_deref(), Some("HTML"));
    assert_eq!(
        click.original_link.as_deref(),
        Some("https://yourdomain.com/pricing")
    );
    assert_eq!(
        click.geo.and_then(|g| g.region_iso_code),
        Some("CA".to_owned())
    );
}

#[test]
fn subscription_change_details() {
    let WebhookEvent::SubscriptionChange(change) = parse("skills_subscription_change.json") else {
        panic!("not a subscription change");
    };
    assert_eq!(change.suppress_sending, Some(true));
    assert_eq!(
        change.suppression_reason,
        Some(SuppressionReason::ManualSuppression)
    );
    assert_eq!(change.origin, Some(SuppressionOrigin::Recipient));

    let WebhookEvent::SubscriptionChange(older) =
        parse("docs_subscription_change_older_version.json")
    else {
        panic!("not a subscription change");
    };
    assert_eq!(older.suppression_reason, None);
    assert_eq!(older.message_id, None);
}

#[test]
fn records_of_the_messages_api_parse_as_clicks() {
    let clicks = fixture_json("api/mrz1836_messages_api_clicks_html_and_text.json");
    let locations: Vec<String> = clicks["Clicks"]
        .as_array()
        .expect("clicks")
        .iter()
        .map(
            |record| match WebhookEvent::from_value(record.clone()).expect("object") {
                WebhookEvent::Click(click) => click.click_location.expect("location"),
                other => panic!("not a click: {other:?}"),
            },
        )
        .collect();
    assert_eq!(locations, ["HTML", "Text"]);
}

/// Serialising gives back the fixture: same keys (plus `RecordType` for bodies that lacked it),
/// same values, timestamps equal as instants (Postmark writes 7 fraction digits; some fixtures 6).
#[test]
fn serialising_gives_back_postmarks_shape() {
    for expected in table() {
        let file = expected.file;
        let original = fixture_json(&format!("webhooks/{file}"));
        let event = parse(file);
        let written = serde_json::to_value(&event).expect("serialises");
        let (Value::Object(original), Value::Object(mut written)) = (original, written) else {
            panic!("{file}: not objects");
        };
        if !original.contains_key("RecordType") {
            assert_eq!(
                written.remove("RecordType"),
                Some(Value::from(expected.kind.as_str())),
                "{file}"
            );
        }
        let sorted = |map: &serde_json::Map<String, Value>| {
            map.keys()
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(sorted(&original), sorted(&written), "{file}: keys");
        for (key, value) in &original {
            let again = &written[key];
            if value != again {
                let (Some(a), Some(b)) = (value.as_str(), again.as_str()) else {
                    panic!("{file}: {key} changed from {value} to {again}");
                };
                assert_eq!(parse_timestamp(a), parse_timestamp(b), "{file}: {key}");
                assert!(
                    parse_timestamp(a).is_some(),
                    "{file}: {key} changed from {a} to {b}"
                );
            }
        }
        let reparsed = WebhookEvent::from_value(Value::Object(written)).expect("object");
        assert_eq!(reparsed, event, "{file}: round trip");
    }
}

#[test]
fn server_id_spelled_server_id_is_read() {
    let event = WebhookEvent::from_slice(
        br#"{"RecordType":"Delivery","ServerId":99,"Recipient":"a@example.com","DeliveredAt":"2024-01-01T00:00:00Z"}"#,
    )
    .expect("object");
    assert_eq!(event.server_id(), Some(99));
    assert_eq!(serde_json::to_value(&event).expect("json")["ServerID"], 99);
}
