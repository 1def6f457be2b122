//! `POST /api/email-servers/{id}/test`: tries a server's settings for real and says, step by step, what
//! works and what an admin has to change.
//!
//! - API: the Server API Token (`GET /server`), then each configured message stream
//!   (`GET /message-streams/{id}`): that it exists, is not archived, and can carry the mail it is
//!   configured for.
//! - SMTP: connect, STARTTLS, authenticate, on a fresh connection; nothing is sent.
//!
//! The answer is 200 whether or not the settings work: the request succeeded, the settings may not have.

use ::http::StatusCode;
use domain::EmailType;
use domain::servers::{Delivery, DeliveryMethod, EmailServer, SmtpAuthentication, SmtpSettings};
use postmark::smtp::{SmtpAuth, SmtpConfig, SmtpStage, SmtpTransport, StartTls};
use postmark::{MessageStreamType, PostmarkClient, PostmarkError, ServerToken};
use secrecy::ExposeSecret;
use serde::Serialize;
use store::servers::ServerCredentials;

use crate::App;
use crate::http::{ApiError, ApiResult, json};

/// One step of a test.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Step {
    pub step: String,
    pub ok: bool,
    pub message: String,
}

/// What a test found.
#[derive(Debug, Serialize)]
pub struct TestReport {
    pub ok: bool,
    pub delivery_method: DeliveryMethod,
    /// The first step that failed.
    pub failed_step: Option<String>,
    /// The outcome in one sentence: what failed and what to do, or that everything works.
    pub message: String,
    pub steps: Vec<Step>,
    /// The server's settings that change what this integration counts (API servers: read from
    /// Postmark; SMTP servers: what cannot be checked and what to do).
    pub settings: Option<Settings>,
    /// Where the server's managed webhooks stand, per stream (nothing is changed).
    pub webhooks: Option<crate::managed_webhooks::ServerWebhooks>,
}

/// One server setting and what it means here.
#[derive(Debug, Serialize)]
pub struct Setting {
    pub setting: &'static str,
    /// Postmark's value; null when Postmark did not say.
    pub value: serde_json::Value,
    pub meaning: String,
}

/// One stream's unsubscribe handling.
#[derive(Debug, Serialize)]
pub struct StreamSetting {
    pub stream: String,
    /// `None`, `Postmark` or `Custom`; null when Postmark did not say.
    pub unsubscribe_handling: Option<String>,
    pub meaning: String,
}

/// The settings section of a test.
#[derive(Debug, Serialize)]
pub struct Settings {
    /// Whether they could be read from Postmark.
    pub checked: bool,
    /// Why not, and what to do, when they could not.
    pub note: Option<String>,
    pub server: Vec<Setting>,
    pub streams: Vec<StreamSetting>,
}

impl TestReport {
    fn new(delivery_method: DeliveryMethod, steps: Vec<Step>, all_good: &str) -> Self {
        let failed = steps.iter().find(|s| !s.ok);
        Self {
            ok: failed.is_none(),
            delivery_method,
            failed_step: failed.map(|s| s.step.clone()),
            message: failed.map_or_else(|| all_good.to_owned(), |s| s.message.clone()),
            steps,
            settings: None,
            webhooks: None,
        }
    }
}

fn step(name: impl Into<String>, ok: bool, message: impl Into<String>) -> Step {
    Step {
        step: name.into(),
        ok,
        message: message.into(),
    }
}

pub async fn test(app: &App, id: &str) -> ApiResult {
    let id = domain::servers::ServerId::parse(id)
        .map_err(|_| ApiError::not_found(format!("no email server {id:?}")))?;
    let server = app
        .table
        .server(&id)
        .await
        .map_err(|e| ApiError::store("reading an email server", e))?
        .ok_or_else(|| ApiError::not_found(format!("no email server {id}")))?;
    let credentials = app
        .server_secrets
        .credentials(&server)
        .await
        .map_err(|e| ApiError::store("reading the secret of an email server", e))?;
    let mut report = match &server.delivery {
        Delivery::Api => test_api(app, &server, credentials.as_deref()).await,
        Delivery::Smtp(smtp) => {
            let mut report = test_smtp(app, smtp, credentials.as_deref()).await;
            report.settings = Some(smtp_settings());
            report
        }
    };
    report.webhooks = Some(crate::managed_webhooks::report_for(app, &server).await);
    tracing::info!(server = %id, ok = report.ok, failed_step = report.failed_step.as_deref(), "email server tested");
    Ok(json(StatusCode::OK, &report))
}

fn missing_credentials(what: &str) -> Step {
    step(
        "credentials",
        false,
        format!(
            "The server's {what} is missing from Secrets Manager. Set it again with PATCH \
             /api/email-servers/{{id}}."
        ),
    )
}

