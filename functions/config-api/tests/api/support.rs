//! A config API of its own per test: a fresh table, secrets under a unique prefix, the admin key and the
//! webhook password created as the deployment would, and the handler called directly.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use config_api::{App, Config};
use http::{HeaderMap, Method};
use lambda_http::Body;
use serde_json::Value;
use tempfile::TempDir;
use testkit::{TestTable, unique};

pub const PUBLIC_BASE_URL: &str = "https://hooks.example.test";

/// One answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// Every byte the client sees, for leak scans.
    pub fn everything(&self) -> String {
        let mut all = self.text.clone();
        for (name, value) in &self.headers {
            all.push_str(&format!("\n{name}: {}", value.to_str().unwrap_or_default()));
        }
        all
    }
}

pub struct TestApp {
    pub t: TestTable,
    pub app: App,
    pub admin_key: String,
    pub prefix: String,
    /// Every answer so far, for leak scans.
    pub replies: Mutex<Vec<String>>,
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_env(&[]).await
    }

    /// With extra or replaced environment settings.
    pub async fn with_env(extra: &[(&str, &str)]) -> Self {
        let t = TestTable::new().await;
        let prefix = unique("cfg");
        let admin_key = format!("admin-{}", uuid::Uuid::new_v4().simple());
        let mut env: HashMap<String, String> = [
            ("TABLE_NAME", t.table.name().to_owned()),
            ("SECRETS_PREFIX", prefix.clone()),
            ("ADMIN_KEY_SECRET", format!("{prefix}/admin-key")),
            (
                "WEBHOOK_PASSWORD_SECRET",
                format!("{prefix}/webhook-password"),
            ),
            ("PUBLIC_BASE_URL", PUBLIC_BASE_URL.to_owned()),
            // Nothing listens there: a test that forgets to aim at the simulator fails fast, offline.
            ("POSTMARK_API_URL", "http://127.0.0.1:9".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in extra {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = Config::from_lookup(|k| env.get(k).cloned()).expect("test configuration");
        create_secret(&t, &config.admin_key_secret, &admin_key).await;
        create_secret(
            &t,
            &config.webhook_password_secret,
            &format!("wh-{}", uuid::Uuid::new_v4().simple()),
        )
        .await;
        let app = App::with_clients(config, t.aws.dynamodb.clone(), t.aws.secrets.clone());
        Self {
            t,
            app,
            admin_key,
            prefix,
            replies: Mutex::new(Vec::new()),
        }
    }

    /// A request with the admin key.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut headers = vec![("authorization", format!("Bearer {}", self.admin_key))];
        if body.is_some() {
            headers.push(("content-type", "application/json".to_owned()));
        }
        let body = body.map_or(Body::Empty, |b| Body::Text(b.to_string()));
        self.raw(method, path, &headers, body).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    /// Any request, as given.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, String)],
        body: Body,
    ) -> Reply {
        let mut builder = http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        let req = builder.body(body).expect("a request");
        self.send(req).await
    }

    pub async fn send(&self, req: lambda_http::Request) -> Reply {
        let response = config_api::handle(&self.app, req).await;
        let (parts, body) = response.into_parts();
        let text = match body {
            Body::Text(t) => t,
            Body::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
            _ => String::new(),
        };
        let reply = Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            text,
        };
        self.replies
            .lock()
            .expect("replies")
            .push(reply.everything());
        reply
    }

    /// The current value of a secret, read directly.
    pub async fn secret(&self, name: &str) -> Option<String> {
        self.t
            .aws
            .secrets
            .get_secret_value()
            .secret_id(name)
            .send()
            .await
            .ok()
            .and_then(|o| o.secret_string)
    }

    /// A server's secret as JSON.
    pub async fn server_secret(&self, id: &str) -> Option<Value> {
        let text = self
            .secret(&format!("{}/servers/{id}", self.prefix))
            .await?;
        Some(serde_json::from_str(&text).expect("server secrets are JSON"))
    }

    /// The secret version a server's item names, as JSON: what readers of the server get.
    pub async fn recorded_secret(&self, id: &str) -> Value {
        let id = domain::servers::ServerId::parse(id).expect("a server id");
        let server = self
            .t
            .table
            .server(&id)
            .await
            .expect("read the server")
            .expect("the server exists");
        let version = server
            .credentials
            .secret_version
            .expect("the item names its secret version");
        let text = self
            .t
            .aws
            .secrets
            .get_secret_value()
            .secret_id(format!("{}/servers/{id}", self.prefix))
            .version_id(version)
            .send()
            .await
            .expect("the named version exists")
            .secret_string
            .expect("a string secret");
        serde_json::from_str(&text).expect("server secrets are JSON")
    }

    /// The value of a secret's `AWSPREVIOUS` version.
    pub async fn previous_secret(&self, name: &str) -> Option<String> {
        self.t
            .aws
            .secrets
            .get_secret_value()
            .secret_id(name)
            .version_stage("AWSPREVIOUS")
            .send()
            .await
            .ok()
            .and_then(|o| o.secret_string)
    }
}

async fn create_secret(t: &TestTable, name: &str, value: &str) {
    t.aws
        .secrets
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| panic!("could not create the secret {name} in the emulator: {e:?}"));
}

/// A Postmark API server body.
pub fn api_server(label: &str, token: &str) -> Value {
    serde_json::json!({
        "label": label,
        "vendor": "postmark",
        "delivery_method": "api",
        "api_token": token,
        "email_types": ["transactional", "broadcast"],
    })
}

/// An SMTP server body.
pub fn smtp_server(host: &str, port: u16, username: &str, password: &str) -> Value {
    serde_json::json!({
        "label": "SMTP",
        "delivery_method": "smtp",
        "smtp": {
            "host": host, "port": port, "username": username, "password": password,
            "authentication": "plain", "starttls": true,
        },
        "email_types": ["transactional"],
    })
}

/// Every log line of this process, captured from the first call on (debug level for every crate, trace
/// for ours).
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().expect("log buffer")).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(|| Arc::new(Mutex::new(Vec::new())))
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber for the whole process (once).
pub fn capture_logs() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let buffer = log_buffer().clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,config_api=trace,store=trace,postmark=trace",
            ))
            .with_ansi(false)
            .with_writer(move || Capture(buffer.clone()))
            .try_init();
    });
}

pub use testkit::pki::TestPki;

pub fn make_pki() -> TestPki {
    testkit::pki::make_pki("config-api test CA")
}

/// A real SMTP server (aiosmtpd, through the postmark crate's test script) with STARTTLS and AUTH for
/// one user; stopped when dropped.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    _out: TempDir,
}

impl SmtpServer {
    pub fn start(pki: &TestPki, user: &str, password: &str) -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/postmark/tests/smtp_server.py");
        let out = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg("--out-dir")
            .arg(out.path())
            .args(["--user", user, "--password", password])
            .arg("--cert")
            .arg(&pki.cert_path)
            .arg("--key")
            .arg(&pki.key_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start python3 {}: {e}", script.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let Some(port) = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
        else {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
            }
            panic!(
                "the SMTP server (aiosmtpd, from dev/requirements.txt) did not start: {line:?}\n{err}"
            );
        };
        Self {
            child,
            port,
            _out: out,
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}
