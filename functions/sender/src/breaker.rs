//! The circuit breaker of each email server, shared by every invocation through the table
//! ([`store::breaker`]): after `threshold` failed invocations' calls in a row (429, 5xx, timeouts,
//! unreachable), sends to the server pause for a cooldown that doubles at each reopening (up to a cap);
//! jobs for a paused server go back to the queue delayed without a call. When the pause ends one
//! invocation takes the probe slot and sends a few jobs; a success closes the breaker, a failure opens
//! it again.

use std::time::Duration;

use chrono::{DateTime, Utc};
use store::breaker::BreakerState;
use store::{StoreError, Table};
use tracing::{info, warn};

/// The breaker's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Failures in a row that open it.
    pub threshold: i64,
    /// The first pause.
    pub cooldown: Duration,
    /// The longest pause.
    pub max_cooldown: Duration,
    /// Jobs a probe sends.
    pub probe_jobs: usize,
    /// How long a probe holds its slot (an invocation that dies while probing frees it then).
    pub probe_lease: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            threshold: 5,
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(600),
            probe_jobs: 10,
            probe_lease: Duration::from_secs(60),
        }
    }
}

/// What an invocation may do with a server's jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Send them all.
    Closed,
    /// Send this many (a probe); hand the rest back.
    Probe(usize),
    /// Send none; hand them back for this long.
    Open(Duration),
}

impl BreakerPolicy {
    /// The pause after the breaker opened `opens` times since the last success.
    pub fn pause(&self, opens: i64) -> Duration {
        let doublings = u32::try_from(opens.clamp(0, 20)).unwrap_or(20);
        self.cooldown
            .saturating_mul(1u32 << doublings)
            .min(self.max_cooldown)
    }

    /// What the stored state allows at `now` (before any probe slot is taken).
    pub fn gate(&self, state: &BreakerState, now: DateTime<Utc>) -> Gate {
        let now = now.timestamp();
        match state.open_until {
            Some(until) if until > now => Gate::Open(secs(until - now)),
            Some(_) if state.probe_until.is_some_and(|p| p >= now) => Gate::Open(self.cooldown),
            Some(_) => Gate::Probe(self.probe_jobs),
            None => Gate::Closed,
        }
    }

    /// Whether a failure that left the count at `failures` opens the breaker.
    pub fn opens_at(&self, failures: i64) -> bool {
        failures >= self.threshold
    }
}

fn secs(n: i64) -> Duration {
    Duration::from_secs(u64::try_from(n.max(1)).unwrap_or(1))
}

/// The gate for a server at the start of an invocation: a paused server's jobs wait; when its pause has
/// ended, this invocation probes if it wins the probe slot. A breaker that cannot be read lets the jobs
/// go (the breaker protects Postmark and the queue, not correctness).
pub async fn gate(
    table: &Table,
    policy: &BreakerPolicy,
    server_id: &str,
    now: DateTime<Utc>,
) -> (Gate, BreakerState) {
    let state = match table.breaker(server_id).await {
        Ok(s) => s,
        Err(e) => {
            warn!(server_id, error = ?e, "the breaker could not be read; sending");
            return (Gate::Closed, BreakerState::default());
        }
    };
    let gate = match policy.gate(&state, now) {
        Gate::Probe(n) => {
            let until = now + chrono::Duration::from_std(policy.probe_lease).unwrap_or_default();
            match table.take_breaker_probe(server_id, now, until).await {
                Ok(true) => {
                    info!(server_id, jobs = n, "the server's pause has ended; probing");
                    Gate::Probe(n)
                }
                Ok(false) => Gate::Open(policy.cooldown),
                Err(e) => {
                    warn!(server_id, error = ?e, "the probe slot could not be taken; waiting");
                    Gate::Open(policy.cooldown)
                }
            }
        }
        other => other,
    };
    (gate, state)
}

/// How the invocation's calls to a server went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    /// Calls Postmark answered (accepted, or refused for reasons of the message).
    pub answered: usize,
    /// Calls that failed on Postmark's side (429, 5xx, timeouts, unreachable, lost answers).
    pub failed: usize,
}

/// Records the invocation's calls to a server: any answer closes the breaker; failures only open it.
/// `before` is the state read at the start of the invocation.
pub async fn record(
    table: &Table,
    policy: &BreakerPolicy,
    server_id: &str,
    health: Health,
    before: &BreakerState,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if health.answered > 0 {
        // Nothing to forget: the common case costs no write.
        if health.failed == 0 && before.failures == 0 && before.open_until.is_none() {
            return Ok(());
        }
        info!(server_id, "Postmark answers again; the breaker closes");
        return table.close_breaker(server_id).await;
    }
    if health.failed == 0 {
        return Ok(());
    }
    let state = table.breaker_failure(server_id, now).await?;
    if policy.opens_at(state.failures) {
        let pause = policy.pause(state.opens);
        let until = now + chrono::Duration::from_std(pause).unwrap_or_default();
        if table.open_breaker(server_id, now, until).await? {
            warn!(
                server_id,
                failures = state.failures,
                pause_secs = pause.as_secs(),
                "Postmark keeps failing; sends to this server pause"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: BreakerPolicy = BreakerPolicy {
        threshold: 3,
        cooldown: Duration::from_secs(30),
        max_cooldown: Duration::from_secs(600),
        probe_jobs: 10,
        probe_lease: Duration::from_secs(60),
    };

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn a_closed_breaker_lets_everything_through() {
        assert_eq!(POLICY.gate(&BreakerState::default(), at(100)), Gate::Closed);
        let failing = BreakerState {
            failures: 2,
            ..BreakerState::default()
        };
        assert_eq!(POLICY.gate(&failing, at(100)), Gate::Closed);
    }

    #[test]
    fn an_open_breaker_holds_until_its_pause_ends_then_probes_once() {
        let open = BreakerState {
            failures: 3,
            open_until: Some(130),
            opens: 1,
            probe_until: None,
        };
        assert_eq!(
            POLICY.gate(&open, at(100)),
            Gate::Open(Duration::from_secs(30))
        );
        assert_eq!(POLICY.gate(&open, at(130)), Gate::Probe(10));
        let probing = BreakerState {
            probe_until: Some(190),
            ..open
        };
        assert_eq!(
            POLICY.gate(&probing, at(131)),
            Gate::Open(Duration::from_secs(30))
        );
        assert_eq!(POLICY.gate(&probing, at(191)), Gate::Probe(10));
    }

    #[test]
    fn pauses_double_up_to_the_cap() {
        let pauses: Vec<u64> = (0..7).map(|o| POLICY.pause(o).as_secs()).collect();
        assert_eq!(pauses, [30, 60, 120, 240, 480, 600, 600]);
        assert!(!POLICY.opens_at(2));
        assert!(POLICY.opens_at(3));
    }
}
