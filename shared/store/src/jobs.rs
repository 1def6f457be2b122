//! Send jobs (`JOB#{id}` / `JOB`): the claim taken before a job is sent, its outcome after, and the
//! message state the webhook function keeps on the same item.
//!
//! A job item goes through these statuses:
//!
//! | status | meaning | attributes |
//! |---|---|---|
//! | `claimed` | a sender run owns it until `lease_until` (epoch seconds) | `claim_token`, `attempts`, `claimed_at` |
//! | `retrying` | the last attempt failed in a way worth retrying; SQS will deliver it again | `reason`, `error_code` |
//! | `sent` | Postmark accepted it | `message_id`, `sent_at`, `server_id`, `stream` |
//! | `skipped` | not sent: the recipient is suppressed or inactive | `reason` |
//! | `failed` | Postmark refused it for good | `reason`, `error_code`, `server_id`, `stream` |
//! | `rejected` | the job could not be read or is invalid | `reason`, `body` (raw, cut at 300 KB) |
//!
//! Every status carries `job_id`, `updated_at` and, once known, `recipient`, `email_type`,
//! `campaign_kind`/`campaign_id` and `subscriber_id`, which the webhook function reads. After the claim
//! every write is an update, never a put, so that what the webhook function wrote (`delivered_at`,
//! `last_event`, `events`, ...) is never lost. Failed and rejected jobs are also in the sparse index
//! `gsi1pk = JOBS#{status}`, `gsi1sk = {timestamp}#{job id}`, to be listed newest first.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, PutRequest, ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use chrono::{DateTime, Utc};
use domain::trace::Campaign;
use domain::{EmailAddress, EmailType, JobId};

use crate::activity::sortable_time;
use crate::error::{StoreError, classify};
use crate::events::job_key;
use crate::schema::{GSI1, GSI1_PK, GSI1_SK, PK};
use crate::table::{Item, Page, PageQuery, Table, get_n, get_s, n, s};

/// Largest raw body kept with a rejected job (DynamoDB items stop at 400 KB).
pub const MAX_REJECTED_BODY_BYTES: usize = 300 * 1024;
/// DynamoDB's limit of writes in one `BatchWriteItem`.
pub const BATCH_WRITE_LIMIT: usize = 25;
const BATCH_WRITE_ROUNDS: usize = 8;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    Claimed,
    Retrying,
    Sent,
    Skipped,
    Failed,
    Rejected,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Claimed => "claimed",
            Self::Retrying => "retrying",
            Self::Sent => "sent",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Claimed,
            Self::Retrying,
            Self::Sent,
            Self::Skipped,
            Self::Failed,
            Self::Rejected,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Whether the job is done with: nothing more will be sent for it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Sent | Self::Skipped | Self::Failed | Self::Rejected
        )
    }
}

/// The partition of the sparse index that lists jobs of a status.
pub fn status_index_pk(status: JobStatus) -> String {
    format!("JOBS#{}", status.as_str())
}

/// What a claim writes about the job: what the webhook function needs to trace its events.
#[derive(Debug, Clone)]
pub struct JobClaim<'a> {
    pub id: &'a JobId,
    /// Unique per attempt: later writes of the attempt are conditional on it.
    pub token: &'a str,
    pub recipient: &'a EmailAddress,
    pub email_type: EmailType,
    pub campaign: Option<&'a Campaign>,
    pub subscriber_id: Option<&'a str>,
    pub now: DateTime<Utc>,
    pub lease: Duration,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// This attempt owns the job.
    Owned,
    /// The job is done with (`sent`, `skipped`, `failed`, `rejected`).
    Done(JobStatus),
    /// Another attempt owns the job until `lease_until` (epoch seconds).
    Busy { lease_until: i64 },
}

/// How an owned job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Sent {
        message_id: Option<String>,
        server_id: String,
        stream: String,
    },
    Skipped {
        reason: String,
    },
    Failed {
        reason: String,
        error_code: Option<i64>,
        server_id: Option<String>,
        stream: Option<String>,
    },
    /// Not done: SQS delivers the job again, and the claim is released for that delivery.
    Retrying {
        reason: String,
        error_code: Option<i64>,
    },
}

