//! The platform's event feed on EventBridge: [`FeedPublisher::publish`] puts feed events
//! ([`domain::feed::FeedEvent`]) on the bus, with source [`SOURCE`], the event's `type` as the detail type
//! and its JSON as the detail.
//!
//! Delivery is at least once. Entries that EventBridge refuses for a passing reason (throttling, an
//! internal failure) are sent again, a bounded number of rounds with backoff; if some are still refused,
//! or the bus refuses us (no permission, no such bus), the call fails, and the stream function's batch
//! fails with it, so that Lambda hands the whole batch over again. Consumers dedup on the event's `id`.
//!
//! An event EventBridge can never take (over its size limit, or refused as malformed) is logged and left
//! out rather than failing every retry of its batch: one bad event must not stop the table's stream.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::{PutEventsRequestEntry, Target};
use aws_sdk_sqs::types::QueueAttributeName;
use domain::feed::FeedEvent;
use futures::{StreamExt, TryStreamExt};
use tracing::{error, warn};

use crate::aws::StorePolicy;
use crate::error::{StoreError, classify};
use crate::jobs::JobRecord;
use crate::schema::{PK, SK, keys};
use crate::table::{Item, get_s};

/// The `source` of every feed event on the bus: what a rule matches on.
pub const SOURCE: &str = "postmark-integration";
/// EventBridge's limit of entries in one `PutEvents` call.
pub const PUT_EVENTS_LIMIT: usize = 10;
/// EventBridge's limit of one `PutEvents` call, entries added up (and so of one entry).
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;
/// `PutEvents` calls under way at once.
const CONCURRENT_CALLS: usize = 4;

/// The bounds of the publisher's EventBridge client. A `PutEvents` call answers in tens of milliseconds,
/// but it carries up to ten events, and an emulator delivering them to a queue takes a second or more:
/// an attempt is given 10 s, a call 25 s with its retries, well inside the stream function's timeout. An
/// attempt cut off after EventBridge took it only publishes its events twice (consumers dedup on the id).
pub fn publisher_policy() -> StorePolicy {
    StorePolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(2),
        operation_timeout: Duration::from_secs(25),
        attempt_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
    }
}

/// An EventBridge client with the store's kind of bounded retries and timeouts (see [`publisher_policy`]).
pub fn eventbridge_client(sdk: &SdkConfig, policy: &StorePolicy) -> Client {
    Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(sdk)
            .retry_config(policy.retry_config())
            .timeout_config(policy.timeout_config())
            .build(),
    )
}

/// How often entries refused for a passing reason are sent again, and how long to wait between rounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResendPolicy {
    /// Rounds after the first call.
    pub rounds: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for ResendPolicy {
    /// About 1.5 s of waiting in all: longer than a burst of throttling, short beside the function's timeout.
    fn default() -> Self {
        Self {
            rounds: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(800),
        }
    }
}

impl ResendPolicy {
    fn backoff(&self, round: u32) -> Duration {
        self.initial_backoff
            .saturating_mul(2u32.saturating_pow(round.saturating_sub(1)))
            .min(self.max_backoff)
    }
}

/// What became of a call to [`FeedPublisher::publish`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Published {
    /// Events EventBridge accepted.
    pub accepted: usize,
    /// Events EventBridge can never take, left out (and logged).
    pub left_out: usize,
}

/// What to do with an entry EventBridge refused, by its error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Passing: send it again.
    Resend,
    /// This event can never be taken: leave it out.
    LeaveOut,
    /// The bus refuses us (permissions, account): fail, for the batch to be retried once it is fixed.
    Fail,
}

impl Refusal {
    /// Classifies a `PutEventsResultEntry` error code (EventBridge documents which are retryable). A code
    /// we do not know is taken as passing: the bounded rounds then fail the call.
    pub fn of(code: &str) -> Self {
        match code {
            "MalformedDetail" | "InvalidArgument" | "RedactionFailure" => Self::LeaveOut,
            "AccessDeniedException"
            | "InvalidAccountIdException"
            | "NotAuthorizedForSourceException"
            | "NotAuthorizedForDetailTypeException"
            | "ResourceNotFoundException" => Self::Fail,
            _ => Self::Resend,
        }
    }
}

