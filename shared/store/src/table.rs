//! The table's primitives: conditional puts, transactions, atomic counters, batched reads and paginated
//! queries. The item-specific repositories are built from these.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, PutRequest, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update, WriteRequest,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Serializer;

use crate::activity::sortable_time;
use crate::error::{StoreError, classify, classify_transaction};
use crate::schema::keys::{IndexKey, Key};
use crate::schema::{GSI1_PK, GSI1_SK, PK, SK, TABLE};

/// One DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// DynamoDB's limit of keys in one `BatchGetItem`.
const BATCH_GET_LIMIT: usize = 100;
/// How often unprocessed keys of a batched read are asked for again before giving up.
const BATCH_GET_ROUNDS: usize = 8;
/// DynamoDB's limit of writes in one `BatchWriteItem`.
const BATCH_WRITE_LIMIT: usize = 25;
const BATCH_WRITE_ROUNDS: usize = 8;

/// The table, by name, with its client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Table {
    client: Client,
    name: Arc<str>,
}

/// A page of a query, with the cursor of the next page if there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// A query over one partition of the table or of an index.
#[derive(Debug, Clone)]
pub(crate) struct PageQuery<'a> {
    pub index: Option<&'static str>,
    pub partition_attr: &'static str,
    pub partition: &'a str,
    pub sort_attr: &'static str,
    pub sort_prefix: Option<&'a str>,
    pub newest_first: bool,
    pub limit: i32,
    pub cursor: Option<&'a str>,
}

impl<'a> PageQuery<'a> {
    /// Items of the table's partition `pk` whose sort key starts with `prefix`.
    pub(crate) fn table(pk: &'a str, prefix: &'a str) -> Self {
        Self {
            index: None,
            partition_attr: PK,
            partition: pk,
            sort_attr: SK,
            sort_prefix: Some(prefix),
            newest_first: false,
            limit: 50,
            cursor: None,
        }
    }
}

impl Key {
    /// The key as the attributes of an item.
    pub(crate) fn into_item(self) -> Item {
        key(self.pk, self.sk)
    }
}

impl IndexKey {
    /// The index key as the attributes of the item it lists.
    pub(crate) fn attributes(self) -> [(&'static str, AttributeValue); 2] {
        [(GSI1_PK, s(self.pk)), (GSI1_SK, s(self.sk))]
    }
}

/// `{pk, sk}` as an item key.
pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(pk.into())),
        (SK.to_owned(), AttributeValue::S(sk.into())),
    ])
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Reads a string attribute.
pub(crate) fn get_s<'i>(item: &'i Item, name: &str) -> Option<&'i str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// Reads a number attribute as i64 (absent or unreadable counts as 0 for counters).
pub(crate) fn get_n(item: &Item, name: &str) -> i64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A time of a read model as the table keeps it (fixed width, see [`sortable_time`]); `null` when absent.
pub(crate) fn serialize_time<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serializer.serialize_str(&sortable_time(*at)),
        None => serializer.serialize_none(),
    }
}

pub(crate) fn get_bool(item: &Item, name: &str) -> Option<bool> {
    item.get(name).and_then(|v| v.as_bool().ok()).copied()
}

