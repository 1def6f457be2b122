//! The table's primitives against the AWS emulator (moto's server mode, through the real SDK), calm and
//! under the emulator's fault injection (dev/moto_server.py, `/_faults`): throttling, conflicts, failures
//! and lost answers at a high rate on each test's own table, and every write still done exactly once.

use std::time::Duration;

use testkit::faults::{DynamoFaults, FaultKind};

use super::*;
use crate::aws::{RequestCounter, StorePolicy};

/// A table of its own for one test, created from the schema with this crate's client and deleted when
/// dropped.
pub(crate) struct TestTable {
    pub table: Table,
    pub requests: RequestCounter,
}

/// The functions' client with timeouts generous enough that a busy shared emulator never trips them.
pub(crate) fn test_policy() -> StorePolicy {
    StorePolicy {
        max_attempts: 3,
        operation_timeout: Duration::from_secs(120),
        attempt_timeout: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(10),
        ..StorePolicy::default()
    }
}

impl TestTable {
    pub async fn new() -> Self {
        Self::with_policy(&test_policy()).await
    }

    pub async fn with_policy(policy: &StorePolicy) -> Self {
        let config = testkit::sdk_config().await;
        let requests = RequestCounter::default();
        let client = Client::from_conf(
            crate::aws::dynamodb_config(&config, policy)
                .interceptor(requests.clone())
                .build(),
        );
        let name = testkit::unique("unit");
        crate::schema::create_table(&client, &name)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "could not create a table in the AWS emulator at {}: {e:?}",
                    testkit::endpoint()
                )
            });
        requests.reset();
        Self {
            table: Table::new(client, name),
            requests,
        }
    }
}

impl Drop for TestTable {
    fn drop(&mut self) {
        let table = self.table.clone();
        // Drop cannot await; delete on a thread of its own so that this works inside a runtime too.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt.block_on(crate::schema::delete_table(table.client(), table.name()));
            }
        })
        .join();
    }
}

fn item(pk: &str, sk: &str, value: &str) -> Item {
    let mut item = key(pk, sk);
    item.insert("value".into(), s(value));
    item
}

/// An update that adds to counters of one item, creating it as needed.
fn count_op(table: &Table, key: Item, counters: &[(&str, i64)]) -> TransactWriteItem {
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    let clause = add_clause(counters, &mut names, &mut values).expect("counters to add");
    table
        .update_op(key, &clause, None, names, values)
        .expect("an update")
}

#[tokio::test]
async fn a_conditional_put_refuses_the_second_write() {
    let t = TestTable::new().await;
    assert!(t.table.put_new(item("A", "B", "first")).await.unwrap());
    assert!(!t.table.put_new(item("A", "B", "second")).await.unwrap());
    let stored = t.table.get(key("A", "B"), true).await.unwrap().unwrap();
    assert_eq!(get_s(&stored, "value"), Some("first"));
}

#[tokio::test]
async fn two_concurrent_writers_of_one_record_produce_one() {
    let t = TestTable::new().await;
    for round in 0..5 {
        let pk = format!("W#{round}");
        let (a, b) = tokio::join!(
            t.table.put_new(item(&pk, "W", "writer-a")),
            t.table.put_new(item(&pk, "W", "writer-b")),
        );
        let wins = [a.unwrap(), b.unwrap()];
        assert_eq!(
            wins.iter().filter(|w| **w).count(),
            1,
            "round {round}: {wins:?}"
        );
    }
}

#[tokio::test]
async fn a_transaction_cancels_as_a_whole_and_says_which_item_refused() {
    let t = TestTable::new().await;
    assert!(t.table.put_new(item("E#1", "E", "seen")).await.unwrap());
    let ops = vec![
        count_op(&t.table, key("C#x", "C"), &[("delivered", 1)]),
        t.table.put_new_op(item("E#1", "E", "again")).unwrap(),
    ];
    let err = t.table.transact(ops).await.unwrap_err();
    match &err {
        StoreError::TransactionCancelled { reasons } => {
            assert_eq!(reasons.len(), 2);
            assert_eq!(reasons[1], "ConditionalCheckFailed");
        }
        other => panic!("expected a cancelled transaction, got {other:?}"),
    }
    assert!(err.condition_failed_at(1));
    assert!(!err.condition_failed_at(0));
    assert!(!err.is_transient());
    assert!(
        t.table.get(key("C#x", "C"), true).await.unwrap().is_none(),
        "the counter must not move when the transaction is cancelled"
    );

    let ops = vec![
        count_op(&t.table, key("C#x", "C"), &[("delivered", 1)]),
        t.table.put_new_op(item("E#2", "E", "new")).unwrap(),
    ];
    t.table.transact(ops).await.unwrap();
    let counter = t.table.get(key("C#x", "C"), true).await.unwrap().unwrap();
    assert_eq!(get_n(&counter, "delivered"), 1);
}

