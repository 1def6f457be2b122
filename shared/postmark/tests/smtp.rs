//! The SMTP transport against a real SMTP server (aiosmtpd, started by each test) with a certificate
//! made here: a test CA and a leaf for 127.0.0.1/localhost signed by it.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use postmark::smtp::{SmtpAuth, SmtpConfig, SmtpError, SmtpStage, SmtpTransport, StartTls};
use postmark::{Email, ErrorClass, TrackLinks};
use serde_json::Value;
use tempfile::TempDir;
use testkit::pki::TestPki;

const USER: &str = "server-token-user";
const PASSWORD: &str = "s3cret-pass";

fn make_pki() -> TestPki {
    testkit::pki::make_pki("postmark crate test CA")
}

/// Makes sure aiosmtpd can be imported, installing it with pip once if needed; fails loudly otherwise.
fn ensure_aiosmtpd() {
    static CHECKED: Mutex<bool> = Mutex::new(false);
    let mut checked = CHECKED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if *checked {
        return;
    }
    let importable = || {
        Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if !importable() {
        // Plain first; `--user` and `--break-system-packages` for a system Python that refuses it.
        let mut log = String::new();
        for extra in [
            &[][..],
            &["--user"][..],
            &["--user", "--break-system-packages"][..],
        ] {
            let install = Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "aiosmtpd"])
                .args(extra)
                .output()
                .expect("the SMTP tests need python3 on PATH to run their SMTP server (aiosmtpd)");
            log.push_str(&String::from_utf8_lossy(&install.stderr));
            if importable() {
                break;
            }
        }
        assert!(
            importable(),
            "the SMTP tests need the Python package aiosmtpd, and `python3 -m pip install \
             aiosmtpd` failed:\n{log}"
        );
    }
    *checked = true;
}

/// One aiosmtpd server process; killed when dropped.
struct SmtpServer {
    child: Child,
    port: u16,
    out_dir: TempDir,
}

struct Received {
    meta: Value,
    raw: String,
}

impl SmtpServer {
    fn start(pki: Option<&TestPki>) -> Self {
        ensure_aiosmtpd();
        let out_dir = tempfile::tempdir().expect("temp dir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_server.py");
        let stderr = std::fs::File::create(out_dir.path().join("server.log")).expect("log file");
        let mut command = Command::new("python3");
        command
            .arg(script)
            .arg("--out-dir")
            .arg(out_dir.path())
            .args(["--user", USER, "--password", PASSWORD]);
        match pki {
            Some(pki) => {
                command
                    .arg("--cert")
                    .arg(&pki.cert_path)
                    .arg("--key")
                    .arg(&pki.key_path);
            }
            None => {
                command.arg("--no-starttls");
            }
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start python3 tests/smtp_server.py");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_default();
        let Some(port) = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|port| port.parse().ok())
        else {
            let _ = child.kill();
            let log =
                std::fs::read_to_string(out_dir.path().join("server.log")).unwrap_or_default();
            panic!("the test SMTP server did not start (said {line:?}):\n{log}");
        };
        Self {
            child,
            port,
            out_dir,
        }
    }

    fn config(&self, host: &str, password: &str, pki: Option<&TestPki>) -> SmtpConfig {
        let mut config = SmtpConfig::new(host, self.port, USER, password)
            .with_timeout(Duration::from_secs(10))
            .with_hello_name("client.test");
        if let Some(pki) = pki {
            config = config.with_extra_root_ca_pem(pki.ca_pem.clone());
        }
        config
    }

