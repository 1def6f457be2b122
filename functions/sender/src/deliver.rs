//! Sending: API servers get batch calls of up to 500 messages per server and stream; SMTP servers get
//! the messages over their pooled connections. No call starts that the invocation's deadline would
//! cut short: its jobs come back [`Verdict::NotStarted`].

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::MessageStream;
use domain::jobs::SendJob;
use domain::servers::{Delivery, EmailServer, SmtpAuthentication};
use futures::StreamExt;
use postmark::smtp::{
    POSTMARK_BROADCAST_SMTP_HOST, POSTMARK_SMTP_HOST, SmtpAuth, SmtpConfig, SmtpTransport, StartTls,
};
use postmark::{Email, MAX_BATCH_SIZE, PostmarkClient, PostmarkError, ServerToken};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use store::servers::ServerCredentials;
use tokio::time::Instant;
use tracing::info;

use crate::App;
use crate::compose::{self, Tracker};
use crate::verdict::{self, Verdict, Via};

/// A batch request stays under Postmark's 50 MB with room for JSON escaping.
const MAX_BATCH_WEIGHT: usize = 40 * 1024 * 1024;
/// Batch calls in flight at once.
const CALLS_IN_FLIGHT: usize = 4;

/// Jobs of one server and stream, with the `send_id` their messages carry; each job by its index in the
/// run.
pub struct Group<'a> {
    pub server: &'a EmailServer,
    pub stream: &'a MessageStream,
    pub send_id: String,
    pub jobs: Vec<(usize, &'a SendJob)>,
}

/// What the delivery step tells the run's summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct Calls {
    pub api_batches: usize,
    pub smtp_messages: usize,
}

/// The invocation's deadline: no Postmark call starts unless it can end (its timeout) and its outcome
/// be written before the function is stopped.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// The invocation's deadline less the time kept for the outcome writes.
    pub at: Option<Instant>,
    /// A call's timeout.
    pub call_budget: Duration,
}

impl Deadline {
    /// Whether an API call started now ends in time.
    pub fn allows_call(&self) -> bool {
        self.allows(self.call_budget)
    }

    /// Whether an SMTP message started now ends in time: the transport gives a message twice its
    /// timeout (connect, then the exchange).
    pub fn allows_smtp(&self) -> bool {
        self.allows(self.call_budget * 2)
    }

    fn allows(&self, budget: Duration) -> bool {
        self.at.is_none_or(|at| Instant::now() + budget <= at)
    }
}

/// Sends every group's jobs; returns a verdict per job index.
pub async fn deliver(
    app: &App,
    groups: Vec<Group<'_>>,
    tracker: Option<&Tracker>,
    deadline: Deadline,
) -> (Vec<(usize, Verdict)>, Calls) {
    let mut verdicts: Vec<(usize, Verdict)> = Vec::new();
    let mut calls = Calls::default();
    let mut work = Vec::new();
    for group in groups {
        let via = Via {
            server_id: group.server.id.to_string(),
            stream: group.stream.to_string(),
        };
        let mut jobs = Vec::with_capacity(group.jobs.len());
        for (i, job) in group.jobs {
            if (job.track_opens || job.track_clicks) && tracker.is_none() {
                verdicts.push((
                    i,
                    Verdict::retry(
                        "the tracking key could not be read; native tracking cannot be added",
                    ),
                ));
            } else {
                jobs.push((i, job));
            }
        }
        if jobs.is_empty() {
            continue;
        }
        let credentials = match app.server_secrets.credentials(group.server).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                let v = Verdict::configuration(format!(
                    "the credentials of email server {} are missing from the secret store",
                    group.server.id
                ));
                verdicts.extend(jobs.iter().map(|(i, _)| (*i, v.clone())));
                continue;
            }
            Err(e) => {
                let v = Verdict::configuration(format!(
                    "the credentials of email server {} cannot be read: {}",
                    group.server.id,
                    verdict::chain(&e)
                ));
                verdicts.extend(jobs.iter().map(|(i, _)| (*i, v.clone())));
                continue;
            }
        };
        let sent_at = Utc::now();
        let emails: Vec<(usize, Email)> = jobs
            .iter()
            .map(|(i, job)| {
                let email = compose::email(
                    job,
                    group.server,
                    group.stream,
                    &group.send_id,
                    sent_at,
                    tracker,
                );
                (*i, email)
            })
            .collect();
        match &group.server.delivery {
            Delivery::Api => {
                let client = match app.api_client(group.server, &credentials) {
                    Ok(c) => c,
                    Err(v) => {
                        verdicts.extend(emails.iter().map(|(i, _)| (*i, v.clone())));
                        continue;
                    }
                };
                for chunk in chunks(emails) {
                    work.push(Work::Api {
                        client: client.clone(),
                        via: via.clone(),
                        chunk,
                    });
                }
            }
            Delivery::Smtp(settings) => {
                // Postmark takes broadcast streams on a host of their own.
                let marketing = jobs.iter().all(|(_, job)| job.email_type.is_marketing());
                let host = if marketing && settings.host.eq_ignore_ascii_case(POSTMARK_SMTP_HOST) {
                    POSTMARK_BROADCAST_SMTP_HOST
                } else {
                    settings.host.as_str()
                };
                match app.smtp_transport(group.server, host, &credentials).await {
                    Ok(transport) => work.push(Work::Smtp {
                        transport,
                        via,
                        emails,
                    }),
                    Err(v) => verdicts.extend(emails.iter().map(|(i, _)| (*i, v.clone()))),
                }
            }
        }
    }

    let results: Vec<(Vec<(usize, Verdict)>, Calls)> = futures::stream::iter(work)
        .map(|w| w.run(deadline))
        .buffer_unordered(CALLS_IN_FLIGHT)
        .collect()
        .await;
    for (done, c) in results {
        calls.api_batches += c.api_batches;
        calls.smtp_messages += c.smtp_messages;
        verdicts.extend(done);
    }
    (verdicts, calls)
}

