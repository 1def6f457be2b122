//! Counting the recorded events of a stream batch, exactly once.
//!
//! The batch's counted records (see [`crate::events`]) are split into units small enough for one
//! transaction. For each unit, one batched read gets the unit's marker and the engagement state of the
//! messages its opens and clicks belong to; [`domain::stats::tally`] decides what the unit adds; one
//! transaction writes the new engagement states (each conditional on the version read), one delta per
//! campaign (on a shard of its own partition, see [`crate::stats`]), and the unit's marker
//! (`STREAM#{first record's event id}`, conditional on not existing, expiring after two days: beyond the
//! stream's 24-hour retention). Lambda retries a failed batch whole: the units of a retried batch are
//! the same, their markers are found, and what was counted is not counted again. A unit whose engagement
//! moved under it (an open of the same message counted from another shard) is read and decided again.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use chrono::{Duration, Utc};
use domain::engagement::{MessageEngagement, engagement_ref};
use domain::events::{Event, plan};
use domain::stats::tally;
use tracing::warn;

use crate::error::StoreError;
use crate::events::counted_event;
use crate::schema::{PK, SK, TTL_ATTRIBUTE, keys};
use crate::stream::{Change, StreamRecord};
use crate::table::{Item, Table, get_n, get_s, n, s};

/// DynamoDB's limit of items in one transaction (and of keys in one batched read).
const UNIT_ITEMS: usize = 100;
/// How long a unit's marker is kept.
const MARKER_DAYS: i64 = 2;
/// Bounded rounds when the engagement of a unit's messages keeps moving.
const ATTEMPTS: usize = 8;
const STATE: &str = "state";
const VERSION: &str = "v";

/// What counting a batch came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TallyReport {
    /// Counted events in the batch.
    pub events: usize,
    /// Of those, already counted by an earlier delivery of the batch.
    pub already_counted: usize,
    /// Transactions written.
    pub units: usize,
    /// Units decided again because their engagement moved.
    pub retried: usize,
}

fn engagement_key(message: &str) -> Item {
    keys::engagement(message).into_item()
}

fn unit_marker_key(event_id: &str) -> Item {
    keys::stream_unit(event_id).into_item()
}

fn same_key(a: &Item, b: &Item) -> bool {
    a.get(PK) == b.get(PK) && a.get(SK) == b.get(SK)
}

/// One event of the batch, with the record it came in.
struct Counted<'a> {
    record: &'a StreamRecord,
    event: Event,
}

