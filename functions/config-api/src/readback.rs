//! Reading back what the webhook and sender functions write: a subscriber's status, counters and
//! activity log, a campaign's counters and clicks per link, a job's outcome.

use ::http::StatusCode;
use domain::JobId;
use domain::trace::{Campaign, CampaignKind};
use lambda_http::Request;
use serde_json::{Map, Value, json};
use store::servers::item_to_json;
use store::subscribers::{profile_key, standing_from};
use store::table::{Item, get_s, key};

use crate::App;
use crate::http::{ApiError, ApiResult, json};
use crate::input::{Errors, limit, only_params, query};
use crate::suppressions::parse_email;

/// Attributes of a profile that are bookkeeping, not information for an admin.
const PROFILE_INTERNAL: &[&str] = &["email_key", "expires_at"];

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
        .get(profile_key(email.key()), false)
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

pub async fn job(app: &App, id: &str) -> ApiResult {
    let id = JobId::parse(id).map_err(|e| ApiError::invalid_field("id", e.why))?;
    let item = app
        .table
        .get(key(format!("JOB#{id}"), "JOB"), false)
        .await
        .map_err(|e| ApiError::store("reading a job", e))?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    let mut fields = item_to_json(&item);
    fields.remove(store::schema::TTL_ATTRIBUTE);
    fields.insert("id".into(), Value::String(id.as_str().to_owned()));
    Ok(json(StatusCode::OK, &Value::Object(fields)))
}
