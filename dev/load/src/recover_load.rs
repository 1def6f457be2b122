//! Webhooks lost for good, recovered: the end-to-end stack in one process ([`e2e::Stack`]: a table in the
//! AWS emulator, the Postmark simulator posting its webhooks to the webhook function, the sender, the
//! stream function and the recovery function), with Postmark's open and link tracking on and the
//! simulator losing a seeded share of its webhook posts for good. A broadcast goes out through the
//! sender's handler in batches of up to 500 to a seeded mix of recipients (hard bounces, soft bounces,
//! spam complaints, the rest delivered), readers open and click in Postmark, and once everything has
//! settled the table is short of what Postmark knows. One recovery run then reads Postmark's APIs back.
//!
//! The truth is the simulator's: its messages and each recipient's outcome (sent, delivered, bounced
//! hard or soft, complained), the opens and clicks it took, and every event it produced (one webhook
//! post each, lost or not). From it, computed here without the system's domain logic, come every campaign
//! counter (the human ones too: the simulator's readers use a browser's user agent, so every open is
//! human, and a click is a scanner's when it came less than 10 s after the send its metadata names),
//! each link's clicks, and the suppressions (hard bounces and complaints). Each counter or suppression
//! that differs after the recovery run is a discrepancy.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use domain::servers::{LinkTracking, PostmarkTracking};
use domain::trace::{Campaign, CampaignKind};
use domain::{EmailAddress, SuppressionReason};
use e2e::Stack;
use futures::StreamExt;
use postmark_sim::{ClickRequest, OpenRequest, RecipientOutcome, WebhookLoss};
use serde_json::json;

use crate::webhook_faults::Rng;

/// The links of the broadcast's HTML body, clicked in Postmark.
const LINKS: [&str; 2] = ["https://shop.example/new", "https://shop.example/sale"];

/// A click less than this long after the send is a scanner's (the system's rule, restated here).
const MIN_HUMAN_CLICK_SECONDS: i64 = 10;

/// Activity kinds (as the activity log counts them) of the events Postmark produces here.
const EVENT_KINDS: [&str; 7] = [
    "delivered",
    "bounced_hard",
    "bounced_soft",
    "complaints",
    "opens",
    "clicks",
    "suppressed",
];

#[derive(Clone, Debug)]
pub struct RecoverLoad {
    pub jobs: usize,
    /// Share of the webhook posts the simulator loses for good.
    pub drop: f64,
    pub seed: u64,
    /// Percent of the delivered messages opened, and clicked.
    pub open_percent: usize,
    pub click_percent: usize,
    /// Run the recovery function (off: a run that records nothing, which must show discrepancies).
    pub recover: bool,
}

impl RecoverLoad {
    pub fn new(jobs: usize, drop: f64, seed: u64) -> Self {
        Self {
            jobs,
            drop,
            seed,
            open_percent: 40,
            click_percent: 15,
            recover: true,
        }
    }
}

/// One counter: what the truth implies, what the table held before recovery, and after.
#[derive(Clone, Debug)]
pub struct CounterCheck {
    pub name: String,
    pub expected: i64,
    pub before: i64,
    pub found: i64,
}

#[derive(Debug, Default)]
pub struct RecoverReport {
    pub jobs: usize,
    pub drop: f64,
    pub seed: u64,
    /// Recipients by kind: normal, hard_bounce, soft_bounce, spam_complaint.
    pub mix: BTreeMap<&'static str, usize>,
    /// Distinct events Postmark produced (one webhook post each), by record type.
    pub expected_by_type: BTreeMap<String, u64>,
    /// Of them, the posts the simulator lost for good, by record type.
    pub lost_by_type: BTreeMap<String, u64>,
    /// Events in the activity log before and after recovery, by kind.
    pub before_by_kind: BTreeMap<String, i64>,
    pub after_by_kind: BTreeMap<String, i64>,
    /// Events expected in the log, by the same kinds.
    pub expected_by_kind: BTreeMap<String, i64>,
    /// What the recovery run recorded, by event kind.
    pub recovered_by_kind: BTreeMap<String, u64>,
    pub already_recorded: u64,
    pub suppressions_fixed: u64,
    pub messages_checked: u64,
    pub postmark_calls: u64,
    pub recovery_errors: Vec<String>,
    pub counters: Vec<CounterCheck>,
    /// Clicks per link: `(url, counter, expected, found)`.
    pub link_counters: Vec<(String, String, i64, i64)>,
    pub suppressions_expected: usize,
    pub suppressions_held: usize,
    /// Every mismatch: `what: expected .., found ..`.
    pub mismatches: Vec<String>,
    pub setup: Duration,
    pub sending: Duration,
    pub settling: Duration,
    pub recovery: Duration,
    pub total: Duration,
}