/// One event as it goes on the bus.
struct Entry {
    id: String,
    kind: &'static str,
    entry: PutEventsRequestEntry,
    /// Its size as EventBridge counts it.
    bytes: usize,
}

/// Publishes feed events to one bus. Cheap to clone.
#[derive(Clone, Debug)]
pub struct FeedPublisher {
    client: Client,
    bus: Arc<str>,
    resend: ResendPolicy,
}

impl FeedPublisher {
    pub fn new(client: Client, bus: impl Into<Arc<str>>) -> Self {
        Self::with_resend(client, bus, ResendPolicy::default())
    }

    pub fn with_resend(client: Client, bus: impl Into<Arc<str>>, resend: ResendPolicy) -> Self {
        Self {
            client,
            bus: bus.into(),
            resend,
        }
    }

    pub fn bus(&self) -> &str {
        &self.bus
    }

    fn entry(&self, event: &FeedEvent) -> Result<Entry, StoreError> {
        let detail = serde_json::to_string(event).map_err(StoreError::build)?;
        let kind = event.type_name();
        // EventBridge counts the UTF-8 bytes of source, detail type and detail, and 14 for the time.
        let bytes = SOURCE.len() + kind.len() + detail.len() + 14;
        let time = aws_smithy_types::DateTime::from_millis(event.occurred_at.timestamp_millis());
        Ok(Entry {
            id: event.id.clone(),
            kind,
            entry: PutEventsRequestEntry::builder()
                .event_bus_name(self.bus.as_ref())
                .source(SOURCE)
                .detail_type(kind)
                .detail(detail)
                .time(time)
                .build(),
            bytes,
        })
    }

    /// Puts `events` on the bus, ten per call (fewer when they would pass EventBridge's size limit),
    /// a few calls at a time. Succeeds when every event was accepted or can never be.
    pub async fn publish(&self, events: &[FeedEvent]) -> Result<Published, StoreError> {
        let mut published = Published::default();
        let mut entries = Vec::with_capacity(events.len());
        for event in events {
            let entry = self.entry(event)?;
            if entry.bytes > MAX_REQUEST_BYTES {
                error!(id = %entry.id, r#type = entry.kind, bytes = entry.bytes,
                    "a feed event over EventBridge's size limit is left out");
                published.left_out += 1;
            } else {
                entries.push(entry);
            }
        }
        let results: Vec<Published> = futures::stream::iter(chunks(entries))
            .map(|chunk| self.put_chunk(chunk))
            .buffer_unordered(CONCURRENT_CALLS)
            .try_collect()
            .await?;
        for r in results {
            published.accepted += r.accepted;
            published.left_out += r.left_out;
        }
        Ok(published)
    }

    /// One call's entries, sent again while some are refused for a passing reason, within the rounds.
    async fn put_chunk(&self, mut pending: Vec<Entry>) -> Result<Published, StoreError> {
        let mut published = Published::default();
        let mut round = 0;
        loop {
            let out = self
                .client
                .put_events()
                .set_entries(Some(pending.iter().map(|e| e.entry.clone()).collect()))
                .send()
                .await
                .map_err(classify)?;
            let results = out.entries();
            if out.failed_entry_count() == 0 && results.len() == pending.len() {
                published.accepted += pending.len();
                return Ok(published);
            }
            let mut again = Vec::new();
            let mut refused = None;
            for (i, entry) in pending.into_iter().enumerate() {
                // EventBridge answers one result per entry, in order; a missing one is not an acceptance.
                let code = match results.get(i) {
                    Some(r) if r.error_code().is_none() && r.event_id().is_some() => {
                        published.accepted += 1;
                        continue;
                    }
                    Some(r) => r.error_code().unwrap_or("InternalFailure").to_owned(),
                    None => "InternalFailure".to_owned(),
                };
                let message = results
                    .get(i)
                    .and_then(|r| r.error_message())
                    .unwrap_or_default();
                match Refusal::of(&code) {
                    Refusal::LeaveOut => {
                        error!(id = %entry.id, r#type = entry.kind, code, message,
                            "EventBridge can never take this feed event; it is left out");
                        published.left_out += 1;
                    }
                    Refusal::Fail => refused = Some(format!("{code}: {message}")),
                    Refusal::Resend => {
                        warn!(id = %entry.id, code, round, "EventBridge refused a feed event for now");
                        again.push(entry);
                    }
                }
            }
            if let Some(why) = refused {
                return Err(StoreError::Other(
                    format!("the event bus {} refused the feed: {why}", self.bus).into(),
                ));
            }
            if again.is_empty() {
                return Ok(published);
            }
            round += 1;
            if round > self.resend.rounds {
                return Err(StoreError::Transient(
                    format!(
                        "EventBridge still refused {} feed events after {} rounds",
                        again.len(),
                        self.resend.rounds
                    )
                    .into(),
                ));
            }
            tokio::time::sleep(self.resend.backoff(round)).await;
            pending = again;
        }
    }
}

