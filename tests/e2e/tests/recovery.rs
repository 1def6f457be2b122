//! Webhooks lost for good, end to end: every webhook of a broadcast is lost (as if Postmark had given up
//! on them), the stats stay short; the recovery run asks the simulator's read APIs and records what was
//! missed through the webhook's event path, and the stats come out exact. The lost webhooks then arrive
//! after all (a late retry): each is recognised, nothing is counted twice. A second run finds nothing new.

use std::collections::BTreeMap;

use chrono::Utc;
use domain::servers::{LinkTracking, PostmarkTracking};
use domain::trace::{Campaign, CampaignKind};
use domain::{EmailAddress, SuppressionReason};
use e2e::{Stack, WEBHOOK_PASSWORD};
use postmark_sim::{ClickRequest, FaultAction, FaultRule, Faults, OpenRequest, WebhookLoss};
use serde_json::json;

const BOUNCING: &str = "HardBounce@bounce-testing.postmarkapp.com";
const CAMPAIGN: &str = "b-recovery";

fn job(id: &str, to: &str) -> String {
    json!({
        "version": 1,
        "id": id,
        "email_type": "broadcast",
        "broadcast_id": CAMPAIGN,
        "from": "The Corner Bookshop <news@example.com>",
        "to": to,
        "subject": "Spring has sprung",
        "html_body": "<p>Twelve new titles: <a href=\"https://shop.example/new\">see them</a></p>",
    })
    .to_string()
}

async fn counters(stack: &Stack) -> BTreeMap<String, i64> {
    stack
        .t
        .table
        .campaign_stats(&Campaign {
            kind: CampaignKind::Broadcast,
            id: CAMPAIGN.into(),
        })
        .await
        .expect("the campaign's counters")
        .counters
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .collect()
}

#[tokio::test]
async fn webhooks_lost_for_good_are_recovered_and_counted_once_whenever_they_arrive() {
    let stack = Stack::start().await;
    // Postmark's own tracking on, so that readers' opens and clicks reach Postmark.
    let mut server = stack.t.table.servers().await.unwrap().remove(0);
    server.tracking = PostmarkTracking {
        track_opens: true,
        track_links: LinkTracking::HtmlAndText,
    };
    let version = server.version;
    server.version += 1;
    assert!(stack.t.table.update_server(&server, version).await.unwrap());
    stack.sim.set_webhook_loss(WebhookLoss {
        share: 1.0,
        seed: 7,
        tag: None,
        stream: None,
    });

    let readers = ["ana@example.org", "ben@example.org", "cleo@example.org"];
    let mut records: Vec<(String, String)> = readers
        .iter()
        .enumerate()
        .map(|(i, to)| (format!("sqs-{i}"), job(&format!("rec-{i}"), to)))
        .collect();
    records.push(("sqs-bounce".into(), job("rec-bounce", BOUNCING)));
    let borrowed: Vec<(&str, String)> = records
        .iter()
        .map(|(id, body)| (id.as_str(), body.clone()))
        .collect();
    assert!(stack.send(&borrowed).await.batch_item_failures.is_empty());
    stack.settle().await;
    // Two readers open, one clicks: in Postmark, not here.
    for (i, reader) in readers.iter().enumerate().take(2) {
        let message = stack.sim.messages_to(reader)[0].message_id.clone();
        stack
            .sim
            .open(OpenRequest {
                message_id: message.clone(),
                ..OpenRequest::default()
            })
            .expect("an open");
        if i == 0 {
            stack
                .sim
                .click(ClickRequest {
                    message_id: message,
                    link: "https://shop.example/new".into(),
                    ..ClickRequest::default()
                })
                .expect("a click");
        }
    }
    stack.settle().await;

    let lost = stack.sim.lost_webhooks();
    assert_eq!(
        lost.len(),
        3 + 1 + 2 + 1 + 1,
        "3 deliveries, a bounce and its subscription change, 2 opens, a click: {lost:?}"
    );
    let short = counters(&stack).await;
    assert_eq!(
        short,
        BTreeMap::from([("sent".to_owned(), 4)]),
        "nothing but the sends is known before recovery"
    );

    let run = recover::run(&stack.recover, "test", Utc::now()).await;
    assert!(run.ok(), "{run:?}");
    stack.settle().await;
    let exact = BTreeMap::from([
        ("sent".to_owned(), 4),
        ("delivered".to_owned(), 3),
        ("bounced_hard".to_owned(), 1),
        ("opens".to_owned(), 2),
        ("opens_unique".to_owned(), 2),
        ("opens_human".to_owned(), 2),
        ("opens_unique_human".to_owned(), 2),
        // The click came within seconds of the send: flagged as a scanner's, as its webhook would be.
        ("clicks".to_owned(), 1),
        ("clicks_unique".to_owned(), 1),
    ]);
    assert_eq!(counters(&stack).await, exact, "{run:?}");
    let server = &run.servers[0];
    assert_eq!(server.recovered.get("delivered"), Some(&3), "{server:?}");
    assert_eq!(server.recovered.get("hard_bounce"), Some(&1), "{server:?}");
    assert!(server.postmark_calls > 0);
    let profile = stack
        .t
        .table
        .subscriber_profile(&EmailAddress::parse(BOUNCING).unwrap())
        .await
        .unwrap()
        .expect("the bounced address");
    assert_eq!(
        profile.suppression_reason,
        Some(SuppressionReason::HardBounce)
    );

    // The lost webhooks arrive after all: every one is recognised and nothing moves.
    let http = reqwest::Client::new();
    for delivery in &lost {
        let answer = http
            .post(format!(
                "http://{}/wh/postmark?password={WEBHOOK_PASSWORD}",
                stack.webhook_addr
            ))
            .json(&delivery.payload)
            .send()
            .await
            .expect("the webhook function answers");
        assert_eq!(answer.status(), 200);
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(
            body["status"], "duplicate",
            "{} was recovered before its webhook came: {body}",
            delivery.record_type
        );
    }
    stack.settle().await;
    assert_eq!(counters(&stack).await, exact);

    // A second run reads the same events back and records none of them again.
    let again = recover::run(&stack.recover, "test", Utc::now()).await;
    assert!(again.ok(), "{again:?}");
    assert_eq!(again.recovered_total(), 0, "{again:?}");
    assert!(again.servers[0].already_recorded > 0);
    stack.settle().await;
    assert_eq!(counters(&stack).await, exact);
    let runs = stack.t.table.recovery_runs(10, None).await.unwrap().items;
    assert_eq!(runs.len(), 2, "each run's summary is kept");
    assert_eq!(runs[0].id, again.id, "newest first");
}

