//! Postmark's answers sorted into the classes a caller decides on.

use std::fmt;
use std::time::Duration;

/// What a caller should do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Try again later: HTTP 429, 500, 502, 503, 504, ErrorCode 100 (maintenance) or 429, timeouts and
    /// connection errors.
    ///
    /// Retryable is not "not sent". Postmark has no idempotency key, and some of these failures
    /// come after Postmark may have accepted the request: a timeout or reset while waiting for the
    /// answer, or a gateway's 500, 502 or 504. Ask
    /// [`PostmarkError::may_have_been_accepted`] (or [`crate::smtp::SmtpError::may_have_been_accepted`])
    /// before resending, and when it says yes look the messages up with
    /// [`crate::PostmarkClient::search_outbound`] first. A connect failure, 429 and 503 (ErrorCode
    /// 100) mean Postmark did not take the request: resend freely.
    Retryable,
    /// ErrorCode 406: some recipients are suppressed (hard bounce, spam complaint, manual
    /// suppression). The addresses are in [`ApiError::inactive_recipients`]. Do not resend to them.
    RecipientInactive,
    /// The message or request is wrong: ErrorCode 300 (invalid email request), 402, 403, 409, 411, the
    /// template and message stream codes (1226, 1235, ...) and any other ErrorCode not listed here.
    InvalidRequest,
    /// The settings are wrong, not the message: ErrorCode 10 / HTTP 401 (token), 400 and 401 (sender
    /// signature), 405 (not allowed to send), 412 (account pending), 413 (account may not send),
    /// 1480 (IP not allowlisted), HTTP 404 without a Postmark body (wrong base URL).
    Configuration,
    /// Too big: HTTP 413 (10 MB per message, 50 MB per batch) or ErrorCode 410 (more than 500 messages in
    /// a batch). Split or shrink, then send again.
    TooLarge,
    /// HTTP 403 with a non-Postmark (HTML) body: a network security layer between us and Postmark
    /// refused the request. Postmark never saw it.
    BlockedByNetwork,
    /// Anything else (an unexpected status or body).
    Unexpected,
}

impl ErrorClass {
    /// Classifies a Postmark answer from its HTTP status and body `ErrorCode`.
    ///
    /// `ErrorCode` 0 counts as absent. For the items of a batch answer pass the batch's HTTP status
    /// (200): the item's `ErrorCode` decides.
    pub fn classify(http_status: u16, error_code: Option<i64>) -> Self {
        let code = error_code.filter(|code| *code != 0);
        if matches!(code, Some(100 | 429)) || matches!(http_status, 429 | 500 | 502 | 503 | 504) {
            return Self::Retryable;
        }
        if http_status == 413 {
            return Self::TooLarge;
        }
        match code {
            Some(410) => Self::TooLarge,
            Some(406) => Self::RecipientInactive,
            Some(10 | 400 | 401 | 405 | 412 | 413 | 1480) => Self::Configuration,
            Some(_) => Self::InvalidRequest,
            None => match http_status {
                401 | 404 => Self::Configuration,
                403 => Self::BlockedByNetwork,
                400 | 415 | 422 => Self::InvalidRequest,
                _ => Self::Unexpected,
            },
        }
    }

    /// True for [`ErrorClass::Retryable`].
    pub fn is_retryable(self) -> bool {
        self == Self::Retryable
    }

    /// A short name, stable for logs and metrics (`retryable`, `recipient_inactive`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retryable => "retryable",
            Self::RecipientInactive => "recipient_inactive",
            Self::InvalidRequest => "invalid_request",
            Self::Configuration => "configuration",
            Self::TooLarge => "too_large",
            Self::BlockedByNetwork => "blocked_by_network",
            Self::Unexpected => "unexpected",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Postmark said no: its HTTP status, `ErrorCode` and `Message`, classified.
///
/// Also the outcome of one failed item of a batch (with the batch's HTTP status, 200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    class: ErrorClass,
    http_status: u16,
    error_code: Option<i64>,
    message: String,
    inactive_recipients: Vec<String>,
}

impl ApiError {
    /// Builds and classifies an error from Postmark's answer.
    pub fn new(http_status: u16, error_code: Option<i64>, message: impl Into<String>) -> Self {
        let message = message.into();
        let class = ErrorClass::classify(http_status, error_code);
        let inactive_recipients = if class == ErrorClass::RecipientInactive {
            parse_inactive_addresses(&message)
        } else {
            Vec::new()
        };
        Self {
            class,
            http_status,
            error_code,
            message,
            inactive_recipients,
        }
    }

