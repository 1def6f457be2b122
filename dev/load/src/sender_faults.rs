//! The sender under faults: send jobs (a broadcast, a few to suppressed addresses, a few Postmark refuses
//! for good, a tenth enqueued twice) drained by the local poller in small batches into
//! `sender::handle_until`, while the Postmark simulator fails a fifth of the batch calls in every way it
//! knows (before and after acceptance), the emulator fails a twentieth of the run table's DynamoDB
//! requests, and the sender is killed a few times mid-invocation (its future dropped, so nothing after
//! that point runs; the poller sees a failed invocation). Everything is drawn from one seed.
//!
//! Then it counts: per job, the messages the simulator accepted (by their `job_id` metadata): a `sent`
//! job must have exactly one, a `failed` or `skipped` job none; a job with no final status whose message
//! is not in the dead-letter queue is lost; the campaign's `sent`/`failed`/`skipped` counters must equal
//! the final statuses.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::QueueAttributeName;
use chrono::Utc;
use domain::trace::{Campaign, CampaignKind};
use domain::{EmailAddress, SuppressionReason};
use local_stack::poller::{InvokeFn, Poller, PollerConfig};
use postmark_sim::{FaultAction, FaultRule, Faults, Simulator};
use serde_json::Value;
use store::Table;
use store::jobs::JobStatus;
use testkit::faults::{DynamoFaults, FaultKind};
use tokio::time::Instant;

use crate::messages;

const TOKEN: &str = "load-faults-token";
/// A From domain the simulator's server has no sender signature for: Postmark refuses it (300).
const UNVERIFIED_FROM: &str = "The Corner Bookshop <news@unverified.example.net>";

/// The run's settings. [`SenderFaults::new`] gives the defaults of `load sender-faults`.
#[derive(Debug, Clone)]
pub struct SenderFaults {
    pub jobs: usize,
    pub seed: u64,
    /// Records per invocation at most.
    pub batch_size: usize,
    /// Share of the jobs enqueued twice (same body, two SQS messages).
    pub duplicate_share: f64,
    /// Share of the jobs to addresses suppressed in the store (they end `skipped`).
    pub suppressed_share: f64,
    /// Share of the jobs with a From domain Postmark does not know (they end `failed`).
    pub unverified_share: f64,
    /// Share of the jobs to addresses inactive at Postmark (406: they end `failed`).
    pub inactive_share: f64,
    /// Share of `/email/batch` calls the simulator fails, spread evenly over its fault kinds.
    pub postmark_fault_rate: f64,
    /// Share of the run table's DynamoDB requests the emulator fails.
    pub dynamo_fault_rate: f64,
    /// Invocations killed.
    pub kills: usize,
    /// The sender's `search_settle`.
    pub search_settle: Duration,
    /// The sender's `postmark_timeout`.
    pub postmark_timeout: Duration,
    /// How long the simulator's search takes to show an accepted message (zero: at once).
    pub search_delay: Duration,
    /// The sender's `claim_lease` (longer than an invocation).
    pub claim_lease: Duration,
    /// The queue's visibility timeout (what a failed invocation's messages wait).
    pub visibility_timeout_secs: u32,
    /// The queue's maxReceiveCount.
    pub max_receive: u32,
    /// Each invocation's deadline, from its start.
    pub invocation_time: Duration,
    /// The run stops polling after this long even if jobs are left.
    pub time_limit: Duration,
}

impl SenderFaults {
    pub fn new(jobs: usize, seed: u64) -> Self {
        Self {
            jobs,
            seed,
            batch_size: 50,
            duplicate_share: 0.10,
            suppressed_share: 0.03,
            unverified_share: 0.02,
            inactive_share: 0.02,
            postmark_fault_rate: 0.20,
            dynamo_fault_rate: 0.05,
            kills: 5,
            search_settle: Duration::from_secs(1),
            postmark_timeout: Duration::from_secs(2),
            search_delay: Duration::ZERO,
            claim_lease: Duration::from_secs(10),
            visibility_timeout_secs: 8,
            max_receive: 30,
            invocation_time: Duration::from_secs(6),
            time_limit: Duration::from_secs(900),
        }
    }
}

