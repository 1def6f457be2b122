//! The sender's handler over the AWS emulator and the Postmark simulator: batching, outcomes, claims,
//! rejections, routing, suppression checks and the SMTP path. Every check reads the state back from the
//! table and from what the simulator received.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::*;
use domain::servers::{LinkTracking, PostmarkTracking};
use domain::tracking::{TokenSigner, TrackingTarget};
use domain::{EmailAddress, EmailType, JobId, SubscriberStatus, SuppressionReason};
use postmark::{PostmarkClient, ServerToken};
use postmark_sim::{FaultAction, FaultRule, Faults, ServerConfig, Via};
use serde_json::json;
use store::jobs::{Claimed, JobClaim, JobStatus};

#[tokio::test]
async fn twelve_hundred_jobs_go_out_in_three_batch_calls_at_about_one_request_each() {
    let env = Env::new().await;
    let records: Vec<_> = (0..1200)
        .map(|i| {
            record(&broadcast(
                &format!("bulk-{i:04}"),
                &format!("reader{i}@example.org"),
            ))
        })
        .collect();

    let before = Utc::now();
    let failures = env.run(&records).await;
    let after = Utc::now();

    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(batch_calls(&env), 3, "ceil(1200 / 500) Postmark calls");
    assert_eq!(env.sim.messages().len(), 1200);
    let requests = env.t.aws.requests.snapshot();
    let total = env.t.aws.requests.total();
    println!(
        "AWS requests for 1200 emails: {total} ({:.3} per email): {requests:?}",
        total as f64 / 1200.0
    );
    // One claim per email; the outcomes with their campaign counter, 99 to a transaction; the standing
    // read and the activity entries batched; the server's breaker read once.
    assert_eq!(env.t.aws.requests.count("UpdateItem"), 1200, "{requests:?}");
    assert_eq!(
        env.t.aws.requests.count("TransactWriteItems"),
        1200_u64.div_ceil(99),
        "{requests:?}"
    );
    assert_eq!(env.t.aws.requests.count("GetItem"), 1, "{requests:?}");
    assert_eq!(env.t.aws.requests.count("BatchGetItem"), 12, "{requests:?}");
    assert_eq!(
        env.t.aws.requests.count("BatchWriteItem"),
        48,
        "{requests:?}"
    );
    assert!(total <= 2 * 1200 + 70, "{total} requests: {requests:?}");

    let job = env.job("bulk-0042").await;
    assert_eq!(job.status, Some(JobStatus::Sent));
    let message_id = job.message_id.as_deref().expect("Postmark's MessageID");
    let message = env.sim.message(message_id).expect("the simulator has it");
    assert_eq!(message.to.as_deref(), Some("reader42@example.org"));
    assert_eq!(message.message_stream, "broadcast");
    assert_eq!(message.tag.as_deref(), Some("spring-sale"));
    assert_eq!(message.metadata["job_id"], "bulk-0042");
    assert_eq!(message.metadata["broadcast_id"], "b-spring");
    assert_eq!(message.metadata["subscriber_id"], "sub-bulk-0042");
    assert_eq!(message.metadata["email_type"], "broadcast");
    let trace = domain::trace::MessageTrace::from_metadata(&message.metadata);
    let sent = trace.sent_at.expect("the send time in the metadata");
    assert_eq!(
        message.metadata["sent_at"],
        domain::trace::format_sent_at(sent)
    );
    assert!(
        before.timestamp() <= sent.timestamp() && sent <= after,
        "{sent} outside {before}..{after}"
    );
    // The messages composed together (one server and stream: one send_id over the three batch calls)
    // carry one send time.
    let messages = env.sim.messages();
    let mut per_send = std::collections::BTreeMap::<&str, std::collections::BTreeSet<&str>>::new();
    for m in &messages {
        per_send
            .entry(m.metadata["send_id"].as_str())
            .or_default()
            .insert(m.metadata["sent_at"].as_str());
    }
    assert_eq!(per_send.len(), 1, "{per_send:?}");
    assert!(
        per_send.values().all(|times| times.len() == 1),
        "{per_send:?}"
    );
    assert_eq!(
        job.recipient.as_ref().map(EmailAddress::as_str),
        Some("reader42@example.org")
    );
    assert_eq!(job.email_type, Some(EmailType::Broadcast));
    assert_eq!(job.campaign, Some(campaign()));
    assert_eq!(job.subscriber_id.as_deref(), Some("sub-bulk-0042"));
    assert_eq!(job.server_id.as_deref(), Some("main"));
    assert_eq!(job.stream.as_deref(), Some("broadcast"));
    assert_eq!(job.attempts, 1);
    let published = serde_json::to_value(&job).unwrap();
    let sent_at = published["sent_at"].as_str().expect("a send time");
    assert_eq!(
        sent_at.len(),
        "2026-01-01T00:00:00.000000Z".len(),
        "{sent_at}"
    );
    assert_eq!(counters(&env).await["sent"], 1200);
    let activity = env
        .t
        .table
        .activity("reader42@example.org", 10, None)
        .await
        .unwrap();
    assert_eq!(activity.items.len(), 1);
    assert_eq!(activity.items[0].kind, "sent");
    assert_eq!(activity.items[0].detail["message_id"], message_id);
}

