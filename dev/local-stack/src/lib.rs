//! The local stack's AWS side: the same table, queues and secrets the deployment has, created on the AWS
//! emulator from the same definitions (`store::schema`, `store::sqs`), and a poller that plays SQS's event
//! source mapping for the sender function (batch size, batching window, partial batch failures; the
//! queue's redrive policy moves a message that keeps failing to the dead-letter queue), and a poller that
//! plays the DynamoDB stream's event source mapping for the stream function.

pub mod bootstrap;
mod invoke;
pub mod poller;
pub mod stream_poller;

/// The region the SDK is set up for, as event records name it.
pub fn region_of(sdk: &aws_config::SdkConfig) -> String {
    sdk.region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into())
}

/// The local stack's binaries log at `info` unless `RUST_LOG` says otherwise.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}
