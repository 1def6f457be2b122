//! The AWS side of the integration: the single DynamoDB table (schema in [`schema`]), a cached Secrets
//! Manager reader ([`secrets`]) and SQS helpers ([`sqs`]). Adapters take SDK clients built by the caller,
//! once per cold start, so that tests aim them at a local emulator through `AWS_ENDPOINT_URL`.

pub mod activity;
pub mod aws;
pub mod breaker;
pub mod error;
pub mod events;
pub mod feed;
pub mod jobs;
pub mod recovery;
pub mod schema;
pub mod secrets;
pub mod servers;
pub mod sqs;
pub mod stats;
pub mod stream;
pub mod subscribers;
pub mod table;
pub mod tally;

pub use error::StoreError;
pub use secrets::{SecretCache, SecretValue};
pub use table::{Page, Table};