#[tokio::test]
async fn each_outcome_of_a_mixed_batch_ends_as_the_contract_says() {
    let env = Env::new().await;
    let client = PostmarkClient::new(
        env.sim.api_url().parse().unwrap(),
        ServerToken::new(TOKEN),
        Duration::from_secs(5),
    )
    .unwrap();
    client
        .create_suppressions("broadcast", &["gone@example.org"])
        .await
        .unwrap();
    env.sim.set_faults(
        Faults::seeded(1).rule(
            FaultRule::new(FaultAction::Status { status: 500 })
                .path("/email/batch")
                .recipient("flaky@example.org")
                .times(1),
        ),
    );
    let mut unverified = broadcast("mixed-300", "fine@example.org");
    unverified["from"] = json!("Shop <shop@unverified.example>");
    let records = vec![
        record(&broadcast("mixed-sent", "ok@example.org")),
        record(&broadcast("mixed-406", "Gone@example.org")),
        record(&unverified),
        record(&transactional("mixed-500", "flaky@example.org")),
    ];

    let failures = env.run(&records).await;

    assert_eq!(failures, ["sqs-mixed-500"], "only the 500 is retried");
    assert_eq!(batch_calls(&env), 2, "one call per stream");
    assert_eq!(env.status("mixed-sent").await, Some(JobStatus::Sent));

    let gone = env.job("mixed-406").await;
    assert_eq!(gone.status, Some(JobStatus::Failed));
    assert_eq!(gone.error_code, Some(406));
    let profile = env
        .t
        .table
        .subscriber_profile(&EmailAddress::parse("gone@example.org").unwrap())
        .await
        .unwrap()
        .expect("the 406 suppresses the address");
    assert_eq!(
        profile.suppression_reason,
        Some(SuppressionReason::InactiveRecipient)
    );
    assert_eq!(profile.status, SubscriberStatus::Deactivated);

    let invalid = env.job("mixed-300").await;
    assert_eq!(invalid.status, Some(JobStatus::Failed));
    assert_eq!(invalid.error_code, Some(300));
    let reason = invalid.reason.as_deref().unwrap();
    assert!(
        reason.contains("not a verified sender signature"),
        "{reason}"
    );

    // A 500 without Postmark's error body may come from a gateway after Postmark took the message: the
    // job is looked up before it is sent again.
    let flaky = env.job("mixed-500").await;
    assert_eq!(flaky.status, Some(JobStatus::Unknown));
    assert!(flaky.reason.as_deref().unwrap().contains("500"));

    let failed = env
        .t
        .table
        .jobs_with_status(JobStatus::Failed, 10, None)
        .await
        .unwrap();
    let mut listed: Vec<_> = failed.items.iter().map(|j| j.id.as_str()).collect();
    listed.sort();
    assert_eq!(listed, ["mixed-300", "mixed-406"]);
    let c = counters(&env).await;
    assert_eq!((c["sent"], c["failed"]), (1, 2));

    // SQS delivers the 500 again: this time Postmark takes it.
    let again = env.run(&records[3..]).await;
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(env.status("mixed-500").await, Some(JobStatus::Sent));
    assert_eq!(env.job("mixed-500").await.attempts, 2);
    assert_eq!(env.sim.messages_to("flaky@example.org").len(), 1);

    // A later job to the suppressed address is skipped without asking Postmark.
    let calls = batch_calls(&env);
    assert!(
        env.run(&[record(&broadcast("after-406", "gone@example.org"))])
            .await
            .is_empty()
    );
    assert_eq!(env.status("after-406").await, Some(JobStatus::Skipped));
    assert_eq!(batch_calls(&env), calls);
}

