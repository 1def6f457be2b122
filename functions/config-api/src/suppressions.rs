//! The suppression list: read it (by reason, paginated), add an address by hand, lift a suppression.
//!
//! Both go through the domain's decision on the standing (see `domain::standing`): a manual suppression is
//! a `ManualSuppression` as of now, lifting one is an explicit reactivation as of now.
//!
//! Lifting a suppression here makes the subscriber active in this system only. Postmark keeps its own
//! suppression lists, and the answer says when Postmark will still refuse the address.

use ::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::events::StatusChange;
use domain::standing::{Decision, Standing};
use domain::{EmailAddress, SuppressionReason};
use lambda_http::Request;
use serde::Serialize;
use serde_json::json;
use store::activity::ActivityEntry;

use crate::App;
use crate::http::{ApiError, ApiResult, json};
use crate::input::{Errors, json_object, limit, only_fields, only_params, opt_str, query};

/// The suppression a standing the domain decided holds, shaped as an entry of the suppression list
/// (`reason` is empty when the decision left the address unsuppressed).
#[derive(Debug, Serialize)]
pub struct SuppressionView {
    pub email: String,
    pub reason: String,
    pub status: String,
    pub suppressed_at: Option<String>,
}

/// An address from a path or body: 422 when it is not one.
pub fn parse_email(field: &str, text: &str) -> Result<EmailAddress, ApiError> {
    EmailAddress::parse(text).map_err(|e| ApiError::invalid_field(field, e.to_string()))
}

pub async fn list(app: &App, req: &Request) -> ApiResult {
    let params = query(req);
    let mut errors = Errors::default();
    only_params(&params, &["reason", "limit", "cursor"], &mut errors);
    let reason = match params.get("reason") {
        None => None,
        Some(text) => match text.parse::<SuppressionReason>() {
            Ok(r) => Some(r),
            Err(e) => {
                errors.add("reason", e.why);
                None
            }
        },
    };
    let limit = limit(&params, &mut errors);
    errors.finish(Some(()))?;
    let page = app
        .table
        .suppressions(reason, limit, params.get("cursor").map(String::as_str))
        .await
        .map_err(|e| ApiError::store("listing suppressions", e))?;
    Ok(json(
        StatusCode::OK,
        &json!({ "items": page.items, "next_cursor": page.next }),
    ))
}

fn standing_view(email: &EmailAddress, standing: &Standing) -> SuppressionView {
    SuppressionView {
        email: email.as_str().to_owned(),
        reason: standing
            .reason
            .map(|r| r.as_str())
            .unwrap_or_default()
            .to_owned(),
        status: standing.status.as_str().to_owned(),
        suppressed_at: standing
            .reason
            .and(standing.since)
            .map(store::activity::sortable_time),
    }
}

/// The activity entry of an admin's change, written with it; marked when it left the standing as it was.
fn admin_entry(
    kind: &str,
    mut detail: serde_json::Value,
    at: DateTime<Utc>,
    decision: &Decision,
) -> ActivityEntry {
    if !decision.changes_standing() {
        detail["standing_unchanged"] = json!(true);
    }
    ActivityEntry {
        at,
        id: format!("admin-{}", uuid::Uuid::new_v4().simple()),
        kind: kind.to_owned(),
        detail,
    }
}

/// A manual suppression as of now, decided like any other: it never replaces a stronger one (the answer
/// then shows the suppression that holds, `created: false`).
pub async fn add(app: &App, req: &Request) -> ApiResult {
    let body = json_object(req)?;
    let mut errors = Errors::default();
    only_fields(&body, &["email"], "", &mut errors);
    let email = match opt_str(&body, "email", "", &mut errors) {
        Some(text) => match EmailAddress::parse(text) {
            Ok(e) => Some(e),
            Err(e) => {
                errors.add("email", e.to_string());
                None
            }
        },
        None => {
            errors.add("email", "required: the address to suppress");
            None
        }
    };
    let email = errors.finish(email)?;
    let reason = SuppressionReason::ManualSuppression;
    let at = Utc::now();
    let detail = json!({"source": "admin", "reason": reason.as_str()});
    let decision = app
        .table
        .change_standing_with_activity(&email, StatusChange::Suppress(reason), at, |d| {
            admin_entry("suppressed", detail.clone(), at, d)
        })
        .await
        .map_err(|e| ApiError::store("suppressing an address", e))?;
    let created = decision.before.reason.is_none();
    if created {
        tracing::info!("address suppressed by an admin");
    }
    Ok(json(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &json!({"created": created, "suppression": standing_view(&email, &decision.after)}),
    ))
}

