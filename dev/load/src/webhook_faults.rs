//! The webhook under DynamoDB faults: Postmark events in a realistic mix (deliveries, soft and hard
//! bounces, complaints, opens, clicks, subscription changes and reactivations, over several campaigns and
//! subscribers who get several messages), 20% of them redelivered, shuffled with a seed, sent through the
//! webhook function's handler with concurrent invocations against a table whose DynamoDB requests fail at
//! a seeded rate (throttles, transaction conflicts, internal errors, lost answers: `dev/moto_server.py`).
//! Every 5xx, 429 or 408 is sent again later, as Postmark does, a bounded number of times. Meanwhile the
//! stream function reads the table's stream (in process, through the local event source mapping) with a
//! client that meets the same faults: a batch that fails, even after its writes went through and only the
//! answer was lost, is handed to it again whole, as Lambda does.
//!
//! Then, with the faults cleared, everything is read back through the store and compared with what the
//! distinct events imply, computed here from the event list alone (no domain logic is called for it):
//! every campaign counter and per-link click counter (the store's stats reader), every subscriber's
//! standing (status and suppression, the store's standings reader; expected: the strongest suppression
//! since the latest reactivation, a tie going to the suppression), and every subscriber's activity log
//! (one entry per distinct event, none twice; read with one consistent scan of the table, since the
//! emulator's queries slow down as the table grows). `WEBHOOK_FAULTS_KEEP_TABLE=1` keeps the table for
//! a look afterwards.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use domain::EmailAddress;
use domain::ports::RecipientStandings;
use domain::trace::{Campaign, CampaignKind};
use futures::StreamExt;
use serde_json::{Value, json};
use store::aws::StorePolicy;
use store::table::Table;
use testkit::faults::{DynamoFaults, FaultKind};

use crate::capacity::CapacityMeter;

/// Which DynamoDB client the webhook gets.
#[derive(Clone, Debug)]
pub enum Client {
    /// The functions' client ([`store::aws::dynamodb_client`]) with this policy.
    Store(StorePolicy),
    /// The SDK's client as `aws_sdk_dynamodb::Client::new` builds it: the SDK's default retries only (no
    /// transaction-conflict classifier, no timeouts). For checking that the run can fail.
    Plain,
}

#[derive(Clone, Debug)]
pub struct WebhookFaults {
    /// Distinct events; 20% more are sent as redelivered copies.
    pub events: usize,
    pub seed: u64,
    pub concurrency: usize,
    /// Probability that one DynamoDB item request on the table fails.
    pub fault_rate: f64,
    /// Postmark's attempts per request (the first included) before the event counts as lost.
    pub attempts: usize,
    pub client: Client,
}

impl WebhookFaults {
    pub fn new(events: usize, seed: u64) -> Self {
        Self {
            events,
            seed,
            concurrency: 16,
            fault_rate: 0.05,
            attempts: 20,
            client: Client::Store(StorePolicy::default()),
        }
    }
}

#[derive(Debug, Default)]
pub struct FaultsReport {
    pub distinct: usize,
    pub requests: usize,
    pub subscribers: usize,
    pub campaigns: usize,
    /// The answer each request finally got (200, or the last refusal), and how many.
    pub final_answers: BTreeMap<u16, usize>,
    /// Every non-200 answer met along the way.
    pub refusals: BTreeMap<u16, usize>,
    /// Attempts beyond the first.
    pub retries: usize,
    /// 200 answers by status: accepted, duplicate.
    pub statuses: BTreeMap<String, usize>,
    /// Faults the emulator fired on the table, per kind.
    pub faults: BTreeMap<String, u64>,
    pub dynamodb_requests: u64,
    /// Stream batches the stream function handled, and the invocations of them that failed.
    pub stream_batches: usize,
    pub stream_failed_invocations: usize,
    pub sending: Duration,
    pub checking: Duration,
    /// Events none of whose copies ever got a 200.
    pub lost: Vec<String>,
    /// Counters that differ: `campaign counter: got (expected)`.
    pub counters_off: Vec<String>,
    /// Subscribers whose standing differs.
    pub standings_off: Vec<String>,
    /// Activity entries expected and not found.
    pub activity_missing: Vec<String>,
    /// Activity entries found more than once, or found and not expected (each extra entry counts).
    pub activity_doubled: Vec<String>,
}

impl FaultsReport {
    pub fn discrepancies(&self) -> usize {
        self.counters_off.len()
            + self.standings_off.len()
            + self.activity_missing.len()
            + self.activity_doubled.len()
            + self.lost.len()
    }

