//! Send jobs (`JOB#{id}` / `JOB`): the claim taken before a job is sent, and its outcome after.
//!
//! A job item goes through these statuses:
//!
//! | status | meaning | attributes |
//! |---|---|---|
//! | `claimed` | a sender run owns it until `lease_until` (epoch seconds), to decide it (skip) | `claim_token`, `attempts`, `claimed_at` |
//! | `sending` | a sender run owns it until `lease_until` and is calling Postmark with it | as `claimed`, plus `pending_sends` |
//! | `unknown` | the last call may have reached Postmark (timeout, reset, 502/504, unreadable answer) | `reason`, `pending_sends` |
//! | `retrying` | the last attempt failed in a way worth retrying; SQS will deliver it again | `reason`, `error_code` |
//! | `sent` | Postmark accepted it | `message_id`, `sent_at`, `server_id`, `stream` |
//! | `skipped` | not sent: the recipient is suppressed or inactive | `reason` |
//! | `failed` | Postmark refused it for good | `reason`, `error_code`, `server_id`, `stream` |
//! | `rejected` | the job could not be read or is invalid | `reason`, `body` (raw, cut at 300 KB) |
//!
//! `pending_sends` lists every Postmark call the job was handed to (`server_id`, `stream`, `send_id`, `at`); every
//! message carries its call's `send_id` in its metadata. A job found `sending` with its lease run out,
//! or `unknown`, is looked up in Postmark by those ids before it is sent again (see the sender).
//!
//! Every status carries `job_id`, `updated_at` and, once known, `recipient`, `email_type`,
//! `campaign_kind`/`campaign_id` and `subscriber_id`, and once sent `sent_at`: what the webhook function
//! reads to complete a native open or click (see [`crate::events`]). Failed and rejected jobs are also in
//! the sparse index `gsi1pk = JOBS#{status}`, `gsi1sk = {timestamp}#{job id}`, to be listed newest first.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use chrono::{DateTime, Utc};
use domain::stats::Counter;
use domain::trace::{Campaign, CampaignKind};
use domain::{EmailAddress, EmailType, JobId};
use futures::StreamExt;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::activity::sortable_time;
use domain::text::{MAX_REASON_CHARS, cap};

use crate::error::{StoreError, applied, classify, classify_transaction};
use crate::schema::{GSI1, GSI1_PK, GSI1_SK, PK, keys};
use crate::table::{Item, Page, PageQuery, Table, get_bool, get_n, get_s, n, s};

/// Largest raw body kept with a rejected job (DynamoDB items stop at 400 KB).
pub const MAX_REJECTED_BODY_BYTES: usize = 300 * 1024;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    Claimed,
    /// Claimed by an attempt that is about to call Postmark, or is calling it.
    Sending,
    Retrying,
    /// The last call may or may not have reached Postmark; looked up before any new send.
    Unknown,
    Sent,
    Skipped,
    Failed,
    Rejected,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Claimed => "claimed",
            Self::Sending => "sending",
            Self::Retrying => "retrying",
            Self::Unknown => "unknown",
            Self::Sent => "sent",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Claimed,
            Self::Sending,
            Self::Retrying,
            Self::Unknown,
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

impl Serialize for JobStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

fn job_key(id: &str) -> Item {
    keys::job(id).into_item()
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
    /// `Some` when the attempt means to send: the job is then `sending` from the claim on, so that an
    /// attempt that dies after its Postmark call leaves a job whose outcome is looked up in Postmark
    /// before it is ever sent again.
    pub send: Option<&'a SendAttempt>,
}

