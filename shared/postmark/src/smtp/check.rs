//! "Test settings" for SMTP: each step on its own, so that a failure names its step.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use secrecy::ExposeSecret;
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::{BoxError, SmtpConfig, StartTls};

/// The steps of a connection, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmtpStage {
    /// Looking up the host name.
    Resolve,
    /// Opening the TCP connection and reading the server's greeting.
    Connect,
    /// STARTTLS and the TLS handshake.
    Tls,
    /// SMTP AUTH.
    Authentication,
}

impl SmtpStage {
    /// `resolve`, `connect`, `tls` or `authentication`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Resolve => "resolve",
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Authentication => "authentication",
        }
    }
}

impl fmt::Display for SmtpStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The settings work: what the check saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpCheck {
    /// The address connected to.
    pub address: SocketAddr,
    /// Whether the session was encrypted (STARTTLS).
    pub encrypted: bool,
    /// Whether the server accepted the credentials.
    pub authenticated: bool,
}

/// The settings do not work: which step failed, and why, in an admin's words (`Display`).
#[derive(Debug, thiserror::Error)]
#[error("{explanation}")]
pub struct SmtpCheckError {
    stage: SmtpStage,
    explanation: String,
    #[source]
    source: Option<BoxError>,
}

impl SmtpCheckError {
    /// The step that failed.
    pub fn stage(&self) -> SmtpStage {
        self.stage
    }

    fn new(stage: SmtpStage, explanation: String, source: Option<BoxError>) -> Self {
        Self {
            stage,
            explanation,
            source,
        }
    }
}

