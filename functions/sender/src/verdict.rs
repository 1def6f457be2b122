//! How one job's attempt ended, and what Postmark's answers mean for it.

use domain::jobs::SkipReason;
use postmark::smtp::{SmtpError, SmtpReceipt};
use postmark::{ApiError, ErrorClass, PostmarkError, SendReceipt};

/// Where a message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub server_id: String,
    pub stream: String,
}

/// The end of one attempt at a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Postmark accepted it.
    Sent {
        message_id: Option<String>,
        via: Via,
    },
    /// Not sent: the recipient does not take this mail.
    Skipped(SkipReason),
    /// Postmark refused it for good. `suppress` when it said the recipient is inactive (406).
    Failed {
        reason: String,
        error_code: Option<i64>,
        via: Option<Via>,
        suppress: bool,
    },
    /// Try again later (SQS delivers it again). `configuration` when fixing a setting is what it takes
    /// (no server for the type, a bad token, a missing secret): logged as such so that an alarm fires.
    Retry {
        reason: String,
        error_code: Option<i64>,
        configuration: bool,
    },
    /// The call ended so that Postmark may have accepted the message (a timeout or a reset after the
    /// request was written, a 502/504, an answer that could not be read): it is looked up in Postmark
    /// before it is ever sent again.
    Unknown { reason: String, via: Via },
    /// Not handed to Postmark: the invocation's deadline left no time for the call.
    NotStarted,
    /// Not decided yet: an earlier call that may have delivered the job could not be looked up in
    /// Postmark yet (its search may not show it yet, or the search failed). Tried again after `delay`.
    Unresolved {
        reason: String,
        delay: std::time::Duration,
    },
}

impl Verdict {
    pub fn retry(reason: impl Into<String>) -> Self {
        Self::Retry {
            reason: reason.into(),
            error_code: None,
            configuration: false,
        }
    }

    pub fn configuration(reason: impl Into<String>) -> Self {
        Self::Retry {
            reason: reason.into(),
            error_code: None,
            configuration: true,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Sent { .. } => "sent",
            Self::Skipped(_) => "skipped",
            Self::Failed { .. } => "failed",
            Self::Retry { .. } => "retry",
            Self::Unknown { .. } => "unknown",
            Self::NotStarted => "not_started",
            Self::Unresolved { .. } => "unresolved",
        }
    }
}

pub use store::error::chain;

/// One item of a batch answer (or the answer to one message).
pub fn api_item(outcome: Result<SendReceipt, ApiError>, via: &Via, recipient: &str) -> Verdict {
    match outcome {
        Ok(receipt) => Verdict::Sent {
            message_id: receipt.message_id,
            via: via.clone(),
        },
        Err(e) => api_error(&e, via, recipient),
    }
}

fn api_error(e: &ApiError, via: &Via, recipient: &str) -> Verdict {
    let reason = e.to_string();
    let error_code = e.error_code();
    match e.class() {
        ErrorClass::Retryable => Verdict::Retry {
            reason,
            error_code,
            configuration: false,
        },
        ErrorClass::Configuration | ErrorClass::BlockedByNetwork => Verdict::Retry {
            reason,
            error_code,
            configuration: true,
        },
        ErrorClass::RecipientInactive => Verdict::Failed {
            suppress: e.inactive_recipients().is_empty()
                || e.inactive_recipients()
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(recipient)),
            reason,
            error_code,
            via: Some(via.clone()),
        },
        ErrorClass::InvalidRequest | ErrorClass::TooLarge | ErrorClass::Unexpected => {
            Verdict::Failed {
                reason,
                error_code,
                via: Some(via.clone()),
                suppress: false,
            }
        }
    }
}