/// One Postmark call a job goes out in: its server and stream, and the `send_id` the call's messages
/// carry in their metadata, so that one search by metadata finds every message of the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendAttempt {
    pub server_id: String,
    pub stream: String,
    pub send_id: String,
    /// The latest time Postmark can have accepted a message of the call: the end of the claims' lease
    /// while the call may still run, the call's end once it has ended.
    pub at: DateTime<Utc>,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// This attempt owns the job. `unresolved` lists the earlier calls that may have delivered it (the
    /// job was left `sending` by an attempt that died, or its call ended ambiguously): they must be
    /// looked up in Postmark before the job is sent again.
    Owned { unresolved: Vec<SendAttempt> },
    /// The job is done with (`sent`, `skipped`, `failed`, `rejected`).
    Done(JobStatus),
    /// Another attempt owns the job until `lease_until` (epoch seconds).
    Busy { lease_until: i64 },
}

impl Claimed {
    /// A claim with nothing to look up first.
    pub fn owned() -> Self {
        Self::Owned {
            unresolved: Vec::new(),
        }
    }
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
    /// Not done, and Postmark may have accepted it (a timeout or a reset after the request, a 502/504, an
    /// unreadable answer), or an earlier call that may have could not be looked up yet: the next attempt
    /// looks `pending` up in Postmark before sending.
    Unknown {
        reason: String,
        pending: Vec<SendAttempt>,
    },
}

impl JobOutcome {
    pub fn status(&self) -> JobStatus {
        match self {
            Self::Sent { .. } => JobStatus::Sent,
            Self::Skipped { .. } => JobStatus::Skipped,
            Self::Failed { .. } => JobStatus::Failed,
            Self::Retrying { .. } => JobStatus::Retrying,
            Self::Unknown { .. } => JobStatus::Unknown,
        }
    }
}

/// One owned job's outcome, with the campaign counter it moves.
#[derive(Debug, Clone)]
pub struct OutcomeWrite<'a> {
    pub id: &'a JobId,
    pub token: &'a str,
    pub outcome: JobOutcome,
    /// The campaign whose `sent`/`failed`/`skipped` counter this outcome adds one to.
    pub campaign: Option<&'a Campaign>,
}

/// What became of an outcome write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeRecorded {
    /// Written (or found written by this attempt: a write whose answer was lost and that was sent again).
    Written,
    /// The claim was lost meanwhile (the lease ran out and another attempt took the job): nothing written.
    ClaimLost,
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

/// A job as its record shows it: what the job is, where it stands and how it ended. The sender's
/// bookkeeping (the claim's token and lease, the calls that may hold the job) stays in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// The job's id, or the SQS message id of a job whose own could not be read.
    pub id: String,
    /// `None` for an item that no attempt of ours has written yet.
    pub status: Option<JobStatus>,
    pub recipient: Option<EmailAddress>,
    pub email_type: Option<EmailType>,
    pub campaign: Option<Campaign>,
    pub subscriber_id: Option<String>,
    /// The server and stream the job went out on (or was refused on).
    pub server_id: Option<String>,
    pub stream: Option<String>,
    /// Postmark's MessageID of the sent message.
    pub message_id: Option<String>,
    /// Why the job was skipped, failed, rejected or is retried.
    pub reason: Option<String>,
    /// Postmark's ErrorCode of a refusal.
    pub error_code: Option<i64>,
    /// Claims taken on the job, one per delivery that decided or sent it.
    pub attempts: i64,
    pub claimed_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub skipped_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub rejected_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    /// A rejected job's body as it came (cut at [`MAX_REJECTED_BODY_BYTES`]), whether it was cut, and
    /// the SQS message it came in.
    pub body: Option<String>,
    pub body_truncated: Option<bool>,
    pub sqs_message_id: Option<String>,
}

fn job_time(item: &Item, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    get_s(item, name)
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| StoreError::Corrupt(format!("job {name}: {e}")))
        })
        .transpose()
}

fn parsed<T: std::str::FromStr>(item: &Item, name: &str) -> Result<Option<T>, StoreError>
where
    T::Err: std::fmt::Display,
{
    get_s(item, name)
        .map(|text| {
            text.parse()
                .map_err(|e| StoreError::Corrupt(format!("job {name}: {e}")))
        })
        .transpose()
}