/// Cuts a server's messages into batches of at most 500 messages and 40 MB.
fn chunks(emails: Vec<(usize, Email)>) -> Vec<Vec<(usize, Email)>> {
    let mut out: Vec<Vec<(usize, Email)>> = Vec::new();
    let mut weight = 0;
    for (i, email) in emails {
        let w = compose::weight(&email);
        match out.last_mut() {
            Some(last) if last.len() < MAX_BATCH_SIZE && weight + w <= MAX_BATCH_WEIGHT => {
                weight += w;
                last.push((i, email));
            }
            _ => {
                weight = w;
                out.push(vec![(i, email)]);
            }
        }
    }
    out
}

enum Work {
    Api {
        client: PostmarkClient,
        via: Via,
        chunk: Vec<(usize, Email)>,
    },
    Smtp {
        transport: Arc<SmtpTransport>,
        via: Via,
        emails: Vec<(usize, Email)>,
    },
}

impl Work {
    async fn run(self, deadline: Deadline) -> (Vec<(usize, Verdict)>, Calls) {
        let mut calls = Calls::default();
        let mut done = Vec::new();
        match self {
            Work::Api { client, via, chunk } => {
                // A batch Postmark finds too large is split and sent again; a single message that is
                // too large fails.
                let (jobs, emails): (Vec<usize>, Vec<Email>) = chunk.into_iter().unzip();
                let mut pending = vec![(jobs, emails)];
                while let Some((jobs, emails)) = pending.pop() {
                    if !deadline.allows_call() {
                        done.extend(jobs.iter().map(|i| (*i, Verdict::NotStarted)));
                        continue;
                    }
                    calls.api_batches += 1;
                    let recipients = || emails.iter().map(|e| e.to.as_deref().unwrap_or_default());
                    match client.send_batch(&emails).await {
                        Ok(items) => {
                            for ((i, recipient), item) in jobs.iter().zip(recipients()).zip(items) {
                                done.push((*i, verdict::api_item(item, &via, recipient)));
                            }
                        }
                        Err(e) if too_large(&e) && jobs.len() > 1 => {
                            info!(
                                size = jobs.len(),
                                "Postmark found the batch too large; splitting it"
                            );
                            let (mut jobs, mut emails) = (jobs, emails);
                            let half = jobs.len() / 2;
                            let second = (jobs.split_off(half), emails.split_off(half));
                            pending.push(second);
                            pending.push((jobs, emails));
                        }
                        Err(e) => {
                            for (i, recipient) in jobs.iter().zip(recipients()) {
                                done.push((*i, verdict::api_call(&e, &via, recipient)));
                            }
                        }
                    }
                }
            }
            Work::Smtp {
                transport,
                via,
                emails,
            } => {
                let concurrency =
                    usize::try_from(transport.config().max_connections.max(1)).unwrap_or(1);
                let answers: Vec<(usize, Verdict)> = futures::stream::iter(emails)
                    .map(|(i, email)| {
                        let transport = transport.clone();
                        let via = via.clone();
                        async move {
                            if !deadline.allows_smtp() {
                                return (i, Verdict::NotStarted, false);
                            }
                            (i, verdict::smtp(transport.send(&email).await, &via), true)
                        }
                    })
                    .buffered(concurrency)
                    .map(|(i, v, started)| {
                        if started {
                            calls.smtp_messages += 1;
                        }
                        (i, v)
                    })
                    .collect()
                    .await;
                done.extend(answers);
            }
        }
        (done, calls)
    }
}

