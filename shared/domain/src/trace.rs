//! The metadata the sender attaches to every message, so that a webhook event can be traced back to its
//! job, campaign and subscriber. Postmark limits metadata keys to 20 characters.

use std::collections::BTreeMap;

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
        m
    }
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
        };
        let m = t.to_metadata();
        assert!(m.keys().all(|k| k.len() <= 20));
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
}
