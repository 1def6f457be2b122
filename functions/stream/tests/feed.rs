//! The feed step over the AWS emulator: outcomes written through the store's public API, the table's
//! stream read through the local event source mapping and handed to the stream function, and the feed
//! read back from an SQS queue behind a rule on the bus, as a platform app subscribes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use domain::EmailAddress;
use domain::events::{BounceClass, Event, EventKind, Source};
use domain::feed::{EndedJob, FeedEvent, JobEnding};
use domain::trace::{Campaign, CampaignKind, MessageTrace};
use domain::{EmailType, JobId};
use local_stack::stream_poller::StreamPoller;
use serde_json::Value;
use store::events::Recorded;
use store::feed::{FeedPublisher, FeedRoute};
use store::jobs::{Claimed, JobClaim, JobOutcome, OutcomeRecorded};
use stream::{App, Config};
use testkit::{TestTable, test_policy, unique};

struct Feed {
    t: TestTable,
    route: FeedRoute,
    app: Arc<App>,
}

impl Feed {
    async fn new() -> Self {
        let t = TestTable::new().await;
        let events = store::feed::eventbridge_client(&t.aws.config, &test_policy());
        let bus = unique("feed-bus");
        let route = store::feed::route_to_queue(&events, &t.aws.sqs, &bus, &unique("feed"))
            .await
            .expect("a bus routed to a queue");
        let app = App::with_clients(
            t.aws.dynamodb.clone(),
            Config {
                table_name: t.table.name().to_owned(),
                event_bus_name: Some(bus.clone()),
            },
        )
        .with_feed(FeedPublisher::new(events, bus));
        Self {
            t,
            route,
            app: Arc::new(app),
        }
    }

    /// A poller that hands the whole stream, from its oldest record, to the function in this process.
    async fn poller(&self, app: Arc<App>) -> StreamPoller {
        local_stack::stream_poller::for_app(&self.t.aws.config, app, 100, Duration::ZERO)
            .await
            .expect("the table's stream")
    }

    async fn hand_over_the_stream(&self) {
        self.hand_over_the_stream_to(self.app.clone()).await;
    }

    async fn hand_over_the_stream_to(&self, app: Arc<App>) {
        let reports = self
            .poller(app)
            .await
            .drain()
            .await
            .expect("the stream handed over");
        assert!(
            reports.iter().all(|r| r.failed_attempts == 0),
            "no batch failed: {reports:?}"
        );
    }

    /// The feed events in the queue (details, with how often each id came), waiting until `want`
    /// deliveries have arrived, then a little longer for any that should not.
    async fn arrived(&self, want: usize) -> BTreeMap<String, (Value, usize)> {
        let mut seen: BTreeMap<String, (Value, usize)> = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut deliveries = 0;
        let mut quiet_rounds = 0;
        while Instant::now() < deadline && (deliveries < want || quiet_rounds < 2) {
            let got = store::sqs::receive(&self.t.aws.sqs, &self.route.queue_url, 10, 1)
                .await
                .expect("receive");
            if got.is_empty() {
                quiet_rounds += 1;
            }
            let mut receipts = Vec::new();
            for m in got {
                let envelope: Value =
                    serde_json::from_str(m.body().unwrap_or_default()).expect("an envelope");
                assert_eq!(envelope["source"], store::feed::SOURCE);
                assert_eq!(envelope["detail-type"], envelope["detail"]["type"]);
                let id = envelope["detail"]["id"].as_str().expect("an id").to_owned();
                let entry = seen
                    .entry(id)
                    .or_insert_with(|| (envelope["detail"].clone(), 0));
                entry.1 += 1;
                deliveries += 1;
                receipts.extend(m.receipt_handle().map(str::to_owned));
            }
            store::sqs::delete(&self.t.aws.sqs, &self.route.queue_url, &receipts)
                .await
                .expect("delete");
        }
        seen
    }
}

fn at(second: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, second).unwrap()
}

fn event(kind: EventKind, recipient: &str, message: &str, second: u32) -> Event {
    Event {
        kind,
        source: Source::Postmark,
        dedup_key: format!("pm:{message}-{second}"),
        recipient: Some(EmailAddress::parse(recipient).unwrap()),
        message_id: Some(format!("pm-{message}")),
        at: at(second),
        trace: MessageTrace {
            job_id: Some(format!("job-{message}")),
            campaign: Some(Campaign {
                kind: CampaignKind::Broadcast,
                id: "b-feed".into(),
            }),
            subscriber_id: Some(format!("sub-{message}")),
            ..MessageTrace::default()
        },
        stream: Some("broadcast".into()),
        client: None,
        automated: None,
        detail: Value::Null,
    }
}

fn bounce(class: BounceClass, bounce_type: &str) -> EventKind {
    EventKind::Bounced {
        class,
        bounce_type: bounce_type.into(),
    }
}