    /// Waits for `count` messages and reads them, in the order received.
    fn received(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut metas: Vec<PathBuf> = std::fs::read_dir(self.out_dir.path())
                .expect("read out dir")
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
                .collect();
            if metas.len() >= count || Instant::now() > deadline {
                metas.sort();
                return metas
                    .into_iter()
                    .map(|meta_path| Received {
                        meta: serde_json::from_str(
                            &std::fs::read_to_string(&meta_path).expect("read meta"),
                        )
                        .expect("meta is JSON"),
                        raw: std::fs::read_to_string(meta_path.with_extension("eml"))
                            .expect("read message"),
                    })
                    .collect();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn message_count(&self) -> usize {
        std::fs::read_dir(self.out_dir.path())
            .expect("read out dir")
            .filter_map(Result::ok)
            .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "json"))
            .count()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn full_email() -> Email {
    Email::new("Shop <shop@example.com>", "ada@example.org")
        .cc("cc@example.org")
        .bcc("hidden@example.org")
        .reply_to("support@example.com")
        .subject("Your receipt")
        .text_body("Thanks for your order, Ada.")
        .html_body("<p>Thanks for your order, <b>Ada</b>.</p>")
        .header("X-Job-Id", "job-77")
        .tag("receipt")
        .metadata("job_id", "job-77")
        .metadata("subscriber", "sub-9")
        .message_stream("outbound")
        .track_opens(true)
        .track_links(TrackLinks::HtmlOnly)
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test]
async fn sends_over_starttls_with_auth_plain_and_login() {
    let pki = make_pki();
    let server = SmtpServer::start(Some(&pki));
    for (host, auth) in [
        ("127.0.0.1", SmtpAuth::Plain),
        ("localhost", SmtpAuth::Login),
    ] {
        let transport =
            SmtpTransport::new(server.config(host, PASSWORD, Some(&pki)).with_auth(auth))
                .expect("transport");
        let receipt = transport.send(&full_email()).await.expect("sent");
        assert_eq!(receipt.code, 250);
        assert!(receipt.message.contains("queued as test-"), "{receipt:?}");
        transport.shutdown().await;
    }

    let received = server.received(2);
    assert_eq!(received.len(), 2);
    for message in received {
        assert_eq!(message.meta["authenticated"], true);
        assert_eq!(message.meta["encrypted"], true);
        assert_eq!(message.meta["mail_from"], "shop@example.com");
        let mut recipients: Vec<&str> = message.meta["rcpt_tos"]
            .as_array()
            .expect("recipients")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        recipients.sort_unstable();
        assert_eq!(
            recipients,
            vec!["ada@example.org", "cc@example.org", "hidden@example.org"]
        );
        let raw = message.raw.replace("\r\n", "\n");
        for expected in [
            "From: Shop <shop@example.com>",
            "To: ada@example.org",
            "Cc: cc@example.org",
            "Reply-To: support@example.com",
            "Subject: Your receipt",
            "X-Job-Id: job-77",
            "X-PM-Message-Stream: outbound",
            "X-PM-Tag: receipt",
            "X-PM-Metadata-job_id: job-77",
            "X-PM-Metadata-subscriber: sub-9",
            "X-PM-TrackOpens: true",
            "X-PM-TrackLinks: HtmlOnly",
            "Content-Type: text/plain",
            "Content-Type: text/html",
            "Thanks for your order, Ada.",
            "<p>Thanks for your order, <b>Ada</b>.</p>",
        ] {
            assert!(raw.contains(expected), "{expected:?} missing in:\n{raw}");
        }
        assert!(
            !raw.contains("hidden@example.org"),
            "Bcc leaked into the headers:\n{raw}"
        );
    }
}

#[tokio::test]
async fn test_connection_passes_every_stage() {
    let pki = make_pki();
    let server = SmtpServer::start(Some(&pki));
    let transport =
        SmtpTransport::new(server.config("127.0.0.1", PASSWORD, Some(&pki))).expect("transport");
    let check = transport.test_connection().await.expect("settings work");
    assert!(check.encrypted);
    assert!(check.authenticated);
    assert_eq!(check.address.port(), server.port);
    assert_eq!(server.message_count(), 0);
}

#[tokio::test]
async fn a_wrong_password_fails_at_authentication() {
    let pki = make_pki();
    let server = SmtpServer::start(Some(&pki));
    let wrong = "wrong-password-123";
    for auth in [SmtpAuth::Plain, SmtpAuth::Login] {
        let transport = SmtpTransport::new(
            server
                .config("127.0.0.1", wrong, Some(&pki))
                .with_auth(auth),
        )
        .expect("transport");
        let error = transport.test_connection().await.expect_err("refused");
        assert_eq!(error.stage(), SmtpStage::Authentication, "{error}");
        let text = error.to_string();
        assert!(text.contains("refused the user name or password"), "{text}");
        assert!(text.contains("535"), "{text}");
        assert!(!text.contains(wrong), "the password leaked: {text}");

        let error = transport.send(&full_email()).await.expect_err("refused");
        assert_eq!(error.class(), ErrorClass::Configuration, "{error:?}");
        assert!(!error.is_retryable());
        assert!(
            !error.may_have_been_accepted(),
            "refused at AUTH: {error:?}"
        );
        assert!(
            matches!(
                error,
                SmtpError::Send {
                    code: Some(535),
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(
            !format!("{error:?}").contains(wrong),
            "the password leaked: {error:?}"
        );
    }
    assert_eq!(server.message_count(), 0);
}

#[tokio::test]
async fn a_server_without_starttls_is_refused_when_tls_is_required() {
    let server = SmtpServer::start(None);
    let transport =
        SmtpTransport::new(server.config("127.0.0.1", PASSWORD, None)).expect("transport");
    let error = transport.test_connection().await.expect_err("refused");
    assert_eq!(error.stage(), SmtpStage::Tls, "{error}");
    assert!(
        error.to_string().contains("does not offer STARTTLS"),
        "{error}"
    );

    let error = transport.send(&full_email()).await.expect_err("refused");
    assert_eq!(error.class(), ErrorClass::Configuration, "{error:?}");
    assert_eq!(server.message_count(), 0, "nothing may go out unencrypted");

    // Opportunistic falls back to plain text on such a server (a local relay, say).
    let transport = SmtpTransport::new(
        server
            .config("127.0.0.1", PASSWORD, None)
            .with_starttls(StartTls::Opportunistic),
    )
    .expect("transport");
    let check = transport
        .test_connection()
        .await
        .expect("works unencrypted");
    assert!(!check.encrypted);
    transport.send(&full_email()).await.expect("sent");
    let received = server.received(1);
    assert_eq!(received[0].meta["encrypted"], false);
}

#[tokio::test]
async fn an_untrusted_certificate_fails_at_tls() {
    let pki = make_pki();
    let server = SmtpServer::start(Some(&pki));
    // No extra root CA: the test CA is unknown to the system's trust store.
    let transport =
        SmtpTransport::new(server.config("127.0.0.1", PASSWORD, None)).expect("transport");
    let error = transport.test_connection().await.expect_err("refused");
    assert_eq!(error.stage(), SmtpStage::Tls, "{error}");
    assert!(
        error
            .to_string()
            .contains("not signed by a trusted authority"),
        "{error}"
    );

    let error = transport.send(&full_email()).await.expect_err("refused");
    assert_eq!(error.class(), ErrorClass::Configuration, "{error:?}");
    assert_eq!(server.message_count(), 0);
    assert!(!error.may_have_been_accepted(), "refused at TLS: {error:?}");
}

#[tokio::test]
async fn nothing_listening_fails_at_connect() {
    let port = free_port();
    let config =
        SmtpConfig::new("127.0.0.1", port, USER, PASSWORD).with_timeout(Duration::from_secs(5));
    let transport = SmtpTransport::new(config).expect("transport");
    let error = transport
        .test_connection()
        .await
        .expect_err("nothing there");
    assert_eq!(error.stage(), SmtpStage::Connect, "{error}");
    let text = error.to_string();
    assert!(text.contains(&format!("port {port}")), "{text}");
    assert!(text.contains("refused"), "{text}");

    let error = transport
        .send(&full_email())
        .await
        .expect_err("nothing there");
    assert!(error.is_retryable(), "{error:?}");
    assert!(
        !error.may_have_been_accepted(),
        "never connected: {error:?}"
    );
}

#[tokio::test]
async fn an_unknown_host_fails_at_resolve() {
    let config = SmtpConfig::new("no-such-host.invalid", 587, USER, PASSWORD)
        .with_timeout(Duration::from_secs(5));
    let transport = SmtpTransport::new(config).expect("transport");
    let error = transport.test_connection().await.expect_err("no such host");
    assert_eq!(error.stage(), SmtpStage::Resolve, "{error}");
    assert!(
        error.to_string().contains("no-such-host.invalid"),
        "{error}"
    );
}

#[tokio::test]
async fn many_messages_share_a_pooled_connection() {
    let pki = make_pki();
    let server = SmtpServer::start(Some(&pki));
    let transport = SmtpTransport::new(
        server
            .config("127.0.0.1", PASSWORD, Some(&pki))
            .with_max_connections(1),
    )
    .expect("transport");
    let emails: Vec<Email> = (0..5)
        .map(|n| {
            Email::new("shop@example.com", format!("reader{n}@example.org"))
                .subject(format!("Issue {n}"))
                .text_body("News")
                .message_stream("broadcast")
        })
        .collect();
    let outcomes = transport.send_all(&emails).await;
    assert_eq!(outcomes.len(), 5);
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");

    let received = server.received(5);
    assert_eq!(received.len(), 5);
    for (n, message) in received.iter().enumerate() {
        assert_eq!(
            message.meta["rcpt_tos"][0],
            format!("reader{n}@example.org")
        );
    }
    let peers: std::collections::BTreeSet<String> = received
        .iter()
        .map(|m| m.meta["peer"].to_string())
        .collect();
    assert_eq!(peers.len(), 1, "one connection for all messages: {peers:?}");
    transport.shutdown().await;
}
