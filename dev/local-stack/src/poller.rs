//! Plays the SQS event source mapping: receives messages, gathers them into batches (up to `batch_size`,
//! waiting at most `window` once the first message is in), invokes the function with an SQS event through
//! the Lambda invoke API, deletes what succeeded and leaves the items the function reported as failed (and
//! every message of a failed invocation) to become visible again, so that the queue's redrive policy moves
//! a message that keeps failing to the dead-letter queue. The function is reached through the Lambda
//! invoke API, or called in the same process (load runs, where an HTTP hop would only add noise).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use serde::Deserialize;
use serde_json::{Value, json};
use store::StoreError;
use tracing::{info, warn};

pub use crate::invoke::InvokeFn;
use crate::invoke::Invoker;

#[derive(Debug, Clone)]
pub struct PollerConfig {
    pub queue_url: String,
    pub queue_arn: String,
    pub region: String,
    /// The Lambda invoke URL, e.g. `http://127.0.0.1:9000/2015-03-31/functions/sender/invocations`.
    pub invoke_url: String,
    pub batch_size: usize,
    pub window: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("queue: {0}")]
    Queue(#[from] StoreError),
}

/// What one batch came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub messages: usize,
    pub deleted: usize,
    pub failed: usize,
    pub invoke_error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchResponse {
    #[serde(default)]
    batch_item_failures: Vec<ItemFailure>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemFailure {
    item_identifier: String,
}

fn record(message: &aws_sdk_sqs::types::Message, config: &PollerConfig) -> Value {
    let body = message.body().unwrap_or_default();
    let attributes: serde_json::Map<String, Value> = message
        .attributes()
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "messageId": message.message_id(),
        "receiptHandle": message.receipt_handle(),
        "body": body,
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": Md5::digest(body.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "eventSource": "aws:sqs",
        "eventSourceARN": config.queue_arn,
        "awsRegion": config.region,
    })
}

pub struct Poller {
    sqs: aws_sdk_sqs::Client,
    invoker: Invoker,
    config: PollerConfig,
}

impl Poller {
    /// Invokes the function at `config.invoke_url`.
    pub fn new(sqs: aws_sdk_sqs::Client, config: PollerConfig) -> Self {
        Self {
            sqs,
            invoker: Invoker::http(),
            config,
        }
    }

    /// Calls `invoke` instead of the invoke API (`config.invoke_url` is not used).
    pub fn in_process(sqs: aws_sdk_sqs::Client, config: PollerConfig, invoke: InvokeFn) -> Self {
        Self {
            sqs,
            invoker: Invoker::InProcess(invoke),
            config,
        }
    }

    async fn invoke(&self, event: Value) -> Result<Value, String> {
        self.invoker.invoke(&self.config.invoke_url, event).await
    }

    /// Gathers one batch: waits up to `idle_wait` for a first message, then fills the batch for at most
    /// the window. Returns no messages when the queue stayed empty.
    async fn gather(
        &self,
        idle_wait: Duration,
    ) -> Result<Vec<aws_sdk_sqs::types::Message>, PollError> {
        let mut batch = Vec::new();
        let mut seen = HashSet::new();
        let mut deadline: Option<Instant> = None;
        let started = Instant::now();
        while batch.len() < self.config.batch_size {
            let wait = if batch.is_empty() {
                idle_wait
                    .saturating_sub(started.elapsed())
                    .as_secs()
                    .min(20) as i32
            } else {
                0
            };
            let want = (self.config.batch_size - batch.len()).min(10) as i32;
            let got = store::sqs::receive(&self.sqs, &self.config.queue_url, want, wait).await?;
            if got.is_empty() {
                match deadline {
                    None if started.elapsed() >= idle_wait => break,
                    Some(d) if Instant::now() >= d => break,
                    _ => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
            deadline.get_or_insert_with(|| Instant::now() + self.config.window);
            for m in got {
                if seen.insert(m.message_id().unwrap_or_default().to_owned()) {
                    batch.push(m);
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        Ok(batch)
    }

    /// Runs one batch through the function. Returns `None` when the queue stayed empty for `idle_wait`.
    pub async fn poll_once(&self, idle_wait: Duration) -> Result<Option<BatchReport>, PollError> {
        let batch = self.gather(idle_wait).await?;
        if batch.is_empty() {
            return Ok(None);
        }
        let event =
            json!({ "Records": batch.iter().map(|m| record(m, &self.config)).collect::<Vec<_>>() });
        let mut report = BatchReport {
            messages: batch.len(),
            ..BatchReport::default()
        };
        let all = || {
            batch
                .iter()
                .filter_map(|m| m.message_id().map(str::to_owned))
                .collect()
        };
        let failures: HashSet<String> = match self.invoke(event).await {
            Ok(answer) => match serde_json::from_value::<BatchResponse>(answer) {
                Ok(b) => b
                    .batch_item_failures
                    .into_iter()
                    .map(|f| f.item_identifier)
                    .collect(),
                Err(e) => {
                    report.invoke_error = Some(format!("unreadable answer: {e}"));
                    all()
                }
            },
            Err(e) => {
                report.invoke_error = Some(e);
                all()
            }
        };
        let done: Vec<String> = batch
            .iter()
            .filter(|m| !failures.contains(m.message_id().unwrap_or_default()))
            .filter_map(|m| m.receipt_handle().map(str::to_owned))
            .collect();
        store::sqs::delete(&self.sqs, &self.config.queue_url, &done).await?;
        report.deleted = done.len();
        report.failed = report.messages - report.deleted;
        if let Some(e) = &report.invoke_error {
            warn!(error = %e, messages = report.messages, "batch failed; messages return after the visibility timeout");
        } else {
            info!(
                messages = report.messages,
                failed = report.failed,
                "batch delivered"
            );
        }
        Ok(Some(report))
    }

    /// Polls until stopped.
    pub async fn run(&self) -> Result<(), PollError> {
        loop {
            if let Err(e) = self.poll_once(Duration::from_secs(20)).await {
                warn!(error = %e, "polling failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