/// The job record a stream image holds, when the item is a job's (`None` for any other item): what the
/// stream function reads a job's outcome from.
pub(crate) fn job_of(image: &Item) -> Result<Option<JobRecord>, StoreError> {
    let any = keys::job("");
    let is_job = get_s(image, PK).is_some_and(|pk| pk.starts_with(any.pk.as_str()))
        && get_s(image, SK) == Some(any.sk.as_str());
    if !is_job {
        return Ok(None);
    }
    JobRecord::from_item(image).map(Some)
}

/// A bus with a rule that routes every feed event to an SQS queue: how the local stack and the tests
/// subscribe (a deployment's consumers write the same rule in their own templates, see `docs/feed.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedRoute {
    pub bus_arn: String,
    pub rule_name: String,
    pub queue_url: String,
    pub queue_arn: String,
}

/// Creates the bus, the queue and the rule between them; what exists already is kept.
pub async fn route_to_queue(
    events: &Client,
    sqs: &aws_sdk_sqs::Client,
    bus: &str,
    queue_name: &str,
) -> Result<FeedRoute, StoreError> {
    let bus_arn = match events.create_event_bus().name(bus).send().await {
        Ok(out) => out.event_bus_arn.unwrap_or_default(),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_already_exists_exception()) =>
        {
            events
                .describe_event_bus()
                .name(bus)
                .send()
                .await
                .map_err(classify)?
                .arn
                .unwrap_or_default()
        }
        Err(e) => return Err(classify(e)),
    };
    let queue_url = sqs
        .create_queue()
        .queue_name(queue_name)
        .send()
        .await
        .map_err(classify)?
        .queue_url
        .unwrap_or_default();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(classify)?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| StoreError::Other(format!("queue {queue_url} has no ARN").into()))?;
    let rule_name = format!("{bus}-to-{queue_name}");
    let rule_arn = events
        .put_rule()
        .name(&rule_name)
        .event_bus_name(bus)
        .event_pattern(serde_json::json!({ "source": [SOURCE] }).to_string())
        .send()
        .await
        .map_err(classify)?
        .rule_arn
        .unwrap_or_default();
    // EventBridge may send to the queue for this rule only.
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "events.amazonaws.com" },
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": { "ArnEquals": { "aws:SourceArn": rule_arn } },
        }],
    });
    sqs.set_queue_attributes()
        .queue_url(&queue_url)
        .attributes(QueueAttributeName::Policy, policy.to_string())
        .send()
        .await
        .map_err(classify)?;
    events
        .put_targets()
        .rule(&rule_name)
        .event_bus_name(bus)
        .targets(
            Target::builder()
                .id("queue")
                .arn(&queue_arn)
                .build()
                .map_err(StoreError::build)?,
        )
        .send()
        .await
        .map_err(classify)?;
    Ok(FeedRoute {
        bus_arn,
        rule_name,
        queue_url,
        queue_arn,
    })
}

