//! Small identifiers and enumerations that cross every boundary of the system.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {why}")]
pub struct InvalidValue {
    pub what: &'static str,
    pub why: String,
}

impl InvalidValue {
    fn new(what: &'static str, why: impl Into<String>) -> Self {
        Self {
            what,
            why: why.into(),
        }
    }
}

/// What kind of mail a message is. It decides the email server and the Postmark message stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailType {
    Broadcast,
    Sequence,
    Transactional,
}

impl EmailType {
    pub const ALL: [EmailType; 3] = [Self::Broadcast, Self::Sequence, Self::Transactional];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Broadcast => "broadcast",
            Self::Sequence => "sequence",
            Self::Transactional => "transactional",
        }
    }

    /// The Postmark stream a server uses for this type unless configured otherwise: Postmark keeps
    /// transactional and bulk mail on separate streams, `outbound` and `broadcast` by default.
    pub fn default_stream(self) -> MessageStream {
        match self {
            Self::Transactional => MessageStream("outbound".into()),
            Self::Broadcast | Self::Sequence => MessageStream("broadcast".into()),
        }
    }

    /// Marketing mail (broadcasts and sequences) as opposed to mail a subscriber asked for.
    pub fn is_marketing(self) -> bool {
        !matches!(self, Self::Transactional)
    }
}

impl fmt::Display for EmailType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EmailType {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "broadcast" => Ok(Self::Broadcast),
            "sequence" => Ok(Self::Sequence),
            "transactional" => Ok(Self::Transactional),
            other => Err(InvalidValue::new(
                "email_type",
                format!("{other:?} is not one of broadcast, sequence, transactional"),
            )),
        }
    }
}

/// A Postmark message stream id such as `outbound` or `broadcast`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageStream(String);

impl MessageStream {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let ok = !s.is_empty()
            && s.len() <= 100
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidValue::new(
                "message_stream",
                "must be 1-100 letters, digits, '-' or '_'",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MessageStream {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<MessageStream> for String {
    fn from(s: MessageStream) -> Self {
        s.0
    }
}

impl fmt::Display for MessageStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The producer's idempotency key for a send job (the SQS message id when the producer gave none).
///
/// Printable ASCII without `#` (the storage key separator), 1-128 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

impl JobId {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let ok =
            !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_graphic() && c != '#');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidValue::new(
                "id",
                "must be 1-128 printable ASCII characters without spaces or '#'",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for JobId {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<JobId> for String {
    fn from(s: JobId) -> Self {
        s.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_types_parse_and_pick_their_default_stream() {
        for t in EmailType::ALL {
            assert_eq!(t.as_str().parse::<EmailType>().unwrap(), t);
        }
        assert!("Broadcast".parse::<EmailType>().is_err());
        assert_eq!(
            EmailType::Transactional.default_stream().as_str(),
            "outbound"
        );
        assert_eq!(EmailType::Broadcast.default_stream().as_str(), "broadcast");
        assert_eq!(EmailType::Sequence.default_stream().as_str(), "broadcast");
        assert_eq!(
            serde_json::to_string(&EmailType::Sequence).unwrap(),
            "\"sequence\""
        );
    }

    #[test]
    fn streams_and_job_ids_refuse_what_would_break_a_key() {
        assert!(MessageStream::parse("outbound").is_ok());
        assert!(MessageStream::parse("my-stream_2").is_ok());
        assert!(MessageStream::parse("").is_err());
        assert!(MessageStream::parse("a b").is_err());
        assert!(JobId::parse("job-123:abc").is_ok());
        assert!(JobId::parse("a#b").is_err());
        assert!(JobId::parse("with space").is_err());
        assert!(JobId::parse(&"x".repeat(129)).is_err());
        assert!(serde_json::from_str::<JobId>("\"\"").is_err());
    }
}
