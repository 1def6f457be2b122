//! Creates the table, queues and secrets on the AWS emulator and prints them as environment variables.

use clap::Parser;
use local_stack::bootstrap::{Settings, bootstrap};

/// Creates (or finds) the local stack's table, send queue with dead-letter queue, secrets, and the feed's
/// bus routed to a queue on the AWS endpoint given by AWS_ENDPOINT_URL, and prints `export NAME=value`
/// lines for the functions.
#[derive(Parser)]
struct Args {
    /// Prefix of every resource name.
    #[arg(long, default_value = "local")]
    prefix: String,
    #[arg(
        long,
        env = "LOCAL_WEBHOOK_PASSWORD",
        default_value = "local-webhook-password"
    )]
    webhook_password: String,
    #[arg(long, env = "LOCAL_TRACKING_KEY", default_value = "local-tracking-key")]
    tracking_key: String,
    #[arg(long, env = "LOCAL_ADMIN_KEY", default_value = "local-admin-key")]
    admin_key: String,
    #[arg(long, default_value_t = 5)]
    max_receive: u32,
    #[arg(long, default_value_t = 10)]
    visibility_timeout: u32,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let sdk = store::aws::load_config().await;
    let r = bootstrap(
        &sdk,
        &Settings {
            prefix: args.prefix,
            webhook_password: args.webhook_password,
            tracking_key: args.tracking_key,
            admin_key: args.admin_key,
            max_receive: args.max_receive,
            visibility_timeout_secs: args.visibility_timeout,
        },
    )
    .await?;
    for (k, v) in [
        ("TABLE_NAME", &r.table_name),
        ("QUEUE_URL", &r.queue_url),
        ("QUEUE_ARN", &r.queue_arn),
        ("DLQ_URL", &r.dlq_url),
        ("SECRETS_PREFIX", &r.secrets_prefix),
        ("WEBHOOK_PASSWORD_SECRET", &r.webhook_password_secret),
        ("TRACKING_KEY_SECRET", &r.tracking_key_secret),
        ("ADMIN_KEY_SECRET", &r.admin_key_secret),
        ("EVENT_BUS_NAME", &r.event_bus_name),
        ("FEED_QUEUE_URL", &r.feed_queue_url),
    ] {
        println!("export {k}={v}");
    }
    Ok(())
}