    /// The summary, ending with the one line `webhook-faults: events=<n> discrepancies=<n>`.
    pub fn print(&self) {
        println!(
            "webhook faults: {} distinct events, {} requests ({} redelivered copies), {} subscribers, {} campaigns",
            self.distinct,
            self.requests,
            self.requests - self.distinct,
            self.subscribers,
            self.campaigns
        );
        println!(
            "  faults fired   {:?} ({} DynamoDB requests)",
            self.faults, self.dynamodb_requests
        );
        println!(
            "  stream         {} batches, {} failed invocations handed again",
            self.stream_batches, self.stream_failed_invocations
        );
        println!(
            "  answers        final {:?}; refusals met {:?}; {} retries; 200s {:?}",
            self.final_answers, self.refusals, self.retries, self.statuses
        );
        println!(
            "  time           {:.1} s sending ({:.0} requests/s), {:.1} s checking",
            self.sending.as_secs_f64(),
            self.requests as f64 / self.sending.as_secs_f64().max(1e-9),
            self.checking.as_secs_f64()
        );
        let show = |what: &str, list: &[String]| {
            println!("  {what:<14} {}", list.len());
            for line in list.iter().take(20) {
                println!("      {line}");
            }
            if list.len() > 20 {
                println!("      ... and {} more", list.len() - 20);
            }
        };
        show("lost events", &self.lost);
        show("counters off", &self.counters_off);
        show("standings off", &self.standings_off);
        show("activity lost", &self.activity_missing);
        show("activity twice", &self.activity_doubled);
        println!(
            "webhook-faults: events={} discrepancies={}",
            self.distinct,
            self.discrepancies()
        );
    }
}

/// splitmix64: a seeded generator, so that a seed always gives the same events in the same order.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed ^ 0x5851_f42d_4c95_7f2d)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// True with probability `percent` / 100.
    pub(crate) fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// The suppressions the harness knows of, with their strength and specificity as the rule states them
/// (complained > hard-bounced > unsubscribed; at one strength and instant the specific reason holds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    SpamComplaint,
    HardBounce,
    Unsubscribed,
    ManualSuppression,
}

impl Reason {
    fn strength(self) -> u8 {
        match self {
            Self::SpamComplaint => 3,
            Self::HardBounce => 2,
            Self::Unsubscribed | Self::ManualSuppression => 1,
        }
    }
    fn specificity(self) -> u8 {
        match self {
            Self::ManualSuppression => 0,
            _ => 1,
        }
    }
    fn status(self) -> &'static str {
        match self {
            Self::SpamComplaint => "complained",
            Self::HardBounce => "deactivated",
            Self::Unsubscribed | Self::ManualSuppression => "unsubscribed",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Self::SpamComplaint => "SpamComplaint",
            Self::HardBounce => "HardBounce",
            Self::Unsubscribed => "Unsubscribed",
            Self::ManualSuppression => "ManualSuppression",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Suppress(Reason),
    Reactivate,
}

/// What one distinct event is expected to do.
#[derive(Clone, Debug)]
struct Sent {
    body: Value,
    /// The activity log's name for it.
    kind: &'static str,
    at: DateTime<Utc>,
    message: Option<usize>,
    subscriber: usize,
    campaign: Option<usize>,
    /// Campaign counters it adds one to directly.
    counters: &'static [&'static str],
    /// An open (`None`) or a click (`Some(link)`), and whether a person made it.
    engagement: Option<(Option<usize>, bool)>,
    change: Option<Change>,
}

const CAMPAIGNS: [(CampaignKind, &str); 4] = [
    (CampaignKind::Broadcast, "wf-winter-sale"),
    (CampaignKind::Broadcast, "wf-newsletter"),
    (CampaignKind::Broadcast, "wf-launch"),
    (CampaignKind::Sequence, "wf-onboarding"),
];

const LINKS: [&str; 4] = [
    "https://shop.example.com/sale",
    "https://shop.example.com/new",
    "https://blog.example.com/winter",
    "https://example.com/account?utm_source=mail",
];

const PERSON: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36";
const SCANNER: &str = "Mozilla/5.0 (compatible; Proofpoint URL Defense)";

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0).unwrap()
}

fn stamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn address(subscriber: usize) -> String {
    format!("reader{subscriber}@example.com")
}

fn message_id(message: usize) -> String {
    format!("00000000-0000-4000-9000-{message:012}")
}

fn common(message: usize, subscriber: usize, campaign: usize) -> Value {
    let (kind, id) = CAMPAIGNS[campaign];
    let campaign_key = match kind {
        CampaignKind::Broadcast => "broadcast_id",
        CampaignKind::Sequence => "sequence_id",
    };
    json!({
        "ServerID": 23,
        "MessageStream": "broadcast",
        "MessageID": message_id(message),
        "Tag": id,
        "Metadata": {
            "job_id": format!("wf-job-{message}"),
            campaign_key: id,
            "email_type": if kind == CampaignKind::Broadcast { "broadcast" } else { "sequence" },
            "subscriber_id": format!("sub-{subscriber}"),
        },
    })
}

