//! Faults on demand: error statuses, slow answers and dropped connections, for a fraction of requests
//! or for requests naming a marked recipient. A seeded generator makes a run repeat exactly.
//!
//! Two families: `status`, `delay` and `drop` strike before the request is processed (nothing is
//! accepted); the `accept_then_*` kinds let the request be processed as usual (messages stored,
//! counted, webhooks queued) and then lose or spoil the answer, which is what makes a blind resend
//! deliver twice.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The fault plan: rules tried in order for every API request and every SMTP message.
///
/// ```
/// use postmark_sim::{FaultAction, FaultRule, Faults};
///
/// let faults = Faults::seeded(7)
///     .rule(FaultRule::new(FaultAction::Status { status: 503 }).fraction(0.1))
///     .rule(FaultRule::new(FaultAction::Drop).recipient("flaky@example.com"));
/// let json = serde_json::to_value(&faults).unwrap();
/// assert_eq!(json["rules"][0]["kind"], "status");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Seed of the generator that decides fractions.
    pub seed: u64,
    /// The rules.
    pub rules: Vec<FaultRule>,
}

impl Faults {
    /// No rule yet, with this seed.
    pub fn seeded(seed: u64) -> Self {
        Self {
            seed,
            rules: Vec::new(),
        }
    }

    /// Adds a rule.
    pub fn rule(mut self, rule: FaultRule) -> Self {
        self.rules.push(rule);
        self
    }
}

/// One fault rule. It fires for a request when its `path` and `recipient` match and the generator
/// draws under `fraction`, at most `times` times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// What happens.
    #[serde(flatten)]
    pub action: FaultAction,
    /// Share of the matching requests it hits, 0.0 to 1.0.
    #[serde(default = "always")]
    pub fraction: f64,
    /// Only this API path (`/email`, `/email/batch`, `/server`, ...) or `smtp`; absent = every API path
    /// and SMTP.
    #[serde(default)]
    pub path: Option<String>,
    /// Only requests naming this recipient (case-insensitive).
    #[serde(default)]
    pub recipient: Option<String>,
    /// Fires at most this many times.
    #[serde(default)]
    pub times: Option<u64>,
}

fn always() -> f64 {
    1.0
}

impl FaultRule {
    /// A rule that hits every request.
    pub fn new(action: FaultAction) -> Self {
        Self {
            action,
            fraction: 1.0,
            path: None,
            recipient: None,
            times: None,
        }
    }

    /// Hits only this share of the matching requests.
    pub fn fraction(mut self, fraction: f64) -> Self {
        self.fraction = fraction;
        self
    }

    /// Only this API path, or `smtp`.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Only requests naming this recipient.
    pub fn recipient(mut self, recipient: impl Into<String>) -> Self {
        self.recipient = Some(recipient.into());
        self
    }

    /// At most this many times.
    pub fn times(mut self, times: u64) -> Self {
        self.times = Some(times);
        self
    }
}

/// What a fault does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer with this HTTP status (429, 500, 503, ...) and Postmark's body for it; over SMTP a
    /// temporary failure (451).
    Status {
        /// The status.
        status: u16,
    },
    /// Wait this long, then answer normally (other rules may still fire).
    Delay {
        /// Milliseconds.
        ms: u64,
    },
    /// Close the connection without answering.
    Drop,
    /// Process the request (accept the messages), then hold the answer this long and close the
    /// connection without it: the client times out first when `ms` exceeds its timeout. Over SMTP:
    /// accept the DATA, wait, close without the 250 reply.
    AcceptThenTimeout {
        /// Milliseconds.
        ms: u64,
    },
    /// Process the request, then close the connection without answering (a reset). Over SMTP:
    /// close right after DATA without the reply.
    AcceptThenDrop,
    /// Process the request, then answer this status (502, 504, ...) with a gateway's HTML body
    /// instead of Postmark's answer. API only: SMTP messages are not matched.
    AcceptThenStatus {
        /// The status.
        status: u16,
    },
    /// Process the request, then answer 200 with Postmark's JSON cut short. API only.
    AcceptThenGarbage,
}

