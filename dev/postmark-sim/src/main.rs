//! `postmark-sim`: runs the Postmark simulator for the local stack, the demo and load runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use postmark_sim::{
    ServerConfig, SimOptions, Simulator, WebhookConfig, WebhookLoss, WebhookOptions,
};

/// A local stand-in for Postmark (not Postmark): its email API (`/email`, `/email/batch`, `/server`,
/// message streams, suppressions, bounces, the Messages API with opens and clicks, the Webhooks
/// API), SMTP submission with STARTTLS and AUTH, and Postmark-shaped webhooks, plus a control API
/// under `/_sim/`.
///
/// Example: postmark-sim --server-token dev-token --sender-domain example.com
///   --webhook-url 'http://127.0.0.1:9000/wh/postmark?password=dev' --ca-pem-out /tmp/sim-ca.pem
///
/// Then send with `X-Postmark-Server-Token: dev-token` to http://127.0.0.1:8025/email, or over SMTP
/// to 127.0.0.1:2525 with STARTTLS (trusting the CA PEM) and dev-token as user name and password.
/// Sending to HardBounce@bounce-testing.postmarkapp.com bounces; anything at
/// spam-complaint.postmarkapp.com files a complaint; `POST /_sim/opens` and `/_sim/clicks` simulate
/// engagement.
#[derive(Debug, Parser)]
#[command(name = "postmark-sim", version, verbatim_doc_comment)]
struct Args {
    /// Address of the HTTP API (Postmark's API and /_sim/).
    #[arg(long, env = "POSTMARK_SIM_API_ADDR", default_value = "127.0.0.1:8025")]
    api_addr: SocketAddr,

    /// Address of the SMTP listener.
    #[arg(long, env = "POSTMARK_SIM_SMTP_ADDR", default_value = "127.0.0.1:2525")]
    smtp_addr: SocketAddr,

    /// Run without the SMTP listener.
    #[arg(long)]
    no_smtp: bool,

    /// Allow AUTH and MAIL before STARTTLS (refused by default).
    #[arg(long)]
    smtp_allow_plaintext: bool,

    /// Write the PEM of the CA that signs the SMTP certificate to this file (clients trust it).
    #[arg(long, env = "POSTMARK_SIM_CA_PEM_OUT")]
    ca_pem_out: Option<PathBuf>,

    /// Server API Token of the server configured at start (none configured when absent; add
    /// servers with POST /_sim/servers). Also the SMTP user name and password.
    #[arg(long, env = "POSTMARK_SIM_SERVER_TOKEN")]
    server_token: Option<String>,

    /// Name of that server.
    #[arg(long, default_value = "Local simulator")]
    server_name: String,

    /// A verified sender domain of that server (repeatable).
    #[arg(long = "sender-domain")]
    sender_domains: Vec<String>,

    /// A confirmed sender address of that server (repeatable).
    #[arg(long = "sender-address")]
    sender_addresses: Vec<String>,

    /// Webhook URL for every stream of that server (repeatable). A password may sit in the query
    /// (?password=...) or in the user-info (http://user:pass@host/..., sent as Basic credentials).
    #[arg(long = "webhook-url", env = "POSTMARK_SIM_WEBHOOK_URL")]
    webhook_urls: Vec<String>,

    /// Recipient (address, or @domain) that files a spam complaint after delivery (repeatable).
    #[arg(long = "spam-complaint-address")]
    spam_complaint_addresses: Vec<String>,

    /// Server-wide open tracking for that server.
    #[arg(long)]
    track_opens: bool,

    /// Post no webhook at all for that server (pure send loads).
    #[arg(long)]
    no_webhooks: bool,

    /// JSON file with an array of server configurations (the body of POST /_sim/servers).
    #[arg(long)]
    servers_file: Option<PathBuf>,

    /// Webhook posts in flight at once.
    #[arg(long, default_value_t = 32)]
    webhook_workers: usize,

    /// Seconds to wait for a webhook answer before it counts as a timeout (and is retried).
    #[arg(long, default_value_t = 10.0)]
    webhook_timeout_secs: f64,

    /// Multiplies Postmark's retry schedule (1, 5, 15, 1, 5, 10, 10, 10, 15 minutes): 1 is
    /// Postmark's pace, 0.001 retries within a second, 0 at once.
    #[arg(long, default_value_t = 1.0)]
    webhook_delay_scale: f64,

