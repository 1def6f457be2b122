//! Postmark's Messages API for sent mail: `GET /messages/outbound` (search) and
//! `GET /messages/outbound/{id}/details`, over the messages the simulator accepted.
//!
//! As on Postmark: parameter names in any case, `fromdate`/`todate` in US Eastern Time, only the
//! `outbound` stream unless `messagestream` names another, one metadata filter at most, newest
//! first, and a message visible only some time after it was accepted (`search_delay`).

// Handlers answer with a ready HTTP response as their error; its size is irrelevant per request.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value, json};

use crate::address;
use crate::api::{error, json_reply, management};
use crate::http::ConnectionKiller;
use crate::pipeline::postmark_time;
use crate::state::{Sim, StoredMessage, lock};
use postmark::eastern;

type Reply = Result<Response, Response>;

const MAX_COUNT: u64 = postmark::MAX_SEARCH_COUNT as u64;
const MAX_WINDOW: u64 = postmark::MAX_SEARCH_WINDOW as u64;

fn invalid(message: &str) -> Response {
    error(422, 700, message)
}

/// The search's parameters, names matched in any case.
#[derive(Debug, Default)]
struct Search {
    count: u64,
    offset: u64,
    recipient: Option<String>,
    from_email: Option<String>,
    tag: Option<String>,
    subject: Option<String>,
    status: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    stream: Option<String>,
    metadata: Option<(String, String)>,
}

/// `2021-01-01T12:00:00` (or a date alone: its start, or its end for `todate`), read as Eastern.
pub(crate) fn eastern_bound(text: &str, upper: bool) -> Option<DateTime<Utc>> {
    let text = text.trim();
    let local = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .or_else(|| {
            let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
            if upper {
                day.and_hms_opt(23, 59, 59)
            } else {
                day.and_hms_opt(0, 0, 0)
            }
        })?;
    if upper {
        eastern::latest(local)
    } else {
        eastern::earliest(local)
    }
}

fn parse_search(query: Option<&str>) -> Result<Search, Response> {
    let mut search = Search::default();
    let (mut count, mut offset) = (None, None);
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let lower = name.to_ascii_lowercase();
        if let Some(key) = lower.strip_prefix("metadata_") {
            // The key keeps its case (only the prefix is matched in any case).
            let key = name[name.len() - key.len()..].to_owned();
            if search.metadata.is_some() {
                return Err(invalid(
                    "You can currently only search by a single metadata field at a time.",
                ));
            }
            search.metadata = Some((key, value.into_owned()));
            continue;
        }
        let value = value.into_owned();
        match lower.as_str() {
            "count" => count = Some(value),
            "offset" => offset = Some(value),
            "recipient" => search.recipient = Some(value),
            "fromemail" => search.from_email = Some(value),
            "tag" => search.tag = Some(value),
            "subject" => search.subject = Some(value),
            "status" => search.status = Some(value),
            "messagestream" => search.stream = Some(value),
            "fromdate" => {
                search.from = Some(eastern_bound(&value, false).ok_or_else(|| {
                    invalid(
                        "The 'fromdate' parameter is not a valid date, e.g. 2021-01-01T12:00:00.",
                    )
                })?);
            }
            "todate" => {
                search.to = Some(eastern_bound(&value, true).ok_or_else(|| {
                    invalid("The 'todate' parameter is not a valid date, e.g. 2021-01-01T12:00:00.")
                })?);
            }
            _ => {}
        }
    }
    search.count = count
        .and_then(|count| count.trim().parse::<u64>().ok())
        .filter(|count| (1..=MAX_COUNT).contains(count))
        .ok_or_else(|| {
            invalid("The 'count' parameter is required and must be between 1 and 500.")
        })?;
    search.offset = offset
        .and_then(|offset| offset.trim().parse::<u64>().ok())
        .ok_or_else(|| invalid("The 'offset' parameter is required and must be 0 or more."))?;
    if search
        .count
        .checked_add(search.offset)
        .is_none_or(|window| window > MAX_WINDOW)
    {
        return Err(invalid(
            "The sum of the 'count' and 'offset' parameters may not exceed 10,000. For searches where you're looking to retrieve more than 10,000 messages use parameters like todate and fromdate.",
        ));
    }
    Ok(search)
}