fn with(mut base: Value, fields: Value) -> Value {
    if let (Some(b), Some(f)) = (base.as_object_mut(), fields.as_object()) {
        for (k, v) in f {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

/// Exactly `n` distinct events. Every event's time is distinct (a microsecond counter is added), except
/// reactivations deliberately placed at the instant of a suppression of the same subscriber, and the
/// SubscriptionChange Postmark sends with a hard bounce or a complaint, at the bounce's time.
fn generate(n: usize, seed: u64) -> Vec<Sent> {
    let mut rng = Rng::new(seed);
    let subscribers = (n / 8).max(2);
    let mut events: Vec<Sent> = Vec::with_capacity(n + 8);
    // Suppression times per subscriber, for reactivations that tie with one.
    let mut suppressed_at: HashMap<usize, Vec<DateTime<Utc>>> = HashMap::new();
    let mut tick = 0i64;
    let mut unique = |at: DateTime<Utc>| {
        tick += 1;
        at + chrono::Duration::microseconds(tick)
    };
    let mut bounce_id = 0usize;
    let mut message = 0usize;
    while events.len() < n {
        message += 1;
        let m = message;
        let s = rng.below(subscribers);
        let c = rng.below(CAMPAIGNS.len());
        let sent_at = base() + chrono::Duration::seconds((m as i64) * 5);
        let head = common(m, s, c);
        let email = address(s);
        let event = |body: Value, kind, at, counters, engagement, change| Sent {
            body,
            kind,
            at,
            message: Some(m),
            subscriber: s,
            campaign: Some(c),
            counters,
            engagement,
            change,
        };
        // Postmark's SubscriptionChange for a suppression it made itself, at the same instant.
        let postmark_suppression = |at, name: &str, reason| {
            event(
                with(
                    head.clone(),
                    json!({"RecordType": "SubscriptionChange", "Recipient": email, "ChangedAt": stamp(at),
                       "Origin": "Recipient", "SuppressSending": true, "SuppressionReason": name}),
                ),
                "suppressed",
                at,
                &[],
                None,
                Some(Change::Suppress(reason)),
            )
        };
        let roll = rng.below(100);
        if roll < 6 {
            bounce_id += 1;
            let at = unique(sent_at + chrono::Duration::seconds(30));
            events.push(event(
                with(
                    head.clone(),
                    json!({"RecordType": "Bounce", "ID": bounce_id, "Type": "SoftBounce", "TypeCode": 4096,
                       "Email": email, "BouncedAt": stamp(at), "Description": "mailbox full", "Inactive": false}),
                ),
                "soft_bounce",
                at,
                &["bounced_soft"],
                None,
                None,
            ));
            continue;
        }
        if roll < 10 {
            bounce_id += 1;
            let at = unique(sent_at + chrono::Duration::seconds(20));
            events.push(event(
                with(
                    head.clone(),
                    json!({"RecordType": "Bounce", "ID": bounce_id, "Type": "HardBounce", "TypeCode": 1,
                       "Email": email, "BouncedAt": stamp(at), "Description": "no such user", "Inactive": true}),
                ),
                "hard_bounce",
                at,
                &["bounced_hard"],
                None,
                Some(Change::Suppress(Reason::HardBounce)),
            ));
            suppressed_at.entry(s).or_default().push(at);
            if rng.chance(50) {
                // Postmark's SubscriptionChange for the same deactivation, at the same instant.
                events.push(postmark_suppression(at, "HardBounce", Reason::HardBounce));
            }
            continue;
        }
        let delivered = unique(sent_at + chrono::Duration::seconds(2));
        events.push(event(
            with(
                head.clone(),
                json!({"RecordType": "Delivery", "Recipient": email, "DeliveredAt": stamp(delivered),
                   "Details": "smtp;250 2.0.0 OK"}),
            ),
            "delivered",
            delivered,
            &["delivered"],
            None,
            None,
        ));
        let opens = [0, 0, 1, 1, 1, 2, 3][rng.below(7)];
        for i in 0..opens {
            let human = !rng.chance(10);
            let at = unique(delivered + chrono::Duration::seconds(60 + rng.below(86_400) as i64));
            events.push(event(
                with(
                    head.clone(),
                    json!({"RecordType": "Open", "Recipient": email, "ReceivedAt": stamp(at),
                       "FirstOpen": i == 0, "Platform": "WebMail", "ReadSeconds": 12,
                       "UserAgent": if human { PERSON } else { SCANNER },
                       "Client": {"Name": "Chrome", "Company": "Google", "Family": "Chrome"},
                       "OS": {"Name": "Windows 10", "Company": "Microsoft", "Family": "Windows"},
                       "Geo": {"CountryISOCode": "DE", "Country": "Germany", "City": "Berlin"}}),
                ),
                "open",
                at,
                &[],
                Some((None, human)),
                None,
            ));
        }
        let clicks = if opens > 0 {
            [0, 0, 1, 2][rng.below(4)]
        } else {
            0
        };
        for _ in 0..clicks {
            let link = rng.below(LINKS.len());
            let human = !rng.chance(10);
            // Well past the delivery, so that no person's click looks like a scanner's instant click.
            let at = unique(delivered + chrono::Duration::seconds(120 + rng.below(86_400) as i64));
            events.push(event(
                with(
                    head.clone(),
                    json!({"RecordType": "Click", "Recipient": email, "ReceivedAt": stamp(at),
                       "OriginalLink": LINKS[link], "ClickLocation": "HTML", "Platform": "Desktop",
                       "UserAgent": if human { PERSON } else { SCANNER }}),
                ),
                "click",
                at,
                &[],
                Some((Some(link), human)),
                None,
            ));
        }
        if rng.chance(3) {
            bounce_id += 1;
            let at = unique(delivered + chrono::Duration::seconds(rng.below(172_800) as i64));
            events.push(event(
                with(
                    head.clone(),
                    json!({"RecordType": "SpamComplaint", "ID": bounce_id, "Type": "SpamComplaint",
                       "TypeCode": 512, "Email": email, "BouncedAt": stamp(at), "Description": "complaint"}),
                ),
                "spam_complaint",
                at,
                &["complaints"],
                None,
                Some(Change::Suppress(Reason::SpamComplaint)),
            ));
            suppressed_at.entry(s).or_default().push(at);
            if rng.chance(50) {
                events.push(postmark_suppression(
                    at,
                    "SpamComplaint",
                    Reason::SpamComplaint,
                ));
            }
        }
        if rng.chance(6) {
            // The recipient unsubscribes through the message's link, or an admin suppresses the address.
            let by_recipient = rng.chance(70);
            let at = unique(delivered + chrono::Duration::seconds(rng.below(172_800) as i64));
            events.push(event(
                with(
                    head.clone(),
                    json!({"RecordType": "SubscriptionChange", "Recipient": email, "ChangedAt": stamp(at),
                       "Origin": if by_recipient { "Recipient" } else { "Customer" },
                       "SuppressSending": true, "SuppressionReason": "ManualSuppression"}),
                ),
                "suppressed",
                at,
                if by_recipient { &["unsubscribes"] } else { &[] },
                None,
                Some(Change::Suppress(if by_recipient {
                    Reason::Unsubscribed
                } else {
                    Reason::ManualSuppression
                })),
            ));
            suppressed_at.entry(s).or_default().push(at);
        }
        if rng.chance(4) {
            // An admin reactivates the address (no message, no metadata): sometimes at the very instant of
            // one of its suppressions, which then holds.
            let tie = suppressed_at
                .get(&s)
                .filter(|times| !times.is_empty() && rng.chance(40))
                .map(|times| times[rng.below(times.len())]);
            let at = tie.unwrap_or_else(|| {
                unique(delivered + chrono::Duration::seconds(rng.below(172_800) as i64))
            });
            events.push(Sent {
                body: json!({"RecordType": "SubscriptionChange", "ServerID": 23, "MessageStream": "broadcast",
                    "MessageID": null, "Recipient": email, "ChangedAt": stamp(at), "Origin": "Customer",
                    "SuppressSending": false, "SuppressionReason": null, "Tag": null, "Metadata": {}}),
                kind: "reactivated",
                at,
                message: None,
                subscriber: s,
                campaign: None,
                counters: &[],
                engagement: None,
                change: Some(Change::Reactivate),
            });
        }
    }
    events.truncate(n);
    events
}

/// One campaign's counters, and per link its clicks, unique, human and unique human clicks.
type Expected = (BTreeMap<String, i64>, BTreeMap<String, [i64; 4]>);

/// What the events imply for each campaign's counters and its links' click counters.
fn expected_counters(events: &[Sent]) -> BTreeMap<usize, Expected> {
    let mut out: BTreeMap<usize, Expected> = BTreeMap::new();
    // Per campaign and message (and link): whether any, and any human, engagement was seen already.
    let mut seen: HashMap<(usize, usize, Option<usize>, bool), bool> = HashMap::new();
    for e in events {
        let Some(c) = e.campaign else { continue };
        let (counters, links) = out.entry(c).or_default();
        for name in e.counters {
            *counters.entry((*name).to_owned()).or_default() += 1;
        }
        let (Some((link, human)), Some(m)) = (e.engagement, e.message) else {
            continue;
        };
        let prefix = if link.is_some() { "clicks" } else { "opens" };
        let is_click = link.is_some();
        let first = !seen.contains_key(&(m, c, None, is_click));
        let first_human = human && !seen.get(&(m, c, None, is_click)).copied().unwrap_or(false);
        let was_human = seen.get(&(m, c, None, is_click)).copied().unwrap_or(false);
        seen.insert((m, c, None, is_click), was_human || human);
        let mut add = |name: String| *counters.entry(name).or_default() += 1;
        add(prefix.to_owned());
        if first {
            add(format!("{prefix}_unique"));
        }
        if human {
            add(format!("{prefix}_human"));
        }
        if first_human {
            add(format!("{prefix}_unique_human"));
        }
        if let Some(l) = link {
            let key = (m, c, Some(l), true);
            let first = !seen.contains_key(&key);
            let was_human = seen.get(&key).copied().unwrap_or(false);
            seen.insert(key, was_human || human);
            let row = links.entry(LINKS[l].to_owned()).or_default();
            row[0] += 1;
            row[1] += i64::from(first);
            row[2] += i64::from(human);
            row[3] += i64::from(human && !was_human);
        }
    }
    out
}

/// The standing the rule gives: the strongest suppression at or after the latest reactivation (the later
/// of one strength, then the more specific reason); else active. As (status, reason).
fn expected_standing(changes: &[(Change, DateTime<Utc>)]) -> (&'static str, Option<&'static str>) {
    let reactivated = changes
        .iter()
        .filter(|(c, _)| *c == Change::Reactivate)
        .map(|(_, at)| *at)
        .max();
    let best = changes
        .iter()
        .filter_map(|(c, at)| match c {
            Change::Suppress(r) if reactivated.is_none_or(|x| *at >= x) => Some((*r, *at)),
            _ => None,
        })
        .max_by_key(|(r, at)| (r.strength(), *at, r.specificity()));
    match best {
        Some((r, _)) => (r.status(), Some(r.name())),
        None => ("active", None),
    }
}

fn api_gateway_event(body: &Value, password: &str, trace: usize, attempt: usize) -> String {
    json!({
        "version": "2.0", "routeKey": "POST /wh/postmark", "rawPath": "/wh/postmark",
        "rawQueryString": format!("password={password}"),
        "queryStringParameters": {"password": password},
        "headers": {"content-type": "application/json", "user-agent": "Postmark",
                    "x-pm-webhook-trace-id": format!("wf-trace-{trace}")},
        "requestContext": {"accountId": "123456789012", "apiId": "load", "domainName": "load.local",
            "domainPrefix": "load", "http": {"method": "POST", "path": "/wh/postmark",
            "protocol": "HTTP/1.1", "sourceIp": "3.134.147.250", "userAgent": "Postmark"},
            "requestId": format!("wf-{trace}-{attempt}"), "routeKey": "POST /wh/postmark", "stage": "$default",
            "time": "27/Nov/2026:09:00:00 +0000", "timeEpoch": 1795770000000i64},
        "body": body.to_string(), "isBase64Encoded": false,
    })
    .to_string()
}

/// What became of one request: its answers in order, and the status of the 200 if it got one.
struct Outcome {
    event: usize,
    answers: Vec<u16>,
    status: Option<String>,
}

async fn deliver(app: &webhook::App, body: &Value, event: usize, attempts: usize) -> Outcome {
    let mut answers = Vec::new();
    for attempt in 1..=attempts.max(1) {
        let raw = api_gateway_event(body, "load-password", event, attempt);
        let req = lambda_http::request::from_str(&raw).expect("a valid event");
        let resp = webhook::handle(app, req).await;
        let code = resp.status().as_u16();
        answers.push(code);
        if code == 200 {
            let body: Value = serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null);
            let status = body["status"].as_str().unwrap_or_default().to_owned();
            return Outcome {
                event,
                answers,
                status: Some(status),
            };
        }
        if !(code >= 500 || code == 429 || code == 408) {
            break; // Postmark drops any other answer for good.
        }
        // Postmark retries later; here, soon: 20 ms more each time, at most 250 ms.
        tokio::time::sleep(Duration::from_millis((20 * attempt as u64).min(250))).await;
    }
    Outcome {
        event,
        answers,
        status: None,
    }
}

pub async fn run(cfg: &WebhookFaults) -> FaultsReport {
    let sdk = testkit::sdk_config().await;
    let meter = CapacityMeter::default();
    let dynamodb = match &cfg.client {
        Client::Store(policy) => aws_sdk_dynamodb::Client::from_conf(
            store::aws::dynamodb_config(&sdk, policy)
                .interceptor(meter.clone())
                .build(),
        ),
        Client::Plain => aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .interceptor(meter.clone())
                .build(),
        ),
    };
    // Table set-up and the read-back use the functions' client, on a table without faults.
    let checker = store::aws::dynamodb_client(&sdk, &testkit::test_policy());
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let table_name = testkit::unique("load-webhook-faults");
    store::schema::create_table(&checker, &table_name)
        .await
        .expect("create the table");
    let password_secret = testkit::unique("load/wf-webhook-password");
    let tracking_secret = testkit::unique("load/wf-tracking-key");
    for (name, value) in [
        (&password_secret, "load-password"),
        (&tracking_secret, "load-tracking-key"),
    ] {
        secrets
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .expect("secret");
    }
    let poller = local_stack::stream_poller::in_process(
        &sdk,
        dynamodb.clone(),
        &table_name,
        1000,
        Duration::from_millis(200),
    )
    .await
    .expect("the table's stream");
    let storm_over = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let consumer = {
        let storm_over = storm_over.clone();
        tokio::spawn(async move {
            let mut batches = (0, 0);
            loop {
                match poller.poll_once(Duration::from_millis(300)).await {
                    Ok(Some(b)) => {
                        batches.0 += 1;
                        batches.1 += b.failed_attempts;
                    }
                    Ok(None) if storm_over.load(std::sync::atomic::Ordering::SeqCst) => {
                        return batches;
                    }
                    Ok(None) => {}
                    // Reading the stream meets no faults (the plan is the table's); keep polling.
                    Err(e) => eprintln!("reading the stream: {e}"),
                }
            }
        })
    };
    let app = webhook::App::with_clients(
        dynamodb,
        secrets.clone(),
        webhook::Config {
            table_name: table_name.clone(),
            webhook_password_secret: password_secret.clone(),
            tracking_key_secret: tracking_secret.clone(),
            password_grace: chrono::Duration::hours(24),
            secrets_ttl: Duration::from_secs(300),
            password_recheck: Duration::from_secs(5),
        },
    );

    let events = generate(cfg.events, cfg.seed);
    let mut rng = Rng::new(cfg.seed.wrapping_mul(31).wrapping_add(1));
    let mut order: Vec<usize> = (0..events.len()).collect();
    for _ in 0..events.len() / 5 {
        order.push(rng.below(events.len()));
    }
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }

    let endpoint = testkit::endpoint();
    DynamoFaults::new([table_name.as_str()])
        .seed(cfg.seed)
        .rate(cfg.fault_rate)
        .kinds([
            FaultKind::Throttle,
            FaultKind::Conflict,
            FaultKind::Internal,
            FaultKind::LostAnswer,
        ])
        .apply(endpoint)
        .await
        .expect("install the fault plan (is dev/moto_server.py the emulator?)");

    let started = Instant::now();
    let app_ref = &app;
    let events_ref = &events;
    let outcomes: Vec<Outcome> = futures::stream::iter(order.iter().copied())
        .map(|i| deliver(app_ref, &events_ref[i].body, i, cfg.attempts))
        .buffer_unordered(cfg.concurrency.max(1))
        .collect()
        .await;
    let sending = started.elapsed();
    storm_over.store(true, std::sync::atomic::Ordering::SeqCst);
    let (stream_batches, stream_failed_invocations) = consumer.await.expect("the stream consumer");
    let fired = DynamoFaults::fired(endpoint).await.unwrap_or_default();
    DynamoFaults::clear(endpoint, Some(&table_name))
        .await
        .expect("clear the fault plan");

    let checking_started = Instant::now();
    let mut report = FaultsReport {
        distinct: events.len(),
        requests: outcomes.len(),
        faults: fired.get(&table_name).cloned().unwrap_or_default(),
        dynamodb_requests: meter.usage().requests_of("DynamoDB"),
        stream_batches,
        stream_failed_invocations,
        sending,
        ..FaultsReport::default()
    };
    let mut answered = vec![false; events.len()];
    for o in &outcomes {
        report.retries += o.answers.len().saturating_sub(1);
        if let Some(last) = o.answers.last() {
            *report.final_answers.entry(*last).or_default() += 1;
        }
        for code in o.answers.iter().filter(|c| **c != 200) {
            *report.refusals.entry(*code).or_default() += 1;
        }
        if let Some(status) = &o.status {
            answered[o.event] = true;
            *report.statuses.entry(status.clone()).or_default() += 1;
        }
    }
    for (i, ok) in answered.iter().enumerate() {
        if !ok {
            let e = &events[i];
            report.lost.push(format!(
                "{} of {} at {} (answers {:?})",
                e.kind,
                address(e.subscriber),
                stamp(e.at),
                outcomes
                    .iter()
                    .filter(|o| o.event == i)
                    .map(|o| o.answers.clone())
                    .collect::<Vec<_>>()
            ));
        }
    }

    let table = Table::new(checker.clone(), table_name.clone());
    check_counters(&table, &events, &mut report).await;
    check_standings(&table, &events, &mut report).await;
    check_activity(&checker, &table_name, &events, &mut report).await;
    report.checking = checking_started.elapsed();

    if std::env::var_os("WEBHOOK_FAULTS_KEEP_TABLE").is_some() {
        eprintln!("table kept: {table_name}");
    } else {
        let _ = checker.delete_table().table_name(&table_name).send().await;
    }
    for name in [&password_secret, &tracking_secret] {
        let _ = secrets
            .delete_secret()
            .secret_id(name)
            .force_delete_without_recovery(true)
            .send()
            .await;
    }
    report
}

