//! Reading back what the webhook and sender functions write: a subscriber's status, counters and
//! activity log, a campaign's counters and clicks per link, a job's outcome.

use ::http::StatusCode;
use domain::JobId;
use domain::trace::{Campaign, CampaignKind};
use lambda_http::Request;
use serde_json::{Value, json};
use store::jobs::JobStatus;

use crate::App;
use crate::http::{ApiError, ApiResult, json};
use crate::input::{Errors, limit, only_params, query};
use crate::suppressions::parse_email;

pub async fn subscriber(app: &App, email: &str) -> ApiResult {
    let email = parse_email("email", email)?;
    let profile = app
        .table
        .subscriber_profile(&email)
        .await
        .map_err(|e| ApiError::store("reading a subscriber", e))?
        .ok_or_else(|| {
            ApiError::not_found(format!("nothing is recorded about {} yet", email.as_str()))
        })?;
    Ok(json(StatusCode::OK, &profile))
}

pub async fn activity(app: &App, req: &Request, email: &str) -> ApiResult {
    let email = parse_email("email", email)?;
    let params = query(req);
    let mut errors = Errors::default();
    only_params(&params, &["limit", "cursor"], &mut errors);
    let limit = limit(&params, &mut errors);
    errors.finish(Some(()))?;
    let page = app
        .table
        .activity(email.key(), limit, params.get("cursor").map(String::as_str))
        .await
        .map_err(|e| ApiError::store("reading an activity log", e))?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|entry| {
            json!({
                "at": store::activity::sortable_time(entry.at),
                "id": entry.id,
                "kind": entry.kind,
                "detail": entry.detail,
            })
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({ "email": email.as_str(), "items": items, "next_cursor": page.next }),
    ))
}

/// A campaign id as the sender records it: 1-128 characters, no `#` (the storage key separator).
fn campaign_id(id: &str) -> Result<String, ApiError> {
    if id.is_empty() || id.chars().count() > 128 || id.contains('#') {
        return Err(ApiError::invalid_field(
            "id",
            "must be 1-128 characters without '#'",
        ));
    }
    Ok(id.to_owned())
}

pub async fn campaign(app: &App, kind: CampaignKind, id: &str) -> ApiResult {
    let campaign = Campaign {
        kind,
        id: campaign_id(id)?,
    };
    let stats = app
        .table
        .campaign_stats(&campaign)
        .await
        .map_err(|e| ApiError::store("reading campaign counters", e))?;
    Ok(json(StatusCode::OK, &stats))
}

pub async fn job(app: &App, id: &str) -> ApiResult {
    let id = JobId::parse(id).map_err(|e| ApiError::invalid_field("id", e.why))?;
    let job = app
        .table
        .job(id.as_str())
        .await
        .map_err(|e| ApiError::store("reading a job", e))?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    Ok(json(StatusCode::OK, &job))
}

/// Failed or rejected jobs, newest first.
pub async fn jobs(app: &App, req: &Request) -> ApiResult {
    let params = query(req);
    let mut errors = Errors::default();
    only_params(&params, &["status", "limit", "cursor"], &mut errors);
    let status = match params.get("status").map(String::as_str) {
        Some("failed") => Some(JobStatus::Failed),
        Some("rejected") => Some(JobStatus::Rejected),
        _ => {
            errors.add("status", "required: failed or rejected");
            None
        }
    };
    let limit = limit(&params, &mut errors);
    let status = errors.finish(status)?;
    let page = app
        .table
        .jobs_with_status(status, limit, params.get("cursor").map(String::as_str))
        .await
        .map_err(|e| ApiError::store("listing jobs", e))?;
    Ok(json(
        StatusCode::OK,
        &json!({ "items": page.items, "next_cursor": page.next }),
    ))
}

/// The recovery runs' summaries, newest first: what each run recovered per server and kind, the
/// suppressions it fixed, its Postmark calls and errors.
pub async fn recoveries(app: &App, req: &Request) -> ApiResult {
    let params = query(req);
    let mut errors = Errors::default();
    only_params(&params, &["limit", "cursor"], &mut errors);
    let limit = limit(&params, &mut errors);
    errors.finish(Some(()))?;
    let page = app
        .table
        .recovery_runs(limit, params.get("cursor").map(String::as_str))
        .await
        .map_err(|e| ApiError::store("listing recovery runs", e))?;
    Ok(json(
        StatusCode::OK,
        &json!({ "items": page.items, "next_cursor": page.next }),
    ))
}
