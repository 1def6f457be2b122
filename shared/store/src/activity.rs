//! The activity log of an address: one item per event under the subscriber's partition, read newest
//! first.

use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::schema::keys;
use crate::table::{Item, Page, PageQuery, Table, get_s, s};

/// One entry of an address's activity log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityEntry {
    pub at: DateTime<Utc>,
    /// Unique per event (the event's dedup key), so two events at the same instant both stay.
    pub id: String,
    /// What happened: `sent`, `delivered`, `bounce`, `spam_complaint`, `open`, `click`, ...
    pub kind: String,
    /// The event's details as shown to an admin.
    pub detail: serde_json::Value,
}

/// Fixed-width UTC time (microseconds), so that the text order of sort keys is time order.
pub fn sortable_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The item of one activity entry (for batched writes).
pub(crate) fn activity_item(email_key: &str, entry: &ActivityEntry) -> Item {
    let mut item = keys::activity_entry(email_key, entry.at, &entry.id).into_item();
    item.insert("kind".into(), s(&entry.kind));
    item.insert("at".into(), s(sortable_time(entry.at)));
    item.insert("id".into(), s(&entry.id));
    item.insert("detail".into(), s(entry.detail.to_string()));
    item
}

/// An entry as stored: an event's record carries the event, whose detail is derived from it; an entry the
/// sender writes carries its detail.
fn entry_from(item: &Item) -> Result<ActivityEntry, StoreError> {
    let corrupt = || StoreError::Corrupt("activity entry".into());
    if let Some((event, unchanged)) = crate::events::recorded_event(item) {
        return Ok(ActivityEntry {
            at: event.at,
            kind: event.kind.name().to_owned(),
            detail: event.activity_detail(unchanged),
            id: event.dedup_key,
        });
    }
    let at = get_s(item, "at")
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .ok_or_else(corrupt)?
        .with_timezone(&Utc);
    Ok(ActivityEntry {
        at,
        id: get_s(item, "id").ok_or_else(corrupt)?.to_owned(),
        kind: get_s(item, "kind").ok_or_else(corrupt)?.to_owned(),
        detail: get_s(item, "detail")
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or(serde_json::Value::Null),
    })
}

/// The counter an activity entry of `kind` adds to, in a subscriber's profile.
fn profile_counter(kind: &str) -> &str {
    match kind {
        "hard_bounce" => "bounced_hard",
        "soft_bounce" => "bounced_soft",
        "spam_complaint" => "complaints",
        "open" => "opens",
        "click" => "clicks",
        other => other,
    }
}

impl Table {
    /// What happened to an address, counted from its activity log: `delivered`, `opens`, `clicks`,
    /// `bounced_hard`, `bounced_soft`, `complaints`, `sent`, ... (one read unit per 4 KB of log).
    pub async fn activity_counts(
        &self,
        email_key: &str,
    ) -> Result<std::collections::BTreeMap<String, i64>, StoreError> {
        let pk = keys::subscriber_pk(email_key);
        let mut counts = std::collections::BTreeMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .query_page(PageQuery {
                    limit: 1000,
                    cursor: cursor.as_deref(),
                    ..PageQuery::table(&pk, keys::ACTIVITY_PREFIX)
                })
                .await?;
            for item in &page.items {
                if let Some(kind) = get_s(item, "kind") {
                    *counts.entry(profile_counter(kind).to_owned()).or_default() += 1;
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(counts),
            }
        }
    }

    /// The write of one activity entry, for a transaction. An entry with the same time and id is written
    /// once.
    pub fn activity_op(
        &self,
        email_key: &str,
        entry: &ActivityEntry,
    ) -> Result<TransactWriteItem, StoreError> {
        self.put_op(activity_item(email_key, entry))
    }

    /// Appends one entry on its own.
    pub async fn record_activity(
        &self,
        email_key: &str,
        entry: &ActivityEntry,
    ) -> Result<(), StoreError> {
        self.transact(vec![self.activity_op(email_key, entry)?])
            .await
    }

    /// A page of the activity log, newest first.
    pub async fn activity(
        &self,
        email_key: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<ActivityEntry>, StoreError> {
        let pk = keys::subscriber_pk(email_key);
        let page = self
            .query_page(PageQuery {
                newest_first: true,
                limit,
                cursor,
                ..PageQuery::table(&pk, keys::ACTIVITY_PREFIX)
            })
            .await?;
        Ok(Page {
            items: page
                .items
                .iter()
                .map(entry_from)
                .collect::<Result<_, _>>()?,
            next: page.next,
        })
    }
}
