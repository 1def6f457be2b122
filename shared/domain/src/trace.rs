//! The metadata the sender attaches to every message, so that a webhook event can be traced back to its
//! job, campaign and subscriber. Postmark limits metadata keys to 20 characters.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::EmailType;

pub const JOB_ID: &str = "job_id";
pub const EMAIL_TYPE: &str = "email_type";
pub const BROADCAST_ID: &str = "broadcast_id";
pub const SEQUENCE_ID: &str = "sequence_id";
pub const SUBSCRIBER_ID: &str = "subscriber_id";
/// The Postmark call a message went out in (one per batch call or SMTP group), so that one search of
/// Postmark's messages by metadata finds every message of a call whose answer was lost.
pub const SEND_ID: &str = "send_id";
/// When the sender composed the message's call (RFC 3339, UTC, whole seconds), so that an event can be
/// timed against the send.
pub const SENT_AT: &str = "sent_at";

/// A broadcast or a sequence: what campaign counters belong to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Campaign {
    pub kind: CampaignKind,
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignKind {
    Broadcast,
    Sequence,
}

impl CampaignKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Broadcast => "broadcast",
            Self::Sequence => "sequence",
        }
    }
}

impl std::str::FromStr for CampaignKind {
    type Err = crate::InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "broadcast" | "broadcasts" => Ok(Self::Broadcast),
            "sequence" | "sequences" => Ok(Self::Sequence),
            other => Err(crate::InvalidValue {
                what: "campaign",
                why: format!("{other:?} is not broadcast or sequence"),
            }),
        }
    }
}

/// What a message's metadata says about where it came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageTrace {
    pub job_id: Option<String>,
    pub email_type: Option<EmailType>,
    pub campaign: Option<Campaign>,
    pub subscriber_id: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
}

impl MessageTrace {
    /// Reads the trace out of a message's metadata (values already as text). Unknown keys are ignored;
    /// values that would break a storage key (`#`, empty, over 128 characters) are ignored too.
    pub fn from_metadata(metadata: &BTreeMap<String, String>) -> Self {
        let get = |k: &str| {
            metadata
                .get(k)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty() && v.len() <= 128 && !v.contains('#'))
                .map(str::to_owned)
        };
        let campaign = get(BROADCAST_ID)
            .map(|id| Campaign {
                kind: CampaignKind::Broadcast,
                id,
            })
            .or_else(|| {
                get(SEQUENCE_ID).map(|id| Campaign {
                    kind: CampaignKind::Sequence,
                    id,
                })
            });
        Self {
            job_id: get(JOB_ID),
            email_type: get(EMAIL_TYPE).and_then(|t| t.parse().ok()),
            campaign,
            subscriber_id: get(SUBSCRIBER_ID),
            sent_at: get(SENT_AT).and_then(|t| parse_sent_at(&t)),
        }
    }

    /// The metadata to attach to a message (the inverse of [`MessageTrace::from_metadata`]).
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        if let Some(j) = &self.job_id {
            m.insert(JOB_ID.to_owned(), j.clone());
        }
        if let Some(t) = self.email_type {
            m.insert(EMAIL_TYPE.to_owned(), t.as_str().to_owned());
        }
        if let Some(c) = &self.campaign {
            let key = match c.kind {
                CampaignKind::Broadcast => BROADCAST_ID,
                CampaignKind::Sequence => SEQUENCE_ID,
            };
            m.insert(key.to_owned(), c.id.clone());
        }
        if let Some(s) = &self.subscriber_id {
            m.insert(SUBSCRIBER_ID.to_owned(), s.clone());
        }
        if let Some(t) = self.sent_at {
            m.insert(SENT_AT.to_owned(), format_sent_at(t));
        }
        m
    }
}

/// A send time as the metadata carries it: `2026-12-01T10:00:00Z`.
pub fn format_sent_at(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A send time read back from metadata: an RFC 3339 time (one with an offset is converted to UTC);
/// anything else is `None`.
fn parse_sent_at(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_and_bad_values_are_dropped() {
        let t = MessageTrace {
            job_id: Some("job-1".into()),
            email_type: Some(EmailType::Broadcast),
            campaign: Some(Campaign {
                kind: CampaignKind::Broadcast,
                id: "b-7".into(),
            }),
            subscriber_id: Some("s-9".into()),
            sent_at: Some(at("2026-12-01T10:00:00Z")),
        };
        let m = t.to_metadata();
        assert!(m.keys().all(|k| k.len() <= 20));
        assert_eq!(m[SENT_AT], "2026-12-01T10:00:00Z");
        assert_eq!(MessageTrace::from_metadata(&m), t);

        let bad = BTreeMap::from([
            (JOB_ID.to_owned(), "a#b".to_owned()),
            (BROADCAST_ID.to_owned(), "  ".to_owned()),
            (SEQUENCE_ID.to_owned(), "seq-1".to_owned()),
            (EMAIL_TYPE.to_owned(), "spam".to_owned()),
        ]);
        let t = MessageTrace::from_metadata(&bad);
        assert_eq!(t.job_id, None);
        assert_eq!(t.email_type, None);
        assert_eq!(t.campaign.unwrap().kind, CampaignKind::Sequence);
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_send_time_is_written_to_the_second_in_utc() {
        let sent = at("2026-12-01T10:00:00.987654321Z");
        assert_eq!(format_sent_at(sent), "2026-12-01T10:00:00Z");
        let t = MessageTrace {
            sent_at: Some(at("2026-12-01T11:30:05+01:30")),
            ..MessageTrace::default()
        };
        let m = t.to_metadata();
        assert_eq!(
            m,
            BTreeMap::from([(SENT_AT.to_owned(), "2026-12-01T10:00:05Z".to_owned())])
        );
        assert_eq!(MessageTrace::from_metadata(&m), t);
    }

    #[test]
    fn a_bad_send_time_is_dropped_and_the_rest_kept() {
        for bad in [
            "",
            "yesterday",
            "1796119200",
            "2026-12-01",
            "2026-12-01 10:00:00",
            "2026-13-01T10:00:00Z",
            "2026-12-01T25:00:00Z",
            "2026-12-01T10:00:00",
        ] {
            let m = BTreeMap::from([
                (JOB_ID.to_owned(), "job-1".to_owned()),
                (SENT_AT.to_owned(), bad.to_owned()),
            ]);
            let t = MessageTrace::from_metadata(&m);
            assert_eq!(t.sent_at, None, "{bad:?}");
            assert_eq!(t.job_id.as_deref(), Some("job-1"), "{bad:?}");
        }
        // Surrounding spaces are not part of the value, as for every other key.
        let m = BTreeMap::from([(SENT_AT.to_owned(), " 2026-12-01T10:00:00Z ".to_owned())]);
        assert_eq!(
            MessageTrace::from_metadata(&m).sent_at,
            Some(at("2026-12-01T10:00:00Z"))
        );
    }

    #[test]
    fn a_trace_serialised_before_it_had_a_send_time_still_reads() {
        let old = r#"{"job_id":"job-1","email_type":null,"campaign":null,"subscriber_id":null}"#;
        let t: MessageTrace = serde_json::from_str(old).unwrap();
        assert_eq!((t.job_id.as_deref(), t.sent_at), (Some("job-1"), None));
        let t = MessageTrace {
            sent_at: Some(at("2026-12-01T10:00:00Z")),
            ..MessageTrace::default()
        };
        let back: MessageTrace = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }
}
