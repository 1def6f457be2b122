//! What the store writes, read back through its read models: a job's record, a subscriber's profile, the
//! suppression list and the activity entries written with a change of standing.

use chrono::{TimeZone, Utc};
use domain::events::StatusChange;
use domain::trace::{Campaign, CampaignKind};
use domain::{EmailAddress, EmailType, JobId, SubscriberStatus, SuppressionReason};
use serde_json::json;
use store::activity::ActivityEntry;
use store::jobs::{
    Claimed, JobClaim, JobOutcome, JobStatus, OutcomeRecorded, Rejection, SendAttempt,
};
use testkit::TestTable;

fn addr(text: &str) -> EmailAddress {
    EmailAddress::parse(text).unwrap()
}

#[tokio::test]
async fn a_job_reads_back_as_its_record_without_the_senders_bookkeeping() {
    let t = TestTable::new().await;
    let at = Utc.with_ymd_and_hms(2026, 5, 1, 10, 0, 0).unwrap();
    let recipient = addr("Buyer@Example.com");
    let campaign = Campaign {
        kind: CampaignKind::Broadcast,
        id: "spring".into(),
    };
    let call = SendAttempt {
        server_id: "main".into(),
        stream: "broadcast".into(),
        send_id: "call-1".into(),
        at,
    };
    for (id, outcome) in [
        (
            "job-sent",
            JobOutcome::Sent {
                message_id: Some("0a129aee".into()),
                server_id: "main".into(),
                stream: "broadcast".into(),
            },
        ),
        (
            "job-unknown",
            JobOutcome::Unknown {
                reason: "the request to Postmark timed out".into(),
                pending: vec![call.clone()],
            },
        ),
    ] {
        let job_id = JobId::parse(id).unwrap();
        let claim = JobClaim {
            id: &job_id,
            token: "attempt-1",
            recipient: &recipient,
            email_type: EmailType::Broadcast,
            campaign: Some(&campaign),
            subscriber_id: Some("sub-1"),
            now: at,
            lease: std::time::Duration::from_secs(60),
            send: Some(&call),
        };
        assert_eq!(t.table.claim_job(&claim).await.unwrap(), Claimed::owned());
        assert_eq!(
            t.table
                .record_job_outcome(&job_id, "attempt-1", &outcome, at)
                .await
                .unwrap(),
            OutcomeRecorded::Written
        );
    }

    let sent = t.table.job("job-sent").await.unwrap().expect("a record");
    assert_eq!(sent.id, "job-sent");
    assert_eq!(sent.status, Some(JobStatus::Sent));
    assert_eq!(sent.recipient, Some(recipient.clone()));
    assert_eq!(sent.email_type, Some(EmailType::Broadcast));
    assert_eq!(sent.campaign, Some(campaign.clone()));
    assert_eq!(sent.subscriber_id.as_deref(), Some("sub-1"));
    assert_eq!(
        (sent.server_id.as_deref(), sent.stream.as_deref()),
        (Some("main"), Some("broadcast"))
    );
    assert_eq!(sent.message_id.as_deref(), Some("0a129aee"));
    assert_eq!(sent.attempts, 1);
    assert_eq!(sent.sent_at, Some(at));
    assert_eq!(sent.reason, None);
    let published = serde_json::to_value(&sent).unwrap();
    assert_eq!(
        published,
        json!({
            "id": "job-sent",
            "status": "sent",
            "attempts": 1,
            "recipient": "Buyer@Example.com",
            "email_type": "broadcast",
            "campaign_kind": "broadcast",
            "campaign_id": "spring",
            "subscriber_id": "sub-1",
            "server_id": "main",
            "stream": "broadcast",
            "message_id": "0a129aee",
            "claimed_at": "2026-05-01T10:00:00.000000Z",
            "sent_at": "2026-05-01T10:00:00.000000Z",
            "updated_at": "2026-05-01T10:00:00.000000Z",
        })
    );

    // The calls an unresolved job waits on are the sender's; the record says only where it stands.
    let unknown = t.table.job("job-unknown").await.unwrap().unwrap();
    assert_eq!(unknown.status, Some(JobStatus::Unknown));
    let published = serde_json::to_value(&unknown).unwrap();
    for internal in ["pending_sends", "claim_token", "lease_until", "job_id"] {
        assert!(published.get(internal).is_none(), "{internal}: {published}");
    }

    assert_eq!(t.table.job("job-none").await.unwrap(), None);
    let mut many: Vec<String> = t
        .table
        .jobs(&["job-sent", "job-none", "job-unknown"])
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    many.sort();
    assert_eq!(many, ["job-sent", "job-unknown"]);
}