impl Table {
    pub fn new(client: Client, name: impl Into<Arc<str>>) -> Self {
        Self {
            client,
            name: name.into(),
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A put that only succeeds if no item has this key yet.
    pub(crate) fn put_new_op(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(self.name.as_ref())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .map_err(StoreError::build)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A put that replaces whatever is there.
    pub(crate) fn put_op(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(self.name.as_ref())
            .set_item(Some(item))
            .build()
            .map_err(StoreError::build)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// An update from an expression; `condition` is optional.
    pub(crate) fn update_op(
        &self,
        key: Item,
        expression: &str,
        condition: Option<&str>,
        names: HashMap<String, String>,
        values: HashMap<String, AttributeValue>,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(self.name.as_ref())
            .set_key(Some(key))
            .update_expression(expression)
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .build()
            .map_err(StoreError::build)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Writes `item` unless an item with its key exists. Returns whether it was written.
    ///
    /// An item already there that is identical to `item` counts as written: it is this very write, sent
    /// again by a retry after its first answer was lost (give competing writers items that differ, e.g.
    /// by an owner, when only one may win).
    pub(crate) async fn put_new(&self, item: Item) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(self.name.as_ref())
            .set_item(Some(item.clone()))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e))
                if matches!(
                    e.err(),
                    PutItemError::ConditionalCheckFailedException(c) if c.item() == Some(&item)
                ) =>
            {
                Ok(true)
            }
            Err(e) => match classify(e) {
                StoreError::ConditionFailed => Ok(false),
                e => Err(e),
            },
        }
    }

    /// Reads one item.
    pub(crate) async fn get(
        &self,
        key: Item,
        consistent: bool,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.name.as_ref())
            .set_key(Some(key))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item)
    }

    /// Runs the writes as one all-or-nothing transaction (at most 100 items).
    pub(crate) async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(classify_transaction)?;
        Ok(())
    }

    /// Runs one write made for a transaction (a put or an update) on its own: one request, and half the
    /// write units of a transaction.
    pub(crate) async fn write(&self, op: TransactWriteItem) -> Result<(), StoreError> {
        if let Some(put) = op.put {
            self.client
                .put_item()
                .table_name(put.table_name)
                .set_item(Some(put.item))
                .set_condition_expression(put.condition_expression)
                .set_expression_attribute_names(put.expression_attribute_names)
                .set_expression_attribute_values(put.expression_attribute_values)
                .send()
                .await
                .map_err(classify)?;
        } else if let Some(update) = op.update {
            self.client
                .update_item()
                .table_name(update.table_name)
                .set_key(Some(update.key))
                .update_expression(update.update_expression)
                .set_condition_expression(update.condition_expression)
                .set_expression_attribute_names(update.expression_attribute_names)
                .set_expression_attribute_values(update.expression_attribute_values)
                .send()
                .await
                .map_err(classify)?;
        } else {
            return Err(StoreError::Other(
                "only puts and updates are written on their own".into(),
            ));
        }
        Ok(())
    }

    /// Reads many items by key, 100 per request, asking again for what DynamoDB left unprocessed.
    /// Keys that have no item are simply absent from the answer.
    pub(crate) async fn batch_get(
        &self,
        keys: Vec<Item>,
        consistent: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET_LIMIT) {
            let mut pending = chunk.to_vec();
            for round in 0.. {
                if pending.is_empty() {
                    break;
                }
                if round == BATCH_GET_ROUNDS {
                    return Err(StoreError::Transient(
                        "keys left unprocessed after repeated batched reads".into(),
                    ));
                }
                if round > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(20 << round)).await;
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(consistent)
                    .build()
                    .map_err(StoreError::build)?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(self.name.as_ref(), request)
                    .send()
                    .await
                    .map_err(classify)?;
                if let Some(mut responses) = out.responses {
                    found.extend(responses.remove(self.name.as_ref()).unwrap_or_default());
                }
                if let Some(mut left) = out.unprocessed_keys {
                    pending = left
                        .remove(self.name.as_ref())
                        .map(|k| k.keys)
                        .unwrap_or_default();
                }
            }
        }
        Ok(found)
    }

    /// Writes new items (that replace nothing of value: activity entries) 25 per request, asking again
    /// for what DynamoDB left unprocessed.
    pub(crate) async fn batch_put(&self, items: Vec<Item>) -> Result<(), StoreError> {
        for chunk in items.chunks(BATCH_WRITE_LIMIT) {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    PutRequest::builder()
                        .set_item(Some(item.clone()))
                        .build()
                        .map(|put| WriteRequest::builder().put_request(put).build())
                        .map_err(StoreError::build)
                })
                .collect::<Result<_, _>>()?;
            for round in 0.. {
                if pending.is_empty() {
                    break;
                }
                if round == BATCH_WRITE_ROUNDS {
                    return Err(StoreError::Transient(
                        "writes left unprocessed after repeated batched writes".into(),
                    ));
                }
                if round > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(20 << round)).await;
                }
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(self.name.as_ref(), std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(classify)?;
                if let Some(mut left) = out.unprocessed_items {
                    pending = left.remove(self.name.as_ref()).unwrap_or_default();
                }
            }
        }
        Ok(())
    }

    /// One page of a query.
    pub(crate) async fn query_page(&self, q: PageQuery<'_>) -> Result<Page<Item>, StoreError> {
        let mut request = self
            .client
            .query()
            .table_name(self.name.as_ref())
            .set_index_name(q.index.map(str::to_owned))
            .expression_attribute_names("#p", q.partition_attr)
            .expression_attribute_values(":p", s(q.partition))
            .scan_index_forward(!q.newest_first)
            .limit(q.limit.clamp(1, 1000));
        request = match q.sort_prefix {
            Some(prefix) => request
                .key_condition_expression("#p = :p AND begins_with(#s, :s)")
                .expression_attribute_names("#s", q.sort_attr)
                .expression_attribute_values(":s", s(prefix)),
            None => request.key_condition_expression("#p = :p"),
        };
        if let Some(cursor) = q.cursor {
            request = request.set_exclusive_start_key(Some(decode_cursor(cursor)?));
        }
        let out = request.send().await.map_err(classify)?;
        Ok(Page {
            items: out.items.unwrap_or_default(),
            next: out
                .last_evaluated_key
                .filter(|k| !k.is_empty())
                .map(|k| encode_cursor(&k)),
        })
    }
}

