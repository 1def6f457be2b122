//! The feed step: the batch's records that are outcomes the platform cares about become feed events
//! ([`domain::feed`]) and are published to the bus, at least once.
//!
//! - An event's counted record, inserted when the webhook function recorded the event (one record per
//!   event: a redelivered webhook inserts nothing), becomes the event's feed event.
//! - A job item whose status became `sent`, `failed` or `skipped` becomes the job's outcome. A job ends
//!   once; a later change of its item keeps its status and publishes nothing.
//!
//! Everything else (activity entries beside a record, counters, markers, subscribers, expiring records)
//! is not an outcome. A batch handed over again publishes the same events again, with the same ids.

use chrono::Utc;
use domain::feed::{EndedJob, FeedEvent, JobEnding};
use store::StoreError;
use store::feed::Published;
use store::jobs::{JobRecord, JobStatus};
use store::stream::{JobChange, StreamRecord};
use tracing::{info, warn};

use crate::App;

/// The feed events of a batch's records, in the records' order.
pub fn feed_events(records: &[StreamRecord]) -> Vec<FeedEvent> {
    records
        .iter()
        .filter_map(|r| recorded(r).or_else(|| job_ended(r)))
        .collect()
}

fn recorded(record: &StreamRecord) -> Option<FeedEvent> {
    let (event, standing_unchanged) = record.recorded_event()?;
    FeedEvent::from_event(&event, standing_unchanged)
}

fn job_ended(record: &StreamRecord) -> Option<FeedEvent> {
    let JobChange { job, before } = match record.job_change() {
        Ok(change) => change?,
        // A job item the store cannot read would fail every retry of the batch: it is left out.
        Err(e) => {
            warn!(error = %e, "a job item that cannot be read; its outcome is not published");
            return None;
        }
    };
    if before == job.status {
        return None;
    }
    let (ending, at) = match job.status? {
        JobStatus::Sent => (JobEnding::Sent, job.sent_at),
        JobStatus::Failed => (
            JobEnding::Failed {
                reason: job.reason.clone().unwrap_or_default(),
                error_code: job.error_code,
            },
            job.failed_at,
        ),
        JobStatus::Skipped => (
            JobEnding::Skipped {
                reason: job.reason.clone().unwrap_or_default(),
            },
            job.skipped_at,
        ),
        _ => return None,
    };
    Some(FeedEvent::from_job(&ended(job, ending, at)))
}

fn ended(job: JobRecord, ending: JobEnding, at: Option<chrono::DateTime<Utc>>) -> EndedJob {
    EndedJob {
        at: at.or(job.updated_at).unwrap_or_else(Utc::now),
        job_id: job.id,
        ending,
        recipient: job.recipient,
        subscriber_id: job.subscriber_id,
        message_id: job.message_id,
        email_type: job.email_type,
        campaign: job.campaign,
        stream: job.stream,
    }
}

/// Publishes the batch's feed events. Without a bus, nothing is published.
pub async fn publish(app: &App, records: &[StreamRecord]) -> Result<Published, StoreError> {
    let Some(publisher) = &app.feed else {
        return Ok(Published::default());
    };
    let events = feed_events(records);
    if events.is_empty() {
        return Ok(Published::default());
    }
    let published = publisher.publish(&events).await?;
    info!(
        accepted = published.accepted,
        left_out = published.left_out,
        "feed published"
    );
    Ok(published)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// A job item as the table's stream carries it.
    fn job(status: &str, updated_at: &str) -> Value {
        json!({
            "pk": {"S": "JOB#job-1"}, "sk": {"S": "JOB"}, "job_id": {"S": "job-1"},
            "status": {"S": status}, "recipient": {"S": "r@example.org"},
            "email_type": {"S": "broadcast"}, "message_id": {"S": "pm-1"},
            "sent_at": {"S": "2026-12-01T10:00:01Z"}, "updated_at": {"S": updated_at},
        })
    }

    fn modify(old: Value, new: Value) -> Value {
        json!({"eventID": "e", "eventName": "MODIFY", "dynamodb": {
            "Keys": {"pk": {"S": "JOB#job-1"}, "sk": {"S": "JOB"}},
            "SequenceNumber": "1", "OldImage": old, "NewImage": new,
        }})
    }

    fn types(records: Vec<Value>) -> Vec<&'static str> {
        let records = store::stream::parse_event(&json!({ "Records": records })).unwrap();
        feed_events(&records)
            .iter()
            .map(FeedEvent::type_name)
            .collect()
    }

    #[test]
    fn a_job_is_published_when_its_status_becomes_final_and_not_on_later_changes() {
        let claimed = job("sending", "2026-12-01T10:00:00Z");
        let sent = job("sent", "2026-12-01T10:00:01Z");
        let sent_later = job("sent", "2026-12-01T10:05:00Z");
        assert_eq!(types(vec![modify(claimed, sent.clone())]), ["email.sent"]);
        assert_eq!(
            types(vec![modify(sent, sent_later)]),
            Vec::<&str>::new(),
            "the same status again is the same outcome"
        );
        let retrying = job("retrying", "2026-12-01T10:00:01Z");
        assert!(
            types(vec![modify(
                job("sending", "2026-12-01T10:00:00Z"),
                retrying
            )])
            .is_empty()
        );
        let removed = json!({"eventID": "e", "eventName": "REMOVE", "dynamodb": {
            "Keys": {"pk": {"S": "JOB#job-1"}, "sk": {"S": "JOB"}},
            "SequenceNumber": "2", "OldImage": job("sent", "2026-12-01T10:00:01Z"),
        }});
        assert!(types(vec![removed]).is_empty());
    }
}
