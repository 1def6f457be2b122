//! Counting opens and clicks once per person, whichever sources saw them.
//!
//! With native and Postmark tracking both on, one open loads two pixels and one click may pass through two
//! redirects, so each source reports the same human action. Per message (and, for clicks, per link) the
//! store keeps how many actions each source reported. An action counts in the totals only when its source
//! has now reported more than any other source, so a message's total is the larger of the sources' counts,
//! not their sum; it counts in the unique counts only when it is the first action any source reported.
//! Automated actions (scanners, prefetches) are counted in the "all" figures and kept out of the human
//! ones, which use the same rule over human actions only.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::events::{Event, Source};
use crate::stats::Counter;
use crate::tracking::link_hash;

/// What was engaged with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngagementKind {
    Open,
    Click { url: String },
}

/// The actions reported so far for one message (or one message and link).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngagementCounts {
    pub native: i64,
    pub postmark: i64,
    pub native_human: i64,
    pub postmark_human: i64,
}

/// Which counters one action moves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted {
    pub total: bool,
    pub unique: bool,
    pub total_human: bool,
    pub unique_human: bool,
}

/// Decides what an action from `source` counts, given the counts before it.
pub fn count(before: &EngagementCounts, source: Source, human: bool) -> Counted {
    let (mine, other, mine_h, other_h) = match source {
        Source::Native => (
            before.native,
            before.postmark,
            before.native_human,
            before.postmark_human,
        ),
        Source::Postmark => (
            before.postmark,
            before.native,
            before.postmark_human,
            before.native_human,
        ),
    };
    Counted {
        total: mine >= other,
        unique: mine == 0 && other == 0,
        total_human: human && mine_h >= other_h,
        unique_human: human && mine_h == 0 && other_h == 0,
    }
}

impl Counted {
    /// The campaign counters this moves for an open or a click (a link reports the click ones).
    pub fn counters(&self, kind: &EngagementKind) -> Vec<Counter> {
        let [total, unique, total_human, unique_human] = match kind {
            EngagementKind::Open => [
                Counter::Opens,
                Counter::OpensUnique,
                Counter::OpensHuman,
                Counter::OpensUniqueHuman,
            ],
            EngagementKind::Click { .. } => Counter::LINK,
        };
        [
            (self.total, total),
            (self.unique, unique),
            (self.total_human, total_human),
            (self.unique_human, unique_human),
        ]
        .into_iter()
        .filter(|(moved, _)| *moved)
        .map(|(_, c)| c)
        .collect()
    }
}

impl EngagementCounts {
    fn add(&mut self, source: Source, human: bool) {
        let (all, h) = match source {
            Source::Native => (&mut self.native, &mut self.native_human),
            Source::Postmark => (&mut self.postmark, &mut self.postmark_human),
        };
        *all += 1;
        if human {
            *h += 1;
        }
    }
}

/// When a message was first and last opened and clicked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageTimes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_opened_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_opened_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_clicked_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_clicked_at: Option<DateTime<Utc>>,
}

impl MessageTimes {
    fn saw(&mut self, kind: &EngagementKind, at: DateTime<Utc>) {
        let (first, last) = match kind {
            EngagementKind::Open => (&mut self.first_opened_at, &mut self.last_opened_at),
            EngagementKind::Click { .. } => (&mut self.first_clicked_at, &mut self.last_clicked_at),
        };
        *first = Some(first.map_or(at, |f| f.min(at)));
        *last = Some(last.map_or(at, |l| l.max(at)));
    }
}

/// Everything counted so far about one message's opens and clicks: per source, for the message and for
/// each of its links (by [`crate::tracking::link_hash`]), and when they happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEngagement {
    #[serde(default)]
    pub opens: EngagementCounts,
    #[serde(default)]
    pub clicks: EngagementCounts,
    #[serde(default)]
    pub links: BTreeMap<String, EngagementCounts>,
    #[serde(default)]
    pub times: MessageTimes,
}

/// What one open or click moved: the message's counters, and for a click its link's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    pub message: Counted,
    pub link: Option<Counted>,
}