impl RecoverReport {
    pub fn expected(&self) -> u64 {
        self.expected_by_type.values().sum()
    }

    pub fn recorded_before(&self) -> u64 {
        self.before_by_kind.values().map(|n| *n as u64).sum()
    }

    pub fn recovered(&self) -> u64 {
        self.recovered_by_kind.values().sum()
    }

    pub fn discrepancies(&self) -> usize {
        self.mismatches.len()
    }

    pub fn last_line(&self) -> String {
        format!(
            "recover: expected={} recorded_before={} recovered={} discrepancies={}",
            self.expected(),
            self.recorded_before(),
            self.recovered(),
            self.discrepancies()
        )
    }

    /// The summary, ending with [`RecoverReport::last_line`].
    pub fn print(&self) {
        println!(
            "recover run: {} jobs, {:.0}% of the webhook posts lost for good (seed {}); recipients {:?}",
            self.jobs,
            self.drop * 100.0,
            self.seed,
            self.mix
        );
        println!(
            "  Postmark       {} events {:?}; {} lost {:?}",
            self.expected(),
            self.expected_by_type,
            self.lost_by_type.values().sum::<u64>(),
            self.lost_by_type
        );
        println!(
            "  before         {} events in the activity log {:?}",
            self.recorded_before(),
            self.before_by_kind
        );
        println!(
            "  recovery       {} recorded {:?}, {} already recorded, {} suppressions fixed, {} messages checked, {} Postmark API calls, {} errors",
            self.recovered(),
            self.recovered_by_kind,
            self.already_recorded,
            self.suppressions_fixed,
            self.messages_checked,
            self.postmark_calls,
            self.recovery_errors.len()
        );
        for e in self.recovery_errors.iter().take(10) {
            println!("      {e}");
        }
        let short: BTreeMap<&String, i64> = self
            .expected_by_kind
            .iter()
            .map(|(k, want)| (k, want - self.after_by_kind.get(k).copied().unwrap_or(0)))
            .filter(|(_, n)| *n != 0)
            .collect();
        println!(
            "  after          {} of {} events in the activity log; short by kind {:?} (not counted: a lost subscription change whose bounce or complaint came is held by the suppression)",
            self.after_by_kind.values().sum::<i64>(),
            self.expected_by_kind.values().sum::<i64>(),
            short
        );
        println!(
            "  {:<20} {:>9} {:>9} {:>9}",
            "counter", "expected", "before", "found"
        );
        for c in &self.counters {
            println!(
                "  {:<20} {:>9} {:>9} {:>9}{}",
                c.name,
                c.expected,
                c.before,
                c.found,
                if c.expected == c.found { "" } else { "  <-" }
            );
        }
        for (url, name, want, got) in &self.link_counters {
            println!("  link {url} {name:<20} {want:>6} {got:>6}");
        }
        println!(
            "  suppressions   {} expected (hard bounces and complaints), {} held",
            self.suppressions_expected, self.suppressions_held
        );
        println!(
            "  time           {:.1} s: setup {:.1} s, sending and engagement {:.1} s, settling {:.1} s, recovery run {:.1} s",
            self.total.as_secs_f64(),
            self.setup.as_secs_f64(),
            self.sending.as_secs_f64(),
            self.settling.as_secs_f64(),
            self.recovery.as_secs_f64()
        );
        for m in self.mismatches.iter().take(30) {
            println!("  discrepancy    {m}");
        }
        if self.mismatches.len() > 30 {
            println!("  ... and {} more", self.mismatches.len() - 30);
        }
        println!("{}", self.last_line());
    }
}

fn job(id: &str, broadcast: &str, to: &str) -> String {
    json!({
        "version": 1,
        "id": id,
        "email_type": "broadcast",
        "broadcast_id": broadcast,
        "from": "The Corner Bookshop <news@example.com>",
        "to": to,
        "subject": "Spring has sprung",
        "html_body": format!(
            "<p>Twelve new titles: <a href=\"{}\">see them</a>, and a sale: <a href=\"{}\">this way</a></p>",
            LINKS[0], LINKS[1]
        ),
    })
    .to_string()
}

