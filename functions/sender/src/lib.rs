//! The sender function: send jobs from SQS to Postmark, each sent once.
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
//! - **handed back**: listed in the answer with the time SQS keeps it invisible set on the message
//!   (ChangeMessageVisibility): retryable failures (429, 5xx, store outages, configuration errors, which
//!   are logged with `error_kind = "configuration"`) wait longer at every receive ([`backoff`]), jobs of
//!   a server whose breaker is open wait for its pause ([`breaker`]), jobs the invocation's deadline left
//!   no time for come back at once.
//!
//! **Sent once.** A job is claimed with a conditional write before anything is done with it; a job to be
//! sent is `sending` from that claim on, listing the Postmark call (`send_id`) it is handed to. A call
//! that ends so that Postmark may have accepted it (timeout or reset after the request, 502/504, an
//! unreadable answer) leaves the job `unknown`; a run that dies leaves it `sending` until its lease
//! ends. Either way the next attempt looks the call up in Postmark ([`resolve`]) before sending again.

pub mod backoff;
pub mod breaker;
mod compose;
mod config;
mod deliver;
mod record;
mod resolve;
mod verdict;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use domain::jobs::{SendJob, SkipReason, skip_reason};
use domain::ports::RecipientStandings;
use domain::servers::{EmailServer, ServerId, route};
use domain::tracking::TokenSigner;
use futures::StreamExt;
use postmark::smtp::SmtpTransport;
use secrecy::ExposeSecret;
use store::jobs::{Claimed, JobClaim, SendAttempt};
use store::servers::ServerSecrets;
use store::{SecretCache, StoreError, Table};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{error, info, warn};

pub use backoff::Backoff;
pub use breaker::{BreakerPolicy, Gate};
pub use compose::Tracker;
pub use config::{Config, ConfigError};
pub use deliver::{Calls, Deadline};
pub use verdict::{Verdict, Via};

/// Store writes in flight at once (claims, outcomes).
const WRITES_IN_FLIGHT: usize = 32;

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
    sqs: aws_sdk_sqs::Client,
    http: reqwest::Client,
    servers: Cached<Vec<EmailServer>>,
    smtp: Mutex<HashMap<(ServerId, String), SmtpEntry>>,
}

/// The SDK settings the function's AWS clients are built with. Stalled-stream protection is off: it
/// wraps every request and answer body in a throughput check with a timer, and its 20 s grace period
/// can never end before the policy's attempt timeout cuts a stuck request.
pub fn sdk_config(sdk: &aws_config::SdkConfig) -> aws_config::SdkConfig {
    sdk.to_builder()
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .build()
}

impl App {
    pub fn new(sdk: &aws_config::SdkConfig, config: Config) -> Result<Self, ConfigError> {
        let sdk = sdk_config(sdk);
        // A batch's writes (100-item transactions, 25-item batches) take longer than single items.
        let policy = store::aws::StorePolicy {
            operation_timeout: Duration::from_secs(20),
            attempt_timeout: Duration::from_secs(8),
            ..store::aws::StorePolicy::default()
        };
        Self::with_clients(
            store::aws::dynamodb_client(&sdk, &policy),
            store::aws::secrets_client(&sdk, &policy),
            store::aws::sqs_client(&sdk, &policy),
            config,
        )
    }