fn too_large(e: &PostmarkError) -> bool {
    e.class() == postmark::ErrorClass::TooLarge
}

/// An SMTP transport's identity: its settings and credentials, so that a change builds a new one.
fn fingerprint(
    server: &EmailServer,
    host: &str,
    username: &str,
    password: &SecretString,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&server.delivery).unwrap_or_default());
    h.update([0]);
    h.update(host.as_bytes());
    h.update([0]);
    h.update(username.as_bytes());
    h.update([0]);
    h.update(password.expose_secret().as_bytes());
    h.finalize().into()
}

impl App {
    /// A Postmark API client for a server's token (API servers; SMTP servers whose Server API Token
    /// is known, for looking messages up).
    pub(crate) fn api_client(
        &self,
        server: &EmailServer,
        credentials: &ServerCredentials,
    ) -> Result<PostmarkClient, Verdict> {
        let Some(token) = credentials.api_token.clone() else {
            return Err(Verdict::configuration(format!(
                "email server {} has no Server API Token",
                server.id
            )));
        };
        self.client_for(token)
            .map_err(|e| Verdict::configuration(verdict::chain(&e)))
    }

    /// A Postmark API client with this token, on the shared HTTP client.
    pub(crate) fn client_for(&self, token: SecretString) -> Result<PostmarkClient, PostmarkError> {
        PostmarkClient::with_http_client(
            self.http.clone(),
            self.config.postmark_api_url.clone(),
            ServerToken::from(token),
            self.config.postmark_timeout,
        )
    }

    /// The pooled transport of an SMTP server (to `host`), built once and kept while its settings and
    /// credentials stay the same.
    async fn smtp_transport(
        &self,
        server: &EmailServer,
        host: &str,
        credentials: &ServerCredentials,
    ) -> Result<Arc<SmtpTransport>, Verdict> {
        let Delivery::Smtp(settings) = &server.delivery else {
            return Err(Verdict::configuration("not an SMTP server"));
        };
        // Postmark's SMTP takes the Server API Token as both username and password.
        let username = credentials
            .smtp_username
            .as_ref()
            .or(credentials.api_token.as_ref());
        let password = credentials
            .smtp_password
            .as_ref()
            .or(credentials.api_token.as_ref());
        let (Some(username), Some(password)) = (username, password) else {
            return Err(Verdict::configuration(format!(
                "email server {} delivers through SMTP but has no SMTP username and password",
                server.id
            )));
        };
        let username = username.expose_secret().to_owned();
        let key = fingerprint(server, host, &username, password);
        let cache_key = (server.id.clone(), host.to_owned());
        let mut cache = self.smtp.lock().await;
        if let Some((known, transport)) = cache.get(&cache_key)
            && *known == key
        {
            return Ok(transport.clone());
        }
        let mut config =
            SmtpConfig::new(host.to_owned(), settings.port, username, password.clone())
                .with_auth(match settings.authentication {
                    SmtpAuthentication::Plain => SmtpAuth::Plain,
                    SmtpAuthentication::Login => SmtpAuth::Login,
                })
                .with_starttls(if settings.requires_starttls() {
                    StartTls::Required
                } else {
                    StartTls::None
                })
                .with_timeout(self.config.postmark_timeout)
                .with_max_connections(self.config.smtp_connections);
        if let Some(pem) = &self.config.smtp_extra_ca_pem {
            config = config.with_extra_root_ca_pem(pem.clone());
        }
        let transport = Arc::new(SmtpTransport::new(config).map_err(|e| {
            Verdict::configuration(format!(
                "the SMTP settings of email server {} cannot be used: {}",
                server.id,
                verdict::chain(&e)
            ))
        })?);
        if let Some((_, old)) = cache.insert(cache_key, (key, transport.clone())) {
            old.shutdown().await;
        }
        Ok(transport)
    }
}
