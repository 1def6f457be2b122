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

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use chrono::{DateTime, Utc};
use domain::events::StatusChange;
use domain::ports::{RecipientStanding, RecipientStandings};
use domain::standing::{self, Decision, Standing, StandingState, Strength, Suppression};
use domain::{EmailAddress, SubscriberStatus, SuppressionReason};
use serde::Serialize;

use crate::activity::{ActivityEntry, activity_item, sortable_time};
use crate::error::StoreError;
use crate::schema::{GSI1, GSI1_PK, GSI1_SK, keys};
use crate::table::{Item, Page, PageQuery, Table, get_n, get_s, n, s, serialize_time};

/// The index partition of the suppression list ([`keys::SUPPRESSED`]).
pub const SUPPRESSED_PARTITION: &str = keys::SUPPRESSED;
/// The profile's version of its standing, moved by every standing write (optimistic concurrency).
const STANDING_VERSION: &str = "standing_version";
const REACTIVATED_AT: &str = "reactivated_at";
/// Bounded attempts when concurrent changes of one subscriber's standing keep moving its version (an
/// attempt fails only when another change of the same subscriber landed between its read and its write).
pub(crate) const STANDING_ATTEMPTS: usize = 8;

fn level_at(strength: Strength) -> String {
    format!("level_{}_at", strength.as_str())
}

fn level_reason(strength: Strength) -> String {
    format!("level_{}_reason", strength.as_str())
}

