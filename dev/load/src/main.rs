use clap::{Parser, Subcommand};
use load::webhook_load::{WebhookLoad, run};

/// Load runs against the AWS emulator (MOTO_ENDPOINT, or one started for the run) and the Postmark
/// simulator, reporting throughput, latency, AWS requests and capacity units, and hot items.
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
    },
}

#[tokio::main]
async fn main() {
    match Args::parse().run {
        Run::Webhook {
            events,
            concurrency,
        } => {
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
                "  latency      p50 {:.1} ms, p99 {:.1} ms",
                r.p50.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3
            );
            println!(
                "  DynamoDB     {:.2} requests/event, {:.2} WCU/event, {:.2} RCU/event",
                r.usage.requests_of("DynamoDB") as f64 / n,
                r.usage.write_units / n,
                r.usage.read_units / n
            );
            for (op, count) in &r.usage.requests {
                println!("    {op:<40} {count}");
            }
            if let Some((item, writes)) = r.usage.hottest_item() {
                println!("  hottest item {writes} writes: {item}");
            }
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
    }
}
