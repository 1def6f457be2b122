//! Sending through Postmark's SMTP service (or any SMTP server), with STARTTLS and AUTH.
//!
//! ```no_run
//! use postmark::Email;
//! use postmark::smtp::{SmtpConfig, SmtpTransport};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let token = "server-token-from-secrets-manager";
//! // Postmark: the Server API Token as both username and password.
//! let transport = SmtpTransport::new(SmtpConfig::postmark(token, token))?;
//! transport.test_connection().await?; // tells which stage failed, in an admin's words
//! let email = Email::new("shop@example.com", "ada@example.org")
//!     .subject("Hello")
//!     .text_body("Hi Ada")
//!     .message_stream("broadcast")
//!     .metadata("job_id", "j-42");
//! let receipt = transport.send(&email).await?;
//! println!("accepted: {} {}", receipt.code, receipt.message);
//! # Ok(())
//! # }
//! ```

mod check;
mod mime;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use futures::StreamExt as _;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

pub use check::{SmtpCheck, SmtpCheckError, SmtpStage};
pub use mime::{
    HEADER_MESSAGE_STREAM, HEADER_METADATA_PREFIX, HEADER_TAG, HEADER_TRACK_LINKS,
    HEADER_TRACK_OPENS,
};

use crate::error::ErrorClass;
use crate::message::Email;

/// Postmark's SMTP host for transactional streams.
pub const POSTMARK_SMTP_HOST: &str = "smtp.postmarkapp.com";
/// Postmark's SMTP host for broadcast streams.
pub const POSTMARK_BROADCAST_SMTP_HOST: &str = "smtp-broadcasts.postmarkapp.com";
/// The submission port (Postmark also listens on 25 and 2525; Lambda cannot use 25).
pub const DEFAULT_PORT: u16 = 587;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How to use STARTTLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum StartTls {
    /// Upgrade with STARTTLS or fail; nothing (not even the password) goes out unencrypted.
    #[default]
    Required,
    /// Upgrade when the server offers STARTTLS, else continue unencrypted.
    Opportunistic,
    /// Never encrypt (only for a trusted local server).
    None,
}

impl StartTls {
    /// `required`, `opportunistic` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Opportunistic => "opportunistic",
            Self::None => "none",
        }
    }
}

impl FromStr for StartTls {
    type Err = UnknownOption;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "required" => Ok(Self::Required),
            "opportunistic" => Ok(Self::Opportunistic),
            "none" => Ok(Self::None),
            other => Err(UnknownOption(format!(
                "unknown STARTTLS mode '{other}' (expected required, opportunistic or none)"
            ))),
        }
    }
}

/// The SMTP AUTH mechanism.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SmtpAuth {
    /// AUTH PLAIN.
    #[default]
    Plain,
    /// AUTH LOGIN.
    Login,
}

impl SmtpAuth {
    /// `plain` or `login`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Login => "login",
        }
    }

    fn mechanism(self) -> Mechanism {
        match self {
            Self::Plain => Mechanism::Plain,
            Self::Login => Mechanism::Login,
        }
    }
}

impl FromStr for SmtpAuth {
    type Err = UnknownOption;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "plain" => Ok(Self::Plain),
            "login" => Ok(Self::Login),
            other => Err(UnknownOption(format!(
                "unknown SMTP authentication '{other}' (expected login or plain)"
            ))),
        }
    }
}

/// A setting's text that names no known option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnknownOption(String);

/// SMTP settings. `Debug` never shows the password.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Host name, e.g. `smtp.postmarkapp.com`.
    pub host: String,
    /// Port: 587 (default), 2525 or 25.
    pub port: u16,
    /// User name (for Postmark: the Server API Token, or an SMTP token's access key).
    pub username: String,
    /// Password (for Postmark: the Server API Token, or an SMTP token's secret key).
    pub password: SecretString,
    /// AUTH mechanism.
    pub auth: SmtpAuth,
    /// STARTTLS mode.
    pub starttls: StartTls,
    /// Timeout of each network step. lettre applies it to connecting only, so a whole send is
    /// also abandoned after twice this long ([`SmtpError::Timeout`]): a server that stops
    /// answering after DATA must not hold a Lambda until its own deadline.
    pub timeout: Duration,
    /// Extra trusted root CA certificates (PEM), for test or local servers.
    pub extra_root_ca_pem: Option<String>,
    /// Most connections kept open for reuse, and the concurrency of [`SmtpTransport::send_all`]
    /// (Postmark recommends at most 10 connections per IP). Concurrent [`SmtpTransport::send`] calls
    /// beyond it open extra connections, closed after use.
    pub max_connections: u32,
    /// Name sent in EHLO; default: this machine's host name.
    pub hello_name: Option<String>,
}

