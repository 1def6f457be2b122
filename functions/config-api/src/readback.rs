//! Reading back what the webhook and sender functions write: a subscriber's status, counters and
//! activity log, a campaign's counters and clicks per link, a job's outcome.

use ::http::StatusCode;
use domain::JobId;
use domain::trace::{Campaign, CampaignKind};
use lambda_http::Request;
use serde_json::{Map, Value, json};
use store::events::job_key;
use store::jobs::JobStatus;
use store::servers::item_to_json;
use store::subscribers::{STANDING_VERSION, profile_key, standing_from};
use store::table::{Item, get_s};

use crate::App;
use crate::http::{ApiError, ApiResult, json};
use crate::input::{Errors, limit, only_params, query};
use crate::suppressions::parse_email;

/// Attributes of a profile that are bookkeeping, not information for an admin.
const PROFILE_INTERNAL: &[&str] = &["email_key", "expires_at", STANDING_VERSION];

fn subscriber_view(item: &Item) -> Result<Value, ApiError> {
    let standing = standing_from(item).map_err(|e| ApiError::store("reading a subscriber", e))?;
    let mut counters = Map::new();
    for (name, value) in item {
        if let Ok(n) = value.as_n()
            && !PROFILE_INTERNAL.contains(&name.as_str())
            && let Ok(n) = n.parse::<i64>()
        {
            counters.insert(name.clone(), Value::from(n));
        }
    }
    Ok(json!({
        "email": get_s(item, "email").or_else(|| get_s(item, "email_key")).unwrap_or_default(),
        "status": standing.status,
        "status_at": get_s(item, "status_at"),
        "suppression_reason": standing.suppression.map(|r| r.as_str()),
        "suppressed_at": get_s(item, "suppressed_at"),
        "counters": counters,
    }))
}

pub async fn subscriber(app: &App, email: &str) -> ApiResult {
    let email = parse_email("email", email)?;
    let item = app
        .table
        .get(profile_key(email.key()), true)
        .await
        .map_err(|e| ApiError::store("reading a subscriber", e))?
        .ok_or_else(|| {
            ApiError::not_found(format!("nothing is recorded about {} yet", email.as_str()))
        })?;
    Ok(json(StatusCode::OK, &subscriber_view(&item)?))
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

/// Attributes of a job item that are the sender's bookkeeping (its lease), not the job's outcome.
const JOB_INTERNAL: &[&str] = &[
    store::jobs::CLAIM_TOKEN,
    store::jobs::LEASE_UNTIL,
    store::jobs::PENDING_SENDS,
    store::schema::TTL_ATTRIBUTE,
];

fn job_view(item: &Item, id: Option<&str>) -> Value {
    let mut fields = item_to_json(item);
    for name in JOB_INTERNAL {
        fields.remove(*name);
    }
    let id = id
        .map(str::to_owned)
        .or_else(|| get_s(item, "job_id").map(str::to_owned))
        .unwrap_or_default();
    fields.insert("id".into(), Value::String(id));
    Value::Object(fields)
}

pub async fn job(app: &App, id: &str) -> ApiResult {
    let id = JobId::parse(id).map_err(|e| ApiError::invalid_field("id", e.why))?;
    let item = app
        .table
        .get(job_key(id.as_str()), true)
        .await
        .map_err(|e| ApiError::store("reading a job", e))?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    Ok(json(StatusCode::OK, &job_view(&item, Some(id.as_str()))))
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
    let items: Vec<Value> = page.items.iter().map(|i| job_view(i, None)).collect();
    Ok(json(
        StatusCode::OK,
        &json!({ "items": items, "next_cursor": page.next }),
    ))
}