    pub fn with_clients(
        dynamodb: aws_sdk_dynamodb::Client,
        secrets: aws_sdk_secretsmanager::Client,
        sqs: aws_sdk_sqs::Client,
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
            sqs,
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

/// An SQS record with what handing it back needs.
#[derive(Debug, Clone)]
struct Received {
    sqs_id: String,
    receipt: Option<String>,
    receive_count: u32,
    queue_arn: Option<String>,
}

impl Received {
    fn of(record: &SqsMessage, sqs_id: String) -> Self {
        Self {
            sqs_id,
            receipt: record.receipt_handle.clone(),
            receive_count: record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
            queue_arn: record.event_source_arn.clone(),
        }
    }
}

/// What this run means to do with a valid job.
#[derive(Debug, Clone)]
enum Intent {
    Skip(SkipReason),
    /// Not to be sent now, for this reason (kept on the job: no server carries it, ...).
    Hold(Verdict),
    /// Send through `groups[group]`.
    Send {
        group: usize,
    },
}

/// A job this run owns.
struct Owned {
    received: Received,
    job: SendJob,
    token: String,
    intent: Intent,
    /// The call this run hands the job to, if it sends it.
    send: Option<SendAttempt>,
    /// Earlier calls that may have delivered it.
    unresolved: Vec<SendAttempt>,
}

/// The run's calls: one per server and stream, each with its `send_id`.
struct CallGroup<'s> {
    server: &'s EmailServer,
    stream: &'s domain::MessageStream,
    attempt: SendAttempt,
    gate: Gate,
    breaker: store::breaker::BreakerState,
}

/// What the run did, for its log line.
#[derive(Debug, Default)]
struct Summary {
    records: usize,
    rejected: usize,
    duplicates: usize,
    already_done: usize,
    busy: usize,
    paused: usize,
    resolved_sent: usize,
    counts: BTreeMap<&'static str, usize>,
    calls: Calls,
}

/// The records to deliver again, each with how long SQS keeps it invisible first.
#[derive(Debug, Default)]
struct HandBack(Vec<(Received, Duration)>);

impl HandBack {
    fn add(&mut self, received: Received, wait: Duration) {
        self.0.push((received, wait));
    }
}

/// The invocation's deadline (Lambda's epoch milliseconds) on this process's clock. `None` for a deadline
/// already past when the invocation starts, which Lambda never gives but local emulators do (cargo lambda
/// watch sends a constant): then no deadline is applied, and that is logged.
pub fn deadline_of(epoch_ms: u64) -> Option<Instant> {
    let now_ms = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(u64::MAX);
    if epoch_ms <= now_ms {
        warn!(
            deadline_ms = epoch_ms,
            "the runtime's invocation deadline is already past; running without one"
        );
        return None;
    }
    Some(Instant::now() + Duration::from_millis(epoch_ms - now_ms))
}

/// The function's entry point without a deadline (tests, local tools).
pub async fn handle(app: &App, event: SqsEvent) -> SqsBatchResponse {
    handle_until(app, event, None).await
}

/// The function's entry point: handles one SQS batch and answers with the records to deliver again.
/// No Postmark call starts that would not end before `deadline`.
pub async fn handle_until(
    app: &App,
    event: SqsEvent,
    deadline: Option<Instant>,
) -> SqsBatchResponse {
    let now = Utc::now();
    let deadline = Deadline {
        at: deadline.map(|d| d.checked_sub(app.config.deadline_margin).unwrap_or(d)),
        call_budget: app.config.postmark_timeout,
    };
    let mut summary = Summary {
        records: event.records.len(),
        ..Summary::default()
    };
    let mut back = HandBack::default();
    if !deadline.allows_call() {
        error!(
            error_kind = "configuration",
            postmark_timeout_secs = app.config.postmark_timeout.as_secs(),
            deadline_margin_secs = app.config.deadline_margin.as_secs(),
            "the invocation's time leaves no room for a Postmark call: the function's timeout must exceed \
             POSTMARK_TIMEOUT_SECONDS + DEADLINE_MARGIN_SECONDS"
        );
    }

    let (valid, invalid) = intake(event, &mut summary);
    summary.rejected = invalid.len();
    for received in reject(app, invalid, now).await {
        back.add(received, Duration::ZERO);
    }
    if !valid.is_empty() {
        run(app, valid, now, deadline, &mut summary, &mut back).await;
    }

    let response = answer(app, back).await;
    info!(
        records = summary.records,
        rejected = summary.rejected,
        duplicates = summary.duplicates,
        already_done = summary.already_done,
        busy = summary.busy,
        paused = summary.paused,
        resolved_sent = summary.resolved_sent,
        sent = summary.counts.get("sent").copied().unwrap_or(0),
        skipped = summary.counts.get("skipped").copied().unwrap_or(0),
        failed = summary.counts.get("failed").copied().unwrap_or(0),
        unknown = summary.counts.get("unknown").copied().unwrap_or(0),
        handed_back = response.batch_item_failures.len(),
        postmark_batches = summary.calls.api_batches,
        smtp_messages = summary.calls.smtp_messages,
        "batch handled"
    );
    response
}

type Invalid = (Received, String, domain::jobs::InvalidJob);

/// Reads the records: valid jobs (one per job id), and what cannot be a job.
fn intake(event: SqsEvent, summary: &mut Summary) -> (Vec<(Received, SendJob)>, Vec<Invalid>) {
    let mut valid = Vec::new();
    let mut invalid = Vec::new();
    let mut seen = HashSet::new();
    for record in event.records {
        let Some(sqs_id) = record.message_id.clone().filter(|m| !m.is_empty()) else {
            error!("an SQS record without a messageId cannot be acknowledged or retried; ignored");
            continue;
        };
        let received = Received::of(&record, sqs_id.clone());
        let body = record.body.unwrap_or_default();
        match SendJob::parse(&body, Some(&sqs_id)) {
            Ok(job) if !seen.insert(job.id.clone()) => {
                // The first record with this id carries the job; this copy needs nothing of its own.
                info!(job_id = %job.id, sqs_id, "the same job twice in one batch; one is enough");
                summary.duplicates += 1;
            }
            Ok(job) => valid.push((received, job)),
            Err(e) => invalid.push((received, body, e)),
        }
    }
    (valid, invalid)
}

/// Records the invalid jobs; answers the records whose rejection could not be recorded (SQS keeps their
/// body until it can be).
async fn reject(app: &App, invalid: Vec<Invalid>, now: DateTime<Utc>) -> Vec<Received> {
    futures::stream::iter(invalid)
        .map(|(received, body, e)| async move {
            let sqs_id = received.sqs_id.clone();
            let key_id = e
                .id
                .as_ref()
                .map_or(sqs_id.as_str(), |id| id.as_str())
                .to_owned();
            let reason = e.to_string();
            let rejection = store::jobs::Rejection {
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
                    Some(received)
                }
            }
        })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .filter_map(|x| async move { x })
        .collect()
        .await
}

