//! Subscriber state as the integration's automatic actions change it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::InvalidValue;
use crate::standing::Strength;

/// Where a subscriber stands. Everything but `Active` stops marketing mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SubscriberStatus {
    #[default]
    Active,
    /// A hard bounce: the mailbox does not exist or refuses mail for good.
    Deactivated,
    /// The recipient marked a message as spam.
    Complained,
    /// The recipient unsubscribed (through Postmark's unsubscribe link or the platform).
    Unsubscribed,
}

impl SubscriberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Deactivated => "deactivated",
            Self::Complained => "complained",
            Self::Unsubscribed => "unsubscribed",
        }
    }
}

impl fmt::Display for SubscriberStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SubscriberStatus {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "deactivated" => Ok(Self::Deactivated),
            "complained" => Ok(Self::Complained),
            "unsubscribed" => Ok(Self::Unsubscribed),
            other => Err(InvalidValue {
                what: "status",
                why: format!("unknown subscriber status {other:?}"),
            }),
        }
    }
}

/// Why an address is on the suppression list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SuppressionReason {
    /// Postmark's `HardBounce`: a permanent delivery failure.
    HardBounce,
    /// Postmark's `SpamComplaint`. Postmark refuses to reactivate these itself.
    SpamComplaint,
    /// The recipient unsubscribed (Postmark reports it as `ManualSuppression` with `Origin: Recipient`).
    Unsubscribed,
    /// Suppressed by an admin, here or in Postmark.
    ManualSuppression,
    /// Postmark answered "inactive recipient" (406) at send time without telling us why.
    InactiveRecipient,
}

impl SuppressionReason {
    pub const ALL: [SuppressionReason; 5] = [
        Self::HardBounce,
        Self::SpamComplaint,
        Self::Unsubscribed,
        Self::ManualSuppression,
        Self::InactiveRecipient,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::HardBounce => "HardBounce",
            Self::SpamComplaint => "SpamComplaint",
            Self::Unsubscribed => "Unsubscribed",
            Self::ManualSuppression => "ManualSuppression",
            Self::InactiveRecipient => "InactiveRecipient",
        }
    }

    /// How strongly this suppression holds against others (see [`crate::standing`]): a complaint over a
    /// hard bounce or an inactive recipient, over an unsubscribe or a manual suppression.
    pub fn strength(self) -> Strength {
        match self {
            Self::SpamComplaint => Strength::Complained,
            Self::HardBounce | Self::InactiveRecipient => Strength::Deactivated,
            Self::Unsubscribed | Self::ManualSuppression => Strength::Unsubscribed,
        }
    }

    /// The subscriber status that goes with this suppression.
    pub fn status(self) -> SubscriberStatus {
        self.strength().status()
    }

    /// Whether this suppression also stops transactional mail.
    ///
    /// A mailbox that does not exist, or that Postmark has deactivated, cannot receive a receipt either; a
    /// spam complaint makes Postmark itself refuse every stream of the server for that address. An
    /// unsubscribe only withdraws consent to marketing, so receipts and password resets still go out.
    pub fn blocks_transactional(self) -> bool {
        !matches!(self, Self::Unsubscribed | Self::ManualSuppression)
    }
}

impl fmt::Display for SuppressionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SuppressionReason {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| InvalidValue {
                what: "reason",
                why: format!(
                    "{s:?} is not one of HardBounce, SpamComplaint, Unsubscribed, ManualSuppression, InactiveRecipient"
                ),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_reasons_round_trip_through_text() {
        for s in [
            SubscriberStatus::Active,
            SubscriberStatus::Deactivated,
            SubscriberStatus::Complained,
            SubscriberStatus::Unsubscribed,
        ] {
            assert_eq!(s.as_str().parse::<SubscriberStatus>().unwrap(), s);
        }
        for r in SuppressionReason::ALL {
            assert_eq!(r.as_str().parse::<SuppressionReason>().unwrap(), r);
        }
        assert!("Bogus".parse::<SuppressionReason>().is_err());
    }

    #[test]
    fn each_reason_sets_the_status_a_user_expects() {
        assert_eq!(
            SuppressionReason::HardBounce.status(),
            SubscriberStatus::Deactivated
        );
        assert_eq!(
            SuppressionReason::SpamComplaint.status(),
            SubscriberStatus::Complained
        );
        assert_eq!(
            SuppressionReason::Unsubscribed.status(),
            SubscriberStatus::Unsubscribed
        );
        assert!(SuppressionReason::SpamComplaint.blocks_transactional());
        assert!(!SuppressionReason::Unsubscribed.blocks_transactional());
    }
}
