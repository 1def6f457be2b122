//! The feed's contract as written down for the platform's apps (`schemas/feed-event.v1.schema.json`, the
//! examples in `events/feed/`) agrees with what the code publishes: every example is what the domain's
//! constructors build from the outcome it shows, and every example, and nothing the code never builds,
//! is valid for the schema.
//!
//! After a deliberate change of the format, rewrite the examples with
//! `FEED_EXAMPLES_WRITE=1 cargo nextest run -p stream --test feed_contract`, and read the diff.

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use domain::EmailAddress;
use domain::EmailType;
use domain::events::{BounceClass, Event, EventKind, Source};
use domain::feed::{EndedJob, FeedEvent, JobEnding, TYPES};
use domain::trace::{Campaign, CampaignKind, MessageTrace};
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read_json(path: &str) -> Value {
    let path = root().join(path);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("an RFC 3339 time")
        .with_timezone(&Utc)
}

fn address(text: &str) -> Option<EmailAddress> {
    Some(EmailAddress::parse(text).expect("an address"))
}

fn broadcast() -> Option<Campaign> {
    Some(Campaign {
        kind: CampaignKind::Broadcast,
        id: "winter-sale-2026".into(),
    })
}

/// A job of the demo's broadcast.
fn job(n: usize, ending: JobEnding, time: &str) -> FeedEvent {
    let sent = ending == JobEnding::Sent;
    FeedEvent::from_job(&EndedJob {
        job_id: format!("demo-winter-sale-2026-{n}"),
        ending,
        at: at(time),
        recipient: address(&format!("reader{n}@example.org")),
        subscriber_id: Some(format!("sub-{n}")),
        message_id: sent.then(|| "0a129aee-e1cd-480d-b08d-4f48548ff48d".to_owned()),
        email_type: Some(EmailType::Broadcast),
        campaign: broadcast(),
        stream: Some("broadcast".into()),
    })
}

/// A Postmark webhook event of the demo's broadcast, as the webhook function records it.
fn observed(kind: EventKind, time: &str, dedup_key: &str) -> Event {
    Event {
        kind,
        source: Source::Postmark,
        dedup_key: dedup_key.into(),
        recipient: address("reader3@example.org"),
        message_id: Some("883953f4-6105-42a2-a16a-77a8eac79483".into()),
        at: at(time),
        trace: MessageTrace {
            job_id: Some("demo-winter-sale-2026-3".into()),
            email_type: Some(EmailType::Broadcast),
            campaign: broadcast(),
            subscriber_id: Some("sub-3".into()),
            ..MessageTrace::default()
        },
        stream: Some("broadcast".into()),
        client: None,
        automated: None,
        detail: Value::Null,
    }
}

fn published(event: Event, standing_unchanged: bool) -> FeedEvent {
    FeedEvent::from_event(&event, standing_unchanged).expect("a feed event")
}

