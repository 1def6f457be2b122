//! Plays the DynamoDB stream's event source mapping for the stream function on the local stack.

use std::time::Duration;

use clap::Parser;
use local_stack::stream_poller::{StreamPoller, StreamPollerConfig, latest_stream_arn};

/// Reads the table's stream from its oldest record and invokes the stream function through the Lambda
/// invoke API (e.g. `cargo lambda watch`) with batches of records, handing a failed batch over again whole
/// until it succeeds, as the deployed event source mapping does.
#[derive(Parser)]
struct Args {
    #[arg(long, env = "TABLE_NAME")]
    table_name: String,
    #[arg(
        long,
        default_value = "http://127.0.0.1:9000/2015-03-31/functions/stream/invocations"
    )]
    invoke_url: String,
    /// Largest batch handed to one invocation (the template's BatchSize).
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// How long a batch keeps filling after its first record, in milliseconds (the template's batching
    /// window).
    #[arg(long, default_value_t = 1000)]
    window_ms: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    local_stack::init_tracing();
    let args = Args::parse();
    let sdk = store::aws::load_config().await;
    let stream_arn =
        latest_stream_arn(&aws_sdk_dynamodb::Client::new(&sdk), &args.table_name).await?;
    let region = local_stack::region_of(&sdk);
    let poller = StreamPoller::new(
        aws_sdk_dynamodbstreams::Client::new(&sdk),
        StreamPollerConfig {
            stream_arn,
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
