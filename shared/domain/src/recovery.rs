//! What a recovery run found: the events Postmark knows of that no webhook had brought, per server.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One server's part of a recovery run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRecovery {
    pub server_id: String,
    /// The window asked about (send and event times, UTC), up to the new watermark.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Events recorded by this run, by activity kind (`delivered`, `hard_bounce`, `open`, ...).
    pub recovered: BTreeMap<String, u64>,
    /// Events read back that were already recorded (their webhook came, or an earlier run found them).
    pub already_recorded: u64,
    /// Addresses suppressed in Postmark and not here, now suppressed here too.
    pub suppressions_fixed: u64,
    /// Messages whose details were read (no delivery or bounce recorded for them).
    pub messages_checked: u64,
    /// Postmark API calls made.
    pub postmark_calls: u64,
    /// What went wrong; the watermark stays where it was when this is not empty.
    pub errors: Vec<String>,
}

impl ServerRecovery {
    /// Every event this run recorded.
    pub fn recovered_total(&self) -> u64 {
        self.recovered.values().sum()
    }
}

/// One run over every server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryRun {
    pub id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// What started it: `schedule`, `timer`, `admin`, ...
    pub trigger: String,
    pub servers: Vec<ServerRecovery>,
}

impl RecoveryRun {
    pub fn recovered_total(&self) -> u64 {
        self.servers
            .iter()
            .map(ServerRecovery::recovered_total)
            .sum()
    }

    pub fn ok(&self) -> bool {
        self.servers.iter().all(|s| s.errors.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up_over_servers_and_kinds() {
        let run = RecoveryRun {
            servers: vec![
                ServerRecovery {
                    recovered: BTreeMap::from([("delivered".into(), 3), ("open".into(), 2)]),
                    ..ServerRecovery::default()
                },
                ServerRecovery {
                    recovered: BTreeMap::from([("hard_bounce".into(), 1)]),
                    errors: vec!["Postmark answered 503".into()],
                    ..ServerRecovery::default()
                },
            ],
            ..RecoveryRun::default()
        };
        assert_eq!(run.recovered_total(), 6);
        assert!(!run.ok());
    }
}
