//! Plays the DynamoDB stream's event source mapping: reads the table's stream shard by shard through the
//! DynamoDB Streams API, gathers records into batches (up to `batch_size`, waiting at most `window` once
//! the first record is in), invokes the function with Lambda's DynamoDB event, and moves past a batch only
//! when the invocation succeeded. A failed batch is invoked again whole, as Lambda does without bisecting.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use tracing::{info, warn};

use crate::invoke::{InvokeFn, Invoker};

#[derive(Debug, Clone)]
pub struct StreamPollerConfig {
    /// The table's latest stream.
    pub stream_arn: String,
    pub region: String,
    /// The Lambda invoke URL, e.g. `http://127.0.0.1:9000/2015-03-31/functions/stream/invocations`.
    pub invoke_url: String,
    pub batch_size: usize,
    pub window: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StreamPollError {
    #[error("the stream cannot be read: {0}")]
    Stream(String),
}

/// What one batch came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamBatchReport {
    pub records: usize,
    /// Failed invocations before the one that succeeded.
    pub failed_attempts: usize,
}

/// Where reading one shard stands.
#[derive(Debug, Default)]
struct ShardState {
    iterator: Option<String>,
    /// Read but not yet handed to a successful invocation.
    pending: Vec<Record>,
    closed: bool,
}

pub struct StreamPoller {
    streams: Client,
    invoker: Invoker,
    config: StreamPollerConfig,
    shards: tokio::sync::Mutex<BTreeMap<String, ShardState>>,
}

impl StreamPoller {
    /// Invokes the function at `config.invoke_url`.
    pub fn new(streams: Client, config: StreamPollerConfig) -> Self {
        Self::with_invoker(streams, config, Invoker::http())
    }

    /// Calls `invoke` instead of the invoke API (`config.invoke_url` is not used).
    pub fn in_process(streams: Client, config: StreamPollerConfig, invoke: InvokeFn) -> Self {
        Self::with_invoker(streams, config, Invoker::InProcess(invoke))
    }

