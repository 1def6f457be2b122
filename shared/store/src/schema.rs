//! The single DynamoDB table, defined once. Local bootstrap and tests create the table from
//! [`TABLE`]; `template.yaml` declares the same keys, index and TTL, and a test compares the two.
//!
//! # Items and the access patterns they serve
//!
//! Every key is built by a function of [`keys`], and nowhere else; the test of this module holds each
//! row below to the functions it names (a `{placeholder}` stands for any text). A new item is a function
//! in [`keys`] and a row here.
//!
//! | item | `pk` | `sk` | `gsi1pk` / `gsi1sk` | keys | served access pattern |
//! |---|---|---|---|---|---|
//! | email server | `SERVERS` | `SERVER#{id}` | | [`keys::server`] | list servers; read one; optimistic update on `version` |
//! | subscriber | `SUB#{email}` | `PROFILE` | `SUPPRESSED` / `{reason}#{email}` while suppressed (sparse) | [`keys::subscriber_profile`], [`keys::suppressed`] | status and counters of an address; batched standing read before sending; suppression list, filtered by reason |
//! | activity entry | `SUB#{email}` | `ACT#{timestamp}#{event}` | | [`keys::activity_entry`] | activity log of an address, newest first, paginated; an event seen once (the entry of an event whose key fixes its time is its dedup record) |
//! | job | `JOB#{job id}` | `JOB` | `JOBS#{status}` / `{timestamp}#{job id}` for rejected and failed jobs (sparse) | [`keys::job`], [`keys::job_listed`] | claim before sending (lease), outcome by id, rejected and failed jobs listed |
//! | server breaker | `BREAKER#{server id}` | `BREAKER` | | [`keys::breaker`] | consecutive failed Postmark calls of a server, its pause and probe slot, shared by concurrent senders |
//! | event record | `EVT#{dedup key}` | `EVT` | | [`keys::event_record`] | a webhook event seen once, when its time is the time of arrival (expires) |
//! | audit record | `AUDIT#{date}` | `{timestamp}#{dedup key}` | | [`keys::audit_record`] | an event we cannot attribute or do not act on, kept as it came, listed by day |
//! | counter shard | `STATS#{kind}#{campaign id}#{shard}` | `STATS` | | [`keys::campaign_shard`] | a campaign's counters and clicks per link, on 16 shards each under its own partition; read with one batched read |
//! | engagement | `ENG#{message}` | `ENG` | | [`keys::engagement`] | a message's opens and clicks per source (and per link), counted once per person, with their first and last times; written by the stream function |
//! | stream unit marker | `STREAM#{event id}` | `STREAM` | | [`keys::stream_unit`] | a unit of a stream batch counted (expires after two days): a batch handed over again is not counted twice |
//! | recovery watermark | `RECOVERY#{server id}` | `WATERMARK` | | [`keys::recovery_watermark`] | up to when a server's events have been asked of Postmark |
//! | recovery run | `RECOVERY_RUNS` | `{timestamp}#{run id}` | | [`keys::recovery_run`] | the summaries of recovery runs, newest first (expire after 90 days) |
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

/// The key of every item, built in one place. Functions that give a whole key return [`Key`] (the table's)
/// or [`IndexKey`] ([`GSI1`]'s); the constants and the functions that return text are the parts that
/// queries need (a partition, a sort key prefix).
pub mod keys {
    use chrono::{DateTime, Utc};
    use domain::SuppressionReason;
    use domain::servers::ServerId;
    use domain::trace::Campaign;

    use crate::activity::sortable_time;
    use crate::jobs::JobStatus;