impl FaultAction {
    /// Whether the action has a meaning for `path`: the `accept_then_*` kinds strike sends only
    /// (`/email`, `/email/batch`, and SMTP for the timeout and drop), so that a rule without a path
    /// leaves the management and Messages API endpoints alone.
    fn applies_to(&self, path: &str) -> bool {
        match self {
            Self::Status { .. } | Self::Delay { .. } | Self::Drop => true,
            Self::AcceptThenTimeout { .. } | Self::AcceptThenDrop => {
                matches!(path, "/email" | "/email/batch" | "smtp")
            }
            Self::AcceptThenStatus { .. } | Self::AcceptThenGarbage => {
                matches!(path, "/email" | "/email/batch")
            }
        }
    }
}

/// What the rules decided for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Decision {
    pub delay: Option<Duration>,
    pub outcome: Option<Outcome>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Status(u16),
    Drop,
    /// Process the request, then do this with the answer.
    AfterAccept(AfterAccept),
}

/// What happens to the answer of a request that was processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterAccept {
    /// Wait, then close without answering.
    Timeout(Duration),
    /// Close without answering.
    Drop,
    /// A gateway's status and HTML body.
    Status(u16),
    /// 200 with a cut-short body.
    Garbage,
}

impl Decision {
    /// Splits the decision into the answer to give before processing (`Err`) and what to do with
    /// the answer after processing (`Ok(Some)`).
    pub fn before_or_after(&self) -> Result<Option<AfterAccept>, Outcome> {
        match self.outcome {
            None => Ok(None),
            Some(Outcome::AfterAccept(after)) => Ok(Some(after)),
            Some(before) => Err(before),
        }
    }
}

/// The rules with their generator and counts, behind the simulator's lock.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    plan: Faults,
    fired: Vec<u64>,
    rng: XorShift,
}

impl FaultState {
    pub fn new(plan: Faults) -> Self {
        Self {
            fired: vec![0; plan.rules.len()],
            rng: XorShift::new(plan.seed),
            plan,
        }
    }

    pub fn plan(&self) -> &Faults {
        &self.plan
    }

    pub fn is_empty(&self) -> bool {
        self.plan.rules.is_empty()
    }

    /// Tries every rule against a request to `path` naming `recipients` (lower-case addresses).
    pub fn decide(&mut self, path: &str, recipients: &[String]) -> Decision {
        let mut decision = Decision::default();
        for (index, rule) in self.plan.rules.iter().enumerate() {
            if decision.outcome.is_some() {
                break;
            }
            if rule.path.as_deref().is_some_and(|only| only != path) {
                continue;
            }
            if !rule.action.applies_to(path) {
                continue;
            }
            if let Some(marked) = &rule.recipient
                && !recipients
                    .iter()
                    .any(|recipient| recipient.eq_ignore_ascii_case(marked))
            {
                continue;
            }
            if rule.times.is_some_and(|times| self.fired[index] >= times) {
                continue;
            }
            // Draw only for partial rules, so that adding an always-on rule does not shift the sequence.
            if rule.fraction < 1.0 && self.rng.next_unit() >= rule.fraction {
                continue;
            }
            self.fired[index] += 1;
            match rule.action {
                FaultAction::Status { status } => decision.outcome = Some(Outcome::Status(status)),
                FaultAction::Drop => decision.outcome = Some(Outcome::Drop),
                FaultAction::AcceptThenTimeout { ms } => {
                    decision.outcome = Some(Outcome::AfterAccept(AfterAccept::Timeout(
                        Duration::from_millis(ms),
                    )));
                }
                FaultAction::AcceptThenDrop => {
                    decision.outcome = Some(Outcome::AfterAccept(AfterAccept::Drop));
                }
                FaultAction::AcceptThenStatus { status } => {
                    decision.outcome = Some(Outcome::AfterAccept(AfterAccept::Status(status)));
                }
                FaultAction::AcceptThenGarbage => {
                    decision.outcome = Some(Outcome::AfterAccept(AfterAccept::Garbage));
                }
                FaultAction::Delay { ms } => {
                    let delay = decision.delay.unwrap_or_default() + Duration::from_millis(ms);
                    decision.delay = Some(delay);
                }
            }
        }
        decision
    }
}

/// xorshift64*: tiny, fast and the same on every machine for a seed.
#[derive(Debug, Clone)]
pub(crate) struct XorShift(u64);