    fn with_invoker(streams: Client, config: StreamPollerConfig, invoker: Invoker) -> Self {
        Self {
            streams,
            invoker,
            config,
            shards: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    fn error(e: impl std::fmt::Display) -> StreamPollError {
        StreamPollError::Stream(e.to_string())
    }

    /// Learns of shards that appeared since the last look; new shards start at their oldest record.
    async fn discover(
        &self,
        shards: &mut BTreeMap<String, ShardState>,
    ) -> Result<(), StreamPollError> {
        let mut start: Option<String> = None;
        loop {
            let described = self
                .streams
                .describe_stream()
                .stream_arn(&self.config.stream_arn)
                .set_exclusive_start_shard_id(start.clone())
                .send()
                .await
                .map_err(|e| Self::error(aws_sdk_dynamodbstreams::error::DisplayErrorContext(e)))?;
            let Some(description) = described.stream_description else {
                return Ok(());
            };
            for shard in description.shards() {
                let Some(id) = shard.shard_id() else { continue };
                if shards.contains_key(id) {
                    continue;
                }
                let iterator = self
                    .streams
                    .get_shard_iterator()
                    .stream_arn(&self.config.stream_arn)
                    .shard_id(id)
                    .shard_iterator_type(ShardIteratorType::TrimHorizon)
                    .send()
                    .await
                    .map_err(|e| {
                        Self::error(aws_sdk_dynamodbstreams::error::DisplayErrorContext(e))
                    })?
                    .shard_iterator;
                shards.insert(
                    id.to_owned(),
                    ShardState {
                        iterator,
                        ..ShardState::default()
                    },
                );
            }
            match description.last_evaluated_shard_id {
                Some(last) => start = Some(last),
                None => return Ok(()),
            }
        }
    }

    /// Reads what the shard has beyond its pending records, up to the batch size.
    async fn read(&self, shard: &mut ShardState) -> Result<(), StreamPollError> {
        while shard.pending.len() < self.config.batch_size && !shard.closed {
            let Some(iterator) = shard.iterator.clone() else {
                shard.closed = true;
                break;
            };
            let want = (self.config.batch_size - shard.pending.len()).min(1000) as i32;
            let got = self
                .streams
                .get_records()
                .shard_iterator(iterator)
                .limit(want)
                .send()
                .await
                .map_err(|e| Self::error(aws_sdk_dynamodbstreams::error::DisplayErrorContext(e)))?;
            shard.iterator = got.next_shard_iterator;
            let records = got.records.unwrap_or_default();
            if records.is_empty() {
                break;
            }
            shard.pending.extend(records);
        }
        Ok(())
    }

    /// Runs one batch of one shard through the function, retrying it whole until the function succeeds.
    /// Returns `None` when no shard had a record for `idle_wait`.
    pub async fn poll_once(
        &self,
        idle_wait: Duration,
    ) -> Result<Option<StreamBatchReport>, StreamPollError> {
        let started = Instant::now();
        let mut shards = self.shards.lock().await;
        let mut first_seen: Option<Instant> = None;
        let id = loop {
            self.discover(&mut shards).await?;
            for shard in shards.values_mut() {
                self.read(shard).await?;
            }
            let ready = shards
                .iter()
                .find(|(_, s)| s.pending.len() >= self.config.batch_size)
                .or_else(|| shards.iter().find(|(_, s)| !s.pending.is_empty()))
                .map(|(id, _)| id.clone());
            match ready {
                Some(id) => {
                    let since = *first_seen.get_or_insert_with(Instant::now);
                    let full = shards[&id].pending.len() >= self.config.batch_size;
                    if full || since.elapsed() >= self.config.window {
                        break id;
                    }
                }
                None if started.elapsed() >= idle_wait => return Ok(None),
                None => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let Some(shard) = shards.get_mut(&id) else {
            return Ok(None);
        };
        let take = shard.pending.len().min(self.config.batch_size);
        let batch: Vec<Record> = shard.pending[..take].to_vec();
        let event = json!({
            "Records": batch.iter().map(|r| self.record(r)).collect::<Vec<_>>(),
        });
        let mut failed_attempts = 0;
        loop {
            match self
                .invoker
                .invoke(&self.config.invoke_url, event.clone())
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    failed_attempts += 1;
                    warn!(shard = %id, records = take, error = %e, "batch failed; invoking it again");
                    tokio::time::sleep(Duration::from_millis(
                        (100 * failed_attempts as u64).min(2000),
                    ))
                    .await;
                }
            }
        }
        shard.pending.drain(..take);
        info!(shard = %id, records = take, failed_attempts, "batch delivered");
        Ok(Some(StreamBatchReport {
            records: take,
            failed_attempts,
        }))
    }

    /// Hands every record written so far to the function, then returns what it delivered.
    pub async fn drain(&self) -> Result<Vec<StreamBatchReport>, StreamPollError> {
        let mut reports = Vec::new();
        while let Some(report) = self.poll_once(Duration::ZERO).await? {
            reports.push(report);
        }
        Ok(reports)
    }

    /// Polls until stopped.
    pub async fn run(&self) -> Result<(), StreamPollError> {
        loop {
            if let Err(e) = self.poll_once(Duration::from_secs(20)).await {
                warn!(error = %e, "reading the stream failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    /// One record in Lambda's DynamoDB event shape.
    fn record(&self, r: &Record) -> Value {
        let mut dynamodb = Map::new();
        if let Some(s) = &r.dynamodb {
            for (name, image) in [
                ("Keys", s.keys.as_ref()),
                ("NewImage", s.new_image.as_ref()),
                ("OldImage", s.old_image.as_ref()),
            ] {
                if let Some(image) = image {
                    dynamodb.insert(name.into(), item_json(image));
                }
            }
            dynamodb.insert("SequenceNumber".into(), json!(s.sequence_number));
            dynamodb.insert("SizeBytes".into(), json!(s.size_bytes));
            dynamodb.insert(
                "StreamViewType".into(),
                json!(s.stream_view_type.as_ref().map(|v| v.as_str())),
            );
            if let Some(t) = s.approximate_creation_date_time {
                dynamodb.insert("ApproximateCreationDateTime".into(), json!(t.secs()));
            }
        }
        json!({
            "eventID": r.event_id,
            "eventName": r.event_name.as_ref().map(|n| n.as_str()),
            "eventVersion": r.event_version,
            "eventSource": "aws:dynamodb",
            "awsRegion": self.config.region,
            "dynamodb": dynamodb,
            "eventSourceARN": self.config.stream_arn,
        })
    }
}

fn item_json(item: &std::collections::HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), attribute_json(v)))
            .collect(),
    )
}

fn attribute_json(value: &AttributeValue) -> Value {
    let one = |tag: &str, v: Value| Value::Object([(tag.to_owned(), v)].into_iter().collect());
    let texts = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
    let blob =
        |b: &aws_sdk_dynamodbstreams::primitives::Blob| Value::String(STANDARD.encode(b.as_ref()));
    match value {
        AttributeValue::S(s) => one("S", Value::String(s.clone())),
        AttributeValue::N(n) => one("N", Value::String(n.clone())),
        AttributeValue::B(b) => one("B", blob(b)),
        AttributeValue::Bool(b) => one("BOOL", Value::Bool(*b)),
        AttributeValue::Ss(v) => one("SS", texts(v)),
        AttributeValue::Ns(v) => one("NS", texts(v)),
        AttributeValue::Bs(v) => one("BS", Value::Array(v.iter().map(blob).collect())),
        AttributeValue::L(v) => one("L", Value::Array(v.iter().map(attribute_json).collect())),
        AttributeValue::M(m) => one("M", item_json(m)),
        _ => one("NULL", Value::Bool(true)),
    }
}

/// The table's latest stream, as the event source mapping names it.
pub async fn latest_stream_arn(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<String, StreamPollError> {
    dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| {
            StreamPollError::Stream(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
        })?
        .table
        .and_then(|t| t.latest_stream_arn)
        .ok_or_else(|| StreamPollError::Stream(format!("table {table} has no stream")))
}

/// A poller that hands the table's stream to the stream function in this process (tests and load runs:
/// the function's DynamoDB requests go through `dynamodb`, so that a caller can count or fault them).
pub async fn in_process(
    sdk: &aws_config::SdkConfig,
    dynamodb: aws_sdk_dynamodb::Client,
    table: &str,
    batch_size: usize,
    window: Duration,
) -> Result<StreamPoller, StreamPollError> {
    let app = stream::App::with_clients(
        dynamodb,
        stream::Config {
            table_name: table.to_owned(),
            event_bus_name: None,
        },
    );
    for_app(sdk, std::sync::Arc::new(app), batch_size, window).await
}

/// A poller that hands its table's stream, from the oldest record, to `app` in this process.
pub async fn for_app(
    sdk: &aws_config::SdkConfig,
    app: std::sync::Arc<stream::App>,
    batch_size: usize,
    window: Duration,
) -> Result<StreamPoller, StreamPollError> {
    let stream_arn =
        latest_stream_arn(&aws_sdk_dynamodb::Client::new(sdk), app.table.name()).await?;
    let invoke: InvokeFn = std::sync::Arc::new(move |event: Value| {
        let app = app.clone();
        Box::pin(async move {
            stream::handle(&app, &event)
                .await
                .map(|()| Value::Null)
                .map_err(|e| e.to_string())
        })
    });
    Ok(StreamPoller::in_process(
        Client::new(sdk),
        StreamPollerConfig {
            stream_arn,
            region: crate::region_of(sdk),
            invoke_url: String::new(),
            batch_size,
            window,
        },
        invoke,
    ))
}