#[tokio::test]
async fn rejected_and_failed_jobs_are_listed_newest_first_as_records() {
    let t = TestTable::new().await;
    let at = |minute| Utc.with_ymd_and_hms(2026, 5, 1, 10, minute, 0).unwrap();
    for (i, id) in ["bad-1", "bad-2"].into_iter().enumerate() {
        t.table
            .record_rejected_job(&Rejection {
                key_id: id,
                sqs_message_id: &format!("sqs-{id}"),
                reason: "to: is required",
                body: "{}",
                at: at(i as u32),
            })
            .await
            .unwrap();
    }
    let page = t
        .table
        .jobs_with_status(JobStatus::Rejected, 10, None)
        .await
        .unwrap();
    let ids: Vec<&str> = page.items.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["bad-2", "bad-1"], "newest first");
    let first = &page.items[0];
    assert_eq!(first.status, Some(JobStatus::Rejected));
    assert_eq!(first.reason.as_deref(), Some("to: is required"));
    assert_eq!(first.body.as_deref(), Some("{}"));
    assert_eq!(first.body_truncated, Some(false));
    assert_eq!(first.sqs_message_id.as_deref(), Some("sqs-bad-2"));
    assert_eq!(first.rejected_at, Some(at(1)));
    assert_eq!(first.attempts, 0);
    assert!(
        t.table
            .jobs_with_status(JobStatus::Failed, 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn a_profile_reads_back_with_its_standing_and_counters_only() {
    let t = TestTable::new().await;
    let a = addr("Reader@Example.com");
    assert_eq!(t.table.subscriber_profile(&a).await.unwrap(), None);
    // The counters are the activity log's: three deliveries and an open.
    let logged = Utc.with_ymd_and_hms(2026, 5, 1, 9, 0, 0).unwrap();
    let entries: Vec<(String, ActivityEntry)> = ["delivered", "open", "delivered", "delivered"]
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            (
                a.key().to_owned(),
                ActivityEntry {
                    at: logged + chrono::Duration::seconds(i as i64),
                    id: format!("pm:{i}"),
                    kind: (*kind).to_owned(),
                    detail: json!({}),
                },
            )
        })
        .collect();
    t.table.record_activities(&entries).await.unwrap();
    let at = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
    t.table
        .suppress(&a, SuppressionReason::HardBounce, at)
        .await
        .unwrap();

    let p = t.table.subscriber_profile(&a).await.unwrap().unwrap();
    assert_eq!(p.email.as_str(), "Reader@Example.com");
    assert_eq!(p.status, SubscriberStatus::Deactivated);
    assert_eq!(p.suppression_reason, Some(SuppressionReason::HardBounce));
    assert_eq!((p.status_at, p.suppressed_at), (Some(at), Some(at)));
    assert_eq!(
        serde_json::to_value(&p).unwrap(),
        json!({
            "email": "Reader@Example.com",
            "status": "deactivated",
            "status_at": "2026-06-01T09:00:00.000000Z",
            "suppression_reason": "HardBounce",
            "suppressed_at": "2026-06-01T09:00:00.000000Z",
            "counters": {"delivered": 3, "opens": 1},
        }),
        "the standing's version is bookkeeping, not a counter"
    );
}

