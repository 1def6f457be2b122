//! The webhook-faults load run, small: about 1,000 distinct events (and 200 redelivered copies) through
//! the webhook's handler against a table with 5% DynamoDB faults of every kind, on the shared emulator
//! (`MOTO_ENDPOINT`) with a table of its own (seed 8: some reactivations fall at the instant of a
//! suppression). Every counter, standing and activity entry must come out
//! exactly as the distinct events imply, and no event may be lost.

use std::time::Duration;

use load::webhook_faults::{Client, WebhookFaults, run};
use store::aws::StorePolicy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_events_under_dynamodb_faults_come_out_exact() {
    let mut cfg = WebhookFaults::new(1_000, 8);
    // The functions' retries and backoff, with timeouts that a shared, busy emulator never trips.
    cfg.client = Client::Store(StorePolicy {
        operation_timeout: Duration::from_secs(60),
        attempt_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(10),
        ..StorePolicy::default()
    });
    let report = run(&cfg).await;
    report.print();
    assert!(
        report.faults.values().sum::<u64>() > 0,
        "no fault fired: {:?}",
        report.faults
    );
    assert_eq!(report.distinct, 1_000);
    assert_eq!(report.discrepancies(), 0, "see the summary above");
}
