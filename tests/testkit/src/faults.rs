//! DynamoDB fault injection in the emulator (see `dev/moto_server.py`): a seeded plan of throttles,
//! transaction conflicts, server errors, lost answers and delays for the requests that name some tables.
//!
//! Only plain HTTP to the emulator's `/_faults` route, so that the load harness can use it as well as
//! the tests.
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! use testkit::faults::{DynamoFaults, FaultKind};
//! let plan = DynamoFaults::new(["my-table"]).rate(0.3).kinds([FaultKind::Throttle, FaultKind::LostAnswer]);
//! plan.apply(testkit::endpoint()).await?;
//! // ... requests ...
//! let fired = DynamoFaults::fired(testkit::endpoint()).await?;
//! DynamoFaults::clear(testkit::endpoint(), Some("my-table")).await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::io::{Error, ErrorKind};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a faulted request meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// HTTP 400 `ProvisionedThroughputExceededException` or `ThrottlingException` (for a transaction,
    /// sometimes `TransactionCanceledException` with a `ThrottlingError` reason). Nothing is written.
    Throttle,
    /// Writes: `TransactionCanceledException` with a `TransactionConflict` reason for a transaction,
    /// `TransactionConflictException` for a single-item write. Nothing is written.
    Conflict,
    /// HTTP 500 `InternalServerError`. Nothing is written.
    Internal,
    /// Writes: applied in full, then the connection is dropped before any answer.
    LostAnswer,
    /// The request waits this many milliseconds, then runs normally.
    Delay { ms: u64 },
}

impl FaultKind {
    /// The name the emulator counts it under.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Throttle => "throttle",
            Self::Conflict => "conflict",
            Self::Internal => "internal",
            Self::LostAnswer => "lost_answer",
            Self::Delay { .. } => "delay",
        }
    }

    fn to_json(self) -> Value {
        match self {
            Self::Delay { ms } => json!({ "kind": "delay", "ms": ms }),
            other => json!(other.name()),
        }
    }
}

/// A fault plan for some tables: each DynamoDB item operation naming one of them fails with probability
/// `rate`, the kind drawn among `kinds`, from a generator seeded with `seed` (per table).
#[derive(Clone, Debug, PartialEq)]
pub struct DynamoFaults {
    pub seed: u64,
    pub rate: f64,
    pub kinds: Vec<FaultKind>,
    pub tables: Vec<String>,
    /// Only these operations (`PutItem`, `TransactWriteItems`, ...); empty: every item operation.
    pub operations: Vec<String>,
}

/// Faults fired so far, per table and kind name.
pub type Fired = BTreeMap<String, BTreeMap<String, u64>>;

impl DynamoFaults {
    /// A plan for `tables` that fires nothing yet (rate 0, no kinds, seed 7).
    pub fn new<S: Into<String>>(tables: impl IntoIterator<Item = S>) -> Self {
        Self {
            seed: 7,
            rate: 0.0,
            kinds: Vec::new(),
            tables: tables.into_iter().map(Into::into).collect(),
            operations: Vec::new(),
        }
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn rate(mut self, rate: f64) -> Self {
        self.rate = rate;
        self
    }

    pub fn kinds(mut self, kinds: impl IntoIterator<Item = FaultKind>) -> Self {
        self.kinds = kinds.into_iter().collect();
        self
    }

    pub fn operations<S: Into<String>>(mut self, operations: impl IntoIterator<Item = S>) -> Self {
        self.operations = operations.into_iter().map(Into::into).collect();
        self
    }

    /// The plan as the emulator takes it (`POST /_faults`, or the `MOTO_FAULTS` variable).
    pub fn to_json(&self) -> Value {
        let mut plan = json!({
            "seed": self.seed,
            "rate": self.rate,
            "kinds": self.kinds.iter().map(|k| k.to_json()).collect::<Vec<_>>(),
            "tables": self.tables,
        });
        if !self.operations.is_empty() {
            plan["operations"] = json!(self.operations);
        }
        plan
    }

    /// Installs the plan (replacing any earlier plan of these tables).
    pub async fn apply(&self, endpoint: &str) -> std::io::Result<()> {
        request(endpoint, "POST", "/_faults", Some(self.to_json())).await?;
        Ok(())
    }

    /// Removes the plan of `table`, or every plan.
    pub async fn clear(endpoint: &str, table: Option<&str>) -> std::io::Result<()> {
        let path = match table {
            Some(t) => format!("/_faults?table={}", query_escape(t)),
            None => "/_faults".to_owned(),
        };
        request(endpoint, "DELETE", &path, None).await?;
        Ok(())
    }

    /// Faults fired so far, per table with a plan, per kind.
    pub async fn fired(endpoint: &str) -> std::io::Result<Fired> {
        let state = request(endpoint, "GET", "/_faults", None).await?;
        let mut out = Fired::new();
        if let Some(tables) = state["tables"].as_object() {
            for (table, plan) in tables {
                let counts = plan["fired"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert(table.clone(), counts);
            }
        }
        Ok(out)
    }

    /// Faults of `kind` fired so far on `table`.
    pub async fn fired_on(endpoint: &str, table: &str, kind: FaultKind) -> std::io::Result<u64> {
        Ok(Self::fired(endpoint)
            .await?
            .get(table)
            .and_then(|m| m.get(kind.name()))
            .copied()
            .unwrap_or(0))
    }
}

fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One HTTP/1.1 request to the emulator (`http://host:port`), answered with JSON.
async fn request(
    endpoint: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> std::io::Result<Value> {
    let authority = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "the emulator's endpoint is http://",
            )
        })?
        .trim_end_matches('/');
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut stream = TcpStream::connect(authority).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let text = String::from_utf8_lossy(&answer);
    let (head, payload) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| Error::new(ErrorKind::InvalidData, "no HTTP answer from the emulator"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(Error::other(format!(
            "{method} {path}: the emulator answered {status}: {payload} (is dev/moto_server.py running?)"
        )));
    }
    serde_json::from_str(payload).map_err(|e| Error::new(ErrorKind::InvalidData, e))
}
