//! Campaign counters, by name, and what one batch of recorded events adds to them.
//!
//! The webhook records each event once; the stream function reads the recorded events in batches and
//! [`tally`] decides, without I/O, what the batch adds to each campaign's counters and to each link's
//! clicks, given (and updating) the engagement state of the messages it touches.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::engagement::{EngagementKind, MessageEngagement, engagement_ref};
use crate::events::{Event, plan};
use crate::trace::Campaign;

/// One counter of a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Counter {
    Sent,
    Failed,
    Skipped,
    Delivered,
    BouncedHard,
    BouncedSoft,
    BouncedOther,
    Complaints,
    Unsubscribes,
    Opens,
    OpensUnique,
    OpensHuman,
    OpensUniqueHuman,
    Clicks,
    ClicksUnique,
    ClicksHuman,
    ClicksUniqueHuman,
}

impl Counter {
    /// Every counter, in the order a campaign reports them.
    pub const ALL: [Counter; 17] = [
        Self::Sent,
        Self::Failed,
        Self::Skipped,
        Self::Delivered,
        Self::BouncedHard,
        Self::BouncedSoft,
        Self::BouncedOther,
        Self::Complaints,
        Self::Unsubscribes,
        Self::Opens,
        Self::OpensUnique,
        Self::OpensHuman,
        Self::OpensUniqueHuman,
        Self::Clicks,
        Self::ClicksUnique,
        Self::ClicksHuman,
        Self::ClicksUniqueHuman,
    ];

    /// The counter's name in the stats the config API publishes (and the store's attribute name).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Delivered => "delivered",
            Self::BouncedHard => "bounced_hard",
            Self::BouncedSoft => "bounced_soft",
            Self::BouncedOther => "bounced_other",
            Self::Complaints => "complaints",
            Self::Unsubscribes => "unsubscribes",
            Self::Opens => "opens",
            Self::OpensUnique => "opens_unique",
            Self::OpensHuman => "opens_human",
            Self::OpensUniqueHuman => "opens_unique_human",
            Self::Clicks => "clicks",
            Self::ClicksUnique => "clicks_unique",
            Self::ClicksHuman => "clicks_human",
            Self::ClicksUniqueHuman => "clicks_unique_human",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The counters a link reports (clicks on that link).
    pub const LINK: [Counter; 4] = [
        Self::Clicks,
        Self::ClicksUnique,
        Self::ClicksHuman,
        Self::ClicksUniqueHuman,
    ];
}

/// What a batch adds to one campaign.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignDelta {
    pub counters: BTreeMap<Counter, i64>,
    /// Clicks per link, by URL.
    pub links: BTreeMap<String, BTreeMap<Counter, i64>>,
}

impl CampaignDelta {
    fn add(&mut self, counters: &[Counter], by: i64) {
        for c in counters {
            *self.counters.entry(*c).or_default() += by;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty() && self.links.is_empty()
    }
}

/// What a batch adds to the counters, campaign by campaign, and the engagement state it leaves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub campaigns: HashMap<Campaign, CampaignDelta>,
    /// The messages whose engagement state the batch changed.
    pub engaged: Vec<String>,
}

