//! Routing and sending: each job goes to the email server that carries its type (or the one it names),
//! on that server's stream for the type. API servers get batch calls of up to 500 messages per server
//! and stream; SMTP servers get the messages over their pooled connections.

use std::collections::BTreeMap;
use std::sync::Arc;

use domain::MessageStream;
use domain::jobs::SendJob;
use domain::servers::{Delivery, EmailServer, ServerId, SmtpAuthentication, route};
use futures::StreamExt;
use postmark::smtp::{
    POSTMARK_BROADCAST_SMTP_HOST, POSTMARK_SMTP_HOST, SmtpAuth, SmtpConfig, SmtpTransport, StartTls,
};
use postmark::{Email, MAX_BATCH_SIZE, PostmarkClient, PostmarkError, ServerToken};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use store::servers::ServerCredentials;
use tracing::info;

use crate::App;
use crate::compose::{self, Tracker};
use crate::verdict::{self, Verdict, Via};

/// A batch request stays under Postmark's 50 MB with room for JSON escaping.
const MAX_BATCH_WEIGHT: usize = 40 * 1024 * 1024;
/// Batch calls in flight at once.
const CALLS_IN_FLIGHT: usize = 4;

/// Jobs of one server and stream, by their index in the run.
struct Group<'a> {
    server: &'a EmailServer,
    stream: &'a MessageStream,
    jobs: Vec<usize>,
}

/// What the delivery step tells the run's summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct Calls {
    pub api_batches: usize,
    pub smtp_messages: usize,
}

/// Routes and sends the jobs at `indexes` of `jobs`; returns a verdict per index.
pub async fn deliver(
    app: &App,
    jobs: &[&SendJob],
    servers: &[EmailServer],
    tracker: Option<&Tracker>,
) -> (Vec<Verdict>, Calls) {
    let mut verdicts: Vec<Option<Verdict>> = vec![None; jobs.len()];
    let mut groups: BTreeMap<(&str, &str), Group> = BTreeMap::new();
    for (i, job) in jobs.iter().enumerate() {
        if (job.track_opens || job.track_clicks) && tracker.is_none() {
            verdicts[i] = Some(Verdict::retry(
                "the tracking key could not be read; native tracking cannot be added",
            ));
            continue;
        }
        match route(
            servers,
            job.email_type,
            job.server_id.as_ref().map(ServerId::as_str),
        ) {
            Ok(r) => groups
                .entry((r.server.id.as_str(), r.stream.as_str()))
                .or_insert_with(|| Group {
                    server: r.server,
                    stream: r.stream,
                    jobs: Vec::new(),
                })
                .jobs
                .push(i),
            Err(no_route) => verdicts[i] = Some(Verdict::configuration(no_route.to_string())),
        }
    }

    let mut calls = Calls::default();
    let mut work = Vec::new();
    for group in groups.into_values() {
        let via = Via {
            server_id: group.server.id.to_string(),
            stream: group.stream.to_string(),
        };
        let credentials = match app.server_secrets.credentials(group.server).await {
            Ok(Some(c)) => c,
            Ok(None) => {
                let v = Verdict::configuration(format!(
                    "the credentials of email server {} are missing from the secret store",
                    group.server.id
                ));
                for i in group.jobs {
                    verdicts[i] = Some(v.clone());
                }
                continue;
            }
            Err(e) => {
                let v = Verdict::configuration(format!(
                    "the credentials of email server {} cannot be read: {}",
                    group.server.id,
                    verdict::chain(&e)
                ));
                for i in group.jobs {
                    verdicts[i] = Some(v.clone());
                }
                continue;
            }
        };
        let emails: Vec<(usize, Email)> = group
            .jobs
            .iter()
            .map(|&i| {
                (
                    i,
                    compose::email(jobs[i], group.server, group.stream, tracker),
                )
            })
            .collect();
        match &group.server.delivery {
            Delivery::Api => {
                let Some(token) = credentials.api_token.clone() else {
                    let v = Verdict::configuration(format!(
                        "email server {} delivers through the API but has no API token",
                        group.server.id
                    ));
                    for (i, _) in emails {
                        verdicts[i] = Some(v.clone());
                    }
                    continue;
                };
                let client = match PostmarkClient::with_http_client(
                    app.http.clone(),
                    app.config.postmark_api_url.clone(),
                    ServerToken::from(token),
                    app.config.postmark_timeout,
                ) {
                    Ok(c) => c,
                    Err(e) => {
                        let v = verdict::api_call(&e, &via, "");
                        for (i, _) in emails {
                            verdicts[i] = Some(v.clone());
                        }
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
                let marketing = group
                    .jobs
                    .iter()
                    .all(|&i| jobs[i].email_type.is_marketing());
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
                    Err(v) => {
                        for (i, _) in emails {
                            verdicts[i] = Some(v.clone());
                        }
                    }
                }
            }
        }
    }

    let results: Vec<(Vec<(usize, Verdict)>, Calls)> = futures::stream::iter(work)
        .map(|w| w.run(jobs))
        .buffer_unordered(CALLS_IN_FLIGHT)
        .collect()
        .await;
    for (done, c) in results {
        calls.api_batches += c.api_batches;
        calls.smtp_messages += c.smtp_messages;
        for (i, v) in done {
            verdicts[i] = Some(v);
        }
    }
    let verdicts = verdicts
        .into_iter()
        .map(|v| v.unwrap_or_else(|| Verdict::retry("the job was not sent (internal error)")))
        .collect();
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
    async fn run(self, jobs: &[&SendJob]) -> (Vec<(usize, Verdict)>, Calls) {
        let mut calls = Calls::default();
        let mut done = Vec::new();
        match self {
            Work::Api { client, via, chunk } => {
                // A batch Postmark finds too large is split and sent again; a single message that is
                // too large fails.
                let mut pending = vec![chunk];
                while let Some(chunk) = pending.pop() {
                    let emails: Vec<Email> = chunk.iter().map(|(_, e)| e.clone()).collect();
                    calls.api_batches += 1;
                    match client.send_batch(&emails).await {
                        Ok(items) => {
                            for ((i, _), item) in chunk.iter().zip(items) {
                                done.push((
                                    *i,
                                    verdict::api_item(item, &via, jobs[*i].recipient().as_str()),
                                ));
                            }
                        }
                        Err(e) if too_large(&e) && chunk.len() > 1 => {
                            info!(
                                size = chunk.len(),
                                "Postmark found the batch too large; splitting it"
                            );
                            let mut first = chunk;
                            let second = first.split_off(first.len() / 2);
                            pending.push(second);
                            pending.push(first);
                        }
                        Err(e) => {
                            for (i, _) in &chunk {
                                done.push((
                                    *i,
                                    verdict::api_call(&e, &via, jobs[*i].recipient().as_str()),
                                ));
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
                let messages: Vec<Email> = emails.iter().map(|(_, e)| e.clone()).collect();
                calls.smtp_messages += messages.len();
                let answers = transport.send_all(&messages).await;
                for ((i, _), answer) in emails.iter().zip(answers) {
                    done.push((*i, verdict::smtp(answer, &via)));
                }
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
                .with_starttls(if settings.starttls {
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
