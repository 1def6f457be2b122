//! The recovery function: asks Postmark, per email server and since the server's watermark, what it knows
//! that the webhooks may not have brought, and records it through the webhook's own event path.
//!
//! A webhook that Postmark gives up on (its retries end after about 70 minutes), a stream without a
//! webhook, or a trigger left off loses events for good. Postmark keeps them for 45 days, so each run
//! reads, for every stream an API server's email types use, over the window from the watermark (less an
//! overlap) to now (less a settle time):
//!
//! 1. the messages sent (`GET /messages/outbound`, with their `Metadata`): for each one whose recipient's
//!    activity log holds no delivery or bounce of it, its details (`/messages/outbound/{id}/details`),
//!    whose `Delivered`, `Opened`, `LinkClicked` and `SubscriptionChanged` events are recovered;
//! 2. the bounces (`GET /bounces`, with `Inactive` and `CanActivate`), spam complaints among them;
//! 3. the opens and clicks (`/messages/outbound/opens|clicks`; Postmark keeps the first open of each
//!    recipient);
//! 4. the stream's suppressions (`/message-streams/{stream}/suppressions/dump`): an address suppressed
//!    there and not here is suppressed here, with Postmark's reason and origin.
//!
//! Each event read back is rebuilt as its webhook ([`postmark::recovered`]) and mapped by the webhook's own
//! [`webhook::mapping::to_event`], so its dedup key is the key of the webhook it stands for: recorded once,
//! whether its webhook came before, comes after or never comes. Searches page by 500 and never ask for
//! more than 10,000 (`count + offset`): a window holding more is split in halves. Dates go to Postmark in
//! Eastern time. The watermark moves to the window's end only when the server's run had no error.

mod config;

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use domain::EmailAddress;
use domain::events::{BounceClass, EventKind};
use domain::recovery::{RecoveryRun, ServerRecovery};
use domain::servers::{Delivery, EmailServer};
use domain::tracking::TokenSigner;
use postmark::recovered::{self, MessageContext};
use postmark::{
    BounceQuery, OutboundMessage, OutboundSearch, PostmarkClient, PostmarkError, ServerToken,
    Suppression, TrackingQuery, WebhookEvent, eastern,
};
use secrecy::ExposeSecret;
use store::aws::StorePolicy;
use store::events::Recorded;
use store::servers::ServerSecrets;
use store::{SecretCache, StoreError, Table};
use tracing::{info, warn};

pub use config::{Config, ConfigError};

/// Postmark's largest page, and its limit on `count + offset`.
const PAGE: u32 = 500;
const MAX_WINDOW: u32 = 10_000;

/// Clients and configuration, built once per cold start.
#[derive(Clone, Debug)]
pub struct App {
    pub config: std::sync::Arc<Config>,
    pub table: Table,
    pub secrets: SecretCache,
    pub server_secrets: ServerSecrets,
}

impl App {
    pub fn new(sdk: &aws_config::SdkConfig, config: Config) -> Self {
        Self::with_clients(
            store::aws::dynamodb_client(sdk, &StorePolicy::default()),
            store::aws::secrets_client(sdk, &StorePolicy::default()),
            config,
        )
    }

    pub fn with_clients(
        dynamodb: aws_sdk_dynamodb::Client,
        secrets: aws_sdk_secretsmanager::Client,
        config: Config,
    ) -> Self {
        Self {
            table: Table::new(dynamodb, config.table_name.clone()),
            secrets: SecretCache::new(secrets.clone(), config.secrets_ttl),
            server_secrets: ServerSecrets::new(secrets, config.secrets_prefix.clone()),
            config: std::sync::Arc::new(config),
        }
    }

    async fn signer(&self) -> Option<TokenSigner> {
        match self.secrets.current(&self.config.tracking_key_secret).await {
            Ok(key) => Some(TokenSigner::new(key.value.expose_secret().as_bytes())),
            Err(e) => {
                warn!(error = %store::error::chain(&e), "the tracking key cannot be read: clicks on native links are recorded as Postmark saw them");
                None
            }
        }
    }
}

/// A run that met errors. It fails the invocation (its summary is kept and logged all the same), so that
/// the function's error metric and its alarm see it.
#[derive(Debug, thiserror::Error)]
#[error("recovery run {id} had {} errors: {errors:?}", errors.len())]
pub struct RunFailed {
    pub id: String,
    pub errors: Vec<String>,
}

