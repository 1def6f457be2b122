//! The platform's event feed, version 1: every outcome the platform cares about, as one JSON document
//! with a stable id. The stream function builds these from the table's stream and publishes them to
//! EventBridge; `schemas/feed-event.v1.schema.json` describes the same contract for the platform's apps,
//! `events/feed/` holds an example of every type, and tests hold the three together. `docs/feed.md` is
//! the consumers' page.
//!
//! What is published, and what is not:
//!
//! | from | feed type |
//! |---|---|
//! | a job sent / failed / skipped | `email.sent` / `email.failed` / `email.skipped` |
//! | a delivery | `email.delivered` |
//! | a hard or soft bounce | `email.bounced`, `bounce_class` `hard` or `soft` |
//! | a spam complaint (its own record type, or a bounce of type `SpamComplaint`) | `email.complained` |
//! | an unsubscribe (a bounce of type `Unsubscribe`, or a subscription change by the recipient) | `email.unsubscribed` |
//! | a subscription change that suppresses for another reason (hard bounce, complaint, an admin) | `email.suppressed` |
//! | a subscription change that lifts a suppression | `email.reactivated` |
//! | an open / a click, from Postmark or our own tracking | `email.opened` / `email.clicked` |
//! | an auto-reply (out of office, challenge, address change) | nothing: the mail reached a person, and it says nothing about the address |
//! | any other bounce type (subscribe requests, open-relay tests, Postmark's own errors) | nothing: it neither delivers nor fails the mail for good |
//! | a record type we do not act on | nothing |
//!
//! A suppression reported by a subscription change is `email.suppressed`, not a second `email.bounced` or
//! `email.complained`: Postmark reports the bounce or complaint itself as its own event too, and the
//! platform would otherwise count it twice. What is not published stays in the subscriber's activity log.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::events::{BounceClass, Event, EventKind, Source, plan, suppression_reason};
use crate::trace::Campaign;
use crate::{EmailAddress, EmailType, SuppressionReason};

/// The feed's format. A change that could break a consumer (a field removed, renamed or given another
/// meaning) makes a new version; fields may be added within a version.
pub const VERSION: u32 = 1;

/// Every `type` of version 1, in the order the documentation lists them.
pub const TYPES: [&str; 11] = [
    "email.sent",
    "email.failed",
    "email.skipped",
    "email.delivered",
    "email.bounced",
    "email.complained",
    "email.unsubscribed",
    "email.suppressed",
    "email.reactivated",
    "email.opened",
    "email.clicked",
];

/// One feed event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedEvent {
    pub version: u32,
    /// The same for every copy of one outcome (a redelivered webhook, a stream batch published again):
    /// consumers dedup on it.
    pub id: String,
    /// `type` and the fields of that type.
    #[serde(flatten)]
    pub kind: FeedKind,
    #[serde(with = "rfc3339_millis")]
    pub occurred_at: DateTime<Utc>,
    pub source: FeedSource,
    pub recipient: Option<EmailAddress>,
    pub subscriber_id: Option<String>,
    pub job_id: Option<String>,
    /// Postmark's MessageID.
    pub message_id: Option<String>,
    pub email_type: Option<EmailType>,
    pub campaign: Option<Campaign>,
    /// The Postmark message stream.
    pub stream: Option<String>,
}

/// Who observed the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedSource {
    /// The sender, deciding a job's outcome.
    Sender,
    /// A Postmark webhook.
    Postmark,
    /// Our own open pixel or click redirect.
    Native,
}

/// How bad a bounce is: a hard bounce deactivates the subscriber, a soft one does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BounceSeverity {
    Hard,
    Soft,
}