async fn test_api(
    app: &App,
    server: &EmailServer,
    credentials: Option<&ServerCredentials>,
) -> TestReport {
    let method = DeliveryMethod::Api;
    let Some(token) = credentials.and_then(|c| c.api_token.as_ref()) else {
        return TestReport::new(method, vec![missing_credentials("Server API Token")], "");
    };
    let client = match PostmarkClient::new(
        app.config.postmark_api_url.clone(),
        ServerToken::from(token.clone()),
        app.config.test_timeout,
    ) {
        Ok(client) => client,
        Err(e) => return TestReport::new(method, vec![step("token", false, e.to_string())], ""),
    };
    let mut steps = Vec::new();
    let mut stream_infos = Vec::new();
    let server_info;
    let server_name = match client.server().await {
        Ok(info) => {
            server_info = info.clone();
            let name = info.name.unwrap_or_else(|| "(unnamed)".into());
            let sandbox = matches!(&info.delivery_type, Some(postmark::DeliveryType::Sandbox));
            steps.push(step(
                "token",
                true,
                format!(
                    "Postmark accepted the Server API Token of the server \"{name}\"{}.",
                    if sandbox {
                        " (a sandbox server: mail is processed but never delivered)"
                    } else {
                        ""
                    }
                ),
            ));
            name
        }
        Err(e) => {
            steps.push(step("token", false, token_failure(app, &e)));
            return TestReport::new(method, steps, "");
        }
    };
    for (email_type, stream) in &server.streams {
        let name = format!("stream.{email_type}");
        let outcome = client.message_stream(stream.as_str()).await;
        steps.push(match outcome {
            Ok(info) => {
                let check = stream_check(&name, *email_type, stream.as_str(), &info);
                if !stream_infos
                    .iter()
                    .any(|(s, _): &(String, _)| s == stream.as_str())
                {
                    stream_infos.push((stream.as_str().to_owned(), info));
                }
                check
            }
            Err(e) if is_missing_stream(&e) => step(
                name,
                false,
                format!(
                    "The message stream \"{stream}\" (for {email_type} mail) does not exist on the \
                     Postmark server \"{server_name}\". Create it in Postmark (Servers > \
                     {server_name} > Message Streams) or set message_streams.{email_type} to an \
                     existing stream."
                ),
            ),
            Err(e) => step(
                name,
                false,
                format!("Checking the message stream \"{stream}\" failed: {e}"),
            ),
        });
    }
    let mut report = TestReport::new(
        method,
        steps,
        &format!(
            "Everything works: the token belongs to \"{server_name}\" and every configured stream \
             exists."
        ),
    );
    report.settings = Some(api_settings(&server_info, &stream_infos));
    report
}

fn flag(value: Option<bool>) -> serde_json::Value {
    value.map_or(serde_json::Value::Null, serde_json::Value::Bool)
}