impl Default for XorShift {
    fn default() -> Self {
        Self::new(0)
    }
}

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // A zero state would stay zero forever; mixing the seed also spreads nearby seeds apart.
        let mixed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        Self(if mixed == 0 { 1 } else { mixed })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in [0, 1).
    pub fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_decisions() {
        let plan = Faults::seeded(42)
            .rule(FaultRule::new(FaultAction::Status { status: 500 }).fraction(0.3));
        let run = || {
            let mut state = FaultState::new(plan.clone());
            (0..200)
                .map(|_| state.decide("/email", &[]).outcome.is_some())
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        let hits = first.iter().filter(|hit| **hit).count();
        assert!(
            (30..90).contains(&hits),
            "{hits} of 200 for a fraction of 0.3"
        );
    }

    #[test]
    fn rules_match_path_recipient_and_count() {
        let plan = Faults::seeded(1)
            .rule(
                FaultRule::new(FaultAction::Status { status: 500 })
                    .recipient("Bad@Example.com")
                    .times(2),
            )
            .rule(FaultRule::new(FaultAction::Delay { ms: 5 }).path("/server"));
        let mut state = FaultState::new(plan);
        let bad = vec!["bad@example.com".to_owned()];
        assert_eq!(state.decide("/email", &[]), Decision::default());
        assert_eq!(
            state.decide("/email", &bad).outcome,
            Some(Outcome::Status(500))
        );
        assert_eq!(
            state.decide("/email", &bad).outcome,
            Some(Outcome::Status(500))
        );
        assert_eq!(state.decide("/email", &bad).outcome, None);
        assert_eq!(
            state.decide("/server", &[]).delay,
            Some(Duration::from_millis(5))
        );
    }

    #[test]
    fn rules_read_from_json() {
        let faults: Faults = serde_json::from_str(
            r#"{"seed":3,"rules":[{"kind":"drop","fraction":0.5,"path":"/email/batch"},{"kind":"delay","ms":100}]}"#,
        )
        .unwrap();
        assert_eq!(faults.rules[0].action, FaultAction::Drop);
        assert_eq!(faults.rules[1].fraction, 1.0);
        assert!(serde_json::from_str::<Faults>(r#"{"rules":[{"kind":"explode"}]}"#).is_err());
    }

    #[test]
    fn accept_then_kinds_read_from_json_and_decide_after_acceptance() {
        let faults: Faults = serde_json::from_str(
            r#"{"rules":[{"kind":"accept_then_timeout","ms":50},{"kind":"accept_then_drop"},
                {"kind":"accept_then_status","status":502},{"kind":"accept_then_garbage"}]}"#,
        )
        .unwrap();
        assert_eq!(
            faults.rules[0].action,
            FaultAction::AcceptThenTimeout { ms: 50 }
        );
        assert_eq!(faults.rules[1].action, FaultAction::AcceptThenDrop);
        assert_eq!(
            serde_json::to_value(&faults.rules[2]).unwrap()["kind"],
            "accept_then_status"
        );
        let mut state = FaultState::new(faults);
        assert_eq!(
            state.decide("/email", &[]).before_or_after(),
            Ok(Some(AfterAccept::Timeout(Duration::from_millis(50))))
        );
        let status = FaultState::new(Faults::seeded(1).rule(FaultRule::new(
            FaultAction::AcceptThenStatus { status: 504 },
        )))
        .decide("/email/batch", &[]);
        assert_eq!(status.before_or_after(), Ok(Some(AfterAccept::Status(504))));
        assert_eq!(
            Decision {
                delay: None,
                outcome: Some(Outcome::Status(503))
            }
            .before_or_after(),
            Err(Outcome::Status(503))
        );
    }

    #[test]
    fn accept_then_kinds_leave_other_endpoints_alone() {
        let mut state =
            FaultState::new(Faults::seeded(1).rule(FaultRule::new(FaultAction::AcceptThenDrop)));
        assert_eq!(state.decide("/server", &[]), Decision::default());
        assert_eq!(state.decide("/messages/outbound", &[]), Decision::default());
    }

    #[test]
    fn api_only_kinds_never_match_smtp() {
        let plan = Faults::seeded(1)
            .rule(FaultRule::new(FaultAction::AcceptThenGarbage).times(1))
            .rule(FaultRule::new(FaultAction::AcceptThenStatus {
                status: 502,
            }))
            .rule(FaultRule::new(FaultAction::AcceptThenDrop));
        let mut state = FaultState::new(plan);
        assert_eq!(
            state.decide("smtp", &[]).before_or_after(),
            Ok(Some(AfterAccept::Drop))
        );
        assert_eq!(
            state.decide("/email", &[]).before_or_after(),
            Ok(Some(AfterAccept::Garbage)),
            "the SMTP message did not use up times(1)"
        );
    }
}
