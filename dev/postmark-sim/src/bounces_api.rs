//! Postmark's Bounces API for reading: `GET /bounces` and `GET /bounces/{id}` (and its dump), over
//! every bounce the simulator produced: bounce-testing addresses, spam complaints (`SpamComplaint`
//! bounces) and SMTP API errors. Reactivation (`PUT /bounces/{id}/activate`) is in `api`.

// Handlers answer with a ready HTTP response as their error; its size is irrelevant per request.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::api::{error, json_reply, management};
use crate::http::ConnectionKiller;
use crate::messages_api::eastern_bound;
use crate::pipeline::postmark_time;
use crate::state::{BounceRecord, Sim, lock};
use postmark::eastern;

type Reply = Result<Response, Response>;

fn invalid(message: &str) -> Response {
    error(422, 1000, message)
}

fn not_found() -> Response {
    error(422, 1001, "The bounce was not found.")
}

#[derive(Debug, Default)]
struct BounceQuery {
    count: usize,
    offset: usize,
    kind: Option<String>,
    inactive: Option<bool>,
    email: Option<String>,
    tag: Option<String>,
    message_id: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    stream: Option<String>,
}

fn parse_query(query: Option<&str>) -> Result<BounceQuery, Response> {
    let mut parsed = BounceQuery::default();
    let (mut count, mut offset) = (None, None);
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let value = value.into_owned();
        match name.to_ascii_lowercase().as_str() {
            "count" => count = Some(value),
            "offset" => offset = Some(value),
            "type" => parsed.kind = Some(value),
            "inactive" => {
                parsed.inactive = Some(match value.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(invalid("The 'inactive' parameter must be true or false.")),
                });
            }
            "emailfilter" => parsed.email = Some(value),
            "tag" => parsed.tag = Some(value),
            "messageid" => parsed.message_id = Some(value),
            "messagestream" => parsed.stream = Some(value),
            "fromdate" => {
                parsed.from = Some(
                    eastern_bound(&value, false)
                        .ok_or_else(|| invalid("The 'fromdate' parameter is not a valid date."))?,
                );
            }
            "todate" => {
                parsed.to = Some(
                    eastern_bound(&value, true)
                        .ok_or_else(|| invalid("The 'todate' parameter is not a valid date."))?,
                );
            }
            _ => {}
        }
    }
    parsed.count = count
        .and_then(|count| count.trim().parse::<usize>().ok())
        .filter(|count| (1..=500).contains(count))
        .ok_or_else(|| {
            invalid("The 'count' parameter is required and must be between 1 and 500.")
        })?;
    parsed.offset = offset
        .and_then(|offset| offset.trim().parse::<usize>().ok())
        .ok_or_else(|| invalid("The 'offset' parameter is required and must be 0 or more."))?;
    if parsed.count.saturating_add(parsed.offset) > 10_000 {
        return Err(invalid(
            "The sum of the 'count' and 'offset' parameters may not exceed 10,000.",
        ));
    }
    Ok(parsed)
}

impl BounceQuery {
    fn matches(&self, record: &BounceRecord) -> bool {
        let bounce = &record.bounce;
        let kind = bounce.bounce_type.as_ref().map(|kind| kind.as_str());
        let at = bounce.bounced_at.map(|at| at.with_timezone(&Utc));
        record.stream == self.stream.as_deref().unwrap_or("outbound")
            && self.kind.as_deref().is_none_or(|wanted| {
                kind.is_some_and(|kind| kind.eq_ignore_ascii_case(wanted.trim()))
            })
            && self
                .inactive
                .is_none_or(|wanted| bounce.inactive == Some(wanted))
            && self.email.as_deref().is_none_or(|wanted| {
                bounce.email.as_deref().is_some_and(|email| {
                    email
                        .to_ascii_lowercase()
                        .contains(&wanted.trim().to_ascii_lowercase())
                })
            })
            && self
                .tag
                .as_deref()
                .is_none_or(|wanted| bounce.tag.as_deref() == Some(wanted))
            && self.message_id.as_deref().is_none_or(|wanted| {
                bounce
                    .message_id
                    .as_deref()
                    .is_some_and(|id| id.eq_ignore_ascii_case(wanted.trim()))
            })
            && self.from.is_none_or(|from| at.is_some_and(|at| at >= from))
            && self.to.is_none_or(|to| at.is_some_and(|at| at <= to))
    }
}

