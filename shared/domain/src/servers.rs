//! Email servers: the Postmark servers mail goes out through, and the rule that picks one for a message.
//!
//! A server carries one or more email types, each on a Postmark message stream of its own. Credentials
//! (the Server API Token, the SMTP username and password) are not part of this type: they live in a secret
//! store, and only a hint of each (its last four characters) is kept here so that an admin can tell which
//! one is set.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{EmailType, InvalidValue, MessageStream};

/// A server's id: short, random, safe in a storage key and a URL path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServerId(String);

impl ServerId {
    /// 1-64 ASCII letters, digits, `-` or `_`.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidValue {
                what: "server id",
                why: "must be 1-64 letters, digits, '-' or '_'".into(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServerId {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ServerId> for String {
    fn from(id: ServerId) -> Self {
        id.0
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The email service behind a server. Only Postmark for now; the field exists so that stored servers and
/// API clients already say which one they mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    #[default]
    Postmark,
}

impl Vendor {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postmark => "postmark",
        }
    }
}

/// How mail reaches the vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMethod {
    /// Postmark's HTTP API, authenticated by a Server API Token.
    Api,
    /// SMTP submission.
    Smtp,
}

impl DeliveryMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Smtp => "smtp",
        }
    }
}

/// The SMTP AUTH mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpAuthentication {
    Plain,
    Login,
}

impl SmtpAuthentication {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Login => "login",
        }
    }
}

/// Where and how to submit over SMTP. The username and password are credentials, kept elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpSettings {
    /// Host name or IP address, e.g. `smtp.postmarkapp.com`.
    pub host: String,
    pub port: u16,
    pub authentication: SmtpAuthentication,
    /// Upgrade the connection with STARTTLS before authenticating.
    pub starttls: bool,
}

impl SmtpSettings {
    /// Whether the connection must be encrypted before the credentials are sent: always, but to this very
    /// machine (a local relay or test server), whatever `starttls` says, so that a changed server item
    /// can never send a Postmark token in clear to another host.
    pub fn requires_starttls(&self) -> bool {
        self.starttls || !is_loopback_host(&self.host)
    }
}

/// `localhost` or a loopback address (`127.0.0.0/8`, `::1`, bracketed or not).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The delivery method with what it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Delivery {
    Api,
    Smtp(SmtpSettings),
}

impl Delivery {
    pub fn method(&self) -> DeliveryMethod {
        match self {
            Self::Api => DeliveryMethod::Api,
            Self::Smtp(_) => DeliveryMethod::Smtp,
        }
    }
}

/// Postmark's link tracking setting (`TrackLinks`), spelled as Postmark spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum LinkTracking {
    #[default]
    None,
    HtmlAndText,
    HtmlOnly,
    TextOnly,
}

impl LinkTracking {
    pub const ALL: [LinkTracking; 4] = [
        Self::None,
        Self::HtmlAndText,
        Self::HtmlOnly,
        Self::TextOnly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::HtmlAndText => "HtmlAndText",
            Self::HtmlOnly => "HtmlOnly",
            Self::TextOnly => "TextOnly",
        }
    }
}

impl std::str::FromStr for LinkTracking {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| InvalidValue {
                what: "track_links",
                why: format!("{s:?} is not one of None, HtmlAndText, HtmlOnly, TextOnly"),
            })
    }
}

/// Postmark's own open and click tracking, asked for on every message sent through the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PostmarkTracking {
    /// `TrackOpens`. Postmark turns it on anyway when the server's own setting is on.
    pub track_opens: bool,
    /// `TrackLinks`.
    pub track_links: LinkTracking,
}

/// What is known about a stored credential without reading it: that it is set, and its last characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialHint {
    pub last4: String,
}

impl CredentialHint {
    /// The hint of a secret value: its last four characters, or none for a value shorter than eight, so
    /// that a hint never gives away most of a secret.
    pub fn of(secret: &str) -> Self {
        let chars: Vec<char> = secret.chars().collect();
        let shown = if chars.len() < 8 { 0 } else { 4 };
        Self {
            last4: chars[chars.len() - shown..].iter().collect(),
        }
    }
}

/// Hints of the credentials the server has, by name (`api_token`, `smtp_username`, `smtp_password`),
/// and the version of the stored secret they describe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CredentialHints {
    /// The version of the secret that holds these credentials. Readers fetch exactly this version, so a
    /// server and its credentials always agree, whatever order concurrent changes reached the secret
    /// store in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token: Option<CredentialHint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_username: Option<CredentialHint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_password: Option<CredentialHint>,
}

