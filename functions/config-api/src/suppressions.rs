//! The suppression list: read it (by reason, paginated), add an address by hand, lift a suppression.
//!
//! Both go through the domain's decision on the standing (see `domain::standing`): a manual suppression is
//! a `ManualSuppression` as of now, lifting one is an explicit reactivation as of now.
//!
//! Both ways: lifting a suppression here first lifts it in Postmark, on every stream of every API server
//! that carries mail (deleting a hard bounce's stream suppression reactivates the bounce). Spam
//! complaints cannot be lifted in Postmark, so they are refused (409) before anything changes on either
//! side; a Postmark failure (5xx, network) is 502/503 and nothing changes here. A server Postmark cannot
//! be used for without an outage being the cause (token missing or refused, or any failure on an
//! inactive server) is left out and reported per stream as `skipped`, with what to do. A manual suppression here
//! is also created in Postmark on those streams, and the answer gives Postmark's result per stream.
//!
//! Postmark calls: lifting costs one `GET /bounces` per API server, one suppression dump per stream
//! (filtered on the address) and one `POST .../suppressions/delete` per stream where the address is
//! suppressed; adding costs one `POST .../suppressions` per stream.

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
use crate::http::{ApiError, ApiResult, chain, json};
use crate::input::{Errors, json_object, limit, only_fields, only_params, opt_str, query};
use crate::managed_webhooks::{api_client, streams_of};

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
    let postmark = suppress_in_postmark(app, &email).await?;
    Ok(json(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &json!({
            "created": created,
            "suppression": standing_view(&email, &decision.after),
            "postmark": postmark,
        }),
    ))
}

/// Postmark's side of a reactivation: the outlook and the result per stream.
#[derive(Debug, Serialize)]
pub struct PostmarkLift {
    #[serde(flatten)]
    pub outlook: PostmarkOutlook,
    pub streams: Vec<StreamResult>,
}

/// Postmark's result for one stream of one API server.
#[derive(Debug, Serialize, Clone)]
pub struct StreamResult {
    pub server_id: String,
    pub label: String,
    pub stream: String,
    /// `deleted` / `suppressed` (done), `not_suppressed` (nothing to lift), `failed` (Postmark's
    /// `message`), `skipped` (the server's token is missing or refused: `message` says).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Whether Postmark will still refuse an address after it is lifted here.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct PostmarkOutlook {
    /// `yes`, `maybe` or `no`.
    pub will_refuse: &'static str,
    pub message: &'static str,
}

/// What Postmark does with an address after this system lifts a suppression for `reason`, given whether
/// it was lifted in Postmark too (`lifted`: at least one stream suppression was deleted) and whether some
/// API server was left out (`skipped`: its streams were neither checked nor changed).
pub fn postmark_outlook(reason: SuppressionReason, lifted: bool, skipped: bool) -> PostmarkOutlook {
    match reason {
        SuppressionReason::SpamComplaint => PostmarkOutlook {
            will_refuse: "yes",
            message: "Postmark keeps spam complaints suppressed for good and does not let them be \
                      reactivated through its API or by an admin.",
        },
        _ if skipped => PostmarkOutlook {
            will_refuse: "maybe",
            message: "Some API servers could not be checked or updated in Postmark (see `streams`: \
                      `skipped`, with what to do); Postmark may still refuse the address on their \
                      streams until it is lifted there.",
        },
        _ if lifted => PostmarkOutlook {
            will_refuse: "no",
            message: "The address was suppressed in Postmark too and has been lifted there (a hard \
                      bounce's suppression deleted reactivates the bounce): see `streams`.",
        },
        _ => PostmarkOutlook {
            will_refuse: "no",
            message: "Postmark had no suppression of this address on the API servers' streams; \
                      SMTP servers cannot be checked here (Message Streams > Suppressions in \
                      Postmark).",
        },
    }
}

fn spam_refusal(email: &EmailAddress) -> ApiError {
    ApiError::conflict(format!(
        "{} is suppressed for a spam complaint: Postmark keeps spam complaints suppressed for good \
         and does not let them be reactivated, so it is not reactivated here either. Nothing was \
         changed.",
        email.as_str()
    ))
}

/// A Postmark failure while lifting: nothing is changed here.
fn postmark_failure(e: &postmark::PostmarkError, what: &str) -> ApiError {
    tracing::warn!(error = %chain(e), "{what}: Postmark failed");
    let message =
        format!("Postmark failed while {what} ({e}); nothing was changed here. Try again shortly.");
    if matches!(
        e,
        postmark::PostmarkError::Timeout { .. } | postmark::PostmarkError::Connection { .. }
    ) {
        ApiError::unavailable(message)
    } else {
        ApiError::new(StatusCode::BAD_GATEWAY, "postmark_failed", message)
    }
}