/// What a job is meant to come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Design {
    Send,
    /// Suppressed in the store: `skipped`.
    Suppressed,
    /// From an unverified domain: `failed`.
    Unverified,
    /// Inactive at Postmark: `failed`.
    Inactive,
}

impl Design {
    fn expected(self) -> JobStatus {
        match self {
            Self::Send => JobStatus::Sent,
            Self::Suppressed => JobStatus::Skipped,
            Self::Unverified | Self::Inactive => JobStatus::Failed,
        }
    }
}

/// How an invocation is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillMode {
    /// This long after the invocation starts (planned as a share in per cent of the invocations' mean
    /// time so far).
    Budget { ms: u64 },
    /// This long after the simulator accepted a first message during the invocation: between
    /// Postmark's acceptance and the outcome writes.
    AfterAcceptance { ms: u64 },
}

/// One kill that landed.
#[derive(Debug, Clone)]
pub struct Kill {
    pub invocation: usize,
    pub mode: KillMode,
    /// Time from the invocation's start to the kill.
    pub after: Duration,
    pub records: usize,
    /// Messages the simulator accepted during the invocation.
    pub accepted: u64,
    /// Jobs of the batch that the simulator had accepted but whose status was not final right after the
    /// kill: the kill landed between acceptance and the outcome writes (`None`: the statuses could not
    /// be read under the faults).
    pub accepted_unrecorded: Option<usize>,
}

impl Kill {
    pub fn elapsed_ms(&self) -> u128 {
        self.after.as_millis()
    }
}

#[derive(Debug, Clone, Default)]
pub struct FaultsReport {
    pub jobs: usize,
    pub messages_enqueued: usize,
    pub sent: usize,
    pub failed: usize,
    pub skipped: usize,
    pub rejected: usize,
    /// Accepted messages beyond the first of each job.
    pub duplicates: usize,
    /// Jobs with no final status, not in the dead-letter queue, once the queue is empty.
    pub lost: usize,
    /// Jobs with no final status still in the queue when the time limit struck (not counted as lost).
    pub waiting: usize,
    /// Jobs whose message reached the dead-letter queue without a final status.
    pub dead_lettered: usize,
    /// Sum of |counter − final statuses| over `sent`, `failed`, `skipped`.
    pub counters_off: i64,
    pub counters: BTreeMap<String, i64>,
    /// Jobs whose outcome contradicts the simulator or the job's design, with why.
    pub wrong: Vec<String>,
    pub statuses: BTreeMap<String, usize>,
    /// The run ended with an empty queue (not at the time limit).
    pub finished: bool,
    pub elapsed: Duration,
    pub invocations: usize,
    pub failed_invocations: usize,
    pub kills: Vec<Kill>,
    pub postmark_requests: BTreeMap<String, u64>,
    /// The simulator's faults that fired (replayed from its seed, see [`replay_faults`]).
    pub postmark_faults: BTreeMap<String, u64>,
    pub messages_accepted: u64,
    pub dynamo_fired: BTreeMap<String, u64>,
    pub dynamo_requests: u64,
}

impl FaultsReport {
    /// The run's last line.
    pub fn last_line(&self) -> String {
        format!(
            "sender-faults: jobs={} sent={} failed={} skipped={} duplicates={} lost={} counters_off={}",
            self.jobs,
            self.sent,
            self.failed,
            self.skipped,
            self.duplicates,
            self.lost,
            self.counters_off
        )
    }

    /// Nothing sent twice, nothing lost, counters exact, every outcome right, the run finished.
    pub fn ok(&self) -> bool {
        self.duplicates == 0
            && self.lost == 0
            && self.counters_off == 0
            && self.wrong.is_empty()
            && self.finished
    }
}

/// splitmix64: the run's draws.
struct Draws(u64);

