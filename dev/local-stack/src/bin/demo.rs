//! The demo: a scenario played through the public interfaces of the running local stack only (the config
//! API, the send queue, the Postmark simulator's control API standing in for real recipients, and the
//! tracking URLs found in the delivered mail), then a check that what the platform reads back matches what
//! was sent: through the config API, and on the event feed (a queue behind a rule on the feed's bus, as a
//! platform app subscribes). Exits 0 only if everything matched.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BROADCAST: &str = "winter-sale-2026";
const SEQUENCE: &str = "welcome-series";
const API_TOKEN: &str = "demo-api-server-token";
const SMTP_TOKEN: &str = "demo-smtp-server-token";

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Env {
    config_api: String,
    admin_key: String,
    sim: String,
    sim_smtp: String,
    queue_url: String,
    feed_queue_url: String,
    http: reqwest::Client,
}

fn env(name: &str) -> Result<String> {
    std::env::var(name)
        .map_err(|_| format!("{name} is not set: run this through dev/demo.sh").into())
}

impl Env {
    async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.config_api))
            .bearer_auth(&self.admin_key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let value = resp.json().await.unwrap_or(Value::Null);
        Ok((status, value))
    }

    async fn sim(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.sim));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        if !resp.status().is_success() {
            return Err(
                format!("simulator {path}: {} {}", resp.status(), resp.text().await?).into(),
            );
        }
        Ok(resp.json().await.unwrap_or(Value::Null))
    }
}

fn say(text: &str) {
    println!("\n\x1b[1m▶ {text}\x1b[0m");
}

struct Checks(Vec<(String, bool)>);

impl Checks {
    fn check(&mut self, what: impl Into<String>, ok: bool) {
        let what = what.into();
        println!("  {} {what}", if ok { "✔" } else { "✘" });
        self.0.push((what, ok));
    }
}

fn newsletter(i: usize) -> String {
    format!(
        r#"<!doctype html><html><body style="font-family:sans-serif">
<h1>Winter sale, reader {i}</h1>
<p>Everything is <a href="https://shop.example.com/sale?utm_source=newsletter">40% off</a> this week.</p>
<p>New in: <a href="https://shop.example.com/new">the spring collection</a>.
Questions? <a href="mailto:help@example.com">Write to us</a>.</p>
<p><a href="https://shop.example.com/unsubscribe?u={i}" data-no-track>Unsubscribe</a></p>
</body></html>"#
    )
}

fn job(id: &str, email_type: &str, to: &str, extra: Value) -> Value {
    let mut job = json!({
        "version": 1,
        "id": id,
        "email_type": email_type,
        "from": "Example Shop <news@example.com>",
        "to": to,
        "subject": "Our winter sale starts now",
        "text_body": "Everything is 40% off: https://shop.example.com/sale",
    });
    if let (Some(j), Some(e)) = (job.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            j.insert(k.clone(), v.clone());
        }
    }
    job
}

fn count(stats: &Value, name: &str) -> i64 {
    stats["counters"][name].as_i64().unwrap_or(-1)
}

/// Finds the first `src`/`href` value in `html` that starts with `prefix`.
fn find_url(html: &str, prefix: &str) -> Option<String> {
    let start = html.find(prefix)?;
    let rest = &html[start..];
    let end = rest.find(['"', '\'', ' ', '>']).unwrap_or(rest.len());
    Some(rest[..end].replace("&amp;", "&"))
}

/// The feed events received, one per id (a copy delivered again under the same id is counted apart).
struct Feed {
    events: BTreeMap<String, Value>,
    copies: usize,
}

impl Feed {
    /// The job ids of the events of `kind` (and, for bounces, of `class`).
    fn jobs(&self, kind: &str, class: Option<&str>) -> BTreeSet<String> {
        self.events
            .values()
            .filter(|e| e["type"] == kind)
            .filter(|e| class.is_none_or(|c| e["bounce_class"] == c))
            .filter_map(|e| e["job_id"].as_str().map(str::to_owned))
            .collect()
    }

