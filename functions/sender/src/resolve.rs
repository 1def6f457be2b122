//! Jobs whose earlier call may have reached Postmark (an attempt died after handing them over, or the
//! call ended ambiguously) are looked up before anything is sent again: one search of Postmark's
//! outbound messages by the call's `send_id` metadata (paged, 500 a page) finds every message of that
//! call. Found: the job was sent, with Postmark's MessageID. Not found once the search has had time to
//! show the call (`search_settle` after the latest time the call could have been accepted: its end when
//! it ended ambiguously, its claim's lease when its run died): it was not, and may be sent. Otherwise
//! the job waits.
//!
//! What remains: a message that Postmark accepted but whose search still does not show it `settle`
//! after the call would be sent a second time. Postmark documents no indexing delay; its own clients
//! wait up to about a minute.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::servers::EmailServer;
use domain::trace::{JOB_ID, SEND_ID};
use postmark::{OutboundSearch, PostmarkClient};
use secrecy::ExposeSecret;
use store::jobs::SendAttempt;
use tracing::{info, warn};

use crate::App;
use crate::verdict::{Verdict, Via, chain};

/// Postmark's largest page, and its limit on `count + offset`.
const PAGE: u32 = 500;
const MAX_WINDOW: u32 = 10_000;

/// What a lookup says about one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Postmark has it.
    Sent { message_id: String, via: Via },
    /// None of its calls reached Postmark: it may be sent.
    NotSent,
    /// Not decided yet (a verdict of [`Verdict::Unresolved`] or [`Verdict::Failed`]).
    Decided(Verdict),
}

/// What one call's search found: job id → MessageID.
enum Search {
    Found(HashMap<String, String>),
    /// The search failed; try again after the delay.
    Failed(String),
    /// No Server API Token to search with.
    Impossible(String),
}

/// Looks up the jobs' earlier calls. `jobs` are (job id, its calls).
pub async fn resolve(
    app: &App,
    servers: &[EmailServer],
    jobs: &[(&str, &[SendAttempt])],
    now: DateTime<Utc>,
) -> Vec<Resolution> {
    let mut calls: BTreeMap<(&str, &str, &str), Option<Search>> = BTreeMap::new();
    for (_, sends) in jobs {
        for s in *sends {
            calls.insert(
                (s.server_id.as_str(), s.stream.as_str(), s.send_id.as_str()),
                None,
            );
        }
    }
    for ((server_id, stream, send_id), found) in calls.iter_mut() {
        *found = Some(search(app, servers, server_id, stream, send_id).await);
    }
    let settle = app.config.search_settle;
    jobs.iter()
        .map(|(job_id, sends)| {
            let mut waiting: Option<Duration> = None;
            let mut failure: Option<String> = None;
            for s in *sends {
                match calls
                    .get(&(s.server_id.as_str(), s.stream.as_str(), s.send_id.as_str()))
                    .and_then(Option::as_ref)
                {
                    Some(Search::Found(found)) => {
                        if let Some(message_id) = found.get(*job_id) {
                            return Resolution::Sent {
                                message_id: message_id.clone(),
                                via: Via {
                                    server_id: s.server_id.clone(),
                                    stream: s.stream.clone(),
                                },
                            };
                        }
                        // `at` is the latest time the call could have been accepted.
                        let age = (now - s.at).to_std().unwrap_or_default();
                        if age < settle {
                            let left = settle - age;
                            waiting = Some(waiting.map_or(left, |w| w.max(left)));
                        }
                    }
                    Some(Search::Failed(reason)) => failure = Some(reason.clone()),
                    Some(Search::Impossible(reason)) => {
                        return Resolution::Decided(Verdict::Failed {
                            reason: format!(
                                "Postmark may have accepted this job in an earlier call, which cannot be \
                                 looked up: {reason}; it is not sent again"
                            ),
                            error_code: None,
                            // Not Postmark's answer: nothing for the server's breaker.
                            via: None,
                            suppress: false,
                        });
                    }
                    None => failure = Some("the call was not searched".into()),
                }
            }
            if let Some(reason) = failure {
                return Resolution::Decided(Verdict::Unresolved {
                    reason: format!("an earlier call could not be looked up in Postmark: {reason}"),
                    delay: settle.max(Duration::from_secs(30)),
                });
            }
            match waiting {
                Some(delay) => Resolution::Decided(Verdict::Unresolved {
                    reason: "an earlier call may still appear in Postmark's search".into(),
                    delay,
                }),
                None => Resolution::NotSent,
            }
        })
        .collect()
}

/// Every message of one call, by its `send_id` metadata (checked again on each answer: the filter is
/// Postmark's, the decision ours).
async fn search(
    app: &App,
    servers: &[EmailServer],
    server_id: &str,
    stream: &str,
    send_id: &str,
) -> Search {
    let Some(server) = servers.iter().find(|s| s.id.as_str() == server_id) else {
        return Search::Impossible(format!("email server {server_id} no longer exists"));
    };
    let client = match lookup_client(app, server).await {
        Ok(c) => c,
        Err(e) => return e,
    };
    let mut found = HashMap::new();
    let mut offset = 0;
    loop {
        let query = OutboundSearch::new(PAGE)
            .offset(offset)
            .stream(stream)
            .metadata(SEND_ID, send_id);
        let page = match client.search_outbound(&query).await {
            Ok(p) => p,
            Err(e) => {
                warn!(server_id, send_id, error = %chain(&e), "Postmark's message search failed");
                return Search::Failed(chain(&e));
            }
        };
        let fetched = page.messages.len();
        for m in page.messages {
            if m.metadata.get(SEND_ID).map(String::as_str) == Some(send_id)
                && let Some(job) = m.metadata.get(JOB_ID)
            {
                found.entry(job.clone()).or_insert(m.message_id);
            }
        }
        offset += PAGE;
        if fetched < PAGE as usize
            || u64::from(offset) >= page.total_count
            || offset + PAGE > MAX_WINDOW
        {
            break;
        }
    }
    info!(
        server_id,
        stream,
        send_id,
        found = found.len(),
        "looked up an earlier call in Postmark"
    );
    Search::Found(found)
}

/// A client for the server's Server API Token. Postmark's SMTP takes that token as both user name and
/// password, so an SMTP server whose two are equal has it too.
async fn lookup_client(app: &App, server: &EmailServer) -> Result<PostmarkClient, Search> {
    let credentials = match app.server_secrets.credentials(server).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(Search::Failed(format!(
                "the credentials of email server {} are missing",
                server.id
            )));
        }
        Err(e) => return Err(Search::Failed(chain(&e))),
    };
    let token = credentials.api_token.clone().or_else(|| {
        match (&credentials.smtp_username, &credentials.smtp_password) {
            (Some(u), Some(p)) if u.expose_secret() == p.expose_secret() => Some(p.clone()),
            _ => None,
        }
    });
    let Some(token) = token else {
        return Err(Search::Impossible(format!(
            "email server {} has no Server API Token",
            server.id
        )));
    };
    app.client_for(token).map_err(|e| Search::Failed(chain(&e)))
}
