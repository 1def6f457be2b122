//! The sender load run: send jobs enqueued on SQS, drained by the local stack's poller in batches and
//! handed to the sender's handler in this process, which sends them to the Postmark simulator.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use chrono::Utc;
use domain::servers::{EmailServer, ServerId};
use local_stack::poller::{InvokeFn, Poller, PollerConfig};
use postmark_sim::{ServerConfig, SimOptions, Simulator};
use secrecy::SecretString;
use serde_json::Value;
use store::Table;
use store::jobs::JobStatus;
use store::servers::{ServerCredentials, ServerSecrets};

use crate::capacity::{MeteredClients, Usage};
use crate::messages;

pub struct SenderLoad {
    pub jobs: usize,
    pub batch_size: usize,
    /// How long the poller fills a batch once it has a first message.
    pub window: Duration,
    /// An already running simulator (`http://host:port`) and a server token it knows; `None` starts
    /// one in this process.
    pub simulator: Option<(String, String)>,
}

#[derive(Debug)]
pub struct SenderReport {
    pub jobs: usize,
    pub batches: usize,
    pub elapsed: Duration,
    /// Time spent inside the handler (what Lambda bills), summed over batches.
    pub handler: Duration,
    /// The process's CPU seconds while the handler ran, summed over batches: the function's work, its
    /// SDK requests and connections included (the poller only waits for the answer meanwhile).
    pub handler_cpu_seconds: f64,
    /// The process's CPU seconds over the whole drain: the handler's, the poller's (the event source
    /// mapping's, AWS's work in Lambda, not the function's) and the harness's.
    pub cpu_seconds: f64,
    /// The function's own requests (DynamoDB, Secrets Manager).
    pub function: Usage,
    /// The event source's SQS requests (receive, delete), billed to the account too.
    pub event_source: Usage,
    pub postmark_requests: std::collections::BTreeMap<String, u64>,
    pub messages_accepted: u64,
    pub statuses: std::collections::BTreeMap<String, usize>,
    pub failed_items: usize,
}

const TOKEN: &str = "load-sender-token";

/// An in-process simulator (no SMTP, no webhooks) with one server of `token` and the load runs' sender
/// domain.
pub(crate) async fn start_simulator(token: &str) -> Simulator {
    let sim = Simulator::start(SimOptions {
        smtp_addr: None,
        ..SimOptions::for_tests()
    })
    .await
    .expect("the simulator starts");
    sim.add_server(
        ServerConfig::new(token)
            .sender_domain(messages::SENDER_DOMAIN)
            .webhooks_enabled(false),
    );
    sim
}

/// Creates the tracking key's secret under `prefix`; answers its name.
pub(crate) async fn create_tracking_key(
    secrets: &aws_sdk_secretsmanager::Client,
    prefix: &str,
) -> String {
    let name = format!("{prefix}/tracking-key");
    secrets
        .create_secret()
        .name(&name)
        .secret_string("load-tracking-key")
        .send()
        .await
        .expect("the tracking key");
    name
}

/// Stores the load runs' API email server (item and secret) with `token`.
pub(crate) async fn store_server(
    secrets: &aws_sdk_secretsmanager::Client,
    table: &Table,
    prefix: &str,
    token: &str,
) -> EmailServer {
    let mut server = EmailServer::api(
        ServerId::parse("load").expect("a valid server id"),
        "Load",
        Utc::now(),
    );
    let credentials = ServerCredentials {
        api_token: Some(SecretString::from(token.to_owned())),
        smtp_username: None,
        smtp_password: None,
    };
    let version = ServerSecrets::new(secrets.clone(), prefix.to_owned())
        .create(&server.id, &credentials)
        .await
        .expect("the server's secret");
    server.credentials = credentials.hints(version);
    assert!(
        table.create_server(&server).await.expect("the server"),
        "a new server"
    );
    server
}