/// The function's entry point: one run over every server, started by the payload's `trigger` (or the
/// schedule); the run's summary, or what went wrong in it.
pub async fn handle(app: &App, payload: &serde_json::Value) -> Result<RecoveryRun, RunFailed> {
    let trigger = match payload.get("trigger").and_then(|t| t.as_str()) {
        Some(t) => t.to_owned(),
        None if payload.get("source").and_then(|s| s.as_str()) == Some("aws.events") => {
            "schedule".to_owned()
        }
        None => "invoke".to_owned(),
    };
    let run = run(app, &trigger, Utc::now()).await;
    if run.ok() {
        Ok(run)
    } else {
        Err(RunFailed {
            id: run.id,
            errors: run.servers.into_iter().flat_map(|s| s.errors).collect(),
        })
    }
}

/// One run: every active API server, then the run's summary kept and logged.
pub async fn run(app: &App, trigger: &str, now: DateTime<Utc>) -> RecoveryRun {
    let mut run = RecoveryRun {
        id: uuid::Uuid::new_v4().simple().to_string(),
        started_at: now,
        finished_at: None,
        trigger: trigger.to_owned(),
        servers: Vec::new(),
    };
    let signer = app.signer().await;
    match app.table.servers().await {
        Ok(servers) => {
            for server in servers
                .iter()
                .filter(|s| s.active && matches!(s.delivery, Delivery::Api))
            {
                run.servers
                    .push(Box::pin(recover_server(app, server, signer.as_ref(), now)).await);
            }
        }
        Err(e) => run.servers.push(ServerRecovery {
            errors: vec![format!(
                "the email servers could not be read: {}",
                store::error::chain(&e)
            )],
            ..ServerRecovery::default()
        }),
    }
    run.finished_at = Some(Utc::now());
    for s in &run.servers {
        info!(
            run = %run.id,
            server = %s.server_id,
            recovered = s.recovered_total(),
            recovered_by_kind = ?s.recovered,
            already_recorded = s.already_recorded,
            suppressions_fixed = s.suppressions_fixed,
            messages_checked = s.messages_checked,
            postmark_calls = s.postmark_calls,
            errors = s.errors.len(),
            "recovery"
        );
        for e in &s.errors {
            warn!(run = %run.id, server = %s.server_id, error = %e, "recovery error");
        }
    }
    if let Err(e) = app.table.record_recovery_run(&run).await {
        warn!(run = %run.id, error = %store::error::chain(&e), "the recovery run's summary could not be kept");
    }
    run
}

/// What one server's run records, and how.
struct Recorder<'a> {
    table: &'a Table,
    signer: Option<&'a TokenSigner>,
    report: ServerRecovery,
    /// Dedup keys already handled in this run (windows overlap at their edges, sources overlap).
    seen: HashSet<String>,
}

impl Recorder<'_> {
    /// Records one event read back, as its webhook would have been.
    async fn record(&mut self, webhook: &WebhookEvent) -> Result<Recorded, StoreError> {
        let body = serde_json::to_vec(webhook).unwrap_or_default();
        let event = webhook::mapping::to_event(webhook, None, &body, self.signer);
        if !self.seen.insert(event.dedup_key.clone()) {
            return Ok(Recorded::Duplicate);
        }
        let (recorded, event) = self.table.record_event(event).await?;
        match recorded {
            Recorded::New => {
                *self
                    .report
                    .recovered
                    .entry(event.kind.name().to_owned())
                    .or_default() += 1
            }
            Recorded::Duplicate => self.report.already_recorded += 1,
        }
        Ok(recorded)
    }

    fn failed(&mut self, what: &str, error: impl std::fmt::Display) {
        self.report.errors.push(format!("{what}: {error}"));
    }
}

/// The Postmark calls of one server, counted.
struct Postmark<'a> {
    client: PostmarkClient,
    calls: &'a std::cell::Cell<u64>,
}

impl Postmark<'_> {
    fn count(&self) {
        self.calls.set(self.calls.get() + 1);
    }
}

