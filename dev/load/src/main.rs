use std::path::PathBuf;

use clap::{Parser, Subcommand};
use load::cost::{self, PerUnit};
use load::webhook_load::{WebhookLoad, run};

/// Load runs against the AWS emulator (MOTO_ENDPOINT, or one started for the run) and the Postmark
/// simulator, reporting throughput, latency, AWS requests and capacity units, hot items and cost.
#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    run: Run,
}

#[derive(Subcommand)]
enum Run {
    /// Postmark webhook events through the webhook function's handler.
    Webhook {
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        /// Concurrent invocations.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// The function's memory (the template's default), for the cost model.
        #[arg(long, default_value_t = 256)]
        memory_mb: u32,
    },
    /// Webhook events (20% redelivered, shuffled with the seed) through the webhook function's handler
    /// against a table with seeded DynamoDB faults, retried as Postmark retries; then every campaign
    /// counter, subscriber standing and activity log is checked against the distinct events.
    WebhookFaults {
        /// Distinct events.
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Probability of a fault per DynamoDB request on the table.
        #[arg(long, default_value_t = 0.05)]
        fault_rate: f64,
        /// Postmark's attempts per event before it counts as lost.
        #[arg(long, default_value_t = 20)]
        attempts: usize,
        /// Give the webhook the SDK's plain client (default retries only) instead of the store's.
        #[arg(long)]
        plain_client: bool,
    },
    /// Send jobs through SQS, the queue poller and the sender's handler to the Postmark simulator.
    Sender {
        #[arg(long, default_value_t = 10_000)]
        jobs: usize,
        #[arg(long, default_value_t = 500)]
        batch_size: usize,
        /// Seconds the poller fills a batch (Lambda's batching window); long enough here that batches
        /// fill, since the emulator's SQS receives are slow (about 50 receives of 10 for a batch of 500,
        /// each slower as the queue is used: minutes, not seconds).
        #[arg(long, default_value_t = 600)]
        window_secs: u64,
        /// A running simulator's API URL; without it one is started in this process.
        #[arg(long, requires = "sim_token")]
        sim_url: Option<String>,
        /// A server token that simulator knows (with example.com as sender domain).
        #[arg(long)]
        sim_token: Option<String>,
        /// The function's memory (the template's), for the cost model.
        #[arg(long, default_value_t = 512)]
        memory_mb: u32,
        /// Also print one JSON line (`RESULT {...}`) for the comparison.
        #[arg(long)]
        json: bool,
    },
    /// Send jobs under faults (Postmark failing a fifth of the batch calls before and after acceptance,
    /// DynamoDB a twentieth of the table's requests, the sender killed mid-invocation, a tenth of the jobs
    /// enqueued twice); then per job the messages Postmark accepted against its final status.
    SenderFaults {
        #[arg(long, default_value_t = 1000)]
        jobs: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 50)]
        batch_size: usize,
        /// Invocations killed.
        #[arg(long, default_value_t = 5)]
        kills: usize,
        /// The sender's search_settle, in seconds.
        #[arg(long, default_value_t = 1)]
        search_settle_secs: u64,
        /// Stop polling after this long even if jobs are left.
        #[arg(long, default_value_t = 900)]
        time_limit_secs: u64,
        /// How long the simulator's search takes to show a message (a check that duplicates are seen).
        #[arg(long, default_value_t = 0)]
        search_delay_secs: u64,
    },
    /// Webhooks lost for good, recovered: a broadcast through the whole stack (sender, simulator, webhook,
    /// stream) with Postmark's tracking on, seeded bounces, complaints, opens and clicks, and a seeded
    /// share of the simulator's webhook posts lost; then one recovery run, and every campaign counter and
    /// expected suppression checked against the simulator's truth.
    Recover {
        #[arg(long, default_value_t = 2000)]
        jobs: usize,
        /// Share of the webhook posts lost for good.
        #[arg(long, default_value_t = 0.3)]
        drop: f64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Skip the recovery run (the counters must then come out short).
        #[arg(long)]
        no_recovery: bool,
    },
    /// The Postmark crate alone: the load messages in batches of 500, one call at a time.
    PostmarkCrate {
        #[arg(long, default_value_t = 10_000)]
        messages: usize,
        #[arg(long)]
        sim_url: String,
        #[arg(long)]
        sim_token: String,
    },
    /// Writes the load messages as a JSON array of Postmark messages (for other clients).
    Messages {
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Cold start of release binaries: spawn to first request for work on a local Runtime API.
    ColdStart {
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// The AWS endpoint the functions are given (nothing is called at start).
        #[arg(long, env = "MOTO_ENDPOINT", default_value = "http://127.0.0.1:9")]
        aws_endpoint: String,
        binaries: Vec<PathBuf>,
    },
}