#[tokio::test]
async fn counters_add_up_under_concurrent_increments() {
    let t = TestTable::new().await;
    let adds = (0..40).map(|i| {
        let table = t.table.clone();
        async move {
            let op = count_op(&table, key("C#b", "C"), &[("opens", 1), ("clicks", i % 2)]);
            table.write(op).await
        }
    });
    for r in futures::future::join_all(adds).await {
        r.unwrap();
    }
    let counter = t.table.get(key("C#b", "C"), true).await.unwrap().unwrap();
    assert_eq!(get_n(&counter, "opens"), 40);
    assert_eq!(get_n(&counter, "clicks"), 20);
}

#[tokio::test]
async fn a_write_made_for_a_transaction_runs_on_its_own_with_its_condition() {
    let t = TestTable::new().await;
    t.table
        .write(t.table.put_new_op(item("P#1", "P", "first")).unwrap())
        .await
        .unwrap();
    let again = t
        .table
        .write(t.table.put_new_op(item("P#1", "P", "second")).unwrap())
        .await;
    assert!(
        matches!(again, Err(StoreError::ConditionFailed)),
        "{again:?}"
    );
    for _ in 0..2 {
        t.table
            .write(count_op(&t.table, key("P#1", "P"), &[("n", 2)]))
            .await
            .unwrap();
    }
    let stored = t.table.get(key("P#1", "P"), true).await.unwrap().unwrap();
    assert_eq!(get_s(&stored, "value"), Some("first"));
    assert_eq!(get_n(&stored, "n"), 4);
    assert_eq!(
        t.requests.count("TransactWriteItems"),
        0,
        "never a transaction"
    );
}

#[tokio::test]
async fn many_items_are_written_and_read_in_batches() {
    let t = TestTable::new().await;
    let items: Vec<Item> = (0..60)
        .map(|i| item(&format!("B#{i}"), "B", &format!("v{i}")))
        .collect();
    t.table.batch_put(items).await.unwrap();
    assert_eq!(t.requests.count("BatchWriteItem"), 3, "25 per request");
    let keys = (0..120).map(|i| key(format!("B#{i}"), "B")).collect();
    let found = t.table.batch_get(keys, true).await.unwrap();
    assert_eq!(t.requests.count("BatchGetItem"), 2, "100 per request");
    assert_eq!(found.len(), 60, "keys without an item are left out");
}

#[tokio::test]
async fn an_unreachable_store_is_a_transient_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let table = Table::new(Client::new(&config), "nowhere");
    let err = table.put_new(item("A", "B", "c")).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

/// Enough attempts that a fault rate of one half almost never exhausts them, with short backoffs.
fn patient() -> StorePolicy {
    StorePolicy {
        max_attempts: 12,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(20),
        ..test_policy()
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
        let written = t.table.put_new(item(&format!("P#{i}"), "X", "v")).await;
        assert!(written.unwrap(), "{kind:?}: put {i} must be written");
        t.table
            .write(count_op(&t.table, key("COUNT", "X"), &[("n", 1)]))
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: add {i}: {e:?}"));
        let ops = vec![
            t.table
                .put_new_op(item(&format!("T#{i}"), "X", "t"))
                .unwrap(),
            count_op(&t.table, key("COUNT", "TX"), &[("n", 1)]),
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
        let written = t
            .table
            .put_new(item(&format!("P#{i}"), "X", &format!("v{i}")));
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
    assert!(!t.table.put_new(item("P#0", "X", "other")).await.unwrap());
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
    t.requests.reset();
    for i in 0..WRITES {
        let ops = vec![
            t.table
                .put_new_op(item(&format!("E#{i}"), "X", "e"))
                .unwrap(),
            count_op(&t.table, key("COUNT", "X"), &[("n", 1)]),
        ];
        t.table
            .transact(ops)
            .await
            .unwrap_or_else(|e| panic!("transaction {i}: {e:?}"));
    }
    let conflicts = faults.fired(FaultKind::Conflict).await;
    assert!(conflicts >= 3, "conflicts fired: {conflicts}");
    assert_eq!(
        t.requests.count("TransactWriteItems"),
        WRITES as u64 + conflicts,
        "each conflict answered by one more attempt"
    );
    faults.clear().await;
    let count = t.table.get(key("COUNT", "X"), true).await.unwrap().unwrap();
    assert_eq!(get_n(&count, "n"), WRITES as i64);

    // A refused condition is an answer, not a conflict: not retried.
    t.requests.reset();
    let ops = vec![
        t.table.put_new_op(item("E#0", "X", "again")).unwrap(),
        count_op(&t.table, key("COUNT", "X"), &[("n", 1)]),
    ];
    let err = t.table.transact(ops).await.unwrap_err();
    assert!(err.condition_failed_at(0) && !err.is_transient(), "{err:?}");
    assert_eq!(t.requests.count("TransactWriteItems"), 1);
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
    t.requests.reset();
    let err = t.table.put_new(item("P#1", "X", "v")).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(t.requests.count("PutItem"), 2, "retried up to the bound");
    let ops = vec![t.table.put_new_op(item("T#1", "X", "t")).unwrap()];
    let err = t.table.transact(ops).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}