async fn recover_server(
    app: &App,
    server: &EmailServer,
    signer: Option<&TokenSigner>,
    now: DateTime<Utc>,
) -> ServerRecovery {
    let config = &app.config;
    let mut recorder = Recorder {
        table: &app.table,
        signer,
        report: ServerRecovery {
            server_id: server.id.to_string(),
            ..ServerRecovery::default()
        },
        seen: HashSet::new(),
    };
    let token = match app.server_secrets.credentials(server).await {
        Ok(Some(c)) => c.api_token.clone(),
        Ok(None) => None,
        Err(e) => {
            recorder.failed("the server's token", store::error::chain(&e));
            return recorder.report;
        }
    };
    let Some(token) = token else {
        recorder.failed(
            "the server's token",
            "missing from Secrets Manager: set it again with PATCH /api/email-servers/{id}",
        );
        return recorder.report;
    };
    let client = match PostmarkClient::new(
        config.postmark_api_url.clone(),
        ServerToken::from(token),
        config.postmark_timeout,
    ) {
        Ok(c) => c,
        Err(e) => {
            recorder.failed("the Postmark client", e);
            return recorder.report;
        }
    };
    let watermark = match app.table.recovery_watermark(&server.id).await {
        Ok(w) => w,
        Err(e) => {
            recorder.failed("the watermark", store::error::chain(&e));
            return recorder.report;
        }
    };
    let retention = now - Duration::days(config.retention_days);
    let from = watermark
        .map(|w| w - config.overlap)
        .unwrap_or(now - config.first_lookback)
        .max(retention);
    let to = (now - config.settle).min(from + config.max_window);
    recorder.report.from = Some(from);
    recorder.report.to = Some(to);
    if to <= from {
        return recorder.report;
    }
    let calls = std::cell::Cell::new(0);
    let postmark = Postmark {
        client,
        calls: &calls,
    };
    let streams: BTreeSet<String> = server
        .streams
        .values()
        .map(|s| s.as_str().to_owned())
        .collect();
    for stream in &streams {
        Box::pin(recover_stream(&postmark, &mut recorder, stream, from, to)).await;
    }
    recorder.report.postmark_calls = calls.get();
    if recorder.report.errors.is_empty()
        && let Err(e) = app.table.set_recovery_watermark(&server.id, to).await
    {
        recorder.failed("moving the watermark", store::error::chain(&e));
    }
    recorder.report
}

/// The message contexts of one stream's run, read once per message.
#[derive(Default)]
struct Contexts {
    known: HashMap<String, MessageContext>,
}

impl Contexts {
    async fn get(&mut self, postmark: &Postmark<'_>, message_id: &str) -> MessageContext {
        if let Some(c) = self.known.get(message_id) {
            return c.clone();
        }
        postmark.count();
        let context = match postmark.client.outbound_message_details(message_id).await {
            Ok(details) => MessageContext::from(&details.message),
            // Past retention or not indexed yet: the event is recorded with what it carries.
            Err(_) => MessageContext {
                message_id: message_id.to_owned(),
                ..MessageContext::default()
            },
        };
        self.known.insert(message_id.to_owned(), context.clone());
        context
    }
}