/// What happened, with what only that type carries.
///
/// `standing_changed` says whether the event moved the subscriber's standing: false for a change weaker
/// than the standing already held (an unsubscribe after a hard bounce) or older than a later reactivation.
/// A consumer that mirrors subscriber states acts on the events where it is true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum FeedKind {
    /// Postmark accepted the message (`message_id` is set).
    #[serde(rename = "email.sent")]
    Sent {},
    /// Postmark refused the message for good, or dropped it after accepting it over SMTP.
    #[serde(rename = "email.failed")]
    Failed {
        reason: String,
        /// Postmark's `ErrorCode`, when Postmark gave one.
        error_code: Option<i64>,
    },
    /// Not sent: the recipient is suppressed or inactive.
    #[serde(rename = "email.skipped")]
    Skipped { reason: String },
    #[serde(rename = "email.delivered")]
    Delivered {},
    #[serde(rename = "email.bounced")]
    Bounced {
        bounce_class: BounceSeverity,
        /// Postmark's bounce `Type`, e.g. `HardBounce`, `Transient`, `DnsError`.
        bounce_type: String,
        standing_changed: bool,
    },
    #[serde(rename = "email.complained")]
    Complained { standing_changed: bool },
    #[serde(rename = "email.unsubscribed")]
    Unsubscribed { standing_changed: bool },
    /// Postmark suppressed the address for a reason other than an unsubscribe.
    #[serde(rename = "email.suppressed")]
    Suppressed {
        suppression_reason: Suppressed,
        /// Postmark's `Origin`: `Recipient`, `Customer` or `Admin`.
        origin: Option<String>,
        standing_changed: bool,
    },
    /// Postmark lifted the address's suppression.
    #[serde(rename = "email.reactivated")]
    Reactivated {
        origin: Option<String>,
        standing_changed: bool,
    },
    #[serde(rename = "email.opened")]
    Opened {
        /// Why the open looks automated (a mail scanner, a privacy proxy's prefetch), if it does.
        automated: Option<String>,
    },
    #[serde(rename = "email.clicked")]
    Clicked {
        url: String,
        /// Why the click looks automated (a link scanner, a click right after delivery), if it does.
        automated: Option<String>,
    },
}

/// Why Postmark suppressed an address, for `email.suppressed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Suppressed {
    HardBounce,
    SpamComplaint,
    ManualSuppression,
}

impl FeedKind {
    /// The `type` field, also the EventBridge detail type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Sent {} => "email.sent",
            Self::Failed { .. } => "email.failed",
            Self::Skipped { .. } => "email.skipped",
            Self::Delivered {} => "email.delivered",
            Self::Bounced { .. } => "email.bounced",
            Self::Complained { .. } => "email.complained",
            Self::Unsubscribed { .. } => "email.unsubscribed",
            Self::Suppressed { .. } => "email.suppressed",
            Self::Reactivated { .. } => "email.reactivated",
            Self::Opened { .. } => "email.opened",
            Self::Clicked { .. } => "email.clicked",
        }
    }
}

/// How a job ended, as far as the feed tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnding {
    Sent,
    Failed {
        reason: String,
        error_code: Option<i64>,
    },
    Skipped {
        reason: String,
    },
}

impl JobEnding {
    fn name(&self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Failed { .. } => "failed",
            Self::Skipped { .. } => "skipped",
        }
    }
}

/// A job that has ended, with what its item knows about its message.
#[derive(Debug, Clone, PartialEq)]
pub struct EndedJob {
    pub job_id: String,
    pub ending: JobEnding,
    /// When the outcome was decided.
    pub at: DateTime<Utc>,
    pub recipient: Option<EmailAddress>,
    pub subscriber_id: Option<String>,
    pub message_id: Option<String>,
    pub email_type: Option<EmailType>,
    pub campaign: Option<Campaign>,
    pub stream: Option<String>,
}

