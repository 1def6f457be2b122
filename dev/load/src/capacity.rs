//! Counts what DynamoDB would bill, read off the requests the SDK sends: requests per operation, write and
//! read capacity units, and writes per item and per partition key (the hot-key check). A put costs a unit
//! per started KB of the item it writes (DynamoDB's item size: attribute names plus values); an update or
//! delete is counted as one unit, which holds for the items they touch here (profiles, counter shards, job
//! outcomes: well under 1 KB); a transactional write costs twice that, a consistent read one unit per
//! item, an eventual read half.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::Value;

#[derive(Debug, Default, Clone)]
pub struct Usage {
    pub requests: BTreeMap<String, u64>,
    pub write_units: f64,
    pub read_units: f64,
    pub writes_per_item: HashMap<String, u64>,
}

impl Usage {
    /// Both usages together.
    pub fn merged(&self, other: &Usage) -> Usage {
        let mut out = self.clone();
        for (k, v) in &other.requests {
            *out.requests.entry(k.clone()).or_default() += v;
        }
        out.write_units += other.write_units;
        out.read_units += other.read_units;
        for (k, v) in &other.writes_per_item {
            *out.writes_per_item.entry(k.clone()).or_default() += v;
        }
        out
    }

    /// The partition key that received the most writes, its writes, and its share of all writes.
    pub fn busiest_partition(&self) -> Option<(String, u64, f64)> {
        let mut per: HashMap<&str, u64> = HashMap::new();
        for (item, n) in &self.writes_per_item {
            let pk = item.split(" | ").next().unwrap_or_default();
            *per.entry(pk).or_default() += n;
        }
        let total: u64 = per.values().sum();
        per.into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(pk, n)| (pk.to_owned(), n, n as f64 / total.max(1) as f64))
    }

    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    /// Requests to one service (`DynamoDB`, `SQS`, `Secrets Manager`).
    pub fn requests_of(&self, service: &str) -> u64 {
        self.requests
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{service}.")))
            .map(|(_, v)| v)
            .sum()
    }

    /// The item that received the most writes, and how many.
    pub fn hottest_item(&self) -> Option<(&str, u64)> {
        self.writes_per_item
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(k, n)| (k.as_str(), *n))
    }
}

#[derive(Clone, Debug, Default)]
pub struct CapacityMeter(Arc<Mutex<Usage>>);

impl CapacityMeter {
    pub fn usage(&self) -> Usage {
        self.0.lock().map(|u| u.clone()).unwrap_or_default()
    }

    pub fn reset(&self) {
        if let Ok(mut u) = self.0.lock() {
            *u = Usage::default();
        }
    }
}

fn item_key(map: &Value) -> String {
    let s = |name: &str| map[name]["S"].as_str().unwrap_or_default().to_owned();
    format!("{} | {}", s("pk"), s("sk"))
}

/// DynamoDB's size of an attribute value in bytes (names and values, as its item size rules count them).
fn value_size(v: &Value) -> usize {
    let Some((tag, inner)) = v.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    match tag.as_str() {
        "S" | "N" | "B" => inner.as_str().map_or(0, str::len),
        "BOOL" | "NULL" => 1,
        "SS" | "NS" | "BS" => inner.as_array().map_or(0, |a| {
            a.iter().filter_map(Value::as_str).map(str::len).sum()
        }),
        "L" => {
            3 + inner
                .as_array()
                .map_or(0, |a| a.iter().map(|x| 1 + value_size(x)).sum())
        }
        "M" => 3 + item_size(inner),
        _ => 0,
    }
}

fn item_size(item: &Value) -> usize {
    item.as_object()
        .map_or(0, |o| o.iter().map(|(k, v)| k.len() + value_size(v)).sum())
}

/// Write units of a put of `item`: one per started KB.
fn put_units(item: &Value) -> f64 {
    item_size(item).div_ceil(1024).max(1) as f64
}

fn record(usage: &mut Usage, operation: &str, body: &Value) {
    let write = |usage: &mut Usage, key: String, units: f64| {
        usage.write_units += units;
        *usage.writes_per_item.entry(key).or_default() += 1;
    };
    match operation {
        "TransactWriteItems" => {
            for item in body["TransactItems"].as_array().into_iter().flatten() {
                if let Some(put) = item.get("Put") {
                    write(usage, item_key(&put["Item"]), 2.0 * put_units(&put["Item"]));
                } else if let Some(op) = item
                    .get("Update")
                    .or_else(|| item.get("Delete"))
                    .or_else(|| item.get("ConditionCheck"))
                {
                    write(usage, item_key(&op["Key"]), 2.0);
                }
            }
        }
        "PutItem" => write(usage, item_key(&body["Item"]), put_units(&body["Item"])),
        "UpdateItem" | "DeleteItem" => write(usage, item_key(&body["Key"]), 1.0),
        "BatchWriteItem" => {
            for requests in body["RequestItems"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.values())
            {
                for r in requests.as_array().into_iter().flatten() {
                    if let Some(p) = r.get("PutRequest") {
                        write(usage, item_key(&p["Item"]), put_units(&p["Item"]));
                    } else if let Some(d) = r.get("DeleteRequest") {
                        write(usage, item_key(&d["Key"]), 1.0);
                    }
                }
            }
        }
        "GetItem" => {
            usage.read_units += if body["ConsistentRead"] == Value::Bool(true) {
                1.0
            } else {
                0.5
            };
        }
        "BatchGetItem" => {
            for keys in body["RequestItems"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.values())
            {
                let per = if keys["ConsistentRead"] == Value::Bool(true) {
                    1.0
                } else {
                    0.5
                };
                usage.read_units += per * keys["Keys"].as_array().map_or(0, Vec::len) as f64;
            }
        }
        "Query" | "Scan" => usage.read_units += 1.0,
        _ => {}
    }
}

impl Intercept for CapacityMeter {
    fn name(&self) -> &'static str {
        "CapacityMeter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_owned(), m.name().to_owned()))
            .unwrap_or_default();
        let body: Value = context
            .request()
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        if let Ok(mut usage) = self.0.lock() {
            *usage
                .requests
                .entry(format!("{service}.{operation}"))
                .or_default() += 1;
            if service == "DynamoDB" {
                record(&mut usage, &operation, &body);
            }
        }
        Ok(())
    }
}

/// SDK clients that report to one meter.
pub struct MeteredClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub meter: CapacityMeter,
}

impl MeteredClients {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        let meter = CapacityMeter::default();
        Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(sdk)
                    .interceptor(meter.clone())
                    .build(),
            ),
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(sdk)
                    .interceptor(meter.clone())
                    .build(),
            ),
            secrets: aws_sdk_secretsmanager::Client::from_conf(
                aws_sdk_secretsmanager::config::Builder::from(sdk)
                    .interceptor(meter.clone())
                    .build(),
            ),
            meter,
        }
    }
}
