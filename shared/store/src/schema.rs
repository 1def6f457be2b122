//! The single DynamoDB table, defined once. Local bootstrap and tests create the table from
//! [`TABLE`]; `template.yaml` declares the same keys, index and TTL, and a test compares the two.
//!
//! # Items and the access patterns they serve
//!
//! | item | `pk` | `sk` | `gsi1pk` / `gsi1sk` | served access pattern |
//! |---|---|---|---|---|
//! | email server | `SERVERS` | `SERVER#{id}` | | list servers; read one; optimistic update on `version` |
//! | subscriber | `SUB#{email}` | `PROFILE` | `SUPPRESSED` / `{reason}#{email}` while suppressed (sparse) | status and counters of an address; batched standing read before sending; suppression list, filtered by reason |
//! | activity entry | `SUB#{email}` | `ACT#{timestamp}#{event}` | | activity log of an address, newest first, paginated; an event seen once (the entry of an event whose key fixes its time is its dedup record) |
//! | job / message state | `JOB#{job id}` | `JOB` | `JOBS#{outcome}` / `{timestamp}#{job id}` for rejected and failed jobs (sparse) | claim before sending (lease), outcome by id, message state for webhook events, rejected and failed jobs listed |
//! | server breaker | `BREAKER#{server id}` | `BREAKER` | | consecutive failed Postmark calls of a server, its pause and probe slot, shared by concurrent senders |
//! | message alias | `MSG#{Postmark MessageID}` | `MSG` | | from a webhook's MessageID to its job when the metadata is missing |
//! | counter shard | `STATS#{broadcast\|sequence}#{id}` | `SHARD#{n}` | | per-campaign counters, spread over shards so no item takes a whole storm |
//! | link counter shard | `STATS#{kind}#{id}` | `LINK#{link hash}#{n}` | | clicks per link |
//! | event record | `EVT#{dedup key}` | `EVT` | | a webhook event seen once, when its time is the time of arrival (expires) |
//! | idempotency / engagement marker | `ENG#{message}#{kind}` | `{source}` | | one human open or click counted once across sources |
//!
//! Timestamps in sort keys are RFC 3339 UTC with fixed width, so that text order is time order.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};

use crate::error::{StoreError, classify};

/// Partition key attribute.
pub const PK: &str = "pk";
/// Sort key attribute.
pub const SK: &str = "sk";
/// The one global secondary index.
pub const GSI1: &str = "gsi1";
pub const GSI1_PK: &str = "gsi1pk";
pub const GSI1_SK: &str = "gsi1sk";
/// Epoch seconds after which DynamoDB deletes the item (dedup records, leases).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// A key of the table or of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDef {
    pub partition: &'static str,
    pub sort: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexDef {
    pub name: &'static str,
    pub key: KeyDef,
    /// Every index projects all attributes.
    pub projection_all: bool,
}

/// The whole table definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableDef {
    pub key: KeyDef,
    pub indexes: &'static [IndexDef],
    pub ttl_attribute: &'static str,
    /// On-demand capacity: a broadcast's webhook storm is bursty, provisioned capacity would throttle it.
    pub on_demand: bool,
    /// The table's stream carries new and old images: the stream function counts events and publishes
    /// the feed from them.
    pub stream_new_and_old_images: bool,
}

pub const TABLE: TableDef = TableDef {
    key: KeyDef {
        partition: PK,
        sort: SK,
    },
    indexes: &[IndexDef {
        name: GSI1,
        key: KeyDef {
            partition: GSI1_PK,
            sort: GSI1_SK,
        },
        projection_all: true,
    }],
    ttl_attribute: TTL_ATTRIBUTE,
    on_demand: true,
    stream_new_and_old_images: true,
};

impl TableDef {
    /// Every attribute named in a key, each once: all are strings.
    pub fn key_attributes(&self) -> Vec<&'static str> {
        let mut names = vec![self.key.partition, self.key.sort];
        for index in self.indexes {
            for name in [index.key.partition, index.key.sort] {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    }
}

fn key_schema(key: KeyDef) -> Result<Vec<KeySchemaElement>, StoreError> {
    Ok(vec![
        KeySchemaElement::builder()
            .attribute_name(key.partition)
            .key_type(KeyType::Hash)
            .build()
            .map_err(StoreError::build)?,
        KeySchemaElement::builder()
            .attribute_name(key.sort)
            .key_type(KeyType::Range)
            .build()
            .map_err(StoreError::build)?,
    ])
}

/// Creates the table (and its TTL setting) from [`TABLE`] and waits until it is active.
pub async fn create_table(client: &Client, name: &str) -> Result<(), StoreError> {
    let def = TABLE;
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(if def.on_demand {
            BillingMode::PayPerRequest
        } else {
            BillingMode::Provisioned
        })
        .set_key_schema(Some(key_schema(def.key)?));
    if def.stream_new_and_old_images {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(StoreError::build)?,
        );
    }
    for attr in def.key_attributes() {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attr)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(StoreError::build)?,
        );
    }
    for index in def.indexes {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .set_key_schema(Some(key_schema(index.key)?))
                .projection(
                    Projection::builder()
                        .projection_type(if index.projection_all {
                            ProjectionType::All
                        } else {
                            ProjectionType::KeysOnly
                        })
                        .build(),
                )
                .build()
                .map_err(StoreError::build)?,
        );
    }
    request.send().await.map_err(classify)?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(def.ttl_attribute)
                .build()
                .map_err(StoreError::build)?,
        )
        .send()
        .await
        .map_err(classify)?;
    Ok(())
}

/// Deletes a table (tests and the local stack clean up with it).
pub async fn delete_table(client: &Client, name: &str) -> Result<(), StoreError> {
    client
        .delete_table()
        .table_name(name)
        .send()
        .await
        .map_err(classify)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_attribute_is_declared_once() {
        assert_eq!(
            TABLE.key_attributes(),
            vec![PK, SK, GSI1_PK, GSI1_SK],
            "the table's and the index's keys"
        );
    }
}
