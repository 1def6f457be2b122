//! Native opens and clicks under a slow or failing store: the person gets the pixel or the redirect
//! within a bound whatever DynamoDB does. The store clients here have generous timeouts of their own
//! (the harness's), so what bounds the answer is the function's budget for the store, nothing else.

use std::time::{Duration, Instant};

use domain::JobId;
use domain::tracking::{TokenSigner, TrackingTarget};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use serde_json::{Value, json};
use testkit::faults::{DynamoFaults, FaultKind};
use testkit::{Aws, TestTable, unique};
use webhook::{App, Config, PIXEL_GIF};

const TRACKING_KEY: &str = "pressure-tracking-key";
const URL: &str = "https://shop.example.com/sale?utm_source=email";
const BROWSER: &str =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko)";
/// The function's timeout in the template (Globals.Function.Timeout).
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(10);
const BUDGET: Duration = Duration::from_millis(300);

fn config(table: &str, tracking_secret: &str) -> Config {
    Config {
        table_name: table.to_owned(),
        webhook_password_secret: unique("test/unused-password"),
        tracking_key_secret: tracking_secret.to_owned(),
        password_grace: chrono::Duration::hours(24),
        secrets_ttl: Duration::from_secs(300),
        password_recheck: Duration::ZERO,
    }
}

fn tracking_event(route: &str, token: &str) -> Value {
    let path = format!(
        "{}/../../events/webhook/{route}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut e: Value = serde_json::from_str(&text).unwrap();
    let p = e["rawPath"].as_str().unwrap().replace("TOKEN", token);
    e["rawPath"] = json!(p);
    e["requestContext"]["http"]["path"] = json!(p);
    e["headers"]["user-agent"] = json!(BROWSER);
    e
}

fn tokens(job: &str) -> (String, String) {
    let signer = TokenSigner::new(TRACKING_KEY.as_bytes());
    let job = JobId::parse(job).unwrap();
    let open = signer
        .sign(&TrackingTarget::Open { job: job.clone() })
        .unwrap();
    let click = signer
        .sign(&TrackingTarget::Click {
            job,
            url: URL.into(),
        })
        .unwrap();
    (open, click)
}

/// Calls the handler as Lambda would, failing if it outlives the function's timeout; returns the
/// answer and how long it took.
async fn call(app: &App, route: &str, token: &str) -> (Response<Body>, Duration) {
    let request = lambda_http::request::from_str(&tracking_event(route, token).to_string())
        .expect("a valid API Gateway event");
    let started = Instant::now();
    let response = tokio::time::timeout(FUNCTION_TIMEOUT, webhook::handle(app, request))
        .await
        .unwrap_or_else(|_| panic!("{route}: no answer within the function's timeout"));
    (response, started.elapsed())
}

/// Both native routes answer as if the store were fine, well within the function's timeout.
async fn assert_answers_despite_the_store(app: &App, what: &str) {
    let (open, click) = tokens("job-pressure");
    let (r, took) = call(app, "track-click", &click).await;
    assert_eq!(r.status(), StatusCode::FOUND, "{what}: click");
    assert_eq!(r.headers()["location"], URL, "{what}: click");
    assert!(
        took < FUNCTION_TIMEOUT / 2,
        "{what}: the click took {took:?}"
    );
    let (r, took) = call(app, "track-open", &open).await;
    assert_eq!(r.status(), StatusCode::OK, "{what}: pixel");
    assert_eq!(r.headers()["content-type"], "image/gif", "{what}: pixel");
    assert_eq!(r.body().as_ref(), PIXEL_GIF, "{what}: pixel");
    assert!(
        took < FUNCTION_TIMEOUT / 2,
        "{what}: the pixel took {took:?}"
    );
}

/// A TCP server that accepts connections and never answers: a store that hangs.
async fn black_hole() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (endpoint, task)
}

#[tokio::test]
async fn native_tracking_answers_when_the_store_never_answers() {
    let aws = Aws::new().await;
    let tracking = testkit::secret(&aws, "test/tracking-key", TRACKING_KEY).await;
    let (endpoint, hole) = black_hole().await;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await;
    let hung = store::aws::dynamodb_client(&sdk, &testkit::test_policy());
    let app = App::with_clients(hung, aws.secrets.clone(), config("hung", &tracking))
        .with_native_store_budget(BUDGET);
    assert_answers_despite_the_store(&app, "a store that never answers").await;
    hole.abort();
}

#[tokio::test]
async fn native_tracking_answers_when_the_store_is_slow() {
    let t = TestTable::new().await;
    let tracking = testkit::secret(&t.aws, "test/tracking-key", TRACKING_KEY).await;
    let app = App::with_clients(
        t.aws.dynamodb.clone(),
        t.aws.secrets.clone(),
        config(t.table.name(), &tracking),
    )
    .with_native_store_budget(BUDGET);
    DynamoFaults::new([t.table.name()])
        .rate(1.0)
        .kinds([FaultKind::Delay { ms: 20_000 }])
        .apply(testkit::endpoint())
        .await
        .unwrap();
    assert_answers_despite_the_store(&app, "a slow store").await;
    DynamoFaults::clear(testkit::endpoint(), Some(t.table.name()))
        .await
        .unwrap();
}

#[tokio::test]
async fn native_tracking_answers_when_the_store_fails() {
    let t = TestTable::new().await;
    let tracking = testkit::secret(&t.aws, "test/tracking-key", TRACKING_KEY).await;
    let app = App::with_clients(
        t.aws.dynamodb.clone(),
        t.aws.secrets.clone(),
        config(t.table.name(), &tracking),
    )
    .with_native_store_budget(BUDGET);
    DynamoFaults::new([t.table.name()])
        .rate(1.0)
        .kinds([FaultKind::Internal])
        .apply(testkit::endpoint())
        .await
        .unwrap();
    assert_answers_despite_the_store(&app, "a failing store").await;
    let fired = DynamoFaults::fired_on(testkit::endpoint(), t.table.name(), FaultKind::Internal)
        .await
        .unwrap();
    assert!(fired > 0, "the store was asked and failed");
    DynamoFaults::clear(testkit::endpoint(), Some(t.table.name()))
        .await
        .unwrap();
}
