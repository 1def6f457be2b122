//! Subscribers: status, suppression and counters on one item per address (`SUB#{email}` / `PROFILE`).
//!
//! A suppressed subscriber also carries `gsi1pk = SUPPRESSED` and `gsi1sk = {reason}#{email}`: the index
//! holds only suppressed addresses (a sparse index), so listing the suppression list, whole or by reason,
//! is one query, and lifting a suppression removes the entry by removing the two attributes.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::TransactWriteItem;
use chrono::{DateTime, Utc};
use domain::events::StatusChange;
use domain::ports::{RecipientStanding, RecipientStandings};
use domain::{EmailAddress, SubscriberStatus, SuppressionReason};

use crate::activity::{PROFILE_SK, sortable_time, subscriber_pk};
use crate::error::StoreError;
use crate::table::{Item, Table, add_clause, get_s, key, s};

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
            .batch_get(keys.into_iter().map(profile_key).collect(), false)
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

impl Table {
    /// One update of a subscriber's profile: keeps `email`/`email_key` set, applies a status change (with
    /// the suppression index entry), and adds to counters. With `only_if_newer`, a status change is refused
    /// (the write fails its condition) when the profile already holds a change newer than `at`, so that
    /// webhooks arriving out of order never undo a later change.
    pub fn profile_update_op(
        &self,
        email: &EmailAddress,
        change: Option<StatusChange>,
        counters: &[(&str, i64)],
        at: DateTime<Utc>,
        only_if_newer: bool,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut set = vec!["email = :email", "email_key = :key"];
        let mut remove: Vec<&str> = Vec::new();
        let mut names = HashMap::new();
        let mut values = HashMap::from([
            (":email".to_owned(), s(email.as_str())),
            (":key".to_owned(), s(email.key())),
        ]);
        let mut condition = None;
        if let Some(change) = change {
            names.insert("#status".to_owned(), "status".to_owned());
            values.insert(":at".into(), s(sortable_time(at)));
            set.extend(["#status = :status", "status_at = :at"]);
            match change {
                StatusChange::Suppress(reason) => {
                    set.extend([
                        "suppression_reason = :reason",
                        "suppressed_at = :at",
                        "gsi1pk = :gpk",
                        "gsi1sk = :gsk",
                    ]);
                    values.insert(":status".into(), s(reason.status().as_str()));
                    values.insert(":reason".into(), s(reason.as_str()));
                    values.insert(":gpk".into(), s(SUPPRESSED_PARTITION));
                    values.insert(
                        ":gsk".into(),
                        s(format!("{}#{}", reason.as_str(), email.key())),
                    );
                }
                StatusChange::Reactivate => {
                    values.insert(":status".into(), s(SubscriberStatus::Active.as_str()));
                    remove.extend(["suppression_reason", "suppressed_at", "gsi1pk", "gsi1sk"]);
                }
            }
            if only_if_newer {
                condition = Some("attribute_not_exists(status_at) OR status_at <= :at");
            }
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        if let Some(adds) = add_clause(counters, &mut names, &mut values) {
            expression.push(' ');
            expression.push_str(&adds);
        }
        self.update_op(
            profile_key(email.key()),
            &expression,
            condition,
            names,
            values,
        )
    }

    /// Puts the address on the suppression list with `reason` and sets the matching status.
    pub fn suppress_op(
        &self,
        email: &EmailAddress,
        reason: SuppressionReason,
        at: DateTime<Utc>,
    ) -> Result<TransactWriteItem, StoreError> {
        self.profile_update_op(email, Some(StatusChange::Suppress(reason)), &[], at, false)
    }

    /// Takes the address off the suppression list and makes the subscriber active again.
    pub fn reactivate_op(&self, email: &EmailAddress) -> Result<TransactWriteItem, StoreError> {
        self.profile_update_op(
            email,
            Some(StatusChange::Reactivate),
            &[],
            Utc::now(),
            false,
        )
    }
}