/// The key of a subscriber's profile item.
pub(crate) fn profile_key(email_key: &str) -> Item {
    keys::subscriber_profile(email_key).into_item()
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
pub(crate) fn stored_standing(item: &Item) -> Result<StoredStanding, StoreError> {
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
fn standing_from(item: &Item) -> Result<RecipientStanding, StoreError> {
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

/// The address a profile item is about, as it was first written.
fn profile_email(item: &Item) -> Result<EmailAddress, StoreError> {
    let text = get_s(item, "email")
        .or_else(|| get_s(item, "email_key"))
        .ok_or_else(|| StoreError::Corrupt("profile without an address".into()))?;
    EmailAddress::parse(text).map_err(|e| StoreError::Corrupt(format!("profile address: {e}")))
}

/// A subscriber as an admin reads it: the derived standing and the counters of what happened to the
/// address (counted from its activity log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriberProfile {
    pub email: EmailAddress,
    pub status: SubscriberStatus,
    #[serde(serialize_with = "serialize_time")]
    pub status_at: Option<DateTime<Utc>>,
    pub suppression_reason: Option<SuppressionReason>,
    #[serde(serialize_with = "serialize_time")]
    pub suppressed_at: Option<DateTime<Utc>>,
    /// What happened to the address, by name (`delivered`, `opens`, ...), from its activity log.
    pub counters: BTreeMap<String, i64>,
}

impl SubscriberProfile {
    /// The profile's standing; its counters are the activity log's (see [`Table::subscriber_profile`]).
    fn from_item(item: &Item, counters: BTreeMap<String, i64>) -> Result<Self, StoreError> {
        let standing = standing_from(item)?;
        Ok(Self {
            email: profile_email(item)?,
            status: standing.status,
            status_at: time(item, "status_at")?,
            suppression_reason: standing.suppression,
            suppressed_at: time(item, "suppressed_at")?,
            counters,
        })
    }
}

/// An address on the suppression list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SuppressionEntry {
    pub email: EmailAddress,
    pub reason: SuppressionReason,
    pub status: SubscriberStatus,
    #[serde(serialize_with = "serialize_time")]
    pub suppressed_at: Option<DateTime<Utc>>,
}

impl SuppressionEntry {
    pub(crate) fn from_item(item: &Item) -> Result<Self, StoreError> {
        let standing = standing_from(item)?;
        Ok(Self {
            email: profile_email(item)?,
            reason: standing.suppression.ok_or_else(|| {
                StoreError::Corrupt("a suppression list entry without a reason".into())
            })?,
            status: standing.status,
            suppressed_at: time(item, "suppressed_at")?,
        })
    }
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
    pub(crate) fn profile_update_op(
        &self,
        email: &EmailAddress,
        write: &StandingWrite,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut set = vec!["email = :email".to_owned(), "email_key = :key".to_owned()];
        let mut remove: Vec<String> = Vec::new();
        let mut names = HashMap::new();
        let mut values = HashMap::from([
            (":email".to_owned(), s(email.as_str())),
            (":key".to_owned(), s(email.key())),
        ]);
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
        let condition = match write.read_version {
            Some(v) => {
                values.insert(":read_version".into(), n(v));
                values.insert(":next_version".into(), n(v + 1));
                "#version = :read_version"
            }
            None => {
                values.insert(":next_version".into(), n(1));
                "attribute_not_exists(#version)"
            }
        };
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        self.update_op(
            profile_key(email.key()),
            &expression,
            Some(condition),
            names,
            values,
        )
    }

    /// A subscriber's profile, read consistently; `None` when nothing is recorded about the address.
    pub async fn subscriber_profile(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<SubscriberProfile>, StoreError> {
        let item = self.get(profile_key(email.key()), true).await?;
        let counters = self.activity_counts(email.key()).await?;
        match item {
            Some(item) => SubscriberProfile::from_item(&item, counters).map(Some),
            // Deliveries, opens and clicks leave no profile, only the log: an active subscriber.
            None if !counters.is_empty() => Ok(Some(SubscriberProfile {
                email: email.clone(),
                status: SubscriberStatus::Active,
                status_at: None,
                suppression_reason: None,
                suppressed_at: None,
                counters,
            })),
            None => Ok(None),
        }
    }

    /// One page of the suppression list, all of it or the addresses suppressed for `reason`, in address
    /// order within a reason.
    pub async fn suppressions(
        &self,
        reason: Option<SuppressionReason>,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<SuppressionEntry>, StoreError> {
        let prefix = reason.map(keys::suppressed_prefix);
        let page = self
            .query_page(PageQuery {
                index: Some(GSI1),
                partition_attr: GSI1_PK,
                partition: keys::SUPPRESSED,
                sort_attr: GSI1_SK,
                sort_prefix: prefix.as_deref(),
                newest_first: false,
                limit,
                cursor,
            })
            .await?;
        Ok(Page {
            items: page
                .items
                .iter()
                .map(SuppressionEntry::from_item)
                .collect::<Result<_, _>>()?,
            next: page.next,
        })
    }

    /// Appends entries to the activity logs of many addresses (`(email key, entry)`), 25 per request.
    pub async fn record_activities(
        &self,
        entries: &[(String, ActivityEntry)],
    ) -> Result<(), StoreError> {
        self.batch_put(
            entries
                .iter()
                .map(|(email_key, entry)| activity_item(email_key, entry))
                .collect(),
        )
        .await
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
    pub(crate) async fn change_standing(
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
                items.push(self.profile_update_op(email, &write)?);
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

    /// Applies one status change as [`Table::change_standing`] does and, in the same transaction, adds to
    /// the address's activity log the entry that `entry` makes of the decision.
    pub async fn change_standing_with_activity(
        &self,
        email: &EmailAddress,
        change: StatusChange,
        at: DateTime<Utc>,
        entry: impl Fn(&Decision) -> ActivityEntry,
    ) -> Result<Decision, StoreError> {
        self.change_standing(email, change, at, |decision| {
            Ok(vec![self.activity_op(email.key(), &entry(decision))?])
        })
        .await
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
            let [(_, gpk), (_, gsk)] = keys::suppressed(reason, email.key()).attributes();
            values.insert(":reason".into(), s(reason.as_str()));
            values.insert(":gpk".into(), gpk);
            values.insert(":gsk".into(), gsk);
            set.extend([
                "suppression_reason = :reason".to_owned(),
                "suppressed_at = :since".to_owned(),
                format!("{GSI1_PK} = :gpk"),
                format!("{GSI1_SK} = :gsk"),
            ]);
        }
        None => remove
            .extend(["suppression_reason", "suppressed_at", GSI1_PK, GSI1_SK].map(str::to_owned)),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::table::emulated::TestTable;

    fn m(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
    }

    #[tokio::test]
    async fn a_profile_written_before_the_levels_were_kept_keeps_its_standing() {
        let t = TestTable::new().await;
        let a = EmailAddress::parse("old@example.com").unwrap();
        let mut item = profile_key(a.key());
        let [(gpk, gpk_value), (gsk, gsk_value)] =
            keys::suppressed(SuppressionReason::HardBounce, a.key()).attributes();
        item.extend([(gpk.to_owned(), gpk_value), (gsk.to_owned(), gsk_value)]);
        for (k, v) in [
            ("email", "old@example.com"),
            ("email_key", "old@example.com"),
            ("status", "deactivated"),
            ("status_at", "2026-06-01T09:10:00.000000Z"),
            ("suppression_reason", "HardBounce"),
            ("suppressed_at", "2026-06-01T09:10:00.000000Z"),
        ] {
            item.insert(k.into(), s(v));
        }
        t.table.write(t.table.put_op(item).unwrap()).await.unwrap();
        let status = |p: Option<SubscriberProfile>| p.expect("a profile").status;

        t.table
            .suppress(&a, SuppressionReason::Unsubscribed, m(20))
            .await
            .unwrap();
        t.table.reactivate(&a, m(5)).await.unwrap();
        let p = t.table.subscriber_profile(&a).await.unwrap().unwrap();
        assert_eq!(p.status, SubscriberStatus::Deactivated);
        assert_eq!(p.suppression_reason, Some(SuppressionReason::HardBounce));
        t.table.reactivate(&a, m(10)).await.unwrap();
        assert_eq!(
            status(t.table.subscriber_profile(&a).await.unwrap()),
            SubscriberStatus::Deactivated,
            "a tie goes to the suppression"
        );
        t.table.reactivate(&a, m(11)).await.unwrap();
        assert_eq!(
            status(t.table.subscriber_profile(&a).await.unwrap()),
            SubscriberStatus::Unsubscribed,
            "the later unsubscribe was kept"
        );
    }
}