    fn show(&self) {
        let mut per_type: BTreeMap<&str, usize> = BTreeMap::new();
        for e in self.events.values() {
            *per_type
                .entry(e["type"].as_str().unwrap_or("?"))
                .or_default() += 1;
        }
        for (kind, n) in &per_type {
            println!("  {n:>3}  {kind}");
        }
        println!(
            "  {} events, {} copies delivered again under their id",
            self.events.len(),
            self.copies
        );
        if let Some(bounce) = self
            .events
            .values()
            .find(|e| e["type"] == "email.bounced" && e["bounce_class"] == "hard")
            && let Ok(text) = serde_json::to_string_pretty(bounce)
        {
            println!("  the hard bounce, as the feed carries it:");
            for line in text.lines() {
                println!("    {line}");
            }
        }
    }
}

/// What the scenario's outcomes must put on the feed.
struct FeedExpectations {
    sent: BTreeSet<String>,
    bounced_hard: String,
    bounced_soft: String,
    complained: String,
    /// Jobs whose readers opened and clicked.
    engaged: BTreeSet<String>,
    skipped: String,
}

impl FeedExpectations {
    fn arrived(&self, feed: &Feed) -> bool {
        feed.jobs("email.sent", None).is_superset(&self.sent)
            && feed.jobs("email.skipped", None).contains(&self.skipped)
            && feed.jobs("email.clicked", None).is_superset(&self.engaged)
            && feed
                .jobs("email.complained", None)
                .contains(&self.complained)
    }

    fn check(&self, feed: &Feed, checks: &mut Checks) {
        let sent = feed.jobs("email.sent", None);
        checks.check(
            format!("email.sent for each of the {} jobs", self.sent.len()),
            sent == self.sent,
        );
        let delivered = feed.jobs("email.delivered", None);
        let undelivered = [&self.bounced_hard, &self.bounced_soft];
        checks.check(
            "email.delivered for every job but the two bounces",
            self.sent
                .iter()
                .filter(|j| !undelivered.contains(j))
                .all(|j| delivered.contains(j))
                && undelivered.iter().all(|j| !delivered.contains(*j)),
        );
        checks.check(
            "email.bounced (hard) for the hard-bounced job",
            feed.jobs("email.bounced", Some("hard")) == BTreeSet::from([self.bounced_hard.clone()]),
        );
        checks.check(
            "email.bounced (soft) for the soft-bounced job",
            feed.jobs("email.bounced", Some("soft")) == BTreeSet::from([self.bounced_soft.clone()]),
        );
        checks.check(
            "email.complained for the complaint",
            feed.jobs("email.complained", None) == BTreeSet::from([self.complained.clone()]),
        );
        checks.check(
            format!(
                "email.opened and email.clicked for the {} readers who did",
                self.engaged.len()
            ),
            feed.jobs("email.opened", None).is_superset(&self.engaged)
                && feed.jobs("email.clicked", None).is_superset(&self.engaged),
        );
        checks.check(
            "email.skipped for the job to the suppressed address",
            feed.jobs("email.skipped", None) == BTreeSet::from([self.skipped.clone()]),
        );
        let well_formed = feed.events.iter().all(|(id, e)| {
            e["version"] == 1 && e["id"] == id.as_str() && e["occurred_at"].is_string()
        });
        checks.check("every event is version 1 with its id", well_formed);
    }
}

