//! What the sender's tests share: a table in the AWS emulator, the Postmark simulator with one server,
//! that server configured in the table with its token in Secrets Manager, and the sender's `App` aimed
//! at both.
#![allow(dead_code)]

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::Utc;
use domain::servers::{Delivery, EmailServer, ServerId, SmtpAuthentication, SmtpSettings};
use domain::{EmailAddress, SuppressionReason};
use postmark_sim::{ServerConfig, ServerSummary, SimOptions, Simulator};
use secrecy::SecretString;
use sender::{Backoff, BreakerPolicy};
use serde_json::{Value, json};
use store::jobs::{JobRecord, JobStatus};
use store::servers::{ServerCredentials, ServerSecrets};
use testkit::{TestTable, unique};

pub use sender::{App, Config};

pub const TOKEN: &str = "7d1c0a52-sender-test-token";
pub const TRACKING_KEY: &str = "sender-tests-tracking-key";
pub const TRACKING_BASE: &str = "https://track.example.com";
pub const FROM: &str = "Shop <news@example.com>";

pub struct Env {
    pub t: TestTable,
    pub sim: Simulator,
    pub sim_server: ServerSummary,
    pub prefix: String,
    pub tracking_secret: String,
    pub server: EmailServer,
    pub app: App,
}

pub fn config(t: &TestTable, sim: &Simulator, prefix: &str, tracking_secret: &str) -> Config {
    Config {
        table_name: t.table.name().to_owned(),
        secrets_prefix: prefix.to_owned(),
        tracking_key_secret: tracking_secret.to_owned(),
        tracking_base_url: TRACKING_BASE.to_owned(),
        postmark_api_url: sim.api_url().parse().expect("the simulator's URL"),
        smtp_extra_ca_pem: Some(sim.ca_pem().to_owned()),
        claim_lease: Duration::from_secs(900),
        secrets_ttl: Duration::from_secs(300),
        // Every run sees the configuration as it is now: tests change it between runs.
        servers_ttl: Duration::ZERO,
        postmark_timeout: Duration::from_secs(10),
        smtp_connections: 2,
        // The simulator's search shows a message as soon as it is accepted.
        search_settle: Duration::ZERO,
        deadline_margin: Duration::from_secs(10),
        backoff: Backoff::default(),
        breaker: BreakerPolicy::default(),
        queue_url: None,
    }
}

/// A server that carries every type on the default streams, through the API.
pub fn api_server(id: &str) -> EmailServer {
    EmailServer::api(
        ServerId::parse(id).unwrap(),
        format!("Server {id}"),
        Utc::now(),
    )
}

impl Env {
    pub async fn new() -> Self {
        Self::with_server(api_server("main"), ServerConfig::new(TOKEN)).await
    }

    /// `server` stored with the simulator's token as its credentials; `sim_config` gets the sender
    /// domain `example.com` and no webhooks.
    pub async fn with_server(server: EmailServer, sim_config: ServerConfig) -> Self {
        let t = TestTable::new().await;
        let prefix = unique("test/sender");
        let tracking_secret = format!("{prefix}/tracking-key");
        t.aws
            .secrets
            .create_secret()
            .name(&tracking_secret)
            .secret_string(TRACKING_KEY)
            .send()
            .await
            .unwrap();
        let sim = Simulator::start(SimOptions::for_tests())
            .await
            .expect("the simulator starts");
        let sim_server = sim.add_server(
            sim_config
                .sender_domain("example.com")
                .webhooks_enabled(false),
        );
        let config = config(&t, &sim, &prefix, &tracking_secret);
        let app = App::with_clients(
            t.aws.dynamodb.clone(),
            t.aws.secrets.clone(),
            t.aws.sqs.clone(),
            config,
        )
        .expect("the app builds");
        let mut env = Self {
            t,
            sim,
            sim_server,
            prefix,
            tracking_secret,
            server: server.clone(),
            app,
        };
        env.server = env.store_server(server).await;
        env.t.aws.requests.reset();
        env
    }

    /// Stores a server with the simulator's token as API token and SMTP username and password.
    pub async fn store_server(&self, mut server: EmailServer) -> EmailServer {
        let credentials = ServerCredentials {
            api_token: Some(SecretString::from(TOKEN)),
            smtp_username: Some(SecretString::from(TOKEN)),
            smtp_password: Some(SecretString::from(TOKEN)),
        };
        let secrets = ServerSecrets::new(self.t.aws.secrets.clone(), self.prefix.clone());
        let version = secrets.create(&server.id, &credentials).await.unwrap();
        server.credentials = credentials.hints(version);
        assert!(self.t.table.create_server(&server).await.unwrap());
        server
    }

