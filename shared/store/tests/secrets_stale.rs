//! The secret cache when Secrets Manager fails: the value fetched before is served for a bounded time
//! past its TTL, then the error. Secrets Manager is the emulator behind a TCP relay that the test shuts
//! down after the first fetch (from then on, connections are refused).

use std::time::Duration;

use secrecy::ExposeSecret;
use store::SecretCache;
use testkit::{Aws, unique};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Forwards loopback connections to the emulator until aborted; then its port is closed.
struct Relay {
    endpoint: String,
    task: JoinHandle<()>,
}

impl Relay {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = testkit::endpoint().trim_start_matches("http://").to_owned();
        let task = tokio::spawn(async move {
            let mut relays = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                relays.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { endpoint, task }
    }

    /// Closes the port and every relayed connection.
    async fn shut(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn secrets_client_through(relay: &Relay) -> aws_sdk_secretsmanager::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&relay.endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    aws_sdk_secretsmanager::Client::new(&config)
}

#[tokio::test]
async fn a_secret_fetched_before_is_served_while_secrets_manager_is_unreachable_then_the_error() {
    let aws = Aws::new().await;
    let name = testkit::secret(&aws, "test/stale", "the-value").await;
    let relay = Relay::start().await;
    let client = secrets_client_through(&relay).await;
    let ttl = Duration::from_millis(100);
    let tolerant = SecretCache::new(client.clone(), ttl).with_stale_for(Duration::from_secs(3600));
    let bounded = SecretCache::new(client.clone(), ttl).with_stale_for(Duration::from_millis(1500));
    let strict = SecretCache::new(client, ttl).with_stale_for(Duration::ZERO);
    for cache in [&tolerant, &bounded, &strict] {
        assert_eq!(
            cache.current(&name).await.unwrap().value.expose_secret(),
            "the-value"
        );
    }

    relay.shut().await;
    tokio::time::sleep(ttl * 2).await;
    let within = bounded.current(&name).await;
    assert!(
        within.is_ok(),
        "within its bound the bounded cache serves: {within:?}"
    );
    for _ in 0..3 {
        let stale = tolerant
            .current(&name)
            .await
            .expect("the value fetched before");
        assert_eq!(stale.value.expose_secret(), "the-value");
    }
    let err = strict.current(&name).await.unwrap_err();
    assert!(err.is_transient(), "no tolerance: the error, {err:?}");

    tokio::time::sleep(Duration::from_secs(2)).await;
    let err = bounded.current(&name).await.unwrap_err();
    assert!(err.is_transient(), "past the bound: the error, {err:?}");
    assert!(
        tolerant.current(&name).await.is_ok(),
        "the tolerant cache is still within its bound"
    );
}

#[tokio::test]
async fn a_secret_never_fetched_is_an_error_when_secrets_manager_is_unreachable() {
    let relay = Relay::start().await;
    let client = secrets_client_through(&relay).await;
    relay.shut().await;
    let cache = SecretCache::new(client, Duration::from_secs(60));
    let err = cache.current(&unique("test/never")).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}
