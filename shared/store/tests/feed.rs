//! The feed publisher over the AWS emulator: a bus, a rule routing the feed to an SQS queue, events put
//! on the bus and read back from the queue as a subscriber would.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use domain::EmailAddress;
use domain::feed::{EndedJob, FeedEvent, JobEnding};
use domain::trace::{Campaign, CampaignKind};
use serde_json::Value;
use store::feed::{FeedPublisher, FeedRoute, Published, ResendPolicy, SOURCE};
use testkit::{Aws, test_policy, unique};

struct Feed {
    aws: Aws,
    events: aws_sdk_eventbridge::Client,
    bus: String,
    route: FeedRoute,
}

impl Feed {
    async fn new() -> Self {
        let aws = Aws::new().await;
        let events = store::feed::eventbridge_client(&aws.config, &test_policy());
        let bus = unique("feed-bus");
        let route = store::feed::route_to_queue(&events, &aws.sqs, &bus, &unique("feed"))
            .await
            .expect("a bus routed to a queue");
        Self {
            aws,
            events,
            bus,
            route,
        }
    }

    fn publisher(&self) -> FeedPublisher {
        FeedPublisher::new(self.events.clone(), self.bus.clone())
    }

    /// The envelopes in the queue, by feed id, waiting until `want` have arrived (or 20 s have passed).
    async fn arrived(&self, want: usize) -> BTreeMap<String, Value> {
        let mut seen = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.len() < want && Instant::now() < deadline {
            let got = store::sqs::receive(&self.aws.sqs, &self.route.queue_url, 10, 1)
                .await
                .expect("receive");
            for m in got {
                let envelope: Value =
                    serde_json::from_str(m.body().unwrap_or_default()).expect("an envelope");
                let id = envelope["detail"]["id"].as_str().expect("an id").to_owned();
                seen.insert(id, envelope);
            }
        }
        seen
    }
}

fn job(i: usize) -> FeedEvent {
    let ending = match i % 3 {
        0 => JobEnding::Sent,
        1 => JobEnding::Failed {
            reason: "Postmark refused the message: 300 Invalid email request".into(),
            error_code: Some(300),
        },
        _ => JobEnding::Skipped {
            reason: "suppressed: HardBounce".into(),
        },
    };
    FeedEvent::from_job(&EndedJob {
        job_id: format!("job-{i}"),
        ending,
        at: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
            + chrono::Duration::seconds(i as i64),
        recipient: Some(EmailAddress::parse(&format!("reader{i}@example.org")).unwrap()),
        subscriber_id: Some(format!("sub-{i}")),
        message_id: i.is_multiple_of(3).then(|| format!("pm-{i}")),
        email_type: None,
        campaign: Some(Campaign {
            kind: CampaignKind::Broadcast,
            id: "winter-sale".into(),
        }),
        stream: None,
    })
}

#[tokio::test]
async fn published_events_arrive_through_a_rule_as_they_were_built() {
    let feed = Feed::new().await;
    let events: Vec<FeedEvent> = (0..23).map(job).collect();
    let published = feed.publisher().publish(&events).await.expect("published");
    assert_eq!(
        published,
        Published {
            accepted: 23,
            left_out: 0
        }
    );
    assert_eq!(
        feed.aws.requests.count("PutEvents"),
        0,
        "the publisher's own client"
    );
    let arrived = feed.arrived(events.len()).await;
    assert_eq!(arrived.len(), events.len(), "every event, once each");
    for event in &events {
        let envelope = &arrived[&event.id];
        assert_eq!(envelope["source"], SOURCE);
        assert_eq!(envelope["detail-type"], event.type_name());
        assert_eq!(envelope["detail"], serde_json::to_value(event).unwrap());
    }
}

#[tokio::test]
async fn nothing_to_publish_is_no_call() {
    let feed = Feed::new().await;
    let published = feed.publisher().publish(&[]).await.expect("nothing");
    assert_eq!(published, Published::default());
}

#[tokio::test]
async fn a_bus_that_is_not_there_fails_the_call() {
    let feed = Feed::new().await;
    let publisher = FeedPublisher::with_resend(
        feed.events.clone(),
        unique("no-such-bus"),
        ResendPolicy {
            rounds: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
        },
    );
    let err = publisher
        .publish(&[job(0)])
        .await
        .expect_err("an event no bus took is not published");
    assert!(
        matches!(err, store::StoreError::Other(_)),
        "a misconfiguration, not a passing failure: {err:?}"
    );
}
