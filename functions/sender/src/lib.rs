//! The sender function: send jobs from SQS to Postmark.
//!
//! One invocation takes one SQS batch and answers with the records SQS must deliver again (partial
//! batch responses). Each record ends as exactly one of:
//!
//! - **rejected**: it is not a valid job; recorded with its reason and raw body, acknowledged, never
//!   retried;
//! - **sent**: Postmark accepted it (its MessageID is stored);
//! - **skipped**: the recipient is suppressed, deactivated or complained (see
//!   [`domain::jobs::skip_reason`]);
//! - **failed**: Postmark refused it for good (406 inactive recipient, which also suppresses the
//!   address; any other request error, with its code and message);
//! - **retried**: listed in the answer, so that SQS delivers it again and, past the queue's limit,
//!   moves it to the dead-letter queue: 429, 5xx, timeouts, store outages, and configuration errors
//!   (no server for the type, a bad token, a missing secret), which are logged with
//!   `error_kind = "configuration"` so that an alarm can fire, and go through once the setting is fixed.
//!
//! A job is claimed with a conditional write before it is sent, so that the same job delivered twice
//! (concurrently or after it was sent) is sent once; a crashed run's claim expires after a lease.

mod compose;
mod config;
mod deliver;
mod verdict;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use domain::SuppressionReason;
use domain::jobs::{SendJob, skip_reason};
use domain::ports::RecipientStandings;
use domain::servers::{EmailServer, ServerId};
use domain::trace::Campaign;
use domain::tracking::TokenSigner;
use futures::StreamExt;
use postmark::smtp::SmtpTransport;
use secrecy::ExposeSecret;
use serde_json::json;
use store::activity::{ActivityEntry, activity_item};
use store::jobs::{Claimed, JobClaim, JobOutcome, Rejection};
use store::servers::ServerSecrets;
use store::{SecretCache, StoreError, Table};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{error, info, warn};

pub use compose::Tracker;
pub use config::{Config, ConfigError};
pub use deliver::Calls;
pub use verdict::{Verdict, Via};

/// Store writes in flight at once (claims, outcomes).
const WRITES_IN_FLIGHT: usize = 32;
/// Attempts at a write that must not be lost (an outcome, a counter).
const WRITE_ATTEMPTS: u32 = 3;

type Cached<T> = Mutex<Option<(Instant, Arc<T>)>>;
/// A server's SMTP transport with the fingerprint of the settings it was built from.
type SmtpEntry = ([u8; 32], Arc<SmtpTransport>);

/// Clients, configuration and caches, built once per cold start.
#[derive(Debug)]
pub struct App {
    pub config: Arc<Config>,
    pub table: Table,
    pub secrets: SecretCache,
    pub server_secrets: ServerSecrets,
    http: reqwest::Client,
    servers: Cached<Vec<EmailServer>>,
    smtp: Mutex<HashMap<(ServerId, String), SmtpEntry>>,
}

impl App {
    pub fn new(sdk: &aws_config::SdkConfig, config: Config) -> Result<Self, ConfigError> {
        Self::with_clients(
            aws_sdk_dynamodb::Client::new(sdk),
            aws_sdk_secretsmanager::Client::new(sdk),
            config,
        )
    }

    pub fn with_clients(
        dynamodb: aws_sdk_dynamodb::Client,
        secrets: aws_sdk_secretsmanager::Client,
        config: Config,
    ) -> Result<Self, ConfigError> {
        let http = reqwest::Client::builder()
            .timeout(config.postmark_timeout)
            .connect_timeout(config.postmark_timeout)
            .build()
            .map_err(|e| ConfigError(format!("the HTTP client cannot be built: {e}")))?;
        Ok(Self {
            table: Table::new(dynamodb, config.table_name.clone()),
            server_secrets: ServerSecrets::new(secrets.clone(), config.secrets_prefix.clone()),
            secrets: SecretCache::new(secrets, config.secrets_ttl),
            http,
            servers: Mutex::new(None),
            smtp: Mutex::new(HashMap::new()),
            config: Arc::new(config),
        })
    }