/// A bounce as the Bounces API shows it (no dump, no metadata).
pub(crate) fn shape(record: &BounceRecord) -> Value {
    let bounce = &record.bounce;
    json!({
        "ID": bounce.id,
        "Type": bounce.bounce_type.as_ref().map(|kind| kind.as_str()),
        "TypeCode": bounce.type_code,
        "Name": bounce.name,
        "Tag": bounce.tag,
        "MessageID": bounce.message_id,
        "ServerID": record.server_id,
        "MessageStream": record.stream,
        "Description": bounce.description,
        "Details": bounce.details,
        "Email": bounce.email,
        "From": bounce.from,
        "BouncedAt": bounce.bounced_at.map(|at| postmark_time(&eastern::to_eastern(at.with_timezone(&Utc)))),
        "DumpAvailable": bounce.dump_available.unwrap_or(false),
        "Inactive": bounce.inactive.unwrap_or(false),
        "CanActivate": bounce.can_activate.unwrap_or(false),
        "Subject": bounce.subject.clone().unwrap_or_default(),
    })
}

pub(crate) async fn list(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Reply {
    let (server, _) =
        management(&sim, "GET /bounces", "/bounces", &headers, false, &killer).await?;
    let query = parse_query(query.as_deref())?;
    let matching: Vec<Value> = lock(&sim.bounces)
        .values()
        .rev()
        .filter(|record| record.server_id == server.id && query.matches(record))
        .map(shape)
        .collect();
    let total = matching.len();
    let page: Vec<Value> = matching
        .into_iter()
        .skip(query.offset)
        .take(query.count)
        .collect();
    Ok(json_reply(
        200,
        &json!({ "TotalCount": total, "Bounces": page }),
    ))
}

fn own_bounce(sim: &Sim, server_id: u64, id: &str) -> Result<BounceRecord, Response> {
    let id: i64 = id.trim().parse().map_err(|_| not_found())?;
    lock(&sim.bounces)
        .get(&id)
        .filter(|record| record.server_id == server_id)
        .cloned()
        .ok_or_else(not_found)
}

pub(crate) async fn get_one(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Reply {
    let (server, _) = management(
        &sim,
        "GET /bounces/{id}",
        &format!("/bounces/{id}"),
        &headers,
        false,
        &killer,
    )
    .await?;
    Ok(json_reply(200, &shape(&own_bounce(&sim, server.id, &id)?)))
}

/// `GET /bounces/{id}/dump`: `{"Body": ...}`, empty when there is no dump.
pub(crate) async fn dump(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Reply {
    let (server, _) = management(
        &sim,
        "GET /bounces/{id}/dump",
        &format!("/bounces/{id}/dump"),
        &headers,
        false,
        &killer,
    )
    .await?;
    let record = own_bounce(&sim, server.id, &id)?;
    Ok(json_reply(
        200,
        &json!({ "Body": record.bounce.content.unwrap_or_default() }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_limits() {
        assert!(parse_query(Some("count=500&offset=0")).is_ok());
        assert!(parse_query(Some("count=501&offset=0")).is_err());
        assert!(parse_query(Some("count=500&offset=9501")).is_err());
        assert!(parse_query(Some("count=10")).is_err());
        assert!(parse_query(Some("count=10&offset=0&inactive=maybe")).is_err());
        let query = parse_query(Some(
            "Count=5&Offset=1&emailFilter=ada&messageID=x&Inactive=true",
        ))
        .unwrap();
        assert_eq!(query.email.as_deref(), Some("ada"));
        assert_eq!(query.message_id.as_deref(), Some("x"));
        assert_eq!(query.inactive, Some(true));
    }
}