/// Splits the events into units of at most [`UNIT_ITEMS`] writes: one per message engaged with, one per
/// campaign, one marker. The split depends on the events alone, so a retried batch splits the same.
fn units<'a>(events: &'a [Counted<'a>]) -> Vec<&'a [Counted<'a>]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut messages = HashSet::new();
    let mut campaigns = HashSet::new();
    for (i, c) in events.iter().enumerate() {
        let message = plan(&c.event).engagement.and(engagement_ref(&c.event));
        let campaign = c.event.trace.campaign.clone();
        let grows = message.as_ref().is_some_and(|m| !messages.contains(m)) as usize
            + campaign.as_ref().is_some_and(|c| !campaigns.contains(c)) as usize;
        if messages.len() + campaigns.len() + grows + 1 > UNIT_ITEMS {
            out.push(&events[start..i]);
            start = i;
            messages.clear();
            campaigns.clear();
        }
        messages.extend(message);
        campaigns.extend(campaign);
    }
    if start < events.len() {
        out.push(&events[start..]);
    }
    out
}

impl Table {
    /// What is counted of the opens and clicks of a job's message, and when they happened.
    pub async fn message_engagement(
        &self,
        job_id: &str,
    ) -> Result<Option<MessageEngagement>, StoreError> {
        let message = format!("job:{job_id}");
        self.get(engagement_key(&message), false)
            .await?
            .map(|item| {
                get_s(&item, STATE)
                    .and_then(|t| serde_json::from_str(t).ok())
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!("the engagement state of {message}"))
                    })
            })
            .transpose()
    }

    /// A put of an engagement state, conditional on the version it was decided on.
    fn put_at_version_op(&self, item: Item, version: i64) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(self.name())
            .set_item(Some(item))
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_values(":v", n(version))
            .build()
            .map_err(StoreError::build)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Counts the recorded events among `records` (one stream batch, in order), exactly once.
    pub async fn count_stream(&self, records: &[StreamRecord]) -> Result<TallyReport, StoreError> {
        let events: Vec<Counted<'_>> = records
            .iter()
            .filter(|r| r.change == Change::Insert)
            .filter_map(|r| {
                let item = r.new_image.as_ref()?;
                match counted_event(item) {
                    Some(event) => Some(Counted { record: r, event }),
                    None => {
                        if item.contains_key(crate::events::COUNTS) {
                            warn!(event_id = %r.event_id, "an event record that cannot be read is not counted");
                        }
                        None
                    }
                }
            })
            .collect();
        let mut report = TallyReport {
            events: events.len(),
            ..TallyReport::default()
        };
        for unit in units(&events) {
            self.count_unit(unit, &mut report).await?;
        }
        Ok(report)
    }

    async fn count_unit(
        &self,
        unit: &[Counted<'_>],
        report: &mut TallyReport,
    ) -> Result<(), StoreError> {
        let Some(first) = unit.first() else {
            return Ok(());
        };
        let marker = unit_marker_key(&first.record.event_id);
        let events: Vec<Event> = unit.iter().map(|c| c.event.clone()).collect();
        let mut messages: Vec<String> = Vec::new();
        for e in &events {
            if let Some(m) = plan(e).engagement.and(engagement_ref(e))
                && !messages.contains(&m)
            {
                messages.push(m);
            }
        }
        for attempt in 0..ATTEMPTS {
            let mut keys: Vec<Item> = messages.iter().map(|m| engagement_key(m)).collect();
            keys.push(marker.clone());
            let found = self.batch_get(keys, true).await?;
            if found.iter().any(|i| same_key(i, &marker)) {
                report.already_counted += unit.len();
                return Ok(());
            }
            let mut versions: HashMap<String, i64> = HashMap::new();
            let mut engagement: HashMap<String, MessageEngagement> = HashMap::new();
            for m in &messages {
                let key = engagement_key(m);
                if let Some(item) = found.iter().find(|i| same_key(i, &key)) {
                    let state = get_s(item, STATE)
                        .and_then(|t| serde_json::from_str(t).ok())
                        .ok_or_else(|| {
                            StoreError::Corrupt(format!("the engagement state of {m}"))
                        })?;
                    engagement.insert(m.clone(), state);
                    versions.insert(m.clone(), get_n(item, VERSION));
                }
            }
            let t = tally(&events, &mut engagement);
            let mut items = Vec::new();
            for m in &t.engaged {
                let state = serde_json::to_string(&engagement[m]).map_err(|e| {
                    StoreError::Corrupt(format!("engagement state that cannot be stored: {e}"))
                })?;
                let mut item = engagement_key(m);
                item.insert(STATE.into(), s(state));
                let version = versions.get(m).copied();
                item.insert(VERSION.into(), n(version.unwrap_or(0) + 1));
                items.push(match version {
                    Some(v) => self.put_at_version_op(item, v)?,
                    None => self.put_new_op(item)?,
                });
            }
            let engaged = items.len();
            let spread = &first.record.event_id;
            for (campaign, delta) in &t.campaigns {
                if !delta.is_empty() {
                    items.push(self.campaign_delta_op(campaign, spread, delta)?);
                }
            }
            let mut mark = marker.clone();
            mark.insert("last".into(), s(unit[unit.len() - 1].record.position()));
            mark.insert("events".into(), n(unit.len()));
            let expires = Utc::now() + Duration::days(MARKER_DAYS);
            mark.insert(TTL_ATTRIBUTE.into(), n(expires.timestamp()));
            let marker_index = items.len();
            items.push(self.put_new_op(mark)?);
            match self.transact(items).await {
                Ok(()) => {
                    report.units += 1;
                    return Ok(());
                }
                // The same unit counted by another delivery of the batch: read again, find the marker.
                Err(e) if e.condition_failed_at(marker_index) => continue,
                Err(e) if (0..engaged).any(|i| e.condition_failed_at(i)) => {
                    report.retried += 1;
                    if attempt + 1 < ATTEMPTS {
                        continue;
                    }
                    return Err(StoreError::Transient(
                        "the engagement of a batch's messages kept changing; the batch is retried"
                            .into(),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Transient(
            "a batch's unit could be neither counted nor found counted".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::EmailAddress;
    use domain::events::{EventKind, Source};
    use domain::trace::{Campaign, CampaignKind, MessageTrace};

    fn record(i: usize) -> StreamRecord {
        StreamRecord {
            event_id: format!("e{i}"),
            sequence: i.to_string(),
            change: Change::Insert,
            keys: Item::new(),
            new_image: None,
            old_image: None,
        }
    }

    fn open(job: usize, campaign: usize) -> Event {
        Event {
            kind: EventKind::Opened,
            source: Source::Postmark,
            dedup_key: format!("k{job}"),
            recipient: Some(EmailAddress::parse("r@example.com").unwrap()),
            message_id: None,
            at: Utc::now(),
            trace: MessageTrace {
                job_id: Some(format!("j{job}")),
                campaign: Some(Campaign {
                    kind: CampaignKind::Broadcast,
                    id: format!("c{campaign}"),
                }),
                ..MessageTrace::default()
            },
            stream: None,
            client: None,
            automated: None,
            detail: serde_json::Value::Null,
        }
    }

    #[test]
    fn units_stay_within_one_transaction_and_split_the_same_every_time() {
        let records: Vec<StreamRecord> = (0..450).map(record).collect();
        let events: Vec<Counted<'_>> = records
            .iter()
            .enumerate()
            // 300 messages opened, some twice; three campaigns.
            .map(|(i, r)| Counted {
                record: r,
                event: open(i % 300, i % 3),
            })
            .collect();
        let split = units(&events);
        assert!(split.len() > 1);
        assert_eq!(split.iter().map(|u| u.len()).sum::<usize>(), 450);
        for unit in &split {
            let messages: HashSet<_> = unit.iter().map(|c| c.event.trace.job_id.clone()).collect();
            let campaigns: HashSet<_> = unit
                .iter()
                .map(|c| c.event.trace.campaign.clone())
                .collect();
            assert!(
                messages.len() + campaigns.len() < UNIT_ITEMS,
                "{}",
                unit.len()
            );
        }
        let again: Vec<usize> = units(&events).iter().map(|u| u.len()).collect();
        assert_eq!(again, split.iter().map(|u| u.len()).collect::<Vec<_>>());
    }
}