/// One configured email server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailServer {
    pub id: ServerId,
    pub label: String,
    pub vendor: Vendor,
    pub delivery: Delivery,
    /// The email types the server carries, each with the message stream it goes to. A type that is not a
    /// key here is not carried.
    pub streams: BTreeMap<EmailType, MessageStream>,
    pub tracking: PostmarkTracking,
    /// An inactive server sends nothing.
    pub active: bool,
    #[serde(default)]
    pub credentials: CredentialHints,
    /// Raised by one on every change; an update names the version it was based on.
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl EmailServer {
    /// An active server delivering through Postmark's API that carries every type of mail on Postmark's
    /// default streams, with Postmark's tracking off: the starting point of a new server.
    pub fn api(id: ServerId, label: impl Into<String>, now: DateTime<Utc>) -> Self {
        Self {
            id,
            label: label.into(),
            vendor: Vendor::Postmark,
            delivery: Delivery::Api,
            streams: EmailType::ALL
                .into_iter()
                .map(|t| (t, t.default_stream()))
                .collect(),
            tracking: PostmarkTracking {
                track_opens: false,
                track_links: LinkTracking::None,
            },
            active: true,
            credentials: CredentialHints::default(),
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }

    /// Whether the server carries this type of mail.
    pub fn carries(&self, email_type: EmailType) -> bool {
        self.streams.contains_key(&email_type)
    }

    /// The stream for a type the server carries.
    pub fn stream_for(&self, email_type: EmailType) -> Option<&MessageStream> {
        self.streams.get(&email_type)
    }
}

/// Where one message goes: the server, and the stream on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<'a> {
    pub server: &'a EmailServer,
    pub stream: &'a MessageStream,
}

/// Why no server can take a message. Each is a configuration problem an admin can fix, not a reason to
/// retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoRoute {
    #[error("no active email server carries {0} mail")]
    NoServerFor(EmailType),
    #[error("the email server {0} does not exist")]
    UnknownServer(String),
    #[error("the email server {0} is inactive")]
    ServerInactive(ServerId),
    #[error("the email server {server} does not carry {email_type} mail")]
    NotCarried {
        server: ServerId,
        email_type: EmailType,
    },
}

