//! The stream function: the table's DynamoDB stream, one batch at a time. Each batch's events move the
//! campaign counters exactly once (the deltas are written together with a marker of the batch), and every
//! outcome the platform cares about is published to the EventBridge feed, at least once.
//!
//! A batch that fails is retried whole by Lambda: the marker makes the counting a no-op the second time,
//! and the feed is published again (its events carry stable ids).

pub mod count;
pub mod feed;

use std::sync::Arc;

use store::feed::FeedPublisher;
use store::{StoreError, Table};

/// What the function reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// The EventBridge bus of the feed; without one, nothing is published.
    pub event_bus_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            table_name: std::env::var("TABLE_NAME")
                .map_err(|_| ConfigError::Missing("TABLE_NAME"))?,
            event_bus_name: std::env::var("EVENT_BUS_NAME")
                .ok()
                .filter(|b| !b.is_empty()),
        })
    }
}

/// Clients and configuration, built once per cold start.
#[derive(Clone, Debug)]
pub struct App {
    pub config: Arc<Config>,
    pub table: Table,
    /// Publishes the feed; `None` without a bus.
    pub feed: Option<FeedPublisher>,
}

impl App {
    /// The function's clients under the store's policies; the feed's publisher when a bus is configured.
    pub fn new(sdk: &aws_config::SdkConfig, config: Config) -> Self {
        let policy = store::aws::StorePolicy::default();
        if config.event_bus_name.is_none() {
            tracing::warn!("EVENT_BUS_NAME is not set: the feed is not published");
        }
        let feed = config.event_bus_name.as_ref().map(|bus| {
            let client = store::feed::eventbridge_client(sdk, &store::feed::publisher_policy());
            FeedPublisher::new(client, bus.as_str())
        });
        let app = Self::with_clients(store::aws::dynamodb_client(sdk, &policy), config);
        match feed {
            Some(publisher) => app.with_feed(publisher),
            None => app,
        }
    }

    /// With this DynamoDB client and no feed publisher (add one with [`App::with_feed`]).
    pub fn with_clients(dynamodb: aws_sdk_dynamodb::Client, config: Config) -> Self {
        Self {
            table: Table::new(dynamodb, config.table_name.clone()),
            config: Arc::new(config),
            feed: None,
        }
    }

    pub fn with_feed(mut self, publisher: FeedPublisher) -> Self {
        self.feed = Some(publisher);
        self
    }
}

/// Handles one batch of stream records (Lambda's DynamoDB stream event): counts, then publishes. An
/// error fails the batch, which Lambda retries whole.
pub async fn handle(app: &App, event: &serde_json::Value) -> Result<(), StoreError> {
    let records = store::stream::parse_event(event)?;
    count::count(app, &records).await?;
    feed::publish(app, &records).await?;
    Ok(())
}
