//! The recovery run's bookkeeping: each server's watermark (how far back Postmark has been asked), each
//! run's summary, and whether a message's outcome is recorded.

use chrono::{DateTime, Utc};
use domain::EmailAddress;
use domain::events::Event;
use domain::recovery::RecoveryRun;
use domain::servers::ServerId;

use crate::activity::sortable_time;
use crate::error::StoreError;
use crate::events::EVENT;
use crate::schema::{SK, TTL_ATTRIBUTE, keys};
use crate::table::{Item, Page, PageQuery, Table, get_s, n, s};

const WATERMARK: &str = "watermark";
const SUMMARY: &str = "summary";
/// How long a run's summary is kept.
const RUN_DAYS: i64 = 90;

impl Table {
    /// Up to when a server's events have been asked of Postmark.
    pub async fn recovery_watermark(
        &self,
        server: &ServerId,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let item = self
            .get(keys::recovery_watermark(server).into_item(), true)
            .await?;
        Ok(item
            .as_ref()
            .and_then(|i| get_s(i, WATERMARK))
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)))
    }

    /// Moves a server's watermark.
    pub async fn set_recovery_watermark(
        &self,
        server: &ServerId,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut item = keys::recovery_watermark(server).into_item();
        item.insert(WATERMARK.into(), s(sortable_time(at)));
        self.write(self.put_op(item)?).await
    }

    /// Keeps a run's summary.
    pub async fn record_recovery_run(&self, run: &RecoveryRun) -> Result<(), StoreError> {
        let mut item = keys::recovery_run(run.started_at, &run.id).into_item();
        let text = serde_json::to_string(run).map_err(|e| {
            StoreError::Corrupt(format!("a recovery run that cannot be stored: {e}"))
        })?;
        item.insert(SUMMARY.into(), s(text));
        let expires = run.started_at + chrono::Duration::days(RUN_DAYS);
        item.insert(TTL_ATTRIBUTE.into(), n(expires.timestamp()));
        self.write(self.put_op(item)?).await
    }

    /// The runs' summaries, newest first.
    pub async fn recovery_runs(
        &self,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<RecoveryRun>, StoreError> {
        let page = self
            .query_page(PageQuery {
                newest_first: true,
                limit,
                cursor,
                sort_prefix: None,
                ..PageQuery::table(keys::RECOVERY_RUNS, "")
            })
            .await?;
        let items = page
            .items
            .iter()
            .map(|i| {
                get_s(i, SUMMARY)
                    .and_then(|t| serde_json::from_str(t).ok())
                    .ok_or_else(|| StoreError::Corrupt("a recovery run's summary".into()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            next: page.next,
        })
    }

    /// The events recorded for one message of `recipient` since `since` (its send time), from the
    /// recipient's activity log: one query, newest first, stopping at `since`.
    pub async fn message_events(
        &self,
        recipient: &EmailAddress,
        since: DateTime<Utc>,
        message_id: &str,
    ) -> Result<Vec<Event>, StoreError> {
        let pk = keys::subscriber_pk(recipient.key());
        let floor = format!("{}{}", keys::ACTIVITY_PREFIX, sortable_time(since));
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .query_page(PageQuery {
                    newest_first: true,
                    limit: 200,
                    cursor: cursor.as_deref(),
                    ..PageQuery::table(&pk, keys::ACTIVITY_PREFIX)
                })
                .await?;
            let mut reached_floor = false;
            for item in &page.items {
                if get_s(item, SK).is_some_and(|sk| sk < floor.as_str()) {
                    reached_floor = true;
                    break;
                }
                if let Some(event) = recorded(item)
                    && event.message_id.as_deref() == Some(message_id)
                {
                    out.push(event);
                }
            }
            match page.next {
                Some(next) if !reached_floor => cursor = Some(next),
                _ => return Ok(out),
            }
        }
    }
}

fn recorded(item: &Item) -> Option<Event> {
    serde_json::from_str(get_s(item, EVENT)?).ok()
}
