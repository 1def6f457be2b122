//! A quick load loop: batches of 500 messages against an in-process simulator, reporting messages a
//! second. Bounded in count; loopback only.
//!
//! ```text
//! cargo run --release -p postmark-sim --example load -- [batches=200] [concurrency=4] [webhooks]
//! ```
//!
//! With `webhooks`, every message also posts a Delivery webhook to an in-process receiver.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use postmark_sim::{ServerConfig, SimOptions, Simulator, WebhookConfig};
use serde_json::json;

const BATCH: usize = 500;
const TOKEN: &str = "load-token";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let batches: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(200);
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4).max(1);
    let webhooks = args.iter().any(|a| a == "webhooks");

    let mut options = SimOptions {
        smtp_addr: None,
        max_stored: 50_000,
        ..SimOptions::default()
    };
    options.webhooks.delay_scale = 0.0;
    let sim = Simulator::start(options)
        .await
        .expect("the simulator starts");
    let mut server = ServerConfig::new(TOKEN).sender_domain("example.com");
    let received = Arc::new(AtomicUsize::new(0));
    if webhooks {
        let counter = received.clone();
        let app = Router::new().route(
            "/wh",
            post(move || {
                counter.fetch_add(1, Ordering::Relaxed);
                async { "" }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/wh", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        server = server.webhook(WebhookConfig::new(url));
    } else {
        server = server.webhooks_enabled(false);
    }
    sim.add_server(server);

    let body: Vec<_> = (0..BATCH)
        .map(|n| {
            json!({
                "From": "Shop <shop@example.com>",
                "To": format!("subscriber{n}@example.org"),
                "Subject": "Spring sale",
                "HtmlBody": "<html><body><p>Hello! Our spring sale starts today.</p><a href=\"https://example.com/sale\">Shop now</a></body></html>",
                "TextBody": "Hello! Our spring sale starts today: https://example.com/sale",
                "MessageStream": "broadcast",
                "Tag": "spring-sale",
                "Metadata": {"job_id": format!("job-{n}"), "broadcast_id": "b-1", "subscriber_id": format!("s-{n}")},
                "TrackOpens": true,
                "TrackLinks": "HtmlAndText",
            })
        })
        .collect();
    let body = bytes::Bytes::from(serde_json::to_vec(&body).unwrap());
    let url = format!("{}/email/batch", sim.api_url());
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));

    // Warm-up: connections, allocator.
    send(&client, &url, body.clone()).await;

    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, body, next) =
                (client.clone(), url.clone(), body.clone(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < batches {
                    send(&client, &url, body.clone()).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let sent = started.elapsed();
    let messages = batches * BATCH;
    println!(
        "{messages} messages in {batches} batches of {BATCH}, {concurrency} concurrent: {:.2} s, {:.0} messages/s, {:.1} ms per batch call",
        sent.as_secs_f64(),
        messages as f64 / sent.as_secs_f64(),
        sent.as_secs_f64() * 1000.0 / batches as f64 * concurrency as f64,
    );
    if webhooks {
        let settled = sim.settle(Duration::from_secs(600)).await;
        let total = started.elapsed();
        println!(
            "webhooks: {} Delivery posts received, all done after {:.2} s ({:.0} webhooks/s){}",
            received.load(Ordering::Relaxed),
            total.as_secs_f64(),
            received.load(Ordering::Relaxed) as f64 / total.as_secs_f64(),
            if settled { "" } else { " (not settled)" }
        );
    }
    let counters = sim.counters();
    println!(
        "counters: {} accepted, {} batch calls",
        counters.messages_accepted,
        counters
            .requests
            .get("POST /email/batch")
            .copied()
            .unwrap_or(0)
    );
}

async fn send(client: &reqwest::Client, url: &str, body: bytes::Bytes) {
    let response = client
        .post(url)
        .header("X-Postmark-Server-Token", TOKEN)
        .header("Accept", "application/json")
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the simulator answers");
    assert_eq!(response.status(), 200);
    let answers: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(answers[0]["ErrorCode"], 0, "{}", answers[0]);
}
