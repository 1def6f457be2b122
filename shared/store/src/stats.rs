//! Campaign counters, sharded. A broadcast's webhook storm (thousands of events a second) would overrun
//! DynamoDB's limit of 1,000 writes a second on any single item, so each event adds to one of
//! [`STATS_SHARDS`] shard items chosen by its dedup key, and clicks per link to one of [`LINK_SHARDS`]
//! items of the link. Reading sums the shards: one query of the campaign's partition.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::TransactWriteItem;
use domain::trace::{Campaign, CampaignKind};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::table::{Item, PageQuery, Table, get_s, key, s};

/// Shards of a campaign's counters: room for 16,000 writes a second.
pub const STATS_SHARDS: u32 = 16;
/// Shards of one link's click counters (clicks on one link are far rarer than deliveries and opens).
pub const LINK_SHARDS: u32 = 4;

/// The counters every campaign reports, zero when nothing happened yet.
pub const CAMPAIGN_COUNTERS: &[&str] = &[
    "sent",
    "failed",
    "skipped",
    "delivered",
    "bounced_hard",
    "bounced_soft",
    "bounced_other",
    "complaints",
    "unsubscribes",
    "opens",
    "opens_unique",
    "opens_human",
    "opens_unique_human",
    "clicks",
    "clicks_unique",
    "clicks_human",
    "clicks_unique_human",
];

pub fn campaign_pk(campaign: &Campaign) -> String {
    format!("STATS#{}#{}", campaign.kind.as_str(), campaign.id)
}

/// The shard an event's counters go to: spread evenly, and the same for every copy of one event.
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

fn numbers(item: &Item) -> impl Iterator<Item = (&str, i64)> {
    item.iter().filter_map(|(k, v)| {
        v.as_n()
            .ok()
            .and_then(|n| n.parse::<i64>().ok())
            .map(|n| (k.as_str(), n))
    })
}

impl Table {
    /// Adds to a campaign's counters on the shard chosen by `spread_key`.
    pub fn campaign_add_op(
        &self,
        campaign: &Campaign,
        spread_key: &str,
        counters: &[(&str, i64)],
    ) -> Result<TransactWriteItem, StoreError> {
        let shard = shard_of(spread_key, STATS_SHARDS);
        self.add_op(
            key(campaign_pk(campaign), format!("SHARD#{shard:02}")),
            counters,
        )
    }

    /// Adds to one link's click counters (and records the link itself).
    pub fn link_add_op(
        &self,
        campaign: &Campaign,
        url: &str,
        spread_key: &str,
        counters: &[(&str, i64)],
    ) -> Result<TransactWriteItem, StoreError> {
        let shard = shard_of(spread_key, LINK_SHARDS);
        let mut names = std::collections::HashMap::new();
        let mut values = std::collections::HashMap::from([(":url".to_owned(), s(url))]);
        let mut expression = "SET #url = :url".to_owned();
        names.insert("#url".to_owned(), "url".to_owned());
        if let Some(adds) = crate::table::add_clause(counters, &mut names, &mut values) {
            expression.push(' ');
            expression.push_str(&adds);
        }
        self.update_op(
            key(
                campaign_pk(campaign),
                format!("LINK#{}#{shard}", domain::tracking::link_hash(url)),
            ),
            &expression,
            None,
            names,
            values,
        )
    }

    /// Adds to a campaign's counters on their own (the sender's `sent`, `failed`, `skipped`).
    pub async fn add_campaign_counters(
        &self,
        campaign: &Campaign,
        spread_key: &str,
        counters: &[(&str, i64)],
    ) -> Result<(), StoreError> {
        let shard = shard_of(spread_key, STATS_SHARDS);
        self.add(
            key(campaign_pk(campaign), format!("SHARD#{shard:02}")),
            counters,
        )
        .await
    }

    /// A campaign's counters and clicks per link, summed over shards.
    pub async fn campaign_stats(&self, campaign: &Campaign) -> Result<CampaignStats, StoreError> {
        let pk = campaign_pk(campaign);
        let mut counters: BTreeMap<String, i64> = CAMPAIGN_COUNTERS
            .iter()
            .map(|c| ((*c).to_owned(), 0))
            .collect();
        let mut links: BTreeMap<String, LinkStats> = BTreeMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .query_page(PageQuery {
                    sort_prefix: None,
                    limit: 1000,
                    cursor: cursor.as_deref(),
                    ..PageQuery::table(&pk, "")
                })
                .await?;
            for item in &page.items {
                let sk = get_s(item, crate::schema::SK).unwrap_or_default();
                if sk.starts_with("SHARD#") {
                    for (name, value) in numbers(item) {
                        *counters.entry(name.to_owned()).or_default() += value;
                    }
                } else if let Some(rest) = sk.strip_prefix("LINK#") {
                    let hash = rest.split('#').next().unwrap_or_default().to_owned();
                    let url = get_s(item, "url").unwrap_or_default().to_owned();
                    let link = links.entry(hash).or_insert_with(|| LinkStats {
                        url,
                        clicks: 0,
                        clicks_unique: 0,
                        clicks_human: 0,
                        clicks_unique_human: 0,
                    });
                    for (name, value) in numbers(item) {
                        match name {
                            "clicks" => link.clicks += value,
                            "clicks_unique" => link.clicks_unique += value,
                            "clicks_human" => link.clicks_human += value,
                            "clicks_unique_human" => link.clicks_unique_human += value,
                            _ => {}
                        }
                    }
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
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
}