/// The wait before a retryable failure's next attempt.
fn retry_wait(app: &App, received: &Received) -> Duration {
    app.config
        .backoff
        .delay(received.receive_count, backoff::unit())
}

/// Plans, claims, looks up, sends and records the valid jobs.
async fn run(
    app: &App,
    valid: Vec<(Received, SendJob)>,
    now: DateTime<Utc>,
    deadline: Deadline,
    summary: &mut Summary,
    back: &mut HandBack,
) {
    let addresses: Vec<_> = valid.iter().map(|(_, j)| j.recipient().clone()).collect();
    let standings = match app.table.standings(&addresses).await {
        Ok(s) => s,
        Err(e) => {
            error!(error = ?e, "recipients' standing could not be read; the batch will be retried");
            for (received, _) in valid {
                let wait = retry_wait(app, &received);
                back.add(received, wait);
            }
            return;
        }
    };
    let servers = match app.servers().await {
        Ok(s) => s,
        Err(e) => {
            error!(error = ?e, "email servers could not be read; the batch will be retried");
            for (received, _) in valid {
                let wait = retry_wait(app, &received);
                back.add(received, wait);
            }
            return;
        }
    };

    let (groups, planned) = plan(app, valid, &standings, &servers, now).await;
    let to_claim = hold_paused(app, &groups, planned, summary, back);
    let owned = claim(app, &groups, to_claim, now, summary, back).await;
    let mut verdicts: Vec<Option<Verdict>> = vec![None; owned.len()];
    lookup(app, &servers, &owned, &mut verdicts, summary).await;
    send(app, &groups, &owned, &mut verdicts, deadline, summary).await;
    let verdicts: Vec<Verdict> = verdicts
        .into_iter()
        .map(|v| v.unwrap_or_else(|| Verdict::retry("no verdict (internal error)")))
        .collect();

    record_breakers(app, &groups, &owned, &verdicts, now).await;
    for (o, v) in owned.iter().zip(&verdicts) {
        *summary.counts.entry(v.name()).or_default() += 1;
        log_verdict(&o.job, v);
    }
    let waits = record::record(app, &owned, &verdicts).await;
    for (o, wait) in owned.into_iter().zip(waits) {
        if let Some(wait) = wait {
            back.add(o.received, wait);
        }
    }
}

