//! The `postmark` crate's API client and SMTP transport against the simulator.

mod common;

use std::time::Duration;

use common::*;
use postmark::smtp::{SmtpAuth, SmtpConfig, SmtpTransport};
use postmark::{Email, ErrorClass, PostmarkClient, ServerToken, SuppressionQuery, TrackLinks};
use postmark_sim::{FaultAction, FaultRule, Faults, Simulator, Via, WebhookConfig};

fn client(sim: &Simulator, token: &str) -> PostmarkClient {
    PostmarkClient::new(
        sim.api_url().parse().unwrap(),
        ServerToken::new(token),
        Duration::from_secs(10),
    )
    .unwrap()
}

fn message(to: &str) -> Email {
    Email::new(FROM, to)
        .subject("From the client")
        .html_body("<p>Hello</p>")
        .text_body("Hello")
        .tag("client")
        .metadata("job_id", "j-1")
}

#[tokio::test]
async fn the_client_sends_and_reads_back() {
    let receiver = Receiver::start().await;
    let (sim, server) = with_server(Some(WebhookConfig::new(receiver.url("/wh")))).await;
    let postmark = client(&sim, TOKEN);

    let receipt = postmark.send(&message("ada@example.org")).await.unwrap();
    let id = receipt.message_id.clone().unwrap();
    assert_eq!(sim.message(&id).unwrap().tag.as_deref(), Some("client"));

    let emails: Vec<Email> = (0..500)
        .map(|n| message(&format!("r{n}@example.org")))
        .collect();
    let outcomes = postmark.send_batch(&emails).await.unwrap();
    assert_eq!(outcomes.len(), 500);
    assert!(outcomes.iter().all(Result::is_ok));
    assert_eq!(
        sim.counters().requests["POST /email/batch"],
        1,
        "one call for 500 messages"
    );

    let info = postmark.server().await.unwrap();
    assert_eq!(info.id, Some(server.id as i64));
    let stream = postmark.message_stream("broadcast").await.unwrap();
    assert_eq!(
        stream.message_stream_type,
        Some(postmark::MessageStreamType::Broadcasts)
    );
    let missing = postmark.message_stream("nope").await.unwrap_err();
    assert_eq!(
        missing.api_error().and_then(|api| api.error_code()),
        Some(1226)
    );

    postmark
        .send(&message("HardBounce@bounce-testing.postmarkapp.com"))
        .await
        .unwrap();
    let inactive = postmark
        .send(&message("HardBounce@bounce-testing.postmarkapp.com"))
        .await
        .unwrap_err();
    assert_eq!(inactive.class(), ErrorClass::RecipientInactive);
    assert_eq!(
        inactive.api_error().unwrap().inactive_recipients(),
        ["HardBounce@bounce-testing.postmarkapp.com".to_owned()]
    );

    let created = postmark
        .create_suppressions("outbound", &["manual@example.org"])
        .await
        .unwrap();
    assert!(created[0].succeeded());
    let dump = postmark
        .suppressions("outbound", &SuppressionQuery::default())
        .await
        .unwrap();
    assert_eq!(dump.len(), 2);
    let deleted = postmark
        .delete_suppressions("outbound", &["manual@example.org"])
        .await
        .unwrap();
    assert!(deleted[0].succeeded());

    assert!(sim.settle(SETTLE).await);
    let bounce_id = receiver.of_type("Bounce")[0].body["ID"].as_i64().unwrap();
    let activation = postmark.activate_bounce(bounce_id).await.unwrap();
    assert_eq!(
        activation.bounce.and_then(|bounce| bounce.inactive),
        Some(false)
    );
    postmark
        .send(&message("HardBounce@bounce-testing.postmarkapp.com"))
        .await
        .unwrap();

    let unknown = client(&sim, "not-a-token")
        .send(&message("ada@example.org"))
        .await
        .unwrap_err();
    assert_eq!(unknown.class(), ErrorClass::Configuration);
    let mut unverified = message("ada@example.org");
    unverified.from = "x@unverified.example".into();
    assert_eq!(
        postmark.send(&unverified).await.unwrap_err().class(),
        ErrorClass::InvalidRequest
    );
}

#[tokio::test]
async fn the_client_classifies_simulated_faults() {
    let (sim, _) = with_server(None).await;
    let postmark = client(&sim, TOKEN);
    for (action, retryable) in [
        (FaultAction::Status { status: 429 }, true),
        (FaultAction::Status { status: 500 }, true),
        (FaultAction::Status { status: 503 }, true),
        (FaultAction::Drop, true),
    ] {
        sim.set_faults(Faults::seeded(3).rule(FaultRule::new(action.clone()).times(1)));
        let error = postmark
            .send(&message("ada@example.org"))
            .await
            .unwrap_err();
        assert_eq!(error.is_retryable(), retryable, "{action:?}: {error}");
        postmark.send(&message("ada@example.org")).await.unwrap();
    }
}