    /// The class that decides what to do.
    pub fn class(&self) -> ErrorClass {
        self.class
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.class.is_retryable()
    }

    /// The HTTP status of the answer (200 for a failed batch item).
    pub fn http_status(&self) -> u16 {
        self.http_status
    }

    /// Postmark's `ErrorCode`, when the body had one.
    pub fn error_code(&self) -> Option<i64> {
        self.error_code
    }

    /// Postmark's `Message` (or the start of a non-Postmark body).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// For ErrorCode 406: the suppressed addresses named in the message.
    pub fn inactive_recipients(&self) -> &[String] {
        &self.inactive_recipients
    }

    /// ErrorCode 701: the Messages API does not know this message. Right after a send it may
    /// only not be indexed yet, so retry for a while before concluding it was never accepted.
    pub fn is_message_not_found(&self) -> bool {
        self.error_code == Some(701)
    }

    /// ErrorCode 1364: a webhook was not saved because its URL failed verification.
    pub fn is_webhook_verification_failed(&self) -> bool {
        self.error_code == Some(1364)
    }

    fn is_bad_token(&self) -> bool {
        self.error_code == Some(10) || (self.http_status == 401 && self.error_code.is_none())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Postmark answered HTTP {}", self.http_status)?;
        if let Some(code) = self.error_code {
            write!(f, " with ErrorCode {code}")?;
        }
        write!(f, ": {}", self.message)?;
        if self.is_bad_token() {
            f.write_str(
                " (Invalid API Token: use the Server API Token of the Postmark server \
                 (Servers > your server > API Tokens), not an Account API Token)",
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// Postmark's error body: `{"ErrorCode": ..., "Message": ...}` (what a simulator answers).
impl serde::Serialize for ApiError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("ErrorCode", &self.error_code.unwrap_or(0))?;
        map.serialize_entry("Message", &self.message)?;
        map.end()
    }
}

/// Everything that can go wrong calling Postmark's API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostmarkError {
    /// Postmark answered with an error.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// No answer within the client's timeout. The request may or may not have been processed.
    #[error("the request to Postmark timed out (timeout {timeout:?})")]
    Timeout {
        /// The client's timeout.
        timeout: Duration,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// Postmark could not be reached (DNS, TCP, TLS) or the connection broke.
    #[error("could not reach Postmark")]
    Connection {
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// An HTTP 403 whose body is not Postmark's: a firewall or proxy between us and Postmark refused
    /// the request.
    #[error(
        "HTTP {status} with a non-Postmark body: a network security layer (firewall, proxy) blocked \
         the request before it reached Postmark"
    )]
    BlockedByNetwork {
        /// HTTP status (403).
        status: u16,
        /// The start of the body.
        body_excerpt: String,
    },
    /// A success status whose body is not what Postmark documents.
    #[error("Postmark answered HTTP {status} with an unexpected body: {body_excerpt}")]
    UnexpectedResponse {
        /// HTTP status.
        status: u16,
        /// The start of the body.
        body_excerpt: String,
        /// Why the body could not be read, if it was a JSON error.
        #[source]
        source: Option<serde_json::Error>,
    },
    /// A batch answer whose item count differs from the request's. Nothing can be said about which
    /// message was sent, so this is not retryable.
    #[error("Postmark answered a batch of {sent} messages with {answered} results")]
    BatchLengthMismatch {
        /// Messages sent.
        sent: usize,
        /// Results received.
        answered: usize,
    },
    /// More messages than one batch may hold; nothing was sent.
    #[error(
        "a Postmark batch holds at most {max} messages, this one has {count}; nothing was sent"
    )]
    BatchTooLarge {
        /// Messages in the batch.
        count: usize,
        /// The limit (500).
        max: usize,
    },
    /// A search or list Postmark would refuse (paging out of range): messages, bounces, opens or
    /// clicks; nothing was sent.
    #[error(
        "a Postmark message, bounce, open or click search takes a count of 1 to {max_count} and \
         count + offset of at most {max_window} (this one: count {count}, offset {offset}); narrow \
         it with fromdate/todate; nothing was sent"
    )]
    InvalidSearch {
        /// `count` asked for.
        count: u32,
        /// `offset` asked for.
        offset: u32,
        /// The largest count (500).
        max_count: u32,
        /// The largest count + offset (10,000).
        max_window: u32,
    },
    /// Postmark refused to save a webhook because its URL failed verification (it test-posts
    /// every enabled trigger first) and answered the per-trigger results. Nothing was saved (on
    /// edit the webhook stays as it was). Fix the endpoint, or save it unverified with
    /// `Verify: false`. A refusal with only `{ErrorCode: 1364, Message}` is an [`ApiError`] instead,
    /// see [`ApiError::is_webhook_verification_failed`].
    #[error(
        "Postmark did not save the webhook: verification of its URL failed (HTTP {http_status}): {}",
        verification.message.as_deref().unwrap_or("no message")
    )]
    WebhookNotVerified {
        /// The HTTP status (422).
        http_status: u16,
        /// The `ErrorCode`, when the body had one.
        error_code: Option<i64>,
        /// What each trigger's test POST got.
        verification: Box<crate::webhooks_api::WebhookVerification>,
    },
    /// The token cannot be put in an HTTP header (it contains control characters).
    #[error(
        "the Server API Token contains characters that cannot appear in an HTTP header; \
         paste it again without spaces or line breaks"
    )]
    InvalidToken,
    /// The base URL cannot carry API paths.
    #[error("invalid Postmark base URL {url}: it must be an http or https URL")]
    InvalidBaseUrl {
        /// The URL given.
        url: String,
    },
    /// The HTTP client could not be built or the request could not be made.
    #[error("could not make the HTTP request")]
    Http {
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
}