impl JobOutcome {
    pub fn status(&self) -> JobStatus {
        match self {
            Self::Sent { .. } => JobStatus::Sent,
            Self::Skipped { .. } => JobStatus::Skipped,
            Self::Failed { .. } => JobStatus::Failed,
            Self::Retrying { .. } => JobStatus::Retrying,
        }
    }
}

/// A job that could not be read or is invalid, as it is recorded.
#[derive(Debug, Clone)]
pub struct Rejection<'a> {
    /// The job's id, or the SQS message id when the job's own could not be read.
    pub key_id: &'a str,
    pub sqs_message_id: &'a str,
    pub reason: &'a str,
    pub body: &'a str,
    pub at: DateTime<Utc>,
}

/// Cuts text to at most `max` bytes on a character boundary.
fn truncated(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

/// Builds an update expression from `SET` and `REMOVE` clauses with their values.
#[derive(Default)]
struct UpdateBuilder {
    set: Vec<String>,
    remove: Vec<&'static str>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl UpdateBuilder {
    fn set(&mut self, attribute: &'static str, value: AttributeValue) -> &mut Self {
        let placeholder = format!(":{attribute}");
        self.names
            .insert(format!("#{attribute}"), attribute.to_owned());
        self.set.push(format!("#{attribute} = {placeholder}"));
        self.values.insert(placeholder, value);
        self
    }

    fn set_opt(&mut self, attribute: &'static str, value: Option<AttributeValue>) -> &mut Self {
        match value {
            Some(v) => self.set(attribute, v),
            None => self,
        }
    }

    fn remove(&mut self, attribute: &'static str) -> &mut Self {
        self.names
            .insert(format!("#{attribute}"), attribute.to_owned());
        self.remove.push(attribute);
        self
    }

    fn expression(&self, extra: &str) -> String {
        let mut e = format!("SET {}", self.set.join(", "));
        if !self.remove.is_empty() {
            let removed: Vec<String> = self.remove.iter().map(|a| format!("#{a}")).collect();
            e.push_str(&format!(" REMOVE {}", removed.join(", ")));
        }
        e.push_str(extra);
        e
    }
}

impl Table {
    /// Claims a job for one attempt: a conditional update that succeeds when the job is new, waits for a
    /// retry, was claimed by an attempt whose lease has run out (a crashed run), or was rejected (a
    /// producer sending a corrected job under the same id). An item without a status holds only what
    /// webhook events wrote, never a claim of ours: it is claimable too.
    pub async fn claim_job(&self, claim: &JobClaim<'_>) -> Result<Claimed, StoreError> {
        let now_secs = claim.now.timestamp();
        let lease_until = now_secs + i64::try_from(claim.lease.as_secs()).unwrap_or(i64::MAX / 2);
        let at = sortable_time(claim.now);
        let mut u = UpdateBuilder::default();
        u.set("status", s(JobStatus::Claimed.as_str()))
            .set("claim_token", s(claim.token))
            .set("lease_until", n(lease_until))
            .set("claimed_at", s(&at))
            .set("updated_at", s(&at))
            .set("job_id", s(claim.id.as_str()))
            .set("recipient", s(claim.recipient.as_str()))
            .set("email_type", s(claim.email_type.as_str()))
            .set_opt("campaign_kind", claim.campaign.map(|c| s(c.kind.as_str())))
            .set_opt("campaign_id", claim.campaign.map(|c| s(&c.id)))
            .set_opt("subscriber_id", claim.subscriber_id.map(s));
        // What a rejection of an earlier, invalid body under the same id left.
        for attribute in [
            "body",
            "body_truncated",
            "rejected_at",
            "sqs_message_id",
            GSI1_PK,
            GSI1_SK,
        ] {
            u.remove(attribute);
        }
        u.names.insert("#pk".into(), PK.into());
        u.names.insert("#attempts".into(), "attempts".into());
        u.values.insert(":one".into(), n(1));
        u.values
            .insert(":retrying".into(), s(JobStatus::Retrying.as_str()));
        u.values
            .insert(":rejected".into(), s(JobStatus::Rejected.as_str()));
        u.values
            .insert(":claimed".into(), s(JobStatus::Claimed.as_str()));
        u.values.insert(":now".into(), n(now_secs));
        let result = self
            .client()
            .update_item()
            .table_name(self.name())
            .set_key(Some(job_key(claim.id.as_str())))
            .update_expression(u.expression(" ADD #attempts :one"))
            .condition_expression(
                "attribute_not_exists(#pk) OR attribute_not_exists(#status) \
                 OR #status IN (:retrying, :rejected) \
                 OR (#status = :claimed AND #lease_until < :now)",
            )
            .set_expression_attribute_names(Some(u.names))
            .set_expression_attribute_values(Some(u.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Claimed::Owned),
            Err(e) => e,
        };
        let old = err.as_service_error().and_then(|e| match e {
            UpdateItemError::ConditionalCheckFailedException(c) => c.item().cloned(),
            _ => None,
        });
        match classify(err) {
            StoreError::ConditionFailed => {}
            other => return Err(other),
        }
        // Emulators may not return the item with the refusal; read it then.
        let item = match old {
            Some(item) => Some(item),
            None => self.get(job_key(claim.id.as_str()), true).await?,
        };
        let item = item.unwrap_or_default();
        Ok(match get_s(&item, "status").and_then(JobStatus::parse) {
            Some(JobStatus::Claimed) => Claimed::Busy {
                lease_until: get_n(&item, "lease_until"),
            },
            Some(status) if status.is_final() && status != JobStatus::Rejected => {
                Claimed::Done(status)
            }
            // Retrying again, or an item with no status of ours (written by events only): a concurrent
            // attempt changed it between our write and our read; let SQS come back.
            _ => Claimed::Busy {
                lease_until: now_secs,
            },
        })
    }

    /// Records how an owned job ended. Returns false when the claim was lost meanwhile (the lease ran
    /// out and another attempt took the job): then nothing is written.
    pub async fn record_job_outcome(
        &self,
        id: &JobId,
        token: &str,
        outcome: &JobOutcome,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let time = sortable_time(at);
        let mut u = UpdateBuilder::default();
        u.set("status", s(outcome.status().as_str()))
            .set("updated_at", s(&time))
            .remove("lease_until");
        match outcome {
            JobOutcome::Sent {
                message_id,
                server_id,
                stream,
            } => {
                u.set("sent_at", s(&time))
                    .set("server_id", s(server_id))
                    .set("stream", s(stream))
                    .set_opt("message_id", message_id.as_deref().map(s))
                    .remove("reason")
                    .remove("error_code");
            }
            JobOutcome::Skipped { reason } => {
                u.set("skipped_at", s(&time)).set("reason", s(reason));
            }
            JobOutcome::Failed {
                reason,
                error_code,
                server_id,
                stream,
            } => {
                u.set("failed_at", s(&time))
                    .set("reason", s(reason))
                    .set_opt("error_code", error_code.map(n))
                    .set_opt("server_id", server_id.as_deref().map(s))
                    .set_opt("stream", stream.as_deref().map(s))
                    .set(GSI1_PK, s(status_index_pk(JobStatus::Failed)))
                    .set(GSI1_SK, s(format!("{time}#{id}")));
            }
            JobOutcome::Retrying { reason, error_code } => {
                u.set("reason", s(reason))
                    .set_opt("error_code", error_code.map(n));
                if error_code.is_none() {
                    u.remove("error_code");
                }
            }
        }
        u.names.insert("#claim_token".into(), "claim_token".into());
        u.values.insert(":token".into(), s(token));
        u.values
            .insert(":claimed".into(), s(JobStatus::Claimed.as_str()));
        let result = self
            .client()
            .update_item()
            .table_name(self.name())
            .set_key(Some(job_key(id.as_str())))
            .update_expression(u.expression(""))
            .condition_expression("#claim_token = :token AND #status = :claimed")
            .set_expression_attribute_names(Some(u.names))
            .set_expression_attribute_values(Some(u.values))
            .send()
            .await
            .map_err(classify);
        match result {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Records a job that could not be read or is invalid, with its reason and raw body. A job item
    /// that already exists with another status is left as it is (it belongs to a job that was read);
    /// then the rejection is recorded under the SQS message id instead. Returns the id it was recorded
    /// under.
    pub async fn record_rejected_job(&self, r: &Rejection<'_>) -> Result<String, StoreError> {
        let first = self.put_rejection(r, r.key_id).await?;
        if first || r.key_id == r.sqs_message_id {
            return Ok(r.key_id.to_owned());
        }
        self.put_rejection(r, r.sqs_message_id).await?;
        Ok(r.sqs_message_id.to_owned())
    }

    async fn put_rejection(&self, r: &Rejection<'_>, key_id: &str) -> Result<bool, StoreError> {
        let time = sortable_time(r.at);
        let body = truncated(r.body, MAX_REJECTED_BODY_BYTES);
        let mut item = job_key(key_id);
        for (name, value) in [
            ("job_id", s(key_id)),
            ("status", s(JobStatus::Rejected.as_str())),
            ("reason", s(r.reason)),
            ("body", s(body)),
            (
                "body_truncated",
                AttributeValue::Bool(body.len() < r.body.len()),
            ),
            ("sqs_message_id", s(r.sqs_message_id)),
            ("rejected_at", s(&time)),
            ("updated_at", s(&time)),
            (GSI1_PK, s(status_index_pk(JobStatus::Rejected))),
            (GSI1_SK, s(format!("{time}#{key_id}"))),
        ] {
            item.insert(name.to_owned(), value);
        }
        let result = self
            .client()
            .put_item()
            .table_name(self.name())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk) OR #status = :rejected")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":rejected", s(JobStatus::Rejected.as_str()))
            .send()
            .await
            .map_err(classify);
        match result {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Failed or rejected jobs, newest first.
    pub async fn jobs_with_status(
        &self,
        status: JobStatus,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Item>, StoreError> {
        let pk = status_index_pk(status);
        self.query_page(PageQuery {
            index: Some(GSI1),
            partition_attr: GSI1_PK,
            partition: &pk,
            sort_attr: GSI1_SK,
            sort_prefix: None,
            newest_first: true,
            limit,
            cursor,
        })
        .await
    }

    /// Writes new items (that replace nothing of value: activity entries) 25 per request, asking again
    /// for what DynamoDB left unprocessed.
    pub async fn batch_put(&self, items: Vec<Item>) -> Result<(), StoreError> {
        for chunk in items.chunks(BATCH_WRITE_LIMIT) {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    PutRequest::builder()
                        .set_item(Some(item.clone()))
                        .build()
                        .map(|put| WriteRequest::builder().put_request(put).build())
                        .map_err(StoreError::build)
                })
                .collect::<Result<_, _>>()?;
            for round in 0.. {
                if pending.is_empty() {
                    break;
                }
                if round == BATCH_WRITE_ROUNDS {
                    return Err(StoreError::Transient(
                        "writes left unprocessed after repeated batched writes".into(),
                    ));
                }
                if round > 0 {
                    tokio::time::sleep(Duration::from_millis(20 << round)).await;
                }
                let out = self
                    .client()
                    .batch_write_item()
                    .request_items(self.name(), std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(classify)?;
                if let Some(mut left) = out.unprocessed_items {
                    pending = left.remove(self.name()).unwrap_or_default();
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncated("héllo", 2), "h");
        assert_eq!(truncated("héllo", 3), "hé");
        assert_eq!(truncated("abc", 10), "abc");
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            JobStatus::Claimed,
            JobStatus::Retrying,
            JobStatus::Sent,
            JobStatus::Skipped,
            JobStatus::Failed,
            JobStatus::Rejected,
        ] {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
        }
        assert!(!JobStatus::Retrying.is_final());
        assert!(JobStatus::Rejected.is_final());
    }
}
