//! Bounce types and what each means for the recipient.

use crate::string_enum::string_enum;

string_enum! {
    /// A bounce's `Type`, as Postmark names it (see Postmark's bounce-types table).
    ///
    /// Classify on this, never on `TypeCode`: real payloads disagree on codes (SpamComplaint arrives
    /// as 512 in Postmark's own webhook examples, 100001 in the bounce table).
    pub enum BounceType {
        /// 1: unknown user, mailbox not found.
        HardBounce => "HardBounce",
        /// 2: delayed, network trouble.
        Transient => "Transient",
        /// 16: an unsubscribe or remove request.
        Unsubscribe => "Unsubscribe",
        /// 32: a subscribe request.
        Subscribe => "Subscribe",
        /// 64: out-of-office and other automatic replies.
        AutoResponder => "AutoResponder",
        /// 128: the recipient asks to use another address.
        AddressChange => "AddressChange",
        /// 256: a temporary DNS error.
        DnsError => "DnsError",
        /// 512: delivered but blocked or classified as spam.
        SpamNotification => "SpamNotification",
        /// 1024: the bounce is an open-relay test.
        OpenRelayTest => "OpenRelayTest",
        /// 2048: Postmark could not classify it.
        Unknown => "Unknown",
        /// 4096: mailbox full, account disabled, over quota.
        SoftBounce => "SoftBounce",
        /// 8192: a virus warning.
        VirusNotification => "VirusNotification",
        /// 16384: a challenge/verification request.
        ChallengeVerification => "ChallengeVerification",
        /// 100000: the address is not valid.
        BadEmailAddress => "BadEmailAddress",
        /// 100001: the recipient marked the message as spam.
        SpamComplaint => "SpamComplaint",
        /// 100002: the address was deactivated by hand.
        ManuallyDeactivated => "ManuallyDeactivated",
        /// 100003: registration not confirmed.
        Unconfirmed => "Unconfirmed",
        /// 100006: blocked by the receiving ISP (content, blocklist).
        Blocked => "Blocked",
        /// 100007: Postmark's SMTP API refused the message (e.g. sent to a suppressed address).
        SMTPApiError => "SMTPApiError",
        /// 100008: inbound processing failed (not about outbound mail).
        InboundError => "InboundError",
        /// 100009: refused by the sender domain's DMARC policy.
        DMARCPolicy => "DMARCPolicy",
        /// 100010: a template failed to render.
        TemplateRenderingFailed => "TemplateRenderingFailed",
    }
}

/// What a bounce means for the recipient, the basis of the automatic actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BounceClass {
    /// The address is dead: deactivate and suppress. HardBounce, BadEmailAddress, ManuallyDeactivated.
    Hard,
    /// A delivery problem that may pass: record it, keep the recipient active. Transient, DnsError,
    /// SoftBounce, SpamNotification, VirusNotification, Blocked, DMARCPolicy, Unknown, and also
    /// Unconfirmed (Postmark does not deactivate it) and a bounce without a `Type`.
    Soft,
    /// The recipient marked the message as spam: suppress. SpamComplaint.
    Complaint,
    /// The recipient asked to stop. Unsubscribe.
    Unsubscribe,
    /// An automatic reply, not a failure: AutoResponder, ChallengeVerification, AddressChange.
    AutoReply,
    /// Nothing to do for the recipient: Subscribe, OpenRelayTest, SMTPApiError, InboundError,
    /// TemplateRenderingFailed (sender-side failures) and any `Type` this crate does not know.
    Other,
}

impl BounceClass {
    /// A short name (`hard`, `soft`, `complaint`, `unsubscribe`, `auto_reply`, `other`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hard => "hard",
            Self::Soft => "soft",
            Self::Complaint => "complaint",
            Self::Unsubscribe => "unsubscribe",
            Self::AutoReply => "auto_reply",
            Self::Other => "other",
        }
    }
}

impl BounceType {
    /// The class of this bounce type.
    pub fn class(&self) -> BounceClass {
        match self {
            Self::HardBounce | Self::BadEmailAddress | Self::ManuallyDeactivated => {
                BounceClass::Hard
            }
            Self::SpamComplaint => BounceClass::Complaint,
            Self::Unsubscribe => BounceClass::Unsubscribe,
            Self::AutoResponder | Self::ChallengeVerification | Self::AddressChange => {
                BounceClass::AutoReply
            }
            Self::Transient
            | Self::DnsError
            | Self::SoftBounce
            | Self::SpamNotification
            | Self::VirusNotification
            | Self::Blocked
            | Self::DMARCPolicy
            | Self::Unknown
            | Self::Unconfirmed => BounceClass::Soft,
            Self::Subscribe
            | Self::OpenRelayTest
            | Self::SMTPApiError
            | Self::InboundError
            | Self::TemplateRenderingFailed
            | Self::Other(_) => BounceClass::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_its_class() {
        use BounceClass::*;
        let table = [
            ("HardBounce", Hard),
            ("BadEmailAddress", Hard),
            ("ManuallyDeactivated", Hard),
            ("SpamComplaint", Complaint),
            ("Unsubscribe", Unsubscribe),
            ("AutoResponder", AutoReply),
            ("ChallengeVerification", AutoReply),
            ("AddressChange", AutoReply),
            ("Transient", Soft),
            ("DnsError", Soft),
            ("SoftBounce", Soft),
            ("SpamNotification", Soft),
            ("VirusNotification", Soft),
            ("Blocked", Soft),
            ("DMARCPolicy", Soft),
            ("Unknown", Soft),
            ("Unconfirmed", Soft),
            ("Subscribe", Other),
            ("OpenRelayTest", Other),
            ("SMTPApiError", Other),
            ("InboundError", Other),
            ("TemplateRenderingFailed", Other),
            ("SomethingNew", Other),
        ];
        for (name, class) in table {
            let bounce_type = BounceType::from(name);
            assert_eq!(bounce_type.class(), class, "{name}");
            assert_eq!(bounce_type.as_str(), name);
        }
    }
}