#[tokio::main]
async fn main() {
    match Args::parse().run {
        Run::Webhook {
            events,
            concurrency,
            memory_mb,
        } => webhook(events, concurrency, memory_mb).await,
        Run::WebhookFaults {
            events,
            seed,
            concurrency,
            fault_rate,
            attempts,
            plain_client,
        } => {
            use load::webhook_faults::{Client, WebhookFaults};
            let report = load::webhook_faults::run(&WebhookFaults {
                concurrency,
                fault_rate,
                attempts,
                client: if plain_client {
                    Client::Plain
                } else {
                    Client::Store(store::aws::StorePolicy::default())
                },
                ..WebhookFaults::new(events, seed)
            })
            .await;
            report.print();
            if report.discrepancies() > 0 {
                std::process::exit(1);
            }
        }
        Run::Sender {
            jobs,
            batch_size,
            window_secs,
            sim_url,
            sim_token,
            memory_mb,
            json,
        } => {
            let window = std::time::Duration::from_secs(window_secs);
            sender(
                jobs,
                batch_size,
                window,
                sim_url.zip(sim_token),
                memory_mb,
                json,
            )
            .await
        }
        Run::SenderFaults {
            jobs,
            seed,
            batch_size,
            kills,
            search_settle_secs,
            time_limit_secs,
            search_delay_secs,
        } => {
            let mut run = load::sender_faults::SenderFaults::new(jobs, seed);
            run.batch_size = batch_size;
            run.kills = kills;
            run.search_settle = std::time::Duration::from_secs(search_settle_secs);
            run.time_limit = std::time::Duration::from_secs(time_limit_secs);
            run.search_delay = std::time::Duration::from_secs(search_delay_secs);
            sender_faults(&run).await
        }
        Run::Recover {
            jobs,
            drop,
            seed,
            no_recovery,
        } => {
            let report = load::recover_load::run(&load::recover_load::RecoverLoad {
                recover: !no_recovery,
                ..load::recover_load::RecoverLoad::new(jobs, drop, seed)
            })
            .await;
            report.print();
            if report.discrepancies() > 0 {
                std::process::exit(1);
            }
        }
        Run::PostmarkCrate {
            messages,
            sim_url,
            sim_token,
        } => {
            let r = load::client_load::run(&sim_url, &sim_token, messages).await;
            println!(
                "postmark crate: {} messages, {} accepted, {} calls, {:.2} s, {:.2} CPU s",
                r.messages, r.accepted, r.calls, r.seconds, r.cpu_seconds
            );
            println!("RESULT {}", serde_json::to_string(&r).unwrap_or_default());
            if r.accepted != r.messages {
                std::process::exit(1);
            }
        }
        Run::Messages { count, out } => {
            let emails: Vec<postmark::Email> = (0..count).map(load::messages::email).collect();
            let text = serde_json::to_string(&emails).unwrap_or_default();
            if let Err(e) = std::fs::write(&out, text) {
                eprintln!("cannot write {}: {e}", out.display());
                std::process::exit(1);
            }
        }
        Run::ColdStart {
            runs,
            aws_endpoint,
            binaries,
        } => {
            let mut failed = false;
            println!(
                "{:<40} {:>10} {:>11} {:>11}",
                "binary", "size MB", "median ms", "max ms"
            );
            for binary in binaries {
                let r = load::cold_start::measure(&binary, runs, &aws_endpoint).await;
                let ms = |d: Option<std::time::Duration>| {
                    d.map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64() * 1e3))
                };
                println!(
                    "{:<40} {:>10.2} {:>11} {:>11}   ({} runs)",
                    r.binary,
                    r.size_bytes as f64 / 1e6,
                    ms(r.median()),
                    ms(r.max()),
                    r.runs.len()
                );
                for f in &r.failures {
                    eprintln!("  {f}");
                    failed = true;
                }
            }
            if failed {
                std::process::exit(1);
            }
        }
    }
}