async fn check_counters(table: &Table, events: &[Sent], report: &mut FaultsReport) {
    let expected = expected_counters(events);
    for (c, (kind, id)) in CAMPAIGNS.iter().enumerate() {
        let Some((want, want_links)) = expected.get(&c) else {
            continue;
        };
        report.campaigns += 1;
        let stats = table
            .campaign_stats(&Campaign {
                kind: *kind,
                id: (*id).to_owned(),
            })
            .await
            .expect("read the campaign's stats");
        let mut names: Vec<&String> = stats.counters.keys().chain(want.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let got = stats.counters.get(name).copied().unwrap_or(0);
            let exp = want.get(name).copied().unwrap_or(0);
            if got != exp {
                report
                    .counters_off
                    .push(format!("{id} {name}: {got} (expected {exp})"));
            }
        }
        let got_links: BTreeMap<&str, [i64; 4]> = stats
            .links
            .iter()
            .map(|l| {
                (
                    l.url.as_str(),
                    [
                        l.clicks,
                        l.clicks_unique,
                        l.clicks_human,
                        l.clicks_unique_human,
                    ],
                )
            })
            .collect();
        for url in LINKS {
            let got = got_links.get(url).copied().unwrap_or_default();
            let exp = want_links.get(url).copied().unwrap_or_default();
            let names = [
                "clicks",
                "clicks_unique",
                "clicks_human",
                "clicks_unique_human",
            ];
            for i in 0..4 {
                if got[i] != exp[i] {
                    report.counters_off.push(format!(
                        "{id} link {url} {}: {} (expected {})",
                        names[i], got[i], exp[i]
                    ));
                }
            }
        }
    }
}