/// Decides what `events` (in stream order) add to the counters. `engagement` holds the state of every
/// message an open or click in the batch refers to (missing means nothing counted yet), and is updated:
/// the caller writes back the states of [`Tally::engaged`] together with the counters.
pub fn tally(events: &[Event], engagement: &mut HashMap<String, MessageEngagement>) -> Tally {
    let mut t = Tally::default();
    for event in events {
        let p = plan(event);
        let campaign = event.trace.campaign.as_ref();
        if let Some(c) = campaign
            && !(p.counters.is_empty() && p.uncounts.is_empty())
        {
            let delta = t.campaigns.entry(c.clone()).or_default();
            delta.add(&p.counters, 1);
            delta.add(&p.uncounts, -1);
        }
        let (Some(kind), Some(message)) = (&p.engagement, engagement_ref(event)) else {
            continue;
        };
        let state = engagement.entry(message.clone()).or_default();
        let moved = state.record(kind, event.source, event.automated.is_none(), event.at);
        if !t.engaged.contains(&message) {
            t.engaged.push(message);
        }
        let Some(c) = campaign else { continue };
        let delta = t.campaigns.entry(c.clone()).or_default();
        delta.add(&moved.message.counters(kind), 1);
        if let (EngagementKind::Click { url }, Some(link)) = (kind, moved.link) {
            let counters = delta.links.entry(url.clone()).or_default();
            for c in link.counters(kind) {
                *counters.entry(c).or_default() += 1;
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::EmailAddress;
    use crate::events::{BounceClass, EventKind, Source};
    use crate::trace::{CampaignKind, MessageTrace};

    fn campaign() -> Campaign {
        Campaign {
            kind: CampaignKind::Broadcast,
            id: "b1".into(),
        }
    }

    fn event(kind: EventKind, job: &str, source: Source, second: u32) -> Event {
        Event {
            kind,
            source,
            dedup_key: format!("k-{job}-{second}"),
            recipient: Some(EmailAddress::parse("r@example.com").unwrap()),
            message_id: None,
            at: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, second).unwrap(),
            trace: MessageTrace {
                job_id: Some(job.into()),
                campaign: Some(campaign()),
                ..MessageTrace::default()
            },
            stream: None,
            client: None,
            automated: None,
            detail: serde_json::Value::Null,
        }
    }

    fn counters(t: &Tally) -> BTreeMap<&'static str, i64> {
        t.campaigns[&campaign()]
            .counters
            .iter()
            .map(|(c, n)| (c.name(), *n))
            .collect()
    }

    #[test]
    fn a_batch_adds_each_event_once_and_engagement_counts_per_person() {
        let click = |job, source, s| {
            event(
                EventKind::Clicked {
                    url: "https://a.example/".into(),
                },
                job,
                source,
                s,
            )
        };
        let events = vec![
            event(EventKind::Delivered, "j1", Source::Postmark, 1),
            event(EventKind::Delivered, "j2", Source::Postmark, 2),
            event(EventKind::Opened, "j1", Source::Native, 3),
            event(EventKind::Opened, "j1", Source::Postmark, 4),
            event(
                EventKind::Bounced {
                    class: BounceClass::Hard,
                    bounce_type: "HardBounce".into(),
                },
                "j3",
                Source::Postmark,
                5,
            ),
            click("j2", Source::Postmark, 6),
            click("j2", Source::Postmark, 7),
        ];
        let mut engagement = HashMap::new();
        let t = tally(&events, &mut engagement);
        assert_eq!(
            counters(&t),
            BTreeMap::from([
                ("delivered", 2),
                ("bounced_hard", 1),
                ("opens", 1),
                ("opens_unique", 1),
                ("opens_human", 1),
                ("opens_unique_human", 1),
                ("clicks", 2),
                ("clicks_unique", 1),
                ("clicks_human", 2),
                ("clicks_unique_human", 1),
            ]),
            "one open seen by both sources counts once; two clicks by one person are one unique"
        );
        let link = &t.campaigns[&campaign()].links["https://a.example/"];
        assert_eq!(link[&Counter::Clicks], 2);
        assert_eq!(link[&Counter::ClicksUnique], 1);
        assert_eq!(t.engaged, vec!["job:j1".to_owned(), "job:j2".to_owned()]);
        assert_eq!(engagement["job:j1"].opens.native, 1);
        assert_eq!(engagement["job:j1"].opens.postmark, 1);
    }

    #[test]
    fn state_carried_between_batches_counts_like_one_batch() {
        let events: Vec<Event> = (0..6)
            .map(|i| {
                let source = if i % 2 == 0 {
                    Source::Native
                } else {
                    Source::Postmark
                };
                event(EventKind::Opened, "j1", source, i)
            })
            .collect();
        let mut whole = HashMap::new();
        let one = tally(&events, &mut whole);
        let mut carried = HashMap::new();
        let first = tally(&events[..2], &mut carried);
        let second = tally(&events[2..], &mut carried);
        let mut split = counters(&first);
        for (k, v) in counters(&second) {
            *split.entry(k).or_default() += v;
        }
        assert_eq!(split, counters(&one));
        assert_eq!(carried, whole);
    }

    #[test]
    fn events_without_campaign_or_message_move_no_campaign_counter() {
        let mut e = event(EventKind::Delivered, "j1", Source::Postmark, 1);
        e.trace.campaign = None;
        let mut open = event(EventKind::Opened, "j1", Source::Postmark, 2);
        open.trace.job_id = None;
        let t = tally(&[e, open], &mut HashMap::new());
        assert!(t.campaigns.values().all(CampaignDelta::is_empty), "{t:?}");
        assert!(t.engaged.is_empty());
    }

    #[test]
    fn counter_names_round_trip() {
        for c in Counter::ALL {
            assert_eq!(Counter::from_name(c.name()), Some(c));
        }
        assert_eq!(Counter::from_name("nope"), None);
    }
}