#[tokio::test]
async fn the_smtp_transport_sends_through_starttls_and_auth() {
    let receiver = Receiver::start().await;
    let (sim, _) = with_server(Some(WebhookConfig::new(receiver.url("/wh")))).await;
    let smtp = sim.smtp_addr().unwrap();
    for auth in [SmtpAuth::Plain, SmtpAuth::Login] {
        let config = SmtpConfig::new("localhost", smtp.port(), TOKEN, TOKEN.to_owned())
            .with_auth(auth)
            .with_extra_root_ca_pem(sim.ca_pem())
            .with_timeout(Duration::from_secs(10));
        let transport = SmtpTransport::new(config).unwrap();
        transport.test_connection().await.unwrap();
        let email = message("ada@example.org")
            .message_stream("broadcast")
            .track_opens(true)
            .track_links(TrackLinks::HtmlOnly)
            .cc("cc@example.org")
            .bcc("bcc@example.org");
        let receipt = transport.send(&email).await.unwrap();
        assert_eq!(receipt.code, 250);
        transport.shutdown().await;
    }
    let messages = sim.messages();
    assert_eq!(messages.len(), 2);
    for stored in &messages {
        assert_eq!(stored.via, Via::Smtp);
        assert_eq!(stored.message_stream, "broadcast");
        assert_eq!(stored.tag.as_deref(), Some("client"));
        assert_eq!(
            stored.metadata.get("job_id").map(String::as_str),
            Some("j-1")
        );
        assert_eq!(stored.subject.as_deref(), Some("From the client"));
        assert_eq!(
            stored.html_body.as_deref().map(str::trim),
            Some("<p>Hello</p>")
        );
        assert_eq!(stored.text_body.as_deref().map(str::trim), Some("Hello"));
        assert!(stored.track_opens);
        assert_eq!(stored.track_links, TrackLinks::HtmlOnly);
        assert_eq!(stored.recipients.len(), 3);
    }
    assert!(sim.settle(SETTLE).await);
    assert_eq!(receiver.of_type("Delivery").len(), 6);

    let wrong = SmtpConfig::new("localhost", smtp.port(), TOKEN, "wrong".to_owned())
        .with_extra_root_ca_pem(sim.ca_pem());
    let failure = SmtpTransport::new(wrong)
        .unwrap()
        .send(&message("ada@example.org"))
        .await
        .unwrap_err();
    assert!(!failure.is_retryable(), "{failure}");
}

/// What the client must see for each fault that strikes after acceptance.
fn matches_fault(action: &FaultAction, error: &postmark::PostmarkError) -> bool {
    use postmark::PostmarkError as E;
    match action {
        FaultAction::AcceptThenTimeout { .. } => matches!(error, E::Timeout { .. }),
        FaultAction::AcceptThenDrop => matches!(error, E::Connection { .. }),
        FaultAction::AcceptThenStatus { status } => {
            error.http_status() == Some(*status) && error.error_code().is_none()
        }
        FaultAction::AcceptThenGarbage => {
            matches!(error, E::UnexpectedResponse { status: 200, .. })
        }
        _ => false,
    }
}

#[tokio::test]
async fn faults_after_acceptance_keep_the_messages_and_leave_the_client_in_doubt() {
    let receiver = Receiver::start().await;
    let (sim, _) = with_server(Some(WebhookConfig::new(receiver.url("/wh")))).await;
    let postmark = PostmarkClient::new(
        sim.api_url().parse().unwrap(),
        ServerToken::new(TOKEN),
        Duration::from_millis(500),
    )
    .unwrap();
    let actions = [
        FaultAction::AcceptThenTimeout { ms: 2_000 },
        FaultAction::AcceptThenDrop,
        FaultAction::AcceptThenStatus { status: 502 },
        FaultAction::AcceptThenStatus { status: 504 },
        FaultAction::AcceptThenGarbage,
    ];
    let mut expected = 0;
    for action in actions {
        for batch in [false, true] {
            sim.set_faults(Faults::seeded(5).rule(FaultRule::new(action.clone()).times(1)));
            let send_id = format!("{action:?}-{batch}");
            let first = message("ada@example.org").metadata("send_id", &send_id);
            let error = if batch {
                let second = message("bob@example.org").metadata("send_id", &send_id);
                postmark.send_batch(&[first, second]).await.unwrap_err()
            } else {
                postmark.send(&first).await.unwrap_err()
            };
            assert!(matches_fault(&action, &error), "{action:?}: {error:?}");
            assert!(error.is_retryable() || error.class() == ErrorClass::Unexpected);
            assert!(error.may_have_been_accepted(), "{action:?}: {error:?}");
            let stored: Vec<_> = sim
                .messages()
                .into_iter()
                .filter(|m| m.metadata.get("send_id") == Some(&send_id))
                .collect();
            assert_eq!(stored.len(), if batch { 2 } else { 1 }, "{action:?}");
            expected += stored.len();
            postmark.send(&message("ada@example.org")).await.unwrap();
            expected += 1;
        }
    }
    assert_eq!(sim.counters().messages_accepted, expected as u64);
    assert!(sim.settle(SETTLE).await);
    assert_eq!(
        receiver.of_type("Delivery").len(),
        expected,
        "webhooks as for a normal send"
    );
}

