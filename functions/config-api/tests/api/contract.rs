//! The OpenAPI document: valid, and kept by the API. schemathesis (from dev/requirements.txt) fuzzes the
//! API served over HTTP by the same adapter as `config-api-local`, and fails on any server error or any
//! answer the document does not describe (status, content type, headers, body schema).

use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;

use postmark_sim::{ServerConfig, SimOptions, Simulator};
use serde_json::json;

use crate::support::{TestApp, api_server};

const TOKEN: &str = "contract-token-0000";

fn document() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi.yaml")
}

fn report(what: &str, out: &Output) -> String {
    format!(
        "{what} exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_openapi_document_is_valid() {
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(document())
        .output()
        .expect("python3 runs (openapi-spec-validator comes from dev/requirements.txt)");
    assert!(
        out.status.success(),
        "{}",
        report("openapi-spec-validator", &out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    // A Postmark that works: the routes that call it answer as they do in service. It knows the token of
    // the server made below and refuses the tokens schemathesis makes up (401, ErrorCode 10), so servers
    // it creates are the ones Postmark refuses, which must not turn any route into a server error. An
    // unreachable Postmark is a 503 by design, tested in `managed.rs`.
    let sim = Simulator::start(SimOptions::for_tests())
        .await
        .expect("the Postmark simulator starts");
    sim.add_server(ServerConfig::new(TOKEN).name("Contract"));
    let app = TestApp::with_env(&[("POSTMARK_API_URL", &sim.api_url())]).await;
    // Something to find: a server, a suppression, an activity entry.
    let created = app
        .post("/api/email-servers", api_server("Contract", TOKEN))
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(
        app.post("/api/suppressions", json!({"email": "someone@example.com"}))
            .await
            .status,
        201
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = Arc::new(app.app.clone());
    let server = tokio::spawn(config_api::local::serve(served, listener));

    let reports = tempfile::tempdir().unwrap();
    let report_dir = reports.path().to_owned();
    let key = app.admin_key.clone();
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-m", "schemathesis.cli", "run"])
            .arg(document())
            .args(["--url", &url])
            .args(["--header", &format!("Authorization: Bearer {key}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
            ])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args(["--mode", "all"])
            // Bounded by examples, not time: with a fixed seed every run tries the same cases.
            .args(["--max-examples", "40"])
            .args(["--seed", "20260401"])
            // One worker: Python 3.11's AST constructor is not safe when hypothesis describes its
            // strategies from two threads at once ("AST constructor recursion depth mismatch").
            .args(["--workers", "1"])
            .args(["--request-timeout", "20"])
            .arg("--no-color")
            .arg("--report-dir")
            .arg(&report_dir)
            // schemathesis keeps a cache in its working directory: not in the source tree.
            .current_dir(&report_dir)
            .output()
    });
    let out = run
        .await
        .unwrap()
        .expect("python3 runs (schemathesis comes from dev/requirements.txt)");
    server.abort();
    assert!(out.status.success(), "{}", report("schemathesis", &out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        stdout.contains("passed") || stdout.contains("No issues found"),
        "{}",
        report("schemathesis", &out)
    );
}
