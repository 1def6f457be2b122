//! What a delivery, bounce, complaint, open, click or subscription change does to the integration's state,
//! decided without I/O. [`enrich`] completes an event from its message's state; [`plan`] turns it into a
//! [`Plan`]: the standing change it asks for (decided with the subscriber's state by
//! [`crate::standing::decide`]), the campaign counters it moves, and whether it is an open or click, whose
//! counting [`crate::engagement::MessageEngagement`] decides per message and [`crate::stats::tally`] per
//! batch.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::automation::automated_reason;
use crate::engagement::EngagementKind;
use crate::stats::Counter;
use crate::trace::{Campaign, MessageTrace};
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
    /// Postmark accepted the message over SMTP and then dropped it, because the recipient is suppressed
    /// there (an `SMTPApiError` bounce): the message was never sent, so its job ends failed, the campaign
    /// counts it failed instead of sent, and the address is suppressed here too.
    Dropped,
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
                BounceClass::Dropped => "dropped",
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

/// One observed event, whatever its source. It is stored as recorded (serialised), and read back by the
/// stream function and the activity log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    #[serde(default)]
    pub detail: serde_json::Value,
}

impl Event {
    /// The event as the subscriber's activity log shows it. A status change that left the standing as it
    /// was (weaker than the standing, or older than a reactivation) is marked `standing_unchanged`.
    pub fn activity_detail(&self, standing_unchanged: bool) -> serde_json::Value {
        let mut detail = serde_json::json!({
            "source": self.source.as_str(),
            "details": self.detail,
        });
        for (k, v) in [
            (
                "message_id",
                self.message_id.as_ref().map(|m| serde_json::json!(m)),
            ),
            (
                "job_id",
                self.trace.job_id.as_ref().map(|j| serde_json::json!(j)),
            ),
            (
                "campaign",
                self.trace.campaign.as_ref().map(|c| serde_json::json!(c)),
            ),
            (
                "stream",
                self.stream.as_ref().map(|st| serde_json::json!(st)),
            ),
            ("client", self.client.as_ref().map(|c| serde_json::json!(c))),
            (
                "automated",
                self.automated.as_ref().map(|a| serde_json::json!(a)),
            ),
            (
                "standing_unchanged",
                standing_unchanged.then_some(serde_json::json!(true)),
            ),
        ] {
            if let Some(v) = v {
                detail[k] = v;
            }
        }
        detail
    }
}

/// What the sender recorded about a message, as far as an event needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageState {
    pub recipient: Option<EmailAddress>,
    pub campaign: Option<Campaign>,
    pub subscriber_id: Option<String>,
    pub message_id: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Fills in from the message's state what the event itself does not carry (a native event carries only
/// its job), and flags a click that came too soon after the message was sent: a scanner following every
/// link. The send time comes from the message's metadata, or from the state.
pub fn enrich(event: &mut Event, state: Option<&MessageState>) {
    if let Some(state) = state {
        if event.recipient.is_none() {
            event.recipient = state.recipient.clone();
        }
        if event.trace.campaign.is_none() {
            event.trace.campaign = state.campaign.clone();
        }
        if event.trace.subscriber_id.is_none() {
            event.trace.subscriber_id = state.subscriber_id.clone();
        }
        if event.message_id.is_none() {
            event.message_id = state.message_id.clone();
        }
        if event.trace.sent_at.is_none() {
            event.trace.sent_at = state.sent_at;
        }
    }
    if event.automated.is_none() && matches!(event.kind, EventKind::Clicked { .. }) {
        let since = event.trace.sent_at.map(|t| (event.at - t).num_seconds());
        event.automated = automated_reason(None, true, since);
    }
}

/// A change of the subscriber's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    Suppress(SuppressionReason),
    Reactivate,
}

