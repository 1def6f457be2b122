//! Recording one event: everything it changes is written in one transaction, conditional on the event
//! being new, so a redelivered webhook changes nothing and a failure leaves nothing half-written.
//!
//! Deliveries and soft bounces take one round trip (the transaction). Hard bounces, complaints and
//! subscription changes take two: a consistent read of the subscriber's standing, for the domain to decide
//! on, then the transaction, conditional on the standing's version (see [`crate::subscribers`]). Opens
//! and clicks take two: a consistent read of the message's state and engagement counts, then the
//! transaction, conditional on those counts being unchanged (a concurrent open of the same message makes
//! it read again). The read is what lets one open seen by both the native pixel and Postmark count once,
//! gives a native event its recipient and campaign, and times a click against the delivery.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, Duration, Utc};
use domain::EmailAddress;
use domain::automation::automated_reason;
use domain::dedup::key_fixes_time;
use domain::engagement::{self, CLICKS, Counted, EngagementCounts, EngagementKind, OPENS};
use domain::events::{Event, EventKind, Plan, Source, plan};
use domain::standing;
use domain::trace::{Campaign, CampaignKind};
use serde_json::json;

use crate::activity::{ActivityEntry, activity_item, sortable_time};
use crate::error::StoreError;
use crate::schema::{PK, TTL_ATTRIBUTE};
use crate::subscribers::{STANDING_ATTEMPTS, StandingWrite};
use crate::table::{Item, Table, get_n, get_s, key, n, s};

/// How long a dedup record is kept: far beyond Postmark's retry window.
const DEDUP_DAYS: i64 = 30;
/// Bounded retries when a concurrent event on the same message changed its engagement counts.
const ENGAGEMENT_ATTEMPTS: usize = 6;
/// Largest raw body kept for audit (DynamoDB items stop at 400 KB).
const AUDIT_MAX_BYTES: usize = 300 * 1024;

/// What became of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    Duplicate,
}

/// What the sender stored about a message, as far as events need it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageState {
    pub recipient: Option<EmailAddress>,
    pub campaign: Option<Campaign>,
    pub subscriber_id: Option<String>,
    pub message_id: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
}

