//! Where a subscriber stands, decided by strength, not by recency.
//!
//! Suppressions have strengths (strongest first): a spam complaint, then a hard bounce or an inactive
//! recipient, then an unsubscribe or a manual suppression. The standing is the strongest suppression
//! since the latest explicit reactivation; only a reactivation lowers a standing, and a reactivation at
//! the very instant of a suppression does not lift it.
//!
//! To give the same standing whatever order the events arrive in, the state keeps, per strength, the
//! latest suppression (time and reason), and the latest reactivation time. Applying an event only ever
//! moves these forward, so applying events is commutative, associative and idempotent; the standing is
//! derived from the state, never stored as the only truth.

use chrono::{DateTime, Utc};

use crate::events::StatusChange;
use crate::ports::RecipientStanding;
use crate::{SubscriberStatus, SuppressionReason};

/// How strongly a suppression holds. Ordered weakest first, so `a > b` reads "a is stronger than b".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Strength {
    /// An unsubscribe or a manual suppression: consent withdrawn for marketing mail.
    Unsubscribed,
    /// A hard bounce, or Postmark's "inactive recipient" at send time: the address cannot receive mail.
    Deactivated,
    /// A spam complaint.
    Complained,
}

impl Strength {
    /// Strongest first.
    pub const ALL: [Strength; 3] = [Self::Complained, Self::Deactivated, Self::Unsubscribed];

    /// The subscriber status a suppression of this strength gives.
    pub fn status(self) -> SubscriberStatus {
        match self {
            Self::Complained => SubscriberStatus::Complained,
            Self::Deactivated => SubscriberStatus::Deactivated,
            Self::Unsubscribed => SubscriberStatus::Unsubscribed,
        }
    }

    /// The name of the level, as stored (`complained`, `deactivated`, `unsubscribed`).
    pub fn as_str(self) -> &'static str {
        self.status().as_str()
    }

    fn index(self) -> usize {
        match self {
            Self::Complained => 0,
            Self::Deactivated => 1,
            Self::Unsubscribed => 2,
        }
    }
}

/// One suppression: why and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suppression {
    pub reason: SuppressionReason,
    pub at: DateTime<Utc>,
}

impl Suppression {
    /// Of two suppressions of one strength, the one that stands: the later, and at the same instant the
    /// more specific reason (a hard bounce over an unexplained inactive recipient, a recipient's own
    /// unsubscribe over a manual suppression), so that the choice never depends on arrival order.
    fn later(self, other: Self) -> Self {
        if (other.at, specificity(other.reason)) > (self.at, specificity(self.reason)) {
            other
        } else {
            self
        }
    }
}

fn specificity(reason: SuppressionReason) -> u8 {
    match reason {
        SuppressionReason::SpamComplaint
        | SuppressionReason::HardBounce
        | SuppressionReason::Unsubscribed => 1,
        SuppressionReason::InactiveRecipient | SuppressionReason::ManualSuppression => 0,
    }
}

/// What a subscriber's standing is derived from: the latest suppression of each strength and the latest
/// explicit reactivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StandingState {
    levels: [Option<Suppression>; 3],
    reactivated_at: Option<DateTime<Utc>>,
}

/// Where a subscriber stands, as derived from a [`StandingState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub status: SubscriberStatus,
    /// The suppression that holds, if any.
    pub reason: Option<SuppressionReason>,
    /// The time of the suppression that holds, or of the reactivation that made the subscriber active
    /// (`None` for a subscriber whose standing never changed).
    pub since: Option<DateTime<Utc>>,
}

impl Standing {
    /// The standing as the sender checks it before sending.
    pub fn recipient(&self) -> RecipientStanding {
        RecipientStanding {
            status: self.status,
            suppression: self.reason,
        }
    }

    /// Whether `other` looks the same to a user: same status, same reason.
    pub fn same_as(&self, other: &Standing) -> bool {
        self.status == other.status && self.reason == other.reason
    }
}