fn accepted_at(message: &StoredMessage) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&message.submitted_at)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

/// Whether the Messages API shows the message yet.
fn visible(sim: &Sim, message: &StoredMessage, now: DateTime<Utc>) -> bool {
    let delay = chrono::Duration::from_std(sim.search_delay()).unwrap_or(chrono::Duration::MAX);
    // A delay past the calendar's end keeps the message out of sight for good.
    accepted_at(message)
        .and_then(|at| at.checked_add_signed(delay))
        .is_some_and(|shown| shown <= now)
}

impl Search {
    fn matches(&self, message: &StoredMessage) -> bool {
        let stream = self.stream.as_deref().unwrap_or("outbound");
        let from = address::parse_mailbox(&message.from).unwrap_or(&message.from);
        let at = accepted_at(message);
        message.message_stream == stream
            && self.recipient.as_deref().is_none_or(|wanted| {
                message
                    .recipients
                    .iter()
                    .any(|known| known.eq_ignore_ascii_case(wanted.trim()))
            })
            && self
                .from_email
                .as_deref()
                .is_none_or(|wanted| from.eq_ignore_ascii_case(wanted.trim()))
            && self
                .tag
                .as_deref()
                .is_none_or(|wanted| message.tag.as_deref() == Some(wanted))
            && self.subject.as_deref().is_none_or(|wanted| {
                message
                    .subject
                    .as_deref()
                    .is_some_and(|subject| subject.to_lowercase().contains(&wanted.to_lowercase()))
            })
            // Every accepted message is sent at once; "processed" is documented as the same.
            && self.status.as_deref().is_none_or(|status| {
                status.eq_ignore_ascii_case("sent") || status.eq_ignore_ascii_case("processed")
            })
            && self.from.is_none_or(|from| at.is_some_and(|at| at >= from))
            && self.to.is_none_or(|to| at.is_some_and(|at| at <= to))
            && self.metadata.as_ref().is_none_or(|(key, value)| {
                message
                    .metadata
                    .iter()
                    .any(|(known, known_value)| known.eq_ignore_ascii_case(key) && known_value == value)
            })
    }
}

/// `[{Email, Name}]` of an address list as given (`Name` null when there is none).
fn people(list: Option<&str>) -> Value {
    let Some(list) = list else {
        return json!([]);
    };
    let entries: Vec<Value> = postmark::Email::new("", list)
        .recipients()
        .into_iter()
        .filter_map(|entry| {
            let email = address::parse_mailbox(entry)?;
            let name = entry
                .trim()
                .rfind('<')
                .map(|open| entry.trim()[..open].trim().trim_matches('"').trim())
                .filter(|name| !name.is_empty());
            Some(json!({ "Email": email, "Name": name }))
        })
        .collect();
    Value::Array(entries)
}

/// `ReceivedAt`: the acceptance time with the Eastern offset of that day.
fn received_at(message: &StoredMessage) -> String {
    accepted_at(message).map_or_else(
        || message.submitted_at.clone(),
        |at| postmark_time(&eastern::to_eastern(at)),
    )
}

/// A search result: the fields of Postmark's list, no bodies.
fn summary(message: &StoredMessage) -> Map<String, Value> {
    let mut item = Map::new();
    if let Some(tag) = &message.tag {
        item.insert("Tag".into(), json!(tag));
    }
    item.insert("MessageID".into(), json!(message.message_id));
    item.insert("MessageStream".into(), json!(message.message_stream));
    item.insert("To".into(), people(message.to.as_deref()));
    item.insert("Cc".into(), people(message.cc.as_deref()));
    item.insert("Bcc".into(), people(message.bcc.as_deref()));
    item.insert("Recipients".into(), json!(message.recipients));
    item.insert("ReceivedAt".into(), json!(received_at(message)));
    item.insert("From".into(), json!(message.from));
    item.insert(
        "Subject".into(),
        json!(message.subject.clone().unwrap_or_default()),
    );
    item.insert(
        "Attachments".into(),
        json!(
            message
                .attachments
                .iter()
                .map(|a| &a.name)
                .collect::<Vec<_>>()
        ),
    );
    item.insert("Status".into(), json!("Sent"));
    item.insert("TrackOpens".into(), json!(message.track_opens));
    item.insert("TrackLinks".into(), json!(message.track_links));
    item.insert("Metadata".into(), json!(message.metadata));
    item.insert("Sandboxed".into(), json!(false));
    item
}