impl JobRecord {
    pub(crate) fn from_item(item: &Item) -> Result<Self, StoreError> {
        let text = |name: &str| get_s(item, name).map(str::to_owned);
        // Only an item that webhook events wrote before any claim lacks `job_id`: its key holds the id.
        let empty = keys::job("");
        let id = text("job_id")
            .or_else(|| {
                get_s(item, PK)
                    .and_then(|pk| pk.strip_prefix(empty.pk.as_str()))
                    .map(str::to_owned)
            })
            .ok_or_else(|| StoreError::Corrupt("a job item without its id".into()))?;
        let status = match get_s(item, "status") {
            Some(s) => Some(
                JobStatus::parse(s)
                    .ok_or_else(|| StoreError::Corrupt(format!("job status {s:?}")))?,
            ),
            None => None,
        };
        let campaign = match (
            parsed::<CampaignKind>(item, "campaign_kind")?,
            text("campaign_id"),
        ) {
            (Some(kind), Some(id)) => Some(Campaign { kind, id }),
            _ => None,
        };
        Ok(Self {
            id,
            status,
            recipient: get_s(item, "recipient")
                .map(EmailAddress::parse)
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("job recipient: {e}")))?,
            email_type: parsed(item, "email_type")?,
            campaign,
            subscriber_id: text("subscriber_id"),
            server_id: text("server_id"),
            stream: text("stream"),
            message_id: text("message_id"),
            reason: text("reason"),
            error_code: item
                .contains_key("error_code")
                .then(|| get_n(item, "error_code")),
            attempts: get_n(item, "attempts"),
            claimed_at: job_time(item, "claimed_at")?,
            sent_at: job_time(item, "sent_at")?,
            skipped_at: job_time(item, "skipped_at")?,
            failed_at: job_time(item, "failed_at")?,
            rejected_at: job_time(item, "rejected_at")?,
            updated_at: job_time(item, "updated_at")?,
            body: text("body"),
            body_truncated: get_bool(item, "body_truncated"),
            sqs_message_id: text("sqs_message_id"),
        })
    }
}

/// The record as the config API publishes it: every field it has, times as the table keeps them, the
/// campaign as `campaign_kind` and `campaign_id`.
impl Serialize for JobRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("attempts", &self.attempts)?;
        let texts = [
            ("status", self.status.map(JobStatus::as_str)),
            (
                "recipient",
                self.recipient.as_ref().map(EmailAddress::as_str),
            ),
            ("email_type", self.email_type.map(EmailType::as_str)),
            (
                "campaign_kind",
                self.campaign.as_ref().map(|c| c.kind.as_str()),
            ),
            ("campaign_id", self.campaign.as_ref().map(|c| c.id.as_str())),
            ("subscriber_id", self.subscriber_id.as_deref()),
            ("server_id", self.server_id.as_deref()),
            ("stream", self.stream.as_deref()),
            ("message_id", self.message_id.as_deref()),
            ("reason", self.reason.as_deref()),
            ("body", self.body.as_deref()),
            ("sqs_message_id", self.sqs_message_id.as_deref()),
        ];
        for (name, value) in texts {
            if let Some(value) = value {
                map.serialize_entry(name, value)?;
            }
        }
        let times = [
            ("claimed_at", self.claimed_at),
            ("sent_at", self.sent_at),
            ("skipped_at", self.skipped_at),
            ("failed_at", self.failed_at),
            ("rejected_at", self.rejected_at),
            ("updated_at", self.updated_at),
        ];
        for (name, at) in times {
            if let Some(at) = at {
                map.serialize_entry(name, &sortable_time(at))?;
            }
        }
        if let Some(code) = self.error_code {
            map.serialize_entry("error_code", &code)?;
        }
        if let Some(cut) = self.body_truncated {
            map.serialize_entry("body_truncated", &cut)?;
        }
        map.end()
    }
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