async fn recover_stream(
    postmark: &Postmark<'_>,
    recorder: &mut Recorder<'_>,
    stream: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) {
    let mut contexts = Contexts::default();
    postmark.count();
    let dump = match postmark
        .client
        .suppressions(stream, &postmark::SuppressionQuery::default())
        .await
    {
        Ok(d) => Some(d),
        Err(e) => {
            recorder.failed(&format!("the suppressions of {stream}"), e);
            None
        }
    };
    let suppressed: HashMap<String, &Suppression> = dump
        .iter()
        .flatten()
        .filter_map(|s| {
            Some((
                EmailAddress::parse(s.email_address.as_deref()?)
                    .ok()?
                    .key()
                    .to_owned(),
                s,
            ))
        })
        .collect();
    // 1. The messages sent, and the events of those with no outcome recorded here.
    let messages = read_window(postmark, from, to, async |f, t, offset| {
        let query = OutboundSearch::new(PAGE)
            .offset(offset)
            .stream(stream)
            .from_date(f)
            .to_date(t);
        let page = postmark.client.search_outbound(&query).await?;
        Ok((page.total_count, page.messages))
    })
    .await;
    match messages {
        Ok(messages) => {
            let mut checked = HashSet::new();
            for message in messages {
                if !checked.insert(message.message_id.clone()) {
                    continue;
                }
                contexts
                    .known
                    .insert(message.message_id.clone(), MessageContext::from(&message));
                recover_message(postmark, recorder, &message, &suppressed).await;
            }
        }
        Err(e) => recorder.failed(&format!("searching the messages of {stream}"), e),
    }
    // 2. Bounces and spam complaints.
    let bounces = read_window(postmark, from, to, async |f, t, offset| {
        let query = BounceQuery::new(PAGE)
            .offset(offset)
            .stream(stream)
            .from_date(f)
            .to_date(t);
        let page = postmark.client.bounces(&query).await?;
        Ok((page.total_count, page.bounces))
    })
    .await;
    match bounces {
        Ok(bounces) => {
            for bounce in bounces {
                let context = match bounce.message_id.as_deref() {
                    Some(id) => contexts.get(postmark, id).await,
                    None => MessageContext::default(),
                };
                let event = recovered::bounce_event(&bounce, &context);
                if let Err(e) = recorder.record(&event).await {
                    recorder.failed("recording a bounce", store::error::chain(&e));
                }
            }
        }
        Err(e) => recorder.failed(&format!("reading the bounces of {stream}"), e),
    }
    // 3. Opens and clicks.
    let opens = read_window(postmark, from, to, async |f, t, offset| {
        let query = TrackingQuery::new(PAGE)
            .offset(offset)
            .stream(stream)
            .from_date(f)
            .to_date(t);
        let page = postmark.client.opens(&query).await?;
        Ok((page.total_count, page.opens))
    })
    .await;
    match opens {
        Ok(opens) => {
            for open in opens {
                let context = match open.message_id.as_deref() {
                    Some(id) => contexts.get(postmark, id).await,
                    None => MessageContext::default(),
                };
                if let Err(e) = recorder
                    .record(&recovered::open_event(&open, &context))
                    .await
                {
                    recorder.failed("recording an open", store::error::chain(&e));
                }
            }
        }
        Err(e) => recorder.failed(&format!("reading the opens of {stream}"), e),
    }
    let clicks = read_window(postmark, from, to, async |f, t, offset| {
        let query = TrackingQuery::new(PAGE)
            .offset(offset)
            .stream(stream)
            .from_date(f)
            .to_date(t);
        let page = postmark.client.clicks(&query).await?;
        Ok((page.total_count, page.clicks))
    })
    .await;
    match clicks {
        Ok(clicks) => {
            for click in clicks {
                let context = match click.message_id.as_deref() {
                    Some(id) => contexts.get(postmark, id).await,
                    None => MessageContext::default(),
                };
                if let Err(e) = recorder
                    .record(&recovered::click_event(&click, &context))
                    .await
                {
                    recorder.failed("recording a click", store::error::chain(&e));
                }
            }
        }
        Err(e) => recorder.failed(&format!("reading the clicks of {stream}"), e),
    }
    // 4. The stream's suppressions that this system does not hold.
    if let Some(dump) = &dump {
        recover_suppressions(recorder, stream, dump).await;
    }
}

