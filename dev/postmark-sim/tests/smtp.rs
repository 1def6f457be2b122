//! SMTP submission: the protocol spoken by hand over TCP and TLS, and messages through the pipeline.

mod common;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::*;
use postmark_sim::{RecipientOutcome, ServerConfig, SimOptions, Simulator, Via, WebhookConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A line-oriented SMTP client over any stream.
struct Client<S> {
    stream: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// Reads one reply (all its lines); returns the code and the text of the last line.
    async fn reply(&mut self) -> (u16, String) {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = self.stream.read_line(&mut line).await.expect("read");
            assert!(read > 0, "the server closed the connection; got {lines:?}");
            let done = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line.trim_end().to_owned());
            if done {
                break;
            }
        }
        let last = lines.last().unwrap();
        (last[..3].parse().unwrap(), lines.join("\n"))
    }

    async fn send(&mut self, line: &str) -> (u16, String) {
        self.stream
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        self.stream.get_mut().flush().await.unwrap();
        self.reply().await
    }

    async fn expect(&mut self, line: &str, code: u16) -> String {
        let (got, text) = self.send(line).await;
        assert_eq!(got, code, "{line} -> {text}");
        text
    }
}

async fn connect(sim: &Simulator) -> Client<TcpStream> {
    let stream = TcpStream::connect(sim.smtp_addr().unwrap()).await.unwrap();
    let mut client = Client {
        stream: BufReader::new(stream),
    };
    let (code, greeting) = client.reply().await;
    assert_eq!(code, 220, "{greeting}");
    client
}