/// Attributes of a job item that only the sender's bookkeeping reads: the calls that may hold the job, the
/// claim's token and its lease.
const PENDING_SENDS: &str = "pending_sends";
const CLAIM_TOKEN: &str = "claim_token";
const LEASE_UNTIL: &str = "lease_until";
/// Outcome updates per transaction, with room for the campaign counter (DynamoDB allows 100 items).
const OUTCOMES_PER_TRANSACTION: usize = 99;

fn send_attempt_value(send: &SendAttempt) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("server_id".to_owned(), s(&send.server_id)),
        ("stream".to_owned(), s(&send.stream)),
        ("send_id".to_owned(), s(&send.send_id)),
        ("at".to_owned(), s(sortable_time(send.at))),
    ]))
}

fn send_attempts_value(sends: &[SendAttempt]) -> AttributeValue {
    AttributeValue::L(sends.iter().map(send_attempt_value).collect())
}

/// The calls a job item lists as possibly delivered.
fn pending_sends(item: &Item) -> Vec<SendAttempt> {
    let Some(AttributeValue::L(list)) = item.get(PENDING_SENDS) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|v| v.as_m().ok())
        .filter_map(|m| {
            let text = |name: &str| m.get(name).and_then(|v| v.as_s().ok()).cloned();
            Some(SendAttempt {
                server_id: text("server_id")?,
                stream: text("stream")?,
                send_id: text("send_id")?,
                at: text("at")
                    .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                    .map(|t| t.with_timezone(&Utc))?,
            })
        })
        .collect()
}

/// The campaign counter an outcome adds one to.
fn outcome_counter(outcome: &JobOutcome) -> Option<Counter> {
    match outcome {
        JobOutcome::Sent { .. } => Some(Counter::Sent),
        JobOutcome::Failed { .. } => Some(Counter::Failed),
        JobOutcome::Skipped { .. } => Some(Counter::Skipped),
        JobOutcome::Retrying { .. } | JobOutcome::Unknown { .. } => None,
    }
}

/// Every outcome of a transaction that went through is written, but those left out for a lost claim.
fn written_unless_lost(lost: &[bool]) -> Vec<Result<OutcomeRecorded, StoreError>> {
    lost.iter()
        .map(|l| {
            Ok(if *l {
                OutcomeRecorded::ClaimLost
            } else {
                OutcomeRecorded::Written
            })
        })
        .collect()
}