impl MessageEngagement {
    /// Counts one action and returns what it moved.
    pub fn record(
        &mut self,
        kind: &EngagementKind,
        source: Source,
        human: bool,
        at: DateTime<Utc>,
    ) -> Moved {
        self.times.saw(kind, at);
        match kind {
            EngagementKind::Open => {
                let message = count(&self.opens, source, human);
                self.opens.add(source, human);
                Moved {
                    message,
                    link: None,
                }
            }
            EngagementKind::Click { url } => {
                let message = count(&self.clicks, source, human);
                self.clicks.add(source, human);
                let counts = self.links.entry(link_hash(url)).or_default();
                let link = count(counts, source, human);
                counts.add(source, human);
                Moved {
                    message,
                    link: Some(link),
                }
            }
        }
    }
}

/// The message an open or click belongs to, as engagement state is kept: its job when the metadata
/// names one, else Postmark's MessageID.
pub fn engagement_ref(event: &Event) -> Option<String> {
    match (&event.trace.job_id, &event.message_id) {
        (Some(job), _) => Some(format!("job:{job}")),
        (None, Some(m)) => Some(format!("msg:{m}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plays a sequence of actions and returns the resulting (total, unique, total_human, unique_human).
    fn play(actions: &[(Source, bool)]) -> (i64, i64, i64, i64) {
        let mut counts = EngagementCounts::default();
        let mut sums = (0, 0, 0, 0);
        for (source, human) in actions {
            let c = count(&counts, *source, *human);
            sums.0 += c.total as i64;
            sums.1 += c.unique as i64;
            sums.2 += c.total_human as i64;
            sums.3 += c.unique_human as i64;
            match source {
                Source::Native => {
                    counts.native += 1;
                    counts.native_human += *human as i64;
                }
                Source::Postmark => {
                    counts.postmark += 1;
                    counts.postmark_human += *human as i64;
                }
            }
        }
        sums
    }

    #[test]
    fn one_open_seen_by_both_sources_counts_once() {
        assert_eq!(
            play(&[(Source::Native, true), (Source::Postmark, true)]),
            (1, 1, 1, 1)
        );
        assert_eq!(
            play(&[(Source::Postmark, true), (Source::Native, true)]),
            (1, 1, 1, 1)
        );
    }

    #[test]
    fn repeated_opens_count_as_the_larger_source() {
        // Postmark posts only the first open; the pixel sees all three.
        let n = (Source::Native, true);
        let p = (Source::Postmark, true);
        assert_eq!(play(&[n, p, n, n]), (3, 1, 3, 1));
        assert_eq!(play(&[n, n, p, p, n]), (3, 1, 3, 1));
    }

    #[test]
    fn automated_actions_stay_out_of_the_human_counts() {
        let bot = (Source::Native, false);
        let human = (Source::Postmark, true);
        assert_eq!(play(&[bot]), (1, 1, 0, 0));
        assert_eq!(play(&[bot, human]), (1, 1, 1, 1));
    }

    #[test]
    fn counters_follow_what_moved() {
        let c = Counted {
            total: true,
            unique: false,
            total_human: true,
            unique_human: false,
        };
        assert_eq!(
            c.counters(&EngagementKind::Open),
            vec![Counter::Opens, Counter::OpensHuman]
        );
        let url = "https://a.example/".to_owned();
        assert_eq!(
            c.counters(&EngagementKind::Click { url }),
            vec![Counter::Clicks, Counter::ClicksHuman]
        );
    }

    #[test]
    fn a_message_keeps_its_first_and_last_times_and_counts_links_apart() {
        let at = |s| chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 1, 10, 0, s).unwrap();
        let mut m = MessageEngagement::default();
        let a = EngagementKind::Click {
            url: "https://a.example/".into(),
        };
        let b = EngagementKind::Click {
            url: "https://b.example/".into(),
        };
        let first = m.record(&a, Source::Postmark, true, at(30));
        assert!(first.message.unique && first.link.unwrap().unique);
        let other_link = m.record(&b, Source::Postmark, true, at(10));
        assert!(!other_link.message.unique, "the message was clicked before");
        assert!(other_link.link.unwrap().unique, "this link was not");
        assert_eq!(m.times.first_clicked_at, Some(at(10)));
        assert_eq!(m.times.last_clicked_at, Some(at(30)));
        assert_eq!(m.times.first_opened_at, None);
        assert_eq!(m.links.len(), 2);
    }
}