async fn start_tls(
    sim: &Simulator,
    mut client: Client<TcpStream>,
) -> Client<tokio_rustls::client::TlsStream<TcpStream>> {
    client.expect("STARTTLS", 220).await;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(sim.ca_pem().as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = client.stream.into_inner();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("the certificate verifies against the simulator's CA");
    Client {
        stream: BufReader::new(tls),
    }
}

fn plain(user: &str, password: &str) -> String {
    BASE64.encode(format!("\0{user}\0{password}"))
}

#[tokio::test]
async fn starttls_then_auth_plain_then_a_message_with_dot_stuffing() {
    let receiver = Receiver::start().await;
    let (sim, _) = with_server(Some(WebhookConfig::new(receiver.url("/wh")))).await;
    let mut client = connect(&sim).await;
    let ehlo = client.expect("EHLO client.example", 250).await;
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "no AUTH before TLS: {ehlo}");
    client
        .expect(&format!("AUTH PLAIN {}", plain(TOKEN, TOKEN)), 530)
        .await;
    client.expect("MAIL FROM:<shop@example.com>", 530).await;

    let mut client = start_tls(&sim, client).await;
    client.expect("MAIL FROM:<shop@example.com>", 503).await;
    let ehlo = client.expect("EHLO client.example", 250).await;
    assert!(
        ehlo.contains("AUTH PLAIN LOGIN") && !ehlo.contains("STARTTLS"),
        "{ehlo}"
    );
    client.expect("MAIL FROM:<shop@example.com>", 530).await;
    client
        .expect(&format!("AUTH PLAIN {}", plain(TOKEN, "other")), 535)
        .await;
    client
        .expect(&format!("AUTH PLAIN {}", plain("nobody", "nobody")), 535)
        .await;
    client
        .expect(&format!("AUTH PLAIN {}", plain(TOKEN, TOKEN)), 235)
        .await;
    client
        .expect(&format!("AUTH PLAIN {}", plain(TOKEN, TOKEN)), 503)
        .await;
    client.expect("RCPT TO:<ada@example.org>", 503).await;
    client.expect("DATA", 503).await;
    client
        .expect("MAIL FROM:<shop@example.com> SIZE=2048", 250)
        .await;
    client.expect("MAIL FROM:<shop@example.com>", 503).await;
    client.expect("RCPT TO:<not an address>", 501).await;
    client.expect("RCPT TO:<ada@example.org>", 250).await;
    client.expect("RCPT TO:<hidden@example.org>", 250).await;
    client.expect("NOOP", 250).await;
    client.expect("DATA", 354).await;
    let message = "From: Shop <shop@example.com>\r\n\
To: Ada <ada@example.org>\r\n\
Subject: Over SMTP\r\n\
X-PM-Message-Stream: broadcast\r\n\
X-PM-Tag: smtp-tag\r\n\
X-PM-Metadata-job_id: j-9\r\n\
X-PM-TrackOpens: true\r\n\
X-PM-TrackLinks: HtmlAndText\r\n\
Content-Type: multipart/alternative; boundary=b1\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain\r\n\
\r\n\
..a line that began with a dot\r\n\
--b1\r\n\
Content-Type: text/html\r\n\
\r\n\
<p>Hi</p>\r\n\
--b1--\r\n\
.";
    let accepted = client.expect(message, 250).await;
    let message_id = accepted.rsplit(' ').next().unwrap().to_owned();
    client.expect("RSET", 250).await;
    client.expect("QUIT", 221).await;

    let stored = sim
        .message(&message_id)
        .expect("stored under the MessageID the reply gave");
    assert_eq!(stored.via, Via::Smtp);
    assert_eq!(stored.message_stream, "broadcast");
    assert_eq!(stored.tag.as_deref(), Some("smtp-tag"));
    assert_eq!(
        stored.metadata.get("job_id").map(String::as_str),
        Some("j-9")
    );
    assert!(stored.track_opens);
    assert_eq!(stored.track_links, postmark::TrackLinks::HtmlAndText);
    assert_eq!(stored.subject.as_deref(), Some("Over SMTP"));
    assert_eq!(
        stored.text_body.as_deref(),
        Some(".a line that began with a dot")
    );
    assert_eq!(stored.html_body.as_deref(), Some("<p>Hi</p>"));
    assert_eq!(stored.bcc.as_deref(), Some("hidden@example.org"));
    assert_eq!(
        stored.recipients,
        vec!["ada@example.org", "hidden@example.org"]
    );

    assert!(sim.settle(SETTLE).await);
    let deliveries = receiver.of_type("Delivery");
    assert_eq!(deliveries.len(), 2);
    assert!(
        deliveries
            .iter()
            .all(|d| d.body["Tag"] == "smtp-tag" && d.body["MessageStream"] == "broadcast")
    );
    assert_eq!(sim.counters().smtp_messages, 1);
}