    /// The configured email servers, read at most once per `servers_ttl`.
    async fn servers(&self) -> Result<Arc<Vec<EmailServer>>, StoreError> {
        let mut cached = self.servers.lock().await;
        if let Some((at, servers)) = cached.as_ref()
            && at.elapsed() < self.config.servers_ttl
        {
            return Ok(servers.clone());
        }
        let servers = Arc::new(self.table.servers().await?);
        *cached = Some((Instant::now(), servers.clone()));
        Ok(servers)
    }

    async fn tracker(&self) -> Result<Tracker, StoreError> {
        let key = self
            .secrets
            .current(&self.config.tracking_key_secret)
            .await?;
        Ok(Tracker {
            signer: TokenSigner::new(key.value.expose_secret().as_bytes()),
            base_url: self.config.tracking_base_url.clone(),
        })
    }
}

/// A job this run owns.
struct Owned {
    sqs_id: String,
    job: SendJob,
    token: String,
}

/// What the run did, for its log line.
#[derive(Debug, Default)]
struct Summary {
    records: usize,
    rejected: usize,
    duplicates: usize,
    already_done: usize,
    busy: usize,
    counts: BTreeMap<&'static str, usize>,
    calls: Calls,
}

/// The function's entry point: handles one SQS batch and answers with the records to deliver again.
pub async fn handle(app: &App, event: SqsEvent) -> SqsBatchResponse {
    let now = Utc::now();
    let mut response = SqsBatchResponse::default();
    let mut summary = Summary {
        records: event.records.len(),
        ..Summary::default()
    };

    let mut valid: Vec<(String, SendJob)> = Vec::new();
    let mut invalid = Vec::new();
    let mut seen = HashSet::new();
    for record in event.records {
        let Some(sqs_id) = record.message_id.filter(|m| !m.is_empty()) else {
            error!("an SQS record without a messageId cannot be acknowledged or retried; ignored");
            continue;
        };
        let body = record.body.unwrap_or_default();
        match SendJob::parse(&body, Some(&sqs_id)) {
            Ok(job) if !seen.insert(job.id.clone()) => {
                // The first record with this id carries the job; this copy needs nothing of its own.
                info!(job_id = %job.id, sqs_id, "the same job twice in one batch; one is enough");
                summary.duplicates += 1;
            }
            Ok(job) => valid.push((sqs_id, job)),
            Err(e) => invalid.push((sqs_id, body, e)),
        }
    }

    summary.rejected = invalid.len();
    for sqs_id in reject(app, invalid, now).await {
        response.add_failure(sqs_id);
    }

    let (owned, retry) = claim(app, valid, now, &mut summary).await;
    for sqs_id in retry {
        response.add_failure(sqs_id);
    }
    if !owned.is_empty() {
        let verdicts = decide(app, &owned, &mut summary).await;
        for sqs_id in record(app, &owned, verdicts, &mut summary).await {
            response.add_failure(sqs_id);
        }
    }

    info!(
        records = summary.records,
        rejected = summary.rejected,
        duplicates = summary.duplicates,
        already_done = summary.already_done,
        busy = summary.busy,
        sent = summary.counts.get("sent").copied().unwrap_or(0),
        skipped = summary.counts.get("skipped").copied().unwrap_or(0),
        failed = summary.counts.get("failed").copied().unwrap_or(0),
        retried = response.batch_item_failures.len(),
        postmark_batches = summary.calls.api_batches,
        smtp_messages = summary.calls.smtp_messages,
        "batch handled"
    );
    response
}

/// Records the invalid jobs; answers the records whose rejection could not be recorded (SQS keeps their
/// body until it can be).
async fn reject(
    app: &App,
    invalid: Vec<(String, String, domain::jobs::InvalidJob)>,
    now: DateTime<Utc>,
) -> Vec<String> {
    futures::stream::iter(invalid)
        .map(|(sqs_id, body, e)| async move {
            let key_id = e
                .id
                .as_ref()
                .map_or(sqs_id.as_str(), |id| id.as_str())
                .to_owned();
            let reason = e.to_string();
            let rejection = Rejection {
                key_id: &key_id,
                sqs_message_id: &sqs_id,
                reason: &reason,
                body: &body,
                at: now,
            };
            match app.table.record_rejected_job(&rejection).await {
                Ok(recorded_as) => {
                    warn!(job_id = recorded_as, sqs_id, reason, "job rejected");
                    None
                }
                Err(err) => {
                    error!(sqs_id, reason, error = ?err, "a rejected job could not be recorded; SQS keeps it");
                    Some(sqs_id)
                }
            }
        })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .filter_map(|x| async move { x })
        .collect()
        .await
}

