//! Subscribers: status, suppression and counters on one item per address (`SUB#{email}` / `PROFILE`).
//!
//! The standing is decided by the domain ([`domain::standing`]) from what the profile keeps: per strength
//! the latest suppression (`level_{complained,deactivated,unsubscribed}_{at,reason}`) and the latest
//! reactivation (`reactivated_at`). The derived standing is stored next to them (`status`, `status_at`,
//! `suppression_reason`, `suppressed_at`) for the readers that only need it. A change reads the profile,
//! lets the domain decide and writes on condition that `standing_version` is still the one read.
//!
//! A suppressed subscriber also carries `gsi1pk = SUPPRESSED` and `gsi1sk = {reason}#{email}`: the index
//! holds only suppressed addresses (a sparse index), so listing the suppression list, whole or by reason,
//! is one query, and lifting a suppression removes the entry by removing the two attributes.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use chrono::{DateTime, Utc};
use domain::events::StatusChange;
use domain::ports::{RecipientStanding, RecipientStandings};
use domain::standing::{self, Decision, Standing, StandingState, Strength, Suppression};
use domain::{EmailAddress, SubscriberStatus, SuppressionReason};

use crate::activity::{PROFILE_SK, sortable_time, subscriber_pk};
use crate::error::StoreError;
use crate::table::{Item, Table, add_clause, get_n, get_s, key, n, s};

pub const SUPPRESSED_PARTITION: &str = "SUPPRESSED";
/// The profile's version of its standing, moved by every standing write (optimistic concurrency).
pub const STANDING_VERSION: &str = "standing_version";
const REACTIVATED_AT: &str = "reactivated_at";
/// Bounded attempts when concurrent changes of one subscriber's standing keep moving its version (an
/// attempt fails only when another change of the same subscriber landed between its read and its write).
pub const STANDING_ATTEMPTS: usize = 8;

fn level_at(strength: Strength) -> String {
    format!("level_{}_at", strength.as_str())
}

fn level_reason(strength: Strength) -> String {
    format!("level_{}_reason", strength.as_str())
}

/// The key of a subscriber's profile item.
pub fn profile_key(email_key: &str) -> Item {
    key(subscriber_pk(email_key), PROFILE_SK)
}

fn time(item: &Item, name: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    get_s(item, name)
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))
        })
        .transpose()
}

/// The standing state of a profile as read, with the version to write it back against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoredStanding {
    pub state: StandingState,
    /// `None` when no standing was ever written with a version (a new or an older profile).
    pub version: Option<i64>,
}

/// What a profile item holds of the standing. A profile written before the per-strength times were kept
/// reads as the state that gives its stored standing.
pub fn stored_standing(item: &Item) -> Result<StoredStanding, StoreError> {
    let version = item
        .contains_key(STANDING_VERSION)
        .then(|| get_n(item, STANDING_VERSION));
    let mut suppressions = Vec::new();
    for strength in Strength::ALL {
        if let Some(at) = time(item, &level_at(strength))? {
            let reason = get_s(item, &level_reason(strength))
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("{} without a reason", level_at(strength)))
                })?
                .parse::<SuppressionReason>()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            suppressions.push(Suppression { reason, at });
        }
    }
    let reactivated_at = time(item, REACTIVATED_AT)?;
    let state = if version.is_some() || !suppressions.is_empty() || reactivated_at.is_some() {
        StandingState::from_parts(suppressions, reactivated_at)
    } else {
        let derived = standing_from(item)?;
        StandingState::from_standing(&Standing {
            status: derived.status,
            reason: derived.suppression,
            since: time(item, "suppressed_at")?.or(time(item, "status_at")?),
        })
    };
    Ok(StoredStanding { state, version })
}

