//! The webhook load run: Postmark events in a realistic mix, 10% of them redelivered, through the webhook
//! function's handler with concurrent invocations, against the AWS emulator; the table's stream is read
//! meanwhile by the stream function (in process, through the local event source mapping), which adds
//! the events to the counters. What both functions ask of DynamoDB is counted.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use domain::trace::{Campaign, CampaignKind};
use futures::StreamExt;
use serde_json::{Value, json};
use store::table::Table;

use crate::capacity::{MeteredClients, Usage};

pub struct WebhookLoad {
    pub events: usize,
    pub concurrency: usize,
}

#[derive(Debug)]
pub struct WebhookReport {
    pub events: usize,
    pub duplicates_sent: usize,
    pub accepted: usize,
    pub duplicates_seen: usize,
    pub errors: usize,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub mean: Duration,
    /// What the webhook function asked of DynamoDB and Secrets Manager.
    pub usage: Usage,
    /// What the stream function asked of DynamoDB.
    pub stream_usage: Usage,
    /// Stream batches the stream function handled, and their mean size.
    pub stream_batches: usize,
    pub stream_mean_batch: f64,
    /// The slowest batch, from its invocation to its answer.
    pub stream_slowest_batch: Duration,
    /// From the last webhook answer until the counters held every event.
    pub stats_lag: Duration,
    pub counters: std::collections::BTreeMap<String, i64>,
    pub expected: std::collections::BTreeMap<String, i64>,
}

/// The stream's event source mapping, as the template sets it.
const STREAM_BATCH: usize = 1000;
const STREAM_WINDOW: Duration = Duration::from_secs(1);

/// A small deterministic generator, so that every run sends the same events.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn at(seconds: i64) -> String {
    (Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0).unwrap() + chrono::Duration::seconds(seconds))
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