/// The API servers with a usable client and the streams they carry mail on; the others as `skipped`.
async fn targets(
    app: &App,
) -> Result<
    (
        Vec<(
            domain::servers::EmailServer,
            postmark::PostmarkClient,
            Vec<String>,
        )>,
        Vec<StreamResult>,
    ),
    ApiError,
> {
    let servers = app
        .table
        .servers()
        .await
        .map_err(|e| ApiError::store("listing email servers", e))?;
    let mut usable = Vec::new();
    let mut skipped = Vec::new();
    for server in servers {
        if !matches!(server.delivery, domain::servers::Delivery::Api) {
            continue;
        }
        let streams = streams_of(&server);
        match api_client(app, &server).await? {
            Some(client) => usable.push((server, client, streams)),
            None => skipped.extend(streams.into_iter().map(|stream| StreamResult {
                server_id: server.id.to_string(),
                label: server.label.clone(),
                stream,
                status: "skipped",
                message: Some(format!(
                    "not updated: the server's Server API Token is missing. Set it with PATCH \
                     /api/email-servers/{}, then check the address in Postmark (Message Streams > \
                     Suppressions)",
                    server.id
                )),
            })),
        }
    }
    Ok((usable, skipped))
}

fn result(
    server: &domain::servers::EmailServer,
    stream: &str,
    status: &'static str,
    message: Option<String>,
) -> StreamResult {
    StreamResult {
        server_id: server.id.to_string(),
        label: server.label.clone(),
        stream: stream.to_owned(),
        status,
        message,
    }
}

/// Whether a Postmark failure on `server` leaves the server out of a reactivation instead of stopping it:
/// the message that says so (and what to do), or `None` when the reactivation must stop (an outage of a
/// server that carries mail: nothing is changed anywhere).
fn left_out(server: &domain::servers::EmailServer, e: &postmark::PostmarkError) -> Option<String> {
    if crate::managed_webhooks::is_token_refused(e) {
        return Some(format!(
            "not updated: Postmark refused the server's Server API Token ({e}). Set the right token \
             with PATCH /api/email-servers/{}, then lift the address in Postmark (Message Streams > \
             Suppressions) if it is suppressed there",
            server.id
        ));
    }
    if !server.active {
        return Some(format!(
            "not updated: the server is inactive and Postmark could not be used for it ({e}). Lift \
             the address in Postmark (Message Streams > Suppressions) before making the server \
             active again"
        ));
    }
    None
}

/// Every stream of a server left out of a reactivation, with why.
fn skip_all(
    server: &domain::servers::EmailServer,
    streams: &[String],
    why: &str,
) -> Vec<StreamResult> {
    streams
        .iter()
        .map(|s| result(server, s, "skipped", Some(why.to_owned())))
        .collect()
}

/// One server's side of a reactivation, checked before anything is deleted anywhere: the streams where
/// the address is suppressed (to delete) and the results so far, or the whole server left out.
enum Checked {
    Lift {
        to_delete: Vec<String>,
        results: Vec<StreamResult>,
    },
    LeftOut(Vec<StreamResult>),
}

/// Reads the address's bounces and stream suppressions on one server: 409 when Postmark will not let it
/// be lifted, 502/503 on an outage of a server that carries mail.
async fn check_server(
    server: &domain::servers::EmailServer,
    client: &postmark::PostmarkClient,
    streams: &[String],
    email: &EmailAddress,
) -> Result<Checked, ApiError> {
    let address = email.as_str();
    let query = postmark::BounceQuery::new(50)
        .email_filter(address)
        .inactive(true);
    let bounces = match client.bounces(&query).await {
        Ok(b) => b.bounces,
        Err(e) => {
            return match left_out(server, &e) {
                Some(why) => Ok(Checked::LeftOut(skip_all(server, streams, &why))),
                None => Err(postmark_failure(&e, "reading the address's bounces")),
            };
        }
    };
    if bounces.iter().any(|b| {
        b.email
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case(address))
            && b.can_activate == Some(false)
    }) {
        return Err(ApiError::conflict(format!(
            "Postmark says a bounce of {address} on \"{}\" cannot be reactivated (a spam \
             complaint or a bounce Postmark keeps), so it is not reactivated here either. \
             Nothing was changed.",
            server.label
        )));
    }
    let mut to_delete = Vec::new();
    let mut results = Vec::new();
    for stream in streams {
        let query = postmark::SuppressionQuery {
            email_address: Some(address.to_owned()),
            ..Default::default()
        };
        let found = match client.suppressions(stream, &query).await {
            Ok(found) => found,
            Err(e) => {
                return match left_out(server, &e) {
                    Some(why) => Ok(Checked::LeftOut(skip_all(server, streams, &why))),
                    None => Err(postmark_failure(&e, "reading the stream suppressions")),
                };
            }
        };
        let mine: Vec<_> = found
            .iter()
            .filter(|s| {
                s.email_address
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(address))
            })
            .collect();
        if mine
            .iter()
            .any(|s| s.suppression_reason == Some(postmark::SuppressionReason::SpamComplaint))
        {
            return Err(spam_refusal(email));
        }
        if mine.is_empty() {
            results.push(result(server, stream, "not_suppressed", None));
        } else {
            to_delete.push(stream.clone());
        }
    }
    Ok(Checked::Lift { to_delete, results })
}

