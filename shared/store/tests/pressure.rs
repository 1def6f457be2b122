//! The store under pressure: the emulator's fault injection (dev/moto_server.py, `/_faults`) drops answers
//! at a high rate on each test's own table, and recorded events still count once (the table's own
//! primitives under every fault are tested inside the crate, `table::emulated`).

use std::time::Duration;

use chrono::{TimeZone, Utc};
use domain::EmailAddress;
use domain::events::{Event, EventKind, Source};
use domain::trace::{Campaign, CampaignKind, MessageTrace};
use serde_json::json;
use store::aws::StorePolicy;
use store::events::Recorded;
use testkit::TestTable;
use testkit::faults::{DynamoFaults, FaultKind};

/// Enough attempts that a fault rate of one half almost never exhausts them, with short backoffs.
fn patient() -> StorePolicy {
    StorePolicy {
        max_attempts: 12,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(20),
        operation_timeout: Duration::from_secs(120),
        attempt_timeout: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(10),
    }
}

/// Faults stay on the test's own table; the plan is removed when the guard goes.
struct Faults {
    table: String,
}

impl Faults {
    async fn on(t: &TestTable, plan: DynamoFaults) -> Self {
        plan.apply(testkit::endpoint()).await.expect("fault plan");
        Self {
            table: t.table.name().to_owned(),
        }
    }

    async fn fired(&self, kind: FaultKind) -> u64 {
        DynamoFaults::fired_on(testkit::endpoint(), &self.table, kind)
            .await
            .expect("fault counts")
    }

    async fn clear(&self) {
        DynamoFaults::clear(testkit::endpoint(), Some(&self.table))
            .await
            .expect("clear faults");
    }
}

impl Drop for Faults {
    fn drop(&mut self) {
        let table = self.table.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt.block_on(DynamoFaults::clear(testkit::endpoint(), Some(&table)));
            }
        })
        .join();
    }
}

fn campaign() -> Campaign {
    Campaign {
        kind: CampaignKind::Broadcast,
        id: "b-pressure".into(),
    }
}

fn event(kind: EventKind, i: usize) -> Event {
    let at =
        Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap() + chrono::Duration::seconds(i as i64);
    Event {
        dedup_key: format!("pm:{}:{i}", kind.name()),
        recipient: Some(EmailAddress::parse(&format!("reader{i}@example.com")).unwrap()),
        message_id: Some(format!("msg-{i}")),
        at,
        trace: MessageTrace {
            job_id: Some(format!("job-{i}")),
            campaign: Some(campaign()),
            ..MessageTrace::default()
        },
        stream: Some("broadcast".into()),
        client: None,
        automated: None,
        source: Source::Postmark,
        kind,
        detail: json!({}),
    }
}

#[tokio::test]
async fn events_recorded_while_answers_are_lost_count_once_and_their_copies_are_duplicates() {
    let t = TestTable::with_policy(&patient()).await;
    let faults = Faults::on(
        &t,
        DynamoFaults::new([t.table.name()])
            .seed(5)
            .rate(0.5)
            .kinds([FaultKind::LostAnswer]),
    )
    .await;
    const EVENTS: usize = 8;
    for i in 0..EVENTS {
        for kind in [EventKind::Delivered, EventKind::Opened] {
            let recorded = t.table.record_event(event(kind.clone(), i)).await;
            recorded.unwrap_or_else(|e| panic!("{} {i}: {e:?}", kind.name()));
        }
    }
    assert!(faults.fired(FaultKind::LostAnswer).await >= 3);
    faults.clear().await;

    // The counters follow from the table's stream, read by the stream function.
    local_stack::stream_poller::in_process(
        &t.aws.config,
        t.aws.dynamodb.clone(),
        t.table.name(),
        1000,
        std::time::Duration::ZERO,
    )
    .await
    .unwrap()
    .drain()
    .await
    .unwrap();
    let stats = t.table.campaign_stats(&campaign()).await.unwrap();
    let counter = |name: &str| stats.counters.get(name).copied().unwrap_or(0);
    assert_eq!(counter("delivered"), EVENTS as i64, "{:?}", stats.counters);
    assert_eq!(counter("opens"), EVENTS as i64, "{:?}", stats.counters);
    for i in 0..EVENTS {
        let activity = t
            .table
            .activity(&format!("reader{i}@example.com"), 10, None)
            .await
            .unwrap();
        assert_eq!(
            activity.items.len(),
            2,
            "one entry per event for reader {i}"
        );
        for kind in [EventKind::Delivered, EventKind::Opened] {
            let (again, _) = t.table.record_event(event(kind, i)).await.unwrap();
            assert_eq!(again, Recorded::Duplicate);
        }
    }
    let after = t.table.campaign_stats(&campaign()).await.unwrap();
    assert_eq!(after.counters, stats.counters, "copies change nothing");
}

#[tokio::test]
async fn cancellation_reasons_that_are_worth_retrying() {
    use store::aws::retryable_cancellation as retryable;
    assert!(retryable(["None", "TransactionConflict"]));
    assert!(retryable(["ThrottlingError", "None"]));
    assert!(retryable(["ProvisionedThroughputExceeded"]));
    assert!(!retryable([
        "ConditionalCheckFailed",
        "TransactionConflict"
    ]));
    assert!(!retryable(["None", "ValidationError"]));
    assert!(!retryable(["None", "None"]));
    let conflict = store::StoreError::TransactionCancelled {
        reasons: vec!["None".into(), "TransactionConflict".into()],
    };
    assert!(conflict.is_transient());
}