fn common(message: usize) -> Value {
    json!({
        "ServerID": 23,
        "MessageStream": "broadcast",
        "MessageID": format!("00000000-0000-4000-8000-{message:012}"),
        "Tag": "winter-sale",
        "Metadata": {
            "job_id": format!("job-{message}"),
            "broadcast_id": "load-broadcast",
            "email_type": "broadcast",
            "subscriber_id": format!("sub-{message}"),
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

fn recipient(message: usize) -> String {
    format!("reader{message}@example.com")
}

/// The unique events (about 90% of the run) and the expected campaign counters.
fn unique_events(n: usize) -> (Vec<Value>, std::collections::BTreeMap<String, i64>) {
    let deliveries = n * 44 / 100;
    let opens = n * 33 / 100;
    let clicks = n * 13 / 100;
    let soft = n * 6 / 100;
    let hard = n * 3 / 100;
    let complaints = n - deliveries - opens - clicks - soft - hard;
    let mut events = Vec::with_capacity(n);
    for m in 0..deliveries {
        events.push(with(
            common(m),
            json!({
                "RecordType": "Delivery", "Recipient": recipient(m), "DeliveredAt": at(m as i64),
                "Details": "smtp;250 2.0.0 OK",
            }),
        ));
    }
    // Opens: most messages opened once, some twice (FirstOpen false the second time).
    let opened = opens * 4 / 5;
    for i in 0..opens {
        let m = i % opened;
        events.push(with(common(m), json!({
            "RecordType": "Open", "Recipient": recipient(m), "ReceivedAt": at(3600 + i as i64),
            "FirstOpen": i < opened, "Platform": "WebMail", "ReadSeconds": 12,
            "UserAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
            "Client": {"Name": "Chrome", "Company": "Google", "Family": "Chrome"},
            "OS": {"Name": "Windows 10", "Company": "Microsoft", "Family": "Windows"},
            "Geo": {"CountryISOCode": "DE", "Country": "Germany", "City": "Berlin"},
        })));
    }
    let links = [
        "https://shop.example.com/sale",
        "https://shop.example.com/new",
        "https://blog.example.com/winter",
    ];
    for i in 0..clicks {
        let m = i % (clicks / 2).max(1);
        events.push(with(common(m), json!({
            "RecordType": "Click", "Recipient": recipient(m), "ReceivedAt": at(7200 + i as i64),
            "OriginalLink": links[i % links.len()], "ClickLocation": "HTML", "Platform": "Desktop",
            "UserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Safari/605.1.15",
        })));
    }
    let bounce = |m: usize, record: &str, kind: &str, code: i64, id: usize| {
        with(
            common(m),
            json!({
                "RecordType": record, "ID": id, "Type": kind, "TypeCode": code, "Email": recipient(m),
                "BouncedAt": at(600 + id as i64), "Description": "load run", "Inactive": kind != "SoftBounce",
            }),
        )
    };
    let first_bounced = deliveries;
    for i in 0..soft {
        events.push(bounce(first_bounced + i, "Bounce", "SoftBounce", 4096, i));
    }
    for i in 0..hard {
        events.push(bounce(
            first_bounced + soft + i,
            "Bounce",
            "HardBounce",
            1,
            soft + i,
        ));
    }
    for i in 0..complaints {
        events.push(bounce(
            i,
            "SpamComplaint",
            "SpamComplaint",
            100001,
            soft + hard + i,
        ));
    }
    let unique_opened = opened.min(opens) as i64;
    let clicked_messages = (clicks / 2).max(1).min(clicks) as i64;
    let expected = [
        ("delivered", deliveries as i64),
        ("opens", opens as i64),
        ("opens_unique", unique_opened),
        ("clicks", clicks as i64),
        ("clicks_unique", clicked_messages),
        ("bounced_soft", soft as i64),
        ("bounced_hard", hard as i64),
        ("complaints", complaints as i64),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    (events, expected)
}

fn api_gateway_event(body: &Value, password: &str, trace: usize) -> String {
    json!({
        "version": "2.0", "routeKey": "POST /wh/postmark", "rawPath": "/wh/postmark",
        "rawQueryString": format!("password={password}"),
        "queryStringParameters": {"password": password},
        "headers": {"content-type": "application/json", "user-agent": "Postmark",
                    "x-pm-webhook-trace-id": format!("trace-{trace}")},
        "requestContext": {"accountId": "123456789012", "apiId": "load", "domainName": "load.local",
            "domainPrefix": "load", "http": {"method": "POST", "path": "/wh/postmark",
            "protocol": "HTTP/1.1", "sourceIp": "3.134.147.250", "userAgent": "Postmark"},
            "requestId": format!("r-{trace}"), "routeKey": "POST /wh/postmark", "stage": "$default",
            "time": "27/Nov/2026:09:00:00 +0000", "timeEpoch": 1795770000000i64},
        "body": body.to_string(), "isBase64Encoded": false,
    })
    .to_string()
}

pub async fn run(load: &WebhookLoad) -> WebhookReport {
    let sdk = testkit::sdk_config().await;
    let clients = MeteredClients::new(&sdk);
    let table_name = testkit::unique("load-webhook");
    store::schema::create_table(&clients.dynamodb, &table_name)
        .await
        .expect("create the table");
    let password = "load-password";
    let password_secret = testkit::unique("load/webhook-password");
    let tracking_secret = testkit::unique("load/tracking-key");
    for (name, value) in [
        (&password_secret, password),
        (&tracking_secret, "load-tracking-key"),
    ] {
        clients
            .secrets
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await
            .expect("secret");
    }
    let app = webhook::App::with_clients(
        clients.dynamodb.clone(),
        clients.secrets.clone(),
        webhook::Config {
            table_name: table_name.clone(),
            webhook_password_secret: password_secret,
            tracking_key_secret: tracking_secret,
            password_grace: chrono::Duration::hours(24),
            secrets_ttl: Duration::from_secs(300),
            password_recheck: Duration::from_secs(5),
        },
    );

    let unique_count = load.events * 10 / 11;
    let (mut events, expected) = unique_events(unique_count);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let duplicates = load.events - events.len();
    for _ in 0..duplicates {
        let copy = events[rng.below(unique_count)].clone();
        events.push(copy);
    }
    for i in (1..events.len()).rev() {
        events.swap(i, rng.below(i + 1));
    }
    let requests: Vec<String> = events
        .iter()
        .enumerate()
        .map(|(i, e)| api_gateway_event(e, password, i))
        .collect();
    clients.meter.reset();

    let stream_clients = MeteredClients::new(&sdk);
    let poller = local_stack::stream_poller::in_process(
        &sdk,
        stream_clients.dynamodb.clone(),
        &table_name,
        STREAM_BATCH,
        STREAM_WINDOW,
    )
    .await
    .expect("the table's stream");
    let storm_over = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let batches = {
        let storm_over = storm_over.clone();
        async move {
            let mut batches: Vec<(usize, Duration, Instant)> = Vec::new();
            loop {
                let t = Instant::now();
                match poller.poll_once(Duration::from_millis(300)).await {
                    Ok(Some(b)) => batches.push((b.records, t.elapsed(), Instant::now())),
                    Ok(None) if storm_over.load(std::sync::atomic::Ordering::SeqCst) => {
                        return batches;
                    }
                    Ok(None) => {}
                    Err(e) => panic!("the stream cannot be read: {e}"),
                }
            }
        }
    };
    let consumer = tokio::spawn(batches);

    let started = Instant::now();
    let app = &app;
    let results: Vec<(Duration, u16, String)> = futures::stream::iter(requests)
        .map(|raw| async move {
            let req = lambda_http::request::from_str(&raw).expect("a valid event");
            let t = Instant::now();
            let resp = webhook::handle(app, req).await;
            let body: Value = serde_json::from_slice(resp.body().as_ref()).unwrap_or(Value::Null);
            (
                t.elapsed(),
                resp.status().as_u16(),
                body["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .buffer_unordered(load.concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let storm_end = Instant::now();
    storm_over.store(true, std::sync::atomic::Ordering::SeqCst);
    let batches = consumer.await.expect("the stream consumer");
    let usage = clients.meter.usage();
    let stream_usage = stream_clients.meter.usage();

    let mut latencies: Vec<Duration> = results.iter().map(|r| r.0).collect();
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let table = Table::new(clients.dynamodb.clone(), table_name);
    let stats = table
        .campaign_stats(&Campaign {
            kind: CampaignKind::Broadcast,
            id: "load-broadcast".into(),
        })
        .await
        .expect("read the stats");
    WebhookReport {
        events: results.len(),
        duplicates_sent: duplicates,
        accepted: results.iter().filter(|r| r.2 == "accepted").count(),
        duplicates_seen: results.iter().filter(|r| r.2 == "duplicate").count(),
        errors: results.iter().filter(|r| r.1 != 200).count(),
        elapsed,
        mean: latencies.iter().sum::<Duration>() / latencies.len().max(1) as u32,
        p50: pick(0.50),
        p99: pick(0.99),
        usage,
        stream_usage,
        stream_batches: batches.len(),
        stream_mean_batch: batches.iter().map(|b| b.0).sum::<usize>() as f64
            / batches.len().max(1) as f64,
        stream_slowest_batch: batches.iter().map(|b| b.1).max().unwrap_or_default(),
        stats_lag: batches
            .iter()
            .filter(|b| b.0 > 0)
            .map(|b| b.2)
            .max()
            .map(|last| last.saturating_duration_since(storm_end))
            .unwrap_or_default(),
        counters: stats.counters,
        expected,
    }
}