    /// Stores an SMTP server `id` at the simulator's SMTP listener (STARTTLS, LOGIN).
    pub async fn store_smtp_server(&self, id: &str) -> EmailServer {
        let smtp_addr = self.sim.smtp_addr().expect("SMTP listener");
        let mut smtp = api_server(id);
        smtp.delivery = Delivery::Smtp(SmtpSettings {
            host: "127.0.0.1".into(),
            port: smtp_addr.port(),
            authentication: SmtpAuthentication::Login,
            starttls: true,
        });
        self.store_server(smtp).await
    }

    /// Another app on the same table, secrets and simulator (another Lambda instance).
    pub fn another_app(&self) -> App {
        App::with_clients(
            self.t.aws.dynamodb.clone(),
            self.t.aws.secrets.clone(),
            self.t.aws.sqs.clone(),
            config(&self.t, &self.sim, &self.prefix, &self.tracking_secret),
        )
        .unwrap()
    }

    pub async fn run(&self, records: &[(String, String)]) -> Vec<String> {
        failures(sender::handle(&self.app, event(records)).await)
    }

    pub async fn job(&self, id: &str) -> JobRecord {
        self.t
            .table
            .job(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no record of job {id}"))
    }

    pub async fn status(&self, id: &str) -> Option<JobStatus> {
        self.job(id).await.status
    }

    pub async fn suppress(&self, address: &str, reason: SuppressionReason) {
        let address = EmailAddress::parse(address).unwrap();
        self.t
            .table
            .suppress(&address, reason, Utc::now())
            .await
            .unwrap();
    }
}

pub fn event(records: &[(String, String)]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = records
        .iter()
        .map(|(id, body)| {
            let mut m = SqsMessage::default();
            m.message_id = Some(id.clone());
            m.receipt_handle = Some(format!("receipt-{id}"));
            m.body = Some(body.clone());
            m.event_source = Some("aws:sqs".into());
            m
        })
        .collect();
    event
}

pub fn failures(response: aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    let mut ids: Vec<String> = response
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect();
    ids.sort();
    ids
}

/// A record for a job: its SQS message id is `sqs-{id}`.
pub fn record(job: &Value) -> (String, String) {
    let id = job["id"].as_str().unwrap_or("no-id");
    (format!("sqs-{id}"), job.to_string())
}

pub fn broadcast(id: &str, to: &str) -> Value {
    json!({
        "version": 1,
        "id": id,
        "email_type": "broadcast",
        "from": FROM,
        "to": to,
        "subject": "Spring sale",
        "html_body": "<html><body><p>Hello</p><a href=\"https://shop.example.com/sale\">Sale</a></body></html>",
        "text_body": "Hello",
        "broadcast_id": "b-spring",
        "subscriber_id": format!("sub-{id}"),
        "tag": "spring-sale",
    })
}

pub fn transactional(id: &str, to: &str) -> Value {
    json!({
        "version": 1,
        "id": id,
        "email_type": "transactional",
        "from": "Shop <receipts@example.com>",
        "to": to,
        "subject": "Your receipt",
        "text_body": "Thanks for your order.",
        "tag": "receipt",
    })
}

/// `n` broadcast jobs `{prefix}-{i}` to `{prefix}{i}@example.org`, as records.
pub fn jobs(prefix: &str, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            record(&broadcast(
                &format!("{prefix}-{i}"),
                &format!("{prefix}{i}@example.org"),
            ))
        })
        .collect()
}

/// Postmark batch calls the simulator has received.
pub fn batch_calls(env: &Env) -> u64 {
    env.sim
        .counters()
        .requests
        .get("POST /email/batch")
        .copied()
        .unwrap_or(0)
}

/// Messages the simulator accepted for a job.
pub fn accepted_for(env: &Env, job: &str) -> usize {
    env.sim
        .messages()
        .iter()
        .filter(|m| m.metadata.get("job_id").map(String::as_str) == Some(job))
        .count()
}

/// The broadcast every `broadcast` job belongs to.
pub fn campaign() -> domain::trace::Campaign {
    domain::trace::Campaign {
        kind: domain::trace::CampaignKind::Broadcast,
        id: "b-spring".into(),
    }
}

/// That broadcast's counters.
pub async fn counters(env: &Env) -> std::collections::BTreeMap<String, i64> {
    env.t
        .table
        .campaign_stats(&campaign())
        .await
        .unwrap()
        .counters
}