#[tokio::test]
async fn rate_limits_outages_and_dropped_connections_are_retried() {
    let env = Env::new().await;
    env.sim.set_faults(
        Faults::seeded(2)
            .rule(FaultRule::new(FaultAction::Status { status: 429 }).times(1))
            .rule(FaultRule::new(FaultAction::Status { status: 503 }).times(1))
            .rule(FaultRule::new(FaultAction::Drop).times(1)),
    );
    let records = vec![record(&broadcast("retry-1", "r1@example.org"))];
    // 429 and 503: Postmark did not take it. A connection closed after the request: it may have.
    for status in [JobStatus::Retrying, JobStatus::Retrying, JobStatus::Unknown] {
        assert_eq!(env.run(&records).await, ["sqs-retry-1"]);
        assert_eq!(env.status("retry-1").await, Some(status));
    }
    assert!(env.run(&records).await.is_empty());
    assert_eq!(env.status("retry-1").await, Some(JobStatus::Sent));
    assert_eq!(env.sim.messages_to("r1@example.org").len(), 1);
}

#[tokio::test]
async fn smtp_goes_through_starttls_and_auth_on_pooled_connections() {
    let env = Env::new().await;
    env.store_smtp_server("smtp-2").await;
    let records: Vec<_> = (0..6)
        .map(|i| {
            let mut job = transactional(&format!("smtp-{i}"), &format!("buyer{i}@example.org"));
            job["server_id"] = json!("smtp-2");
            job["headers"] = json!({"X-Order": format!("order-{i}")});
            // The sender's own key wins over a producer's, in any case.
            job["metadata"] = json!({"order": format!("o-{i}"), "Sent_At": "forged"});
            record(&job)
        })
        .collect();

    let failures = env.run(&records).await;

    assert!(failures.is_empty(), "{failures:?}");
    let counters = env.sim.counters();
    assert_eq!(counters.smtp_messages, 6);
    assert!(
        (1..=2).contains(&counters.smtp_connections),
        "6 messages over a pool of 2: {} connections",
        counters.smtp_connections
    );
    assert_eq!(counters.requests.get("POST /email/batch"), None);
    let job = env.job("smtp-3").await;
    assert_eq!(job.status, Some(JobStatus::Sent));
    assert_eq!(job.server_id.as_deref(), Some("smtp-2"));
    let message = env
        .sim
        .message(
            job.message_id
                .as_deref()
                .expect("the id from the SMTP answer"),
        )
        .unwrap();
    assert_eq!(message.via, Via::Smtp);
    assert_eq!(message.message_stream, "outbound");
    assert_eq!(message.tag.as_deref(), Some("receipt"));
    assert_eq!(message.metadata["job_id"], "smtp-3");
    assert_eq!(message.metadata["email_type"], "transactional");
    assert_eq!(message.metadata["order"], "o-3");
    assert!(!message.metadata.contains_key("Sent_At"));
    let trace = domain::trace::MessageTrace::from_metadata(&message.metadata);
    assert!(trace.sent_at.is_some(), "{:?}", message.metadata);
    assert!(
        message
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("X-Order") && h.value == "order-3"),
        "{:?}",
        message.headers
    );
}

#[tokio::test]
async fn a_job_is_sent_once_whatever_sqs_delivers() {
    let env = Env::new().await;
    let other = env.another_app();
    let job = broadcast("once-1", "once@example.org");
    let records = vec![record(&job)];

    let (a, b) = tokio::join!(
        sender::handle(&env.app, event(&records)),
        sender::handle(&other, event(&records))
    );
    let retried = failures(a).len() + failures(b).len();
    assert!(
        retried <= 1,
        "the run that lost the claim may ask for a retry"
    );
    assert_eq!(env.sim.messages_to("once@example.org").len(), 1);

    // Delivered again after it was sent: acknowledged, not sent.
    assert!(env.run(&records).await.is_empty());
    assert_eq!(env.sim.messages_to("once@example.org").len(), 1);
    assert_eq!(counters(&env).await["sent"], 1);
}

