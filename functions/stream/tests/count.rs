//! The counting step over the AWS emulator: events recorded through the store, the table's stream read
//! through the local event source mapping and handed to the stream function, the counters read back.
//! The faults are the ones that would break "counted once": the counting transaction's answer lost after
//! it was written, and the batch handed over again.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use domain::EmailAddress;
use domain::events::{Event, EventKind, Source};
use domain::trace::{Campaign, CampaignKind, MessageTrace};
use local_stack::stream_poller::{StreamPoller, in_process};
use store::aws::StorePolicy;
use testkit::TestTable;
use testkit::faults::{DynamoFaults, FaultKind};

fn campaign() -> Campaign {
    Campaign {
        kind: CampaignKind::Broadcast,
        id: "b-count".into(),
    }
}

fn event(kind: EventKind, message: usize, source: Source, second: u32) -> Event {
    Event {
        kind,
        source,
        dedup_key: format!("pm:{message}-{second}-{}", source.as_str()),
        recipient: Some(EmailAddress::parse(&format!("r{message}@example.com")).unwrap()),
        message_id: Some(format!("m-{message}")),
        at: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, second).unwrap(),
        trace: MessageTrace {
            job_id: Some(format!("job-{message}")),
            campaign: Some(campaign()),
            ..MessageTrace::default()
        },
        stream: None,
        client: None,
        automated: None,
        detail: serde_json::Value::Null,
    }
}

/// Deliveries of 30 messages, opens of 20 of them seen by both sources, clicks on 10.
fn events() -> Vec<Event> {
    let mut out = Vec::new();
    for m in 0..30 {
        out.push(event(EventKind::Delivered, m, Source::Postmark, 1));
    }
    for m in 0..20 {
        out.push(event(EventKind::Opened, m, Source::Native, 2));
        out.push(event(EventKind::Opened, m, Source::Postmark, 3));
    }
    for m in 0..10 {
        let click = EventKind::Clicked {
            url: "https://shop.example/sale".into(),
        };
        out.push(event(click, m, Source::Postmark, 40));
    }
    out
}

fn expected() -> BTreeMap<String, i64> {
    [
        ("delivered", 30),
        ("opens", 20),
        ("opens_unique", 20),
        ("opens_human", 20),
        ("opens_unique_human", 20),
        ("clicks", 10),
        ("clicks_unique", 10),
        ("clicks_human", 10),
        ("clicks_unique_human", 10),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn moved(counters: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    counters
        .iter()
        .filter(|(_, v)| **v != 0)
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

async fn poller(t: &TestTable, client: aws_sdk_dynamodb::Client) -> StreamPoller {
    // Batches of 25 records: the 90 events arrive in four batches, each split into units.
    in_process(&t.aws.config, client, t.table.name(), 25, Duration::ZERO)
        .await
        .expect("the table's stream")
}

#[tokio::test]
async fn the_stream_counts_every_recorded_event_once() {
    let t = TestTable::new().await;
    for e in events() {
        t.table.record_event(e).await.unwrap();
    }
    let p = poller(&t, t.aws.dynamodb.clone()).await;
    let batches = p.drain().await.unwrap();
    // The stream also carries the function's own writes (engagement, counters, markers): not counted.
    assert!(batches.iter().map(|b| b.records).sum::<usize>() > 90);
    let stats = t.table.campaign_stats(&campaign()).await.unwrap();
    assert_eq!(moved(&stats.counters), expected());
    assert_eq!(stats.links.len(), 1);
    assert_eq!(stats.links[0].clicks_unique, 10);

    // The whole stream handed over again (a redelivery of every batch): nothing moves.
    let again = poller(&t, t.aws.dynamodb.clone()).await;
    again.drain().await.unwrap();
    let stats = t.table.campaign_stats(&campaign()).await.unwrap();
    assert_eq!(moved(&stats.counters), expected());
}

#[tokio::test]
async fn a_batch_whose_answer_was_lost_after_the_write_is_not_counted_twice() {
    let t = TestTable::new().await;
    for e in events() {
        t.table.record_event(e).await.unwrap();
    }
    // The stream function's client gives up at once, so that the lost answer fails the invocation and
    // the batch is handed over again whole, as Lambda does.
    let once = StorePolicy {
        max_attempts: 1,
        ..testkit::test_policy()
    };
    let client = aws_sdk_dynamodb::Client::from_conf(
        store::aws::dynamodb_config(&t.aws.config, &once).build(),
    );
    let endpoint = testkit::endpoint();
    DynamoFaults::new([t.table.name()])
        .seed(3)
        .rate(0.5)
        .kinds([FaultKind::LostAnswer])
        .operations(["TransactWriteItems"])
        .apply(endpoint)
        .await
        .expect("install the fault plan (is dev/moto_server.py the emulator?)");
    let p = poller(&t, client).await;
    let batches = p.drain().await.unwrap();
    let lost = DynamoFaults::fired_on(endpoint, t.table.name(), FaultKind::LostAnswer)
        .await
        .unwrap();
    DynamoFaults::clear(endpoint, Some(t.table.name()))
        .await
        .unwrap();
    assert!(lost > 0, "the fault struck");
    assert!(
        batches.iter().map(|b| b.failed_attempts).sum::<usize>() > 0,
        "a batch was handed over again after its writes went through"
    );
    let stats = t.table.campaign_stats(&campaign()).await.unwrap();
    assert_eq!(moved(&stats.counters), expected());
}