/// Claims the valid jobs; answers those this run owns and the records to deliver again.
async fn claim(
    app: &App,
    valid: Vec<(String, SendJob)>,
    now: DateTime<Utc>,
    summary: &mut Summary,
) -> (Vec<Owned>, Vec<String>) {
    let results: Vec<(String, SendJob, String, Result<Claimed, StoreError>)> =
        futures::stream::iter(valid)
            .map(|(sqs_id, job)| async move {
                let token = uuid::Uuid::new_v4().simple().to_string();
                let result = app
                    .table
                    .claim_job(&JobClaim {
                        id: &job.id,
                        token: &token,
                        recipient: job.recipient(),
                        email_type: job.email_type,
                        campaign: job.campaign.as_ref(),
                        subscriber_id: job.subscriber_id.as_deref(),
                        now,
                        lease: app.config.claim_lease,
                    })
                    .await;
                (sqs_id, job, token, result)
            })
            .buffer_unordered(WRITES_IN_FLIGHT)
            .collect()
            .await;
    let mut owned = Vec::new();
    let mut retry = Vec::new();
    for (sqs_id, job, token, result) in results {
        match result {
            Ok(Claimed::Owned) => owned.push(Owned { sqs_id, job, token }),
            Ok(Claimed::Done(status)) => {
                info!(job_id = %job.id, status = status.as_str(), "job already done; acknowledged");
                summary.already_done += 1;
            }
            Ok(Claimed::Busy { lease_until }) => {
                info!(job_id = %job.id, lease_until, "job claimed by another run; SQS will deliver it again");
                summary.busy += 1;
                retry.push(sqs_id);
            }
            Err(e) => {
                error!(job_id = %job.id, error = ?e, "job could not be claimed; SQS will deliver it again");
                retry.push(sqs_id);
            }
        }
    }
    (owned, retry)
}

/// Decides every owned job: skipped, or sent (or not) through its server.
async fn decide(app: &App, owned: &[Owned], summary: &mut Summary) -> Vec<Verdict> {
    let addresses: Vec<_> = owned.iter().map(|o| o.job.recipient().clone()).collect();
    let standings = match app.table.standings(&addresses).await {
        Ok(s) => s,
        Err(e) => {
            error!(error = ?e, "recipients' standing could not be read; the batch will be retried");
            let v = Verdict::retry(format!(
                "recipients' standing could not be read: {}",
                verdict::chain(&e)
            ));
            return vec![v; owned.len()];
        }
    };
    let mut verdicts: Vec<Option<Verdict>> = owned
        .iter()
        .map(|o| {
            skip_reason(o.job.email_type, standings.get(o.job.recipient().key()))
                .map(Verdict::Skipped)
        })
        .collect();
    let to_send: Vec<usize> = (0..owned.len())
        .filter(|&i| verdicts[i].is_none())
        .collect();
    if !to_send.is_empty() {
        match app.servers().await {
            Ok(servers) => {
                let tracker = if to_send
                    .iter()
                    .any(|&i| owned[i].job.track_opens || owned[i].job.track_clicks)
                {
                    match app.tracker().await {
                        Ok(t) => Some(t),
                        Err(e) => {
                            error!(error = ?e, "the tracking key could not be read");
                            None
                        }
                    }
                } else {
                    None
                };
                let jobs: Vec<&SendJob> = to_send.iter().map(|&i| &owned[i].job).collect();
                let (sent, calls) = deliver::deliver(app, &jobs, &servers, tracker.as_ref()).await;
                summary.calls = calls;
                for (&i, v) in to_send.iter().zip(sent) {
                    verdicts[i] = Some(v);
                }
            }
            Err(e) => {
                error!(error = ?e, "email servers could not be read; the batch will be retried");
                for &i in &to_send {
                    verdicts[i] = Some(Verdict::retry(format!(
                        "email servers could not be read: {}",
                        verdict::chain(&e)
                    )));
                }
            }
        }
    }
    verdicts
        .into_iter()
        .map(|v| v.unwrap_or_else(|| Verdict::retry("no verdict (internal error)")))
        .collect()
}

