//! A job to Postmark's hard-bounce test address, end to end: the sender sends it through the simulator,
//! the simulator bounces it and posts the Bounce webhook to the webhook function, which suppresses the
//! address; the next job to it is skipped without reaching Postmark.

use domain::trace::{Campaign, CampaignKind};
use domain::{EmailAddress, SubscriberStatus, SuppressionReason};
use e2e::Stack;
use postmark_sim::DeliveryState;
use serde_json::json;
use store::jobs::JobStatus;

const BOUNCING: &str = "HardBounce@bounce-testing.postmarkapp.com";

fn job(id: &str, email_type: &str) -> String {
    let mut job = json!({
        "version": 1,
        "id": id,
        "email_type": email_type,
        "from": "The Corner Bookshop <news@example.com>",
        "to": BOUNCING,
        "subject": "Spring has sprung",
        "html_body": "<p>Twelve new titles</p>",
        "subscriber_id": "sub-bounce",
        "track_opens": true,
    });
    if email_type == "broadcast" {
        job["broadcast_id"] = json!("b-e2e");
    }
    job.to_string()
}

#[tokio::test]
async fn a_hard_bounce_suppresses_the_address_and_the_next_job_is_skipped() {
    let stack = Stack::start().await;

    let answer = stack
        .send(&[("sqs-1", job("e2e-first", "broadcast"))])
        .await;
    assert!(answer.batch_item_failures.is_empty());
    stack.settle().await;

    // The webhook path: Postmark's Bounce event reached the webhook function and was acted on.
    let posted = stack.sim.webhooks();
    let bounce = posted
        .iter()
        .find(|w| w.record_type == "Bounce")
        .expect("the simulator posted a Bounce");
    assert_eq!(bounce.state, DeliveryState::Delivered, "{bounce:?}");
    assert_eq!(bounce.attempts.last().and_then(|a| a.status), Some(200));
    assert!(
        posted.iter().all(|w| w.state == DeliveryState::Delivered),
        "every webhook was taken: {posted:?}"
    );
    let key = BOUNCING.to_lowercase();
    let profile = stack
        .t
        .table
        .subscriber_profile(&EmailAddress::parse(BOUNCING).unwrap())
        .await
        .unwrap()
        .expect("the webhook function wrote the subscriber");
    assert_eq!(profile.status, SubscriberStatus::Deactivated);
    assert_eq!(
        profile.suppression_reason,
        Some(SuppressionReason::HardBounce)
    );
    let first = stack
        .t
        .table
        .job("e2e-first")
        .await
        .unwrap()
        .expect("the first job's record");
    assert_eq!(first.status, Some(JobStatus::Sent));
    assert!(first.message_id.is_some(), "{first:?}");
    assert_eq!(
        bounce.message_id, first.message_id,
        "the bounce is of the job's message"
    );
    let stats = stack
        .t
        .table
        .campaign_stats(&Campaign {
            kind: CampaignKind::Broadcast,
            id: "b-e2e".into(),
        })
        .await
        .unwrap();
    assert_eq!(stats.counters["sent"], 1);
    assert_eq!(stats.counters["bounced_hard"], 1);

    // The next jobs to the address, marketing or transactional, are skipped.
    let answer = stack
        .send(&[
            ("sqs-2", job("e2e-second", "broadcast")),
            ("sqs-3", job("e2e-receipt", "transactional")),
        ])
        .await;
    assert!(answer.batch_item_failures.is_empty());
    for id in ["e2e-second", "e2e-receipt"] {
        let job = stack.t.table.job(id).await.unwrap().expect("its record");
        assert_eq!(job.status, Some(JobStatus::Skipped), "{id}");
        assert_eq!(
            job.reason.as_deref(),
            Some("the address is suppressed (HardBounce)")
        );
    }
    assert_eq!(
        stack.sim.messages_to(BOUNCING).len(),
        1,
        "only the first job reached Postmark"
    );
    let stats = stack
        .t
        .table
        .campaign_stats(&Campaign {
            kind: CampaignKind::Broadcast,
            id: "b-e2e".into(),
        })
        .await
        .unwrap();
    assert_eq!(stats.counters["skipped"], 1);
    let activity: Vec<String> = stack
        .t
        .table
        .activity(&key, 20, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(activity.contains(&"sent".to_owned()), "{activity:?}");
    assert!(activity.contains(&"hard_bounce".to_owned()), "{activity:?}");
    assert_eq!(activity.iter().filter(|k| *k == "skipped").count(), 2);
}