impl SmtpConfig {
    /// Settings for `host:port`, STARTTLS required, AUTH PLAIN, 30 s timeout, up to 4 pooled
    /// connections.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        username: impl Into<String>,
        password: impl Into<SecretString>,
    ) -> Self {
        Self {
            host: host.into(),
            port,
            username: username.into(),
            password: password.into(),
            auth: SmtpAuth::default(),
            starttls: StartTls::default(),
            timeout: Duration::from_secs(30),
            extra_root_ca_pem: None,
            max_connections: 4,
            hello_name: None,
        }
    }

    /// Postmark's transactional SMTP endpoint (`smtp.postmarkapp.com:587`).
    pub fn postmark(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::new(
            POSTMARK_SMTP_HOST,
            DEFAULT_PORT,
            username,
            SecretString::from(password.into()),
        )
    }

    /// Sets the AUTH mechanism.
    pub fn with_auth(mut self, auth: SmtpAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Sets the STARTTLS mode.
    pub fn with_starttls(mut self, starttls: StartTls) -> Self {
        self.starttls = starttls;
        self
    }

    /// Sets the timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Trusts an extra root CA certificate (PEM) besides the system's.
    pub fn with_extra_root_ca_pem(mut self, pem: impl Into<String>) -> Self {
        self.extra_root_ca_pem = Some(pem.into());
        self
    }

    /// Sets the connection pool's size.
    pub fn with_max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Sets the EHLO name.
    pub fn with_hello_name(mut self, name: impl Into<String>) -> Self {
        self.hello_name = Some(name.into());
        self
    }
}

/// The server accepted the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReceipt {
    /// The reply code (250).
    pub code: u16,
    /// The reply text, lines joined by spaces.
    pub message: String,
}