fn outcome(v: &Verdict) -> JobOutcome {
    match v {
        Verdict::Sent { message_id, via } => JobOutcome::Sent {
            message_id: message_id.clone(),
            server_id: via.server_id.clone(),
            stream: via.stream.clone(),
        },
        Verdict::Skipped(reason) => JobOutcome::Skipped {
            reason: reason.to_string(),
        },
        Verdict::Failed {
            reason,
            error_code,
            via,
            ..
        } => JobOutcome::Failed {
            reason: reason.clone(),
            error_code: *error_code,
            server_id: via.as_ref().map(|v| v.server_id.clone()),
            stream: via.as_ref().map(|v| v.stream.clone()),
        },
        Verdict::Retry {
            reason, error_code, ..
        } => JobOutcome::Retrying {
            reason: reason.clone(),
            error_code: *error_code,
        },
    }
}

async fn with_retries<T, F, Fut>(mut write: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match write().await {
            Err(e) if e.is_transient() && attempt < WRITE_ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
            other => return other,
        }
    }
}

/// Writes every outcome, the suppressions of 406 answers, the activity entries and the campaign
/// counters; answers the records to deliver again.
async fn record(
    app: &App,
    owned: &[Owned],
    verdicts: Vec<Verdict>,
    summary: &mut Summary,
) -> Vec<String> {
    let now = Utc::now();
    let written: Vec<(usize, Result<bool, StoreError>)> =
        futures::stream::iter(owned.iter().zip(&verdicts).enumerate())
            .map(|(i, (o, v))| async move {
                let outcome = outcome(v);
                let result = with_retries(|| {
                    app.table
                        .record_job_outcome(&o.job.id, &o.token, &outcome, now)
                })
                .await;
                (i, result)
            })
            .buffer_unordered(WRITES_IN_FLIGHT)
            .collect()
            .await;

    let mut retry = Vec::new();
    let mut counted = vec![false; owned.len()];
    for (i, result) in written {
        let (o, v) = (&owned[i], &verdicts[i]);
        *summary.counts.entry(v.name()).or_default() += 1;
        log_verdict(o, v);
        match (result, v) {
            (Ok(true), Verdict::Retry { .. }) => retry.push(o.sqs_id.clone()),
            (Ok(true), _) => counted[i] = true,
            (Ok(false), _) => {
                error!(job_id = %o.job.id, verdict = v.name(), "the job's claim was lost to another run (lease too short?); its outcome is not recorded");
            }
            (Err(e), Verdict::Retry { .. }) => {
                error!(job_id = %o.job.id, error = ?e, "the job's claim could not be released; it goes again once its lease ends");
                retry.push(o.sqs_id.clone());
            }
            (Err(e), _) => {
                // Delivering it again would send it again: acknowledged, and logged in full instead.
                error!(job_id = %o.job.id, verdict = ?v, error = ?e, "the job's outcome could not be recorded");
            }
        }
    }

    suppress_inactive(app, owned, &verdicts, now).await;
    let entries: Vec<_> = owned
        .iter()
        .zip(&verdicts)
        .zip(&counted)
        .filter(|(_, c)| **c)
        .filter_map(|((o, v), _)| activity(o, v, now))
        .map(|(email, entry)| activity_item(&email, &entry))
        .collect();
    if !entries.is_empty()
        && let Err(e) = with_retries(|| app.table.batch_put(entries.clone())).await
    {
        error!(error = ?e, count = entries.len(), "activity entries could not be written");
    }
    count(app, owned, &verdicts, &counted).await;
    retry
}

