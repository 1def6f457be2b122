//! What a delivery, bounce, complaint, open, click or subscription change does to the integration's state,
//! decided without I/O: [`plan`] turns an [`Event`] into a [`Plan`] that the store carries out in one
//! transaction.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::engagement::EngagementKind;
use crate::trace::MessageTrace;
use crate::{EmailAddress, SuppressionReason};

/// Who observed the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A Postmark webhook.
    Postmark,
    /// Our own open pixel or click redirect.
    Native,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postmark => "postmark",
            Self::Native => "native",
        }
    }
}

/// What a bounce means for the recipient, keyed on Postmark's `Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BounceClass {
    /// Permanent: the subscriber is deactivated and the address suppressed.
    Hard,
    /// Temporary: recorded, the subscriber stays active.
    Soft,
    /// A complaint reported as a bounce: handled like a spam complaint.
    Complaint,
    /// An unsubscribe request reported as a bounce.
    Unsubscribe,
    /// Out-of-office and challenge replies: recorded, nothing else.
    AutoReply,
    /// Anything else (subscribe requests, open-relay tests, our own errors): recorded.
    Other,
}

/// The client that opened or clicked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    Delivered,
    Bounced {
        class: BounceClass,
        /// Postmark's `Type`, e.g. `HardBounce`.
        bounce_type: String,
    },
    SpamComplaint,
    Opened,
    Clicked {
        url: String,
    },
    SubscriptionChanged {
        suppress: bool,
        /// Postmark's `SuppressionReason` (`HardBounce`, `SpamComplaint`, `ManualSuppression`).
        reason: Option<String>,
        /// Postmark's `Origin` (`Recipient`, `Customer`, `Admin`).
        origin: Option<String>,
    },
    /// A record type we do not act on, kept for audit.
    Unknown {
        record_type: Option<String>,
    },
}

impl EventKind {
    /// The name used in activity logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Bounced { class, .. } => match class {
                BounceClass::Hard => "hard_bounce",
                BounceClass::Soft => "soft_bounce",
                BounceClass::Complaint => "spam_complaint",
                BounceClass::Unsubscribe => "unsubscribe",
                BounceClass::AutoReply => "auto_reply",
                BounceClass::Other => "bounce",
            },
            Self::SpamComplaint => "spam_complaint",
            Self::Opened => "open",
            Self::Clicked { .. } => "click",
            Self::SubscriptionChanged { suppress: true, .. } => "suppressed",
            Self::SubscriptionChanged {
                suppress: false, ..
            } => "reactivated",
            Self::Unknown { .. } => "unknown",
        }
    }
}

/// One observed event, whatever its source.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventKind,
    pub source: Source,
    /// Identifies this event across redeliveries (see [`crate::dedup`]).
    pub dedup_key: String,
    pub recipient: Option<EmailAddress>,
    /// Postmark's MessageID.
    pub message_id: Option<String>,
    pub at: DateTime<Utc>,
    pub trace: MessageTrace,
    pub stream: Option<String>,
    pub client: Option<ClientInfo>,
    /// Why the event looks automated (a scanner, a prefetch, a click right after delivery), if it does.
    pub automated: Option<String>,
    /// What an admin sees of the event in the activity log.
    pub detail: serde_json::Value,
}

/// A change of the subscriber's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    Suppress(SuppressionReason),
    Reactivate,
}

