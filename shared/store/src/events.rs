//! Recording one event: one conditional write of the event's record, which is also its dedup key and its
//! entry in the subscriber's activity log, so a redelivered webhook changes nothing. The counters the
//! event moves are not written here: the stream function reads the records from the table's stream and
//! adds them up in batches, exactly once (see [`crate::tally`]).
//!
//! Most events take one request: the record's conditional put. An event that changes a standing (hard
//! bounces, complaints, subscription changes: a few per cent) first reads the subscriber's standing, for
//! the domain to decide on, then writes the record and the standing in one transaction, conditional on
//! the standing's version (see [`crate::subscribers`]). A native open or click, which carries only its
//! job, first reads what the sender stored about the message (recipient, campaign, send time).
//!
//! The record is the activity entry `SUB#{email}` / `ACT#{time}#{dedup key}` when every copy of the
//! event carries the same time (see [`domain::dedup::key_fixes_time`]); otherwise a record of its own,
//! `EVT#{dedup key}` (expiring after 30 days), with the activity entry written beside it in a
//! transaction. An event without a recipient, or of a kind we do not act on, also leaves an audit copy
//! of its body.

use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{Duration, NaiveDate, Utc};
use domain::EmailAddress;
use domain::dedup::key_fixes_time;
use domain::events::{Event, EventKind, MessageState, enrich, plan};
use domain::standing;

use crate::activity::sortable_time;
use crate::error::StoreError;
use crate::schema::{TTL_ATTRIBUTE, keys};
use crate::subscribers::{STANDING_ATTEMPTS, StandingWrite};
use crate::table::{Item, PageQuery, Table, get_s, n, s};

/// How long a dedup record is kept: far beyond Postmark's retry window.
const DEDUP_DAYS: i64 = 30;
/// Largest raw body kept for audit (DynamoDB items stop at 400 KB).
const AUDIT_MAX_BYTES: usize = 300 * 1024;

/// The attribute holding the recorded event (serialised [`Event`]).
pub(crate) const EVENT: &str = "event";
/// Set on the one item per event that the stream function counts.
pub(crate) const COUNTS: &str = "counts";
/// Set on an event's record when its status change left the standing as it was.
pub(crate) const STANDING_UNCHANGED: &str = "standing_unchanged";

/// What became of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    Duplicate,
}

/// An event kept for audit: one without a recipient, or of a kind we do not act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub kind: String,
    /// Postmark's `RecordType` of a record we do not act on.
    pub record_type: Option<String>,
    /// The event's details as they came (cut at 300 KB).
    pub body: String,
}

/// A recorded event read back from its item, and whether its status change left the standing as it was.
pub(crate) fn recorded_event(item: &Item) -> Option<(Event, bool)> {
    let event = serde_json::from_str(get_s(item, EVENT)?).ok()?;
    let unchanged = item
        .get(STANDING_UNCHANGED)
        .and_then(|v| v.as_bool().ok())
        .copied()
        .unwrap_or(false);
    Some((event, unchanged))
}

/// The event an item of the stream stands for, when it is an event's counted record.
pub(crate) fn counted_event(item: &Item) -> Option<Event> {
    item.get(COUNTS)
        .and_then(|v| v.as_bool().ok())
        .filter(|c| **c)?;
    recorded_event(item).map(|(e, _)| e)
}

impl Table {
    /// What the sender stored about a job's message, if the job exists.
    pub async fn message_state(&self, job_id: &str) -> Result<Option<MessageState>, StoreError> {
        Ok(self.job(job_id).await?.map(|job| MessageState {
            recipient: job.recipient,
            campaign: job.campaign,
            subscriber_id: job.subscriber_id,
            message_id: job.message_id,
            sent_at: job.sent_at,
        }))
    }