/// Sending over SMTP failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SmtpError {
    /// The settings cannot be used (e.g. the extra CA certificate is not valid PEM).
    #[error("invalid SMTP settings: {reason}")]
    Settings {
        /// What is wrong.
        reason: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The message cannot be expressed as SMTP mail (bad address, header, attachment).
    #[error("the message cannot be sent over SMTP: {reason}")]
    InvalidMessage {
        /// What is wrong.
        reason: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The server or the connection failed the send.
    #[error("{}", describe_send_failure(*.class, *.code))]
    Send {
        /// What to do about it.
        class: ErrorClass,
        /// The SMTP reply code, when the server answered with one.
        code: Option<u16>,
        /// The underlying error.
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// No answer within the send's deadline (twice [`SmtpConfig::timeout`]). The server may
    /// already have taken the message.
    #[error("the SMTP send got no answer within {deadline:?}")]
    Timeout {
        /// The deadline of the whole send.
        deadline: Duration,
    },
}

impl SmtpError {
    /// The class that decides what to do (same classes as the API's).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Settings { .. } => ErrorClass::Configuration,
            Self::InvalidMessage { .. } => ErrorClass::InvalidRequest,
            Self::Send { class, .. } => *class,
            Self::Timeout { .. } => ErrorClass::Retryable,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }

    /// Whether the server may have taken the message although this error came back, so that
    /// sending again could deliver twice.
    ///
    /// True when no SMTP reply says what happened and the failure was not in setting up the
    /// session: an IO error, timeout, or a connection closed or garbled mid-reply may have come
    /// after the end of DATA, when the server had already queued the message. False for any reply
    /// code (the server refused, 4xx or 5xx), for failures to connect, upgrade to TLS or
    /// authenticate (before anything was handed over), and for settings or message errors.
    pub fn may_have_been_accepted(&self) -> bool {
        let (code, source) = match self {
            Self::Settings { .. } | Self::InvalidMessage { .. } => return false,
            // The outer deadline is twice the connect timeout: lettre's connect failure comes first.
            Self::Timeout { .. } => return true,
            Self::Send { code, source, .. } => (code, source),
        };
        if code.is_some() || source.status().is_some() {
            return false;
        }
        !(source.is_client()
            || source.is_tls()
            || source.is_transport_shutdown()
            || is_connect_failure(source)
            || find_tls_error(source).is_some())
    }

    fn from_lettre(source: lettre::transport::smtp::Error) -> Self {
        let code = source.status().map(u16::from);
        Self::Send {
            class: classify_smtp(&source),
            code,
            source,
        }
    }
}

fn describe_send_failure(class: ErrorClass, code: Option<u16>) -> String {
    let what = match class {
        ErrorClass::Retryable => {
            "SMTP send failed for now (connection trouble or a temporary refusal)"
        }
        ErrorClass::Configuration => {
            "SMTP send failed because of the settings (TLS or authentication)"
        }
        ErrorClass::TooLarge => "the SMTP server refused the message as too large",
        _ => "the SMTP server refused the message",
    };
    match code {
        Some(code) => format!("{what} (reply {code})"),
        None => what.to_owned(),
    }
}

/// Sorts an SMTP failure into the API's classes.
fn classify_smtp(error: &lettre::transport::smtp::Error) -> ErrorClass {
    if error.is_transient() || error.is_timeout() {
        return ErrorClass::Retryable;
    }
    if let Some(code) = error.status() {
        return match u16::from(code) {
            // 530 authentication required, 534 mechanism too weak, 535 bad credentials,
            // 538 encryption required for the mechanism.
            530 | 534 | 535 | 538 => ErrorClass::Configuration,
            552 => ErrorClass::TooLarge,
            _ => ErrorClass::InvalidRequest,
        };
    }
    if find_tls_error(error).is_some() || error.is_tls() || error.is_client() {
        ErrorClass::Configuration
    } else if error.is_response() || error.is_transport_shutdown() {
        ErrorClass::Unexpected
    } else {
        // Network and connection errors.
        ErrorClass::Retryable
    }
}

/// Whether lettre failed while opening the connection (TCP connect, TLS handshake), before any
/// message could be handed over. lettre keeps its error kinds private; this one is only told apart
/// by its text.
fn is_connect_failure(error: &lettre::transport::smtp::Error) -> bool {
    error.to_string().starts_with("Connection error")
}

/// An SMTP transport with a connection pool: build it once and send many messages through it.
pub struct SmtpTransport {
    inner: AsyncSmtpTransport<Tokio1Executor>,
    config: SmtpConfig,
    tls: Option<TlsParameters>,
    hello: ClientId,
}

impl fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpTransport")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SmtpTransport {
    /// Builds the transport (no connection is made until the first send).
    ///
    /// Must be called inside a Tokio runtime: the connection pool runs a task there.
    pub fn new(config: SmtpConfig) -> Result<Self, SmtpError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(SmtpError::Settings {
                reason: "the SMTP transport must be created inside a Tokio runtime".to_owned(),
                source: None,
            });
        }
        let tls = match config.starttls {
            StartTls::None => None,
            StartTls::Required | StartTls::Opportunistic => Some(tls_parameters(&config)?),
        };
        let hello = config
            .hello_name
            .clone()
            .map_or_else(ClientId::default, ClientId::Domain);
        let credentials = Credentials::new(
            config.username.clone(),
            config.password.expose_secret().to_owned(),
        );
        let tls_mode = match (&config.starttls, &tls) {
            (StartTls::Required, Some(params)) => Tls::Required(params.clone()),
            (StartTls::Opportunistic, Some(params)) => Tls::Opportunistic(params.clone()),
            _ => Tls::None,
        };
        let inner = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.clone())
            .port(config.port)
            .hello_name(hello.clone())
            .credentials(credentials)
            .authentication(vec![config.auth.mechanism()])
            .tls(tls_mode)
            .timeout(Some(config.timeout))
            .pool_config(PoolConfig::new().max_size(config.max_connections.max(1)))
            .build();
        Ok(Self {
            inner,
            config,
            tls,
            hello,
        })
    }

    /// The settings.
    pub fn config(&self) -> &SmtpConfig {
        &self.config
    }

    /// Sends one message (reusing a pooled connection when one is open).
    #[tracing::instrument(name = "postmark.smtp.send", skip_all, fields(host = %self.config.host, stream = email.message_stream.as_deref()))]
    pub async fn send(&self, email: &Email) -> Result<SmtpReceipt, SmtpError> {
        let message = mime::build_message(email)?;
        let deadline = self.config.timeout.saturating_mul(2);
        let response = tokio::time::timeout(deadline, self.inner.send(message))
            .await
            .map_err(|_| SmtpError::Timeout { deadline })?
            .map_err(SmtpError::from_lettre)?;
        // lettre hands the connection back to its pool from a spawned task; yielding lets that task
        // run, so that the next message finds the connection parked instead of opening another.
        tokio::task::yield_now().await;
        Ok(SmtpReceipt {
            code: u16::from(response.code()),
            message: response.message().collect::<Vec<_>>().join(" "),
        })
    }

    /// Sends many messages over the pooled connections (up to `max_connections` at once); one
    /// outcome per message, in order.
    pub async fn send_all(&self, emails: &[Email]) -> Vec<Result<SmtpReceipt, SmtpError>> {
        let concurrency = usize::try_from(self.config.max_connections.max(1)).unwrap_or(1);
        futures::stream::iter(emails)
            .map(|email| self.send(email))
            .buffered(concurrency)
            .collect()
            .await
    }

    /// Closes the pooled connections.
    pub async fn shutdown(&self) {
        self.inner.shutdown().await;
    }

    /// Checks the settings for real, step by step (resolve, connect, STARTTLS, AUTH), on a fresh
    /// connection, and says which step failed in words an admin understands.
    pub async fn test_connection(&self) -> Result<SmtpCheck, SmtpCheckError> {
        check::run(&self.config, self.tls.clone(), &self.hello).await
    }
}

