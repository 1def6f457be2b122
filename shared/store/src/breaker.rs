//! Circuit breakers of email servers (`BREAKER#{server id}` / `BREAKER`), shared by every concurrent
//! sender invocation: consecutive failed Postmark calls, whether sends to the server are paused and
//! until when, and the probe slot that lets one invocation try a few jobs when a pause ends. The policy
//! (when to open, for how long) is the caller's; this module reads and writes the state.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::ReturnValue;
use chrono::{DateTime, Utc};

use crate::error::{StoreError, applied, classify};
use crate::schema::keys;
use crate::table::{Item, Table, get_n, n};

const FAILURES: &str = "failures";
const OPEN_UNTIL: &str = "open_until";
const OPENS: &str = "opens";
const PROBE_UNTIL: &str = "probe_until";

/// A server's breaker as stored. Times are epoch seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BreakerState {
    /// Failed calls since the last successful one.
    pub failures: i64,
    /// Sends are paused until then (absent: never opened since the last success).
    pub open_until: Option<i64>,
    /// How often it opened since the last success (the next pause is longer).
    pub opens: i64,
    /// An invocation holds the probe slot until then.
    pub probe_until: Option<i64>,
}

fn breaker_key(server_id: &str) -> Item {
    keys::breaker(server_id).into_item()
}

fn optional_n(item: &Item, name: &str) -> Option<i64> {
    item.contains_key(name).then(|| get_n(item, name))
}

impl BreakerState {
    fn from_item(item: &Item) -> Self {
        Self {
            failures: get_n(item, FAILURES),
            open_until: optional_n(item, OPEN_UNTIL),
            opens: get_n(item, OPENS),
            probe_until: optional_n(item, PROBE_UNTIL),
        }
    }
}

impl Table {
    /// A server's breaker (a missing item is a closed breaker).
    pub async fn breaker(&self, server_id: &str) -> Result<BreakerState, StoreError> {
        Ok(self
            .get(breaker_key(server_id), true)
            .await?
            .map(|i| BreakerState::from_item(&i))
            .unwrap_or_default())
    }

    /// Counts one failed call; answers the state after it.
    pub async fn breaker_failure(
        &self,
        server_id: &str,
        now: DateTime<Utc>,
    ) -> Result<BreakerState, StoreError> {
        let out = self
            .client()
            .update_item()
            .table_name(self.name())
            .set_key(Some(breaker_key(server_id)))
            .update_expression("ADD #f :one SET last_failure_at = :now")
            .expression_attribute_names("#f", FAILURES)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now.timestamp()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(classify)?;
        Ok(BreakerState::from_item(&out.attributes.unwrap_or_default()))
    }

    /// Opens the breaker until `until`, unless another invocation already opened it for a pause that has
    /// not ended. Answers whether this call opened it.
    pub async fn open_breaker(
        &self,
        server_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client()
            .update_item()
            .table_name(self.name())
            .set_key(Some(breaker_key(server_id)))
            .update_expression("SET #o = :until ADD #opens :one REMOVE #p")
            .condition_expression("attribute_not_exists(#o) OR #o <= :now")
            .set_expression_attribute_names(Some(HashMap::from([
                ("#o".to_owned(), OPEN_UNTIL.to_owned()),
                ("#opens".to_owned(), OPENS.to_owned()),
                ("#p".to_owned(), PROBE_UNTIL.to_owned()),
            ])))
            .expression_attribute_values(":until", n(until.timestamp()))
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(classify);
        applied(result)
    }

    /// Takes the probe slot of an open breaker whose pause has ended, until `until`. Answers whether this
    /// invocation got it.
    pub async fn take_breaker_probe(
        &self,
        server_id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = self
            .client()
            .update_item()
            .table_name(self.name())
            .set_key(Some(breaker_key(server_id)))
            .update_expression("SET #p = :until")
            .condition_expression("attribute_not_exists(#p) OR #p < :now")
            .expression_attribute_names("#p", PROBE_UNTIL)
            .expression_attribute_values(":until", n(until.timestamp()))
            .expression_attribute_values(":now", n(now.timestamp()))
            .send()
            .await
            .map_err(classify);
        applied(result)
    }

    /// A call went through: the breaker closes and forgets its failures.
    pub async fn close_breaker(&self, server_id: &str) -> Result<(), StoreError> {
        self.client()
            .update_item()
            .table_name(self.name())
            .set_key(Some(breaker_key(server_id)))
            .update_expression("SET #f = :zero REMOVE #o, #opens, #p")
            .set_expression_attribute_names(Some(HashMap::from([
                ("#f".to_owned(), FAILURES.to_owned()),
                ("#o".to_owned(), OPEN_UNTIL.to_owned()),
                ("#opens".to_owned(), OPENS.to_owned()),
                ("#p".to_owned(), PROBE_UNTIL.to_owned()),
            ])))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}