impl Draws {
    fn new(seed: u64, stream: u64) -> Self {
        Self(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }
}

fn designs(run: &SenderFaults, draws: &mut Draws) -> Vec<Design> {
    let mut out: Vec<Design> = (0..run.jobs)
        .map(|_| {
            let u = draws.unit();
            let a = run.suppressed_share;
            let b = a + run.unverified_share;
            let c = b + run.inactive_share;
            if u < a {
                Design::Suppressed
            } else if u < b {
                Design::Unverified
            } else if u < c {
                Design::Inactive
            } else {
                Design::Send
            }
        })
        .collect();
    // Small runs still get one of each.
    for (slot, design) in [
        (1, Design::Suppressed),
        (2, Design::Unverified),
        (3, Design::Inactive),
    ] {
        let wanted = match design {
            Design::Suppressed => run.suppressed_share,
            Design::Unverified => run.unverified_share,
            _ => run.inactive_share,
        };
        if wanted > 0.0 && slot < out.len() && !out.contains(&design) {
            out[slot] = design;
        }
    }
    out
}

/// The simulator's rules: `rate` of the batch calls, spread evenly over nine kinds (each rule draws
/// only for the calls the rules before it let through, so its fraction is scaled up to keep the shares
/// even).
pub fn postmark_faults(seed: u64, rate: f64, postmark_timeout: Duration) -> Faults {
    let timeout_ms = u64::try_from(postmark_timeout.as_millis()).unwrap_or(u64::MAX / 2);
    let kinds = [
        FaultAction::Status { status: 429 },
        FaultAction::Status { status: 503 },
        FaultAction::Drop,
        FaultAction::AcceptThenTimeout {
            ms: timeout_ms + 1000,
        },
        FaultAction::AcceptThenDrop,
        FaultAction::AcceptThenStatus { status: 502 },
        FaultAction::AcceptThenStatus { status: 504 },
        FaultAction::AcceptThenGarbage,
        // Slow but inside the client's timeout: answered.
        FaultAction::Delay {
            ms: timeout_ms * 3 / 4,
        },
    ];
    let each = rate / kinds.len() as f64;
    let mut faults = Faults::seeded(seed);
    for (k, action) in kinds.into_iter().enumerate() {
        let left = 1.0 - each * k as f64;
        let fraction = if left > 0.0 {
            (each / left).min(1.0)
        } else {
            1.0
        };
        faults = faults.rule(
            FaultRule::new(action)
                .path("/email/batch")
                .fraction(fraction),
        );
    }
    faults
}

fn action_name(action: &FaultAction) -> String {
    match action {
        FaultAction::Status { status } => format!("status_{status}"),
        FaultAction::Delay { ms } => format!("delay_{ms}ms"),
        FaultAction::Drop => "drop".into(),
        FaultAction::AcceptThenTimeout { ms } => format!("accept_then_timeout_{ms}ms"),
        FaultAction::AcceptThenDrop => "accept_then_drop".into(),
        FaultAction::AcceptThenStatus { status } => format!("accept_then_status_{status}"),
        FaultAction::AcceptThenGarbage => "accept_then_garbage".into(),
    }
}

/// The faults the simulator's rules fired over `calls` batch calls, replayed from its seed: its
/// generator (xorshift64*, seeded as in `dev/postmark-sim/src/faults.rs`) draws once per partial rule
/// reached, and only for requests the rules' path names, so the sequence depends on the number of calls
/// alone. The simulator does not report what fired; this does, as long as its generator stays the same.
pub fn replay_faults(faults: &Faults, calls: u64) -> BTreeMap<String, u64> {
    let mixed = faults.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut state = if mixed == 0 { 1 } else { mixed };
    let mut unit = || {
        let mut x = state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut fired = BTreeMap::new();
    for _ in 0..calls {
        for rule in &faults.rules {
            if rule.fraction < 1.0 && unit() >= rule.fraction {
                continue;
            }
            *fired.entry(action_name(&rule.action)).or_default() += 1;
            if !matches!(rule.action, FaultAction::Delay { .. }) {
                break;
            }
        }
    }
    fired
}

fn job_body(i: usize, design: Design) -> Value {
    let mut job = messages::job(i);
    if design == Design::Unverified {
        job["from"] = Value::String(UNVERIFIED_FROM.to_owned());
    }
    job
}

/// Messages waiting in the queue, visible or not.
async fn queued(sqs: &aws_sdk_sqs::Client, url: &str) -> Option<u64> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .ok()?;
    let attrs = out.attributes.unwrap_or_default();
    Some(
        attrs
            .values()
            .filter_map(|v| v.parse::<u64>().ok())
            .sum::<u64>(),
    )
}

/// The job ids in the dead-letter queue.
async fn dead_letters(sqs: &aws_sdk_sqs::Client, url: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    loop {
        let got = store::sqs::receive(sqs, url, 10, 1)
            .await
            .unwrap_or_default();
        if got.is_empty() {
            break;
        }
        for m in got {
            let id = serde_json::from_str::<Value>(m.body().unwrap_or_default())
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned));
            if let Some(id) = id {
                ids.insert(id);
            }
        }
    }
    ids
}