/// The TLS failure inside an SMTP error, if that is what it is (lettre reports handshake failures as
/// connection errors; the rustls error sits inside an `io::Error` in the chain).
fn find_tls_error(error: &lettre::transport::smtp::Error) -> Option<&rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        current = error.source();
    }
    None
}

/// Why a TLS upgrade failed, in an admin's words.
fn tls_cause(error: &lettre::transport::smtp::Error) -> String {
    use rustls::CertificateError as Cert;
    match find_tls_error(error) {
        Some(rustls::Error::InvalidCertificate(Cert::UnknownIssuer)) => {
            "the server's certificate is not signed by a trusted authority".to_owned()
        }
        Some(rustls::Error::InvalidCertificate(
            Cert::NotValidForName | Cert::NotValidForNameContext { .. },
        )) => "the server's certificate is for another host name".to_owned(),
        Some(rustls::Error::InvalidCertificate(Cert::Expired | Cert::ExpiredContext { .. })) => {
            "the server's certificate has expired".to_owned()
        }
        Some(tls) => format!("TLS error: {tls}"),
        None => error.to_string(),
    }
}

fn tls_parameters(config: &SmtpConfig) -> Result<TlsParameters, SmtpError> {
    let mut builder = TlsParameters::builder(config.host.clone());
    if let Some(pem) = &config.extra_root_ca_pem {
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(SmtpError::Settings {
                reason: "the extra root CA certificate is not a PEM certificate".to_owned(),
                source: None,
            });
        }
        let certificate =
            Certificate::from_pem(pem.as_bytes()).map_err(|e| SmtpError::Settings {
                reason: "the extra root CA certificate is not a valid PEM certificate".to_owned(),
                source: Some(Box::new(e)),
            })?;
        builder = builder.add_root_certificate(certificate);
    }
    builder.build_rustls().map_err(|e| SmtpError::Settings {
        reason: "the TLS settings cannot be used".to_owned(),
        source: Some(Box::new(e)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn debug_never_shows_the_password() {
        let config = SmtpConfig::postmark("user", "hunter2-secret");
        assert!(!format!("{config:?}").contains("hunter2"));
        let transport = SmtpTransport::new(config).expect("builds");
        assert!(!format!("{transport:?}").contains("hunter2"));
    }

    #[test]
    fn needs_a_runtime_instead_of_panicking() {
        assert!(matches!(
            SmtpTransport::new(SmtpConfig::postmark("u", "p")),
            Err(SmtpError::Settings { .. })
        ));
    }

    #[test]
    fn options_parse_from_admin_words() {
        assert_eq!("Required".parse(), Ok(StartTls::Required));
        assert_eq!("opportunistic".parse(), Ok(StartTls::Opportunistic));
        assert_eq!("none".parse(), Ok(StartTls::None));
        assert_eq!("LOGIN".parse(), Ok(SmtpAuth::Login));
        assert_eq!("plain".parse(), Ok(SmtpAuth::Plain));
        assert!("cram-md5".parse::<SmtpAuth>().is_err());
    }

    #[tokio::test]
    async fn a_bad_ca_certificate_is_a_settings_error() {
        let config = SmtpConfig::postmark("u", "p").with_extra_root_ca_pem("not a certificate");
        assert!(matches!(
            SmtpTransport::new(config),
            Err(SmtpError::Settings { .. })
        ));
    }
}