pub(crate) async fn search(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Reply {
    let (server, _) = management(
        &sim,
        "GET /messages/outbound",
        "/messages/outbound",
        &headers,
        false,
        &killer,
    )
    .await?;
    let search = parse_search(query.as_deref())?;
    let now = Utc::now();
    // Filter outside the lock: sends must not wait for a search over a long log.
    let own: Vec<Arc<StoredMessage>> = lock(&sim.messages)
        .iter()
        .filter(|message| message.server_id == server.id)
        .cloned()
        .collect();
    let mut matching: Vec<&Arc<StoredMessage>> = own
        .iter()
        .filter(|message| visible(&sim, message, now) && search.matches(message))
        .collect();
    matching.reverse();
    let total = matching.len();
    let page: Vec<Value> = matching
        .into_iter()
        .skip(usize::try_from(search.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(search.count).unwrap_or(usize::MAX))
        .map(|message| Value::Object(summary(message)))
        .collect();
    Ok(json_reply(
        200,
        &json!({ "TotalCount": total, "Messages": page }),
    ))
}

/// A stand-in for the raw SMTP source Postmark keeps in `Body`.
fn raw_source(message: &StoredMessage) -> String {
    let mut text = format!("From: {}\r\n", message.from);
    for (name, value) in [("To", &message.to), ("Cc", &message.cc)] {
        if let Some(value) = value {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    text.push_str(&format!(
        "Subject: {}\r\nX-PM-Message-Id: {}\r\n\r\n{}",
        message.subject.as_deref().unwrap_or_default(),
        message.message_id,
        message
            .text_body
            .as_deref()
            .or(message.html_body.as_deref())
            .unwrap_or_default()
    ));
    text
}

pub(crate) async fn details(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    Path(message_id): Path<String>,
    headers: HeaderMap,
) -> Reply {
    let (server, _) = management(
        &sim,
        "GET /messages/outbound/{id}/details",
        &format!("/messages/outbound/{message_id}/details"),
        &headers,
        false,
        &killer,
    )
    .await?;
    let not_found = || error(422, 701, "This message was not found.");
    let message = lock(&sim.messages)
        .get(&message_id)
        .filter(|message| message.server_id == server.id)
        .ok_or_else(not_found)?;
    if !visible(&sim, &message, Utc::now()) {
        return Err(not_found());
    }
    let mut item = summary(&message);
    item.insert(
        "TextBody".into(),
        json!(message.text_body.clone().unwrap_or_default()),
    );
    item.insert(
        "HtmlBody".into(),
        json!(message.html_body.clone().unwrap_or_default()),
    );
    item.insert("Body".into(), json!(raw_source(&message)));
    let events: Vec<Value> = lock(&sim.events)
        .get(&message.message_id)
        .map(|events| {
            events
                .iter()
                .map(|event| {
                    json!({
                        "Recipient": event.recipient,
                        "Type": event.kind,
                        "ReceivedAt": postmark_time(&eastern::to_eastern(event.at.with_timezone(&Utc))),
                        "Details": event.details,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    item.insert("MessageEvents".into(), Value::Array(events));
    Ok(json_reply(200, &Value::Object(item)))
}

/// Opens or clicks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engaged {
    Opens,
    Clicks,
}

impl Engaged {
    fn name(self) -> &'static str {
        match self {
            Self::Opens => "opens",
            Self::Clicks => "clicks",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Opens => "Opens",
            Self::Clicks => "Clicks",
        }
    }
}

/// The filters of the opens and clicks lists: `count` 1..500, `offset`, `recipient`, `tag`,
/// `messagestream` (default `outbound`), and the client fields (`client_name`, `os_name`,
/// `platform`, `country`, ...), names in any case.
#[derive(Debug, Default)]
struct EngagementQuery {
    count: usize,
    offset: usize,
    recipient: Option<String>,
    tag: Option<String>,
    stream: Option<String>,
    /// (JSON path, wanted value) of the client fields.
    fields: Vec<(&'static [&'static str], String)>,
}

fn engagement_query(query: Option<&str>, with_filters: bool) -> Result<EngagementQuery, Response> {
    let mut parsed = EngagementQuery::default();
    let (mut count, mut offset) = (None, None);
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let value = value.into_owned();
        let lower = name.to_ascii_lowercase().replace('_', "");
        let path: Option<&'static [&'static str]> = match lower.as_str() {
            "count" => {
                count = Some(value);
                continue;
            }
            "offset" => {
                offset = Some(value);
                continue;
            }
            "recipient" => {
                parsed.recipient = Some(value);
                continue;
            }
            "tag" => {
                parsed.tag = Some(value);
                continue;
            }
            "messagestream" => {
                parsed.stream = Some(value);
                continue;
            }
            "clientname" => Some(&["Client", "Name"]),
            "clientcompany" => Some(&["Client", "Company"]),
            "clientfamily" => Some(&["Client", "Family"]),
            "osname" => Some(&["OS", "Name"]),
            "osfamily" => Some(&["OS", "Family"]),
            "oscompany" => Some(&["OS", "Company"]),
            "platform" => Some(&["Platform"]),
            "country" => Some(&["Geo", "Country"]),
            "region" => Some(&["Geo", "Region"]),
            "city" => Some(&["Geo", "City"]),
            _ => None,
        };
        if let Some(path) = path
            && with_filters
        {
            parsed.fields.push((path, value));
        }
    }
    parsed.count = count
        .and_then(|count| count.trim().parse::<usize>().ok())
        .filter(|count| (1..=MAX_COUNT as usize).contains(count))
        .ok_or_else(|| {
            invalid("The 'count' parameter is required and must be between 1 and 500.")
        })?;
    parsed.offset = offset
        .and_then(|offset| offset.trim().parse::<usize>().ok())
        .ok_or_else(|| invalid("The 'offset' parameter is required and must be 0 or more."))?;
    if parsed.count.saturating_add(parsed.offset) > MAX_WINDOW as usize {
        return Err(invalid(
            "The sum of the 'count' and 'offset' parameters may not exceed 10,000.",
        ));
    }
    Ok(parsed)
}

impl EngagementQuery {
    fn matches(&self, record: &crate::state::EngagementRecord) -> bool {
        record.stream == self.stream.as_deref().unwrap_or("outbound")
            && self
                .recipient
                .as_deref()
                .is_none_or(|wanted| record.recipient.eq_ignore_ascii_case(wanted.trim()))
            && self
                .tag
                .as_deref()
                .is_none_or(|wanted| record.tag.as_deref() == Some(wanted))
            && self.fields.iter().all(|(path, wanted)| {
                path.iter()
                    .try_fold(&record.item, |value, key| value.get(key))
                    .and_then(Value::as_str)
                    .is_some_and(|known| known.eq_ignore_ascii_case(wanted.trim()))
            })
    }
}

fn page(items: Vec<Value>, query: &EngagementQuery, kind: Engaged) -> Response {
    let total = items.len();
    let page: Vec<Value> = items
        .into_iter()
        .skip(query.offset)
        .take(query.count)
        .collect();
    json_reply(200, &json!({ "TotalCount": total, kind.key(): page }))
}

async fn engagement_list(
    sim: Arc<Sim>,
    killer: ConnectionKiller,
    query: Option<String>,
    headers: HeaderMap,
    kind: Engaged,
) -> Reply {
    let path = format!("/messages/outbound/{}", kind.name());
    let endpoint = format!("GET {path}");
    let (server, _) = management(&sim, &endpoint, &path, &headers, false, &killer).await?;
    let query = engagement_query(query.as_deref(), true)?;
    let engagement = lock(&sim.engagement);
    let records = match kind {
        Engaged::Opens => &engagement.opens,
        Engaged::Clicks => &engagement.clicks,
    };
    let items: Vec<Value> = records
        .iter()
        .rev()
        .filter(|record| record.server_id == server.id && query.matches(record))
        .map(|record| record.item.clone())
        .collect();
    drop(engagement);
    Ok(page(items, &query, kind))
}

async fn engagement_of_message(
    sim: Arc<Sim>,
    killer: ConnectionKiller,
    message_id: String,
    query: Option<String>,
    headers: HeaderMap,
    kind: Engaged,
) -> Reply {
    let path = format!("/messages/outbound/{}/{message_id}", kind.name());
    let endpoint = format!("GET /messages/outbound/{}/{{id}}", kind.name());
    let (server, _) = management(&sim, &endpoint, &path, &headers, false, &killer).await?;
    let query = engagement_query(query.as_deref(), false)?;
    let engagement = lock(&sim.engagement);
    let records = match kind {
        Engaged::Opens => &engagement.opens,
        Engaged::Clicks => &engagement.clicks,
    };
    let items: Vec<Value> = records
        .iter()
        .rev()
        .filter(|record| record.server_id == server.id && record.message_id == message_id)
        .map(|record| record.item.clone())
        .collect();
    drop(engagement);
    // Postmark answers 701 for a message without opens (or clicks), as for an unknown one.
    if items.is_empty() {
        return Err(error(422, 701, "This message was not found."));
    }
    Ok(page(items, &query, kind))
}

pub(crate) async fn opens(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Reply {
    engagement_list(sim, killer, query, headers, Engaged::Opens).await
}

pub(crate) async fn clicks(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Reply {
    engagement_list(sim, killer, query, headers, Engaged::Clicks).await
}

pub(crate) async fn opens_of(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    Path(message_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Reply {
    engagement_of_message(sim, killer, message_id, query, headers, Engaged::Opens).await
}

pub(crate) async fn clicks_of(
    State(sim): State<Arc<Sim>>,
    Extension(killer): Extension<ConnectionKiller>,
    Path(message_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Reply {
    engagement_of_message(sim, killer, message_id, query, headers, Engaged::Clicks).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_in_any_case_and_one_metadata_field() {
        let search = parse_search(Some(
            "Count=5&OFFSET=0&MessageStream=broadcast&Metadata_Job_ID=j-1",
        ))
        .unwrap();
        assert_eq!(search.count, 5);
        assert_eq!(search.stream.as_deref(), Some("broadcast"));
        assert_eq!(
            search.metadata,
            Some(("Job_ID".to_owned(), "j-1".to_owned()))
        );
        assert!(parse_search(Some("count=5&offset=0&metadata_a=1&metadata_b=2")).is_err());
        assert!(parse_search(Some("count=5")).is_err());
        assert!(parse_search(Some("offset=0")).is_err());
        assert!(parse_search(Some("count=501&offset=0")).is_err());
        assert!(parse_search(Some("count=500&offset=9500")).is_ok());
        // Values at the edge of the integers and the calendar are refused, not a panic.
        assert!(parse_search(Some("count=1&offset=18446744073709551615")).is_err());
        assert!(parse_search(Some("count=1&offset=0&todate=%2B262142-12-31T23:59:59")).is_err());
        assert!(parse_search(Some("count=500&offset=9501")).is_err());
        assert!(parse_search(Some("count=1&offset=0&fromdate=yesterday")).is_err());
    }

    #[test]
    fn date_bounds_are_eastern_and_inclusive() {
        let search = parse_search(Some(
            "count=1&offset=0&fromdate=2026-07-04T08:00:00&todate=2026-01-15",
        ))
        .unwrap();
        assert_eq!(
            search.from.unwrap().to_rfc3339(),
            "2026-07-04T12:00:00+00:00"
        );
        assert_eq!(search.to.unwrap().to_rfc3339(), "2026-01-16T04:59:59+00:00");
    }

    #[test]
    fn people_keep_names_and_null_without() {
        assert_eq!(
            people(Some("\"Doe, John\" <j@example.org>, k@example.org")),
            json!([
                {"Email": "j@example.org", "Name": "Doe, John"},
                {"Email": "k@example.org", "Name": null}
            ])
        );
        assert_eq!(people(None), json!([]));
    }
}