/// A stable id: 32 hex digits of a digest of what identifies the outcome, so that it reveals nothing of
/// the recipient and every copy of the outcome gets the same one.
fn stable_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(b"feed");
    for p in parts {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl FeedEvent {
    /// The feed event of a recorded webhook or native event, or `None` when the platform has no use for
    /// it (see the module's table). `standing_unchanged` is what recording the event decided: the status
    /// change it asked for left the subscriber's standing as it was.
    pub fn from_event(event: &Event, standing_unchanged: bool) -> Option<Self> {
        // Only an event that asks for a status change, for a known recipient, can move a standing.
        let standing_changed = plan(event).status.is_some() && !standing_unchanged;
        let kind = match &event.kind {
            EventKind::Delivered => FeedKind::Delivered {},
            EventKind::Bounced { class, bounce_type } => match class {
                BounceClass::Hard | BounceClass::Soft => FeedKind::Bounced {
                    bounce_class: if *class == BounceClass::Hard {
                        BounceSeverity::Hard
                    } else {
                        BounceSeverity::Soft
                    },
                    bounce_type: bounce_type.clone(),
                    standing_changed,
                },
                BounceClass::Complaint => FeedKind::Complained { standing_changed },
                BounceClass::Unsubscribe => FeedKind::Unsubscribed { standing_changed },
                // A dropped message is published as its job's failure, from the job's change.
                BounceClass::AutoReply | BounceClass::Other | BounceClass::Dropped => return None,
            },
            EventKind::SpamComplaint => FeedKind::Complained { standing_changed },
            EventKind::Opened => FeedKind::Opened {
                automated: event.automated.clone(),
            },
            EventKind::Clicked { url } => FeedKind::Clicked {
                url: url.clone(),
                automated: event.automated.clone(),
            },
            EventKind::SubscriptionChanged {
                suppress: false,
                origin,
                ..
            } => FeedKind::Reactivated {
                origin: origin.clone(),
                standing_changed,
            },
            EventKind::SubscriptionChanged {
                suppress: true,
                reason,
                origin,
            } => {
                let why = match suppression_reason(reason.as_deref(), origin.as_deref()) {
                    SuppressionReason::Unsubscribed => {
                        return Some(Self::of_event(
                            event,
                            FeedKind::Unsubscribed { standing_changed },
                        ));
                    }
                    SuppressionReason::HardBounce => Suppressed::HardBounce,
                    SuppressionReason::SpamComplaint => Suppressed::SpamComplaint,
                    SuppressionReason::ManualSuppression | SuppressionReason::InactiveRecipient => {
                        Suppressed::ManualSuppression
                    }
                };
                FeedKind::Suppressed {
                    suppression_reason: why,
                    origin: origin.clone(),
                    standing_changed,
                }
            }
            EventKind::Unknown { .. } => return None,
        };
        Some(Self::of_event(event, kind))
    }

    fn of_event(event: &Event, kind: FeedKind) -> Self {
        Self {
            version: VERSION,
            id: stable_id(&["event", &event.dedup_key]),
            kind,
            occurred_at: event.at,
            source: match event.source {
                Source::Postmark => FeedSource::Postmark,
                Source::Native => FeedSource::Native,
            },
            recipient: event.recipient.clone(),
            subscriber_id: event.trace.subscriber_id.clone(),
            job_id: event.trace.job_id.clone(),
            message_id: event.message_id.clone(),
            email_type: event.trace.email_type,
            campaign: event.trace.campaign.clone(),
            stream: event.stream.clone(),
        }
    }

    /// The feed event of a job's outcome. A job ends once, so its id and outcome identify it.
    pub fn from_job(job: &EndedJob) -> Self {
        let kind = match &job.ending {
            JobEnding::Sent => FeedKind::Sent {},
            JobEnding::Failed { reason, error_code } => FeedKind::Failed {
                reason: reason.clone(),
                error_code: *error_code,
            },
            JobEnding::Skipped { reason } => FeedKind::Skipped {
                reason: reason.clone(),
            },
        };
        Self {
            version: VERSION,
            id: stable_id(&["job", &job.job_id, job.ending.name()]),
            kind,
            occurred_at: job.at,
            source: FeedSource::Sender,
            recipient: job.recipient.clone(),
            subscriber_id: job.subscriber_id.clone(),
            job_id: Some(job.job_id.clone()),
            message_id: job.message_id.clone(),
            email_type: job.email_type,
            campaign: job.campaign.clone(),
            stream: job.stream.clone(),
        }
    }

    /// The `type` field.
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }
}

/// Times as RFC 3339 in UTC with milliseconds, one fixed width: `2026-12-01T10:00:00.000Z`.
mod rfc3339_millis {
    use super::*;

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::{Value, json};

