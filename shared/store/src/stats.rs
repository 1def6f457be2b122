//! Campaign counters, sharded over partition keys. The webhook's events reach the counters through the
//! stream function, one write per campaign per batch (see [`crate::tally`]); the sender adds its outcomes
//! one write per transaction of outcomes. Each write goes to one of [`STATS_SHARDS`] items, each under a
//! partition key of its own, so that no partition takes a broadcast's whole storm. A link's click
//! counters live on the same shard items, as attributes named by the link's hash. Reading sums the
//! shards: one batched read.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::TransactWriteItem;
use domain::stats::{CampaignDelta, Counter};
use domain::trace::{Campaign, CampaignKind};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::schema::keys;
use crate::table::{Item, Table, add_clause, get_s, s};

/// Shards of a campaign's counters.
pub const STATS_SHARDS: u32 = 16;

/// Where one link's attributes live on a shard item: `link#{hash}#url`, `link#{hash}#{counter}`.
const LINK_PREFIX: &str = "link#";

fn campaign_shard_key(campaign: &Campaign, shard: u32) -> Item {
    keys::campaign_shard(campaign, shard).into_item()
}

/// The shard a write goes to: spread evenly, and the same for every attempt of one write.
pub fn shard_of(spread_key: &str, shards: u32) -> u32 {
    let d = Sha256::digest(spread_key.as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % shards
}

/// A campaign's counters, summed over shards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignStats {
    pub kind: CampaignKind,
    pub id: String,
    pub counters: BTreeMap<String, i64>,
    /// Clicks per link, most clicked first.
    pub links: Vec<LinkStats>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkStats {
    pub url: String,
    pub clicks: i64,
    pub clicks_unique: i64,
    pub clicks_human: i64,
    pub clicks_unique_human: i64,
}

fn link_attribute(hash: &str, what: &str) -> String {
    format!("{LINK_PREFIX}{hash}#{what}")
}

impl Table {
    /// Adds `delta` to a campaign's counters on the shard chosen by `spread_key`, for a transaction.
    pub fn campaign_delta_op(
        &self,
        campaign: &Campaign,
        spread_key: &str,
        delta: &CampaignDelta,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut sets = Vec::new();
        let mut adds: Vec<(String, i64)> = delta
            .counters
            .iter()
            .map(|(c, n)| (c.name().to_owned(), *n))
            .collect();
        for (i, (url, counters)) in delta.links.iter().enumerate() {
            let hash = domain::tracking::link_hash(url);
            names.insert(format!("#u{i}"), link_attribute(&hash, "url"));
            values.insert(format!(":u{i}"), s(url));
            sets.push(format!("#u{i} = :u{i}"));
            adds.extend(
                counters
                    .iter()
                    .map(|(c, n)| (link_attribute(&hash, c.name()), *n)),
            );
        }
        let adds: Vec<(&str, i64)> = adds.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let mut expression = String::new();
        if !sets.is_empty() {
            expression = format!("SET {}", sets.join(", "));
        }
        if let Some(clause) = add_clause(&adds, &mut names, &mut values) {
            if !expression.is_empty() {
                expression.push(' ');
            }
            expression.push_str(&clause);
        }
        self.update_op(
            campaign_shard_key(campaign, shard_of(spread_key, STATS_SHARDS)),
            &expression,
            None,
            names,
            values,
        )
    }

    /// Adds the sender's outcome counters to a campaign, for a transaction.
    pub fn campaign_add_op(
        &self,
        campaign: &Campaign,
        spread_key: &str,
        counters: &[(Counter, i64)],
    ) -> Result<TransactWriteItem, StoreError> {
        let delta = CampaignDelta {
            counters: counters.iter().copied().collect(),
            links: BTreeMap::new(),
        };
        self.campaign_delta_op(campaign, spread_key, &delta)
    }

    /// A campaign's counters and clicks per link, summed over shards.
    pub async fn campaign_stats(&self, campaign: &Campaign) -> Result<CampaignStats, StoreError> {
        let keys = (0..STATS_SHARDS)
            .map(|n| campaign_shard_key(campaign, n))
            .collect();
        let shards = self.batch_get(keys, false).await?;
        let mut counters: BTreeMap<String, i64> = Counter::ALL
            .iter()
            .map(|c| (c.name().to_owned(), 0))
            .collect();
        let mut links: BTreeMap<String, LinkStats> = BTreeMap::new();
        for item in &shards {
            for (name, value) in item {
                let Some(rest) = name.strip_prefix(LINK_PREFIX) else {
                    if let Some(c) = Counter::from_name(name)
                        && let Ok(n) = value.as_n().map(|n| n.parse::<i64>().unwrap_or(0))
                    {
                        *counters.entry(c.name().to_owned()).or_default() += n;
                    }
                    continue;
                };
                let Some((hash, what)) = rest.split_once('#') else {
                    continue;
                };
                let link = links.entry(hash.to_owned()).or_insert_with(|| LinkStats {
                    url: String::new(),
                    clicks: 0,
                    clicks_unique: 0,
                    clicks_human: 0,
                    clicks_unique_human: 0,
                });
                if what == "url" {
                    link.url = get_s(item, name).unwrap_or_default().to_owned();
                    continue;
                }
                let n = value
                    .as_n()
                    .ok()
                    .and_then(|n| n.parse::<i64>().ok())
                    .unwrap_or(0);
                match Counter::from_name(what) {
                    Some(Counter::Clicks) => link.clicks += n,
                    Some(Counter::ClicksUnique) => link.clicks_unique += n,
                    Some(Counter::ClicksHuman) => link.clicks_human += n,
                    Some(Counter::ClicksUniqueHuman) => link.clicks_unique_human += n,
                    _ => {}
                }
            }
        }
        let mut links: Vec<LinkStats> = links.into_values().collect();
        links.sort_by(|a, b| b.clicks.cmp(&a.clicks).then_with(|| a.url.cmp(&b.url)));
        Ok(CampaignStats {
            kind: campaign.kind,
            id: campaign.id.clone(),
            counters,
            links,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_spread_evenly_and_are_stable() {
        let mut counts = [0u32; STATS_SHARDS as usize];
        for i in 0..16_000 {
            counts[shard_of(&format!("event-{i}"), STATS_SHARDS) as usize] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
        assert_eq!(shard_of("x", STATS_SHARDS), shard_of("x", STATS_SHARDS));
    }

    #[test]
    fn every_shard_has_a_partition_of_its_own() {
        let c = Campaign {
            kind: CampaignKind::Broadcast,
            id: "b".into(),
        };
        let pks: std::collections::BTreeSet<_> = (0..STATS_SHARDS)
            .map(|n| get_s(&campaign_shard_key(&c, n), crate::schema::PK).map(str::to_owned))
            .collect();
        assert_eq!(pks.len(), STATS_SHARDS as usize);
    }
}