    /// Accepted messages (and webhook records) kept for inspection; older ones are forgotten.
    #[arg(long, default_value_t = 200_000)]
    max_stored: usize,

    /// Milliseconds after acceptance before a message appears in the Messages API (search and
    /// details), as Postmark's search is eventually consistent.
    #[arg(long, env = "POSTMARK_SIM_SEARCH_DELAY_MS", default_value_t = 0)]
    search_delay_ms: u64,

    /// Share (0.0 to 1.0) of webhook posts lost for good, as if every retry had failed; the lost
    /// ones are listed at GET /_sim/webhook_loss.
    #[arg(long, env = "POSTMARK_SIM_WEBHOOK_LOSS_SHARE", default_value_t = 0.0)]
    webhook_loss_share: f64,

    /// Seed of the generator that picks the lost webhook posts.
    #[arg(long, default_value_t = 0)]
    webhook_loss_seed: u64,

    /// Lose only webhooks of messages with this tag.
    #[arg(long)]
    webhook_loss_tag: Option<String>,

    /// Lose only webhooks of this stream.
    #[arg(long)]
    webhook_loss_stream: Option<String>,

    /// Host name used in SMTP greetings and the certificate.
    #[arg(long, default_value = "localhost")]
    hostname: String,
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("invalid option: {0}")]
    Invalid(String),
    #[error("could not read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a JSON array of server configurations")]
    Servers {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("could not write the CA certificate to {path}")]
    WriteCa {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the simulator did not start")]
    Start(#[from] postmark_sim::StartError),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("postmark-sim: {text}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), CliError> {
    if !(args.webhook_timeout_secs.is_finite() && args.webhook_timeout_secs > 0.0) {
        return Err(CliError::Invalid(
            "--webhook-timeout-secs must be positive".into(),
        ));
    }
    if !(args.webhook_delay_scale.is_finite() && args.webhook_delay_scale >= 0.0) {
        return Err(CliError::Invalid(
            "--webhook-delay-scale must be 0 or more".into(),
        ));
    }
    if !(0.0..=1.0).contains(&args.webhook_loss_share) {
        return Err(CliError::Invalid(
            "--webhook-loss-share must be between 0 and 1".into(),
        ));
    }
    let options = SimOptions {
        api_addr: args.api_addr,
        smtp_addr: (!args.no_smtp).then_some(args.smtp_addr),
        smtp_require_tls: !args.smtp_allow_plaintext,
        hostname: args.hostname.clone(),
        webhooks: WebhookOptions {
            workers: args.webhook_workers.max(1),
            timeout: Duration::from_secs_f64(args.webhook_timeout_secs),
            delay_scale: args.webhook_delay_scale,
            ..WebhookOptions::default()
        },
        max_stored: args.max_stored,
        search_delay: Duration::from_millis(args.search_delay_ms),
        webhook_loss: WebhookLoss {
            share: args.webhook_loss_share,
            seed: args.webhook_loss_seed,
            tag: args.webhook_loss_tag.clone(),
            stream: args.webhook_loss_stream.clone(),
        },
    };
    let sim = Simulator::start(options).await?;
    if let Some(path) = &args.ca_pem_out {
        std::fs::write(path, sim.ca_pem()).map_err(|source| CliError::WriteCa {
            path: path.clone(),
            source,
        })?;
    }
    if let Some(path) = &args.servers_file {
        let text = std::fs::read_to_string(path).map_err(|source| CliError::Read {
            path: path.clone(),
            source,
        })?;
        let servers: Vec<ServerConfig> =
            serde_json::from_str(&text).map_err(|source| CliError::Servers {
                path: path.clone(),
                source,
            })?;
        for server in servers {
            sim.add_server(server);
        }
    }
    if let Some(token) = args.server_token {
        let mut server = ServerConfig::new(token)
            .name(args.server_name)
            .track_opens(args.track_opens)
            .webhooks_enabled(!args.no_webhooks);
        server.sender_signatures.extend(args.sender_domains);
        server.sender_signatures.extend(args.sender_addresses);
        server.spam_complaint_addresses = args.spam_complaint_addresses;
        for url in args.webhook_urls {
            server = server.webhook(WebhookConfig::new(url));
        }
        let summary = sim.add_server(server);
        tracing::info!(server_id = summary.id, streams = ?summary.streams, "server configured");
    }
    tracing::info!(api = %sim.api_url(), smtp = ?sim.smtp_addr(), "Postmark simulator ready (a local stand-in, not Postmark)");
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("stopping");
    Ok(())
}