#[tokio::test]
async fn smtp_faults_after_data_leave_the_transport_in_doubt() {
    let (sim, _) = with_server(None).await;
    let smtp = sim.smtp_addr().unwrap();
    let transport = |timeout| {
        SmtpTransport::new(
            SmtpConfig::new("localhost", smtp.port(), TOKEN, TOKEN.to_owned())
                .with_extra_root_ca_pem(sim.ca_pem())
                .with_timeout(timeout),
        )
        .unwrap()
    };
    let cases = [
        (FaultAction::AcceptThenDrop, true, 1),
        (FaultAction::AcceptThenTimeout { ms: 3_000 }, true, 1),
        (FaultAction::Drop, true, 0),
        (FaultAction::Status { status: 503 }, false, 0),
    ];
    for (action, in_doubt, stored) in cases {
        sim.reset();
        sim.set_faults(Faults::seeded(2).rule(FaultRule::new(action.clone()).times(1)));
        let smtp = transport(Duration::from_millis(500));
        let error = smtp.send(&message("ada@example.org")).await.unwrap_err();
        assert_eq!(
            error.may_have_been_accepted(),
            in_doubt,
            "{action:?}: {error:?}"
        );
        if matches!(action, FaultAction::AcceptThenTimeout { .. }) {
            assert!(
                matches!(error, postmark::smtp::SmtpError::Timeout { .. }),
                "{error:?}"
            );
        }
        assert!(error.is_retryable(), "{action:?}: {error:?}");
        assert_eq!(sim.messages().len(), stored, "{action:?}");
        smtp.shutdown().await;
    }
    sim.reset();
    let mut unverified = message("ada@example.org");
    unverified.from = "x@unverified.example".into();
    let refused = transport(Duration::from_secs(5))
        .send(&unverified)
        .await
        .unwrap_err();
    assert!(!refused.may_have_been_accepted(), "550: {refused:?}");
}

#[tokio::test]
async fn the_client_finds_a_calls_messages_by_send_id() {
    let (sim, _) = with_server(None).await;
    let postmark = client(&sim, TOKEN);
    let batch: Vec<Email> = ["ada@example.org", "bob@example.org"]
        .into_iter()
        .enumerate()
        .map(|(n, to)| {
            message(to)
                .metadata("job_id", format!("j-{n}"))
                .metadata("send_id", "s-42")
                .message_stream("broadcast")
        })
        .collect();
    sim.set_faults(Faults::seeded(1).rule(FaultRule::new(FaultAction::AcceptThenDrop).times(1)));
    let lost = postmark.send_batch(&batch).await.unwrap_err();
    assert!(lost.may_have_been_accepted(), "{lost:?}");
    postmark.send(&message("carol@example.org")).await.unwrap();

    let search = postmark::OutboundSearch::new(500)
        .stream("broadcast")
        .metadata("send_id", "s-42");
    let found = postmark.search_outbound(&search).await.unwrap();
    assert_eq!(found.total_count, 2);
    let mut jobs: Vec<&str> = found
        .messages
        .iter()
        .map(|m| m.metadata["job_id"].as_str())
        .collect();
    jobs.sort_unstable();
    assert_eq!(jobs, ["j-0", "j-1"]);
    assert!(
        found
            .messages
            .iter()
            .all(|m| m.metadata["send_id"] == "s-42"
                && m.message_stream.as_deref() == Some("broadcast")
                && m.status.as_deref() == Some("Sent"))
    );
    let default_stream = postmark
        .search_outbound(&postmark::OutboundSearch::new(10).metadata("send_id", "s-42"))
        .await
        .unwrap();
    assert_eq!(
        default_stream.total_count, 0,
        "broadcast is not searched by default"
    );

    let details = postmark
        .outbound_message_details(&found.messages[0].message_id)
        .await
        .unwrap();
    assert_eq!(details.message_events[0].kind, "Delivered");
    assert_eq!(details.text_body.as_deref(), Some("Hello"));
    let missing = postmark
        .outbound_message_details("no-such-message")
        .await
        .unwrap_err();
    assert!(
        missing
            .api_error()
            .is_some_and(|api| api.is_message_not_found()),
        "{missing:?}"
    );
    let refused = postmark
        .search_outbound(&postmark::OutboundSearch::new(501))
        .await
        .unwrap_err();
    assert!(matches!(
        refused,
        postmark::PostmarkError::InvalidSearch { .. }
    ));
}
