//! The ports: what the domain needs from the outside world, as small traits. `shared/store` implements
//! them over DynamoDB; tests implement none of them with fakes, they run the real adapters against a local
//! emulator.

use std::collections::HashMap;
use std::future::Future;

use chrono::{DateTime, Utc};

use crate::{EmailAddress, SubscriberStatus, SuppressionReason};

/// Where a recipient stands before we send to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientStanding {
    pub status: SubscriberStatus,
    pub suppression: Option<SuppressionReason>,
}

/// Reads the standing of many recipients at once (one batched read for a whole batch of jobs).
pub trait RecipientStandings {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Returns an entry only for the addresses the store knows; an unknown address is an active one.
    fn standings(
        &self,
        addresses: &[EmailAddress],
    ) -> impl Future<Output = Result<HashMap<String, RecipientStanding>, Self::Error>> + Send;
}

/// The time, so that the logic that depends on it can be tested at any instant.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