#[tokio::test]
async fn the_suppression_list_reads_by_reason_in_pages() {
    let t = TestTable::new().await;
    let at = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
    for (email, reason) in [
        ("b@example.com", SuppressionReason::HardBounce),
        ("a@example.com", SuppressionReason::HardBounce),
        ("c@example.com", SuppressionReason::SpamComplaint),
    ] {
        t.table.suppress(&addr(email), reason, at).await.unwrap();
    }
    let all = t.table.suppressions(None, 10, None).await.unwrap();
    assert_eq!(all.items.len(), 3);
    assert_eq!(all.next, None);

    let first = t
        .table
        .suppressions(Some(SuppressionReason::HardBounce), 1, None)
        .await
        .unwrap();
    assert_eq!(first.items[0].email.as_str(), "a@example.com");
    assert_eq!(first.items[0].reason, SuppressionReason::HardBounce);
    assert_eq!(first.items[0].status, SubscriberStatus::Deactivated);
    assert_eq!(first.items[0].suppressed_at, Some(at));
    let second = t
        .table
        .suppressions(
            Some(SuppressionReason::HardBounce),
            1,
            first.next.as_deref(),
        )
        .await
        .unwrap();
    assert_eq!(second.items[0].email.as_str(), "b@example.com");
    let spam = t
        .table
        .suppressions(Some(SuppressionReason::SpamComplaint), 10, None)
        .await
        .unwrap();
    assert_eq!(spam.items.len(), 1);
    assert_eq!(spam.items[0].status, SubscriberStatus::Complained);
}

#[tokio::test]
async fn a_change_of_standing_and_its_activity_entry_are_written_together() {
    let t = TestTable::new().await;
    let a = addr("admin-made@example.com");
    let at = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
    let entry = |kind: &str, id: &str| {
        let (kind, id) = (kind.to_owned(), id.to_owned());
        move |d: &domain::standing::Decision| ActivityEntry {
            at,
            id: id.clone(),
            kind: kind.clone(),
            detail: json!({ "changed": d.changes_standing() }),
        }
    };
    let decision = t
        .table
        .change_standing_with_activity(
            &a,
            StatusChange::Suppress(SuppressionReason::ManualSuppression),
            at,
            entry("suppressed", "admin-1"),
        )
        .await
        .unwrap();
    assert!(decision.changes_standing());
    // The same suppression again changes nothing but is still logged.
    t.table
        .change_standing_with_activity(
            &a,
            StatusChange::Suppress(SuppressionReason::ManualSuppression),
            at,
            entry("suppressed", "admin-2"),
        )
        .await
        .unwrap();

    let log = t.table.activity(a.key(), 10, None).await.unwrap();
    let mut logged: Vec<(String, serde_json::Value)> =
        log.items.into_iter().map(|e| (e.id, e.detail)).collect();
    logged.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        logged,
        [
            ("admin-1".to_owned(), json!({"changed": true})),
            ("admin-2".to_owned(), json!({"changed": false})),
        ]
    );
    let p = t.table.subscriber_profile(&a).await.unwrap().unwrap();
    assert_eq!(p.status, SubscriberStatus::Unsubscribed);
}

#[tokio::test]
async fn activity_entries_of_many_addresses_are_written_in_batches() {
    let t = TestTable::new().await;
    let at = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
    let entries: Vec<(String, ActivityEntry)> = (0..30)
        .map(|i| {
            (
                format!("reader{}@example.com", i % 2),
                ActivityEntry {
                    at: at + chrono::Duration::seconds(i),
                    id: format!("sent:job-{i}"),
                    kind: "sent".into(),
                    detail: json!({ "job_id": format!("job-{i}") }),
                },
            )
        })
        .collect();
    t.aws.requests.reset();
    t.table.record_activities(&entries).await.unwrap();
    assert_eq!(t.aws.requests.count("BatchWriteItem"), 2, "25 per request");
    for reader in ["reader0@example.com", "reader1@example.com"] {
        let log = t.table.activity(reader, 50, None).await.unwrap();
        assert_eq!(log.items.len(), 15, "{reader}");
    }
}