/// The `ADD` clause of an update expression that adds `counters` (placeholders `#c{i}`/`:c{i}`, entered
/// into `names` and `values`); `None` when there is nothing to add.
pub(crate) fn add_clause(
    counters: &[(&str, i64)],
    names: &mut HashMap<String, String>,
    values: &mut HashMap<String, AttributeValue>,
) -> Option<String> {
    if counters.is_empty() {
        return None;
    }
    let parts: Vec<String> = counters
        .iter()
        .enumerate()
        .map(|(i, (name, delta))| {
            names.insert(format!("#c{i}"), (*name).to_owned());
            values.insert(format!(":c{i}"), n(delta));
            format!("#c{i} :c{i}")
        })
        .collect();
    Some(format!("ADD {}", parts.join(", ")))
}

/// Cursors are the query's last evaluated key (string key attributes only), as opaque URL-safe text.
fn encode_cursor(key: &Item) -> String {
    let plain: std::collections::BTreeMap<&str, &str> = key
        .iter()
        .filter_map(|(k, v)| v.as_s().ok().map(|s| (k.as_str(), s.as_str())))
        .collect();
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&plain).unwrap_or_default())
}

fn decode_cursor(cursor: &str) -> Result<Item, StoreError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| StoreError::InvalidCursor)?;
    let plain: HashMap<String, String> =
        serde_json::from_slice(&bytes).map_err(|_| StoreError::InvalidCursor)?;
    let allowed = TABLE.key_attributes();
    if plain.is_empty() || plain.keys().any(|k| !allowed.contains(&k.as_str())) {
        return Err(StoreError::InvalidCursor);
    }
    Ok(plain.into_iter().map(|(k, v)| (k, s(v))).collect())
}

#[cfg(test)]
pub(crate) mod emulated;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let k = key("SUB#a@b.co", "ACT#2026");
        let c = encode_cursor(&k);
        assert_eq!(decode_cursor(&c).unwrap(), k);
        assert!(matches!(
            decode_cursor("!!"),
            Err(StoreError::InvalidCursor)
        ));
        let foreign = URL_SAFE_NO_PAD.encode(br#"{"password":"x"}"#);
        assert!(matches!(
            decode_cursor(&foreign),
            Err(StoreError::InvalidCursor)
        ));
        let empty = URL_SAFE_NO_PAD.encode(b"{}");
        assert!(matches!(
            decode_cursor(&empty),
            Err(StoreError::InvalidCursor)
        ));
    }
}