/// Picks the server and stream for a message of `email_type`.
///
/// - With `server_id` (the job named a server), that server and no other: it must exist, be active and
///   carry the type. A job that names a server means it; sending through another one would put the mail
///   on a sender reputation and stream it was not meant for.
/// - Without, the oldest active server that carries the type (by creation time, then id). Adding a
///   server therefore never moves mail that already flows; to move a type, stop carrying it on the old
///   server or deactivate it.
pub fn route<'a>(
    servers: &'a [EmailServer],
    email_type: EmailType,
    server_id: Option<&str>,
) -> Result<Route<'a>, NoRoute> {
    let server = match server_id {
        Some(id) => {
            let server = servers
                .iter()
                .find(|s| s.id.as_str() == id)
                .ok_or_else(|| NoRoute::UnknownServer(id.to_owned()))?;
            if !server.active {
                return Err(NoRoute::ServerInactive(server.id.clone()));
            }
            server
        }
        None => servers
            .iter()
            .filter(|s| s.active && s.carries(email_type))
            .min_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)))
            .ok_or(NoRoute::NoServerFor(email_type))?,
    };
    let stream = server
        .stream_for(email_type)
        .ok_or_else(|| NoRoute::NotCarried {
            server: server.id.clone(),
            email_type,
        })?;
    Ok(Route { server, stream })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn server(id: &str, created_minute: u32, types: &[(EmailType, &str)]) -> EmailServer {
        let at = Utc
            .with_ymd_and_hms(2026, 1, 1, 12, created_minute, 0)
            .unwrap();
        EmailServer {
            id: ServerId::parse(id).unwrap(),
            label: id.to_uppercase(),
            vendor: Vendor::Postmark,
            delivery: Delivery::Api,
            streams: types
                .iter()
                .map(|(t, s)| (*t, MessageStream::parse(s).unwrap()))
                .collect(),
            tracking: PostmarkTracking::default(),
            active: true,
            credentials: CredentialHints::default(),
            version: 1,
            created_at: at,
            updated_at: at,
        }
    }

    use EmailType::{Broadcast, Sequence, Transactional};

    #[test]
    fn picks_the_oldest_active_server_that_carries_the_type() {
        let servers = vec![
            server("newer", 30, &[(Transactional, "outbound")]),
            server("older", 10, &[(Broadcast, "broadcast"), (Sequence, "drip")]),
            server("oldest", 5, &[(Transactional, "receipts")]),
        ];
        let r = route(&servers, Transactional, None).unwrap();
        assert_eq!(r.server.id.as_str(), "oldest");
        assert_eq!(r.stream.as_str(), "receipts");
        let r = route(&servers, Sequence, None).unwrap();
        assert_eq!(r.server.id.as_str(), "older");
        assert_eq!(r.stream.as_str(), "drip");
    }

    #[test]
    fn skips_inactive_servers_and_breaks_ties_by_id() {
        let mut servers = vec![
            server("b", 5, &[(Broadcast, "broadcast")]),
            server("a", 5, &[(Broadcast, "bulk")]),
            server("c", 1, &[(Broadcast, "old")]),
        ];
        servers[2].active = false;
        let r = route(&servers, Broadcast, None).unwrap();
        assert_eq!(r.server.id.as_str(), "a");
        assert_eq!(r.stream.as_str(), "bulk");
    }

    #[test]
    fn no_server_for_a_type_is_a_clear_error() {
        let mut servers = vec![server("only", 1, &[(Transactional, "outbound")])];
        assert_eq!(
            route(&servers, Broadcast, None),
            Err(NoRoute::NoServerFor(Broadcast))
        );
        servers[0].active = false;
        assert_eq!(
            route(&servers, Transactional, None),
            Err(NoRoute::NoServerFor(Transactional))
        );
        assert_eq!(
            route(&[], Transactional, None),
            Err(NoRoute::NoServerFor(Transactional))
        );
        assert_eq!(
            NoRoute::NoServerFor(Broadcast).to_string(),
            "no active email server carries broadcast mail"
        );
    }

    #[test]
    fn a_named_server_is_used_even_when_an_older_one_carries_the_type() {
        let servers = vec![
            server("main", 1, &[(Transactional, "outbound")]),
            server("vip", 9, &[(Transactional, "vip-stream")]),
        ];
        let r = route(&servers, Transactional, Some("vip")).unwrap();
        assert_eq!(r.server.id.as_str(), "vip");
        assert_eq!(r.stream.as_str(), "vip-stream");
    }

    #[test]
    fn a_named_server_is_never_replaced_by_another() {
        let mut servers = vec![
            server(
                "main",
                1,
                &[(Transactional, "outbound"), (Broadcast, "broadcast")],
            ),
            server("tx", 2, &[(Transactional, "outbound")]),
        ];
        assert_eq!(
            route(&servers, Transactional, Some("gone")),
            Err(NoRoute::UnknownServer("gone".into()))
        );
        assert_eq!(
            route(&servers, Broadcast, Some("tx")),
            Err(NoRoute::NotCarried {
                server: ServerId::parse("tx").unwrap(),
                email_type: Broadcast
            })
        );
        servers[1].active = false;
        assert_eq!(
            route(&servers, Transactional, Some("tx")),
            Err(NoRoute::ServerInactive(ServerId::parse("tx").unwrap()))
        );
    }

    #[test]
    fn hints_show_at_most_four_characters_and_never_a_whole_short_secret() {
        assert_eq!(CredentialHint::of("abcd-1234-wxyz").last4, "wxyz");
        assert_eq!(CredentialHint::of("12345678").last4, "5678");
        assert_eq!(CredentialHint::of("1234567").last4, "");
        assert_eq!(CredentialHint::of("").last4, "");
        assert_eq!(CredentialHint::of("päss-wörd").last4, "wörd");
    }

    #[test]
    fn ids_refuse_what_would_break_a_key_or_a_path() {
        assert!(ServerId::parse("0f3a9c2e4b5d4e6f8a7b9c0d1e2f3a4b").is_ok());
        for bad in ["", "a#b", "a/b", "a b", &"x".repeat(65)] {
            assert!(ServerId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_stored_shape_round_trips() {
        let mut s = server("s1", 1, &[(Transactional, "outbound")]);
        s.delivery = Delivery::Smtp(SmtpSettings {
            host: "smtp.postmarkapp.com".into(),
            port: 587,
            authentication: SmtpAuthentication::Login,
            starttls: true,
        });
        s.tracking.track_links = LinkTracking::HtmlOnly;
        s.credentials.smtp_password = Some(CredentialHint::of("secret-pass"));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["delivery"]["method"], "smtp");
        assert_eq!(json["streams"]["transactional"], "outbound");
        assert_eq!(json["tracking"]["track_links"], "HtmlOnly");
        let back: EmailServer = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn starttls_may_be_off_only_for_this_machine() {
        let smtp = |host: &str, starttls: bool| SmtpSettings {
            host: host.into(),
            port: 587,
            authentication: SmtpAuthentication::Plain,
            starttls,
        };
        for local in [
            "127.0.0.1",
            "127.8.9.1",
            "::1",
            "[::1]",
            "localhost",
            "LocalHost",
        ] {
            assert!(!smtp(local, false).requires_starttls(), "{local}");
            assert!(smtp(local, true).requires_starttls(), "{local}");
        }
        for remote in [
            "smtp.postmarkapp.com",
            "10.0.0.1",
            "localhost.evil.example",
            "::2",
            "",
        ] {
            assert!(smtp(remote, false).requires_starttls(), "{remote}");
        }
    }
}