#[tokio::test]
async fn a_backlog_is_worked_off_window_by_window() {
    let stack = Stack::start().await;
    stack.sim.set_webhook_loss(WebhookLoss {
        share: 1.0,
        seed: 1,
        tag: None,
        stream: None,
    });
    assert!(
        stack
            .send(&[("sqs-w", job("rec-window", "dana@example.org"))])
            .await
            .batch_item_failures
            .is_empty()
    );
    stack.settle().await;
    // A first run looks back two hours, one hour per run.
    let mut config = (*stack.recover.config).clone();
    config.first_lookback = chrono::Duration::hours(2);
    config.max_window = chrono::Duration::hours(1);
    config.overlap = chrono::Duration::zero();
    let app = recover::App {
        config: std::sync::Arc::new(config),
        ..stack.recover.clone()
    };
    let now = Utc::now();
    let first = recover::run(&app, "test", now).await;
    assert!(first.ok(), "{first:?}");
    assert_eq!(first.recovered_total(), 0, "the first hour holds nothing");
    assert_eq!(
        first.servers[0].to,
        Some(now - chrono::Duration::hours(1)),
        "the window stops an hour after it starts"
    );
    let second = recover::run(&app, "test", Utc::now()).await;
    assert!(second.ok(), "{second:?}");
    assert_eq!(
        second.servers[0].from.map(|t| t.timestamp_micros()),
        first.servers[0].to.map(|t| t.timestamp_micros()),
        "the next run starts at the watermark (kept to the microsecond)"
    );
    assert_eq!(
        second.servers[0].recovered.get("delivered"),
        Some(&1),
        "{second:?}"
    );
}

#[tokio::test]
async fn a_run_that_cannot_read_postmark_fails_and_leaves_its_window_to_the_next() {
    let stack = Stack::start().await;
    stack.sim.set_webhook_loss(WebhookLoss {
        share: 1.0,
        seed: 1,
        tag: None,
        stream: None,
    });
    assert!(
        stack
            .send(&[("sqs-b", job("rec-outage", BOUNCING))])
            .await
            .batch_item_failures
            .is_empty()
    );
    stack.settle().await;
    // Postmark's Bounces API is down for this run.
    stack.sim.set_faults(
        Faults::seeded(1)
            .rule(FaultRule::new(FaultAction::Status { status: 503 }).path("/bounces")),
    );
    let failed = recover::handle(&stack.recover, &json!({"trigger": "test"}))
        .await
        .expect_err("a run that could not read the bounces fails");
    assert!(
        failed.errors.iter().any(|e| e.contains("bounces")),
        "{failed:?}"
    );
    let server = domain::servers::ServerId::parse("main").unwrap();
    assert_eq!(
        stack.t.table.recovery_watermark(&server).await.unwrap(),
        None,
        "the watermark stays where it was"
    );
    // The address is suppressed all the same (the stream's suppression dump says so); the bounce itself
    // is not recorded yet.
    let kinds = |stack: &Stack| {
        let table = stack.t.table.clone();
        async move {
            table
                .activity(&BOUNCING.to_lowercase(), 20, None)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|e| e.kind)
                .collect::<Vec<String>>()
        }
    };
    assert!(!kinds(&stack).await.contains(&"hard_bounce".to_owned()));

    stack.sim.set_faults(Faults::default());
    let next = recover::handle(&stack.recover, &json!({"trigger": "test"}))
        .await
        .expect("Postmark answers again");
    assert_eq!(
        next.servers[0].recovered.get("hard_bounce"),
        Some(&1),
        "{next:?}"
    );
    assert!(
        stack
            .t
            .table
            .recovery_watermark(&server)
            .await
            .unwrap()
            .is_some()
    );
}
