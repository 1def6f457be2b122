//! Cold start of a release binary: the time from spawning it to its first request for work
//! (`GET /2018-06-01/runtime/invocation/next`) on a local Lambda Runtime API, which is never answered.
//! That span is the process's own init: reading its configuration and building its clients (secrets
//! are fetched lazily, on the first event). Lambda's own sandbox start and code download are not in it.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use tokio::sync::mpsc;

#[derive(Debug)]
pub struct ColdStart {
    pub binary: String,
    pub size_bytes: u64,
    pub runs: Vec<Duration>,
    pub failures: Vec<String>,
}

impl ColdStart {
    pub fn median(&self) -> Option<Duration> {
        let mut r = self.runs.clone();
        r.sort();
        r.get(r.len() / 2).copied()
    }

    pub fn max(&self) -> Option<Duration> {
        self.runs.iter().max().copied()
    }
}

/// The environment the functions read at start; dummy values, the AWS endpoint is `aws_endpoint`.
fn environment(aws_endpoint: &str) -> Vec<(&'static str, String)> {
    [
        ("AWS_ENDPOINT_URL", aws_endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_LAMBDA_FUNCTION_NAME", "cold-start"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/cold-start"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "local"),
        ("TABLE_NAME", "cold-start-table"),
        ("SECRETS_PREFIX", "cold-start/postmark"),
        ("TRACKING_KEY_SECRET", "cold-start/tracking-key"),
        ("TRACKING_BASE_URL", "https://track.example.com"),
        ("WEBHOOK_PASSWORD_SECRET", "cold-start/webhook-password"),
        ("ADMIN_KEY_SECRET", "cold-start/admin-key"),
        ("PUBLIC_BASE_URL", "https://api.example.com"),
        ("POSTMARK_API_URL", "http://127.0.0.1:9"),
        ("RUST_LOG", "error"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect()
}

/// Starts `binary` `runs` times against a fresh Runtime API and measures spawn to first `next`.
pub async fn measure(binary: &Path, runs: usize, aws_endpoint: &str) -> ColdStart {
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let app = Router::new().route(
        "/2018-06-01/runtime/invocation/next",
        get(move || {
            let tx = tx.clone();
            async move {
                let _ = tx.send(Instant::now());
                // Hold the request: the function waits for work that never comes.
                std::future::pending::<()>().await;
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("the port");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut result = ColdStart {
        binary: binary.display().to_string(),
        size_bytes: std::fs::metadata(binary).map(|m| m.len()).unwrap_or(0),
        runs: Vec::new(),
        failures: Vec::new(),
    };
    for _ in 0..runs {
        while rx.try_recv().is_ok() {}
        let started = Instant::now();
        let child = tokio::process::Command::new(binary)
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .envs(environment(aws_endpoint))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                result.failures.push(format!("spawn: {e}"));
                break;
            }
        };
        tokio::select! {
            at = rx.recv() => {
                if let Some(at) = at {
                    result.runs.push(at.duration_since(started));
                }
                let _ = child.kill().await;
            }
            status = child.wait() => {
                let mut stderr = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use tokio::io::AsyncReadExt;
                    let _ = e.read_to_string(&mut stderr).await;
                }
                result.failures.push(format!("exited ({status:?}) before asking for work: {}", stderr.trim()));
            }
            _ = tokio::time::sleep(Duration::from_secs(20)) => {
                result.failures.push("no request for work within 20 s".into());
                let _ = child.kill().await;
            }
        }
    }
    result
}
