//! The store against the AWS emulator (moto's server mode), through the real SDK. The table's own
//! primitives are tested inside the crate (`table::emulated`).

use std::collections::HashSet;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use domain::ports::RecipientStandings;
use domain::{EmailAddress, SubscriberStatus, SuppressionReason};
use secrecy::ExposeSecret;
use store::StoreError;
use store::activity::ActivityEntry;
use testkit::{Aws, TestTable, unique};

#[tokio::test]
async fn the_activity_log_reads_newest_first_in_pages() {
    let t = TestTable::new().await;
    let base = Utc.with_ymd_and_hms(2026, 11, 27, 10, 0, 0).unwrap();
    // Written out of order, two at the same instant.
    for (i, minute) in [3, 0, 7, 5, 1, 9, 2, 5].into_iter().enumerate() {
        let entry = ActivityEntry {
            at: base + chrono::Duration::minutes(minute),
            id: format!("evt-{i}"),
            kind: "open".into(),
            detail: serde_json::json!({ "n": i }),
        };
        t.table
            .record_activity("reader@example.com", &entry)
            .await
            .unwrap();
    }
    t.table
        .record_activity(
            "someone-else@example.com",
            &ActivityEntry {
                at: base,
                id: "x".into(),
                kind: "open".into(),
                detail: serde_json::Value::Null,
            },
        )
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = t
            .table
            .activity("reader@example.com", 3, cursor.as_deref())
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= 3);
        seen.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert!(pages >= 3, "8 entries in pages of 3: {pages} pages");
    assert_eq!(seen.len(), 8);
    let times: Vec<_> = seen.iter().map(|e| e.at).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    assert_eq!(seen[0].at, base + chrono::Duration::minutes(9));
    assert_eq!(seen[0].detail, serde_json::json!({ "n": 5 }));
    let ids: HashSet<_> = seen.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 8);

    let err = t
        .table
        .activity("reader@example.com", 3, Some("not-a-cursor"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidCursor));
}

#[tokio::test]
async fn standings_are_read_in_one_batch_per_hundred_addresses() {
    let t = TestTable::new().await;
    let at = Utc::now();
    let bounced = EmailAddress::parse("Bounced@Example.com").unwrap();
    let complained = EmailAddress::parse("complained@example.com").unwrap();
    let back = EmailAddress::parse("back@example.com").unwrap();
    for (address, reason) in [
        (&bounced, SuppressionReason::HardBounce),
        (&complained, SuppressionReason::SpamComplaint),
        (&back, SuppressionReason::ManualSuppression),
    ] {
        t.table.suppress(address, reason, at).await.unwrap();
    }
    t.table
        .reactivate(&back, at + chrono::Duration::seconds(1))
        .await
        .unwrap();

    let mut addresses: Vec<EmailAddress> = (0..150)
        .map(|i| EmailAddress::parse(&format!("fresh{i}@example.com")).unwrap())
        .collect();
    addresses.extend([bounced.clone(), complained.clone(), back.clone()]);
    t.aws.requests.reset();
    let standings = t.table.standings(&addresses).await.unwrap();
    assert_eq!(
        t.aws.requests.count("BatchGetItem"),
        2,
        "153 keys: two batched reads"
    );
    assert_eq!(
        standings.len(),
        3,
        "only known addresses come back: {standings:?}"
    );
    let b = &standings["bounced@example.com"];
    assert_eq!(b.status, SubscriberStatus::Deactivated);
    assert_eq!(b.suppression, Some(SuppressionReason::HardBounce));
    assert_eq!(
        standings["complained@example.com"].status,
        SubscriberStatus::Complained
    );
    let r = &standings["back@example.com"];
    assert_eq!(r.status, SubscriberStatus::Active);
    assert_eq!(r.suppression, None);
}

async fn create_secret(aws: &Aws, name: &str, value: &str) {
    aws.secrets
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn the_secret_cache_fetches_once_per_ttl_and_reads_the_previous_version() {
    let aws = Aws::new().await;
    let name = unique("test/webhook-password");
    create_secret(&aws, &name, "first-value").await;
    let cache = store::SecretCache::new(aws.secrets.clone(), Duration::from_millis(400));
    aws.requests.reset();

    let reads = (0..10).map(|_| cache.current(&name));
    for value in futures::future::join_all(reads).await {
        assert_eq!(value.unwrap().value.expose_secret(), "first-value");
    }
    assert_eq!(
        aws.requests.count("GetSecretValue"),
        1,
        "ten reads within the TTL: one fetch"
    );
    assert!(
        cache.previous(&name).await.unwrap().is_none(),
        "never refreshed: no previous"
    );

    aws.secrets
        .put_secret_value()
        .secret_id(&name)
        .secret_string("second-value")
        .send()
        .await
        .unwrap();
    assert_eq!(
        cache.current(&name).await.unwrap().value.expose_secret(),
        "first-value",
        "still cached"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let current = cache.current(&name).await.unwrap();
    assert_eq!(
        current.value.expose_secret(),
        "second-value",
        "fetched again after the TTL"
    );
    assert!(current.created_at.is_some());
    let previous = cache
        .previous(&name)
        .await
        .unwrap()
        .expect("a previous version");
    assert_eq!(previous.value.expose_secret(), "first-value");
    assert!(
        !format!("{current:?}").contains("second-value"),
        "Debug never shows the value"
    );

    let missing = cache.current(&unique("test/missing")).await.unwrap_err();
    assert!(!missing.is_transient());
}

#[tokio::test]
async fn the_send_queue_redrives_to_its_dead_letter_queue() {
    let aws = Aws::new().await;
    let pair = store::sqs::create_queue_with_dlq(&aws.sqs, &unique("send"), 2, 30)
        .await
        .unwrap();
    let bodies: Vec<String> = (0..23).map(|i| format!("{{\"n\":{i}}}")).collect();
    aws.requests.reset();
    assert_eq!(
        store::sqs::send_bodies(&aws.sqs, &pair.url, &bodies)
            .await
            .unwrap(),
        0
    );
    assert_eq!(aws.requests.count("SendMessageBatch"), 3);

    let mut received = Vec::new();
    while received.len() < 23 {
        let batch = store::sqs::receive(&aws.sqs, &pair.url, 10, 1)
            .await
            .unwrap();
        assert!(!batch.is_empty(), "all 23 messages must arrive");
        received.extend(batch);
    }
    let distinct: HashSet<_> = received.iter().map(|m| m.body.clone()).collect();
    assert_eq!(distinct.len(), 23);
    // Delete all but one; that one is received again (as a failed job would be) until it moves to the DLQ.
    let keep = received.pop().unwrap();
    let receipts: Vec<String> = received
        .iter()
        .filter_map(|m| m.receipt_handle.clone())
        .collect();
    store::sqs::delete(&aws.sqs, &pair.url, &receipts)
        .await
        .unwrap();
    let mut receipt = keep.receipt_handle.clone().unwrap();
    let mut in_dlq = Vec::new();
    for _ in 0..5 {
        aws.sqs
            .change_message_visibility()
            .queue_url(&pair.url)
            .receipt_handle(&receipt)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
        if let Some(again) = store::sqs::receive(&aws.sqs, &pair.url, 10, 0)
            .await
            .unwrap()
            .pop()
        {
            receipt = again.receipt_handle.unwrap();
        }
        in_dlq = store::sqs::receive(&aws.sqs, &pair.dlq_url, 10, 0)
            .await
            .unwrap();
        if !in_dlq.is_empty() {
            break;
        }
    }
    assert_eq!(in_dlq.len(), 1);
    assert_eq!(in_dlq[0].body, keep.body);
}