#[tokio::test]
async fn auth_login_and_the_same_checks_as_the_api() {
    let sim = simulator().await;
    let server = sim.add_server(ServerConfig::new(TOKEN).sender_domain("example.com"));
    let client = connect(&sim).await;
    let mut client = start_tls(&sim, client).await;
    client.expect("EHLO client.example", 250).await;
    let prompt = client.expect("AUTH LOGIN", 334).await;
    assert_eq!(prompt, "334 VXNlcm5hbWU6");
    client.expect(&BASE64.encode(TOKEN), 334).await;
    client.expect(&BASE64.encode(TOKEN), 235).await;

    // An unverified sender is refused at the end of DATA with Postmark's message.
    client.expect("MAIL FROM:<x@unverified.example>", 250).await;
    client.expect("RCPT TO:<ada@example.org>", 250).await;
    client.expect("DATA", 354).await;
    let refused = client
        .expect(
            "From: x@unverified.example\r\nTo: ada@example.org\r\nSubject: s\r\n\r\nbody\r\n.",
            550,
        )
        .await;
    assert!(
        refused.contains("is not a verified sender signature"),
        "{refused}"
    );

    // An unknown stream too.
    client.expect("MAIL FROM:<shop@example.com>", 250).await;
    client.expect("RCPT TO:<ada@example.org>", 250).await;
    client.expect("DATA", 354).await;
    let refused = client
        .expect("From: shop@example.com\r\nTo: ada@example.org\r\nX-PM-Message-Stream: nope\r\n\r\nbody\r\n.", 550)
        .await;
    assert!(
        refused.contains("The stream provided: 'nope' does not exist"),
        "{refused}"
    );

    // A hard bounce over SMTP suppresses like over the API; a later message to it is accepted and
    // dropped, as Postmark does over SMTP.
    for _ in 0..2 {
        client.expect("MAIL FROM:<shop@example.com>", 250).await;
        client
            .expect("RCPT TO:<HardBounce@bounce-testing.postmarkapp.com>", 250)
            .await;
        client.expect("DATA", 354).await;
        client
            .expect("From: shop@example.com\r\nTo: HardBounce@bounce-testing.postmarkapp.com\r\n\r\nbody\r\n.", 250)
            .await;
    }
    // The second is kept (an SMTP API error), but not sent.
    let messages = sim.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(
        messages[0].outcomes.values().next(),
        Some(&RecipientOutcome::Bounced {
            bounce_type: "HardBounce".into()
        })
    );
    assert_eq!(
        messages[1].outcomes.values().next(),
        Some(&RecipientOutcome::Inactive)
    );
    assert_eq!(sim.suppressions(server.id, "outbound").len(), 1);

    // At most 50 recipients.
    client.expect("MAIL FROM:<shop@example.com>", 250).await;
    for n in 0..50 {
        client
            .expect(&format!("RCPT TO:<r{n}@example.org>"), 250)
            .await;
    }
    client.expect("RCPT TO:<r50@example.org>", 452).await;
    client.expect("RSET", 250).await;
    client.expect("FROBNICATE", 500).await;
    client.expect("QUIT", 221).await;
}

#[tokio::test]
async fn plaintext_auth_when_allowed_and_smtp_faults() {
    let mut options = SimOptions::for_tests();
    options.smtp_require_tls = false;
    let sim = Simulator::start(options).await.unwrap();
    sim.add_server(ServerConfig::new(TOKEN).sender_domain("example.com"));
    sim.set_faults(
        postmark_sim::Faults::seeded(1).rule(
            postmark_sim::FaultRule::new(postmark_sim::FaultAction::Status { status: 503 })
                .path("smtp")
                .times(1),
        ),
    );
    let mut client = connect(&sim).await;
    let ehlo = client.expect("EHLO client.example", 250).await;
    assert!(ehlo.contains("AUTH PLAIN LOGIN"));
    client.expect("AUTH PLAIN", 334).await;
    client.expect(&plain(TOKEN, TOKEN), 235).await;
    for expected in [451, 250] {
        client.expect("MAIL FROM:<shop@example.com>", 250).await;
        client.expect("RCPT TO:<ada@example.org>", 250).await;
        client.expect("DATA", 354).await;
        client
            .expect(
                "From: shop@example.com\r\nTo: ada@example.org\r\n\r\nhello\r\n.",
                expected,
            )
            .await;
    }
    assert_eq!(sim.messages().len(), 1);
    assert_eq!(sim.counters().requests["SMTP DATA"], 2);
}