/// What to do with each job (skip it, hold it, or send it in one of the run's calls), and the calls: one
/// per server and stream, each with its breaker's gate.
async fn plan<'s>(
    app: &App,
    valid: Vec<(Received, SendJob)>,
    standings: &HashMap<String, domain::ports::RecipientStanding>,
    servers: &'s [EmailServer],
    now: DateTime<Utc>,
) -> (Vec<CallGroup<'s>>, Vec<(Received, SendJob, Intent)>) {
    let mut groups: Vec<CallGroup<'s>> = Vec::new();
    let mut planned = Vec::with_capacity(valid.len());
    for (received, job) in valid {
        if let Some(reason) = skip_reason(job.email_type, standings.get(job.recipient().key())) {
            planned.push((received, job, Intent::Skip(reason)));
            continue;
        }
        let r = match route(
            servers,
            job.email_type,
            job.server_id.as_ref().map(ServerId::as_str),
        ) {
            Ok(r) => r,
            Err(no_route) => {
                let hold = Verdict::configuration(no_route.to_string());
                planned.push((received, job, Intent::Hold(hold)));
                continue;
            }
        };
        let group = match groups
            .iter()
            .position(|g| g.server.id == r.server.id && g.stream == r.stream)
        {
            Some(g) => g,
            None => {
                // One breaker per server, whatever its streams.
                let (gate, state) = match groups.iter().find(|g| g.server.id == r.server.id) {
                    Some(g) => (g.gate, g.breaker),
                    None => {
                        breaker::gate(&app.table, &app.config.breaker, r.server.id.as_str(), now)
                            .await
                    }
                };
                groups.push(CallGroup {
                    server: r.server,
                    stream: r.stream,
                    attempt: SendAttempt {
                        server_id: r.server.id.to_string(),
                        stream: r.stream.to_string(),
                        send_id: uuid::Uuid::new_v4().simple().to_string(),
                        // No call of this run can be accepted after its claims' lease.
                        at: now
                            + chrono::Duration::from_std(app.config.claim_lease)
                                .unwrap_or_default(),
                    },
                    gate,
                    breaker: state,
                });
                groups.len() - 1
            }
        };
        planned.push((received, job, Intent::Send { group }));
    }
    (groups, planned)
}