#[tokio::test]
async fn every_recorded_outcome_arrives_on_the_feed_and_again_with_its_id_when_the_stream_is_handed_over_again()
 {
    let feed = Feed::new().await;
    // What the webhook function would record, with the standing each one leaves (a hard bounce first,
    // so that the later unsubscribe of the same address leaves the standing as it was).
    let cases: Vec<(Event, Option<bool>)> = vec![
        (
            event(EventKind::Delivered, "a@example.org", "1", 1),
            Some(false),
        ),
        (
            event(
                bounce(BounceClass::Hard, "HardBounce"),
                "b@example.org",
                "2",
                2,
            ),
            Some(false),
        ),
        (
            event(
                EventKind::SubscriptionChanged {
                    suppress: true,
                    reason: Some("ManualSuppression".into()),
                    origin: Some("Recipient".into()),
                },
                "b@example.org",
                "2",
                3,
            ),
            Some(true),
        ),
        (
            event(
                bounce(BounceClass::Soft, "Transient"),
                "c@example.org",
                "3",
                4,
            ),
            Some(false),
        ),
        (
            event(EventKind::Opened, "a@example.org", "1", 5),
            Some(false),
        ),
        (
            event(
                EventKind::Clicked {
                    url: "https://shop.example.com/sale".into(),
                },
                "a@example.org",
                "1",
                6,
            ),
            Some(false),
        ),
        (
            event(EventKind::SpamComplaint, "d@example.org", "4", 7),
            Some(false),
        ),
        // A delivery whose payload lacked its timestamp: its record is one of its own, with its
        // activity entry beside it; published once.
        (
            Event {
                dedup_key: "trace:6b1f0c2e".into(),
                ..event(EventKind::Delivered, "f@example.org", "6", 10)
            },
            Some(false),
        ),
        // Recorded, and not the platform's business.
        (
            event(
                bounce(BounceClass::AutoReply, "AutoResponder"),
                "e@example.org",
                "5",
                8,
            ),
            None,
        ),
        (
            event(
                EventKind::Unknown {
                    record_type: Some("Inbound".into()),
                },
                "e@example.org",
                "5",
                9,
            ),
            None,
        ),
    ];
    let mut expected: BTreeMap<String, Value> = BTreeMap::new();
    for (e, unchanged) in &cases {
        let (recorded, as_recorded) = feed
            .t
            .table
            .record_event(e.clone())
            .await
            .expect("recorded");
        assert_eq!(recorded, Recorded::New);
        if let Some(unchanged) = unchanged {
            let f = FeedEvent::from_event(&as_recorded, *unchanged).expect("a feed event");
            expected.insert(f.id.clone(), serde_json::to_value(&f).unwrap());
        }
    }
    // Postmark delivers the delivery again: recorded once, published once.
    let (again, _) = feed
        .t
        .table
        .record_event(cases[0].0.clone())
        .await
        .expect("recorded");
    assert_eq!(again, Recorded::Duplicate);

    feed.hand_over_the_stream().await;
    let arrived = feed.arrived(expected.len()).await;
    let got: BTreeMap<String, Value> = arrived
        .iter()
        .map(|(id, (detail, _))| (id.clone(), detail.clone()))
        .collect();
    assert_eq!(got, expected, "each outcome once, as the domain builds it");
    assert!(arrived.values().all(|(_, n)| *n == 1), "{arrived:?}");
    let unsubscribed = got
        .values()
        .find(|d| d["type"] == "email.unsubscribed")
        .expect("the unsubscribe");
    assert_eq!(unsubscribed["standing_changed"], false);

    // Lambda hands a batch over again after a failure: the same events, under the same ids.
    feed.hand_over_the_stream().await;
    let again = feed.arrived(expected.len()).await;
    let ids: Vec<&String> = again.keys().collect();
    assert_eq!(ids, expected.keys().collect::<Vec<_>>());
}

#[tokio::test]
async fn without_a_bus_the_batch_succeeds_and_nothing_is_published() {
    let feed = Feed::new().await;
    let no_bus = App::with_clients(
        feed.t.aws.dynamodb.clone(),
        Config {
            table_name: feed.t.table.name().to_owned(),
            event_bus_name: None,
        },
    );
    feed.t
        .table
        .record_event(event(EventKind::Delivered, "a@example.org", "1", 1))
        .await
        .expect("recorded");
    feed.hand_over_the_stream_to(Arc::new(no_bus)).await;
    assert!(feed.arrived(0).await.is_empty());
}

/// Claims a job as the sender does and records how it ended; gives the job's id and the claim's token.
async fn end_job(
    feed: &Feed,
    id: &str,
    to: &str,
    outcome: JobOutcome,
    second: u32,
) -> (JobId, String) {
    let id = JobId::parse(id).unwrap();
    let recipient = EmailAddress::parse(to).unwrap();
    let campaign = Campaign {
        kind: CampaignKind::Sequence,
        id: "welcome".into(),
    };
    let token = unique("claim");
    let claimed = feed
        .t
        .table
        .claim_job(&JobClaim {
            id: &id,
            token: &token,
            recipient: &recipient,
            email_type: EmailType::Sequence,
            campaign: Some(&campaign),
            subscriber_id: Some("sub-9"),
            now: at(second),
            lease: Duration::from_secs(60),
            send: None,
        })
        .await
        .expect("claimed");
    assert_eq!(claimed, Claimed::owned());
    let recorded = feed
        .t
        .table
        .record_job_outcome(&id, &token, &outcome, at(second + 1))
        .await
        .expect("recorded");
    assert_eq!(recorded, OutcomeRecorded::Written);
    (id, token)
}