/// The settings of an API server that change what this integration counts, each with its meaning.
pub fn api_settings(
    info: &postmark::ServerInfo,
    streams: &[(String, postmark::MessageStreamInfo)],
) -> Settings {
    let track_opens = match info.track_opens {
        Some(true) => "On: Postmark tracks opens of every HTML message of this server, so a job's \
                       track_opens=false is overridden and its opens are counted anyway."
            .to_owned(),
        Some(false) => {
            "Off: opens are tracked only for jobs that ask for it (track_opens=true).".to_owned()
        }
        None => "Postmark did not say; check Servers → the server → Settings.".to_owned(),
    };
    let track_links = match &info.track_links {
        Some(links) if *links != postmark::TrackLinks::None => format!(
            "{}: links of messages that do not say otherwise are tracked by Postmark, so \
             clicks are counted even for jobs with track_clicks=false.",
            links.as_str()
        ),
        Some(_) => {
            "None: links are tracked only for jobs that ask for it (track_clicks=true).".to_owned()
        }
        None => "Postmark did not say; check Servers → the server → Settings.".to_owned(),
    };
    let first_open = match info.post_first_open_only {
        Some(true) => "On: the server's own open hook posts only the first open of each \
                       recipient, so repeated opens are never posted there and total opens \
                       undercount. The managed webhooks set their own PostFirstOpenOnly=false; \
                       turn this off with PUT /server {\"PostFirstOpenOnly\": false} if a \
                       server-level open hook is used."
            .to_owned(),
        Some(false) => "Off: every open is posted, so total opens are complete.".to_owned(),
        None => "Postmark did not say.".to_owned(),
    };
    let smtp = match info.smtp_api_activated {
        Some(true) => "On: the server accepts mail over SMTP (needed only by SMTP email servers \
                       using this Postmark server)."
            .to_owned(),
        Some(false) => "Off: Postmark refuses SMTP; an SMTP email server using this Postmark \
                        server cannot send. API sending is not affected."
            .to_owned(),
        None => "Postmark did not say.".to_owned(),
    };
    let error_hooks = match info.enable_smtp_api_error_hooks {
        Some(true) => "On: mail Postmark accepts over SMTP and then drops is posted as a Bounce \
                       (SMTPApiError), so such jobs end failed."
            .to_owned(),
        Some(false) => "Off: mail Postmark drops after accepting it over SMTP is never reported \
                        to the webhook, so such jobs stay sent. Turn it on with PUT /server \
                        {\"EnableSmtpApiErrorHooks\": true} (or Servers → the server → \
                        Settings)."
            .to_owned(),
        None => "Postmark did not say; check it in Servers → the server → Settings.".to_owned(),
    };
    let server = vec![
        Setting {
            setting: "TrackOpens",
            value: flag(info.track_opens),
            meaning: track_opens,
        },
        Setting {
            setting: "TrackLinks",
            value: info
                .track_links
                .as_ref()
                .map_or(serde_json::Value::Null, |l| l.as_str().into()),
            meaning: track_links,
        },
        Setting {
            setting: "PostFirstOpenOnly",
            value: flag(info.post_first_open_only),
            meaning: first_open,
        },
        Setting {
            setting: "SmtpApiActivated",
            value: flag(info.smtp_api_activated),
            meaning: smtp,
        },
        Setting {
            setting: "EnableSmtpApiErrorHooks",
            value: flag(info.enable_smtp_api_error_hooks),
            meaning: error_hooks,
        },
    ];
    let streams = streams
        .iter()
        .map(|(stream, info)| {
            let handling = info.unsubscribe_handling();
            let meaning = match &handling {
                Some(postmark::UnsubscribeHandlingType::Postmark) => {
                    "Postmark: Postmark adds the unsubscribe link and List-Unsubscribe headers, \
                     suppresses who unsubscribes and reports it as a SubscriptionChange, which \
                     marks the subscriber unsubscribed here."
                }
                Some(postmark::UnsubscribeHandlingType::Custom) => {
                    "Custom: Postmark adds nothing; the platform's own link and List-Unsubscribe \
                     header must be in the message, and unsubscribes arrive through the platform, \
                     not through Postmark."
                }
                Some(postmark::UnsubscribeHandlingType::None) => {
                    "None: no unsubscribe handling and no List-Unsubscribe header from Postmark \
                     (right for transactional mail); marketing mail needs the platform's own link."
                }
                Some(postmark::UnsubscribeHandlingType::Other(_)) => {
                    "A value this integration does not know; check the stream in Postmark."
                }
                None => "Postmark did not say.",
            };
            StreamSetting {
                stream: stream.clone(),
                unsubscribe_handling: handling.map(|h| h.as_str().to_owned()),
                meaning: meaning.to_owned(),
            }
        })
        .collect();
    Settings {
        checked: true,
        note: None,
        server,
        streams,
    }
}

/// An SMTP server's settings cannot be read: Postmark's settings need a Server API Token.
fn smtp_settings() -> Settings {
    Settings {
        checked: false,
        note: Some(
            "The server's settings (TrackOpens, TrackLinks, PostFirstOpenOnly, SmtpApiActivated, \
             EnableSmtpApiErrorHooks) and the streams' unsubscribe handling cannot be checked \
             without a Server API Token, which SMTP servers do not have here. Check them in \
             Postmark (Servers → the server → Settings): EnableSmtpApiErrorHooks must be on, or \
             mail Postmark accepts over SMTP and then drops is never reported and such jobs stay \
             sent; TrackOpens on overrides a job's track_opens=false; PostFirstOpenOnly on means \
             repeated opens are never posted."
                .to_owned(),
        ),
        server: Vec::new(),
        streams: Vec::new(),
    }
}

fn token_failure(app: &App, e: &PostmarkError) -> String {
    match e {
        PostmarkError::Api(api) if api.error_code() == Some(10) || api.http_status() == 401 => {
            // The error's text names the Account-vs-Server token mix-up.
            format!("Postmark refused the token. {e}")
        }
        PostmarkError::Timeout { .. } | PostmarkError::Connection { .. } => format!(
            "Could not reach Postmark at {}: {e}. Try again; if it persists, check this \
             function's outgoing network access.",
            app.config.postmark_api_url
        ),
        _ => format!("Checking the token failed: {e}"),
    }
}