/// Lifts the address's suppressions in Postmark after checking that every one of them can be lifted.
/// A server whose token Postmark refuses, or an inactive server Postmark cannot be used for, is left
/// out (`skipped`, with what to do) rather than blocking every reactivation.
async fn lift_in_postmark(app: &App, email: &EmailAddress) -> Result<Vec<StreamResult>, ApiError> {
    let (targets, mut results) = targets(app).await?;
    let address = email.as_str();
    let mut to_delete = Vec::new();
    for (server, client, streams) in &targets {
        match check_server(server, client, streams, email).await? {
            Checked::Lift {
                to_delete: streams,
                results: checked,
            } => {
                results.extend(checked);
                to_delete.extend(streams.into_iter().map(|s| (server, client, s)));
            }
            Checked::LeftOut(skipped) => results.extend(skipped),
        }
    }
    for (server, client, stream) in to_delete {
        let changes = match client.delete_suppressions(&stream, &[address]).await {
            Ok(changes) => changes,
            Err(e) => match left_out(server, &e) {
                Some(why) => {
                    results.push(result(server, &stream, "skipped", Some(why)));
                    continue;
                }
                None => return Err(postmark_failure(&e, "deleting a stream suppression")),
            },
        };
        let failed = changes.iter().find(|c| !c.succeeded());
        match failed {
            None => results.push(result(server, &stream, "deleted", None)),
            Some(c) => {
                let message = c
                    .message
                    .clone()
                    .unwrap_or_else(|| "Postmark refused to delete the suppression".into());
                return Err(ApiError::conflict(format!(
                    "Postmark refused to lift the suppression of {address} on \"{stream}\" of \
                     \"{}\": {message}. It was not reactivated here.",
                    server.label
                )));
            }
        }
    }
    tracing::info!(streams = results.len(), "suppression lifted in Postmark");
    Ok(results)
}

/// Creates the suppression in Postmark on every API server's streams; failures are reported, not fatal
/// (the suppression here holds whatever Postmark says).
async fn suppress_in_postmark(
    app: &App,
    email: &EmailAddress,
) -> Result<Vec<StreamResult>, ApiError> {
    let (targets, mut results) = targets(app).await?;
    let address = email.as_str();
    for (server, client, streams) in &targets {
        for stream in streams {
            let r = match client.create_suppressions(stream, &[address]).await {
                Ok(changes) => match changes.iter().find(|c| !c.succeeded()) {
                    None => result(server, stream, "suppressed", None),
                    Some(c) => result(server, stream, "failed", c.message.clone()),
                },
                Err(e) => {
                    tracing::warn!(error = %chain(&e), "a suppression could not be created in Postmark");
                    result(server, stream, "failed", Some(e.to_string()))
                }
            };
            results.push(r);
        }
    }
    Ok(results)
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
    if reason == SuppressionReason::SpamComplaint {
        return Err(spam_refusal(&email));
    }
    let postmark = lift_in_postmark(app, &email).await?;
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
        "postmark": PostmarkLift {
            outlook: postmark_outlook(
                previous,
                postmark.iter().any(|s| s.status == "deleted"),
                postmark.iter().any(|s| s.status == "skipped"),
            ),
            streams: postmark,
        },
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
            postmark_outlook(SuppressionReason::SpamComplaint, true, false).will_refuse,
            "yes"
        );
        for r in SuppressionReason::ALL {
            assert!(!postmark_outlook(r, false, false).message.is_empty());
        }
    }

    #[test]
    fn a_server_left_out_means_postmark_may_still_refuse() {
        let o = postmark_outlook(SuppressionReason::HardBounce, true, true);
        assert_eq!(o.will_refuse, "maybe");
    }
}