async fn webhook(events: usize, concurrency: usize, memory_mb: u32) {
    let r = run(&WebhookLoad {
        events,
        concurrency,
    })
    .await;
    let n = r.events as f64;
    println!(
        "webhook load: {} events ({} redelivered copies), {concurrency} concurrent",
        r.events, r.duplicates_sent
    );
    println!(
        "  outcome      accepted {}, duplicate {}, errors {}",
        r.accepted, r.duplicates_seen, r.errors
    );
    println!(
        "  throughput   {:.0} events/s ({:.1} s)",
        n / r.elapsed.as_secs_f64(),
        r.elapsed.as_secs_f64()
    );
    println!(
        "  latency      p50 {:.1} ms, p99 {:.1} ms, mean {:.1} ms",
        r.p50.as_secs_f64() * 1e3,
        r.p99.as_secs_f64() * 1e3,
        r.mean.as_secs_f64() * 1e3
    );
    let all = r.usage.merged(&r.stream_usage);
    for (what, u) in [
        ("webhook", &r.usage),
        ("stream", &r.stream_usage),
        ("both", &all),
    ] {
        println!(
            "  DynamoDB     {what:<8} {:.3} requests/event, {:.3} WCU/event, {:.3} RCU/event",
            u.requests_of("DynamoDB") as f64 / n,
            u.write_units / n,
            u.read_units / n
        );
    }
    for (op, count) in &all.requests {
        println!("    {op:<40} {count}");
    }
    if let Some((pk, writes, share)) = all.busiest_partition() {
        println!(
            "  busiest key  {:.3}% of writes ({writes}): {pk}",
            share * 100.0
        );
    }
    println!(
        "  stream       {} batches, {:.0} records a batch, slowest {:.2} s; counters complete {:.2} s after the last answer",
        r.stream_batches,
        r.stream_mean_batch,
        r.stream_slowest_batch.as_secs_f64(),
        r.stats_lag.as_secs_f64()
    );
    let stream_gb_seconds =
        r.stream_batches as f64 * r.stream_slowest_batch.as_secs_f64() * f64::from(memory_mb)
            / 1024.0;
    cost::print(
        "per million events, at the measured mean latency (stream batches at their slowest)",
        &PerUnit {
            write_units: all.write_units / n,
            read_units: all.read_units / n,
            sqs_requests: 0.0,
            secrets_calls: all.requests_of("Secrets Manager") as f64 / n,
            lambda_invocations: 1.0 + r.stream_batches as f64 / n,
            lambda_gb_seconds: r.mean.as_secs_f64() * f64::from(memory_mb) / 1024.0
                + stream_gb_seconds / n,
            http_api_requests: 1.0,
        },
    );
    let mut all_match = true;
    for (name, want) in &r.expected {
        let got = r.counters.get(name).copied().unwrap_or_default();
        all_match &= got == *want;
        println!("  counter      {name:<16} {got:>6} (expected {want})");
    }
    if !all_match || r.errors > 0 || r.duplicates_seen < r.duplicates_sent {
        eprintln!("the counts did not come out right");
        std::process::exit(1);
    }
}