fn is_missing_stream(e: &PostmarkError) -> bool {
    e.error_code() == Some(1226)
        || e.error_code() == Some(1235)
        || (e.http_status() == Some(404) && e.error_code().is_none())
}

fn stream_check(
    name: &str,
    email_type: EmailType,
    stream: &str,
    info: &postmark::MessageStreamInfo,
) -> Step {
    if info.is_archived() {
        return step(
            name,
            false,
            format!(
                "The message stream \"{stream}\" is archived and cannot send. Unarchive it in \
                 Postmark or choose another stream for {email_type} mail."
            ),
        );
    }
    match (&info.message_stream_type, email_type.is_marketing()) {
        (Some(MessageStreamType::Inbound), _) => step(
            name,
            false,
            format!(
                "\"{stream}\" is an inbound stream: it receives mail and cannot send. Choose a \
                 Transactional or Broadcasts stream for {email_type} mail."
            ),
        ),
        (Some(MessageStreamType::Transactional), true) => step(
            name,
            false,
            format!(
                "\"{stream}\" is a Transactional stream; Postmark requires {email_type} (bulk) mail \
                 on a Broadcasts stream. Choose one, such as \"broadcast\"."
            ),
        ),
        (kind, _) => step(
            name,
            true,
            format!(
                "The stream \"{stream}\" exists{} and will carry {email_type} mail.",
                kind.as_ref()
                    .map(|k| format!(" ({})", k.as_str()))
                    .unwrap_or_default()
            ),
        ),
    }
}

async fn test_smtp(
    app: &App,
    smtp: &SmtpSettings,
    credentials: Option<&ServerCredentials>,
) -> TestReport {
    let method = DeliveryMethod::Smtp;
    let (Some(username), Some(password)) = (
        credentials.and_then(|c| c.smtp_username.as_ref()),
        credentials.and_then(|c| c.smtp_password.as_ref()),
    ) else {
        return TestReport::new(
            method,
            vec![missing_credentials("SMTP username or password")],
            "",
        );
    };
    let mut config = SmtpConfig::new(
        smtp.host.clone(),
        smtp.port,
        username.expose_secret(),
        password.clone(),
    )
    .with_auth(match smtp.authentication {
        SmtpAuthentication::Plain => SmtpAuth::Plain,
        SmtpAuthentication::Login => SmtpAuth::Login,
    })
    .with_starttls(if smtp.requires_starttls() {
        StartTls::Required
    } else {
        StartTls::None
    })
    .with_timeout(app.config.test_timeout)
    .with_max_connections(1);
    if let Some(pem) = &app.config.smtp_extra_ca_pem {
        config = config.with_extra_root_ca_pem(pem.clone());
    }
    let transport = match SmtpTransport::new(config) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %crate::http::chain(&e), "the SMTP test could not be set up");
            return TestReport::new(
                method,
                vec![step(
                    "connect",
                    false,
                    "The SMTP test could not be set up on our side; the details are in the \
                     function's logs.",
                )],
                "",
            );
        }
    };
    let outcome = transport.test_connection().await;
    transport.shutdown().await;
    let starttls_skipped = "Skipped: STARTTLS is off for this server, so the password travels \
                            unencrypted. Turn it on unless the server is on a trusted network.";
    let steps = match outcome {
        Ok(check) => vec![
            step(
                "connect",
                true,
                format!("Connected to {} on port {}.", smtp.host, smtp.port),
            ),
            if check.encrypted {
                step("starttls", true, "The connection is encrypted (STARTTLS).")
            } else {
                step("starttls", true, starttls_skipped)
            },
            step(
                "authenticate",
                true,
                "The server accepted the username and password.",
            ),
        ],
        Err(e) => {
            let failed = match e.stage() {
                SmtpStage::Resolve | SmtpStage::Connect => 0,
                SmtpStage::Tls => 1,
                SmtpStage::Authentication => 2,
            };
            let mut steps = Vec::new();
            if failed > 0 {
                steps.push(step(
                    "connect",
                    true,
                    format!("Connected to {} on port {}.", smtp.host, smtp.port),
                ));
            }
            if failed > 1 {
                steps.push(if smtp.starttls {
                    step("starttls", true, "The connection is encrypted (STARTTLS).")
                } else {
                    step("starttls", true, starttls_skipped)
                });
            }
            let name = ["connect", "starttls", "authenticate"][failed];
            steps.push(step(name, false, e.to_string()));
            steps
        }
    };
    TestReport::new(
        method,
        steps,
        &format!(
            "Everything works: {} accepted the connection{} and the credentials.",
            smtp.host,
            if smtp.starttls { ", STARTTLS" } else { "" }
        ),
    )
}