/// What one event does, for the store to carry out atomically.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The status change the event asks for; what it does to the standing is decided with the subscriber's
    /// state by [`crate::standing::decide`].
    pub status: Option<StatusChange>,
    /// Counters on the subscriber's profile.
    pub subscriber_counters: Vec<(&'static str, i64)>,
    /// Counters of the message's campaign (engagement counters are decided by the store, which knows the
    /// message's engagement so far).
    pub campaign_counters: Vec<(&'static str, i64)>,
    /// Fields set on the message's state: name and time.
    pub message_times: Vec<&'static str>,
    /// An open or click, counted once per person across sources.
    pub engagement: Option<EngagementKind>,
}

/// Maps Postmark's SubscriptionChange reason and origin to ours.
pub fn suppression_reason(reason: Option<&str>, origin: Option<&str>) -> SuppressionReason {
    match reason {
        Some("HardBounce") => SuppressionReason::HardBounce,
        Some("SpamComplaint") => SuppressionReason::SpamComplaint,
        _ if origin == Some("Recipient") => SuppressionReason::Unsubscribed,
        _ => SuppressionReason::ManualSuppression,
    }
}

/// Decides what an event does.
pub fn plan(event: &Event) -> Plan {
    let mut p = Plan {
        status: None,
        subscriber_counters: Vec::new(),
        campaign_counters: Vec::new(),
        message_times: Vec::new(),
        engagement: None,
    };
    match &event.kind {
        EventKind::Delivered => {
            p.campaign_counters.push(("delivered", 1));
            p.subscriber_counters.push(("delivered", 1));
            p.message_times.push("delivered_at");
        }
        EventKind::Bounced { class, .. } => {
            p.message_times.push("bounced_at");
            match class {
                BounceClass::Hard => {
                    p.status = Some(StatusChange::Suppress(SuppressionReason::HardBounce));
                    p.campaign_counters.push(("bounced_hard", 1));
                    p.subscriber_counters.push(("bounced_hard", 1));
                }
                BounceClass::Soft => {
                    p.campaign_counters.push(("bounced_soft", 1));
                    p.subscriber_counters.push(("bounced_soft", 1));
                }
                BounceClass::Complaint => {
                    p.status = Some(StatusChange::Suppress(SuppressionReason::SpamComplaint));
                    p.campaign_counters.push(("complaints", 1));
                    p.subscriber_counters.push(("complaints", 1));
                }
                BounceClass::Unsubscribe => {
                    p.status = Some(StatusChange::Suppress(SuppressionReason::Unsubscribed));
                    p.campaign_counters.push(("unsubscribes", 1));
                }
                BounceClass::AutoReply | BounceClass::Other => {
                    p.campaign_counters.push(("bounced_other", 1));
                }
            }
        }
        EventKind::SpamComplaint => {
            p.status = Some(StatusChange::Suppress(SuppressionReason::SpamComplaint));
            p.campaign_counters.push(("complaints", 1));
            p.subscriber_counters.push(("complaints", 1));
            p.message_times.push("complained_at");
        }
        EventKind::Opened => {
            p.engagement = Some(EngagementKind::Open);
            p.subscriber_counters.push(("opens", 1));
            p.message_times.push("last_opened_at");
        }
        EventKind::Clicked { url } => {
            p.engagement = Some(EngagementKind::Click { url: url.clone() });
            p.subscriber_counters.push(("clicks", 1));
            p.message_times.push("last_clicked_at");
        }
        EventKind::SubscriptionChanged {
            suppress,
            reason,
            origin,
        } => {
            p.status = Some(if *suppress {
                StatusChange::Suppress(suppression_reason(reason.as_deref(), origin.as_deref()))
            } else {
                StatusChange::Reactivate
            });
            if *suppress
                && suppression_reason(reason.as_deref(), origin.as_deref())
                    == SuppressionReason::Unsubscribed
            {
                p.campaign_counters.push(("unsubscribes", 1));
            }
        }
        EventKind::Unknown { .. } => {}
    }
    if event.recipient.is_none() {
        p.status = None;
        p.subscriber_counters.clear();
    }
    if event.trace.campaign.is_none() {
        p.campaign_counters.clear();
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Campaign, CampaignKind};

    fn event(kind: EventKind) -> Event {
        Event {
            kind,
            source: Source::Postmark,
            dedup_key: "k".into(),
            recipient: Some(EmailAddress::parse("r@example.com").unwrap()),
            message_id: Some("m".into()),
            at: Utc::now(),
            trace: MessageTrace {
                campaign: Some(Campaign {
                    kind: CampaignKind::Broadcast,
                    id: "b1".into(),
                }),
                ..MessageTrace::default()
            },
            stream: None,
            client: None,
            automated: None,
            detail: serde_json::Value::Null,
        }
    }

    fn bounce(class: BounceClass) -> EventKind {
        EventKind::Bounced {
            class,
            bounce_type: "x".into(),
        }
    }

    #[test]
    fn each_event_does_what_the_platform_expects() {
        let hard = plan(&event(bounce(BounceClass::Hard)));
        assert_eq!(
            hard.status,
            Some(StatusChange::Suppress(SuppressionReason::HardBounce))
        );
        assert_eq!(hard.campaign_counters, vec![("bounced_hard", 1)]);

        let soft = plan(&event(bounce(BounceClass::Soft)));
        assert_eq!(
            soft.status, None,
            "a soft bounce leaves the subscriber active"
        );
        assert_eq!(soft.campaign_counters, vec![("bounced_soft", 1)]);

        let spam = plan(&event(EventKind::SpamComplaint));
        assert_eq!(
            spam.status,
            Some(StatusChange::Suppress(SuppressionReason::SpamComplaint))
        );

        let delivered = plan(&event(EventKind::Delivered));
        assert_eq!(delivered.campaign_counters, vec![("delivered", 1)]);
        assert_eq!(delivered.message_times, vec!["delivered_at"]);

        let open = plan(&event(EventKind::Opened));
        assert_eq!(open.engagement, Some(EngagementKind::Open));
        assert!(
            open.campaign_counters.is_empty(),
            "engagement counts are decided with state"
        );

        let unknown = plan(&event(EventKind::Unknown { record_type: None }));
        assert_eq!(unknown.status, None);
        assert!(unknown.campaign_counters.is_empty());
    }

    #[test]
    fn subscription_changes_map_postmark_reasons() {
        let change = |suppress, reason: Option<&str>, origin: Option<&str>| {
            plan(&event(EventKind::SubscriptionChanged {
                suppress,
                reason: reason.map(str::to_owned),
                origin: origin.map(str::to_owned),
            }))
            .status
        };
        assert_eq!(
            change(true, Some("HardBounce"), Some("Recipient")),
            Some(StatusChange::Suppress(SuppressionReason::HardBounce))
        );
        assert_eq!(
            change(true, Some("ManualSuppression"), Some("Recipient")),
            Some(StatusChange::Suppress(SuppressionReason::Unsubscribed))
        );
        assert_eq!(
            change(true, Some("ManualSuppression"), Some("Customer")),
            Some(StatusChange::Suppress(SuppressionReason::ManualSuppression))
        );
        assert_eq!(
            change(false, None, Some("Customer")),
            Some(StatusChange::Reactivate)
        );
    }

    #[test]
    fn without_recipient_or_campaign_nothing_is_attributed() {
        let mut e = event(bounce(BounceClass::Hard));
        e.recipient = None;
        e.trace.campaign = None;
        let p = plan(&e);
        assert_eq!(p.status, None);
        assert!(p.campaign_counters.is_empty() && p.subscriber_counters.is_empty());
        assert_eq!(p.message_times, vec!["bounced_at"]);
    }
}