/// The id the feed gives a job's ending (the rest of the event is checked field by field).
fn job_feed_id(job: &str, ending: JobEnding) -> String {
    FeedEvent::from_job(&EndedJob {
        job_id: job.into(),
        ending,
        at: at(0),
        recipient: None,
        subscriber_id: None,
        message_id: None,
        email_type: None,
        campaign: None,
        stream: None,
    })
    .id
}

#[tokio::test]
async fn a_job_that_ends_is_published_once_and_one_still_retried_is_not() {
    let feed = Feed::new().await;
    let sent = JobOutcome::Sent {
        message_id: Some("pm-77".into()),
        server_id: "srv-1".into(),
        stream: "broadcast".into(),
    };
    let (sent_job, token) = end_job(&feed, "job-sent", "s@example.org", sent.clone(), 10).await;
    // The sender's outcome write sent again after its answer was lost: the item changes, its status not.
    let again = feed
        .t
        .table
        .record_job_outcome(&sent_job, &token, &sent, at(12))
        .await
        .expect("recorded again");
    assert_eq!(again, OutcomeRecorded::Written);
    end_job(
        &feed,
        "job-failed",
        "f@example.org",
        JobOutcome::Failed {
            reason: "Postmark error 300: Invalid 'To' address".into(),
            error_code: Some(300),
            server_id: Some("srv-1".into()),
            stream: Some("broadcast".into()),
        },
        20,
    )
    .await;
    end_job(
        &feed,
        "job-skipped",
        "k@example.org",
        JobOutcome::Skipped {
            reason: "the address is suppressed (HardBounce)".into(),
        },
        30,
    )
    .await;
    end_job(
        &feed,
        "job-retried",
        "r@example.org",
        JobOutcome::Retrying {
            reason: "Postmark answered 503".into(),
            error_code: None,
        },
        40,
    )
    .await;

    feed.hand_over_the_stream().await;
    let arrived = feed.arrived(3).await;
    let by_job: BTreeMap<&str, &Value> = arrived
        .values()
        .map(|(d, _)| (d["job_id"].as_str().unwrap_or_default(), d))
        .collect();
    assert_eq!(
        by_job.keys().copied().collect::<Vec<_>>(),
        ["job-failed", "job-sent", "job-skipped"],
        "the three ended jobs, and not the one SQS delivers again"
    );
    assert!(arrived.values().all(|(_, n)| *n == 1), "{arrived:?}");
    let sent = by_job["job-sent"];
    assert_eq!(sent["type"], "email.sent");
    assert_eq!(sent["id"], job_feed_id("job-sent", JobEnding::Sent));
    assert_eq!(sent["source"], "sender");
    assert_eq!(sent["occurred_at"], "2026-12-01T10:00:11.000Z");
    assert_eq!(sent["recipient"], "s@example.org");
    assert_eq!(sent["message_id"], "pm-77");
    assert_eq!(sent["stream"], "broadcast");
    assert_eq!(sent["email_type"], "sequence");
    assert_eq!(sent["subscriber_id"], "sub-9");
    assert_eq!(
        sent["campaign"],
        serde_json::json!({ "kind": "sequence", "id": "welcome" })
    );
    let failed = by_job["job-failed"];
    assert_eq!(failed["type"], "email.failed");
    assert_eq!(failed["reason"], "Postmark error 300: Invalid 'To' address");
    assert_eq!(failed["error_code"], 300);
    assert_eq!(failed["occurred_at"], "2026-12-01T10:00:21.000Z");
    let skipped = by_job["job-skipped"];
    assert_eq!(skipped["type"], "email.skipped");
    assert_eq!(skipped["reason"], "the address is suppressed (HardBounce)");
    assert_eq!(skipped["message_id"], Value::Null);

    // An event on a sent job's message keeps its status: nothing more for the job.
    feed.t
        .table
        .record_event(event(EventKind::Delivered, "s@example.org", "sent", 50))
        .await
        .expect("recorded");
    feed.hand_over_the_stream().await;
    let again = feed.arrived(4).await;
    let jobs: Vec<(&str, &str)> = again
        .values()
        .map(|(d, _)| {
            (
                d["type"].as_str().unwrap_or_default(),
                d["job_id"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(jobs.len(), 4, "{jobs:?}");
    assert!(jobs.contains(&("email.delivered", "job-sent")), "{jobs:?}");
    assert_eq!(
        jobs.iter().filter(|(t, _)| *t == "email.sent").count(),
        1,
        "{jobs:?}"
    );
}