#[tokio::test]
async fn a_crashed_runs_claim_holds_until_its_lease_ends() {
    let env = Env::new().await;
    let address = EmailAddress::parse("lease@example.org").unwrap();
    let claim = |id: &'static str, minutes_ago: i64| {
        let env = &env;
        let address = address.clone();
        async move {
            let id = JobId::parse(id).unwrap();
            env.t
                .table
                .claim_job(&JobClaim {
                    id: &id,
                    token: "crashed-run",
                    recipient: &address,
                    email_type: EmailType::Broadcast,
                    campaign: None,
                    subscriber_id: None,
                    now: Utc::now() - chrono::Duration::minutes(minutes_ago),
                    lease: Duration::from_secs(15 * 60),
                    send: None,
                })
                .await
                .unwrap()
        }
    };
    assert_eq!(claim("lease-live", 1).await, Claimed::owned());
    assert_eq!(claim("lease-stale", 60).await, Claimed::owned());

    let failures = env
        .run(&[
            record(&broadcast("lease-live", "lease@example.org")),
            record(&broadcast("lease-stale", "lease@example.org")),
        ])
        .await;

    assert_eq!(
        failures,
        ["sqs-lease-live"],
        "a live claim is another run's"
    );
    assert_eq!(env.status("lease-live").await, Some(JobStatus::Claimed));
    assert_eq!(env.status("lease-stale").await, Some(JobStatus::Sent));
    assert_eq!(env.job("lease-stale").await.attempts, 2);
    assert_eq!(env.sim.messages_to("lease@example.org").len(), 1);
}

#[tokio::test]
async fn a_poison_record_is_rejected_and_the_good_ones_go_out() {
    let env = Env::new().await;
    let mut typo = broadcast("poison-typo", "typo@example.org");
    typo["html_bdoy"] = typo["html_body"].take();
    let mut no_recipient = transactional("poison-no-to", "x@example.org");
    no_recipient.as_object_mut().unwrap().remove("to");
    let records = vec![
        record(&broadcast("good-1", "g1@example.org")),
        (
            "sqs-not-json".to_owned(),
            "{\"version\": 1, \"id\": ".to_owned(),
        ),
        record(&typo),
        record(&broadcast("good-2", "g2@example.org")),
        record(&no_recipient),
        record(&transactional("good-3", "g3@example.org")),
    ];

    let failures = env.run(&records).await;

    assert!(failures.is_empty(), "nothing is retried: {failures:?}");
    for id in ["good-1", "good-2", "good-3"] {
        assert_eq!(env.status(id).await, Some(JobStatus::Sent), "{id}");
    }
    assert_eq!(env.sim.messages().len(), 3);
    let not_json = env.job("sqs-not-json").await;
    assert_eq!(not_json.status, Some(JobStatus::Rejected));
    assert_eq!(not_json.body.as_deref(), Some("{\"version\": 1, \"id\": "));
    assert_eq!(not_json.body_truncated, Some(false));
    assert_eq!(not_json.sqs_message_id.as_deref(), Some("sqs-not-json"));
    assert!(
        not_json
            .reason
            .as_deref()
            .unwrap()
            .contains("body: not valid JSON")
    );
    let typo_job = env.job("poison-typo").await;
    assert!(
        typo_job
            .reason
            .as_deref()
            .unwrap()
            .contains("html_bdoy: is not a field")
    );
    assert_eq!(typo_job.body, Some(typo.to_string()));
    assert!(
        env.job("poison-no-to")
            .await
            .reason
            .unwrap()
            .contains("to: is required")
    );
    let rejected = env
        .t
        .table
        .jobs_with_status(JobStatus::Rejected, 10, None)
        .await
        .unwrap();
    assert_eq!(rejected.items.len(), 3);

    // The same poison again: still rejected, still acknowledged, never retried.
    assert!(env.run(&records[1..3]).await.is_empty());

    // The producer fixes the job and enqueues it again under its id: now it goes out.
    let fixed = broadcast("poison-typo", "typo@example.org");
    assert!(env.run(&[record(&fixed)]).await.is_empty());
    let fixed = env.job("poison-typo").await;
    assert_eq!(fixed.status, Some(JobStatus::Sent));
    assert_eq!(
        fixed.body, None,
        "the rejected body goes with the rejection"
    );
    let rejected = env
        .t
        .table
        .jobs_with_status(JobStatus::Rejected, 10, None)
        .await
        .unwrap();
    assert!(
        rejected.items.iter().all(|j| j.id != "poison-typo"),
        "off the list of rejected jobs: {:?}",
        rejected.items
    );

    // An invalid job under the id of a job that was sent is kept under its SQS message id instead:
    // the sent job's record stays as it is.
    let mut clash = broadcast("good-1", "g1@example.org");
    clash.as_object_mut().unwrap().remove("subject");
    assert!(
        env.run(&[("sqs-clash".to_owned(), clash.to_string())])
            .await
            .is_empty()
    );
    assert_eq!(env.status("good-1").await, Some(JobStatus::Sent));
    let kept = env.job("sqs-clash").await;
    assert_eq!(kept.status, Some(JobStatus::Rejected));
    assert!(
        kept.reason
            .as_deref()
            .unwrap()
            .contains("subject: is required")
    );
}

