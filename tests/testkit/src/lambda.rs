//! Runs a function's real binary as Lambda runs it: the binary's `lambda_runtime` loop polls a local
//! Lambda Runtime API (this module's server) for events, one after another, and posts each answer back.
//! What is tested is the whole binary: its `main`, configuration from the environment, clients built at
//! cold start, and the handler.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::Value;

/// One event's answer: the function's response, or the error it reported.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub name: String,
    pub ok: bool,
    pub body: Value,
}

#[derive(Default)]
struct Runtime {
    pending: Mutex<VecDeque<(String, String, Value)>>,
    in_flight: Mutex<Vec<(String, String)>>,
    done: Mutex<Vec<Invocation>>,
    init_error: Mutex<Option<String>>,
}

async fn next(State(rt): State<Arc<Runtime>>) -> impl IntoResponse {
    let item = rt.pending.lock().map(|mut p| p.pop_front()).unwrap_or(None);
    let Some((id, name, event)) = item else {
        // Nothing left: hold the poll, as Lambda does between invocations.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return (StatusCode::NO_CONTENT, HeaderMap::new(), String::new());
    };
    if let Ok(mut f) = rt.in_flight.lock() {
        f.push((id.clone(), name));
    }
    let mut headers = HeaderMap::new();
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        + 60_000;
    for (k, v) in [
        ("lambda-runtime-aws-request-id", id),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:local".to_owned(),
        ),
        (
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000".to_owned(),
        ),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    }
    (StatusCode::OK, headers, event.to_string())
}

fn finish(rt: &Runtime, id: &str, ok: bool, body: &[u8]) {
    let name = rt
        .in_flight
        .lock()
        .ok()
        .and_then(|f| f.iter().find(|(i, _)| i == id).map(|(_, n)| n.clone()))
        .unwrap_or_default();
    let body = serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    if let Ok(mut d) = rt.done.lock() {
        d.push(Invocation { name, ok, body });
    }
}

async fn response(
    State(rt): State<Arc<Runtime>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    finish(&rt, &id, true, &body);
    StatusCode::ACCEPTED
}

async fn error(State(rt): State<Arc<Runtime>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    finish(&rt, &id, false, &body);
    StatusCode::ACCEPTED
}

async fn init_error(State(rt): State<Arc<Runtime>>, body: Bytes) -> StatusCode {
    if let Ok(mut e) = rt.init_error.lock() {
        *e = Some(String::from_utf8_lossy(&body).into_owned());
    }
    StatusCode::ACCEPTED
}

/// A local Runtime API with the binary at `binary` polling it.
struct Running {
    rt: Arc<Runtime>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    child: tokio::process::Child,
}

async fn start(binary: &str, env: &[(&str, String)], events: Vec<(String, Value)>) -> Running {
    let rt = Arc::new(Runtime::default());
    if let Ok(mut p) = rt.pending.lock() {
        for (i, (name, event)) in events.into_iter().enumerate() {
            p.push_back((format!("request-{i}"), name, event));
        }
    }
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(rt.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut command = tokio::process::Command::new(binary);
    command
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "local")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "local")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
    Running { rt, server, child }
}

impl Running {
    fn done(&self) -> usize {
        self.rt.done.lock().map(|d| d.len()).unwrap_or(0)
    }

    /// Panics with the binary's own words if it exited.
    async fn check_alive(&mut self, binary: &str, count: usize) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let mut stderr = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                use tokio::io::AsyncReadExt;
                let _ = e.read_to_string(&mut stderr).await;
            }
            let init = self.rt.init_error.lock().ok().and_then(|e| e.clone());
            let done = self.done();
            panic!("{binary} exited ({status}) after {done} of {count} events: {init:?} {stderr}");
        }
    }

    async fn stop(mut self) -> Vec<Invocation> {
        let _ = self.child.kill().await;
        self.server.abort();
        self.rt.done.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

/// Runs `events` (name, event) through the binary at `binary` with the environment `env`, and returns
/// the answers in the order they came. Panics with the binary's own words if it fails to start.
pub async fn invoke_all(
    binary: &str,
    env: &[(&str, String)],
    events: Vec<(String, Value)>,
) -> Vec<Invocation> {
    let count = events.len();
    let mut running = start(binary, env, events).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while running.done() < count {
        running.check_alive(binary, count).await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "{binary} answered {} of {count} events in time",
            running.done()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.stop().await
}

/// Runs one event through the binary and kills the process (SIGKILL, as Lambda's timeout or a crash
/// ends it) as soon as `kill_when` holds, before the binary answers. Returns whether it was killed
/// before answering (false: it answered first).
pub async fn invoke_and_kill(
    binary: &str,
    env: &[(&str, String)],
    event: Value,
    kill_when: impl Fn() -> bool,
) -> bool {
    let mut running = start(binary, env, vec![("killed".to_owned(), event)]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        if running.done() > 0 {
            running.stop().await;
            return false;
        }
        if kill_when() {
            let _ = running.child.start_kill();
            let _ = running.child.wait().await;
            let answered = running.done() > 0;
            running.stop().await;
            return !answered;
        }
        running.check_alive(binary, 1).await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "{binary}: the kill condition never held"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every event file of a folder of `events/`, by file name without `.json`.
pub fn event_files(folder: &str) -> Vec<(String, Value)> {
    let dir = format!("{}/../../events/{folder}", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (name, value)
        })
        .collect()
}