#[tokio::test]
async fn mail_to_a_suppressed_recipient_is_an_smtp_api_error() {
    let receiver = Receiver::start().await;
    let mut options = SimOptions::for_tests();
    options.smtp_require_tls = false;
    let sim = Simulator::start(options).await.unwrap();
    sim.add_server(
        ServerConfig::new(TOKEN)
            .sender_domain("example.com")
            .webhook(WebhookConfig::new(receiver.url("/wh"))),
    );
    let (status, _) = post(
        &sim,
        "/message-streams/outbound/suppressions",
        &serde_json::json!({ "Suppressions": [{ "EmailAddress": "gone@example.org" }] }),
    )
    .await;
    assert_eq!(status, 200);
    let mut client = connect(&sim).await;
    client.expect("EHLO client.example", 250).await;
    client.expect("AUTH PLAIN", 334).await;
    client.expect(&plain(TOKEN, TOKEN), 235).await;
    let submit = async |client: &mut Client<TcpStream>| {
        client.expect("MAIL FROM:<shop@example.com>", 250).await;
        client.expect("RCPT TO:<gone@example.org>", 250).await;
        client.expect("DATA", 354).await;
        client
            .expect(
                "From: shop@example.com\r\nTo: gone@example.org\r\nSubject: Hi\r\nX-PM-Tag: smtp\r\n\r\nhello\r\n.",
                250,
            )
            .await
    };
    // Accepted by SMTP (250), then dropped: not delivered, no Delivery webhook.
    submit(&mut client).await;
    assert!(sim.settle(SETTLE).await);
    let messages = sim.messages();
    assert_eq!(messages.len(), 1);
    let first = messages[0].message_id.clone();
    assert_eq!(
        messages[0].outcomes.values().next(),
        Some(&RecipientOutcome::Inactive)
    );
    assert!(!messages[0].was_delivered_to("gone@example.org"));

    let (status, bounces) = get(&sim, "/bounces?count=10&offset=0&type=SMTPApiError").await;
    assert_eq!(status, 200);
    assert_eq!(bounces["TotalCount"], 1, "{bounces}");
    let bounce = &bounces["Bounces"][0];
    assert_eq!(bounce["Type"], "SMTPApiError");
    assert_eq!(bounce["TypeCode"], 100007);
    assert_eq!(bounce["Name"], "SMTP API error");
    assert_eq!(bounce["Email"], "gone@example.org");
    assert_eq!(bounce["MessageID"], first.as_str());
    assert_eq!(bounce["Tag"], "smtp");
    assert_eq!(bounce["CanActivate"], false);
    let (_, details) = get(&sim, &format!("/messages/outbound/{first}/details")).await;
    let kinds: Vec<&str> = details["MessageEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Bounced"]);
    assert_eq!(
        details["MessageEvents"][0]["Details"]["BounceID"],
        bounce["ID"].as_i64().unwrap().to_string()
    );
    // With the server's EnableSmtpApiErrorHooks off, no webhook at all for it.
    let posted: Vec<_> = receiver
        .received()
        .into_iter()
        .filter(|r| r.record_type() != "SubscriptionChange")
        .collect();
    assert!(posted.is_empty(), "{posted:?}");

    // With it on, the next one is posted as a Bounce (and still no Delivery).
    let (status, _) = call(
        &sim,
        reqwest::Method::PUT,
        "/server",
        Some(TOKEN),
        Some(&serde_json::json!({ "EnableSmtpApiErrorHooks": true })),
    )
    .await;
    assert_eq!(status, 200);
    submit(&mut client).await;
    assert!(sim.settle(SETTLE).await);
    let bounced = receiver.of_type("Bounce");
    assert_eq!(bounced.len(), 1);
    assert_eq!(bounced[0].body["Type"], "SMTPApiError");
    assert_eq!(bounced[0].body["TypeCode"], 100007);
    assert_eq!(bounced[0].body["Email"], "gone@example.org");
    assert_ne!(bounced[0].body["MessageID"], first.as_str());
    assert!(receiver.of_type("Delivery").is_empty());
    let (_, bounces) = get(&sim, "/bounces?count=10&offset=0&type=SMTPApiError").await;
    assert_eq!(bounces["TotalCount"], 2);

    // Over the API the same recipient is refused at once (406), and no bounce is recorded.
    let (status, refused) = post(&sim, "/email", &email("gone@example.org")).await;
    assert_eq!((status, refused["ErrorCode"].as_i64()), (422, Some(406)));
    let (_, bounces) = get(&sim, "/bounces?count=10&offset=0").await;
    assert_eq!(bounces["TotalCount"], 2);
    client.expect("QUIT", 221).await;
}
