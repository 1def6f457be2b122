//! Suppressions, subscribers, campaign counters and jobs, read back from what the other functions write
//! (written here with the same store operations they use).

use chrono::{Duration, TimeZone, Utc};
use domain::events::{Event, EventKind, Source};
use domain::trace::{Campaign, CampaignKind, MessageTrace};
use domain::{EmailAddress, EmailType, JobId, SuppressionReason};
use serde_json::{Value, json};
use store::activity::ActivityEntry;
use store::jobs::{Claimed, JobClaim, JobOutcome, OutcomeRecorded, Rejection, SendAttempt};

use crate::support::TestApp;

fn addr(text: &str) -> EmailAddress {
    EmailAddress::parse(text).unwrap()
}

async fn suppress(app: &TestApp, email: &str, reason: SuppressionReason) {
    let at = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
    app.t
        .table
        .suppress(&addr(email), reason, at)
        .await
        .unwrap();
}

fn emails(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["email"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_suppression_list_filters_by_reason_and_pages() {
    let app = TestApp::new().await;
    suppress(&app, "Hard.One@example.com", SuppressionReason::HardBounce).await;
    suppress(&app, "hard.two@example.com", SuppressionReason::HardBounce).await;
    suppress(&app, "spam@example.com", SuppressionReason::SpamComplaint).await;

    let all = app.get("/api/suppressions").await;
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(emails(&all.json()).len(), 3);
    assert_eq!(all.json()["next_cursor"], json!(null));

    let hard = app.get("/api/suppressions?reason=HardBounce").await.json();
    assert_eq!(
        emails(&hard),
        vec!["Hard.One@example.com", "hard.two@example.com"]
    );
    assert_eq!(hard["items"][0]["status"], "deactivated");
    assert_eq!(hard["items"][0]["reason"], "HardBounce");

    let first = app
        .get("/api/suppressions?reason=HardBounce&limit=1")
        .await
        .json();
    assert_eq!(emails(&first), vec!["Hard.One@example.com"]);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let second = app
        .get(&format!(
            "/api/suppressions?reason=HardBounce&limit=1&cursor={cursor}"
        ))
        .await
        .json();
    assert_eq!(emails(&second), vec!["hard.two@example.com"]);

    for bad in [
        "reason=Bogus",
        "limit=0",
        "limit=101",
        "cursor=%21%21",
        "colour=red",
    ] {
        let r = app.get(&format!("/api/suppressions?{bad}")).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
    }
}

#[tokio::test]
async fn a_manual_suppression_is_recorded_and_never_overrides_another_reason() {
    let app = TestApp::new().await;
    let r = app
        .post("/api/suppressions", json!({"email": "Someone@Example.com"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["created"], true);
    assert_eq!(r.json()["suppression"]["reason"], "ManualSuppression");
    assert_eq!(r.json()["suppression"]["status"], "unsubscribed");
    let sub = app.get("/api/subscribers/someone@example.com").await.json();
    assert_eq!(sub["status"], "unsubscribed");
    assert_eq!(sub["suppression_reason"], "ManualSuppression");
    let log = app
        .get("/api/subscribers/someone@example.com/activity")
        .await
        .json();
    assert_eq!(log["items"][0]["kind"], "suppressed");
    assert_eq!(log["items"][0]["detail"]["source"], "admin");

    suppress(&app, "bounced@example.com", SuppressionReason::HardBounce).await;
    let again = app
        .post("/api/suppressions", json!({"email": "bounced@example.com"}))
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json()["created"], false);
    assert_eq!(again.json()["suppression"]["reason"], "HardBounce");

    for body in [
        json!({}),
        json!({"email": "not an address"}),
        json!({"email": "a@b.co", "x": 1}),
    ] {
        assert_eq!(app.post("/api/suppressions", body).await.status, 422);
    }
}

#[tokio::test]
async fn a_manual_suppression_beneath_a_hard_bounce_is_kept_for_when_the_bounce_is_lifted() {
    let app = TestApp::new().await;
    suppress(&app, "bounced@example.com", SuppressionReason::HardBounce).await;
    let r = app
        .post("/api/suppressions", json!({"email": "bounced@example.com"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["created"], false);
    assert_eq!(r.json()["suppression"]["reason"], "HardBounce");
    assert_eq!(r.json()["suppression"]["status"], "deactivated");
    let log = app
        .get("/api/subscribers/bounced@example.com/activity")
        .await
        .json();
    assert_eq!(log["items"][0]["kind"], "suppressed");
    assert_eq!(log["items"][0]["detail"]["standing_unchanged"], true);

    // Postmark's reactivation of the bounce, sent before the admin's suppression, arrives late: the
    // bounce is lifted, the admin's suppression holds.
    let reactivated_in_postmark = Utc::now() - Duration::minutes(1);
    app.t
        .table
        .reactivate(&addr("bounced@example.com"), reactivated_in_postmark)
        .await
        .unwrap();
    let sub = app.get("/api/subscribers/bounced@example.com").await.json();
    assert_eq!(sub["status"], "unsubscribed");
    assert_eq!(sub["suppression_reason"], "ManualSuppression");
    let list = app.get("/api/suppressions").await.json();
    assert_eq!(list["items"][0]["reason"], "ManualSuppression");
}

#[tokio::test]
async fn an_admin_reactivation_lifts_what_is_older_and_not_what_comes_after() {
    let app = TestApp::new().await;
    let email = addr("back@example.com");
    suppress(&app, "back@example.com", SuppressionReason::HardBounce).await;
    let r = app.delete("/api/suppressions/back@example.com").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["status"], "active");

    // A bounce from before the reactivation, delivered late, does not suppress again.
    let table = &app.t.table;
    let before = Utc::now() - Duration::minutes(5);
    table
        .suppress(&email, SuppressionReason::HardBounce, before)
        .await
        .unwrap();
    let sub = app.get("/api/subscribers/back@example.com").await.json();
    assert_eq!(sub["status"], "active");
    assert!(emails(&app.get("/api/suppressions").await.json()).is_empty());

    let after = Utc::now() + Duration::seconds(1);
    table
        .suppress(&email, SuppressionReason::Unsubscribed, after)
        .await
        .unwrap();
    let sub = app.get("/api/subscribers/back@example.com").await.json();
    assert_eq!(sub["status"], "unsubscribed");
    assert_eq!(
        emails(&app.get("/api/suppressions").await.json()),
        vec!["back@example.com"]
    );
}

#[tokio::test]
async fn removing_a_suppression_reactivates_and_says_what_postmark_will_do() {
    let app = TestApp::new().await;
    suppress(&app, "spam@example.com", SuppressionReason::SpamComplaint).await;
    suppress(&app, "gone@example.com", SuppressionReason::HardBounce).await;

    // A spam complaint is never reactivated (Postmark keeps it for good): 409, nothing changed.
    let r = app.delete("/api/suppressions/spam%40example.com").await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("spam complaint")
    );
    let sub = app.get("/api/subscribers/spam@example.com").await.json();
    assert_eq!(sub["suppression_reason"], "SpamComplaint");
    let log = app
        .get("/api/subscribers/spam@example.com/activity")
        .await
        .json();
    assert_ne!(log["items"][0]["kind"], "reactivated");

    let r = app.delete("/api/suppressions/gone@example.com").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(body["status"], "active");
    assert_eq!(body["previous_reason"], "HardBounce");
    // No API server: nothing to lift in Postmark.
    assert_eq!(body["postmark"]["will_refuse"], "no");
    assert_eq!(body["postmark"]["streams"], json!([]));
    let list = app.get("/api/suppressions").await.json();
    assert_eq!(emails(&list), vec!["spam@example.com"]);
    let log = app
        .get("/api/subscribers/gone@example.com/activity")
        .await
        .json();
    assert_eq!(log["items"][0]["kind"], "reactivated");
    assert_eq!(log["items"][0]["detail"]["previous_reason"], "HardBounce");

    assert_eq!(
        app.delete("/api/suppressions/gone@example.com")
            .await
            .status,
        404
    );
    assert_eq!(
        app.delete("/api/suppressions/nobody@example.com")
            .await
            .status,
        404
    );
    assert_eq!(
        app.delete("/api/suppressions/not-an-address").await.status,
        422
    );
}

#[tokio::test]
async fn a_subscriber_shows_status_counters_and_activity_newest_first() {
    let app = TestApp::new().await;
    let email = addr("Reader@Example.com");
    let start = Utc.with_ymd_and_hms(2026, 4, 1, 8, 0, 0).unwrap();
    for i in 0..5 {
        let entry = ActivityEntry {
            at: start + Duration::minutes(i),
            id: format!("evt-{i}"),
            kind: if i % 2 == 0 { "delivered" } else { "open" }.into(),
            detail: json!({"n": i}),
        };
        app.t
            .table
            .record_activity(email.key(), &entry)
            .await
            .unwrap();
    }

    let r = app.get("/api/subscribers/reader%40example.com").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let sub = r.json();
    // Deliveries and opens leave only the activity log, no profile: the address is shown as asked for.
    assert_eq!(sub["email"], "reader@example.com");
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["counters"], json!({"delivered": 3, "opens": 2}));

    let page = app
        .get("/api/subscribers/reader@example.com/activity?limit=2")
        .await
        .json();
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["evt-4", "evt-3"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = app
        .get(&format!(
            "/api/subscribers/reader@example.com/activity?limit=2&cursor={cursor}"
        ))
        .await
        .json();
    assert_eq!(next["items"][0]["id"], "evt-2");
    assert_eq!(next["items"][0]["detail"], json!({"n": 2}));

    assert_eq!(
        app.get("/api/subscribers/unknown@example.com").await.status,
        404
    );
    assert_eq!(app.get("/api/subscribers/nope").await.status, 422);
    let empty = app
        .get("/api/subscribers/unknown@example.com/activity")
        .await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.json()["items"], json!([]));
}

/// An event of a message of the broadcast `spring-sale`, as the webhook function records it.
fn campaign_event(job: &str, kind: EventKind, minute: i64) -> Event {
    Event {
        dedup_key: format!("pm:{}:{job}", kind.name()),
        recipient: Some(addr(&format!("{job}@example.com"))),
        message_id: Some(format!("msg-{job}")),
        at: Utc.with_ymd_and_hms(2026, 4, 1, 8, 0, 0).unwrap() + Duration::minutes(minute),
        trace: MessageTrace {
            job_id: Some(job.to_owned()),
            campaign: Some(Campaign {
                kind: CampaignKind::Broadcast,
                id: "spring-sale".into(),
            }),
            ..MessageTrace::default()
        },
        stream: Some("broadcast".into()),
        client: None,
        automated: None,
        source: Source::Postmark,
        kind,
        detail: json!({}),
    }
}

#[tokio::test]
async fn campaign_counters_are_summed_over_shards_with_clicks_per_link() {
    let app = TestApp::new().await;
    let mut events = Vec::new();
    for i in 0..6 {
        let job = format!("job-{i}");
        events.push(campaign_event(&job, EventKind::Delivered, 0));
        events.push(campaign_event(&job, EventKind::Opened, 10));
    }
    for (job, url) in [
        ("job-0", "https://shop.example/a"),
        ("job-1", "https://shop.example/a"),
        ("job-2", "https://shop.example/a"),
        ("job-3", "https://shop.example/b"),
    ] {
        let clicked = EventKind::Clicked { url: url.into() };
        events.push(campaign_event(job, clicked, 20));
    }
    for event in events {
        app.t.table.record_event(event).await.unwrap();
    }
    // The counters follow from the table's stream, as the stream function counts them.
    local_stack::stream_poller::in_process(
        &app.t.aws.config,
        app.t.aws.dynamodb.clone(),
        app.t.table.name(),
        1000,
        std::time::Duration::ZERO,
    )
    .await
    .unwrap()
    .drain()
    .await
    .unwrap();

    let r = app.get("/api/broadcasts/spring-sale/stats").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let stats = r.json();
    assert_eq!(stats["kind"], "broadcast");
    assert_eq!(stats["counters"]["delivered"], 6);
    assert_eq!(stats["counters"]["opens"], 6);
    assert_eq!(stats["counters"]["sent"], 0);
    assert_eq!(stats["links"][0]["url"], "https://shop.example/a");
    assert_eq!(stats["links"][0]["clicks"], 3);
    assert_eq!(stats["links"][1]["clicks"], 1);

    let other = app.get("/api/sequences/spring-sale/stats").await.json();
    assert_eq!(
        other["counters"]["delivered"], 0,
        "a sequence is another campaign"
    );
    assert_eq!(app.get("/api/broadcasts/a%23b/stats").await.status, 422);
}

#[tokio::test]
async fn jobs_read_back_as_the_sender_wrote_them() {
    let app = TestApp::new().await;
    let at = Utc.with_ymd_and_hms(2026, 5, 1, 10, 0, 0).unwrap();
    let recipient = addr("buyer@example.com");
    let call = SendAttempt {
        server_id: "srv1".into(),
        stream: "outbound".into(),
        send_id: "call-1".into(),
        at,
    };
    for (id, outcome) in [
        (
            "job-sent",
            JobOutcome::Sent {
                message_id: Some("0a129aee-e1cd-480d-b08d-4f48548ff48d".into()),
                server_id: "srv1".into(),
                stream: "outbound".into(),
            },
        ),
        (
            "job-failed",
            JobOutcome::Failed {
                reason: "Postmark ErrorCode 300: Invalid 'To' address".into(),
                error_code: Some(300),
                server_id: Some("srv1".into()),
                stream: Some("outbound".into()),
            },
        ),
        (
            "job-unknown",
            JobOutcome::Unknown {
                reason: "the request to Postmark timed out".into(),
                pending: vec![call.clone()],
            },
        ),
    ] {
        let job_id = JobId::parse(id).unwrap();
        let claim = JobClaim {
            id: &job_id,
            token: "attempt-token",
            recipient: &recipient,
            email_type: EmailType::Transactional,
            campaign: None,
            subscriber_id: Some("sub-7"),
            now: at,
            lease: std::time::Duration::from_secs(60),
            send: Some(&call),
        };
        assert_eq!(
            app.t.table.claim_job(&claim).await.unwrap(),
            Claimed::owned()
        );
        assert_eq!(
            app.t
                .table
                .record_job_outcome(&job_id, "attempt-token", &outcome, at)
                .await
                .unwrap(),
            OutcomeRecorded::Written
        );
    }
    app.t
        .table
        .record_rejected_job(&Rejection {
            key_id: "job-bad",
            sqs_message_id: "sqs-1",
            reason: "email_type: \"bulk\" is not one of broadcast, sequence, transactional",
            body: "{\"email_type\": \"bulk\"}",
            at,
        })
        .await
        .unwrap();

    // The webhook function records the message's delivery; that is the message's state, not the job's.
    let delivered = Event {
        dedup_key: "pm:delivery:job-sent".into(),
        recipient: Some(recipient.clone()),
        message_id: Some("0a129aee-e1cd-480d-b08d-4f48548ff48d".into()),
        at: at + Duration::minutes(1),
        trace: MessageTrace {
            job_id: Some("job-sent".into()),
            ..MessageTrace::default()
        },
        stream: Some("outbound".into()),
        client: None,
        automated: None,
        source: Source::Postmark,
        kind: EventKind::Delivered,
        detail: json!({}),
    };
    app.t.table.record_event(delivered).await.unwrap();

    let sent = app.get("/api/jobs/job-sent").await;
    assert_eq!(sent.status, 200, "{}", sent.text);
    let sent = sent.json();
    assert_eq!(sent["id"], "job-sent");
    assert_eq!(sent["status"], "sent");
    assert_eq!(sent["message_id"], "0a129aee-e1cd-480d-b08d-4f48548ff48d");
    assert_eq!(sent["recipient"], "buyer@example.com");
    assert_eq!(sent["email_type"], "transactional");
    assert_eq!(sent["subscriber_id"], "sub-7");
    assert_eq!(sent["server_id"], "srv1");
    assert_eq!(sent["stream"], "outbound");
    assert_eq!(sent["attempts"], 1);
    assert_eq!(sent["sent_at"], "2026-05-01T10:00:00.000000Z");
    let published: Vec<&str> = sent
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        published,
        [
            "attempts",
            "claimed_at",
            "email_type",
            "id",
            "message_id",
            "recipient",
            "sent_at",
            "server_id",
            "status",
            "stream",
            "subscriber_id",
            "updated_at"
        ],
        "the job's own fields, neither the sender's claim nor what events recorded: {sent}"
    );
    // The sender's bookkeeping of an unresolved call stays internal.
    let unknown = app.get("/api/jobs/job-unknown").await.json();
    assert_eq!(unknown["status"], "unknown");
    assert!(unknown.get("pending_sends").is_none(), "{unknown}");
    assert!(unknown.get("lease_until").is_none(), "{unknown}");
    let failed = app.get("/api/jobs/job-failed").await.json();
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error_code"], 300);
    assert_eq!(failed["failed_at"], "2026-05-01T10:00:00.000000Z");

    let list = app.get("/api/jobs?status=failed").await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["id"], "job-failed");
    let rejected = app.get("/api/jobs?status=rejected").await.json();
    assert_eq!(rejected["items"][0]["id"], "job-bad");
    assert!(
        rejected["items"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("bulk")
    );
    assert_eq!(rejected["items"][0]["body"], "{\"email_type\": \"bulk\"}");
    assert_eq!(rejected["items"][0]["body_truncated"], false);
    assert_eq!(rejected["items"][0]["sqs_message_id"], "sqs-1");

    assert_eq!(app.get("/api/jobs/unknown").await.status, 404);
    assert_eq!(app.get("/api/jobs/a%23b").await.status, 422);
    assert_eq!(app.get("/api/jobs").await.status, 422);
    assert_eq!(app.get("/api/jobs?status=sent").await.status, 422);
}

#[tokio::test]
async fn recovery_runs_read_back_newest_first_page_by_page() {
    let app = TestApp::new().await;
    let start = Utc.with_ymd_and_hms(2026, 5, 1, 10, 0, 0).unwrap();
    for i in 0..3 {
        let run = domain::recovery::RecoveryRun {
            id: format!("run-{i}"),
            started_at: start + Duration::minutes(15 * i),
            finished_at: Some(start + Duration::minutes(15 * i + 1)),
            trigger: "schedule".into(),
            servers: vec![domain::recovery::ServerRecovery {
                server_id: "main".into(),
                recovered: [("delivered".to_owned(), i as u64)].into(),
                postmark_calls: 7,
                errors: if i == 1 {
                    vec!["Postmark answered 503".into()]
                } else {
                    Vec::new()
                },
                ..domain::recovery::ServerRecovery::default()
            }],
        };
        app.app.table.record_recovery_run(&run).await.unwrap();
    }
    let page = app.get("/api/postmark/recoveries?limit=2").await.json();
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["run-2", "run-1"]);
    assert_eq!(
        page["items"][1]["servers"][0]["errors"][0],
        "Postmark answered 503"
    );
    assert_eq!(page["items"][0]["servers"][0]["recovered"]["delivered"], 2);
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let rest = app
        .get(&format!("/api/postmark/recoveries?limit=2&cursor={cursor}"))
        .await
        .json();
    assert_eq!(rest["items"][0]["id"], "run-0");
    assert_eq!(
        app.get("/api/postmark/recoveries?limit=0").await.status,
        422
    );
}
