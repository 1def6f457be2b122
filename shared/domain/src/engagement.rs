//! Counting opens and clicks once per person, whichever sources saw them.
//!
//! With native and Postmark tracking both on, one open loads two pixels and one click may pass through two
//! redirects, so each source reports the same human action. Per message (and, for clicks, per link) the
//! store keeps how many actions each source reported. An action counts in the totals only when its source
//! has now reported more than any other source, so a message's total is the larger of the sources' counts,
//! not their sum; it counts in the unique counts only when it is the first action any source reported.
//! Automated actions (scanners, prefetches) are counted in the "all" figures and kept out of the human
//! ones, which use the same rule over human actions only.

use serde::{Deserialize, Serialize};

use crate::events::Source;

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

impl EngagementCounts {
    /// The attribute names under which the store keeps the counts.
    pub const NATIVE: &'static str = "native";
    pub const POSTMARK: &'static str = "postmark";
    pub const NATIVE_HUMAN: &'static str = "native_human";
    pub const POSTMARK_HUMAN: &'static str = "postmark_human";

    /// The attributes an action from `source` increments.
    pub fn increments(source: Source, human: bool) -> Vec<&'static str> {
        let (all, h) = match source {
            Source::Native => (Self::NATIVE, Self::NATIVE_HUMAN),
            Source::Postmark => (Self::POSTMARK, Self::POSTMARK_HUMAN),
        };
        if human { vec![all, h] } else { vec![all] }
    }
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
    /// The campaign counters this moves, named `{prefix}`, `{prefix}_unique`, `{prefix}_human` and
    /// `{prefix}_unique_human` (`prefix` is `opens`, `clicks` or `link`).
    pub fn counters(&self, names: &CounterNames) -> Vec<(&'static str, i64)> {
        [
            (self.total, names.total),
            (self.unique, names.unique),
            (self.total_human, names.total_human),
            (self.unique_human, names.unique_human),
        ]
        .into_iter()
        .filter(|(moved, _)| *moved)
        .map(|(_, name)| (name, 1))
        .collect()
    }
}

pub struct CounterNames {
    pub total: &'static str,
    pub unique: &'static str,
    pub total_human: &'static str,
    pub unique_human: &'static str,
}

pub const OPENS: CounterNames = CounterNames {
    total: "opens",
    unique: "opens_unique",
    total_human: "opens_human",
    unique_human: "opens_unique_human",
};

pub const CLICKS: CounterNames = CounterNames {
    total: "clicks",
    unique: "clicks_unique",
    total_human: "clicks_human",
    unique_human: "clicks_unique_human",
};

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
    fn counter_names_follow_what_moved() {
        let c = Counted {
            total: true,
            unique: false,
            total_human: true,
            unique_human: false,
        };
        assert_eq!(c.counters(&OPENS), vec![("opens", 1), ("opens_human", 1)]);
    }
}