/// One example of every type, built by the constructors.
fn examples() -> Vec<FeedEvent> {
    let key = |n: u8| format!("pm:{:032x}", u128::from(n) * 0x9e37_79b9_7f4a_7c15);
    let mut hard = observed(
        EventKind::Bounced {
            class: BounceClass::Hard,
            bounce_type: "HardBounce".into(),
        },
        "2026-12-01T10:00:03.000Z",
        &key(2),
    );
    hard.recipient = address("HardBounce@bounce-testing.postmarkapp.com");
    hard.trace.job_id = Some("demo-winter-sale-2026-0".into());
    hard.trace.subscriber_id = Some("sub-0".into());
    hard.message_id = Some("5b1ac2a3-7d0c-4e8e-9f61-2a6f0d3c8b47".into());
    let mut complaint = observed(
        EventKind::SpamComplaint,
        "2026-12-01T10:04:11.000Z",
        &key(3),
    );
    complaint.recipient = address("angry.reader@spam-complaint.postmarkapp.com");
    complaint.trace.job_id = Some("demo-winter-sale-2026-2".into());
    complaint.trace.subscriber_id = Some("sub-2".into());
    let unsubscribe = observed(
        EventKind::SubscriptionChanged {
            suppress: true,
            reason: Some("ManualSuppression".into()),
            origin: Some("Recipient".into()),
        },
        "2026-12-01T11:20:00.000Z",
        &key(4),
    );
    let mut suppression = observed(
        EventKind::SubscriptionChanged {
            suppress: true,
            reason: Some("HardBounce".into()),
            origin: Some("Recipient".into()),
        },
        "2026-12-01T10:00:03.000Z",
        &key(5),
    );
    suppression.recipient = hard.recipient.clone();
    suppression.trace = hard.trace.clone();
    suppression.message_id = hard.message_id.clone();
    let mut reactivation = observed(
        EventKind::SubscriptionChanged {
            suppress: false,
            reason: None,
            origin: Some("Customer".into()),
        },
        "2026-12-02T09:30:00.000Z",
        &key(6),
    );
    reactivation.recipient = hard.recipient.clone();
    reactivation.trace = MessageTrace::default();
    reactivation.message_id = None;
    let mut open = observed(
        EventKind::Opened,
        "2026-12-01T10:12:45.000Z",
        "native:5f0c6a8e2b9d4e31",
    );
    open.source = Source::Native;
    let click = observed(
        EventKind::Clicked {
            url: "https://shop.example.com/sale?utm_source=newsletter".into(),
        },
        "2026-12-01T10:13:02.000Z",
        &key(7),
    );
    vec![
        job(3, JobEnding::Sent, "2026-12-01T10:00:00.412Z"),
        job(
            8,
            JobEnding::Failed {
                reason: "Postmark error 300: Invalid 'To' address: 'reader8@example'.".into(),
                error_code: Some(300),
            },
            "2026-12-01T10:00:00.415Z",
        ),
        job(
            0,
            JobEnding::Skipped {
                reason: "the address is suppressed (HardBounce)".into(),
            },
            "2026-12-01T10:05:30.120Z",
        ),
        published(
            observed(EventKind::Delivered, "2026-12-01T10:00:02.000Z", &key(1)),
            false,
        ),
        published(hard, false),
        published(complaint, false),
        published(unsubscribe, false),
        // Postmark reports the hard bounce's suppression too; the standing was already hard-bounced.
        published(suppression, true),
        published(reactivation, false),
        published(open, false),
        published(click, false),
    ]
}

fn example_path(kind: &str) -> PathBuf {
    root().join("events/feed").join(format!("{kind}.json"))
}

#[test]
fn the_examples_are_what_the_code_builds() {
    let rewrite = std::env::var_os("FEED_EXAMPLES_WRITE").is_some();
    let examples = examples();
    let types: Vec<&str> = examples.iter().map(FeedEvent::type_name).collect();
    assert_eq!(
        types, TYPES,
        "one example of every type, in the documented order"
    );
    for example in &examples {
        let path = example_path(example.type_name());
        let built = serde_json::to_string_pretty(example).expect("JSON") + "\n";
        if rewrite {
            std::fs::create_dir_all(path.parent().expect("a folder")).expect("events/feed");
            std::fs::write(&path, &built).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            continue;
        }
        let written = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (FEED_EXAMPLES_WRITE=1 writes it)", path.display())
        });
        assert_eq!(
            written,
            built,
            "{} differs from what the code builds (FEED_EXAMPLES_WRITE=1 rewrites it)",
            path.display()
        );
        let read: FeedEvent = serde_json::from_str(&written).expect("a feed event");
        assert_eq!(&read, example, "{} reads back", path.display());
    }
    let files: BTreeSet<String> = std::fs::read_dir(root().join("events/feed"))
        .expect("events/feed")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let wanted: BTreeSet<String> = TYPES.iter().map(|t| format!("{t}.json")).collect();
    assert_eq!(
        files, wanted,
        "events/feed holds one example per type, and nothing else"
    );
}