async fn check_standings(table: &Table, events: &[Sent], report: &mut FaultsReport) {
    let mut changes: BTreeMap<usize, Vec<(Change, DateTime<Utc>)>> = BTreeMap::new();
    for e in events {
        let list = changes.entry(e.subscriber).or_default();
        if let Some(c) = e.change {
            list.push((c, e.at));
        }
    }
    report.subscribers = changes.len();
    let addresses: Vec<EmailAddress> = changes
        .keys()
        .map(|s| EmailAddress::parse(&address(*s)).expect("an address"))
        .collect();
    let stored = table
        .standings(&addresses)
        .await
        .expect("read the standings");
    for (s, list) in &changes {
        let email = EmailAddress::parse(&address(*s)).expect("an address");
        let (status, reason) = expected_standing(list);
        let got = stored.get(email.key());
        let got_status = got.map_or("active", |g| g.status.as_str());
        let got_reason = got.and_then(|g| g.suppression).map(|r| r.as_str());
        if got_status != status || got_reason != reason {
            let mut history: Vec<String> = list
                .iter()
                .map(|(c, at)| match c {
                    Change::Suppress(r) => format!("{} {}", r.name(), stamp(*at)),
                    Change::Reactivate => format!("reactivate {}", stamp(*at)),
                })
                .collect();
            history.sort_by(|a, b| a.rsplit(' ').next().cmp(&b.rsplit(' ').next()));
            report.standings_off.push(format!(
                "{}: {got_status}/{} (expected {status}/{}) from [{}]",
                email.as_str(),
                got_reason.unwrap_or("-"),
                reason.unwrap_or("-"),
                history.join(", ")
            ));
        }
    }
}