/// A transaction's idempotency token: the same writes give the same token, so that DynamoDB answers a
/// transaction sent again after a lost answer without applying it twice.
fn request_token(writes: &[&OutcomeWrite<'_>]) -> String {
    let mut h = Sha256::new();
    for w in writes {
        h.update(w.id.as_str().as_bytes());
        h.update([0]);
        h.update(w.token.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    digest.iter().take(18).map(|b| format!("{b:02x}")).collect()
}

impl Table {
    /// Claims a job for one attempt: a conditional update that succeeds when the job is new, waits for a
    /// retry, is `unknown`, was claimed by an attempt whose lease has run out (a crashed run), was
    /// rejected (a producer sending a corrected job under the same id), or was claimed by this very
    /// attempt (the claim's answer was lost and the claim sent again). An item without a status holds
    /// only what webhook events wrote, never a claim of ours: it is claimable too.
    ///
    /// The calls listed in the item's `pending_sends` before this claim come back as
    /// [`Claimed::Owned`]'s `unresolved`: an earlier attempt handed the job to them and nobody knows yet
    /// whether Postmark accepted it.
    pub async fn claim_job(&self, claim: &JobClaim<'_>) -> Result<Claimed, StoreError> {
        let now_secs = claim.now.timestamp();
        let lease_until = now_secs + i64::try_from(claim.lease.as_secs()).unwrap_or(i64::MAX / 2);
        let at = sortable_time(claim.now);
        let status = if claim.send.is_some() {
            JobStatus::Sending
        } else {
            JobStatus::Claimed
        };
        let mut u = UpdateBuilder::default();
        u.set("status", s(status.as_str()))
            .set(CLAIM_TOKEN, s(claim.token))
            .set(LEASE_UNTIL, n(lease_until))
            .set("claimed_at", s(&at))
            .set("updated_at", s(&at))
            .set("job_id", s(claim.id.as_str()))
            .set("recipient", s(claim.recipient.as_str()))
            .set("email_type", s(claim.email_type.as_str()))
            .set_opt("campaign_kind", claim.campaign.map(|c| s(c.kind.as_str())))
            .set_opt("campaign_id", claim.campaign.map(|c| s(&c.id)))
            .set_opt("subscriber_id", claim.subscriber_id.map(s));
        if let Some(send) = claim.send {
            u.names
                .insert(format!("#{PENDING_SENDS}"), PENDING_SENDS.into());
            u.set.push(format!(
                "#{PENDING_SENDS} = list_append(if_not_exists(#{PENDING_SENDS}, :no_sends), :this_send)"
            ));
            u.values
                .insert(":no_sends".into(), AttributeValue::L(Vec::new()));
            u.values.insert(
                ":this_send".into(),
                AttributeValue::L(vec![send_attempt_value(send)]),
            );
        }
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
        u.values.insert(":token".into(), s(claim.token));
        for st in [
            JobStatus::Retrying,
            JobStatus::Rejected,
            JobStatus::Unknown,
            JobStatus::Claimed,
            JobStatus::Sending,
        ] {
            u.values.insert(format!(":{}", st.as_str()), s(st.as_str()));
        }
        u.values.insert(":now".into(), n(now_secs));
        let result = self
            .client()
            .update_item()
            .table_name(self.name())
            .set_key(Some(job_key(claim.id.as_str())))
            .update_expression(u.expression(" ADD #attempts :one"))
            .condition_expression(
                "attribute_not_exists(#pk) OR attribute_not_exists(#status) \
                 OR #status IN (:retrying, :rejected, :unknown) \
                 OR (#status IN (:claimed, :sending) AND #lease_until < :now) \
                 OR #claim_token = :token",
            )
            .set_expression_attribute_names(Some(u.names))
            .set_expression_attribute_values(Some(u.values))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match result {
            Ok(out) => {
                let old = out.attributes.unwrap_or_default();
                let mut unresolved = pending_sends(&old);
                if get_s(&old, CLAIM_TOKEN) == Some(claim.token)
                    && let Some(send) = claim.send
                {
                    // This claim was applied before (its answer was lost): its own call is not earlier.
                    unresolved.retain(|p| p.send_id != send.send_id);
                }
                return Ok(Claimed::Owned { unresolved });
            }
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
            Some(JobStatus::Claimed | JobStatus::Sending) => Claimed::Busy {
                lease_until: get_n(&item, LEASE_UNTIL),
            },
            Some(status) if status.is_final() && status != JobStatus::Rejected => {
                Claimed::Done(status)
            }
            // Retrying or unknown again, or an item with no status of ours (written by events only): a
            // concurrent attempt changed it between our write and our read; let SQS come back.
            _ => Claimed::Busy {
                lease_until: now_secs,
            },
        })
    }

    /// The update that records an owned job's outcome, conditional on the claim still being this
    /// attempt's.
    fn outcome_update(
        &self,
        id: &JobId,
        token: &str,
        outcome: &JobOutcome,
        at: DateTime<Utc>,
    ) -> (Item, UpdateBuilder) {
        let time = sortable_time(at);
        let mut u = UpdateBuilder::default();
        u.set("status", s(outcome.status().as_str()))
            .set("updated_at", s(&time))
            .remove(LEASE_UNTIL);
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
                    .remove("error_code")
                    .remove(PENDING_SENDS);
            }
            JobOutcome::Skipped { reason } => {
                u.set("skipped_at", s(&time))
                    .set("reason", s(cap(reason, MAX_REASON_CHARS)))
                    .remove(PENDING_SENDS);
            }
            JobOutcome::Failed {
                reason,
                error_code,
                server_id,
                stream,
            } => {
                u.set("failed_at", s(&time))
                    .set("reason", s(cap(reason, MAX_REASON_CHARS)))
                    .set_opt("error_code", error_code.map(n))
                    .set_opt("server_id", server_id.as_deref().map(s))
                    .set_opt("stream", stream.as_deref().map(s))
                    .remove(PENDING_SENDS);
                for (attribute, value) in
                    keys::job_listed(JobStatus::Failed, at, id.as_str()).attributes()
                {
                    u.set(attribute, value);
                }
            }
            JobOutcome::Retrying { reason, error_code } => {
                // Nothing this attempt handed to Postmark can have been accepted, and whatever earlier
                // attempts left pending was looked up before this one sent: nothing is pending now.
                u.set("reason", s(cap(reason, MAX_REASON_CHARS)))
                    .set_opt("error_code", error_code.map(n))
                    .remove(PENDING_SENDS);
                if error_code.is_none() {
                    u.remove("error_code");
                }
            }
            JobOutcome::Unknown { reason, pending } => {
                u.set("reason", s(cap(reason, MAX_REASON_CHARS)))
                    .set(PENDING_SENDS, send_attempts_value(pending))
                    .remove("error_code");
            }
        }
        u.names.insert("#claim_token".into(), CLAIM_TOKEN.into());
        u.values.insert(":token".into(), s(token));
        u.values
            .insert(":claimed".into(), s(JobStatus::Claimed.as_str()));
        u.values
            .insert(":sending".into(), s(JobStatus::Sending.as_str()));
        (job_key(id.as_str()), u)
    }

    const OUTCOME_CONDITION: &'static str =
        "#claim_token = :token AND #status IN (:claimed, :sending)";

    /// Whether the job item shows this attempt's outcome already written (a write sent again after its
    /// answer was lost finds its own result).
    async fn outcome_applied(
        &self,
        id: &JobId,
        token: &str,
        outcome: &JobOutcome,
    ) -> Result<bool, StoreError> {
        let item = self.get(job_key(id.as_str()), true).await?;
        Ok(item.is_some_and(|i| {
            get_s(&i, CLAIM_TOKEN) == Some(token)
                && get_s(&i, "status") == Some(outcome.status().as_str())
        }))
    }

    /// The update that ends a job recorded `sent` as failed, because Postmark dropped its message after
    /// accepting it (see [`domain::events::Plan::fails_job`]); conditional on the job being `sent`.
    pub(crate) fn dropped_after_sent_op(
        &self,
        job_id: &str,
        reason: &str,
        at: DateTime<Utc>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut u = UpdateBuilder::default();
        u.set("status", s(JobStatus::Failed.as_str()))
            .set("updated_at", s(sortable_time(at)))
            .set("failed_at", s(sortable_time(at)))
            .set("reason", s(cap(reason, MAX_REASON_CHARS)));
        for (attribute, value) in keys::job_listed(JobStatus::Failed, at, job_id).attributes() {
            u.set(attribute, value);
        }
        u.values.insert(":was".into(), s(JobStatus::Sent.as_str()));
        self.update_op(
            job_key(job_id),
            &u.expression(""),
            Some("#status = :was"),
            u.names,
            u.values,
        )
    }

    /// Records how an owned job ended, on its own (no campaign counter).
    pub async fn record_job_outcome(
        &self,
        id: &JobId,
        token: &str,
        outcome: &JobOutcome,
        at: DateTime<Utc>,
    ) -> Result<OutcomeRecorded, StoreError> {
        let (key, u) = self.outcome_update(id, token, outcome, at);
        let result = self
            .client()
            .update_item()
            .table_name(self.name())
            .set_key(Some(key))
            .update_expression(u.expression(""))
            .condition_expression(Self::OUTCOME_CONDITION)
            .set_expression_attribute_names(Some(u.names))
            .set_expression_attribute_values(Some(u.values))
            .send()
            .await
            .map_err(classify);
        match result {
            Ok(_) => Ok(OutcomeRecorded::Written),
            Err(StoreError::ConditionFailed) => {
                if self.outcome_applied(id, token, outcome).await? {
                    Ok(OutcomeRecorded::Written)
                } else {
                    Ok(OutcomeRecorded::ClaimLost)
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Records the outcomes of owned jobs. Each outcome that moves a campaign counter is written in one
    /// transaction with that counter (up to 99 outcomes and one counter update per transaction), so that
    /// a job is counted exactly when its outcome is recorded, whatever fails in between; the others are
    /// single conditional updates. One answer per write, in order.
    pub async fn record_outcomes(
        &self,
        writes: &[OutcomeWrite<'_>],
        at: DateTime<Utc>,
    ) -> Vec<Result<OutcomeRecorded, StoreError>> {
        let mut answers: Vec<Option<Result<OutcomeRecorded, StoreError>>> =
            (0..writes.len()).map(|_| None).collect();
        let mut by_campaign: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
        let mut single = Vec::new();
        for (i, w) in writes.iter().enumerate() {
            match (w.campaign, outcome_counter(&w.outcome)) {
                (Some(c), Some(_)) => by_campaign
                    .entry((c.kind.as_str(), c.id.as_str()))
                    .or_default()
                    .push(i),
                _ => single.push(i),
            }
        }
        let chunks: Vec<Vec<usize>> = by_campaign
            .into_values()
            .flat_map(|ix| {
                ix.chunks(OUTCOMES_PER_TRANSACTION)
                    .map(<[usize]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .collect();
        let grouped: Vec<Vec<(usize, Result<OutcomeRecorded, StoreError>)>> =
            futures::stream::iter(chunks)
                .map(|chunk| async move {
                    let outcomes = self.record_counted(writes, &chunk, at).await;
                    chunk.into_iter().zip(outcomes).collect()
                })
                .buffer_unordered(8)
                .collect()
                .await;
        for (i, r) in grouped.into_iter().flatten() {
            answers[i] = Some(r);
        }
        let singles: Vec<(usize, Result<OutcomeRecorded, StoreError>)> =
            futures::stream::iter(single)
                .map(|i| async move {
                    let w = &writes[i];
                    (
                        i,
                        self.record_job_outcome(w.id, w.token, &w.outcome, at).await,
                    )
                })
                .buffer_unordered(32)
                .collect()
                .await;
        for (i, r) in singles {
            answers[i] = Some(r);
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(StoreError::Other("outcome not written".into()))))
            .collect()
    }

    /// One campaign's outcomes and their counter in one transaction. An outcome whose claim was lost
    /// cancels the transaction; it is left out and the rest written again.
    async fn record_counted(
        &self,
        writes: &[OutcomeWrite<'_>],
        chunk: &[usize],
        at: DateTime<Utc>,
    ) -> Vec<Result<OutcomeRecorded, StoreError>> {
        let mut lost = vec![false; chunk.len()];
        loop {
            let live: Vec<usize> = (0..chunk.len()).filter(|&k| !lost[k]).collect();
            if live.is_empty() {
                return lost
                    .iter()
                    .map(|_| Ok(OutcomeRecorded::ClaimLost))
                    .collect();
            }
            let members: Vec<&OutcomeWrite<'_>> = live.iter().map(|&k| &writes[chunk[k]]).collect();
            match self.counted_transaction(&members, at).await {
                Ok(()) => return written_unless_lost(&lost),
                Err(e) => {
                    let failed: Vec<usize> = (0..live.len())
                        .filter(|&j| e.condition_failed_at(j))
                        .collect();
                    if failed.is_empty() {
                        let text = crate::error::chain(&e);
                        let transient = e.is_transient();
                        return (0..chunk.len())
                            .map(|_| {
                                Err(if transient {
                                    StoreError::Transient(text.clone().into())
                                } else {
                                    StoreError::Other(text.clone().into())
                                })
                            })
                            .collect();
                    }
                    // A transaction is all or nothing: if any of its outcomes shows this attempt's result,
                    // an earlier sending of this very transaction was applied whole.
                    let w = members[failed[0]];
                    match self.outcome_applied(w.id, w.token, &w.outcome).await {
                        Ok(true) => return written_unless_lost(&lost),
                        Ok(false) => {
                            for j in failed {
                                lost[live[j]] = true;
                            }
                        }
                        Err(read) => {
                            let text = crate::error::chain(&read);
                            return (0..chunk.len())
                                .map(|_| Err(StoreError::Transient(text.clone().into())))
                                .collect();
                        }
                    }
                }
            }
        }
    }

    async fn counted_transaction(
        &self,
        members: &[&OutcomeWrite<'_>],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut items = Vec::with_capacity(members.len() + 1);
        let mut counters: BTreeMap<Counter, i64> = BTreeMap::new();
        for w in members {
            let (key, u) = self.outcome_update(w.id, w.token, &w.outcome, at);
            items.push(self.update_op(
                key,
                &u.expression(""),
                Some(Self::OUTCOME_CONDITION),
                u.names,
                u.values,
            )?);
            if let Some(c) = outcome_counter(&w.outcome) {
                *counters.entry(c).or_default() += 1;
            }
        }
        if let Some(campaign) = members.first().and_then(|w| w.campaign) {
            let counters: Vec<(Counter, i64)> = counters.into_iter().collect();
            items.push(self.campaign_add_op(campaign, members[0].id.as_str(), &counters)?);
        }
        self.client()
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(request_token(members))
            .send()
            .await
            .map_err(classify_transaction)?;
        Ok(())
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
        let listed = keys::job_listed(JobStatus::Rejected, r.at, key_id).attributes();
        for (name, value) in listed.into_iter().chain([
            ("job_id", s(key_id)),
            ("status", s(JobStatus::Rejected.as_str())),
            ("reason", s(cap(r.reason, MAX_REASON_CHARS))),
            ("body", s(body)),
            (
                "body_truncated",
                AttributeValue::Bool(body.len() < r.body.len()),
            ),
            ("sqs_message_id", s(r.sqs_message_id)),
            ("rejected_at", s(&time)),
            ("updated_at", s(&time)),
        ]) {
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
        applied(result)
    }

    /// A job's record, read consistently; `None` when nothing is recorded under the id.
    pub async fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.get(job_key(id), true)
            .await?
            .map(|item| JobRecord::from_item(&item))
            .transpose()
    }

    /// The records of many jobs, read consistently 100 per request, in no particular order; ids with
    /// nothing recorded are left out.
    pub async fn jobs(&self, ids: &[&str]) -> Result<Vec<JobRecord>, StoreError> {
        let keys = ids.iter().map(|id| job_key(id)).collect();
        self.batch_get(keys, true)
            .await?
            .iter()
            .map(JobRecord::from_item)
            .collect()
    }

    /// Failed or rejected jobs, newest first.
    pub async fn jobs_with_status(
        &self,
        status: JobStatus,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<JobRecord>, StoreError> {
        let pk = keys::jobs_listed_pk(status);
        let page = self
            .query_page(PageQuery {
                index: Some(GSI1),
                partition_attr: GSI1_PK,
                partition: &pk,
                sort_attr: GSI1_SK,
                sort_prefix: None,
                newest_first: true,
                limit,
                cursor,
            })
            .await?;
        Ok(Page {
            items: page
                .items
                .iter()
                .map(JobRecord::from_item)
                .collect::<Result<_, _>>()?,
            next: page.next,
        })
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
            JobStatus::Sending,
            JobStatus::Retrying,
            JobStatus::Unknown,
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
