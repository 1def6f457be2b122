//! Mail that Postmark accepted over SMTP and then dropped (an `SMTPApiError` bounce): its job ends failed,
//! the campaign counts it failed instead of sent, and the address is suppressed. The same webhook again
//! changes nothing.

use std::collections::BTreeMap;

use domain::trace::{Campaign, CampaignKind};
use domain::{EmailAddress, SuppressionReason};
use e2e::{Stack, WEBHOOK_PASSWORD};
use serde_json::json;
use store::jobs::JobStatus;

const TO: &str = "gone@example.org";

#[tokio::test]
async fn a_message_postmark_dropped_fails_its_job_moves_the_stats_and_suppresses_the_address() {
    let stack = Stack::start().await;
    let job = json!({
        "version": 1, "id": "drop-1", "email_type": "broadcast", "broadcast_id": "b-drop",
        "from": "news@example.com", "to": TO, "subject": "Hello", "html_body": "<p>Hi</p>",
    });
    assert!(
        stack
            .send(&[("sqs-1", job.to_string())])
            .await
            .batch_item_failures
            .is_empty()
    );
    stack.settle().await;
    let sent = stack.t.table.job("drop-1").await.unwrap().expect("the job");
    assert_eq!(sent.status, Some(JobStatus::Sent));
    let message = stack.sim.messages_to(TO)[0].clone();

    // Postmark's SMTP API error bounce for the message, as it posts it when the server's hooks are on.
    let drop = json!({
        "RecordType": "Bounce", "ID": 4242, "Type": "SMTPApiError", "TypeCode": 100007,
        "Name": "SMTP API error", "MessageID": message.message_id, "MessageStream": "broadcast",
        "Email": TO, "BouncedAt": "2026-12-07T10:00:00Z", "Inactive": true, "CanActivate": false,
        "Description": "An error occurred while accepting an email through the SMTP API.",
        "Metadata": message.metadata,
    });
    let post = || async {
        reqwest::Client::new()
            .post(format!(
                "http://{}/wh/postmark?password={WEBHOOK_PASSWORD}",
                stack.webhook_addr
            ))
            .json(&drop)
            .send()
            .await
            .expect("the webhook function answers")
    };
    let first = post().await;
    assert_eq!(first.status(), 200);
    stack.settle().await;

    let failed = stack.t.table.job("drop-1").await.unwrap().expect("the job");
    assert_eq!(failed.status, Some(JobStatus::Failed), "{failed:?}");
    let counters = |stats: BTreeMap<String, i64>| {
        (
            stats.get("sent").copied().unwrap_or(0),
            stats.get("failed").copied().unwrap_or(0),
        )
    };
    let campaign = Campaign {
        kind: CampaignKind::Broadcast,
        id: "b-drop".into(),
    };
    let stats = stack.t.table.campaign_stats(&campaign).await.unwrap();
    assert_eq!(counters(stats.counters), (0, 1), "failed instead of sent");
    let profile = stack
        .t
        .table
        .subscriber_profile(&EmailAddress::parse(TO).unwrap())
        .await
        .unwrap()
        .expect("the address");
    assert_eq!(
        profile.suppression_reason,
        Some(SuppressionReason::InactiveRecipient)
    );

    let again = post().await;
    assert_eq!(again.status(), 200);
    assert_eq!(
        again.json::<serde_json::Value>().await.unwrap()["status"],
        "duplicate"
    );
    stack.settle().await;
    let stats = stack.t.table.campaign_stats(&campaign).await.unwrap();
    assert_eq!(counters(stats.counters), (0, 1), "counted once");
}
