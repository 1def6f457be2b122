//! The test harness. It points the real AWS SDK at moto's server mode, started once per test process on a
//! free loopback port (or reused from `MOTO_ENDPOINT`, which the test command sets so that one emulator
//! serves the whole run), and gives each test its own uniquely named table, queues and secret prefix.
//!
//! If the emulator cannot be started or reached, the harness panics with the reason: tests never skip.

pub mod faults;
pub mod lambda;
pub mod pki;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use store::aws::{RequestCounter, StorePolicy};

/// The emulator's endpoint URL and, when this process started it, the process (kept so that its standard
/// input stays open: the launcher exits when this process does and closes it).
struct Emulator {
    endpoint: String,
    _child: Option<Mutex<Child>>,
}

static EMULATOR: OnceLock<Emulator> = OnceLock::new();

const LAUNCHER: &str = r#"
import socket, sys
sys.path.insert(0, sys.argv[1])
try:
    import moto_server  # DynamoDB transaction isolation, see dev/moto_server.py
    from moto.server import ThreadedMotoServer
except Exception as e:
    print("ERROR moto server mode is not installed (pip install 'moto[server]'): %s" % e, flush=True)
    sys.exit(3)
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
print(port, flush=True)
sys.stdin.read()
server.stop()
"#;

fn start_emulator() -> Emulator {
    if let Ok(endpoint) = std::env::var("MOTO_ENDPOINT") {
        return Emulator {
            endpoint,
            _child: None,
        };
    }
    let mut child = Command::new("python3")
        .args([
            "-c",
            LAUNCHER,
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../dev"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start python3 for the AWS emulator (moto): {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("the AWS emulator (moto) did not report its port: {e}"));
    let port: u16 = line.trim().parse().unwrap_or_else(|_| {
        panic!(
            "the AWS emulator (moto) did not start: {}",
            if line.is_empty() {
                "it exited without a word"
            } else {
                line.trim()
            }
        )
    });
    Emulator {
        endpoint: format!("http://127.0.0.1:{port}"),
        _child: Some(Mutex::new(child)),
    }
}

/// The emulator's endpoint URL, starting it on first use.
pub fn endpoint() -> &'static str {
    &EMULATOR.get_or_init(start_emulator).endpoint
}

/// SDK configuration aimed at the emulator, with dummy credentials.
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "testkit",
        ))
        .load()
        .await
}

/// A name no other test uses: `{prefix}-{uuid}`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Clients for one test, each counting its requests.
#[derive(Clone, Debug)]
pub struct Aws {
    pub config: SdkConfig,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub requests: RequestCounter,
}

/// The store policy of test clients: the functions' client (retries, conflict classifier), with
/// timeouts generous enough that a busy shared emulator never trips them.
pub fn test_policy() -> StorePolicy {
    StorePolicy {
        max_attempts: 3,
        operation_timeout: std::time::Duration::from_secs(120),
        attempt_timeout: std::time::Duration::from_secs(60),
        connect_timeout: std::time::Duration::from_secs(10),
        ..StorePolicy::default()
    }
}

impl Aws {
    pub async fn new() -> Self {
        Self::with_policy(&test_policy()).await
    }

    /// With the DynamoDB client the functions build (`store::aws::dynamodb_config`) under `policy`.
    pub async fn with_policy(policy: &StorePolicy) -> Self {
        let config = sdk_config().await;
        let requests = RequestCounter::default();
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(
            store::aws::dynamodb_config(&config, policy)
                .interceptor(requests.clone())
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&config)
                .interceptor(requests.clone())
                .build(),
        );
        let secrets = aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(&config)
                .interceptor(requests.clone())
                .build(),
        );
        Self {
            config,
            dynamodb,
            sqs,
            secrets,
            requests,
        }
    }
}

/// A table of its own for one test, created from the schema and deleted when dropped.
pub struct TestTable {
    pub aws: Aws,
    pub table: store::Table,
}

impl TestTable {
    pub async fn new() -> Self {
        Self::with_policy(&test_policy()).await
    }

    /// A table whose client follows `policy`.
    pub async fn with_policy(policy: &StorePolicy) -> Self {
        let aws = Aws::with_policy(policy).await;
        let name = unique("test");
        store::schema::create_table(&aws.dynamodb, &name)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "could not create a table in the AWS emulator at {}: {e:?}",
                    endpoint()
                )
            });
        aws.requests.reset();
        let table = store::Table::new(aws.dynamodb.clone(), name);
        Self { aws, table }
    }
}

impl Drop for TestTable {
    fn drop(&mut self) {
        let client = self.aws.dynamodb.clone();
        let name = self.table.name().to_owned();
        // Drop cannot await; delete on a thread of its own so that this works inside a runtime too.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                let _ = rt.block_on(store::schema::delete_table(&client, &name));
            }
        })
        .join();
    }
}

/// The environment a function binary needs to reach the emulator.
pub fn aws_env() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint().to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ]
}

/// Creates a secret (a test's own name) with a value.
pub async fn secret(aws: &Aws, prefix: &str, value: &str) -> String {
    let name = unique(prefix);
    aws.secrets
        .create_secret()
        .name(&name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot create secret {name}: {e:?}"));
    name
}
