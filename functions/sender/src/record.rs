//! Recording the run: every owned job's outcome (with its campaign counter, in one transaction), the
//! suppressions of 406 answers and the activity entries; and how long each job that goes back to the
//! queue waits.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::SuppressionReason;
use serde_json::json;
use store::activity::ActivityEntry;
use store::jobs::{JobOutcome, OutcomeRecorded, OutcomeWrite, SendAttempt};
use tracing::error;

use crate::verdict::Verdict;
use crate::{App, Owned, retry_wait};

/// The outcome a verdict records.
fn outcome(o: &Owned, v: &Verdict, now: DateTime<Utc>) -> JobOutcome {
    match v {
        Verdict::Sent { message_id, via } => JobOutcome::Sent {
            message_id: message_id.clone(),
            server_id: via.server_id.clone(),
            stream: via.stream.clone(),
        },
        Verdict::Skipped(reason) => JobOutcome::Skipped {
            reason: reason.to_string(),
        },
        Verdict::Failed {
            reason,
            error_code,
            via,
            ..
        } => JobOutcome::Failed {
            reason: reason.clone(),
            error_code: *error_code,
            server_id: via.as_ref().map(|v| v.server_id.clone()),
            stream: via.as_ref().map(|v| v.stream.clone()),
        },
        Verdict::Retry {
            reason, error_code, ..
        } => JobOutcome::Retrying {
            reason: reason.clone(),
            error_code: *error_code,
        },
        Verdict::NotStarted => JobOutcome::Retrying {
            reason: "not sent: the invocation had no time left for the call".into(),
            error_code: None,
        },
        Verdict::Unknown { reason, .. } => JobOutcome::Unknown {
            reason: reason.clone(),
            // The call has ended: Postmark accepted its messages by now or never.
            pending: o
                .unresolved
                .iter()
                .cloned()
                .chain(o.send.iter().map(|s| SendAttempt {
                    at: now,
                    ..s.clone()
                }))
                .collect(),
        },
        Verdict::Unresolved { reason, .. } => JobOutcome::Unknown {
            reason: reason.clone(),
            pending: o.unresolved.clone(),
        },
    }
}

/// How long a job whose outcome was recorded waits before SQS delivers it again; `None` when it is done.
fn wait(app: &App, o: &Owned, v: &Verdict) -> Option<Duration> {
    match v {
        Verdict::Sent { .. } | Verdict::Skipped(_) | Verdict::Failed { .. } => None,
        Verdict::Retry { .. } => Some(retry_wait(app, &o.received)),
        Verdict::NotStarted => Some(Duration::ZERO),
        Verdict::Unknown { .. } => Some(app.config.search_settle),
        Verdict::Unresolved { delay, .. } => Some(*delay),
    }
}

/// Writes every outcome, the suppressions of 406 answers and the activity entries; answers, per owned
/// job, how long it waits before SQS delivers it again (`None`: acknowledged).
pub async fn record(app: &App, owned: &[Owned], verdicts: &[Verdict]) -> Vec<Option<Duration>> {
    let now = Utc::now();
    let writes: Vec<OutcomeWrite<'_>> = owned
        .iter()
        .zip(verdicts)
        .map(|(o, v)| OutcomeWrite {
            id: &o.job.id,
            token: &o.token,
            outcome: outcome(o, v, now),
            campaign: o.job.campaign.as_ref(),
        })
        .collect();
    let written = app.table.record_outcomes(&writes, now).await;

    let mut waits = Vec::with_capacity(owned.len());
    let mut recorded = vec![false; owned.len()];
    for (i, result) in written.into_iter().enumerate() {
        let (o, v) = (&owned[i], &verdicts[i]);
        waits.push(match result {
            Ok(OutcomeRecorded::Written) => {
                recorded[i] = true;
                wait(app, o, v)
            }
            Ok(OutcomeRecorded::ClaimLost) => {
                error!(job_id = %o.job.id, verdict = v.name(), "the job's claim was lost to another run (lease too short?); that run records it");
                None
            }
            Err(e) => {
                // The job stays claimed: once its lease ends, the next delivery looks its call up in
                // Postmark and records what happened.
                error!(job_id = %o.job.id, verdict = ?v, error = ?e, "the job's outcome could not be recorded; it comes back after its lease");
                Some(app.config.claim_lease + Duration::from_secs(1))
            }
        });
    }

    suppress_inactive(app, owned, verdicts, &recorded, now).await;
    let entries: Vec<_> = owned
        .iter()
        .zip(verdicts)
        .zip(&recorded)
        .filter(|(_, r)| **r)
        .filter_map(|((o, v), _)| activity(o, v, now))
        .collect();
    if !entries.is_empty()
        && let Err(e) = app.table.record_activities(&entries).await
    {
        error!(error = ?e, "activity entries could not be written");
    }
    waits
}

/// Postmark said the recipient is inactive (406): it is suppressed here too, so that later jobs are
/// skipped without asking Postmark.
async fn suppress_inactive(
    app: &App,
    owned: &[Owned],
    verdicts: &[Verdict],
    recorded: &[bool],
    now: DateTime<Utc>,
) {
    for ((o, v), r) in owned.iter().zip(verdicts).zip(recorded) {
        if !*r || !matches!(v, Verdict::Failed { suppress: true, .. }) {
            continue;
        }
        let address = o.job.recipient();
        let result = app
            .table
            .suppress(address, SuppressionReason::InactiveRecipient, now)
            .await;
        if let Err(e) = result {
            error!(address = address.as_str(), error = ?e, "an inactive recipient could not be suppressed");
        }
    }
}

fn activity(o: &Owned, v: &Verdict, now: DateTime<Utc>) -> Option<(String, ActivityEntry)> {
    let job = &o.job;
    let (kind, detail) = match v {
        Verdict::Sent { message_id, via } => (
            "sent",
            json!({
                "job_id": job.id, "message_id": message_id, "subject": job.subject,
                "campaign": job.campaign, "server_id": via.server_id, "stream": via.stream,
            }),
        ),
        Verdict::Skipped(reason) => (
            "skipped",
            json!({ "job_id": job.id, "reason": reason.to_string(), "campaign": job.campaign }),
        ),
        Verdict::Failed {
            reason, error_code, ..
        } => (
            "send_failed",
            json!({ "job_id": job.id, "reason": reason, "error_code": error_code, "campaign": job.campaign }),
        ),
        _ => return None,
    };
    Some((
        job.recipient().key().to_owned(),
        ActivityEntry {
            at: now,
            id: format!("{kind}:{}", job.id),
            kind: kind.to_owned(),
            detail,
        },
    ))
}
