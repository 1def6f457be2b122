//! The suppression list: read it (by reason, paginated), add an address by hand, lift a suppression.
//!
//! Lifting a suppression here makes the subscriber active in this system only. Postmark keeps its own
//! suppression lists, and the answer says when Postmark will still refuse the address.

use ::http::StatusCode;
use chrono::Utc;
use domain::{EmailAddress, SubscriberStatus, SuppressionReason};
use lambda_http::Request;
use serde::Serialize;
use serde_json::json;
use store::activity::ActivityEntry;
use store::schema::{GSI1, GSI1_PK, GSI1_SK};
use store::subscribers::{SUPPRESSED_PARTITION, profile_key, standing_from};
use store::table::{Item, PageQuery, get_s};

use crate::App;
use crate::http::{ApiError, ApiResult, json};
use crate::input::{Errors, json_object, limit, only_fields, only_params, opt_str, query};

#[derive(Debug, Serialize)]
pub struct SuppressionView {
    pub email: String,
    pub reason: String,
    pub status: String,
    pub suppressed_at: Option<String>,
}

fn view(item: &Item) -> SuppressionView {
    SuppressionView {
        email: get_s(item, "email")
            .or_else(|| get_s(item, "email_key"))
            .unwrap_or_default()
            .to_owned(),
        reason: get_s(item, "suppression_reason")
            .unwrap_or_default()
            .to_owned(),
        status: get_s(item, "status").unwrap_or("active").to_owned(),
        suppressed_at: get_s(item, "suppressed_at").map(str::to_owned),
    }
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
    let prefix = reason.map(|r| format!("{}#", r.as_str()));
    let page = app
        .table
        .query_page(PageQuery {
            index: Some(GSI1),
            partition_attr: GSI1_PK,
            partition: SUPPRESSED_PARTITION,
            sort_attr: GSI1_SK,
            sort_prefix: prefix.as_deref(),
            newest_first: false,
            limit,
            cursor: params.get("cursor").map(String::as_str),
        })
        .await
        .map_err(|e| ApiError::store("listing suppressions", e))?;
    let items: Vec<SuppressionView> = page.items.iter().map(view).collect();
    Ok(json(
        StatusCode::OK,
        &json!({ "items": items, "next_cursor": page.next }),
    ))
}

async fn profile(app: &App, email: &EmailAddress) -> Result<Option<Item>, ApiError> {
    app.table
        .get(profile_key(email.key()), true)
        .await
        .map_err(|e| ApiError::store("reading a subscriber", e))
}

fn admin_entry(kind: &str, detail: serde_json::Value) -> ActivityEntry {
    ActivityEntry {
        at: Utc::now(),
        id: format!("admin-{}", uuid::Uuid::new_v4().simple()),
        kind: kind.to_owned(),
        detail,
    }
}

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
    if let Some(item) = profile(app, &email).await? {
        let standing =
            standing_from(&item).map_err(|e| ApiError::store("reading a subscriber", e))?;
        if standing.suppression.is_some() {
            return Ok(json(
                StatusCode::OK,
                &json!({"created": false, "suppression": view(&item)}),
            ));
        }
    }
    let reason = SuppressionReason::ManualSuppression;
    let entry = admin_entry(
        "suppressed",
        json!({"source": "admin", "reason": reason.as_str()}),
    );
    let ops = vec![
        app.table
            .suppress_op(&email, reason, entry.at)
            .map_err(|e| ApiError::store("suppressing an address", e))?,
        app.table
            .activity_op(email.key(), &entry)
            .map_err(|e| ApiError::store("suppressing an address", e))?,
    ];
    app.table
        .transact(ops)
        .await
        .map_err(|e| ApiError::store("suppressing an address", e))?;
    tracing::info!("address suppressed by an admin");
    Ok(json(
        StatusCode::CREATED,
        &json!({
            "created": true,
            "suppression": SuppressionView {
                email: email.as_str().to_owned(),
                reason: reason.as_str().to_owned(),
                status: reason.status().as_str().to_owned(),
                suppressed_at: Some(store::activity::sortable_time(entry.at)),
            },
        }),
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

pub async fn remove(app: &App, email: &str) -> ApiResult {
    let email = parse_email("email", email)?;
    let item = profile(app, &email).await?;
    let standing = item
        .as_ref()
        .map(standing_from)
        .transpose()
        .map_err(|e| ApiError::store("reading a subscriber", e))?;
    let Some(reason) = standing.and_then(|s| s.suppression) else {
        return Err(ApiError::not_found(format!(
            "{} is not on the suppression list",
            email.as_str()
        )));
    };
    let entry = admin_entry(
        "reactivated",
        json!({"source": "admin", "previous_reason": reason.as_str()}),
    );
    let ops = vec![
        app.table
            .reactivate_op(&email)
            .map_err(|e| ApiError::store("reactivating an address", e))?,
        app.table
            .activity_op(email.key(), &entry)
            .map_err(|e| ApiError::store("reactivating an address", e))?,
    ];
    app.table
        .transact(ops)
        .await
        .map_err(|e| ApiError::store("reactivating an address", e))?;
    tracing::info!(
        previous_reason = reason.as_str(),
        "suppression lifted by an admin"
    );
    Ok(json(
        StatusCode::OK,
        &json!({
            "email": email.as_str(),
            "status": SubscriberStatus::Active.as_str(),
            "previous_reason": reason.as_str(),
            "postmark": postmark_outlook(reason),
        }),
    ))
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