    /// A key of the table.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Key {
        pub pk: String,
        pub sk: String,
    }

    /// A key of the index [`GSI1`](super::GSI1).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct IndexKey {
        pub pk: String,
        pub sk: String,
    }

    fn key(pk: impl Into<String>, sk: impl Into<String>) -> Key {
        Key {
            pk: pk.into(),
            sk: sk.into(),
        }
    }

    /// The partition of every email server.
    pub const SERVERS: &str = "SERVERS";
    /// The sort key prefix of an email server.
    pub const SERVER_PREFIX: &str = "SERVER#";

    pub fn server(id: &ServerId) -> Key {
        key(SERVERS, format!("{SERVER_PREFIX}{id}"))
    }

    /// The partition of everything about one address (`email_key`: [`domain::EmailAddress::key`]).
    pub fn subscriber_pk(email_key: &str) -> String {
        format!("SUB#{email_key}")
    }

    pub fn subscriber_profile(email_key: &str) -> Key {
        key(subscriber_pk(email_key), "PROFILE")
    }

    /// The index partition of the suppression list.
    pub const SUPPRESSED: &str = "SUPPRESSED";

    /// The index sort key prefix of the addresses suppressed for `reason`.
    pub fn suppressed_prefix(reason: SuppressionReason) -> String {
        format!("{}#", reason.as_str())
    }

    /// A suppressed address's entry in the suppression list.
    pub fn suppressed(reason: SuppressionReason, email_key: &str) -> IndexKey {
        IndexKey {
            pk: SUPPRESSED.to_owned(),
            sk: format!("{}{email_key}", suppressed_prefix(reason)),
        }
    }

    /// The sort key prefix of an address's activity entries.
    pub const ACTIVITY_PREFIX: &str = "ACT#";

    /// One entry of an address's activity log: its time, then its id (unique per event).
    pub fn activity_entry(email_key: &str, at: DateTime<Utc>, id: &str) -> Key {
        key(
            subscriber_pk(email_key),
            format!("{ACTIVITY_PREFIX}{}#{id}", sortable_time(at)),
        )
    }

    /// A job's item (`id`: the job's id, or the SQS message id of a job that could not be read).
    pub fn job(id: &str) -> Key {
        key(format!("JOB#{id}"), "JOB")
    }

    /// The index partition of the jobs listed with `status`.
    pub fn jobs_listed_pk(status: JobStatus) -> String {
        format!("JOBS#{}", status.as_str())
    }

    /// A job's entry in the list of jobs with its status, newest last in index order.
    pub fn job_listed(status: JobStatus, at: DateTime<Utc>, id: &str) -> IndexKey {
        IndexKey {
            pk: jobs_listed_pk(status),
            sk: format!("{}#{id}", sortable_time(at)),
        }
    }

    pub fn breaker(server_id: &str) -> Key {
        key(format!("BREAKER#{server_id}"), "BREAKER")
    }

    /// The record of a webhook event seen once, by its dedup key.
    pub fn event_record(dedup_key: &str) -> Key {
        key(format!("EVT#{dedup_key}"), "EVT")
    }

    /// The partition of the events kept for audit on one day.
    pub fn audit_day_pk(day: chrono::NaiveDate) -> String {
        format!("AUDIT#{}", day.format("%Y-%m-%d"))
    }

    /// An event kept for audit, under the day it happened.
    pub fn audit_record(at: DateTime<Utc>, dedup_key: &str) -> Key {
        key(
            audit_day_pk(at.date_naive()),
            format!("{}#{dedup_key}", sortable_time(at)),
        )
    }

    /// One of a campaign's counter shards, each under a partition key of its own.
    pub fn campaign_shard(campaign: &Campaign, shard: u32) -> Key {
        key(
            format!(
                "STATS#{}#{}#{shard:02}",
                campaign.kind.as_str(),
                campaign.id
            ),
            "STATS",
        )
    }

    /// The engagement state of one message (`message`: [`domain::engagement::engagement_ref`]).
    pub fn engagement(message: &str) -> Key {
        key(format!("ENG#{message}"), "ENG")
    }

    /// The marker of a counted unit of a stream batch, by the event id of its first record.
    pub fn stream_unit(event_id: &str) -> Key {
        key(format!("STREAM#{event_id}"), "STREAM")
    }

    pub fn recovery_watermark(server: &ServerId) -> Key {
        key(format!("RECOVERY#{server}"), "WATERMARK")
    }

    /// The partition of the recovery runs' summaries.
    pub const RECOVERY_RUNS: &str = "RECOVERY_RUNS";

    pub fn recovery_run(at: DateTime<Utc>, id: &str) -> Key {
        key(RECOVERY_RUNS, format!("{}#{id}", sortable_time(at)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::{TimeZone, Utc};
    use domain::SuppressionReason;
    use domain::servers::ServerId;

    use super::keys::{IndexKey, Key};
    use super::*;
    use crate::jobs::JobStatus;

    #[test]
    fn every_key_attribute_is_declared_once() {
        assert_eq!(
            TABLE.key_attributes(),
            vec![PK, SK, GSI1_PK, GSI1_SK],
            "the table's and the index's keys"
        );
    }

    /// A row of the item table in this module's documentation.
    #[derive(Debug)]
    struct Row {
        item: String,
        pk: String,
        sk: String,
        index: Option<(String, String)>,
        functions: Vec<String>,
    }

    /// The cells of a table row: split at `|`, but not at an escaped `\|`.
    fn cells(line: &str) -> Vec<String> {
        let mut cells = vec![String::new()];
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&'|') => {
                    cells.last_mut().unwrap().push('|');
                    chars.next();
                }
                '|' => cells.push(String::new()),
                c => cells.last_mut().unwrap().push(c),
            }
        }
        cells.iter().map(|c| c.trim().to_owned()).collect()
    }

    /// The texts between backticks.
    fn quoted(cell: &str) -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    fn rows() -> Vec<Row> {
        let table: Vec<&str> = include_str!("schema.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! |"))
            .collect();
        assert!(
            cells(table[0]).starts_with(&[
                "item".into(),
                "`pk`".into(),
                "`sk`".into(),
                "`gsi1pk` / `gsi1sk`".into(),
                "keys".into()
            ]),
            "the table's columns: {:?}",
            table[0]
        );
        table[2..]
            .iter()
            .map(|line| {
                let c = cells(line);
                let one = |i: usize| {
                    let q = quoted(&c[i]);
                    assert_eq!(q.len(), 1, "{line}: column {i} holds one pattern");
                    q[0].clone()
                };
                let index = match quoted(&c[3]).as_slice() {
                    [] => None,
                    [pk, sk] => Some((pk.clone(), sk.clone())),
                    other => panic!("{line}: an index key is two patterns, not {other:?}"),
                };
                Row {
                    item: c[0].clone(),
                    pk: one(1),
                    sk: one(2),
                    index,
                    functions: quoted(&c[4])
                        .iter()
                        .map(|f| f.strip_prefix("keys::").unwrap_or(f).to_owned())
                        .collect(),
                }
            })
            .collect()
    }

    /// Whether `text` is `pattern` with each `{placeholder}` standing for some text (at least one
    /// character).
    fn matches(pattern: &str, text: &str) -> bool {
        let Some(open) = pattern.find('{') else {
            return pattern == text;
        };
        let Some(text) = text.strip_prefix(&pattern[..open]) else {
            return false;
        };
        let close = pattern[open..]
            .find('}')
            .unwrap_or_else(|| panic!("{pattern}: a placeholder without its closing brace"));
        let after = &pattern[open + close + 1..];
        (1..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .any(|i| matches(after, &text[i..]))
    }

    /// The functions of [`keys`] that give a whole key, read from this file.
    fn key_functions() -> BTreeSet<String> {
        let source = include_str!("schema.rs");
        let start = source.find("pub mod keys {").expect("the keys module");
        let end = start
            + source[start..]
                .find("\n}\n")
                .expect("the keys module's end");
        source[start..end]
            .split("pub fn ")
            .skip(1)
            .filter(|f| {
                let signature = &f[..f.find('{').unwrap_or(f.len())];
                signature.contains("-> Key") || signature.contains("-> IndexKey")
            })
            .map(|f| f[..f.find(['(', '<']).unwrap_or(0)].to_owned())
            .collect()
    }

    enum Made {
        Table(Key),
        Index(IndexKey),
    }

    /// One call of a key function.
    fn made_by(function: &str) -> Option<Made> {
        use keys::*;
        let at = Utc.with_ymd_and_hms(2026, 4, 1, 9, 30, 0).unwrap();
        let email = "reader@example.com";
        Some(match function {
            "server" => Made::Table(server(&ServerId::parse("main").unwrap())),
            "subscriber_profile" => Made::Table(subscriber_profile(email)),
            "suppressed" => Made::Index(suppressed(SuppressionReason::HardBounce, email)),
            "activity_entry" => Made::Table(activity_entry(email, at, "pm:delivery:1")),
            "job" => Made::Table(job("job-1")),
            "job_listed" => Made::Index(job_listed(JobStatus::Failed, at, "job-1")),
            "breaker" => Made::Table(breaker("main")),
            "event_record" => Made::Table(event_record("pm:open:1")),
            "audit_record" => Made::Table(audit_record(at, "pm:inbound:1")),
            "campaign_shard" => Made::Table(campaign_shard(
                &domain::trace::Campaign {
                    kind: domain::trace::CampaignKind::Broadcast,
                    id: "spring".into(),
                },
                3,
            )),
            "engagement" => Made::Table(engagement("job:job-1")),
            "stream_unit" => Made::Table(stream_unit("e1")),
            "recovery_watermark" => {
                Made::Table(recovery_watermark(&ServerId::parse("main").unwrap()))
            }
            "recovery_run" => Made::Table(recovery_run(at, "run-1")),
            _ => return None,
        })
    }

    #[test]
    fn placeholders_stand_for_some_text_and_nothing_else_moves() {
        assert!(matches("SUB#{email}", "SUB#a@b.co"));
        assert!(matches(
            "{timestamp}#{id}",
            "2026-04-01T09:30:00.000000Z#job-1"
        ));
        assert!(matches("PROFILE", "PROFILE"));
        assert!(!matches("SUB#{email}", "SUB#"));
        assert!(!matches("SUB#{email}", "SUBS#a@b.co"));
        assert!(!matches("{reason}#{email}", "HardBounce"));
        assert!(!matches("PROFILE", "PROFILES"));
    }

    #[test]
    fn every_documented_key_is_built_as_documented_and_every_key_function_is_documented() {
        let rows = rows();
        assert!(
            rows.iter().any(|r| r.item == "email server"),
            "the table is read: {rows:?}"
        );
        let mut documented = BTreeSet::new();
        for row in &rows {
            let item = &row.item;
            let mut table_keys = 0;
            let mut index_keys = 0;
            for f in &row.functions {
                documented.insert(f.clone());
                let made = made_by(f).unwrap_or_else(|| {
                    panic!("{item}: keys::{f} has no sample call in this test's made_by")
                });
                match made {
                    Made::Table(k) => {
                        table_keys += 1;
                        assert!(
                            matches(&row.pk, &k.pk),
                            "{item}: keys::{f} gives pk {:?}, the row says {:?}",
                            k.pk,
                            row.pk
                        );
                        assert!(
                            matches(&row.sk, &k.sk),
                            "{item}: keys::{f} gives sk {:?}, the row says {:?}",
                            k.sk,
                            row.sk
                        );
                    }
                    Made::Index(k) => {
                        index_keys += 1;
                        let (pk, sk) = row.index.as_ref().unwrap_or_else(|| {
                            panic!("{item}: keys::{f} gives an index key, the row has none")
                        });
                        assert!(
                            matches(pk, &k.pk),
                            "{item}: keys::{f} gives gsi1pk {:?}, the row says {pk:?}",
                            k.pk
                        );
                        assert!(
                            matches(sk, &k.sk),
                            "{item}: keys::{f} gives gsi1sk {:?}, the row says {sk:?}",
                            k.sk
                        );
                    }
                }
            }
            assert_eq!(table_keys, 1, "{item}: one function gives the item's key");
            assert_eq!(
                index_keys,
                usize::from(row.index.is_some()),
                "{item}: one function gives its index key, if it has one"
            );
        }
        assert_eq!(
            key_functions(),
            documented,
            "the key functions of keys and the functions the table names"
        );
    }

    #[test]
    fn the_parts_that_queries_use_are_those_of_the_keys() {
        let server = keys::server(&ServerId::parse("main").unwrap());
        assert_eq!(server.pk, keys::SERVERS);
        assert!(server.sk.starts_with(keys::SERVER_PREFIX));
        let email = "reader@example.com";
        assert_eq!(
            keys::subscriber_profile(email).pk,
            keys::subscriber_pk(email)
        );
        let at = Utc.with_ymd_and_hms(2026, 4, 1, 9, 30, 0).unwrap();
        let entry = keys::activity_entry(email, at, "x");
        assert_eq!(entry.pk, keys::subscriber_pk(email));
        assert!(entry.sk.starts_with(keys::ACTIVITY_PREFIX));
        for reason in SuppressionReason::ALL {
            let listed = keys::suppressed(reason, email);
            assert_eq!(listed.pk, keys::SUPPRESSED);
            assert!(listed.sk.starts_with(&keys::suppressed_prefix(reason)));
        }
        for status in [JobStatus::Failed, JobStatus::Rejected] {
            assert_eq!(
                keys::job_listed(status, at, "job-1").pk,
                keys::jobs_listed_pk(status)
            );
        }
    }
}