    use super::*;
    use crate::trace::{CampaignKind, MessageTrace};

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 5).unwrap()
    }

    fn event(kind: EventKind) -> Event {
        Event {
            kind,
            source: Source::Postmark,
            dedup_key: "pm:0123".into(),
            recipient: Some(EmailAddress::parse("Reader@Example.org").unwrap()),
            message_id: Some("m-1".into()),
            at: at(),
            trace: MessageTrace {
                job_id: Some("job-1".into()),
                email_type: Some(EmailType::Broadcast),
                campaign: Some(Campaign {
                    kind: CampaignKind::Broadcast,
                    id: "b-1".into(),
                }),
                subscriber_id: Some("sub-1".into()),
                ..MessageTrace::default()
            },
            stream: Some("broadcast".into()),
            client: None,
            automated: None,
            detail: Value::Null,
        }
    }

    fn bounce(class: BounceClass, bounce_type: &str) -> EventKind {
        EventKind::Bounced {
            class,
            bounce_type: bounce_type.into(),
        }
    }

    fn change(suppress: bool, reason: Option<&str>, origin: Option<&str>) -> EventKind {
        EventKind::SubscriptionChanged {
            suppress,
            reason: reason.map(str::to_owned),
            origin: origin.map(str::to_owned),
        }
    }

    fn kind_of(kind: EventKind, standing_unchanged: bool) -> Option<FeedKind> {
        FeedEvent::from_event(&event(kind), standing_unchanged).map(|f| f.kind)
    }

    #[test]
    fn each_event_kind_becomes_its_feed_type() {
        struct Case {
            what: &'static str,
            kind: EventKind,
            feed: Option<FeedKind>,
        }
        let cases = [
            Case {
                what: "a delivery",
                kind: EventKind::Delivered,
                feed: Some(FeedKind::Delivered {}),
            },
            Case {
                what: "a hard bounce",
                kind: bounce(BounceClass::Hard, "HardBounce"),
                feed: Some(FeedKind::Bounced {
                    bounce_class: BounceSeverity::Hard,
                    bounce_type: "HardBounce".into(),
                    standing_changed: true,
                }),
            },
            Case {
                what: "a soft bounce, which never moves a standing",
                kind: bounce(BounceClass::Soft, "Transient"),
                feed: Some(FeedKind::Bounced {
                    bounce_class: BounceSeverity::Soft,
                    bounce_type: "Transient".into(),
                    standing_changed: false,
                }),
            },
            Case {
                what: "a complaint reported as a bounce",
                kind: bounce(BounceClass::Complaint, "SpamComplaint"),
                feed: Some(FeedKind::Complained {
                    standing_changed: true,
                }),
            },
            Case {
                what: "an unsubscribe reported as a bounce",
                kind: bounce(BounceClass::Unsubscribe, "Unsubscribe"),
                feed: Some(FeedKind::Unsubscribed {
                    standing_changed: true,
                }),
            },
            Case {
                what: "an auto-reply",
                kind: bounce(BounceClass::AutoReply, "AutoResponder"),
                feed: None,
            },
            Case {
                what: "another bounce type",
                kind: bounce(BounceClass::Other, "OpenRelayTest"),
                feed: None,
            },
            Case {
                what: "a spam complaint",
                kind: EventKind::SpamComplaint,
                feed: Some(FeedKind::Complained {
                    standing_changed: true,
                }),
            },
            Case {
                what: "an open",
                kind: EventKind::Opened,
                feed: Some(FeedKind::Opened { automated: None }),
            },
            Case {
                what: "a click",
                kind: EventKind::Clicked {
                    url: "https://shop.example.com/sale".into(),
                },
                feed: Some(FeedKind::Clicked {
                    url: "https://shop.example.com/sale".into(),
                    automated: None,
                }),
            },
            Case {
                what: "an unsubscribe by the recipient",
                kind: change(true, Some("ManualSuppression"), Some("Recipient")),
                feed: Some(FeedKind::Unsubscribed {
                    standing_changed: true,
                }),
            },
            Case {
                what: "a suppression after a hard bounce",
                kind: change(true, Some("HardBounce"), Some("Recipient")),
                feed: Some(FeedKind::Suppressed {
                    suppression_reason: Suppressed::HardBounce,
                    origin: Some("Recipient".into()),
                    standing_changed: true,
                }),
            },
            Case {
                what: "a suppression after a complaint",
                kind: change(true, Some("SpamComplaint"), Some("Recipient")),
                feed: Some(FeedKind::Suppressed {
                    suppression_reason: Suppressed::SpamComplaint,
                    origin: Some("Recipient".into()),
                    standing_changed: true,
                }),
            },
            Case {
                what: "a suppression by an admin",
                kind: change(true, Some("ManualSuppression"), Some("Customer")),
                feed: Some(FeedKind::Suppressed {
                    suppression_reason: Suppressed::ManualSuppression,
                    origin: Some("Customer".into()),
                    standing_changed: true,
                }),
            },
            Case {
                what: "a reactivation",
                kind: change(false, None, Some("Customer")),
                feed: Some(FeedKind::Reactivated {
                    origin: Some("Customer".into()),
                    standing_changed: true,
                }),
            },
            Case {
                what: "a record type we do not act on",
                kind: EventKind::Unknown {
                    record_type: Some("Inbound".into()),
                },
                feed: None,
            },
        ];
        for case in cases {
            assert_eq!(kind_of(case.kind, false), case.feed, "{}", case.what);
        }
    }

    #[test]
    fn a_change_that_left_the_standing_says_so() {
        assert_eq!(
            kind_of(bounce(BounceClass::Hard, "HardBounce"), true),
            Some(FeedKind::Bounced {
                bounce_class: BounceSeverity::Hard,
                bounce_type: "HardBounce".into(),
                standing_changed: false,
            })
        );
        assert_eq!(
            kind_of(change(false, None, Some("Admin")), true),
            Some(FeedKind::Reactivated {
                origin: Some("Admin".into()),
                standing_changed: false,
            })
        );
        // Without a recipient there is no standing to move.
        let mut e = event(EventKind::SpamComplaint);
        e.recipient = None;
        assert_eq!(
            FeedEvent::from_event(&e, false).map(|f| f.kind),
            Some(FeedKind::Complained {
                standing_changed: false
            })
        );
    }

    #[test]
    fn automated_opens_and_clicks_carry_the_reason() {
        let mut e = event(EventKind::Opened);
        e.automated = Some("apple_mail_privacy_prefetch".into());
        e.source = Source::Native;
        let feed = FeedEvent::from_event(&e, false).unwrap();
        assert_eq!(
            feed.kind,
            FeedKind::Opened {
                automated: Some("apple_mail_privacy_prefetch".into())
            }
        );
        assert_eq!(feed.source, FeedSource::Native);
    }

    #[test]
    fn an_event_carries_its_trace_and_a_stable_id() {
        let e = event(EventKind::Delivered);
        let feed = FeedEvent::from_event(&e, false).unwrap();
        assert_eq!(feed.version, VERSION);
        assert_eq!(feed.occurred_at, at());
        assert_eq!(feed.source, FeedSource::Postmark);
        assert_eq!(feed.recipient, e.recipient);
        assert_eq!(feed.subscriber_id.as_deref(), Some("sub-1"));
        assert_eq!(feed.job_id.as_deref(), Some("job-1"));
        assert_eq!(feed.message_id.as_deref(), Some("m-1"));
        assert_eq!(feed.email_type, Some(EmailType::Broadcast));
        assert_eq!(feed.campaign, e.trace.campaign);
        assert_eq!(feed.stream.as_deref(), Some("broadcast"));

        // The id follows the dedup key, and only it: the same event recorded again keeps its id.
        let mut again = e.clone();
        again.at = at() + chrono::Duration::seconds(30);
        assert_eq!(FeedEvent::from_event(&again, true).unwrap().id, feed.id);
        let mut other = e.clone();
        other.dedup_key = "pm:0124".into();
        assert_ne!(FeedEvent::from_event(&other, false).unwrap().id, feed.id);
        assert_eq!(feed.id.len(), 32);
        assert!(feed.id.chars().all(|c| c.is_ascii_hexdigit()));
    }

    fn job(ending: JobEnding) -> EndedJob {
        EndedJob {
            job_id: "job-7".into(),
            ending,
            at: at(),
            recipient: Some(EmailAddress::parse("reader@example.org").unwrap()),
            subscriber_id: Some("sub-7".into()),
            message_id: None,
            email_type: Some(EmailType::Sequence),
            campaign: Some(Campaign {
                kind: CampaignKind::Sequence,
                id: "welcome".into(),
            }),
            stream: None,
        }
    }

    #[test]
    fn each_job_ending_becomes_its_feed_type_with_an_id_per_job_and_ending() {
        let sent = FeedEvent::from_job(&EndedJob {
            message_id: Some("pm-1".into()),
            stream: Some("broadcast".into()),
            ..job(JobEnding::Sent)
        });
        assert_eq!(sent.kind, FeedKind::Sent {});
        assert_eq!(sent.source, FeedSource::Sender);
        assert_eq!(sent.job_id.as_deref(), Some("job-7"));
        assert_eq!(sent.message_id.as_deref(), Some("pm-1"));
        let failed = FeedEvent::from_job(&job(JobEnding::Failed {
            reason: "Postmark refused the message: 300 Invalid email request".into(),
            error_code: Some(300),
        }));
        assert_eq!(
            failed.kind,
            FeedKind::Failed {
                reason: "Postmark refused the message: 300 Invalid email request".into(),
                error_code: Some(300),
            }
        );
        let skipped = FeedEvent::from_job(&job(JobEnding::Skipped {
            reason: "suppressed: HardBounce".into(),
        }));
        assert_eq!(
            skipped.kind,
            FeedKind::Skipped {
                reason: "suppressed: HardBounce".into()
            }
        );
        let ids = [&sent.id, &failed.id, &skipped.id];
        assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
        assert_eq!(FeedEvent::from_job(&job(JobEnding::Sent)).id, sent.id);
        let other_job = EndedJob {
            job_id: "job-8".into(),
            ..job(JobEnding::Sent)
        };
        assert_ne!(FeedEvent::from_job(&other_job).id, sent.id);
        // A job id and an event's dedup key never share an id.
        let mut e = event(EventKind::Delivered);
        e.dedup_key = "job-7".into();
        assert_ne!(FeedEvent::from_event(&e, false).unwrap().id, sent.id);
    }

    #[test]
    fn the_json_has_the_type_its_fields_and_every_common_field() {
        let feed =
            FeedEvent::from_event(&event(bounce(BounceClass::Hard, "HardBounce")), false).unwrap();
        let value = serde_json::to_value(&feed).unwrap();
        assert_eq!(
            value,
            json!({
                "version": 1,
                "id": feed.id,
                "type": "email.bounced",
                "bounce_class": "hard",
                "bounce_type": "HardBounce",
                "standing_changed": true,
                "occurred_at": "2026-12-01T10:00:05.000Z",
                "source": "postmark",
                "recipient": "Reader@Example.org",
                "subscriber_id": "sub-1",
                "job_id": "job-1",
                "message_id": "m-1",
                "email_type": "broadcast",
                "campaign": { "kind": "broadcast", "id": "b-1" },
                "stream": "broadcast",
            })
        );
        let sent = serde_json::to_value(FeedEvent::from_job(&job(JobEnding::Sent))).unwrap();
        assert_eq!(sent["type"], "email.sent");
        assert_eq!(sent["message_id"], Value::Null, "absent fields are null");
        assert_eq!(sent["stream"], Value::Null);
    }

    #[test]
    fn every_type_is_listed_and_reads_back() {
        let feeds: Vec<FeedEvent> = [
            event(EventKind::Delivered),
            event(bounce(BounceClass::Soft, "DnsError")),
            event(EventKind::SpamComplaint),
            event(change(true, Some("ManualSuppression"), Some("Recipient"))),
            event(change(true, Some("HardBounce"), None)),
            event(change(false, None, None)),
            event(EventKind::Opened),
            event(EventKind::Clicked {
                url: "https://example.com/".into(),
            }),
        ]
        .iter()
        .filter_map(|e| FeedEvent::from_event(e, false))
        .chain(
            [
                JobEnding::Sent,
                JobEnding::Failed {
                    reason: "r".into(),
                    error_code: None,
                },
                JobEnding::Skipped { reason: "r".into() },
            ]
            .into_iter()
            .map(|ending| FeedEvent::from_job(&job(ending))),
        )
        .collect();
        let mut names: Vec<&str> = feeds.iter().map(FeedEvent::type_name).collect();
        names.sort_unstable();
        let mut listed = TYPES.to_vec();
        listed.sort_unstable();
        assert_eq!(names, listed);
        for feed in feeds {
            let text = serde_json::to_string(&feed).unwrap();
            let value: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value["type"], feed.type_name());
            let back: FeedEvent = serde_json::from_str(&text).unwrap();
            assert_eq!(back, feed, "{text}");
        }
    }
}