async fn sim_counters(api_url: &str) -> (std::collections::BTreeMap<String, u64>, u64) {
    let v: Value = async {
        reqwest::get(format!("{}/_sim/counters", api_url.trim_end_matches('/')))
            .await
            .ok()?
            .json()
            .await
            .ok()
    }
    .await
    .unwrap_or(Value::Null);
    let requests = v["requests"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    (requests, v["messages_accepted"].as_u64().unwrap_or(0))
}

pub async fn run(load: &SenderLoad) -> SenderReport {
    let sdk = testkit::sdk_config().await;
    // The function's clients with the function's SDK settings.
    let clients = MeteredClients::new(&sender::sdk_config(&sdk));
    let source = MeteredClients::new(&sdk);
    let plain_sqs = aws_sdk_sqs::Client::new(&sdk);
    let table_name = testkit::unique("load-sender");
    store::schema::create_table(&clients.dynamodb, &table_name)
        .await
        .expect("create the table");
    let queues =
        store::sqs::create_queue_with_dlq(&plain_sqs, &testkit::unique("load-send"), 3, 900)
            .await
            .expect("create the queues");
    let prefix = testkit::unique("load/sender");
    let tracking_secret = create_tracking_key(&clients.secrets, &prefix).await;

    let (_sim, api_url, token) = match &load.simulator {
        Some((url, token)) => (None, url.clone(), token.clone()),
        None => {
            let sim = start_simulator(TOKEN).await;
            let url = sim.api_url();
            (Some(sim), url, TOKEN.to_owned())
        }
    };

    let table = Table::new(clients.dynamodb.clone(), table_name.clone());
    store_server(&clients.secrets, &table, &prefix, &token).await;

    let app = sender::App::with_clients(
        clients.dynamodb.clone(),
        clients.secrets.clone(),
        plain_sqs.clone(),
        sender::Config {
            table_name: table_name.clone(),
            secrets_prefix: prefix.clone(),
            tracking_key_secret: tracking_secret,
            tracking_base_url: "https://track.example.com".into(),
            postmark_api_url: api_url.parse().expect("the simulator's URL"),
            smtp_extra_ca_pem: None,
            claim_lease: Duration::from_secs(900),
            secrets_ttl: Duration::from_secs(300),
            servers_ttl: Duration::from_secs(60),
            postmark_timeout: Duration::from_secs(30),
            smtp_connections: 2,
            search_settle: Duration::from_secs(120),
            deadline_margin: Duration::from_secs(10),
            backoff: sender::Backoff::default(),
            breaker: sender::BreakerPolicy::default(),
            queue_url: None,
        },
    )
    .expect("the sender's app");

    let bodies: Vec<String> = (0..load.jobs)
        .map(|i| messages::job(i).to_string())
        .collect();
    let refused = store::sqs::send_bodies(&plain_sqs, &queues.url, &bodies)
        .await
        .expect("enqueue");
    assert_eq!(refused, 0, "SQS refused jobs");

    // The poller hands each event over a channel to the function, which runs as its binary runs it: on a
    // current-thread runtime of its own (here on a thread of its own).
    type Reply = tokio::sync::oneshot::Sender<SqsBatchResponse>;
    let (to_handler, mut events) = tokio::sync::mpsc::unbounded_channel::<(SqsEvent, Reply)>();
    let invoke: InvokeFn = Arc::new(move |event: Value| {
        let to_handler = to_handler.clone();
        Box::pin(async move {
            let event: SqsEvent =
                serde_json::from_value(event).map_err(|e| format!("not an SQS event: {e}"))?;
            let (reply, answer) = tokio::sync::oneshot::channel();
            to_handler
                .send((event, reply))
                .map_err(|_| "the handler stopped".to_owned())?;
            let answer = answer.await.map_err(|_| "the handler stopped".to_owned())?;
            serde_json::to_value(answer).map_err(|e| e.to_string())
        })
    });
    let poller = Poller::in_process(
        source.sqs.clone(),
        PollerConfig {
            queue_url: queues.url.clone(),
            queue_arn: queues.arn.clone(),
            region: "us-east-1".into(),
            invoke_url: String::new(),
            batch_size: load.batch_size,
            window: load.window,
        },
        invoke,
    );

    let (requests_before, accepted_before) = sim_counters(&api_url).await;
    clients.meter.reset();
    source.meter.reset();
    let cpu_before = messages::cpu_seconds();
    let started = Instant::now();
    let handler_thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("the function's runtime");
        runtime.block_on(async move {
            let (mut handler, mut handler_cpu) = (Duration::ZERO, 0.0);
            while let Some((event, reply)) = events.recv().await {
                let (t, cpu) = (Instant::now(), messages::cpu_seconds());
                let answer = sender::handle(&app, event).await;
                handler += t.elapsed();
                handler_cpu += messages::cpu_seconds() - cpu;
                let _ = reply.send(answer);
            }
            (handler, handler_cpu)
        })
    });
    let draining = async move {
        let mut batches = 0;
        let mut failed_items = 0;
        while let Some(report) = poller
            .poll_once(Duration::from_secs(2))
            .await
            .expect("the queue answers")
        {
            batches += 1;
            failed_items += report.failed;
            if let Some(e) = report.invoke_error {
                eprintln!("batch failed: {e}");
            }
        }
        (batches, failed_items)
    };
    let (batches, failed_items) = draining.await;
    let (handler, handler_cpu_seconds) = handler_thread.join().expect("the function's thread");
    // The last poll waited on an empty queue; that wait is not work.
    let elapsed = started.elapsed().saturating_sub(Duration::from_secs(2));
    let cpu_seconds = messages::cpu_seconds() - cpu_before;
    let function = clients.meter.usage();
    let event_source = source.meter.usage();
    let (requests_after, accepted_after) = sim_counters(&api_url).await;
    let postmark_requests = requests_after
        .into_iter()
        .map(|(k, v)| {
            let before = requests_before.get(&k).copied().unwrap_or(0);
            (k, v - before)
        })
        .filter(|(_, v)| *v > 0)
        .collect();

    let plain_table = Table::new(aws_sdk_dynamodb::Client::new(&sdk), table_name);
    let ids: Vec<String> = (0..load.jobs).map(messages::job_id).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut statuses = std::collections::BTreeMap::new();
    let jobs = plain_table.jobs(&ids).await.expect("read the jobs");
    for job in &jobs {
        let status = job.status.map_or("unknown", JobStatus::as_str);
        *statuses.entry(status.to_owned()).or_default() += 1;
    }
    let missing = load.jobs - jobs.len();
    if missing > 0 {
        statuses.insert("missing".into(), missing);
    }
    SenderReport {
        jobs: load.jobs,
        batches,
        elapsed,
        handler,
        handler_cpu_seconds,
        cpu_seconds,
        function,
        event_source,
        postmark_requests,
        messages_accepted: accepted_after - accepted_before,
        statuses,
        failed_items,
    }
}