/// Reads the feed's queue until what the scenario expects has arrived and the queue stays quiet, or a
/// minute has passed.
async fn read_feed(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    expected: &FeedExpectations,
) -> Result<Feed> {
    let mut feed = Feed {
        events: BTreeMap::new(),
        copies: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet = 0;
    while Instant::now() < deadline && (quiet < 3 || !expected.arrived(&feed)) {
        let got = store::sqs::receive(sqs, url, 10, 1).await?;
        if got.is_empty() {
            quiet += 1;
            continue;
        }
        quiet = 0;
        let mut receipts = Vec::new();
        for m in &got {
            let envelope: Value = serde_json::from_str(m.body().unwrap_or_default())?;
            let detail = envelope["detail"].clone();
            let id = detail["id"].as_str().unwrap_or_default().to_owned();
            if feed.events.insert(id, detail).is_some() {
                feed.copies += 1;
            }
            receipts.extend(m.receipt_handle().map(str::to_owned));
        }
        store::sqs::delete(sqs, url, &receipts).await?;
    }
    Ok(feed)
}

#[tokio::main]
async fn main() {
    match run().await {
        Ok(true) => println!(
            "\n\x1b[1;32mDemo passed: everything the platform reads back matches what was sent.\x1b[0m"
        ),
        Ok(false) => {
            println!("\n\x1b[1;31mDemo failed: see the ✘ lines above.\x1b[0m");
            std::process::exit(1);
        }
        Err(e) => {
            println!("\n\x1b[1;31mDemo failed: {e}\x1b[0m");
            std::process::exit(1);
        }
    }
}

async fn run() -> Result<bool> {
    let e = Env {
        config_api: env("CONFIG_API_URL")?,
        admin_key: env("ADMIN_KEY")?,
        sim: env("POSTMARK_SIM_URL")?,
        sim_smtp: env("POSTMARK_SIM_SMTP")?,
        queue_url: env("QUEUE_URL")?,
        feed_queue_url: env("FEED_QUEUE_URL")?,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
    };
    let mut checks = Checks(Vec::new());
    use reqwest::Method;

    say("Reading the webhook URL from the config API");
    let (_, webhook) = e.api(Method::GET, "/api/postmark/webhook", None).await?;
    let webhook_url = webhook["url_with_password"]
        .as_str()
        .ok_or("no webhook URL")?
        .to_owned();
    println!(
        "  webhook URL: {}",
        webhook["url"].as_str().unwrap_or_default()
    );

    say(
        "Setting up two Postmark servers in the simulator: the API one gets its webhooks from the \
         config API below; the SMTP-only one (no token to manage it with) by hand, as the config API says",
    );
    for (name, token, webhooks) in [
        ("Marketing", API_TOKEN, json!([])),
        ("Transactional", SMTP_TOKEN, json!([{ "url": webhook_url }])),
    ] {
        e.sim(
            Method::POST,
            "/_sim/servers",
            Some(json!({
                "name": name,
                "tokens": [token],
                "sender_signatures": ["example.com"],
                "webhooks": webhooks,
            })),
        )
        .await?;
    }

    say("Creating an API email server (broadcasts, sequences) and an SMTP one (transactional)");
    let (status, api_server) = e
        .api(
            Method::POST,
            "/api/email-servers",
            Some(json!({
                "label": "Marketing (API)",
                "delivery_method": "api",
                "api_token": API_TOKEN,
                "email_types": ["broadcast", "sequence"],
                "tracking": { "track_opens": true, "track_links": "HtmlOnly" },
            })),
        )
        .await?;
    checks.check(format!("API server created ({status})"), status == 201);
    let (host, port) = e
        .sim_smtp
        .rsplit_once(':')
        .ok_or("POSTMARK_SIM_SMTP is host:port")?;
    let (status, smtp_server) = e
        .api(
            Method::POST,
            "/api/email-servers",
            Some(json!({
                "label": "Transactional (SMTP)",
                "delivery_method": "smtp",
                "smtp": { "host": host, "port": port.parse::<u16>()?, "username": SMTP_TOKEN,
                          "password": SMTP_TOKEN, "authentication": "plain", "starttls": true },
                "email_types": ["transactional"],
            })),
        )
        .await?;
    checks.check(format!("SMTP server created ({status})"), status == 201);
    let shown = format!("{api_server}{smtp_server}");
    checks.check(
        "no token or password in the answers",
        !shown.contains(API_TOKEN) && !shown.contains(SMTP_TOKEN),
    );
    for server in [&api_server, &smtp_server] {
        let id = server["id"].as_str().ok_or("no server id")?;
        let (_, report) = e
            .api(Method::POST, &format!("/api/email-servers/{id}/test"), None)
            .await?;
        checks.check(
            format!(
                "test of {}: {}",
                server["label"].as_str().unwrap_or(id),
                report["message"].as_str().unwrap_or("")
            ),
            report["ok"] == json!(true),
        );
    }

    say("Putting the API server's webhooks in place through Postmark's Webhooks API (config API)");
    let (status, synced) = e
        .api(Method::POST, "/api/postmark/webhook/sync", None)
        .await?;
    let streams = stream_states(&synced);
    for (server, stream, state) in &streams {
        println!("  {server} / {stream}: {state}");
    }
    checks.check(
        format!("webhooks synced ({status}): every stream of the API server in place"),
        status == 200
            && streams
                .iter()
                .filter(|(server, _, _)| server == "Marketing (API)")
                .all(|(_, _, state)| state == "in_place")
            && streams
                .iter()
                .any(|(server, _, _)| server == "Marketing (API)"),
    );

    say("Enqueueing a broadcast of 30 jobs, a sequence step and a transactional email");
    let mut jobs: Vec<(String, String)> = Vec::new();
    let mut bodies = Vec::new();
    for i in 0..30 {
        let to = match i {
            0 => "HardBounce@bounce-testing.postmarkapp.com".to_owned(),
            1 => "SoftBounce@bounce-testing.postmarkapp.com".to_owned(),
            2 => "angry.reader@spam-complaint.postmarkapp.com".to_owned(),
            _ => format!("reader{i}@example.org"),
        };
        let id = format!("demo-{BROADCAST}-{i}");
        let tracked = i % 2 == 1;
        bodies.push(job(&id, "broadcast", &to, json!({
            "broadcast_id": BROADCAST, "subscriber_id": format!("sub-{i}"), "tag": "winter-sale",
            "html_body": newsletter(i), "track_opens": tracked, "track_clicks": tracked,
        })).to_string());
        jobs.push((id, to));
    }
    let seq_id = "demo-welcome-step-2".to_owned();
    bodies.push(
        job(
            &seq_id,
            "sequence",
            "reader5@example.org",
            json!({
                "sequence_id": SEQUENCE, "subscriber_id": "sub-5", "subject": "Welcome, part 2",
                "html_body": "<html><body><p>Here is how to get started.</p></body></html>",
            }),
        )
        .to_string(),
    );
    jobs.push((seq_id, "reader5@example.org".into()));
    let receipt_id = "demo-receipt-1001".to_owned();
    bodies.push(
        job(
            &receipt_id,
            "transactional",
            "reader7@example.org",
            json!({
                "subject": "Your receipt #1001", "text_body": "Thank you for your order.",
            }),
        )
        .to_string(),
    );
    jobs.push((receipt_id, "reader7@example.org".into()));
    let sdk = store::aws::load_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let refused = store::sqs::send_bodies(&sqs, &e.queue_url, &bodies).await?;
    checks.check(format!("{} jobs enqueued", bodies.len()), refused == 0);

    say("Waiting for the sender (through the SQS poller) to finish every job");
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut outcomes: BTreeMap<String, Value> = BTreeMap::new();
    while outcomes.len() < jobs.len() && Instant::now() < deadline {
        for (id, _) in &jobs {
            if outcomes.contains_key(id) {
                continue;
            }
            let (status, job) = e.api(Method::GET, &format!("/api/jobs/{id}"), None).await?;
            if status == 200
                && matches!(
                    job["status"].as_str(),
                    Some("sent" | "skipped" | "failed" | "rejected")
                )
            {
                outcomes.insert(id.clone(), job);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let sent = outcomes.values().filter(|j| j["status"] == "sent").count();
    checks.check(
        format!("{sent} of {} jobs sent", jobs.len()),
        sent == jobs.len(),
    );
    e.sim(Method::POST, "/_sim/settle?timeout_ms=30000", None)
        .await?;

    say(
        "Readers open and click: Postmark's tracking, and our own pixel and links found in the mail",
    );
    let messages = e
        .sim(Method::GET, "/_sim/messages?stream=broadcast", None)
        .await?;
    let messages = messages
        .as_array()
        .cloned()
        .or_else(|| messages["messages"].as_array().cloned())
        .unwrap_or_default();
    let tracking_base = env("TRACKING_BASE_URL")?;
    let mut opened = 0;
    let mut native_clicks = 0;
    for m in &messages {
        let to = m["to"].as_str().unwrap_or_default();
        let Some(n) = to
            .strip_prefix("reader")
            .and_then(|r| r.split('@').next())
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        if m["metadata"]["broadcast_id"] != BROADCAST || n % 3 != 0 {
            continue;
        }
        let id = m["message_id"].as_str().unwrap_or_default();
        // Postmark sees the open...
        e.sim(
            Method::POST,
            "/_sim/opens",
            Some(json!({ "message_id": id, "platform": "WebMail",
            "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15" })),
        )
        .await?;
        opened += 1;
        let html = m["html_body"].as_str().unwrap_or_default();
        // ...and so does our own pixel, when the job asked for native tracking: one open, counted once.
        if let Some(pixel) = find_url(html, &format!("{tracking_base}/t/o/")) {
            let r = e
                .http
                .get(&pixel)
                .header("user-agent", "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15")
                .send()
                .await?;
            checks.check(
                format!("pixel for reader{n} answers a GIF"),
                r.status() == 200,
            );
        }
        if let Some(link) = find_url(html, &format!("{tracking_base}/t/c/")) {
            let r = e
                .http
                .get(&link)
                .header("user-agent", "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15")
                .send()
                .await?;
            let to = r
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            checks.check(
                format!("click for reader{n} redirects to {to}"),
                r.status() == 302 && to.starts_with("https://shop.example.com/"),
            );
            native_clicks += 1;
        } else {
            e.sim(
                Method::POST,
                "/_sim/clicks",
                Some(json!({ "message_id": id,
                "link": "https://shop.example.com/sale?utm_source=newsletter",
                "user_agent": "Mozilla/5.0 (Windows NT 10.0) Chrome/120.0" })),
            )
            .await?;
        }
    }
    // Clicks within 10 s of delivery look like scanners; the stats show both figures.
    e.sim(Method::POST, "/_sim/settle?timeout_ms=30000", None)
        .await?;

    say(&format!("Broadcast {BROADCAST}"));
    // The counters come from the table's stream, a batch window or two behind the events: read until
    // they hold every open and click, or half a minute has passed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stats = loop {
        let (_, stats) = e
            .api(
                Method::GET,
                &format!("/api/broadcasts/{BROADCAST}/stats"),
                None,
            )
            .await?;
        let settled = count(&stats, "opens_unique") >= opened
            && count(&stats, "clicks_unique") >= opened
            && count(&stats, "delivered") >= 28;
        if settled || Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!("{}", serde_json::to_string_pretty(&stats["counters"])?);
    for link in stats["links"].as_array().into_iter().flatten() {
        println!(
            "  {:>3} clicks  {}",
            link["clicks"],
            link["url"].as_str().unwrap_or_default()
        );
    }
    checks.check("sent 30", count(&stats, "sent") == 30);
    checks.check(
        "delivered 28 (all but the two bounces)",
        count(&stats, "delivered") == 28,
    );
    checks.check("1 hard bounce", count(&stats, "bounced_hard") == 1);
    checks.check("1 soft bounce", count(&stats, "bounced_soft") == 1);
    checks.check("1 spam complaint", count(&stats, "complaints") == 1);
    checks.check(
        format!("{opened} unique opens, each counted once across both sources"),
        count(&stats, "opens_unique") == opened && count(&stats, "opens") == opened,
    );
    checks.check(
        format!("{opened} unique clicks ({native_clicks} through our links)"),
        count(&stats, "clicks_unique") == opened,
    );

    say("Subscriber reader3@example.org: activity, newest first");
    let (_, activity) = e
        .api(
            Method::GET,
            "/api/subscribers/reader3@example.org/activity",
            None,
        )
        .await?;
    let entries = activity["items"]
        .as_array()
        .or_else(|| activity["entries"].as_array())
        .cloned()
        .unwrap_or_default();
    for entry in &entries {
        println!(
            "  {}  {:<10} {}",
            entry["at"].as_str().unwrap_or_default(),
            entry["kind"].as_str().unwrap_or_default(),
            entry["detail"]["source"].as_str().unwrap_or_default()
        );
    }
    let kinds: Vec<&str> = entries.iter().filter_map(|e| e["kind"].as_str()).collect();
    checks.check(
        "sent, delivered, opened and clicked are all in the log",
        ["delivered", "open", "click"]
            .iter()
            .all(|k| kinds.contains(k)),
    );

    say("Suppression list");
    let (_, suppressions) = e.api(Method::GET, "/api/suppressions", None).await?;
    let listed = suppressions["items"]
        .as_array()
        .or_else(|| suppressions["suppressions"].as_array())
        .cloned()
        .unwrap_or_default();
    for s in &listed {
        println!(
            "  {:<48} {}",
            s["email"].as_str().unwrap_or_default(),
            s["reason"].as_str().unwrap_or_default()
        );
    }
    let reason_of = |addr: &str| {
        listed
            .iter()
            .find(|s| {
                s["email"]
                    .as_str()
                    .is_some_and(|e| e.eq_ignore_ascii_case(addr))
            })
            .and_then(|s| s["reason"].as_str())
            .map(str::to_owned)
    };
    checks.check(
        "the hard-bounced address is suppressed (HardBounce)",
        reason_of("HardBounce@bounce-testing.postmarkapp.com").as_deref() == Some("HardBounce"),
    );
    checks.check(
        "the complaining address is suppressed (SpamComplaint)",
        reason_of("angry.reader@spam-complaint.postmarkapp.com").as_deref()
            == Some("SpamComplaint"),
    );
    checks.check(
        "the soft-bounced address is not",
        reason_of("SoftBounce@bounce-testing.postmarkapp.com").is_none(),
    );
    let (_, subscriber) = e
        .api(
            Method::GET,
            "/api/subscribers/HardBounce@bounce-testing.postmarkapp.com",
            None,
        )
        .await?;
    checks.check(
        "the hard-bounced subscriber is deactivated",
        subscriber["status"] == "deactivated",
    );

    say("A second job to the hard-bounced address is skipped");
    let again = "demo-after-bounce".to_owned();
    store::sqs::send_bodies(
        &sqs,
        &e.queue_url,
        &[job(
            &again,
            "broadcast",
            "HardBounce@bounce-testing.postmarkapp.com",
            json!({ "broadcast_id": BROADCAST, "html_body": newsletter(0) }),
        )
        .to_string()],
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut outcome = Value::Null;
    while Instant::now() < deadline {
        let (status, job) = e
            .api(Method::GET, &format!("/api/jobs/{again}"), None)
            .await?;
        if status == 200 && job["status"] != "claimed" {
            outcome = job;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("  {}", outcome);
    checks.check(
        "skipped because the address is suppressed",
        outcome["status"] == "skipped",
    );

    say("The event feed: what a platform app subscribed to the bus received");
    let expected = FeedExpectations {
        sent: jobs.iter().map(|(id, _)| id.clone()).collect(),
        bounced_hard: format!("demo-{BROADCAST}-0"),
        bounced_soft: format!("demo-{BROADCAST}-1"),
        complained: format!("demo-{BROADCAST}-2"),
        engaged: (3..30)
            .filter(|i| i % 3 == 0)
            .map(|i| format!("demo-{BROADCAST}-{i}"))
            .collect(),
        skipped: again.clone(),
    };
    let feed = read_feed(&sqs, &e.feed_queue_url, &expected).await?;
    feed.show();
    expected.check(&feed, &mut checks);

    in_step_with_postmark(&e, &sqs, &mut checks).await?;

    let failed: Vec<_> = checks.0.iter().filter(|(_, ok)| !ok).collect();
    Ok(failed.is_empty())
}

/// `(server label, stream, state)` of every stream in a webhook view of the config API.
fn stream_states(view: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for server in view["servers"].as_array().into_iter().flatten() {
        let label = server["label"].as_str().unwrap_or_default().to_owned();
        for stream in server["streams"].as_array().into_iter().flatten() {
            out.push((
                label.clone(),
                stream["stream"].as_str().unwrap_or_default().to_owned(),
                stream["state"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    out
}

/// Reads a broadcast's counters until `done` holds or `wait` has passed.
async fn broadcast_stats(
    e: &Env,
    id: &str,
    wait: Duration,
    done: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + wait;
    loop {
        let (_, stats) = e
            .api(
                reqwest::Method::GET,
                &format!("/api/broadcasts/{id}/stats"),
                None,
            )
            .await?;
        if done(&stats) || Instant::now() > deadline {
            return Ok(stats);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Webhooks lost for good and recovered from Postmark's APIs; a password refresh that reaches Postmark.
async fn in_step_with_postmark(
    e: &Env,
    sqs: &aws_sdk_sqs::Client,
    checks: &mut Checks,
) -> Result<()> {
    use reqwest::Method;
    const SPRING: &str = "spring-recovery";
    const JOBS: usize = 20;

    say("Postmark loses 30% of the next broadcast's webhooks for good (after all its retries)");
    e.sim(
        Method::PUT,
        "/_sim/webhook_loss",
        Some(json!({ "share": 0.3, "seed": 1, "tag": SPRING })),
    )
    .await?;
    let bodies: Vec<String> = (0..JOBS)
        .map(|i| {
            job(
                &format!("demo-{SPRING}-{i}"),
                "broadcast",
                &format!("spring{i}@example.org"),
                json!({ "broadcast_id": SPRING, "tag": SPRING, "html_body": newsletter(i) }),
            )
            .to_string()
        })
        .collect();
    let refused = store::sqs::send_bodies(sqs, &e.queue_url, &bodies).await?;
    checks.check(format!("{JOBS} more jobs enqueued"), refused == 0);
    let sent = broadcast_stats(e, SPRING, Duration::from_secs(120), |s| {
        count(s, "sent") == JOBS as i64
    })
    .await?;
    e.sim(Method::POST, "/_sim/settle?timeout_ms=30000", None)
        .await?;
    let loss = e.sim(Method::GET, "/_sim/webhook_loss", None).await?;
    let lost = loss["lost"].as_u64().unwrap_or(0);
    // The stream function adds what did arrive within a batch window or two.
    let short = broadcast_stats(e, SPRING, Duration::from_secs(10), |s| {
        count(s, "delivered") + lost as i64 >= JOBS as i64
    })
    .await?;
    println!(
        "  before recovery: sent {}, delivered {} ({lost} webhooks lost)",
        count(&sent, "sent"),
        count(&short, "delivered")
    );
    checks.check(
        format!("the stats are short: {lost} deliveries missing"),
        lost > 0 && count(&short, "delivered") == JOBS as i64 - lost as i64,
    );
    e.sim(Method::DELETE, "/_sim/webhook_loss", None).await?;

    say(
        "A recovery run (on demand; the stack also runs it on a timer) asks Postmark what was missed",
    );
    let url = env("RECOVER_INVOKE_URL")?;
    let run: Value = e
        .http
        .post(&url)
        .body(r#"{"trigger":"demo"}"#)
        .send()
        .await?
        .json()
        .await?;
    for server in run["servers"].as_array().into_iter().flatten() {
        println!(
            "  server {}: recovered {}, already recorded {}, {} Postmark calls, errors {}",
            server["server_id"],
            server["recovered"],
            server["already_recorded"],
            server["postmark_calls"],
            server["errors"]
        );
    }
    let exact = broadcast_stats(e, SPRING, Duration::from_secs(30), |s| {
        count(s, "delivered") == JOBS as i64
    })
    .await?;
    println!("  after recovery: delivered {}", count(&exact, "delivered"));
    checks.check(
        format!("after recovery the stats are exact: delivered {JOBS}"),
        count(&exact, "delivered") == JOBS as i64 && count(&exact, "sent") == JOBS as i64,
    );
    let (_, runs) = e.api(Method::GET, "/api/postmark/recoveries", None).await?;
    checks.check(
        "the run's summary is listed by the config API",
        runs["items"][0]["id"] == run["id"],
    );

    say("Refreshing the webhook password: the config API updates Postmark's webhooks at once");
    let (status, refreshed) = e
        .api(Method::POST, "/api/postmark/webhook/refresh", None)
        .await?;
    let streams = stream_states(&refreshed);
    for (server, stream, state) in &streams {
        println!("  {server} / {stream}: {state}");
    }
    checks.check(
        format!("password refreshed ({status}), every managed webhook updated in Postmark"),
        status == 200
            && !streams.is_empty()
            && refreshed.to_string().contains("updated")
            && !refreshed.to_string().contains("\"failed\""),
    );
    let after = format!("demo-{SPRING}-after-refresh");
    let body = job(
        &after,
        "broadcast",
        "spring-after@example.org",
        json!({ "broadcast_id": SPRING, "tag": SPRING, "html_body": newsletter(1) }),
    )
    .to_string();
    store::sqs::send_bodies(sqs, &e.queue_url, &[body]).await?;
    let flowing = broadcast_stats(e, SPRING, Duration::from_secs(60), |s| {
        count(s, "delivered") == JOBS as i64 + 1
    })
    .await?;
    checks.check(
        "webhooks still flow with the new password, with no step in Postmark",
        count(&flowing, "delivered") == JOBS as i64 + 1,
    );
    Ok(())
}
