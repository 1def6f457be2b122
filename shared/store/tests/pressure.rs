//! The store under pressure: the emulator's fault injection (dev/moto_server.py, `/_faults`) throttles,
//! conflicts, fails and drops answers at a high rate on each test's own table, and the store's client
//! (`store::aws::dynamodb_config`) still gets every write done exactly once.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use domain::EmailAddress;
use domain::events::{Event, EventKind, Source};
use domain::trace::{Campaign, CampaignKind, MessageTrace};
use serde_json::json;
use store::aws::StorePolicy;
use store::events::Recorded;
use store::table::{get_n, get_s, key, s};
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

fn item(pk: &str, value: &str) -> store::Item {
    let mut item = key(pk, "X");
    item.insert("value".into(), s(value));
    item
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

const WRITES: usize = 12;

/// Conditional puts, counter updates, transactions and reads, all under `kind` at rate one half.
async fn writes_land_once_under(kind: FaultKind) {
    let t = TestTable::with_policy(&patient()).await;
    let faults = Faults::on(
        &t,
        DynamoFaults::new([t.table.name()])
            .seed(11)
            .rate(0.5)
            .kinds([kind]),
    )
    .await;
    for i in 0..WRITES {
        let written = t.table.put_new(item(&format!("P#{i}"), "v")).await;
        assert!(written.unwrap(), "{kind:?}: put {i} must be written");
        t.table
            .add(key("COUNT", "X"), &[("n", 1)])
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: add {i}: {e:?}"));
        let ops = vec![
            t.table.put_new_op(item(&format!("T#{i}"), "t")).unwrap(),
            t.table.add_op(key("COUNT", "TX"), &[("n", 1)]).unwrap(),
        ];
        t.table
            .transact(ops)
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: transaction {i}: {e:?}"));
        let read = t.table.get(key(format!("P#{i}"), "X"), true).await;
        assert!(read.unwrap().is_some(), "{kind:?}: read {i}");
    }
    let fired = faults.fired(kind).await;
    assert!(
        fired >= WRITES as u64,
        "{kind:?}: the plan must have fired often, fired {fired}"
    );
    faults.clear().await;
    let count = t.table.get(key("COUNT", "X"), true).await.unwrap().unwrap();
    assert_eq!(
        get_n(&count, "n"),
        WRITES as i64,
        "{kind:?}: every add once"
    );
    let tx = t
        .table
        .get(key("COUNT", "TX"), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        get_n(&tx, "n"),
        WRITES as i64,
        "{kind:?}: every transaction once"
    );
}

#[tokio::test]
async fn writes_land_once_when_the_store_throttles_half_the_requests() {
    writes_land_once_under(FaultKind::Throttle).await;
}

#[tokio::test]
async fn writes_land_once_when_half_the_writes_meet_a_conflicting_transaction() {
    writes_land_once_under(FaultKind::Conflict).await;
}

#[tokio::test]
async fn writes_land_once_when_half_the_requests_fail_inside_the_store() {
    writes_land_once_under(FaultKind::Internal).await;
}

#[tokio::test]
async fn a_conditional_put_whose_answer_was_lost_is_sent_again_and_reports_the_write() {
    let t = TestTable::with_policy(&patient()).await;
    let faults = Faults::on(
        &t,
        DynamoFaults::new([t.table.name()])
            .seed(3)
            .rate(0.5)
            .kinds([FaultKind::LostAnswer]),
    )
    .await;
    for i in 0..WRITES {
        let written = t.table.put_new(item(&format!("P#{i}"), &format!("v{i}")));
        assert!(
            written.await.unwrap(),
            "put {i}: its own replay is not someone else's item"
        );
    }
    assert!(faults.fired(FaultKind::LostAnswer).await >= 3);
    faults.clear().await;
    for i in 0..WRITES {
        let stored = t.table.get(key(format!("P#{i}"), "X"), true).await;
        let stored = stored.unwrap().expect("written");
        assert_eq!(get_s(&stored, "value"), Some(format!("v{i}").as_str()));
    }
    // A different item under the same key is still refused.
    assert!(!t.table.put_new(item("P#0", "other")).await.unwrap());
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
async fn transactions_cancelled_by_conflicts_are_sent_again() {
    let t = TestTable::with_policy(&patient()).await;
    let faults = Faults::on(
        &t,
        DynamoFaults::new([t.table.name()])
            .seed(9)
            .rate(0.6)
            .kinds([FaultKind::Conflict])
            .operations(["TransactWriteItems"]),
    )
    .await;
    t.aws.requests.reset();
    for i in 0..WRITES {
        let ops = vec![
            t.table.put_new_op(item(&format!("EVT#{i}"), "e")).unwrap(),
            t.table.add_op(key("STATS", "X"), &[("n", 1)]).unwrap(),
        ];
        t.table
            .transact(ops)
            .await
            .unwrap_or_else(|e| panic!("transaction {i}: {e:?}"));
    }
    let conflicts = faults.fired(FaultKind::Conflict).await;
    assert!(conflicts >= 3, "conflicts fired: {conflicts}");
    assert_eq!(
        t.aws.requests.count("TransactWriteItems"),
        WRITES as u64 + conflicts,
        "each conflict answered by one more attempt"
    );
    faults.clear().await;
    let stats = t.table.get(key("STATS", "X"), true).await.unwrap().unwrap();
    assert_eq!(get_n(&stats, "n"), WRITES as i64);

    // A refused condition is an answer, not a conflict: not retried.
    t.aws.requests.reset();
    let ops = vec![
        t.table.put_new_op(item("EVT#0", "again")).unwrap(),
        t.table.add_op(key("STATS", "X"), &[("n", 1)]).unwrap(),
    ];
    let err = t.table.transact(ops).await.unwrap_err();
    assert!(err.condition_failed_at(0) && !err.is_transient(), "{err:?}");
    assert_eq!(t.aws.requests.count("TransactWriteItems"), 1);
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

#[tokio::test]
async fn a_write_that_keeps_meeting_conflicts_is_a_transient_error() {
    let policy = StorePolicy {
        max_attempts: 2,
        ..patient()
    };
    let t = TestTable::with_policy(&policy).await;
    let _faults = Faults::on(
        &t,
        DynamoFaults::new([t.table.name()])
            .rate(1.0)
            .kinds([FaultKind::Conflict]),
    )
    .await;
    t.aws.requests.reset();
    let err = t.table.put_new(item("P#1", "v")).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(
        t.aws.requests.count("PutItem"),
        2,
        "retried up to the bound"
    );
    let ops = vec![t.table.put_new_op(item("T#1", "t")).unwrap()];
    let err = t.table.transact(ops).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}
