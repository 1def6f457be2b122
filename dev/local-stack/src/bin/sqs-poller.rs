//! Plays SQS's event source mapping for the sender function on the local stack.

use std::time::Duration;

use clap::Parser;
use local_stack::poller::{Poller, PollerConfig};

/// Receives send jobs from the queue in batches and invokes the sender through the Lambda invoke API
/// (e.g. `cargo lambda watch`), deleting what succeeded and leaving reported failures to SQS's redrive.
#[derive(Parser)]
struct Args {
    #[arg(long, env = "QUEUE_URL")]
    queue_url: String,
    #[arg(long, env = "QUEUE_ARN")]
    queue_arn: String,
    #[arg(
        long,
        default_value = "http://127.0.0.1:9000/2015-03-31/functions/sender/invocations"
    )]
    invoke_url: String,
    /// Largest batch handed to one invocation (SQS allows up to 10,000 with a batching window).
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// How long a batch keeps filling after its first message, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    window_ms: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    local_stack::init_tracing();
    let args = Args::parse();
    let sdk = store::aws::load_config().await;
    let region = local_stack::region_of(&sdk);
    let poller = Poller::new(
        aws_sdk_sqs::Client::new(&sdk),
        PollerConfig {
            queue_url: args.queue_url,
            queue_arn: args.queue_arn,
            region,
            invoke_url: args.invoke_url,
            batch_size: args.batch_size.clamp(1, 10_000),
            window: Duration::from_millis(args.window_ms),
        },
    );
    tokio::select! {
        r = poller.run() => r?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