fn validator() -> jsonschema::Validator {
    let schema = read_json("schemas/feed-event.v1.schema.json");
    assert!(
        jsonschema::draft202012::meta::is_valid(&schema),
        "the schema is a valid 2020-12 schema"
    );
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema compiles")
}

fn problems(validator: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn every_example_is_valid_for_the_schema() {
    let validator = validator();
    for kind in TYPES {
        let path = format!("events/feed/{kind}.json");
        let doc = read_json(&path);
        let found = problems(&validator, &doc);
        assert!(found.is_empty(), "{path}: {found:#?}");
    }
}

#[test]
fn the_schema_names_every_type_and_every_common_field() {
    let schema = read_json("schemas/feed-event.v1.schema.json");
    let listed: Vec<&str> = schema["properties"]["type"]["enum"]
        .as_array()
        .expect("type is an enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(listed, TYPES);
    // Every field a delivery carries is common to all types: each is required.
    let delivered = serde_json::to_value(&examples()[3]).expect("JSON");
    assert_eq!(delivered["type"], "email.delivered");
    let mut common: Vec<&str> = delivered
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    common.sort_unstable();
    let mut required: Vec<&str> = schema["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    required.sort_unstable();
    assert_eq!(required, common);
}

/// The schema is not vacuous: what the code never builds is refused.
#[test]
fn the_schema_refuses_what_the_code_never_builds() {
    let validator = validator();
    let examples: Vec<Value> = examples()
        .iter()
        .map(|e| serde_json::to_value(e).expect("JSON"))
        .collect();
    let of = |kind: &str| {
        examples
            .iter()
            .find(|e| e["type"] == kind)
            .cloned()
            .expect("an example")
    };
    let changed = |kind: &str, change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut doc = of(kind);
        change(doc.as_object_mut().expect("an object"));
        doc
    };
    let cases = [
        (
            "a field no type has",
            changed("email.delivered", &|d| {
                d.insert("bounce_type".into(), json!("HardBounce"));
            }),
        ),
        (
            "another type's field",
            changed("email.sent", &|d| {
                d.insert("reason".into(), json!("why"));
            }),
        ),
        (
            "a missing common field",
            changed("email.opened", &|d| {
                d.remove("campaign");
            }),
        ),
        (
            "a missing field of its type",
            changed("email.clicked", &|d| {
                d.remove("url");
            }),
        ),
        (
            "an unknown type",
            changed("email.delivered", &|d| {
                d.insert("type".into(), json!("email.deferred"));
            }),
        ),
        (
            "another version",
            changed("email.delivered", &|d| {
                d.insert("version".into(), json!(2));
            }),
        ),
        (
            "a bounce class the feed does not publish",
            changed("email.bounced", &|d| {
                d.insert("bounce_class".into(), json!("auto_reply"));
            }),
        ),
        (
            "a job outcome seen by Postmark",
            changed("email.failed", &|d| {
                d.insert("source".into(), json!("postmark"));
            }),
        ),
        (
            "a webhook event decided by the sender",
            changed("email.delivered", &|d| {
                d.insert("source".into(), json!("sender"));
            }),
        ),
        (
            "a time without milliseconds",
            changed("email.sent", &|d| {
                d.insert("occurred_at".into(), json!("2026-12-01T10:00:00Z"));
            }),
        ),
        (
            "an id that is not 32 hex digits",
            changed("email.sent", &|d| {
                d.insert("id".into(), json!("job-3-sent"));
            }),
        ),
        (
            "a campaign without its id",
            changed("email.sent", &|d| {
                d.insert("campaign".into(), json!({ "kind": "broadcast" }));
            }),
        ),
        (
            "an error code as text",
            changed("email.failed", &|d| {
                d.insert("error_code".into(), json!("300"));
            }),
        ),
    ];
    for (what, doc) in cases {
        assert!(
            !problems(&validator, &doc).is_empty(),
            "the schema lets through {what}: {doc}"
        );
    }
}