#[tokio::test]
async fn no_server_for_the_type_retries_until_the_configuration_is_fixed() {
    let mut only_transactional = api_server("tx-only");
    only_transactional
        .streams
        .retain(|t, _| *t == EmailType::Transactional);
    let env = Env::with_server(only_transactional, ServerConfig::new(TOKEN)).await;
    let records = vec![record(&broadcast("unrouted", "wait@example.org"))];

    assert_eq!(env.run(&records).await, ["sqs-unrouted"]);
    let job = env.job("unrouted").await;
    assert_eq!(job.status, Some(JobStatus::Retrying));
    assert_eq!(
        job.reason.as_deref(),
        Some("no active email server carries broadcast mail")
    );
    assert!(env.sim.messages().is_empty());

    let mut fixed = env.server.clone();
    fixed
        .streams
        .insert(EmailType::Broadcast, EmailType::Broadcast.default_stream());
    fixed.version += 1;
    assert!(env.t.table.update_server(&fixed, 1).await.unwrap());

    assert!(env.run(&records).await.is_empty());
    assert_eq!(env.status("unrouted").await, Some(JobStatus::Sent));
}

#[tokio::test]
async fn suppressed_recipients_are_skipped_with_one_read_for_the_batch() {
    let env = Env::new().await;
    env.suppress("bounced@example.org", SuppressionReason::HardBounce)
        .await;
    env.suppress("left@example.org", SuppressionReason::Unsubscribed)
        .await;
    env.suppress("angry@example.org", SuppressionReason::SpamComplaint)
        .await;
    env.t.aws.requests.reset();
    let records = vec![
        record(&broadcast("skip-bounced", "Bounced@example.org")),
        record(&broadcast("skip-left", "left@example.org")),
        record(&broadcast("skip-angry", "angry@example.org")),
        record(&broadcast("send-fresh", "fresh@example.org")),
        record(&transactional("tx-left", "left@example.org")),
        record(&transactional("tx-angry", "angry@example.org")),
    ];

    assert!(env.run(&records).await.is_empty());

    assert_eq!(env.t.aws.requests.count("BatchGetItem"), 1);
    for (id, status, reason) in [
        (
            "skip-bounced",
            JobStatus::Skipped,
            Some("the address is suppressed (HardBounce)"),
        ),
        (
            "skip-left",
            JobStatus::Skipped,
            Some("the address is suppressed (Unsubscribed)"),
        ),
        (
            "skip-angry",
            JobStatus::Skipped,
            Some("the address is suppressed (SpamComplaint)"),
        ),
        ("send-fresh", JobStatus::Sent, None),
        // An unsubscribe stops marketing only; a spam complaint stops transactional mail too.
        ("tx-left", JobStatus::Sent, None),
        (
            "tx-angry",
            JobStatus::Skipped,
            Some("the address is suppressed (SpamComplaint)"),
        ),
    ] {
        let job = env.job(id).await;
        assert_eq!(job.status, Some(status), "{id}");
        assert_eq!(job.reason.as_deref(), reason, "{id}");
    }
    assert_eq!(env.sim.messages().len(), 2);
    let c = counters(&env).await;
    assert_eq!((c["sent"], c["skipped"]), (1, 3));
    let activity = env
        .t
        .table
        .activity("angry@example.org", 10, None)
        .await
        .unwrap();
    assert_eq!(activity.items.len(), 2);
    assert!(activity.items.iter().all(|e| e.kind == "skipped"));
}