impl PostmarkError {
    /// The class that decides what to do.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Api(api) => api.class(),
            Self::Timeout { .. } | Self::Connection { .. } => ErrorClass::Retryable,
            Self::BlockedByNetwork { .. } => ErrorClass::BlockedByNetwork,
            Self::UnexpectedResponse { .. }
            | Self::BatchLengthMismatch { .. }
            | Self::Http { .. } => ErrorClass::Unexpected,
            Self::BatchTooLarge { .. } => ErrorClass::TooLarge,
            Self::InvalidSearch { .. } | Self::WebhookNotVerified { .. } => {
                ErrorClass::InvalidRequest
            }
            Self::InvalidToken | Self::InvalidBaseUrl { .. } => ErrorClass::Configuration,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }

    /// Whether Postmark may have accepted the request although this error came back, so that
    /// sending again could deliver twice.
    ///
    /// True when the request may have reached Postmark and the answer was lost or unreadable: a
    /// timeout or broken connection after the connection was made, HTTP 500, 502 or 504 without
    /// a Postmark `ErrorCode` (gateways answer those while Postmark may have processed the
    /// request), and a success status whose body could not be used. False when Postmark cannot
    /// have taken it: a failed connect, any 4xx, 429, 503, an answer with a Postmark `ErrorCode`,
    /// and errors raised before any request.
    pub fn may_have_been_accepted(&self) -> bool {
        match self {
            Self::Api(api) => {
                api.error_code().is_none_or(|code| code == 0)
                    && matches!(api.http_status(), 500 | 502 | 504)
            }
            Self::Timeout { source, .. } | Self::Connection { source } => !source.is_connect(),
            Self::UnexpectedResponse { status, .. } => (200..300).contains(status),
            // A 200 batch answer with the wrong number of items: some may have been sent.
            Self::BatchLengthMismatch { .. } => true,
            Self::BlockedByNetwork { .. }
            | Self::BatchTooLarge { .. }
            | Self::InvalidSearch { .. }
            | Self::WebhookNotVerified { .. }
            | Self::InvalidToken
            | Self::InvalidBaseUrl { .. }
            | Self::Http { .. } => false,
        }
    }

    /// Postmark's error, when Postmark answered with one.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            Self::Api(api) => Some(api),
            _ => None,
        }
    }

    /// The HTTP status of the answer, when there was one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Api(api) => Some(api.http_status()),
            Self::BlockedByNetwork { status, .. } | Self::UnexpectedResponse { status, .. } => {
                Some(*status)
            }
            Self::WebhookNotVerified { http_status, .. } => Some(*http_status),
            _ => None,
        }
    }

    /// Postmark's `ErrorCode`, when the answer had one.
    pub fn error_code(&self) -> Option<i64> {
        match self {
            Self::WebhookNotVerified { error_code, .. } => *error_code,
            _ => self.api_error().and_then(ApiError::error_code),
        }
    }
}