/// Groups entries into calls: at most ten each, and at most EventBridge's size limit added up.
fn chunks(entries: Vec<Entry>) -> Vec<Vec<Entry>> {
    let mut out: Vec<Vec<Entry>> = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        match out.last_mut() {
            Some(last)
                if last.len() < PUT_EVENTS_LIMIT && bytes + entry.bytes <= MAX_REQUEST_BYTES =>
            {
                bytes += entry.bytes;
                last.push(entry);
            }
            _ => {
                bytes = entry.bytes;
                out.push(vec![entry]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(bytes: usize) -> Entry {
        Entry {
            id: String::new(),
            kind: "email.sent",
            entry: PutEventsRequestEntry::builder().build(),
            bytes,
        }
    }

    #[test]
    fn calls_hold_ten_entries_and_stay_under_the_size_limit() {
        let sizes =
            |entries: Vec<Entry>| -> Vec<usize> { chunks(entries).iter().map(Vec::len).collect() };
        assert_eq!(sizes((0..25).map(|_| entry(1_000)).collect()), [10, 10, 5]);
        assert_eq!(sizes(Vec::new()), Vec::<usize>::new());
        let big = MAX_REQUEST_BYTES / 2;
        assert_eq!(
            sizes(vec![entry(big), entry(big), entry(1), entry(big)]),
            [2, 2],
            "two halves fill a call; the next one starts another"
        );
        assert_eq!(sizes(vec![entry(big + 1), entry(big)]), [1, 1]);
    }

    #[test]
    fn refusals_are_classified_by_their_code() {
        assert_eq!(Refusal::of("ThrottlingException"), Refusal::Resend);
        assert_eq!(Refusal::of("InternalFailure"), Refusal::Resend);
        assert_eq!(Refusal::of("SomethingNew"), Refusal::Resend);
        assert_eq!(Refusal::of("MalformedDetail"), Refusal::LeaveOut);
        assert_eq!(Refusal::of("AccessDeniedException"), Refusal::Fail);
        assert_eq!(
            Refusal::of("NotAuthorizedForSourceException"),
            Refusal::Fail
        );
    }

    /// Over the emulator: an entry EventBridge answers as malformed is left out, the others of its call
    /// go through.
    #[tokio::test]
    async fn an_event_that_can_never_be_taken_is_left_out_and_the_rest_published() {
        let aws = testkit::Aws::new().await;
        // testkit's policy is of the store it links, not of this crate under test.
        let policy = StorePolicy {
            operation_timeout: Duration::from_secs(120),
            attempt_timeout: Duration::from_secs(60),
            ..StorePolicy::default()
        };
        let client = eventbridge_client(&aws.config, &policy);
        let bus = testkit::unique("feed-bus");
        let route = route_to_queue(&client, &aws.sqs, &bus, &testkit::unique("feed"))
            .await
            .expect("a bus routed to a queue");
        let publisher = FeedPublisher::new(client, bus.clone());
        let raw = |detail: &str| Entry {
            id: detail.to_owned(),
            kind: "email.sent",
            entry: PutEventsRequestEntry::builder()
                .event_bus_name(&bus)
                .source(SOURCE)
                .detail_type("email.sent")
                .detail(detail)
                .build(),
            bytes: detail.len(),
        };
        let published = publisher
            .put_chunk(vec![
                raw(r#"{"id":"a"}"#),
                raw("not json"),
                raw(r#"{"id":"b"}"#),
            ])
            .await
            .expect("the call succeeds");
        assert_eq!(
            published,
            Published {
                accepted: 2,
                left_out: 1
            }
        );
        let mut ids = Vec::new();
        for _ in 0..20 {
            for m in crate::sqs::receive(&aws.sqs, &route.queue_url, 10, 1)
                .await
                .expect("receive")
            {
                let envelope: serde_json::Value =
                    serde_json::from_str(m.body().unwrap_or_default()).expect("JSON");
                ids.push(
                    envelope["detail"]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
            if ids.len() >= 2 {
                break;
            }
        }
        ids.sort();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn the_backoff_doubles_up_to_its_ceiling() {
        let p = ResendPolicy::default();
        let waits: Vec<u128> = (1..=5).map(|r| p.backoff(r).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 800]);
    }
}
