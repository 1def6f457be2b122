//! The config API over plain HTTP on this machine, configured like the Lambda function (environment
//! variables, `AWS_ENDPOINT_URL` for a local AWS emulator).
//!
//! `--bootstrap` first creates what the deployment template would: the table, the admin key secret (from
//! `ADMIN_KEY`) and the webhook password secret, each only if missing.

use std::net::SocketAddr;
use std::sync::Arc;

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use clap::Parser;
use config_api::{App, Config};

#[derive(Parser)]
#[command(about = "Serve the config API locally")]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Create the table and the secrets first, where missing.
    #[arg(long)]
    bootstrap: bool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn ensure_secret(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: &str,
) -> Result<(), BoxError> {
    let created = client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .and_then(|s| s.code())
                .is_some_and(|c| c == "ResourceExistsException") =>
        {
            Ok(())
        }
        Err(e) => Err(Box::new(e)),
    }
}

async fn bootstrap(config: &Config, sdk: &aws_config::SdkConfig) -> Result<(), BoxError> {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let exists = dynamodb
        .describe_table()
        .table_name(&config.table_name)
        .send()
        .await
        .is_ok();
    if !exists {
        store::schema::create_table(&dynamodb, &config.table_name).await?;
    }
    let secrets = aws_sdk_secretsmanager::Client::new(sdk);
    let admin_key = std::env::var("ADMIN_KEY")
        .map_err(|_| "--bootstrap needs the admin key to set in ADMIN_KEY")?;
    ensure_secret(&secrets, &config.admin_key_secret, admin_key.trim()).await?;
    let password: String = {
        use rand::RngExt;
        rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(40)
            .map(char::from)
            .collect()
    };
    ensure_secret(&secrets, &config.webhook_password_secret, &password).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = Config::from_env()?;
    let sdk = store::aws::load_config().await;
    if args.bootstrap {
        bootstrap(&config, &sdk).await?;
    }
    let app = Arc::new(App::new(config, &sdk));
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("config API listening on http://{}", listener.local_addr()?);
    config_api::local::serve(app, listener).await?;
    Ok(())
}