/// A paused server's jobs go back for its pause without a claim; a probe keeps only a few of them.
fn hold_paused(
    app: &App,
    groups: &[CallGroup<'_>],
    planned: Vec<(Received, SendJob, Intent)>,
    summary: &mut Summary,
    back: &mut HandBack,
) -> Vec<(Received, SendJob, Intent)> {
    let mut probe_left: Vec<Option<usize>> = groups
        .iter()
        .map(|g| match g.gate {
            Gate::Probe(n) => Some(n),
            _ => None,
        })
        .collect();
    let mut kept = Vec::with_capacity(planned.len());
    for (received, job, intent) in planned {
        if let Intent::Send { group } = intent {
            let wait = match (groups[group].gate, probe_left[group].as_mut()) {
                (Gate::Open(pause), _) => Some(pause.max(retry_wait(app, &received))),
                (Gate::Probe(_), Some(0)) => Some(app.config.breaker.cooldown),
                (Gate::Probe(_), Some(left)) => {
                    *left -= 1;
                    None
                }
                _ => None,
            };
            if let Some(wait) = wait {
                summary.paused += 1;
                back.add(received, wait);
                continue;
            }
        }
        kept.push((received, job, intent));
    }
    kept
}

/// Decides the owned jobs still undecided: skips and holds as planned, sends through their calls.
async fn send(
    app: &App,
    groups: &[CallGroup<'_>],
    owned: &[Owned],
    verdicts: &mut [Option<Verdict>],
    deadline: Deadline,
    summary: &mut Summary,
) {
    let mut sends: Vec<Vec<(usize, &SendJob)>> = vec![Vec::new(); groups.len()];
    for (i, o) in owned.iter().enumerate() {
        if verdicts[i].is_some() {
            continue;
        }
        match &o.intent {
            Intent::Skip(reason) => verdicts[i] = Some(Verdict::Skipped(*reason)),
            Intent::Hold(v) => verdicts[i] = Some(v.clone()),
            Intent::Send { group } => sends[*group].push((i, &o.job)),
        }
    }
    let tracker = if sends
        .iter()
        .flatten()
        .any(|(_, j)| j.track_opens || j.track_clicks)
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
    let call_groups: Vec<deliver::Group<'_>> = groups
        .iter()
        .zip(sends)
        .filter(|(_, jobs)| !jobs.is_empty())
        .map(|(g, jobs)| deliver::Group {
            server: g.server,
            stream: g.stream,
            send_id: g.attempt.send_id.clone(),
            jobs,
        })
        .collect();
    let (delivered, calls) = deliver::deliver(app, call_groups, tracker.as_ref(), deadline).await;
    summary.calls = calls;
    for (i, v) in delivered {
        verdicts[i] = Some(v);
    }
}

/// Claims the jobs; answers those this run owns, and hands back the others that need another delivery.
async fn claim(
    app: &App,
    groups: &[CallGroup<'_>],
    jobs: Vec<(Received, SendJob, Intent)>,
    now: DateTime<Utc>,
    summary: &mut Summary,
    back: &mut HandBack,
) -> Vec<Owned> {
    type Answer = (
        Received,
        SendJob,
        Intent,
        String,
        Result<Claimed, StoreError>,
    );
    let results: Vec<Answer> = futures::stream::iter(jobs)
        .map(|(received, job, intent)| async move {
            let token = uuid::Uuid::new_v4().simple().to_string();
            let send = match &intent {
                Intent::Send { group } => Some(&groups[*group].attempt),
                Intent::Skip(_) | Intent::Hold(_) => None,
            };
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
                    send,
                })
                .await;
            (received, job, intent, token, result)
        })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .collect()
        .await;
    let mut owned = Vec::new();
    for (received, job, intent, token, result) in results {
        match result {
            Ok(Claimed::Owned { unresolved }) => {
                let send = match &intent {
                    Intent::Send { group } => Some(groups[*group].attempt.clone()),
                    Intent::Skip(_) | Intent::Hold(_) => None,
                };
                owned.push(Owned {
                    received,
                    job,
                    token,
                    intent,
                    send,
                    unresolved,
                });
            }
            Ok(Claimed::Done(status)) => {
                info!(job_id = %job.id, status = status.as_str(), "job already done; acknowledged");
                summary.already_done += 1;
            }
            Ok(Claimed::Busy { lease_until }) => {
                info!(job_id = %job.id, lease_until, "job claimed by another run; SQS will deliver it again");
                summary.busy += 1;
                let left = lease_until.saturating_sub(now.timestamp()).max(1);
                back.add(
                    received,
                    Duration::from_secs(u64::try_from(left).unwrap_or(1)),
                );
            }
            Err(e) => {
                error!(job_id = %job.id, error = ?e, "job could not be claimed; SQS will deliver it again");
                let wait = retry_wait(app, &received);
                back.add(received, wait);
            }
        }
    }
    owned
}

/// Looks up in Postmark the jobs that earlier calls may have delivered; decides those it can.
async fn lookup(
    app: &App,
    servers: &[EmailServer],
    owned: &[Owned],
    verdicts: &mut [Option<Verdict>],
    summary: &mut Summary,
) {
    let pending: Vec<usize> = (0..owned.len())
        .filter(|&i| !owned[i].unresolved.is_empty())
        .collect();
    if pending.is_empty() {
        return;
    }
    let jobs: Vec<(&str, &[SendAttempt])> = pending
        .iter()
        .map(|&i| (owned[i].job.id.as_str(), owned[i].unresolved.as_slice()))
        .collect();
    let resolutions = resolve::resolve(app, servers, &jobs, Utc::now()).await;
    for (&i, resolution) in pending.iter().zip(resolutions) {
        match resolution {
            resolve::Resolution::Sent { message_id, via } => {
                info!(job_id = %owned[i].job.id, message_id, "an earlier call delivered the job; not sent again");
                summary.resolved_sent += 1;
                verdicts[i] = Some(Verdict::Sent {
                    message_id: Some(message_id),
                    via,
                });
            }
            resolve::Resolution::NotSent => {}
            resolve::Resolution::Decided(v) => verdicts[i] = Some(v),
        }
    }
}

/// Tells each server's breaker how its calls went.
async fn record_breakers(
    app: &App,
    groups: &[CallGroup<'_>],
    owned: &[Owned],
    verdicts: &[Verdict],
    now: DateTime<Utc>,
) {
    let mut seen: Vec<&str> = Vec::new();
    for group in groups {
        // One record per server, whatever its streams.
        let server_id = group.attempt.server_id.as_str();
        if seen.contains(&server_id) {
            continue;
        }
        seen.push(server_id);
        let mut health = breaker::Health::default();
        for (o, v) in owned.iter().zip(verdicts) {
            if !matches!(o.intent, Intent::Send { group } if groups[group].attempt.server_id == server_id)
            {
                continue;
            }
            match v {
                Verdict::Sent { .. } | Verdict::Failed { via: Some(_), .. } => health.answered += 1,
                Verdict::Unknown { .. }
                | Verdict::Retry {
                    configuration: false,
                    ..
                } => health.failed += 1,
                _ => {}
            }
        }
        if let Err(e) = breaker::record(
            &app.table,
            &app.config.breaker,
            server_id,
            health,
            &group.breaker,
            now,
        )
        .await
        {
            warn!(server_id = group.attempt.server_id, error = ?e, "the breaker could not be updated");
        }
    }
}

/// Sets the waits of the handed-back records and answers them as batch item failures.
async fn answer(app: &App, back: HandBack) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let queue_url = app.config.queue_url.clone().or_else(|| {
        back.0
            .iter()
            .find_map(|(r, _)| r.queue_arn.as_deref().and_then(backoff::queue_url_of_arn))
    });
    let waits: Vec<(String, Duration)> = back
        .0
        .iter()
        .filter_map(|(r, wait)| r.receipt.clone().map(|h| (h, *wait)))
        .collect();
    if let Some(url) = queue_url
        && !waits.is_empty()
    {
        backoff::set_visibility(&app.sqs, &url, &waits).await;
    }
    for (r, _) in back.0 {
        response.add_failure(r.sqs_id);
    }
    response
}

fn log_verdict(job: &SendJob, v: &Verdict) {
    match v {
        Verdict::Retry {
            reason,
            error_code,
            configuration: true,
        } => error!(
            error_kind = "configuration",
            job_id = %job.id,
            email_type = %job.email_type,
            reason,
            error_code,
            "job not sent: configuration error; it is retried and goes through once the configuration is fixed"
        ),
        Verdict::Retry {
            reason, error_code, ..
        } => {
            warn!(job_id = %job.id, reason, error_code, "job not sent for now; SQS will deliver it again")
        }
        Verdict::Failed {
            reason, error_code, ..
        } => warn!(job_id = %job.id, reason, error_code, "job failed permanently"),
        Verdict::Skipped(reason) => info!(job_id = %job.id, reason = %reason, "job skipped"),
        Verdict::Sent { message_id, via } => {
            info!(job_id = %job.id, message_id, server_id = via.server_id, stream = via.stream, "job sent");
        }
        Verdict::Unknown { reason, via } => warn!(
            job_id = %job.id, reason, server_id = via.server_id,
            "Postmark may have accepted the job; it is looked up before any new send"
        ),
        Verdict::NotStarted => {
            info!(job_id = %job.id, "no time left in the invocation; handed back")
        }
        Verdict::Unresolved { reason, delay } => info!(
            job_id = %job.id, reason, delay_secs = delay.as_secs(),
            "an earlier call is not looked up yet; handed back"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch_ms_in(offset_ms: i64) -> u64 {
        u64::try_from(Utc::now().timestamp_millis() + offset_ms).unwrap()
    }

    #[test]
    fn a_deadline_ahead_is_kept_and_one_already_past_is_dropped() {
        let ahead = deadline_of(epoch_ms_in(60_000)).expect("a deadline ahead");
        let left = ahead - Instant::now();
        assert!(left > Duration::from_secs(55) && left <= Duration::from_secs(60));
        assert_eq!(deadline_of(epoch_ms_in(-1_000)), None);
        // What cargo lambda watch sends.
        assert_eq!(deadline_of(600_000), None);
    }
}