fn parse_time(item: &Item, name: &str) -> Option<DateTime<Utc>> {
    get_s(item, name)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

impl MessageState {
    pub fn from_item(item: &Item) -> Self {
        let campaign = match (get_s(item, "campaign_kind"), get_s(item, "campaign_id")) {
            (Some(kind), Some(id)) => kind.parse::<CampaignKind>().ok().map(|kind| Campaign {
                kind,
                id: id.to_owned(),
            }),
            _ => None,
        };
        Self {
            recipient: get_s(item, "recipient").and_then(|r| EmailAddress::parse(r).ok()),
            campaign,
            subscriber_id: get_s(item, "subscriber_id").map(str::to_owned),
            message_id: get_s(item, "message_id").map(str::to_owned),
            sent_at: parse_time(item, "sent_at"),
            delivered_at: parse_time(item, "delivered_at"),
        }
    }
}

/// The item holding a message's state: its job when the metadata names one, else its MessageID.
pub fn message_key(event: &Event) -> Option<Item> {
    if let Some(job) = &event.trace.job_id {
        Some(job_key(job))
    } else {
        event
            .message_id
            .as_ref()
            .map(|m| key(format!("MSG#{m}"), "MSG"))
    }
}

/// The key of a job's item (its outcome and its message's state).
pub fn job_key(job_id: &str) -> Item {
    key(format!("JOB#{job_id}"), "JOB")
}

fn engagement_pk(event: &Event) -> Option<String> {
    match (&event.trace.job_id, &event.message_id) {
        (Some(job), _) => Some(format!("ENG#job:{job}")),
        (None, Some(m)) => Some(format!("ENG#msg:{m}")),
        _ => None,
    }
}

/// The engagement items an open or click moves: the message's, and for a click the link's too.
fn engagement_keys(event: &Event, kind: &EngagementKind) -> Vec<Item> {
    let Some(pk) = engagement_pk(event) else {
        return Vec::new();
    };
    match kind {
        EngagementKind::Open => vec![key(pk, "OPEN")],
        EngagementKind::Click { url } => vec![
            key(pk.clone(), "CLICK"),
            key(pk, format!("LINK#{}", domain::tracking::link_hash(url))),
        ],
    }
}

fn same_key(a: &Item, b: &Item) -> bool {
    a.get(PK) == b.get(PK) && a.get(crate::schema::SK) == b.get(crate::schema::SK)
}

fn counts_of(item: Option<&Item>) -> (EngagementCounts, Option<i64>) {
    match item {
        None => (EngagementCounts::default(), None),
        Some(i) => (
            EngagementCounts {
                native: get_n(i, EngagementCounts::NATIVE),
                postmark: get_n(i, EngagementCounts::POSTMARK),
                native_human: get_n(i, EngagementCounts::NATIVE_HUMAN),
                postmark_human: get_n(i, EngagementCounts::POSTMARK_HUMAN),
            },
            Some(get_n(i, "v")),
        ),
    }
}

/// The engagement counts as read, to count against and to condition the write on.
struct EngagementRead {
    key: Item,
    counts: EngagementCounts,
    version: Option<i64>,
}

impl Table {
    /// A job's message state, if the job exists.
    pub async fn message_state(&self, job_id: &str) -> Result<Option<MessageState>, StoreError> {
        Ok(self
            .get(job_key(job_id), false)
            .await?
            .map(|i| MessageState::from_item(&i)))
    }

    /// Records one event atomically. Returns whether it was new, and the event as recorded (a native
    /// event gains its recipient and campaign from the message's state; a click may gain an automated flag).
    pub async fn record_event(&self, mut event: Event) -> Result<(Recorded, Event), StoreError> {
        let engagement = match &event.kind {
            EventKind::Opened => Some(EngagementKind::Open),
            EventKind::Clicked { url } => Some(EngagementKind::Click { url: url.clone() }),
            _ => None,
        };
        let Some(engagement) = engagement else {
            let recorded = self.record_plain(&event).await?;
            return Ok((recorded, event));
        };
        let eng_keys = engagement_keys(&event, &engagement);
        let msg_key = message_key(&event);
        for _ in 0..ENGAGEMENT_ATTEMPTS {
            let mut wanted = eng_keys.clone();
            wanted.extend(msg_key.clone());
            let found = self.batch_get(wanted, true).await?;
            if let Some(mk) = &msg_key
                && let Some(item) = found.iter().find(|i| same_key(i, mk))
            {
                let state = MessageState::from_item(item);
                enrich(&mut event, &state);
            }
            let reads: Vec<EngagementRead> = eng_keys
                .iter()
                .map(|k| {
                    let (counts, version) = counts_of(found.iter().find(|i| same_key(i, k)));
                    EngagementRead {
                        key: k.clone(),
                        counts,
                        version,
                    }
                })
                .collect();
            let p = plan(&event);
            match self
                .engagement_transaction(&event, &p, &engagement, &reads)
                .await
            {
                Ok(()) => return Ok((Recorded::New, event)),
                Err(e) if e.condition_failed_at(0) => return Ok((Recorded::Duplicate, event)),
                Err(e) if (1..=reads.len()).any(|i| e.condition_failed_at(i)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Transient(
            "the message's engagement kept changing; try again".into(),
        ))
    }

    /// An event without engagement. Most take one round trip; one that changes a standing (a few per cent
    /// of events) first reads the subscriber's standing, for the domain to decide on, and its transaction
    /// is conditional on the standing not having moved since (read again if it did, bounded).
    async fn record_plain(&self, event: &Event) -> Result<Recorded, StoreError> {
        let p = plan(event);
        let (Some(recipient), Some(change)) = (&event.recipient, p.status) else {
            let ops = self.common_ops(event, &p, None)?;
            return match self.transact(ops.items).await {
                Ok(()) => Ok(Recorded::New),
                Err(e) if e.condition_failed_at(0) => Ok(Recorded::Duplicate),
                Err(e) => Err(e),
            };
        };
        for _ in 0..STANDING_ATTEMPTS {
            let read = self.stored_standing(recipient).await?;
            let decision = standing::decide(&read.state, change, event.at);
            let write = StandingWrite {
                state: decision.state,
                read_version: read.version,
            };
            let standing = EventStanding {
                write: decision.state_changed.then_some(&write),
                changes_standing: decision.changes_standing(),
            };
            let ops = self.common_ops(event, &p, Some(&standing))?;
            let profile_index = ops.profile_index;
            match self.transact(ops.items).await {
                Ok(()) => return Ok(Recorded::New),
                Err(e) if e.condition_failed_at(0) => return Ok(Recorded::Duplicate),
                // Another change of this subscriber's standing came first: decide again on it.
                Err(e) if profile_index.is_some_and(|i| e.condition_failed_at(i)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Transient(
            "the subscriber's standing kept changing; try again".into(),
        ))
    }

    async fn engagement_transaction(
        &self,
        event: &Event,
        p: &Plan,
        engagement: &EngagementKind,
        reads: &[EngagementRead],
    ) -> Result<(), StoreError> {
        let human = event.automated.is_none();
        let mut ops = self.common_ops(event, p, None)?;
        let rest = ops.items.split_off(1);
        let mut items = ops.items;
        let mut counted: Vec<Counted> = Vec::new();
        for read in reads {
            counted.push(engagement::count(&read.counts, event.source, human));
            items.push(self.engagement_op(read, event.source, human)?);
        }
        items.extend(rest);
        if let Some(campaign) = &event.trace.campaign {
            match (engagement, counted.as_slice()) {
                (EngagementKind::Open, [c]) => {
                    let counters = c.counters(&OPENS);
                    if !counters.is_empty() {
                        items.push(self.campaign_add_op(campaign, &event.dedup_key, &counters)?);
                    }
                }
                (EngagementKind::Click { url }, [message, link]) => {
                    let counters = message.counters(&CLICKS);
                    if !counters.is_empty() {
                        items.push(self.campaign_add_op(campaign, &event.dedup_key, &counters)?);
                    }
                    items.push(self.link_add_op(
                        campaign,
                        url,
                        &event.dedup_key,
                        &link.counters(&CLICKS),
                    )?);
                }
                _ => {}
            }
        }
        self.transact(items).await
    }

    fn engagement_op(
        &self,
        read: &EngagementRead,
        source: Source,
        human: bool,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut names = HashMap::from([("#v".to_owned(), "v".to_owned())]);
        let mut values = HashMap::from([(":one".to_owned(), n(1))]);
        let mut adds = vec!["#v :one".to_owned()];
        for (i, attr) in EngagementCounts::increments(source, human)
            .into_iter()
            .enumerate()
        {
            names.insert(format!("#a{i}"), attr.to_owned());
            adds.push(format!("#a{i} :one"));
        }
        let condition = match read.version {
            None => {
                names.insert("#pk".into(), PK.into());
                "attribute_not_exists(#pk)"
            }
            Some(v) => {
                values.insert(":v".into(), n(v));
                "#v = :v"
            }
        };
        self.update_op(
            read.key.clone(),
            &format!("ADD {}", adds.join(", ")),
            Some(condition),
            names,
            values,
        )
    }

    fn dedup_op(&self, event: &Event) -> Result<TransactWriteItem, StoreError> {
        let mut item = key(format!("EVT#{}", event.dedup_key), "EVT");
        item.insert("kind".into(), s(event.kind.name()));
        item.insert("at".into(), s(sortable_time(event.at)));
        let expires = Utc::now() + Duration::days(DEDUP_DAYS);
        item.insert(TTL_ATTRIBUTE.into(), n(expires.timestamp()));
        self.put_new_op(item)
    }

    /// The writes every event makes: first (index 0) the write conditional on the event being new, then
    /// the subscriber, the message, the campaign counters, the activity entry and, for what we cannot
    /// attribute, an audit record.
    ///
    /// The conditional write is the event's activity entry itself when the entry's key (the event's time
    /// and dedup key) is the same for every copy of the event: one item fewer, two write units less, per
    /// event. Otherwise it is a dedup record of its own (`EVT#{key}`, expiring after 30 days).
    ///
    /// `standing` is what the domain decided about the subscriber's standing, for an event that changes
    /// one.
    fn common_ops(
        &self,
        event: &Event,
        p: &Plan,
        standing: Option<&EventStanding<'_>>,
    ) -> Result<Ops, StoreError> {
        let unchanged = standing.is_some_and(|s| !s.changes_standing);
        let activity = event
            .recipient
            .as_ref()
            .map(|r| (r.key(), self.activity_entry(event, unchanged)));
        let activity_dedups = activity.is_some() && key_fixes_time(&event.dedup_key);
        let first = match &activity {
            Some((email_key, entry)) if activity_dedups => {
                self.put_new_op(activity_item(email_key, entry))?
            }
            _ => self.dedup_op(event)?,
        };
        let mut ops = Ops {
            items: vec![first],
            profile_index: None,
        };
        let write = standing.and_then(|s| s.write);
        if let Some(recipient) = &event.recipient
            && (write.is_some() || !p.subscriber_counters.is_empty())
        {
            ops.profile_index = Some(ops.items.len());
            ops.items
                .push(self.profile_update_op(recipient, write, &p.subscriber_counters)?);
        }
        if let Some((email_key, entry)) = &activity
            && !activity_dedups
        {
            ops.items.push(self.activity_op(email_key, entry)?);
        }
        if let Some(mk) = message_key(event) {
            ops.items.push(self.message_op(mk, event, p)?);
        }
        if let Some(campaign) = &event.trace.campaign
            && !p.campaign_counters.is_empty()
        {
            ops.items.push(self.campaign_add_op(
                campaign,
                &event.dedup_key,
                &p.campaign_counters,
            )?);
        }
        if event.recipient.is_none() || matches!(event.kind, EventKind::Unknown { .. }) {
            ops.items.push(self.audit_op(event)?);
        }
        Ok(ops)
    }

    /// The event as the subscriber's activity log shows it. A status change that left the standing as it
    /// was (weaker than the standing, or older than a reactivation) is marked `standing_unchanged`.
    fn activity_entry(&self, event: &Event, unchanged: bool) -> ActivityEntry {
        let mut detail = json!({
            "source": event.source.as_str(),
            "details": event.detail,
        });
        for (k, v) in [
            ("message_id", event.message_id.as_ref().map(|m| json!(m))),
            ("job_id", event.trace.job_id.as_ref().map(|j| json!(j))),
            ("campaign", event.trace.campaign.as_ref().map(|c| json!(c))),
            ("stream", event.stream.as_ref().map(|st| json!(st))),
            ("client", event.client.as_ref().map(|c| json!(c))),
            ("automated", event.automated.as_ref().map(|a| json!(a))),
            ("standing_unchanged", unchanged.then_some(json!(true))),
        ] {
            if let Some(v) = v {
                detail[k] = v;
            }
        }
        ActivityEntry {
            at: event.at,
            id: event.dedup_key.clone(),
            kind: event.kind.name().to_owned(),
            detail,
        }
    }

    fn message_op(
        &self,
        mk: Item,
        event: &Event,
        p: &Plan,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut set = vec![
            "last_event = :kind".to_owned(),
            "last_event_at = :at".to_owned(),
        ];
        let mut values = HashMap::from([
            (":kind".to_owned(), s(event.kind.name())),
            (":at".to_owned(), s(sortable_time(event.at))),
            (":one".to_owned(), n(1)),
        ]);
        let mut names = HashMap::from([("#events".to_owned(), "events".to_owned())]);
        if let Some(m) = &event.message_id {
            set.push("message_id = if_not_exists(message_id, :mid)".into());
            values.insert(":mid".into(), s(m));
        }
        for (i, field) in p.message_times.iter().enumerate() {
            names.insert(format!("#t{i}"), (*field).to_owned());
            if field.starts_with("last_") {
                set.push(format!("#t{i} = :at"));
            } else {
                set.push(format!("#t{i} = if_not_exists(#t{i}, :at)"));
            }
        }
        if let EventKind::Bounced { bounce_type, .. } = &event.kind {
            set.push("bounce_type = :bt".into());
            values.insert(":bt".into(), s(bounce_type));
        }
        self.update_op(
            mk,
            &format!("SET {} ADD #events :one", set.join(", ")),
            None,
            names,
            values,
        )
    }

    fn audit_op(&self, event: &Event) -> Result<TransactWriteItem, StoreError> {
        let mut body = event.detail.to_string();
        if body.len() > AUDIT_MAX_BYTES {
            let mut cut = AUDIT_MAX_BYTES;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            body.truncate(cut);
        }
        let mut item = key(
            format!("AUDIT#{}", event.at.format("%Y-%m-%d")),
            format!("{}#{}", sortable_time(event.at), event.dedup_key),
        );
        item.insert("kind".into(), s(event.kind.name()));
        if let EventKind::Unknown {
            record_type: Some(rt),
        } = &event.kind
        {
            item.insert("record_type".into(), s(rt));
        }
        item.insert("body".into(), s(body));
        self.put_op(item)
    }
}

struct Ops {
    items: Vec<TransactWriteItem>,
    profile_index: Option<usize>,
}

/// What the domain decided about the standing of an event's subscriber.
struct EventStanding<'a> {
    /// The standing to write, when the state moved.
    write: Option<&'a StandingWrite>,
    /// Whether the visible standing changed (the activity entry is marked when it did not).
    changes_standing: bool,
}

/// Fills in from the message's state what the event itself does not carry (native events carry only the
/// job), and flags a click that came too soon after delivery.
fn enrich(event: &mut Event, state: &MessageState) {
    if event.recipient.is_none() {
        event.recipient = state.recipient.clone();
    }
    if event.trace.campaign.is_none() {
        event.trace.campaign = state.campaign.clone();
    }
    if event.trace.subscriber_id.is_none() {
        event.trace.subscriber_id = state.subscriber_id.clone();
    }
    if event.message_id.is_none() {
        event.message_id = state.message_id.clone();
    }
    if event.automated.is_none() && matches!(event.kind, EventKind::Clicked { .. }) {
        let since = state
            .delivered_at
            .or(state.sent_at)
            .map(|t| (event.at - t).num_seconds());
        event.automated = automated_reason(None, true, since);
    }
}