const NEWSLETTER: &str = include_str!("fixtures/newsletter.html");

/// The tracked URLs in `html`, in order, with where each starts and ends.
fn tracked(html: &str, kind: &str) -> Vec<(usize, usize, String)> {
    let prefix = format!("{TRACKING_BASE}/t/{kind}/");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = html[from..].find(&prefix) {
        let start = from + at;
        let token_start = start + prefix.len();
        let end = html[token_start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
            .map_or(html.len(), |e| token_start + e);
        out.push((start, end, html[token_start..end].to_owned()));
        from = end;
    }
    out
}

#[tokio::test]
async fn native_tracking_rewrites_a_real_newsletter_and_changes_nothing_else() {
    let mut server = api_server("tracked");
    server.tracking = PostmarkTracking {
        track_opens: true,
        track_links: LinkTracking::HtmlOnly,
    };
    let env = Env::with_server(server, ServerConfig::new(TOKEN)).await;
    let mut job = broadcast("news-1", "ada@example.org");
    job["html_body"] = json!(NEWSLETTER);
    job["track_opens"] = json!(true);
    job["track_clicks"] = json!(true);

    assert!(env.run(&[record(&job)]).await.is_empty());

    let message = env.sim.messages_to("ada@example.org").pop().unwrap();
    let html = message.html_body.clone().unwrap();
    // Postmark's own tracking as the server asks, alongside the native one.
    assert!(message.track_opens);
    assert_eq!(message.track_links, postmark::TrackLinks::HtmlOnly);
    assert_eq!(
        message.text_body.as_deref(),
        Some("Hello"),
        "text is left alone"
    );

    let signer = TokenSigner::new(TRACKING_KEY.as_bytes());
    let job_id = JobId::parse("news-1").unwrap();
    let originals = [
        "https://bookshop.example.com/?utm_source=newsletter&amp;utm_medium=email",
        "https://bookshop.example.com/books/9780141439518?ref=nl&amp;pos=1",
        "https://bookshop.example.com/staff-picks",
        "https://events.example.org/reading-night?date=2026-04-02",
        "https://bookshop.example.com/sale?utm_source=newsletter&amp;utm_content=button",
        "https://bookshop.example.com/shops/high-street",
        "https://bookshop.example.com/shops/market-square",
        "https://www.instagram.com/cornerbookshop",
    ];
    let clicks = tracked(&html, "c");
    assert_eq!(clicks.len(), originals.len(), "{html}");
    for ((_, _, token), original) in clicks.iter().zip(originals) {
        assert_eq!(
            signer.verify(token).unwrap(),
            TrackingTarget::Click {
                job: job_id.clone(),
                url: original.replace("&amp;", "&"),
            }
        );
    }
    let opens = tracked(&html, "o");
    assert_eq!(opens.len(), 1);
    assert_eq!(
        signer.verify(&opens[0].2).unwrap(),
        TrackingTarget::Open { job: job_id }
    );
    let pixel = format!(
        "<img src=\"{TRACKING_BASE}/t/o/{}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\" />",
        opens[0].2
    );
    assert!(
        html.contains(&format!("{pixel}</BODY>")),
        "the pixel sits before </body>"
    );

    // Undoing the rewrites gives back the newsletter byte for byte.
    let mut undone = html.replace(&pixel, "");
    for ((start, end, _), original) in clicks.iter().zip(originals).rev() {
        let shift = if *start > html.find(&pixel).unwrap() {
            pixel.len()
        } else {
            0
        };
        undone.replace_range(start - shift..end - shift, original);
    }
    assert_eq!(undone, NEWSLETTER);
    for kept in [
        "href=\"tel:+441234567890\"",
        "href=\"mailto:hello@bookshop.example.com?subject=Reading%20night\"",
        "href=\"#offers\"",
        "href=\"{{unsubscribe_url}}\"",
        "data-no-track=\"true\"",
        "v:roundrect xmlns:v=\"urn:schemas-microsoft-com:vml\" href=\"https://bookshop.example.com/sale",
    ] {
        assert!(html.contains(kept), "{kept}");
    }
}