/// The events of one message, read from its details when no delivery or bounce of it is recorded here.
async fn recover_message(
    postmark: &Postmark<'_>,
    recorder: &mut Recorder<'_>,
    message: &OutboundMessage,
    suppressed: &HashMap<String, &Suppression>,
) {
    let sent = message
        .received_at
        .as_deref()
        .and_then(postmark::parse_timestamp)
        .map(|t| t.with_timezone(&Utc) - Duration::minutes(5))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let mut settled = true;
    for recipient in &message.recipients {
        let Ok(address) = EmailAddress::parse(recipient) else {
            continue;
        };
        match recorder
            .table
            .message_events(&address, sent, &message.message_id)
            .await
        {
            Ok(events) => {
                // Delivered, or a bounce that ends the message undelivered. A complaint, an
                // auto-reply or an unsubscribe came after a delivery that may itself be missing; a
                // soft bounce may still be followed by one.
                let has_outcome = events.iter().any(|e| {
                    matches!(
                        e.kind,
                        EventKind::Delivered
                            | EventKind::Bounced {
                                class: BounceClass::Hard | BounceClass::Dropped,
                                ..
                            }
                    )
                });
                settled &= has_outcome;
            }
            Err(e) => {
                recorder.failed("reading a recipient's activity", store::error::chain(&e));
                return;
            }
        }
    }
    if settled {
        return;
    }
    recorder.report.messages_checked += 1;
    postmark.count();
    let details = match postmark
        .client
        .outbound_message_details(&message.message_id)
        .await
    {
        Ok(d) => d,
        Err(e) => {
            recorder.failed(&format!("the details of {}", message.message_id), e);
            return;
        }
    };
    for event in &details.message_events {
        let Some(mut webhook) = recovered::message_event(&details, event) else {
            continue;
        };
        // A message's SubscriptionChanged event names no reason: the stream's suppression of the
        // address gives it; an address no longer suppressed there leaves nothing to recover.
        if let WebhookEvent::SubscriptionChange(change) = &mut webhook
            && change.suppress_sending == Some(true)
            && change.suppression_reason.is_none()
        {
            let entry = change
                .recipient
                .as_deref()
                .and_then(|r| EmailAddress::parse(r).ok())
                .and_then(|r| suppressed.get(r.key()));
            let Some(entry) = entry else { continue };
            change.suppression_reason = entry.suppression_reason.clone();
            change.origin = change.origin.clone().or_else(|| entry.origin.clone());
        }
        if let Err(e) = recorder.record(&webhook).await {
            recorder.failed("recording a message event", store::error::chain(&e));
        }
    }
}

async fn recover_suppressions(recorder: &mut Recorder<'_>, stream: &str, dump: &[Suppression]) {
    for entry in dump {
        let Some(address) = entry
            .email_address
            .as_deref()
            .and_then(|a| EmailAddress::parse(a).ok())
        else {
            continue;
        };
        match recorder.table.subscriber_profile(&address).await {
            Ok(Some(p)) if p.suppression_reason.is_some() => continue,
            Ok(_) => {}
            Err(e) => {
                recorder.failed("reading a subscriber", store::error::chain(&e));
                continue;
            }
        }
        match recorder
            .record(&recovered::suppression_event(entry, stream))
            .await
        {
            Ok(Recorded::New) => recorder.report.suppressions_fixed += 1,
            Ok(Recorded::Duplicate) => {}
            Err(e) => recorder.failed("recording a suppression", store::error::chain(&e)),
        }
    }
}

/// Everything a search holds over `[from, to]`, page by page; a window holding more than Postmark lets
/// one search page through (`count + offset` ≤ 10,000) is split in halves until each fits. Around a change
/// of daylight saving time the window is widened by an hour on Postmark's wall clock.
async fn read_window<T, F>(
    postmark: &Postmark<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    mut fetch: F,
) -> Result<Vec<T>, PostmarkError>
where
    F: AsyncFnMut(
        chrono::NaiveDateTime,
        chrono::NaiveDateTime,
        u32,
    ) -> Result<(u64, Vec<T>), PostmarkError>,
{
    let mut windows = vec![(from, to)];
    let mut out = Vec::new();
    while let Some((a, b)) = windows.pop() {
        let widen = if eastern::offset_at(a) != eastern::offset_at(b) {
            Duration::hours(1)
        } else {
            Duration::zero()
        };
        // Postmark's dates are whole seconds, both ends inclusive: the end is rounded up.
        let (wall_from, wall_to) = (
            eastern::wall_clock(a - widen),
            eastern::wall_clock(b + Duration::seconds(1)),
        );
        postmark.count();
        let (total, first) = fetch(wall_from, wall_to, 0).await?;
        if total > u64::from(MAX_WINDOW) && b - a > Duration::seconds(2) {
            let middle = a + (b - a) / 2;
            windows.push((middle, b));
            windows.push((a, middle));
            continue;
        }
        let mut fetched = first.len();
        out.extend(first);
        let mut offset = PAGE;
        while (offset as u64) < total && offset + PAGE <= MAX_WINDOW && fetched > 0 {
            postmark.count();
            let (_, page) = fetch(wall_from, wall_to, offset).await?;
            fetched = page.len();
            out.extend(page);
            offset += PAGE;
        }
    }
    Ok(out)
}