/// The links of an HTML body, in order.
fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// The activity kind of a webhook's record type (bounces by their `Type`).
fn kind_of(record_type: &str, payload: &serde_json::Value) -> String {
    match record_type {
        "Delivery" => "delivered".into(),
        "Bounce" => match payload["Type"].as_str() {
            Some("HardBounce") => "bounced_hard".into(),
            Some("SoftBounce") => "bounced_soft".into(),
            other => format!("bounce {other:?}"),
        },
        "SpamComplaint" => "complaints".into(),
        "Open" => "opens".into(),
        "Click" => "clicks".into(),
        "SubscriptionChange" => "suppressed".into(),
        other => other.to_owned(),
    }
}

/// Events in the activity logs of `addresses`, by kind.
async fn logged(stack: &Stack, addresses: &BTreeSet<String>) -> BTreeMap<String, i64> {
    let table = &stack.t.table;
    let counts: Vec<BTreeMap<String, i64>> = futures::stream::iter(addresses.iter())
        .map(|a| async move {
            let email = EmailAddress::parse(a).expect("a valid address");
            table
                .activity_counts(email.key())
                .await
                .expect("an activity log")
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut total = BTreeMap::new();
    for c in counts {
        for (kind, n) in c {
            if EVENT_KINDS.contains(&kind.as_str()) {
                *total.entry(kind).or_default() += n;
            }
        }
    }
    total
}

async fn counters(stack: &Stack, campaign: &Campaign) -> store::stats::CampaignStats {
    stack
        .t
        .table
        .campaign_stats(campaign)
        .await
        .expect("the campaign's counters")
}

/// Waits for the simulator's webhooks, then for the stream function.
async fn settle(stack: &Stack) {
    assert!(
        stack.sim.settle(Duration::from_secs(1800)).await,
        "the simulator's webhooks did not settle"
    );
    stack.stream.drain().await.expect("the table's stream");
}

pub async fn run(cfg: &RecoverLoad) -> RecoverReport {
    let started = Instant::now();
    let mut report = RecoverReport {
        jobs: cfg.jobs,
        drop: cfg.drop,
        seed: cfg.seed,
        ..RecoverReport::default()
    };
    let stack = Stack::start().await;
    // Postmark's own tracking on, so that readers' opens and clicks reach Postmark.
    let mut server = stack
        .t
        .table
        .servers()
        .await
        .expect("the email servers")
        .remove(0);
    server.tracking = PostmarkTracking {
        track_opens: true,
        track_links: LinkTracking::HtmlAndText,
    };
    let version = server.version;
    server.version += 1;
    assert!(
        stack
            .t
            .table
            .update_server(&server, version)
            .await
            .expect("the server's tracking")
    );
    stack.sim.set_webhook_loss(WebhookLoss {
        share: cfg.drop,
        seed: cfg.seed,
        tag: None,
        stream: None,
    });
    report.setup = started.elapsed();

    // The broadcast, to a seeded mix of recipients.
    let sending = Instant::now();
    let broadcast = format!("b-recover-{}", cfg.seed);
    let campaign = Campaign {
        kind: CampaignKind::Broadcast,
        id: broadcast.clone(),
    };
    let mut rng = Rng::new(cfg.seed);
    let mut records: Vec<(String, String)> = Vec::with_capacity(cfg.jobs);
    for i in 0..cfg.jobs {
        let draw = rng.below(1000);
        let (kind, to) = if draw < 30 {
            (
                "hard_bounce",
                format!("hardbounce-{i}@bounce-testing.postmarkapp.com"),
            )
        } else if draw < 50 {
            // The simulator reads a soft bounce from the local part alone: one address for all.
            (
                "soft_bounce",
                "SoftBounce@bounce-testing.postmarkapp.com".to_owned(),
            )
        } else if draw < 60 {
            (
                "spam_complaint",
                format!("reader-{i}@spam-complaint.postmarkapp.com"),
            )
        } else {
            ("normal", format!("reader-{i}@example.org"))
        };
        *report.mix.entry(kind).or_default() += 1;
        records.push((
            format!("sqs-{i}"),
            job(&format!("rec-{}-{i}", cfg.seed), &broadcast, &to),
        ));
    }
    for chunk in records.chunks(500) {
        let mut pending: Vec<(&str, String)> = chunk
            .iter()
            .map(|(id, body)| (id.as_str(), body.clone()))
            .collect();
        for _ in 0..5 {
            let answer = stack.send(&pending).await;
            let again: BTreeSet<String> = answer
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect();
            pending.retain(|(id, _)| again.contains(*id));
            if pending.is_empty() {
                break;
            }
        }
        assert!(
            pending.is_empty(),
            "jobs the sender kept failing: {pending:?}"
        );
    }

    // Readers open and click, in Postmark.
    let messages = stack.sim.messages();
    let mut opened = 0i64;
    let mut clicks: Vec<(String, String)> = Vec::new();
    let mut sent_at: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut expected: BTreeMap<&str, i64> = BTreeMap::new();
    let mut suppressions: BTreeMap<String, SuppressionReason> = BTreeMap::new();
    let mut addresses: BTreeSet<String> = BTreeSet::new();
    for message in &messages {
        *expected.entry("sent").or_default() += 1;
        if let Some(at) = message
            .metadata
            .get(domain::trace::SENT_AT)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        {
            sent_at.insert(message.message_id.clone(), at.with_timezone(&Utc));
        }
        for recipient in &message.recipients {
            addresses.insert(recipient.to_lowercase());
        }
        for (recipient, outcome) in &message.outcomes {
            match outcome {
                RecipientOutcome::Delivered => *expected.entry("delivered").or_default() += 1,
                RecipientOutcome::Complained => {
                    *expected.entry("delivered").or_default() += 1;
                    *expected.entry("complaints").or_default() += 1;
                    suppressions.insert(recipient.clone(), SuppressionReason::SpamComplaint);
                }
                RecipientOutcome::Bounced { bounce_type } if bounce_type == "HardBounce" => {
                    *expected.entry("bounced_hard").or_default() += 1;
                    suppressions.insert(recipient.clone(), SuppressionReason::HardBounce);
                }
                RecipientOutcome::Bounced { bounce_type } if bounce_type == "SoftBounce" => {
                    *expected.entry("bounced_soft").or_default() += 1;
                }
                RecipientOutcome::Bounced { .. } => {
                    *expected.entry("bounced_other").or_default() += 1
                }
                // Refused by Postmark, never sent: not met here (every address is new).
                RecipientOutcome::Inactive => {}
            }
            // Only readers who got it (and did not complain) open and click.
            if !matches!(outcome, RecipientOutcome::Delivered) {
                continue;
            }
            if rng.chance(cfg.open_percent) {
                let outcome = stack
                    .sim
                    .open(OpenRequest::new(&message.message_id, recipient))
                    .expect("an open");
                if outcome.first {
                    opened += 1;
                }
            }
            if rng.chance(cfg.click_percent) {
                let links = hrefs(message.html_body.as_deref().unwrap_or_default());
                if links.is_empty() {
                    continue;
                }
                let link = links[rng.below(links.len())].clone();
                let outcome = stack
                    .sim
                    .click(ClickRequest::new(&message.message_id, recipient, &link))
                    .expect("a click");
                if outcome.first {
                    clicks.push((message.message_id.clone(), link));
                }
            }
        }
    }
    report.sending = sending.elapsed();
    let settling = Instant::now();
    settle(&stack).await;
    report.settling = settling.elapsed();

    // Every event Postmark produced, lost or not; the clicks' instants.
    let mut click_at: HashMap<(String, String), DateTime<Utc>> = HashMap::new();
    for delivery in stack.sim.webhooks() {
        *report
            .expected_by_type
            .entry(delivery.record_type.clone())
            .or_default() += 1;
        *report
            .expected_by_kind
            .entry(kind_of(&delivery.record_type, &delivery.payload))
            .or_default() += 1;
        if delivery.state == postmark_sim::DeliveryState::Lost {
            *report
                .lost_by_type
                .entry(delivery.record_type.clone())
                .or_default() += 1;
        }
        if delivery.record_type == "Click"
            && let (Some(id), Some(link), Some(at)) = (
                delivery.payload["MessageID"].as_str(),
                delivery.payload["OriginalLink"].as_str(),
                delivery.payload["ReceivedAt"]
                    .as_str()
                    .and_then(postmark::parse_timestamp),
            )
        {
            click_at.insert((id.to_owned(), link.to_owned()), at.with_timezone(&Utc));
        }
    }
    let mut link_expected: BTreeMap<String, [i64; 2]> = BTreeMap::new();
    let mut human_clicks = 0i64;
    for (message, link) in &clicks {
        let human = match (
            sent_at.get(message),
            click_at.get(&(message.clone(), link.clone())),
        ) {
            (Some(sent), Some(at)) => {
                !(0..MIN_HUMAN_CLICK_SECONDS).contains(&(*at - *sent).num_seconds())
            }
            _ => true,
        };
        human_clicks += i64::from(human);
        let e = link_expected.entry(link.clone()).or_default();
        e[0] += 1;
        e[1] += i64::from(human);
    }
    expected.insert("opens", opened);
    expected.insert("opens_unique", opened);
    expected.insert("opens_human", opened);
    expected.insert("opens_unique_human", opened);
    let clicked = clicks.len() as i64;
    expected.insert("clicks", clicked);
    expected.insert("clicks_unique", clicked);
    expected.insert("clicks_human", human_clicks);
    expected.insert("clicks_unique_human", human_clicks);
    report.suppressions_expected = suppressions.len();

    let before = counters(&stack, &campaign).await;
    report.before_by_kind = logged(&stack, &addresses).await;

    // One recovery run.
    let recovery = Instant::now();
    if cfg.recover {
        let run = recover::run(&stack.recover, "load", Utc::now()).await;
        for server in &run.servers {
            for (kind, n) in &server.recovered {
                *report.recovered_by_kind.entry(kind.clone()).or_default() += n;
            }
            report.already_recorded += server.already_recorded;
            report.suppressions_fixed += server.suppressions_fixed;
            report.messages_checked += server.messages_checked;
            report.postmark_calls += server.postmark_calls;
            report.recovery_errors.extend(server.errors.iter().cloned());
        }
        settle(&stack).await;
    }
    report.recovery = recovery.elapsed();

    // Everything compared with the truth.
    let after = counters(&stack, &campaign).await;
    for counter in domain::stats::Counter::ALL {
        let name = counter.name();
        let check = CounterCheck {
            name: name.to_owned(),
            expected: expected.get(name).copied().unwrap_or(0),
            before: before.counters.get(name).copied().unwrap_or(0),
            found: after.counters.get(name).copied().unwrap_or(0),
        };
        if check.expected != check.found {
            report.mismatches.push(format!(
                "counter {}: expected {}, found {}",
                check.name, check.expected, check.found
            ));
        }
        report.counters.push(check);
    }
    for (url, [all, human]) in &link_expected {
        let found = after.links.iter().find(|l| &l.url == url);
        for (name, want, got) in [
            ("clicks", *all, found.map_or(0, |l| l.clicks)),
            ("clicks_unique", *all, found.map_or(0, |l| l.clicks_unique)),
            ("clicks_human", *human, found.map_or(0, |l| l.clicks_human)),
            (
                "clicks_unique_human",
                *human,
                found.map_or(0, |l| l.clicks_unique_human),
            ),
        ] {
            if want != got {
                report
                    .mismatches
                    .push(format!("link {url} {name}: expected {want}, found {got}"));
            }
            report
                .link_counters
                .push((url.clone(), name.to_owned(), want, got));
        }
    }
    let table = &stack.t.table;
    let standings: Vec<(String, SuppressionReason, Option<SuppressionReason>)> =
        futures::stream::iter(suppressions.iter())
            .map(|(address, reason)| async move {
                let email = EmailAddress::parse(address).expect("a valid address");
                let found = table
                    .subscriber_profile(&email)
                    .await
                    .expect("a subscriber's profile")
                    .and_then(|p| p.suppression_reason);
                (address.clone(), *reason, found)
            })
            .buffer_unordered(16)
            .collect()
            .await;
    for (address, want, found) in standings {
        if found == Some(want) {
            report.suppressions_held += 1;
        } else {
            report.mismatches.push(format!(
                "suppression of {address}: expected {want:?}, found {found:?}"
            ));
        }
    }
    report.after_by_kind = logged(&stack, &addresses).await;
    report.total = started.elapsed();
    report
}