impl StandingState {
    /// A state from stored parts. Each suppression goes to the level of its reason whatever it was stored
    /// under, and of two of one level the one that stands is kept.
    pub fn from_parts(
        suppressions: impl IntoIterator<Item = Suppression>,
        reactivated_at: Option<DateTime<Utc>>,
    ) -> Self {
        let mut state = Self {
            levels: [None; 3],
            reactivated_at,
        };
        for s in suppressions {
            state = apply(&state, StatusChange::Suppress(s.reason), s.at);
        }
        state
    }

    /// The state that gives exactly `standing`: for a profile that only holds a derived standing (written
    /// before the per-strength times were kept). A suppression without a time counts as the oldest
    /// possible one, so that any reactivation lifts it.
    pub fn from_standing(standing: &Standing) -> Self {
        let reason = standing.reason.or(match standing.status {
            SubscriberStatus::Active => None,
            SubscriberStatus::Complained => Some(SuppressionReason::SpamComplaint),
            SubscriberStatus::Deactivated => Some(SuppressionReason::HardBounce),
            SubscriberStatus::Unsubscribed => Some(SuppressionReason::ManualSuppression),
        });
        match reason {
            Some(reason) => Self::from_parts(
                [Suppression {
                    reason,
                    at: standing.since.unwrap_or(DateTime::<Utc>::MIN_UTC),
                }],
                None,
            ),
            None => Self {
                levels: [None; 3],
                reactivated_at: standing.since,
            },
        }
    }

    /// The latest suppression of one strength.
    pub fn level(&self, strength: Strength) -> Option<Suppression> {
        self.levels[strength.index()]
    }

    /// The latest explicit reactivation.
    pub fn reactivated_at(&self) -> Option<DateTime<Utc>> {
        self.reactivated_at
    }

    /// The strongest suppression at or after the latest reactivation; else active since the reactivation.
    pub fn standing(&self) -> Standing {
        let holds = |s: &Suppression| self.reactivated_at.is_none_or(|r| s.at >= r);
        Strength::ALL
            .into_iter()
            .find_map(|strength| {
                self.level(strength).filter(holds).map(|s| Standing {
                    status: strength.status(),
                    reason: Some(s.reason),
                    since: Some(s.at),
                })
            })
            .unwrap_or(Standing {
                status: SubscriberStatus::Active,
                reason: None,
                since: self.reactivated_at,
            })
    }
}

/// The state after one status change at `at`.
pub fn apply(state: &StandingState, change: StatusChange, at: DateTime<Utc>) -> StandingState {
    let mut next = *state;
    match change {
        StatusChange::Suppress(reason) => {
            let new = Suppression { reason, at };
            let slot = &mut next.levels[reason.strength().index()];
            *slot = Some(slot.map_or(new, |old| old.later(new)));
        }
        StatusChange::Reactivate => {
            next.reactivated_at = Some(state.reactivated_at.map_or(at, |r| r.max(at)));
        }
    }
    next
}

/// What one status change does to a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub before: Standing,
    pub after: Standing,
    /// The state to store.
    pub state: StandingState,
    /// Whether the state moved at all: when it did not, there is nothing to write.
    pub state_changed: bool,
}

impl Decision {
    /// Whether the change shows: a different status or reason. An event that changes nothing visible is
    /// still logged, marked as such.
    pub fn changes_standing(&self) -> bool {
        !self.before.same_as(&self.after)
    }
}

