//! This project's Postmark crate sending the load messages in batches of 500, one batch at a time: the
//! Rust side of the comparison with Postmark's Node.js client.

use std::time::{Duration, Instant};

use postmark::{PostmarkClient, ServerToken};

use crate::messages;

#[derive(Debug, serde::Serialize)]
pub struct ClientRun {
    pub client: &'static str,
    pub messages: usize,
    pub accepted: usize,
    pub calls: usize,
    pub seconds: f64,
    pub cpu_seconds: f64,
}

pub async fn run(api_url: &str, token: &str, count: usize) -> ClientRun {
    let client = PostmarkClient::new(
        api_url.parse().expect("the simulator's URL"),
        ServerToken::new(token),
        Duration::from_secs(60),
    )
    .expect("the client");
    let emails: Vec<postmark::Email> = (0..count).map(messages::email).collect();
    let cpu_before = messages::cpu_seconds();
    let started = Instant::now();
    let mut accepted = 0;
    let mut calls = 0;
    for chunk in emails.chunks(postmark::MAX_BATCH_SIZE) {
        let outcomes = client.send_batch(chunk).await.expect("the batch is sent");
        calls += 1;
        accepted += outcomes.iter().filter(|o| o.is_ok()).count();
    }
    ClientRun {
        client: "postmark-crate",
        messages: count,
        accepted,
        calls,
        seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: messages::cpu_seconds() - cpu_before,
    }
}