/// Pulls the addresses out of Postmark's inactive-recipient messages, e.g.
/// `"... Found inactive addresses: a@x.com, b@y.com. Inactive recipients are ..."` (ErrorCode 406) or
/// `"Message OK, but will not deliver to these inactive addresses: a@x.com, b@y.com. ..."` (a success
/// that skipped some recipients).
pub fn parse_inactive_addresses(message: &str) -> Vec<String> {
    const MARKER: &str = "inactive addresses:";
    let lower = message.to_ascii_lowercase();
    let Some(start) = lower.find(MARKER) else {
        return Vec::new();
    };
    let rest_start = start + MARKER.len();
    let rest_end = lower[rest_start..]
        .find("inactive recipients")
        .map_or(message.len(), |end| rest_start + end);
    message[rest_start..rest_end]
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .map(|token| {
            token.trim_matches(|c: char| matches!(c, '.' | ',' | ';' | '<' | '>' | '"' | '\''))
        })
        .filter(|token| token.contains('@'))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        use ErrorClass::*;
        let cases = [
            (429, None, Retryable),
            (500, None, Retryable),
            (502, None, Retryable),
            (503, Some(100), Retryable),
            (504, None, Retryable),
            (422, Some(100), Retryable),
            (422, Some(406), RecipientInactive),
            (200, Some(406), RecipientInactive),
            (422, Some(300), InvalidRequest),
            (422, Some(1235), InvalidRequest),
            (422, Some(1226), InvalidRequest),
            (422, Some(1101), InvalidRequest),
            (401, Some(10), Configuration),
            (401, None, Configuration),
            (422, Some(400), Configuration),
            (422, Some(401), Configuration),
            (422, Some(405), Configuration),
            (422, Some(412), Configuration),
            (422, Some(413), Configuration),
            (413, None, TooLarge),
            (422, Some(410), TooLarge),
            (403, None, BlockedByNetwork),
            (501, None, Unexpected),
            (200, Some(0), Unexpected),
        ];
        for (status, code, class) in cases {
            assert_eq!(
                ErrorClass::classify(status, code),
                class,
                "{status} {code:?}"
            );
        }
    }

    #[test]
    fn which_answers_may_hide_an_accepted_request() {
        let api = |status, code| PostmarkError::Api(ApiError::new(status, code, "x"));
        for (status, code, accepted) in [
            (500, None, true),
            (502, None, true),
            (504, None, true),
            (500, Some(0), true),
            (503, None, false),
            (503, Some(100), false),
            (429, Some(429), false),
            (429, None, false),
            (422, Some(300), false),
            (401, Some(10), false),
            (500, Some(100), false),
            (404, None, false),
        ] {
            assert_eq!(
                api(status, code).may_have_been_accepted(),
                accepted,
                "{status} {code:?}"
            );
        }
        let unexpected = |status| PostmarkError::UnexpectedResponse {
            status,
            body_excerpt: String::new(),
            source: None,
        };
        assert!(unexpected(200).may_have_been_accepted());
        assert!(!unexpected(501).may_have_been_accepted());
        assert!(
            PostmarkError::BatchLengthMismatch {
                sent: 2,
                answered: 1
            }
            .may_have_been_accepted()
        );
        assert!(
            !PostmarkError::BatchTooLarge {
                count: 501,
                max: 500
            }
            .may_have_been_accepted()
        );
        assert!(!PostmarkError::InvalidToken.may_have_been_accepted());
    }

    #[test]
    fn message_not_found_is_701() {
        assert!(
            ApiError::new(422, Some(701), "This message was not found.").is_message_not_found()
        );
        assert!(!ApiError::new(422, Some(700), "x").is_message_not_found());
    }

    #[test]
    fn inactive_addresses_from_both_wordings() {
        assert_eq!(
            parse_inactive_addresses(
                "You tried to send to a recipient that has been marked as inactive.\nFound inactive addresses: hardbounce@example.com, spam@example.com.\nInactive recipients are ones that have generated a hard bounce or a spam complaint."
            ),
            vec!["hardbounce@example.com", "spam@example.com"]
        );
        assert_eq!(
            parse_inactive_addresses(
                "Message OK, but will not deliver to these inactive addresses: a@x.com, b@y.org. Inactive recipients are ones that have generated a hard bounce or a spam complaint."
            ),
            vec!["a@x.com", "b@y.org"]
        );
        assert!(parse_inactive_addresses("OK").is_empty());
    }

    #[test]
    fn serialises_as_postmarks_error_body() {
        let error = ApiError::new(
            422,
            Some(1235),
            "The stream provided: 'x' does not exist on this server.",
        );
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            serde_json::json!({"ErrorCode": 1235, "Message": "The stream provided: 'x' does not exist on this server."})
        );
    }

    #[test]
    fn bad_token_message_names_the_right_token() {
        let error = ApiError::new(
            401,
            Some(10),
            "Request does not contain a valid Server token.",
        );
        let text = error.to_string();
        assert!(text.contains("Server API Token"), "{text}");
        assert!(text.contains("not an Account API Token"), "{text}");
        assert!(text.contains("ErrorCode 10"), "{text}");
    }
}
