//! The job contract as written down for producers (`schemas/send-job.schema.json`, the examples in
//! `events/sender/`) agrees with what the sender reads; and the sample SQS event goes through the handler.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;
use domain::jobs::{FIELDS, REQUIRED, SendJob};
use serde_json::Value;
use store::jobs::JobStatus;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read_json(path: &str) -> Value {
    let path = root().join(path);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn example_jobs() -> Vec<(String, Value)> {
    let dir = root().join("events/sender/jobs");
    let mut jobs: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let value = read_json(&format!("events/sender/jobs/{name}"));
            (name, value)
        })
        .collect();
    jobs.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(jobs.len() >= 4, "examples for every email type");
    jobs
}

/// Validates documents against the schema with Python's `jsonschema` (draft 2020-12): one verdict each.
fn schema_verdicts(docs: &[&Value]) -> Vec<bool> {
    const SCRIPT: &str = r#"
import json, sys
try:
    from jsonschema import Draft202012Validator
except ImportError as e:
    print("ERROR the jsonschema package is missing (pip install -r dev/requirements.txt): %s" % e)
    sys.exit(3)
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
validator = Draft202012Validator(schema)
for line in sys.stdin:
    print("valid" if validator.is_valid(json.loads(line)) else "invalid")
"#;
    let schema = root().join("schemas/send-job.schema.json");
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(&schema)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    {
        let mut stdin = child.stdin.take().unwrap();
        for doc in docs {
            writeln!(stdin, "{doc}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schema check failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines().map(|l| l == "valid").collect()
}

#[test]
fn the_schema_names_the_fields_the_sender_reads() {
    let schema = read_json("schemas/send-job.schema.json");
    let mut properties: Vec<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    properties.sort_unstable();
    let mut fields = FIELDS.to_vec();
    fields.sort_unstable();
    assert_eq!(properties, fields);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(required, REQUIRED);
    assert_eq!(schema["additionalProperties"], Value::Bool(false));
}

#[test]
fn examples_are_valid_for_the_schema_and_the_sender() {
    let jobs = example_jobs();
    for (name, job) in &jobs {
        SendJob::parse(&job.to_string(), Some("sqs-example"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let docs: Vec<&Value> = jobs.iter().map(|(_, j)| j).collect();
    let verdicts = schema_verdicts(&docs);
    for ((name, _), valid) in jobs.iter().zip(verdicts) {
        assert!(valid, "{name} is not valid for the schema");
    }
}

#[test]
fn invalid_examples_are_refused_by_both_naming_the_field() {
    let cases = read_json("events/sender/invalid-jobs.json");
    let cases = cases.as_array().unwrap();
    for case in cases {
        let field = case["field"].as_str().unwrap();
        let e = SendJob::parse(&case["job"].to_string(), Some("sqs-example"))
            .expect_err(case["why"].as_str().unwrap());
        assert!(
            e.errors.iter().any(|f| f.field == field),
            "{field} not named in {e}"
        );
    }
    let by_schema: Vec<&Value> = cases
        .iter()
        .filter(|c| c["schema_catches"] != Value::Bool(false))
        .map(|c| &c["job"])
        .collect();
    for (job, valid) in by_schema.iter().zip(schema_verdicts(&by_schema)) {
        assert!(!valid, "the schema lets through {job}");
    }
}

#[tokio::test]
async fn the_sample_sqs_event_goes_through_the_handler() {
    let event_json = read_json("events/sender/sqs-batch.json");
    let records = event_json["Records"].as_array().unwrap();
    // The sample's bodies are the example jobs, as producers would enqueue them.
    let examples: Vec<Value> = example_jobs().into_iter().map(|(_, j)| j).collect();
    for r in &records[..records.len() - 1] {
        let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        assert!(examples.contains(&body), "{body} is not an example job");
    }
    let env = Env::new().await;
    let event: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_value(event_json.clone()).unwrap();

    let answer = failures(sender::handle(&env.app, event).await);

    assert!(answer.is_empty(), "{answer:?}");
    for id in [
        "b-2026-spring:sub-1042",
        "seq-onboarding:step-2:sub-77",
        "order-88412-receipt",
        // The minimal job has no id: its SQS message id stands in.
        "5b0c7a1e-6f3d-4c2a-9e8b-000000000004",
    ] {
        assert_eq!(env.status(id).await, Some(JobStatus::Sent), "{id}");
    }
    assert_eq!(
        env.status("5b0c7a1e-6f3d-4c2a-9e8b-000000000005").await,
        Some(JobStatus::Rejected)
    );
    let receipt = env.sim.messages_to("alan@example.org").pop().unwrap();
    assert_eq!(receipt.attachments.len(), 1);
    assert_eq!(receipt.cc.as_deref(), Some("accounts@example.org"));
    assert_eq!(
        receipt.from,
        "\"Example Shop, Receipts\" <receipts@example.com>"
    );
    assert_eq!(receipt.message_stream, "outbound");
    let sequence = env
        .sim
        .messages_to("grace.hopper@example.net")
        .pop()
        .unwrap();
    assert_eq!(sequence.message_stream, "broadcast");
    assert_eq!(sequence.metadata["sequence_id"], "seq-onboarding");
}