fn log_verdict(o: &Owned, v: &Verdict) {
    match v {
        Verdict::Retry {
            reason,
            error_code,
            configuration: true,
        } => error!(
            error_kind = "configuration",
            job_id = %o.job.id,
            email_type = %o.job.email_type,
            reason,
            error_code,
            "job not sent: configuration error; it is retried and goes through once the configuration is fixed"
        ),
        Verdict::Retry {
            reason, error_code, ..
        } => {
            warn!(job_id = %o.job.id, reason, error_code, "job not sent for now; SQS will deliver it again")
        }
        Verdict::Failed {
            reason, error_code, ..
        } => warn!(job_id = %o.job.id, reason, error_code, "job failed permanently"),
        Verdict::Skipped(reason) => info!(job_id = %o.job.id, reason = %reason, "job skipped"),
        Verdict::Sent { message_id, via } => {
            info!(job_id = %o.job.id, message_id, server_id = via.server_id, stream = via.stream, "job sent");
        }
    }
}

/// Postmark said the recipient is inactive (406): it is suppressed here too, so that later jobs are
/// skipped without asking Postmark.
async fn suppress_inactive(app: &App, owned: &[Owned], verdicts: &[Verdict], now: DateTime<Utc>) {
    let inactive = owned
        .iter()
        .zip(verdicts)
        .filter(|(_, v)| matches!(v, Verdict::Failed { suppress: true, .. }))
        .map(|(o, _)| o.job.recipient().clone())
        .collect::<Vec<_>>();
    futures::stream::iter(inactive)
        .for_each_concurrent(WRITES_IN_FLIGHT, |address| async move {
            let write = app
                .table
                .suppress_op(&address, SuppressionReason::InactiveRecipient, now);
            let result = match write {
                Ok(op) => with_retries(|| app.table.transact(vec![op.clone()])).await,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                error!(address = address.as_str(), error = ?e, "an inactive recipient could not be suppressed");
            }
        })
        .await;
}

fn activity(o: &Owned, v: &Verdict, now: DateTime<Utc>) -> Option<(String, ActivityEntry)> {
    let job = &o.job;
    let (kind, detail) = match v {
        Verdict::Sent { message_id, via } => (
            "sent",
            json!({
                "job_id": job.id, "message_id": message_id, "subject": job.subject,
                "campaign": job.campaign, "server_id": via.server_id, "stream": via.stream,
            }),
        ),
        Verdict::Skipped(reason) => (
            "skipped",
            json!({ "job_id": job.id, "reason": reason.to_string(), "campaign": job.campaign }),
        ),
        Verdict::Failed {
            reason, error_code, ..
        } => (
            "send_failed",
            json!({ "job_id": job.id, "reason": reason, "error_code": error_code, "campaign": job.campaign }),
        ),
        Verdict::Retry { .. } => return None,
    };
    Some((
        job.recipient().key().to_owned(),
        ActivityEntry {
            at: now,
            id: format!("{kind}:{}", job.id),
            kind: kind.to_owned(),
            detail,
        },
    ))
}

/// Adds the batch's `sent`, `failed` and `skipped` to each campaign: one update per campaign per batch,
/// on a shard picked by one of its job ids, so that concurrent batches spread over the shards.
async fn count(app: &App, owned: &[Owned], verdicts: &[Verdict], counted: &[bool]) {
    let mut per_campaign: BTreeMap<(&str, &str), (&Campaign, &str, [i64; 3])> = BTreeMap::new();
    for ((o, v), _) in owned.iter().zip(verdicts).zip(counted).filter(|(_, c)| **c) {
        let Some(campaign) = &o.job.campaign else {
            continue;
        };
        let slot = match v {
            Verdict::Sent { .. } => 0,
            Verdict::Failed { .. } => 1,
            Verdict::Skipped(_) => 2,
            Verdict::Retry { .. } => continue,
        };
        let entry = per_campaign
            .entry((campaign.kind.as_str(), campaign.id.as_str()))
            .or_insert((campaign, o.job.id.as_str(), [0; 3]));
        entry.1 = entry.1.min(o.job.id.as_str());
        entry.2[slot] += 1;
    }
    futures::stream::iter(per_campaign.into_values())
        .for_each_concurrent(WRITES_IN_FLIGHT, |(campaign, spread, [sent, failed, skipped])| async move {
            let counters: Vec<(&str, i64)> = [("sent", sent), ("failed", failed), ("skipped", skipped)]
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .collect();
            if let Err(e) =
                with_retries(|| app.table.add_campaign_counters(campaign, spread, &counters)).await
            {
                error!(campaign = ?campaign, counters = ?counters, error = ?e, "campaign counters could not be added");
            }
        })
        .await;
}
