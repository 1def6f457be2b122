//! Subscribers: status, suppression and counters on one item per address (`SUB#{email}` / `PROFILE`).
//!
//! A suppressed subscriber also carries `gsi1pk = SUPPRESSED` and `gsi1sk = {reason}#{email}`: the index
//! holds only suppressed addresses (a sparse index), so listing the suppression list, whole or by reason,
//! is one query, and lifting a suppression removes the entry by removing the two attributes.

use std::collections::HashMap;

use domain::ports::{RecipientStanding, RecipientStandings};
use domain::{EmailAddress, SubscriberStatus, SuppressionReason};

use crate::activity::{PROFILE_SK, subscriber_pk};
use crate::error::StoreError;
use crate::table::{Item, Table, get_s, key};

pub const SUPPRESSED_PARTITION: &str = "SUPPRESSED";

/// The key of a subscriber's profile item.
pub fn profile_key(email_key: &str) -> Item {
    key(subscriber_pk(email_key), PROFILE_SK)
}

/// A profile item's standing (a missing status is an active subscriber).
pub fn standing_from(item: &Item) -> Result<RecipientStanding, StoreError> {
    let status = match get_s(item, "status") {
        Some(s) => s
            .parse::<SubscriberStatus>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        None => SubscriberStatus::Active,
    };
    let suppression = match get_s(item, "suppression_reason") {
        Some(r) => Some(
            r.parse::<SuppressionReason>()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        ),
        None => None,
    };
    Ok(RecipientStanding {
        status,
        suppression,
    })
}

impl RecipientStandings for Table {
    type Error = StoreError;

    async fn standings(
        &self,
        addresses: &[EmailAddress],
    ) -> Result<HashMap<String, RecipientStanding>, StoreError> {
        let mut keys: Vec<&str> = addresses.iter().map(EmailAddress::key).collect();
        keys.sort_unstable();
        keys.dedup();
        let items = self
            .batch_get(keys.into_iter().map(profile_key).collect())
            .await?;
        items
            .iter()
            .map(|item| {
                let email = get_s(item, "email_key")
                    .ok_or_else(|| StoreError::Corrupt("profile without email_key".into()))?;
                Ok((email.to_owned(), standing_from(item)?))
            })
            .collect()
    }
}

fn names(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Table {
    /// Puts the address on the suppression list with `reason` and sets the matching status.
    pub fn suppress_op(
        &self,
        email: &EmailAddress,
        reason: SuppressionReason,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, StoreError> {
        use crate::table::s;
        self.update_op(
            profile_key(email.key()),
            "SET email = :email, email_key = :key, #status = :status, suppression_reason = :reason, \
             suppressed_at = :at, gsi1pk = :gpk, gsi1sk = :gsk",
            None,
            names(&[("#status", "status")]),
            HashMap::from([
                (":email".into(), s(email.as_str())),
                (":key".into(), s(email.key())),
                (":status".into(), s(reason.status().as_str())),
                (":reason".into(), s(reason.as_str())),
                (":at".into(), s(crate::activity::sortable_time(at))),
                (":gpk".into(), s(SUPPRESSED_PARTITION)),
                (":gsk".into(), s(format!("{}#{}", reason.as_str(), email.key()))),
            ]),
        )
    }

    /// Takes the address off the suppression list and makes the subscriber active again.
    pub fn reactivate_op(
        &self,
        email: &EmailAddress,
    ) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, StoreError> {
        use crate::table::s;
        self.update_op(
            profile_key(email.key()),
            "SET email = :email, email_key = :key, #status = :status \
             REMOVE suppression_reason, suppressed_at, gsi1pk, gsi1sk",
            None,
            names(&[("#status", "status")]),
            HashMap::from([
                (":email".into(), s(email.as_str())),
                (":key".into(), s(email.key())),
                (":status".into(), s(SubscriberStatus::Active.as_str())),
            ]),
        )
    }
}