/// Whether Postmark will still refuse an address after it is lifted here.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct PostmarkOutlook {
    /// `yes`, `maybe` or `no`.
    pub will_refuse: &'static str,
    pub message: &'static str,
}

/// What Postmark does with an address after this system lifts a suppression for `reason`.
pub fn postmark_outlook(reason: SuppressionReason) -> PostmarkOutlook {
    match reason {
        SuppressionReason::SpamComplaint => PostmarkOutlook {
            will_refuse: "yes",
            message: "Postmark will still refuse this address (ErrorCode 406): it keeps spam \
                      complaints suppressed and does not let them be reactivated through its API \
                      or by an admin. Sends to it will be recorded as skipped.",
        },
        SuppressionReason::HardBounce | SuppressionReason::InactiveRecipient => PostmarkOutlook {
            will_refuse: "yes",
            message: "Postmark will still refuse this address (ErrorCode 406) until its \
                      suppression is removed in Postmark too: reactivate the bounce in Postmark \
                      (Activity > the bounce > Reactivate) or delete the suppression of the \
                      message stream.",
        },
        SuppressionReason::Unsubscribed => PostmarkOutlook {
            will_refuse: "maybe",
            message: "If the recipient unsubscribed through Postmark's unsubscribe link, Postmark \
                      keeps the address suppressed on that message stream until it is removed in \
                      Postmark (Message Streams > Suppressions).",
        },
        SuppressionReason::ManualSuppression => PostmarkOutlook {
            will_refuse: "maybe",
            message: "If the address was also suppressed in Postmark, remove it there too \
                      (Message Streams > Suppressions); a suppression added only here is fully \
                      lifted.",
        },
    }
}

/// An admin's reactivation as of now: lifts every suppression older than now.
pub async fn remove(app: &App, email: &str) -> ApiResult {
    let email = parse_email("email", email)?;
    let profile = app
        .table
        .subscriber_profile(&email)
        .await
        .map_err(|e| ApiError::store("reading a subscriber", e))?;
    let Some(reason) = profile.and_then(|p| p.suppression_reason) else {
        return Err(ApiError::not_found(format!(
            "{} is not on the suppression list",
            email.as_str()
        )));
    };
    let at = Utc::now();
    let decision = app
        .table
        .change_standing_with_activity(&email, StatusChange::Reactivate, at, |d| {
            let previous = d.before.reason.unwrap_or(reason);
            let detail = json!({"source": "admin", "previous_reason": previous.as_str()});
            admin_entry("reactivated", detail, at, d)
        })
        .await
        .map_err(|e| ApiError::store("reactivating an address", e))?;
    let previous = decision.before.reason.unwrap_or(reason);
    tracing::info!(
        previous_reason = previous.as_str(),
        "suppression lifted by an admin"
    );
    let mut answer = json!({
        "email": email.as_str(),
        "status": decision.after.status.as_str(),
        "previous_reason": previous.as_str(),
        "postmark": postmark_outlook(previous),
    });
    // A suppression recorded at this very instant or later (a clock ahead of ours) still holds.
    if let Some(still) = decision.after.reason {
        answer["suppression_reason"] = json!(still.as_str());
    }
    Ok(json(StatusCode::OK, &answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spam_complaint_is_refused_by_postmark_for_good() {
        assert_eq!(
            postmark_outlook(SuppressionReason::SpamComplaint).will_refuse,
            "yes"
        );
        for r in SuppressionReason::ALL {
            assert!(!postmark_outlook(r).message.is_empty());
        }
    }
}