/// Decides what a status change at `at` does to a subscriber in `state`.
pub fn decide(state: &StandingState, change: StatusChange, at: DateTime<Utc>) -> Decision {
    let next = apply(state, change, at);
    Decision {
        before: state.standing(),
        after: next.standing(),
        state: next,
        state_changed: next != *state,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    use super::*;
    use crate::EmailType;
    use crate::jobs::{SkipReason, skip_reason};

    use SuppressionReason::*;

    fn t(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 1, 12, 0, 0).unwrap() + Duration::minutes(minutes)
    }

    fn suppress(reason: SuppressionReason, minutes: i64) -> (StatusChange, DateTime<Utc>) {
        (StatusChange::Suppress(reason), t(minutes))
    }

    fn reactivate(minutes: i64) -> (StatusChange, DateTime<Utc>) {
        (StatusChange::Reactivate, t(minutes))
    }

    fn fold(events: &[(StatusChange, DateTime<Utc>)]) -> StandingState {
        events
            .iter()
            .fold(StandingState::default(), |s, (c, at)| apply(&s, *c, *at))
    }

    /// The rule, written down directly over the whole set of events: an oracle for the folded state.
    fn by_the_rule(events: &[(StatusChange, DateTime<Utc>)]) -> Standing {
        let reactivated = events
            .iter()
            .filter(|(c, _)| *c == StatusChange::Reactivate)
            .map(|(_, at)| *at)
            .max();
        let best = events
            .iter()
            .filter_map(|(c, at)| match c {
                StatusChange::Suppress(r) if reactivated.is_none_or(|x| *at >= x) => {
                    Some((*r, *at))
                }
                _ => None,
            })
            .max_by_key(|(r, at)| (r.strength(), *at, specificity(*r)));
        match best {
            Some((r, at)) => Standing {
                status: r.status(),
                reason: Some(r),
                since: Some(at),
            },
            None => Standing {
                status: SubscriberStatus::Active,
                reason: None,
                since: reactivated,
            },
        }
    }

    fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
        if items.len() <= 1 {
            return vec![items.to_vec()];
        }
        let mut all = Vec::new();
        for i in 0..items.len() {
            let mut rest = items.to_vec();
            let first = rest.remove(i);
            for mut p in permutations(&rest) {
                p.insert(0, first.clone());
                all.push(p);
            }
        }
        all
    }

    /// A complaint, a hard bounce and an inactive recipient, an unsubscribe, a suppression with no reason (Postmark's
    /// `ManualSuppression` from a customer), and reactivations before, between, at and after them.
    fn fixed_events() -> Vec<(StatusChange, DateTime<Utc>)> {
        vec![
            suppress(SpamComplaint, 10),
            suppress(HardBounce, 20),
            suppress(InactiveRecipient, 15),
            suppress(Unsubscribed, 30),
            suppress(ManualSuppression, 40),
            reactivate(5),
            reactivate(10),
            reactivate(25),
            reactivate(40),
            reactivate(50),
        ]
    }

    #[test]
    fn every_ordering_of_every_pair_and_triple_gives_one_standing() {
        let events = fixed_events();
        let n = events.len();
        let mut sets = Vec::new();
        for a in 0..n {
            for b in a + 1..n {
                sets.push(vec![events[a], events[b]]);
                for c in b + 1..n {
                    sets.push(vec![events[a], events[b], events[c]]);
                }
            }
        }
        for set in sets {
            let want = by_the_rule(&set);
            let first = fold(&set);
            for order in permutations(&set) {
                let state = fold(&order);
                assert_eq!(state, first, "{order:?}");
                assert_eq!(state.standing(), want, "{order:?}");
            }
        }
    }

    fn change() -> impl Strategy<Value = StatusChange> {
        prop_oneof![
            Just(StatusChange::Reactivate),
            proptest::sample::select(SuppressionReason::ALL.to_vec())
                .prop_map(StatusChange::Suppress),
        ]
    }

    fn events() -> impl Strategy<Value = Vec<(StatusChange, DateTime<Utc>)>> {
        // Few distinct times, so that ties are common.
        proptest::collection::vec((change(), 0i64..6).prop_map(|(c, m)| (c, t(m))), 0..10)
    }

    proptest! {
        #[test]
        fn any_arrival_order_gives_the_standing_the_rule_gives(
            (events, shuffled) in events().prop_flat_map(|e| (Just(e.clone()), Just(e).prop_shuffle()))
        ) {
            let state = fold(&events);
            prop_assert_eq!(fold(&shuffled), state);
            prop_assert_eq!(state.standing(), by_the_rule(&events));
        }

        #[test]
        fn applying_an_event_again_changes_nothing(events in events()) {
            let state = fold(&events);
            for (c, at) in &events {
                let d = decide(&state, *c, *at);
                prop_assert!(!d.state_changed);
                prop_assert!(!d.changes_standing());
            }
        }

        #[test]
        fn a_stored_standing_reads_back_as_itself(events in events()) {
            let standing = fold(&events).standing();
            prop_assert_eq!(StandingState::from_standing(&standing).standing(), standing);
        }
    }

    #[test]
    fn a_later_unsubscribe_leaves_a_hard_bounce_in_place_and_receipts_blocked() {
        let state = fold(&[suppress(HardBounce, 0), suppress(Unsubscribed, 10)]);
        let standing = state.standing();
        assert_eq!(standing.status, SubscriberStatus::Deactivated);
        assert_eq!(standing.reason, Some(HardBounce));
        assert_eq!(
            skip_reason(EmailType::Transactional, Some(&standing.recipient())),
            Some(SkipReason::Suppressed(HardBounce))
        );
        let d = decide(
            &fold(&[suppress(HardBounce, 0)]),
            StatusChange::Suppress(ManualSuppression),
            t(10),
        );
        assert!(d.state_changed, "the weaker suppression is kept for later");
        assert!(!d.changes_standing(), "but it changes nothing visible");
    }

    #[test]
    fn an_older_complaint_arriving_late_still_makes_the_person_complained() {
        let mut state = fold(&[suppress(Unsubscribed, 30), suppress(HardBounce, 40)]);
        let d = decide(&state, StatusChange::Suppress(SpamComplaint), t(10));
        assert!(d.changes_standing());
        state = d.state;
        assert_eq!(state.standing().status, SubscriberStatus::Complained);
        assert_eq!(state.standing().since, Some(t(10)));
    }

    #[test]
    fn a_reactivation_older_than_a_suppression_does_not_lift_it() {
        let state = fold(&[suppress(HardBounce, 20), reactivate(10)]);
        assert_eq!(state.standing().status, SubscriberStatus::Deactivated);
        let lifted = apply(&state, StatusChange::Reactivate, t(30));
        assert_eq!(lifted.standing().status, SubscriberStatus::Active);
        assert_eq!(lifted.standing().since, Some(t(30)));
        // Only a reactivation lowers a standing; what comes after it counts again.
        let again = apply(&lifted, StatusChange::Suppress(Unsubscribed), t(31));
        assert_eq!(again.standing().status, SubscriberStatus::Unsubscribed);
    }

    #[test]
    fn a_tie_between_a_reactivation_and_a_suppression_goes_to_the_suppression() {
        for order in permutations(&[suppress(SpamComplaint, 10), reactivate(10)]) {
            assert_eq!(fold(&order).standing().status, SubscriberStatus::Complained);
        }
        let state = fold(&[
            suppress(SpamComplaint, 10),
            suppress(Unsubscribed, 20),
            reactivate(20),
        ]);
        assert_eq!(state.standing().reason, Some(Unsubscribed));
    }

    #[test]
    fn one_level_keeps_its_latest_suppression_and_the_specific_reason_on_a_tie() {
        let state = fold(&[suppress(InactiveRecipient, 10), suppress(HardBounce, 5)]);
        assert_eq!(state.standing().reason, Some(InactiveRecipient));
        for order in permutations(&[suppress(InactiveRecipient, 10), suppress(HardBounce, 10)]) {
            assert_eq!(fold(&order).standing().reason, Some(HardBounce));
        }
    }

    #[test]
    fn strengths_and_statuses_agree() {
        assert!(Strength::Complained > Strength::Deactivated);
        assert!(Strength::Deactivated > Strength::Unsubscribed);
        assert_eq!(Strength::ALL.iter().max(), Some(&Strength::Complained));
        use SuppressionReason::*;
        for (reason, status) in [
            (SpamComplaint, SubscriberStatus::Complained),
            (HardBounce, SubscriberStatus::Deactivated),
            (InactiveRecipient, SubscriberStatus::Deactivated),
            (Unsubscribed, SubscriberStatus::Unsubscribed),
            (ManualSuppression, SubscriberStatus::Unsubscribed),
        ] {
            assert_eq!(reason.status(), status, "{reason}");
        }
        assert_eq!(
            StandingState::default().standing().status,
            SubscriberStatus::Active
        );
    }
}