    /// The events kept for audit on one day (UTC), oldest first.
    pub async fn audits(&self, day: NaiveDate) -> Result<Vec<AuditRecord>, StoreError> {
        let pk = keys::audit_day_pk(day);
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .query_page(PageQuery {
                    sort_prefix: None,
                    limit: 1000,
                    cursor: cursor.as_deref(),
                    ..PageQuery::table(&pk, "")
                })
                .await?;
            out.extend(page.items.iter().map(|i| AuditRecord {
                kind: get_s(i, "kind").unwrap_or_default().to_owned(),
                record_type: get_s(i, "record_type").map(str::to_owned),
                body: get_s(i, "body").unwrap_or_default().to_owned(),
            }));
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// Records one event. Returns whether it was new, and the event as recorded (a native event gains its
    /// recipient and campaign from its message; a click may be flagged as automated).
    pub async fn record_event(&self, mut event: Event) -> Result<(Recorded, Event), StoreError> {
        let state = match (&event.recipient, &event.trace.job_id) {
            (None, Some(job)) => self.message_state(job).await?,
            _ => None,
        };
        enrich(&mut event, state.as_ref());
        let status = plan(&event).status;
        let (Some(recipient), Some(change)) = (event.recipient.clone(), status) else {
            return match self.write_record(&event, None).await? {
                Ok(recorded) => Ok((recorded, event)),
                Err(_) => Err(StoreError::Transient(
                    "a standing moved without a standing change".into(),
                )),
            };
        };
        for _ in 0..STANDING_ATTEMPTS {
            let read = self.stored_standing(&recipient).await?;
            let decision = standing::decide(&read.state, change, event.at);
            let write = StandingWrite {
                state: decision.state,
                read_version: read.version,
            };
            let standing = EventStanding {
                recipient: &recipient,
                write: decision.state_changed.then_some(&write),
                unchanged: !decision.changes_standing(),
            };
            match self.write_record(&event, Some(&standing)).await? {
                Ok(recorded) => return Ok((recorded, event)),
                Err(Contended::Standing) => continue,
                Err(Contended::JobNotSent) => self.job_not_sent(&mut event).await?,
            }
        }
        Err(StoreError::Transient(
            "the subscriber's standing kept changing; try again".into(),
        ))
    }

    /// A dropped message whose job is not recorded `sent`. While the sender has not recorded the job's
    /// outcome yet, the event waits (a transient error: Postmark posts it again later). A job that does
    /// not exist, or that ended otherwise, is not ours to fail: the event is recorded without it.
    async fn job_not_sent(&self, event: &mut Event) -> Result<(), StoreError> {
        let Some(id) = event.trace.job_id.clone() else {
            return Ok(());
        };
        match self.job(&id).await? {
            Some(job) if !job.status.is_some_and(|s| s.is_final()) => Err(StoreError::Transient(
                format!("the job {id} of a dropped message has no outcome yet").into(),
            )),
            _ => {
                tracing::warn!(job = %id, "a dropped message's job is not recorded sent; its job is left as it is");
                event.trace.job_id = None;
                Ok(())
            }
        }
    }

    /// Writes the event's record, and with it what else the event changes: the standing the domain
    /// decided, an activity entry beside a record of its own, an audit copy. One conditional put when
    /// there is nothing else; a transaction otherwise. A standing that moved since it was read is
    /// [`Contended`].
    async fn write_record(
        &self,
        event: &Event,
        standing: Option<&EventStanding<'_>>,
    ) -> Result<Result<Recorded, Contended>, StoreError> {
        let unchanged = standing.is_some_and(|s| s.unchanged);
        let text = serde_json::to_string(event)
            .map_err(|e| StoreError::Corrupt(format!("an event that cannot be stored: {e}")))?;
        let with_event = |mut item: Item, counts: bool| {
            item.insert("kind".into(), s(event.kind.name()));
            item.insert("at".into(), s(sortable_time(event.at)));
            item.insert("id".into(), s(&event.dedup_key));
            item.insert(EVENT.into(), s(&text));
            if counts {
                item.insert(
                    COUNTS.into(),
                    aws_sdk_dynamodb::types::AttributeValue::Bool(true),
                );
            }
            if unchanged {
                item.insert(
                    STANDING_UNCHANGED.into(),
                    aws_sdk_dynamodb::types::AttributeValue::Bool(true),
                );
            }
            item
        };
        let activity = event
            .recipient
            .as_ref()
            .map(|r| keys::activity_entry(r.key(), event.at, &event.dedup_key).into_item());
        let activity_dedups = activity.is_some() && key_fixes_time(&event.dedup_key);
        let mut rest: Vec<TransactWriteItem> = Vec::new();
        let record = match activity {
            Some(entry) if activity_dedups => with_event(entry, true),
            entry => {
                if let Some(entry) = entry {
                    rest.push(self.put_op(with_event(entry, false))?);
                }
                let mut item = with_event(keys::event_record(&event.dedup_key).into_item(), true);
                let expires = Utc::now() + Duration::days(DEDUP_DAYS);
                item.insert(TTL_ATTRIBUTE.into(), n(expires.timestamp()));
                item
            }
        };
        let mut profile_index = None;
        if let Some(st) = standing
            && let Some(write) = st.write
        {
            profile_index = Some(rest.len() + 1);
            rest.push(self.profile_update_op(st.recipient, write)?);
        }
        let mut job_index = None;
        if let Some(job) = event
            .trace
            .job_id
            .as_deref()
            .filter(|_| plan(event).fails_job)
        {
            job_index = Some(rest.len() + 1);
            let reason = "Postmark accepted the message over SMTP and dropped it: the recipient is \
                          suppressed in Postmark (SMTP API error)";
            rest.push(self.dropped_after_sent_op(job, reason, event.at)?);
        }
        if event.recipient.is_none() || matches!(event.kind, EventKind::Unknown { .. }) {
            rest.push(self.audit_op(event)?);
        }
        if rest.is_empty() {
            return self.put_record(record).await.map(Ok);
        }
        let mut items = vec![self.put_new_op(record)?];
        items.extend(rest);
        match self.transact(items).await {
            Ok(()) => Ok(Ok(Recorded::New)),
            Err(e) if e.condition_failed_at(0) => Ok(Ok(Recorded::Duplicate)),
            // Another change of this subscriber's standing came first: decide again on it.
            Err(e) if profile_index.is_some_and(|i| e.condition_failed_at(i)) => {
                Ok(Err(Contended::Standing))
            }
            Err(e) if job_index.is_some_and(|i| e.condition_failed_at(i)) => {
                Ok(Err(Contended::JobNotSent))
            }
            Err(e) => Err(e),
        }
    }

    /// The record's conditional put: any item under its key is the same event seen before (or this very
    /// write, when DynamoDB's answer to it was lost and the SDK sent it again: counted once either way,
    /// from the stream).
    async fn put_record(&self, record: Item) -> Result<Recorded, StoreError> {
        let result = self
            .client()
            .put_item()
            .table_name(self.name())
            .set_item(Some(record))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", crate::schema::PK)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Recorded::New),
            Err(e) => match crate::error::classify(e) {
                StoreError::ConditionFailed => Ok(Recorded::Duplicate),
                e => Err(e),
            },
        }
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
        let mut item = keys::audit_record(event.at, &event.dedup_key).into_item();
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

/// Why an event's transaction was refused by one of its other items.
enum Contended {
    /// The subscriber's standing moved between its read and the write.
    Standing,
    /// The job of a dropped message is not recorded `sent`.
    JobNotSent,
}

/// What the domain decided about the standing of an event's subscriber.
struct EventStanding<'a> {
    recipient: &'a EmailAddress,
    /// The standing to write, when the state moved.
    write: Option<&'a StandingWrite>,
    /// Whether the visible standing stayed as it was (the activity entry is marked when it did).
    unchanged: bool,
}