/// The write of a standing the domain decided, against the version it was decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandingWrite {
    pub state: StandingState,
    pub read_version: Option<i64>,
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
    /// One update of a subscriber's profile: keeps `email`/`email_key` set, writes a standing the domain
    /// decided (the per-strength times, the derived standing and its suppression index entry), and adds to
    /// counters. A standing is written only if the profile's `standing_version` is still the one it was
    /// decided on; the write fails its condition otherwise, and the caller reads again.
    pub fn profile_update_op(
        &self,
        email: &EmailAddress,
        standing: Option<&StandingWrite>,
        counters: &[(&str, i64)],
    ) -> Result<TransactWriteItem, StoreError> {
        let mut set = vec!["email = :email".to_owned(), "email_key = :key".to_owned()];
        let mut remove: Vec<String> = Vec::new();
        let mut names = HashMap::new();
        let mut values = HashMap::from([
            (":email".to_owned(), s(email.as_str())),
            (":key".to_owned(), s(email.key())),
        ]);
        let mut condition = None;
        if let Some(write) = standing {
            let state = &write.state;
            for strength in Strength::ALL {
                let (at, reason) = (level_at(strength), level_reason(strength));
                match state.level(strength) {
                    Some(level) => {
                        values.insert(format!(":{at}"), s(sortable_time(level.at)));
                        values.insert(format!(":{reason}"), s(level.reason.as_str()));
                        set.push(format!("{at} = :{at}"));
                        set.push(format!("{reason} = :{reason}"));
                    }
                    None => remove.extend([at, reason]),
                }
            }
            match state.reactivated_at() {
                Some(at) => {
                    values.insert(":reactivated".into(), s(sortable_time(at)));
                    set.push(format!("{REACTIVATED_AT} = :reactivated"));
                }
                None => remove.push(REACTIVATED_AT.into()),
            }
            derived_standing(
                email,
                &state.standing(),
                &mut set,
                &mut remove,
                &mut names,
                &mut values,
            );
            names.insert("#version".into(), STANDING_VERSION.into());
            set.push("#version = :next_version".into());
            match write.read_version {
                Some(v) => {
                    values.insert(":read_version".into(), n(v));
                    values.insert(":next_version".into(), n(v + 1));
                    condition = Some("#version = :read_version");
                }
                None => {
                    values.insert(":next_version".into(), n(1));
                    condition = Some("attribute_not_exists(#version)");
                }
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

    /// A subscriber's standing as stored, read consistently (the default state for an unknown address).
    pub async fn stored_standing(
        &self,
        email: &EmailAddress,
    ) -> Result<StoredStanding, StoreError> {
        match self.get(profile_key(email.key()), true).await? {
            Some(item) => stored_standing(&item),
            None => Ok(StoredStanding::default()),
        }
    }

    /// Applies one status change at `at` as the domain decides it: reads the profile, decides, writes on
    /// condition that the standing did not move meanwhile, and reads again if it did (bounded). `with`
    /// gives, for the decision, more writes for the same transaction (an activity entry, say). Returns the
    /// decision that was written.
    pub async fn change_standing(
        &self,
        email: &EmailAddress,
        change: StatusChange,
        at: DateTime<Utc>,
        with: impl Fn(&Decision) -> Result<Vec<TransactWriteItem>, StoreError>,
    ) -> Result<Decision, StoreError> {
        for _ in 0..STANDING_ATTEMPTS {
            let read = self.stored_standing(email).await?;
            let decision = standing::decide(&read.state, change, at);
            let mut items = Vec::new();
            if decision.state_changed {
                let write = StandingWrite {
                    state: decision.state,
                    read_version: read.version,
                };
                items.push(self.profile_update_op(email, Some(&write), &[])?);
            }
            items.extend(with(&decision)?);
            if items.is_empty() {
                return Ok(decision);
            }
            match self.transact(items).await {
                Ok(()) => return Ok(decision),
                Err(e) if decision.state_changed && e.condition_failed_at(0) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Transient(
            "the subscriber's standing kept changing; try again".into(),
        ))
    }

    /// Suppresses the address for `reason` as of `at`, as the domain decides: a weaker suppression never
    /// replaces a stronger one, and one older than the latest reactivation changes nothing visible.
    pub async fn suppress(
        &self,
        email: &EmailAddress,
        reason: SuppressionReason,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.change_standing(
            email,
            StatusChange::Suppress(reason),
            at,
            |_| Ok(Vec::new()),
        )
        .await
        .map(drop)
    }

    /// An explicit reactivation as of `at`: lifts every suppression older than `at` (one at the same
    /// instant holds).
    pub async fn reactivate(
        &self,
        email: &EmailAddress,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.change_standing(email, StatusChange::Reactivate, at, |_| Ok(Vec::new()))
            .await
            .map(drop)
    }
}

/// The derived standing's attributes: status, its time, the suppression and its index entry.
fn derived_standing(
    email: &EmailAddress,
    standing: &Standing,
    set: &mut Vec<String>,
    remove: &mut Vec<String>,
    names: &mut HashMap<String, String>,
    values: &mut HashMap<String, AttributeValue>,
) {
    names.insert("#status".into(), "status".into());
    values.insert(":status".into(), s(standing.status.as_str()));
    set.push("#status = :status".into());
    match standing.since {
        Some(since) => {
            values.insert(":since".into(), s(sortable_time(since)));
            set.push("status_at = :since".into());
        }
        None => remove.push("status_at".into()),
    }
    match standing.reason {
        Some(reason) => {
            values.insert(":reason".into(), s(reason.as_str()));
            values.insert(":gpk".into(), s(SUPPRESSED_PARTITION));
            values.insert(
                ":gsk".into(),
                s(format!("{}#{}", reason.as_str(), email.key())),
            );
            set.extend(
                [
                    "suppression_reason = :reason",
                    "suppressed_at = :since",
                    "gsi1pk = :gpk",
                    "gsi1sk = :gsk",
                ]
                .map(str::to_owned),
            );
        }
        None => remove
            .extend(["suppression_reason", "suppressed_at", "gsi1pk", "gsi1sk"].map(str::to_owned)),
    }
}