/// The jobs' statuses (a job never claimed is absent).
async fn statuses(table: &Table, ids: &[String]) -> Option<HashMap<String, JobStatus>> {
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let jobs = table.jobs(&ids).await.ok()?;
    Some(
        jobs.into_iter()
            .filter_map(|job| Some((job.id, job.status?)))
            .collect(),
    )
}

/// Accepted messages per job id.
fn accepted_per_job(sim: &Simulator) -> HashMap<String, usize> {
    let mut per_job = HashMap::new();
    for m in sim.messages() {
        if let Some(id) = m.metadata.get("job_id") {
            *per_job.entry(id.clone()).or_default() += 1;
        }
    }
    per_job
}

pub async fn run(run: &SenderFaults) -> FaultsReport {
    let mut draws = Draws::new(run.seed, 1);
    let sdk = testkit::sdk_config().await;
    let setup = testkit::Aws::new().await;
    let table_name = testkit::unique("load-faults");
    store::schema::create_table(&setup.dynamodb, &table_name)
        .await
        .expect("create the table");
    let queues = store::sqs::create_queue_with_dlq(
        &setup.sqs,
        &testkit::unique("load-faults"),
        run.max_receive,
        run.visibility_timeout_secs,
    )
    .await
    .expect("create the queues");
    let prefix = testkit::unique("load/faults");
    let tracking_secret = crate::sender_load::create_tracking_key(&setup.secrets, &prefix).await;

    let sim = crate::sender_load::start_simulator(TOKEN).await;
    sim.set_search_delay(run.search_delay);
    let api_url = sim.api_url();

    let table = Table::new(setup.dynamodb.clone(), table_name.clone());
    crate::sender_load::store_server(&setup.secrets, &table, &prefix, TOKEN).await;

    // The jobs and what each should come to.
    let designs = designs(run, &mut draws);
    let ids: Vec<String> = (0..run.jobs).map(messages::job_id).collect();
    let suppressed_at = Utc::now() - chrono::Duration::days(1);
    let mut inactive = Vec::new();
    for (i, design) in designs.iter().enumerate() {
        match design {
            Design::Suppressed => {
                let address = EmailAddress::parse(&messages::recipient(i)).expect("an address");
                table
                    .suppress(&address, SuppressionReason::HardBounce, suppressed_at)
                    .await
                    .expect("suppress in the store");
            }
            Design::Inactive => inactive.push(serde_json::json!({
                "EmailAddress": messages::recipient(i)
            })),
            _ => {}
        }
    }
    if !inactive.is_empty() {
        let r = reqwest::Client::new()
            .post(format!(
                "{api_url}/message-streams/{}/suppressions",
                postmark_sim::DEFAULT_BROADCAST_STREAM
            ))
            .header("X-Postmark-Server-Token", TOKEN)
            .header("Accept", "application/json")
            .json(&serde_json::json!({ "Suppressions": inactive }))
            .send()
            .await
            .expect("the simulator answers");
        assert!(r.status().is_success(), "suppressions at the simulator");
    }

    // Every job once, a share twice, in a shuffled order.
    let mut bodies: Vec<String> = Vec::new();
    for (i, design) in designs.iter().enumerate() {
        let body = job_body(i, *design).to_string();
        if draws.unit() < run.duplicate_share {
            bodies.push(body.clone());
        }
        bodies.push(body);
    }
    for i in (1..bodies.len()).rev() {
        let j = usize::try_from(draws.below(i as u64 + 1)).unwrap_or(0);
        bodies.swap(i, j);
    }

    let app = sender::App::with_clients(
        store::aws::dynamodb_client(&sdk, &store::aws::StorePolicy::default()),
        aws_sdk_secretsmanager::Client::new(&sdk),
        aws_sdk_sqs::Client::new(&sdk),
        sender::Config {
            table_name: table_name.clone(),
            secrets_prefix: prefix.clone(),
            tracking_key_secret: tracking_secret,
            tracking_base_url: "https://track.example.com".into(),
            postmark_api_url: api_url.parse().expect("the simulator's URL"),
            smtp_extra_ca_pem: None,
            claim_lease: run.claim_lease,
            secrets_ttl: Duration::from_secs(300),
            servers_ttl: Duration::from_secs(60),
            postmark_timeout: run.postmark_timeout,
            smtp_connections: 2,
            search_settle: run.search_settle,
            deadline_margin: Duration::from_secs(1),
            backoff: sender::Backoff {
                base: Duration::from_secs(1),
                max: Duration::from_secs(4),
            },
            breaker: sender::BreakerPolicy {
                threshold: 5,
                cooldown: Duration::from_secs(2),
                max_cooldown: Duration::from_secs(5),
                probe_jobs: 10,
                probe_lease: Duration::from_secs(5),
            },
            queue_url: Some(queues.url.clone()),
        },
    )
    .expect("the sender's app");

    // The kills: spread over the first invocations, every other one just after an acceptance.
    // A budget is a share (in per cent) of the invocations' mean time so far, so that it lands.
    let mut plan: Vec<(usize, KillMode)> = Vec::new();
    let mut at = 0usize;
    for k in 0..run.kills {
        at += usize::try_from(draws.range(1, 3)).unwrap_or(1);
        let mode = if k % 2 == 0 {
            KillMode::AfterAcceptance {
                ms: draws.range(0, 3),
            }
        } else {
            KillMode::Budget {
                ms: draws.range(10, 90),
            }
        };
        plan.push((at, mode));
    }

    let refused = store::sqs::send_bodies(&setup.sqs, &queues.url, &bodies)
        .await
        .expect("enqueue");
    assert_eq!(refused, 0, "SQS refused jobs");

    // Faults on from here.
    let plan_faults = postmark_faults(run.seed, run.postmark_fault_rate, run.postmark_timeout);
    sim.set_faults(plan_faults.clone());
    let dynamo = DynamoFaults::new([table_name.clone()])
        .seed(run.seed)
        .rate(run.dynamo_fault_rate)
        .kinds([
            FaultKind::Throttle,
            FaultKind::Conflict,
            FaultKind::Internal,
            FaultKind::LostAnswer,
        ]);
    dynamo
        .apply(testkit::endpoint())
        .await
        .expect("the emulator takes the fault plan (dev/moto_server.py)");

    // The handler runs here; the poller hands each event over a channel (as in `sender_load`).
    type Reply = tokio::sync::oneshot::Sender<SqsBatchResponse>;
    let (to_handler, mut events) = tokio::sync::mpsc::unbounded_channel::<(SqsEvent, Reply)>();
    let invoke: InvokeFn = Arc::new(move |event: Value| {
        let to_handler = to_handler.clone();
        Box::pin(async move {
            let event: SqsEvent =
                serde_json::from_value(event).map_err(|e| format!("not an SQS event: {e}"))?;
            let (reply, answer) = tokio::sync::oneshot::channel();
            to_handler
                .send((event, reply))
                .map_err(|_| "the handler stopped".to_owned())?;
            let answer = answer
                .await
                .map_err(|_| "the invocation was killed".to_owned())?;
            serde_json::to_value(answer).map_err(|e| e.to_string())
        })
    });
    let poller = Poller::in_process(
        setup.sqs.clone(),
        PollerConfig {
            queue_url: queues.url.clone(),
            queue_arn: queues.arn.clone(),
            region: "us-east-1".into(),
            invoke_url: String::new(),
            batch_size: run.batch_size,
            window: Duration::from_millis(300),
        },
        invoke,
    );

    let started = Instant::now();
    let time_limit = run.time_limit;
    let watch_sqs = setup.sqs.clone();
    let queue_url = queues.url.clone();
    let draining = async move {
        let (mut invocations, mut failed, mut finished) = (0usize, 0usize, false);
        while started.elapsed() < time_limit {
            match poller.poll_once(Duration::from_secs(1)).await {
                Ok(Some(report)) => {
                    invocations += 1;
                    if report.invoke_error.is_some() {
                        failed += 1;
                    }
                }
                Ok(None) => {
                    if queued(&watch_sqs, &queue_url).await == Some(0) {
                        finished = true;
                        break;
                    }
                }
                Err(e) => {
                    eprintln!("polling failed: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        (invocations, failed, finished)
    };

    let check_table = Table::new(setup.dynamodb.clone(), table_name.clone());
    let mut kills: Vec<Kill> = Vec::new();
    let handling = async {
        let mut invocation = 0usize;
        let mut handled: Vec<Duration> = Vec::new();
        while let Some((event, reply)) = events.recv().await {
            invocation += 1;
            let batch_ids: Vec<String> = event
                .records
                .iter()
                .filter_map(|r| {
                    serde_json::from_str::<Value>(r.body.as_deref().unwrap_or_default())
                        .ok()
                        .and_then(|v| v["id"].as_str().map(str::to_owned))
                })
                .collect();
            let records = event.records.len();
            let kill = plan
                .get(kills.len())
                .filter(|(at, _)| invocation >= *at)
                .map(|(_, mode)| *mode);
            let t0 = Instant::now();
            let accepted_before = sim.counters().messages_accepted;
            let handler =
                sender::handle_until(&app, event, Some(Instant::now() + run.invocation_time));
            let Some(mode) = kill else {
                let _ = reply.send(handler.await);
                handled.push(t0.elapsed());
                continue;
            };
            let mode = match mode {
                KillMode::Budget { ms: share } => {
                    let mean = if handled.is_empty() {
                        Duration::from_secs(1)
                    } else {
                        handled.iter().sum::<Duration>() / handled.len() as u32
                    };
                    KillMode::Budget {
                        ms: u64::try_from(mean.as_millis()).unwrap_or(1000) * share / 100,
                    }
                }
                other => other,
            };
            let trigger = async {
                match mode {
                    KillMode::Budget { ms } => {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    KillMode::AfterAcceptance { ms } => {
                        while sim.counters().messages_accepted == accepted_before {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                }
            };
            tokio::select! {
                answer = handler => {
                    // The invocation ended before the kill; the kill waits for a later one.
                    let _ = reply.send(answer);
                    handled.push(t0.elapsed());
                }
                () = trigger => {
                    // The handler's future is dropped here: nothing after this point of it runs.
                    drop(reply);
                    let after = t0.elapsed();
                    let accepted = sim.counters().messages_accepted - accepted_before;
                    let per_job = accepted_per_job(&sim);
                    let accepted_unrecorded =
                        statuses(&check_table, &batch_ids).await.map(|now| {
                            batch_ids
                                .iter()
                                .collect::<BTreeSet<_>>()
                                .into_iter()
                                .filter(|id| per_job.contains_key(*id))
                                .filter(|id| !now.get(*id).is_some_and(|s| s.is_final()))
                                .count()
                        });
                    kills.push(Kill {
                        invocation,
                        mode,
                        after,
                        records,
                        accepted,
                        accepted_unrecorded,
                    });
                }
            }
        }
    };
    let ((invocations, failed_invocations, finished), ()) = tokio::join!(draining, handling);
    let elapsed = started.elapsed();

    // Counting, with the faults off.
    let dynamo_state = DynamoFaults::fired(testkit::endpoint())
        .await
        .unwrap_or_default();
    let dynamo_fired = dynamo_state.get(&table_name).cloned().unwrap_or_default();
    let dynamo_requests = requests_of(testkit::endpoint(), &table_name).await;
    let _ = DynamoFaults::clear(testkit::endpoint(), Some(&table_name)).await;
    sim.set_faults(Faults::default());

    let final_statuses = statuses(&table, &ids).await.expect("read the jobs");
    let dlq = dead_letters(&setup.sqs, &queues.dlq_url).await;
    let per_job = accepted_per_job(&sim);
    let counters = table
        .campaign_stats(&Campaign {
            kind: CampaignKind::Broadcast,
            id: messages::BROADCAST.to_owned(),
        })
        .await
        .expect("the campaign's counters")
        .counters;

    let mut report = FaultsReport {
        jobs: run.jobs,
        messages_enqueued: bodies.len(),
        finished,
        elapsed,
        invocations,
        failed_invocations,
        kills,
        dynamo_fired,
        dynamo_requests,
        ..FaultsReport::default()
    };
    for (i, id) in ids.iter().enumerate() {
        let status = final_statuses.get(id).copied();
        let name = status.map_or("missing", JobStatus::as_str);
        *report.statuses.entry(name.to_owned()).or_default() += 1;
        let messages = per_job.get(id).copied().unwrap_or(0);
        report.duplicates += messages.saturating_sub(1);
        match status {
            Some(JobStatus::Sent) => report.sent += 1,
            Some(JobStatus::Failed) => report.failed += 1,
            Some(JobStatus::Skipped) => report.skipped += 1,
            Some(JobStatus::Rejected) => report.rejected += 1,
            _ => {}
        }
        match status {
            Some(s) if s.is_final() => {
                let want_messages = usize::from(s == JobStatus::Sent);
                if messages != want_messages {
                    report.wrong.push(format!(
                        "{id}: {} with {messages} accepted messages",
                        s.as_str()
                    ));
                }
                if s != designs[i].expected() {
                    report.wrong.push(format!(
                        "{id}: {} but meant to end {} ({:?})",
                        s.as_str(),
                        designs[i].expected().as_str(),
                        designs[i]
                    ));
                }
            }
            _ if dlq.contains(id) => report.dead_lettered += 1,
            _ if !finished => report.waiting += 1,
            _ => {
                report.lost += 1;
                report
                    .wrong
                    .push(format!("{id}: lost ({name}, {messages} accepted messages)"));
            }
        }
    }
    for (name, have) in [
        ("sent", report.sent),
        ("failed", report.failed),
        ("skipped", report.skipped),
    ] {
        let counter = counters.get(name).copied().unwrap_or(0);
        report.counters_off += (counter - i64::try_from(have).unwrap_or(i64::MAX)).abs();
        report.counters.insert(name.to_owned(), counter);
    }
    let c = sim.counters();
    let batch_calls = c.requests.get("POST /email/batch").copied().unwrap_or(0);
    report.postmark_faults = replay_faults(&plan_faults, batch_calls);
    report.postmark_requests = c.requests;
    report.messages_accepted = c.messages_accepted;
    report
}

/// Requests the emulator saw on the table's fault plan.
async fn requests_of(endpoint: &str, table: &str) -> u64 {
    let v: Value = async {
        reqwest::get(format!("{}/_faults", endpoint.trim_end_matches('/')))
            .await
            .ok()?
            .json()
            .await
            .ok()
    }
    .await
    .unwrap_or(Value::Null);
    v["tables"][table]["requests"].as_u64().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_share_the_rate_evenly() {
        let faults = postmark_faults(3, 0.2, Duration::from_secs(2));
        assert_eq!(faults.rules.len(), 9);
        // The chance of reaching rule k and it firing is the same for every k.
        let mut reach = 1.0;
        for rule in &faults.rules {
            let share = reach * rule.fraction;
            assert!((share - 0.2 / 9.0).abs() < 1e-9, "{share}");
            reach -= share;
        }
        assert!((reach - 0.8).abs() < 1e-9);
        assert!(matches!(
            faults.rules[3].action,
            FaultAction::AcceptThenTimeout { ms } if ms > 2000
        ));
    }

    #[test]
    fn the_replay_fires_the_rate_over_every_kind() {
        let faults = postmark_faults(5, 0.2, Duration::from_secs(2));
        let fired = replay_faults(&faults, 20_000);
        assert_eq!(fired.len(), 9, "{fired:?}");
        let total: u64 = fired.values().sum();
        assert!((3600..4400).contains(&total), "{total}");
        assert_eq!(replay_faults(&faults, 40), replay_faults(&faults, 40));
    }

    #[test]
    fn the_designs_hold_one_of_each() {
        let run = SenderFaults::new(20, 1);
        let d = designs(&run, &mut Draws::new(1, 1));
        for design in [Design::Suppressed, Design::Unverified, Design::Inactive] {
            assert!(d.contains(&design), "{design:?}");
        }
    }
}