/// What one event does.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The status change the event asks for; what it does to the standing is decided with the subscriber's
    /// state by [`crate::standing::decide`].
    pub status: Option<StatusChange>,
    /// The campaign counters the event moves by itself (an open's or click's are decided with the
    /// message's engagement so far).
    pub counters: Vec<Counter>,
    /// The campaign counters the event takes back: a dropped message was counted sent when Postmark
    /// accepted it.
    pub uncounts: Vec<Counter>,
    /// Whether the event ends the message's job as failed, after the sender recorded it sent.
    pub fails_job: bool,
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
    let (status, counters, engagement) = match &event.kind {
        EventKind::Delivered => (None, vec![Counter::Delivered], None),
        EventKind::Bounced { class, .. } => match class {
            BounceClass::Hard => (
                Some(StatusChange::Suppress(SuppressionReason::HardBounce)),
                vec![Counter::BouncedHard],
                None,
            ),
            BounceClass::Soft => (None, vec![Counter::BouncedSoft], None),
            BounceClass::Complaint => (
                Some(StatusChange::Suppress(SuppressionReason::SpamComplaint)),
                vec![Counter::Complaints],
                None,
            ),
            BounceClass::Unsubscribe => (
                Some(StatusChange::Suppress(SuppressionReason::Unsubscribed)),
                vec![Counter::Unsubscribes],
                None,
            ),
            BounceClass::AutoReply | BounceClass::Other => {
                (None, vec![Counter::BouncedOther], None)
            }
            BounceClass::Dropped => (
                Some(StatusChange::Suppress(SuppressionReason::InactiveRecipient)),
                Vec::new(),
                None,
            ),
        },
        EventKind::SpamComplaint => (
            Some(StatusChange::Suppress(SuppressionReason::SpamComplaint)),
            vec![Counter::Complaints],
            None,
        ),
        EventKind::Opened => (None, Vec::new(), Some(EngagementKind::Open)),
        EventKind::Clicked { url } => (
            None,
            Vec::new(),
            Some(EngagementKind::Click { url: url.clone() }),
        ),
        EventKind::SubscriptionChanged {
            suppress,
            reason,
            origin,
        } => {
            if *suppress {
                let reason = suppression_reason(reason.as_deref(), origin.as_deref());
                let counters = if reason == SuppressionReason::Unsubscribed {
                    vec![Counter::Unsubscribes]
                } else {
                    Vec::new()
                };
                (Some(StatusChange::Suppress(reason)), counters, None)
            } else {
                (Some(StatusChange::Reactivate), Vec::new(), None)
            }
        }
        EventKind::Unknown { .. } => (None, Vec::new(), None),
    };
    // A dropped message of one of our jobs moves from sent to failed; one sent elsewhere counts nothing.
    let fails_job = matches!(
        event.kind,
        EventKind::Bounced {
            class: BounceClass::Dropped,
            ..
        }
    ) && event.trace.job_id.is_some();
    let (counters, uncounts) = match (&event.trace.campaign, fails_job) {
        (None, _) => (Vec::new(), Vec::new()),
        (Some(_), true) => (vec![Counter::Failed], vec![Counter::Sent]),
        (Some(_), false) => (counters, Vec::new()),
    };
    Plan {
        status: status.filter(|_| event.recipient.is_some()),
        counters,
        uncounts,
        fails_job,
        engagement,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::CampaignKind;

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
        assert_eq!(hard.counters, vec![Counter::BouncedHard]);

        let soft = plan(&event(bounce(BounceClass::Soft)));
        assert_eq!(
            soft.status, None,
            "a soft bounce leaves the subscriber active"
        );
        assert_eq!(soft.counters, vec![Counter::BouncedSoft]);

        let spam = plan(&event(EventKind::SpamComplaint));
        assert_eq!(
            spam.status,
            Some(StatusChange::Suppress(SuppressionReason::SpamComplaint))
        );

        let delivered = plan(&event(EventKind::Delivered));
        assert_eq!(delivered.counters, vec![Counter::Delivered]);

        let open = plan(&event(EventKind::Opened));
        assert_eq!(open.engagement, Some(EngagementKind::Open));
        assert!(
            open.counters.is_empty(),
            "engagement counts are decided with state"
        );

        let unknown = plan(&event(EventKind::Unknown { record_type: None }));
        assert_eq!(unknown.status, None);
        assert!(unknown.counters.is_empty());
    }

    #[test]
    fn a_message_postmark_dropped_fails_its_job_and_moves_from_sent_to_failed() {
        let mut dropped = event(bounce(BounceClass::Dropped));
        dropped.trace.job_id = Some("j-1".into());
        let p = plan(&dropped);
        assert_eq!(
            p.status,
            Some(StatusChange::Suppress(SuppressionReason::InactiveRecipient))
        );
        assert!(p.fails_job);
        assert_eq!(p.counters, vec![Counter::Failed]);
        assert_eq!(p.uncounts, vec![Counter::Sent]);

        let elsewhere = plan(&event(bounce(BounceClass::Dropped)));
        assert!(!elsewhere.fails_job, "no job of ours, nothing to fail");
        assert!(elsewhere.counters.is_empty() && elsewhere.uncounts.is_empty());
        assert!(
            elsewhere.status.is_some(),
            "the address is suppressed all the same"
        );

        for class in [BounceClass::Hard, BounceClass::Soft, BounceClass::Other] {
            let mut e = event(bounce(class));
            e.trace.job_id = Some("j-1".into());
            let p = plan(&e);
            assert!(!p.fails_job && p.uncounts.is_empty(), "{class:?}");
        }
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
        assert!(p.counters.is_empty());
    }

    #[test]
    fn an_unsubscribe_counts_and_other_suppressions_do_not() {
        let change = |reason: &str, origin: &str| {
            plan(&event(EventKind::SubscriptionChanged {
                suppress: true,
                reason: Some(reason.into()),
                origin: Some(origin.into()),
            }))
            .counters
        };
        assert_eq!(
            change("ManualSuppression", "Recipient"),
            vec![Counter::Unsubscribes]
        );
        assert!(change("HardBounce", "Recipient").is_empty());
        let mut reactivation = event(EventKind::SubscriptionChanged {
            suppress: false,
            reason: None,
            origin: None,
        });
        reactivation.trace.campaign = None;
        assert_eq!(plan(&reactivation).status, Some(StatusChange::Reactivate));
    }

    #[test]
    fn a_native_event_takes_what_it_lacks_from_its_message() {
        let sent = Utc::now() - chrono::Duration::seconds(3);
        let state = MessageState {
            recipient: Some(EmailAddress::parse("s@example.com").unwrap()),
            campaign: Some(Campaign {
                kind: CampaignKind::Sequence,
                id: "s1".into(),
            }),
            subscriber_id: Some("sub-1".into()),
            message_id: Some("m-1".into()),
            sent_at: Some(sent),
        };
        let mut e = event(EventKind::Opened);
        e.recipient = None;
        e.trace = MessageTrace::default();
        e.message_id = None;
        enrich(&mut e, Some(&state));
        assert_eq!(e.recipient, state.recipient);
        assert_eq!(e.trace.campaign, state.campaign);
        assert_eq!(e.trace.subscriber_id.as_deref(), Some("sub-1"));
        assert_eq!(e.message_id.as_deref(), Some("m-1"));
        assert_eq!(e.automated, None, "opens have no timing rule");

        let mut own = event(EventKind::Opened);
        enrich(&mut own, Some(&state));
        assert_eq!(
            own.trace.campaign,
            event(EventKind::Opened).trace.campaign,
            "what the event carries wins"
        );
    }

    #[test]
    fn a_click_right_after_sending_is_flagged_and_a_later_one_is_not() {
        let click = |after: i64, sent_in_metadata: bool| {
            let mut e = event(EventKind::Clicked {
                url: "https://a.example/".into(),
            });
            let sent = e.at - chrono::Duration::seconds(after);
            let state = MessageState {
                sent_at: Some(sent),
                ..MessageState::default()
            };
            if sent_in_metadata {
                e.trace.sent_at = Some(sent);
                enrich(&mut e, None);
            } else {
                enrich(&mut e, Some(&state));
            }
            e.automated
        };
        assert!(click(3, true).is_some_and(|r| r.contains("3 s")));
        assert!(
            click(3, false).is_some(),
            "the state's send time serves too"
        );
        assert_eq!(click(600, true), None);
        let mut unknown = event(EventKind::Clicked {
            url: "https://a.example/".into(),
        });
        enrich(&mut unknown, None);
        assert_eq!(unknown.automated, None, "no send time, no timing rule");
    }

    #[test]
    fn a_recorded_event_reads_back_as_it_was() {
        let mut e = event(EventKind::Bounced {
            class: BounceClass::Soft,
            bounce_type: "SoftBounce".into(),
        });
        e.client = Some(ClientInfo {
            user_agent: Some("ua".into()),
            ..ClientInfo::default()
        });
        e.detail = serde_json::json!({"details": "smtp;450"});
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), e);
    }
}