/// One activity entry as the harness identifies it: kind, time and message.
type EntryKey = (String, DateTime<Utc>, Option<String>);

async fn check_activity(
    client: &aws_sdk_dynamodb::Client,
    table_name: &str,
    events: &[Sent],
    report: &mut FaultsReport,
) {
    let mut want: BTreeMap<usize, BTreeMap<EntryKey, usize>> = BTreeMap::new();
    for e in events {
        *want
            .entry(e.subscriber)
            .or_default()
            .entry((e.kind.to_owned(), e.at, e.message.map(message_id)))
            .or_default() += 1;
    }
    // One scan of the table rather than a query per subscriber: the emulator's queries slow down with
    // the table's size, so thousands of them would take longer than the run.
    let by_address: HashMap<String, usize> = want
        .keys()
        .map(|s| {
            (
                format!(
                    "SUB#{}",
                    EmailAddress::parse(&address(*s)).expect("an address").key()
                ),
                *s,
            )
        })
        .collect();
    let mut found: BTreeMap<usize, BTreeMap<EntryKey, Vec<String>>> =
        want.keys().map(|s| (*s, BTreeMap::new())).collect();
    let mut pages = client
        .scan()
        .table_name(table_name)
        .consistent_read(true)
        .into_paginator()
        .items()
        .send();
    while let Some(item) = pages.next().await {
        let item = item.expect("scan the table");
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let (Some(pk), Some(sk)) = (text(store::schema::PK), text(store::schema::SK)) else {
            continue;
        };
        if !sk.starts_with("ACT#") {
            continue;
        }
        let Some(s) = by_address.get(&pk).copied() else {
            report
                .activity_doubled
                .push(format!("activity entry of an unknown address: {pk} {sk}"));
            continue;
        };
        let at = text("at")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc));
        // An event's record carries the event; an entry of the sender's carries its detail.
        let detail: Value = text("event")
            .or_else(|| text("detail"))
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or(Value::Null);
        let (Some(kind), Some(at)) = (text("kind"), at) else {
            report
                .activity_doubled
                .push(format!("unreadable activity entry {pk} {sk}"));
            continue;
        };
        let message = detail["message_id"].as_str().map(str::to_owned);
        found
            .entry(s)
            .or_default()
            .entry((kind, at, message))
            .or_default()
            .push(text("id").unwrap_or(sk));
    }
    for (s, got) in found {
        let expected = &want[&s];
        for (key, n) in expected {
            let have = got.get(key).map_or(0, Vec::len);
            let what = || {
                format!(
                    "{} {} at {}{}",
                    address(s),
                    key.0,
                    stamp(key.1),
                    key.2
                        .as_deref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                )
            };
            for _ in have..*n {
                report.activity_missing.push(what());
            }
            for _ in *n..have {
                report
                    .activity_doubled
                    .push(format!("{} ids {:?}", what(), got[key]));
            }
        }
        for (key, ids) in &got {
            if !expected.contains_key(key) {
                for id in ids {
                    report.activity_doubled.push(format!(
                        "{} unexpected {} at {} id {id}",
                        address(s),
                        key.0,
                        stamp(key.1)
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_events_and_every_kind_occurs() {
        let a = generate(2_000, 3);
        let b = generate(2_000, 3);
        assert_eq!(a.len(), 2_000);
        assert!(a.iter().zip(&b).all(|(x, y)| x.body == y.body));
        for kind in [
            "delivered",
            "soft_bounce",
            "hard_bounce",
            "spam_complaint",
            "open",
            "click",
            "suppressed",
            "reactivated",
        ] {
            assert!(a.iter().any(|e| e.kind == kind), "{kind}");
        }
        assert_ne!(generate(100, 1)[5].body, generate(100, 2)[5].body);
        // Some reactivations fall at the instant of a suppression of the same subscriber (the test suite's
        // run, 1,000 events with seed 8, too).
        for events in [&a, &generate(1_000, 8)] {
            let ties = events
                .iter()
                .filter(|r| r.change == Some(Change::Reactivate))
                .filter(|r| {
                    events.iter().any(|e| {
                        e.subscriber == r.subscriber
                            && e.at == r.at
                            && matches!(e.change, Some(Change::Suppress(_)))
                    })
                })
                .count();
            assert!(ties > 0);
        }
    }

    #[test]
    fn the_expected_standing_follows_strength_then_reactivation() {
        let t = |m: i64| base() + chrono::Duration::minutes(m);
        use Change::*;
        use Reason::*;
        assert_eq!(
            expected_standing(&[
                (Suppress(HardBounce), t(0)),
                (Suppress(Unsubscribed), t(10))
            ]),
            ("deactivated", Some("HardBounce"))
        );
        assert_eq!(
            expected_standing(&[(Suppress(SpamComplaint), t(0)), (Reactivate, t(5))]),
            ("active", None)
        );
        assert_eq!(
            expected_standing(&[(Suppress(SpamComplaint), t(5)), (Reactivate, t(5))]),
            ("complained", Some("SpamComplaint"))
        );
        assert_eq!(
            expected_standing(&[
                (Suppress(Unsubscribed), t(5)),
                (Suppress(ManualSuppression), t(5))
            ]),
            ("unsubscribed", Some("Unsubscribed"))
        );
    }
}