pub(super) async fn run(
    config: &SmtpConfig,
    tls: Option<TlsParameters>,
    hello: &ClientId,
) -> Result<SmtpCheck, SmtpCheckError> {
    let host = config.host.as_str();
    let port = config.port;
    let limit = config.timeout;

    // 1. Resolve.
    let addresses: Vec<SocketAddr> = match timeout(limit, tokio::net::lookup_host((host, port)))
        .await
    {
        Ok(Ok(found)) => found.collect(),
        Ok(Err(error)) => {
            return Err(SmtpCheckError::new(
                SmtpStage::Resolve,
                format!(
                    "Could not find the SMTP server \"{host}\": the name does not resolve ({error}). \
                     Check the server address (Postmark's is {}).",
                    super::POSTMARK_SMTP_HOST
                ),
                Some(Box::new(error)),
            ));
        }
        Err(_) => {
            return Err(SmtpCheckError::new(
                SmtpStage::Resolve,
                format!(
                    "Looking up the SMTP server \"{host}\" took longer than {} s. Check the server \
                     address and this network's DNS.",
                    limit.as_secs()
                ),
                None,
            ));
        }
    };

    // 2. Connect, then greeting and EHLO.
    let mut last_error: Option<io::Error> = None;
    let mut connected = None;
    for address in &addresses {
        match timeout(limit, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                connected = Some((*address, stream));
                break;
            }
            Ok(Err(error)) => last_error = Some(error),
            Err(_) => {
                last_error = Some(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer within {} s", limit.as_secs()),
                ));
            }
        }
    }
    let Some((address, stream)) = connected else {
        let reason = match &last_error {
            Some(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
                "the connection was refused: nothing is listening on that port".to_owned()
            }
            Some(error) if error.kind() == io::ErrorKind::TimedOut => {
                format!(
                    "no answer within {} s (a firewall may be dropping the traffic)",
                    limit.as_secs()
                )
            }
            Some(error) => error.to_string(),
            None => "the name resolved to no address".to_owned(),
        };
        return Err(SmtpCheckError::new(
            SmtpStage::Connect,
            format!(
                "Could not connect to {host} on port {port}: {reason}. Check the host and the port \
                 (Postmark listens on 587, 2525 and 25; AWS Lambda cannot send on port 25) and that \
                 outgoing connections are allowed."
            ),
            last_error.map(|e| Box::new(e) as BoxError),
        ));
    };
    let mut connection = match timeout(
        limit,
        AsyncSmtpConnection::connect_with_transport(Box::new(stream), hello),
    )
    .await
    {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            return Err(SmtpCheckError::new(
                SmtpStage::Connect,
                format!(
                    "Connected to {host} on port {port}, but it did not answer as an SMTP server \
                     ({error}). Check the port: Postmark's SMTP ports are 587, 2525 and 25."
                ),
                Some(Box::new(error)),
            ));
        }
        Err(_) => {
            return Err(SmtpCheckError::new(
                SmtpStage::Connect,
                format!(
                    "Connected to {host} on port {port}, but no SMTP greeting came within {} s. \
                     Check the port (an implicit-TLS port such as 465 is not supported).",
                    limit.as_secs()
                ),
                None,
            ));
        }
    };

    // 3. STARTTLS.
    let mut encrypted = false;
    if let Some(tls) = tls {
        let offered = connection.can_starttls();
        match (config.starttls, offered) {
            (StartTls::None, _) | (StartTls::Opportunistic, false) => {}
            (StartTls::Required, false) => {
                connection.abort().await;
                return Err(SmtpCheckError::new(
                    SmtpStage::Tls,
                    format!(
                        "{host} on port {port} does not offer STARTTLS, and these settings require an \
                         encrypted connection, so nothing was sent (not even the password). Check \
                         the host and port."
                    ),
                    None,
                ));
            }
            (StartTls::Required | StartTls::Opportunistic, true) => {
                let upgraded = timeout(limit, connection.starttls(tls, hello)).await;
                let failure = match upgraded {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => {
                        Some((super::tls_cause(&error), Some(Box::new(error) as BoxError)))
                    }
                    Err(_) => Some((format!("no answer within {} s", limit.as_secs()), None)),
                };
                if let Some((cause, source)) = failure {
                    // The stream is gone after a failed upgrade: no QUIT is possible, just drop it.
                    drop(connection);
                    return Err(SmtpCheckError::new(
                        SmtpStage::Tls,
                        format!(
                            "The encrypted (TLS) connection to {host} failed: {cause}. The \
                             certificate must be valid for \"{host}\"; a server whose certificate \
                             comes from a private authority needs that authority's root \
                             certificate in the settings."
                        ),
                        source,
                    ));
                }
                encrypted = true;
            }
        }
    }

    // 4. AUTH.
    let credentials = Credentials::new(
        config.username.clone(),
        config.password.expose_secret().to_owned(),
    );
    let mechanism = config.auth.mechanism();
    let authenticated = timeout(limit, connection.auth(&[mechanism], &credentials)).await;
    let failure = match authenticated {
        Ok(Ok(_)) => None,
        Ok(Err(error)) if error.status().is_some() => Some((
            format!(
                "{host} refused the user name or password (it answered: {error}). For Postmark, \
                 use the Server API Token as both user name and password, or an SMTP token's \
                 access key and secret key."
            ),
            Some(Box::new(error) as BoxError),
        )),
        Ok(Err(error)) if !connection.server_info().supports_auth_mechanism(mechanism) => Some((
            format!(
                "{host} does not offer AUTH {} on this connection. Choose the other \
                 authentication method (login or plain){}.",
                config.auth.as_str().to_uppercase(),
                if encrypted {
                    ""
                } else {
                    ", or turn STARTTLS on: many servers offer AUTH only after it"
                }
            ),
            Some(Box::new(error) as BoxError),
        )),
        Ok(Err(error)) => Some((
            format!("Authentication with {host} failed: {error}."),
            Some(Box::new(error) as BoxError),
        )),
        Err(_) => Some((
            format!(
                "{host} did not answer the authentication within {} s.",
                limit.as_secs()
            ),
            None,
        )),
    };
    if let Some((explanation, source)) = failure {
        connection.abort().await;
        return Err(SmtpCheckError::new(
            SmtpStage::Authentication,
            explanation,
            source,
        ));
    }

    let _ = connection.quit().await;
    Ok(SmtpCheck {
        address,
        encrypted,
        authenticated: true,
    })
}