/// What a failed API call means for every message it carried. `None` for a batch that was too large:
/// the caller splits it.
pub fn api_call(e: &PostmarkError, via: &Via, recipient: &str) -> Verdict {
    // Sending again could deliver twice: the message is looked up in Postmark first.
    if e.may_have_been_accepted() {
        return Verdict::Unknown {
            reason: chain(e),
            via: via.clone(),
        };
    }
    if let Some(api) = e.api_error() {
        return api_error(api, via, recipient);
    }
    let reason = chain(e);
    match e.class() {
        ErrorClass::Retryable => Verdict::retry(reason),
        ErrorClass::Configuration | ErrorClass::BlockedByNetwork => Verdict::configuration(reason),
        _ => Verdict::Failed {
            reason,
            error_code: None,
            via: Some(via.clone()),
            suppress: false,
        },
    }
}

/// The MessageID in Postmark's SMTP answer (`250 2.0.0 OK: queued as <id>`), if it gives one.
pub fn queued_id(message: &str) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    let at = lower.find("queued as")? + "queued as".len();
    message[at..]
        .split_whitespace()
        .next()
        .map(|id| id.trim_matches(|c| c == '<' || c == '>').to_owned())
        .filter(|id| !id.is_empty())
}

/// One message sent over SMTP.
pub fn smtp(outcome: Result<SmtpReceipt, SmtpError>, via: &Via) -> Verdict {
    let e = match outcome {
        Ok(receipt) => {
            return Verdict::Sent {
                message_id: queued_id(&receipt.message),
                via: via.clone(),
            };
        }
        Err(e) => e,
    };
    let reason = chain(&e);
    if e.may_have_been_accepted() {
        return Verdict::Unknown {
            reason,
            via: via.clone(),
        };
    }
    let error_code = match &e {
        SmtpError::Send { code, .. } => code.map(i64::from),
        _ => None,
    };
    match e.class() {
        ErrorClass::Retryable => Verdict::Retry {
            reason,
            error_code,
            configuration: false,
        },
        ErrorClass::Configuration | ErrorClass::BlockedByNetwork => Verdict::Retry {
            reason,
            error_code,
            configuration: true,
        },
        _ => Verdict::Failed {
            reason,
            error_code,
            via: Some(via.clone()),
            suppress: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via() -> Via {
        Via {
            server_id: "s1".into(),
            stream: "broadcast".into(),
        }
    }

    #[test]
    fn batch_items_end_as_the_contract_says() {
        let inactive = ApiError::new(
            200,
            Some(406),
            "You tried to send to a recipient that has been marked as inactive. Found inactive addresses: Ada@example.org. Inactive recipients are ones that have generated a hard bounce, a spam complaint, or a manual suppression.",
        );
        match api_item(Err(inactive), &via(), "ada@example.org") {
            Verdict::Failed {
                error_code,
                suppress,
                ..
            } => assert_eq!((error_code, suppress), (Some(406), true)),
            other => panic!("{other:?}"),
        }
        let invalid = ApiError::new(200, Some(300), "Invalid 'From' address");
        assert!(matches!(
            api_item(Err(invalid), &via(), "a@b.co"),
            Verdict::Failed {
                error_code: Some(300),
                suppress: false,
                ..
            }
        ));
        let limited = ApiError::new(200, Some(429), "slow down");
        assert!(matches!(
            api_item(Err(limited), &via(), "a@b.co"),
            Verdict::Retry {
                configuration: false,
                ..
            }
        ));
        let token = ApiError::new(401, Some(10), "Bad token");
        assert!(matches!(
            api_item(Err(token), &via(), "a@b.co"),
            Verdict::Retry {
                configuration: true,
                ..
            }
        ));
    }

    #[test]
    fn reads_the_message_id_of_an_smtp_answer() {
        assert_eq!(
            queued_id("2.0.0 OK: queued as 4d1f6e2a-1b2c-4d5e-8f90-123456789abc").as_deref(),
            Some("4d1f6e2a-1b2c-4d5e-8f90-123456789abc")
        );
        assert_eq!(
            queued_id("2.0.0 Ok: queued as <abc>").as_deref(),
            Some("abc")
        );
        assert_eq!(queued_id("2.0.0 OK"), None);
    }
}