async fn sender(
    jobs: usize,
    batch_size: usize,
    window: std::time::Duration,
    simulator: Option<(String, String)>,
    memory_mb: u32,
    json: bool,
) {
    let r = load::sender_load::run(&load::sender_load::SenderLoad {
        jobs,
        batch_size,
        window,
        simulator,
    })
    .await;
    let n = r.jobs as f64;
    println!(
        "sender load: {} jobs in {} batches of up to {batch_size}",
        r.jobs, r.batches
    );
    println!("  outcome      job statuses {:?}", r.statuses);
    println!(
        "  throughput   {:.0} emails/s ({:.1} s; {:.1} s in the handler; CPU s per 1,000 emails: {:.3} in the handler, {:.3} for the whole drain with the poller)",
        n / r.elapsed.as_secs_f64(),
        r.elapsed.as_secs_f64(),
        r.handler.as_secs_f64(),
        r.handler_cpu_seconds / n * 1000.0,
        r.cpu_seconds / n * 1000.0
    );
    let want_calls = jobs.div_ceil(postmark::MAX_BATCH_SIZE) as u64;
    let batch_calls = r
        .postmark_requests
        .get("POST /email/batch")
        .copied()
        .unwrap_or(0);
    println!(
        "  Postmark     {:?}, {} messages accepted; batch calls {batch_calls}, ceil(N/500) = {want_calls}",
        r.postmark_requests, r.messages_accepted
    );
    println!(
        "  function     {:.3} DynamoDB requests/email, {:.2} WCU/email, {:.2} RCU/email, {:.4} Secrets Manager calls/email",
        r.function.requests_of("DynamoDB") as f64 / n,
        r.function.write_units / n,
        r.function.read_units / n,
        r.function.requests_of("Secrets Manager") as f64 / n
    );
    for (op, count) in &r.function.requests {
        println!("    {op:<40} {count}");
    }
    let enqueue = jobs.div_ceil(10) as f64;
    let source_sqs = r.event_source.requests_of("SQS") as f64;
    println!(
        "  SQS          {:.3} requests/email: producer SendMessageBatch {enqueue}, event source {source_sqs}",
        (enqueue + source_sqs) / n
    );
    for (op, count) in &r.event_source.requests {
        println!("    {op:<40} {count}");
    }
    let gb_seconds = r.handler.as_secs_f64() * f64::from(memory_mb) / 1024.0 / n;
    cost::print(
        "per million emails, at the measured handler time",
        &PerUnit {
            write_units: r.function.write_units / n,
            read_units: r.function.read_units / n,
            sqs_requests: (enqueue + source_sqs) / n,
            secrets_calls: r.function.requests_of("Secrets Manager") as f64 / n,
            lambda_invocations: r.batches as f64 / n,
            lambda_gb_seconds: gb_seconds,
            http_api_requests: 0.0,
        },
    );
    if json {
        println!(
            "RESULT {}",
            serde_json::json!({
                "client": "sender",
                "messages": jobs,
                "accepted": r.statuses.get("sent").copied().unwrap_or(0),
                "calls": batch_calls,
                "seconds": r.elapsed.as_secs_f64(),
                "cpu_seconds": r.handler_cpu_seconds,
                "drain_cpu_seconds": r.cpu_seconds,
            })
        );
    }
    let sent = r.statuses.get("sent").copied().unwrap_or(0);
    if sent != jobs || batch_calls != want_calls || r.failed_items > 0 {
        eprintln!("not every job ended sent in ceil(N/500) batch calls");
        std::process::exit(1);
    }
}

async fn sender_faults(run: &load::sender_faults::SenderFaults) {
    let r = load::sender_faults::run(run).await;
    println!(
        "sender faults: {} jobs ({} SQS messages), seed {}, {} invocations ({} failed), {:.1} s{}",
        r.jobs,
        r.messages_enqueued,
        run.seed,
        r.invocations,
        r.failed_invocations,
        r.elapsed.as_secs_f64(),
        if r.finished {
            ""
        } else {
            ", stopped at the time limit"
        }
    );
    println!("  statuses     {:?}", r.statuses);
    println!(
        "  Postmark     {:?}, {} messages accepted",
        r.postmark_requests, r.messages_accepted
    );
    println!("  Postmark     faults fired {:?}", r.postmark_faults);
    println!(
        "  DynamoDB     {} requests on the table, faults fired {:?}",
        r.dynamo_requests, r.dynamo_fired
    );
    for k in &r.kills {
        println!(
            "  kill         invocation {} ({} records) {:?}: after {} ms, {} accepted in it, {} accepted but not recorded",
            k.invocation,
            k.records,
            k.mode,
            k.elapsed_ms(),
            k.accepted,
            k.accepted_unrecorded
                .map_or("?".to_owned(), |n| n.to_string())
        );
    }
    println!(
        "  counters     {:?} (rejected {}, dead-lettered {}, waiting {})",
        r.counters, r.rejected, r.dead_lettered, r.waiting
    );
    for w in r.wrong.iter().take(20) {
        println!("  wrong        {w}");
    }
    println!("{}", r.last_line());
    if !r.ok() {
        std::process::exit(1);
    }
}
