//! The send job: the contract between the apps that enqueue mail and the sender (one SQS message body,
//! JSON, versioned). One job is one email to one recipient. `schemas/send-job.schema.json` describes the
//! same contract for producers; a test holds the two together.
//!
//! Parsing is strict on purpose: an unknown top-level field is refused (a producer's typo such as
//! `html_bdoy` would otherwise send an email without its body), and every error names its field.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::ports::RecipientStanding;
use crate::servers::ServerId;
use crate::trace::{self, Campaign, CampaignKind, MessageTrace};
use crate::{EmailAddress, EmailType, JobId, SubscriberStatus, SuppressionReason};

/// The job format this sender reads.
pub const VERSION: u64 = 1;
/// Postmark's limit on one message, bodies and attachments included.
pub const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
/// Postmark's limit on recipients of one message (To, Cc and Bcc together).
pub const MAX_RECIPIENTS: usize = 50;
pub const MAX_SUBJECT_CHARS: usize = 2000;
pub const MAX_TAG_CHARS: usize = 1000;
/// Postmark refuses metadata keys longer than this.
pub const MAX_METADATA_KEY_CHARS: usize = 20;
pub const MAX_METADATA_VALUE_CHARS: usize = 1000;
const MAX_NAME_CHARS: usize = 256;
const MAX_HEADER_VALUE_CHARS: usize = 4096;
const MAX_REF_CHARS: usize = 128;

/// Every top-level field of a job; anything else is refused.
pub const FIELDS: &[&str] = &[
    "version",
    "id",
    "email_type",
    "from",
    "to",
    "reply_to",
    "cc",
    "bcc",
    "subject",
    "html_body",
    "text_body",
    "headers",
    "tag",
    "metadata",
    "broadcast_id",
    "sequence_id",
    "subscriber_id",
    "track_opens",
    "track_clicks",
    "server_id",
    "attachments",
];

/// Fields a job must have (`id` falls back to the SQS message id).
pub const REQUIRED: &[&str] = &["version", "email_type", "from", "to", "subject"];

/// Headers the sender writes itself; a job sets them through their own fields.
const RESERVED_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "content-type",
    "content-transfer-encoding",
    "mime-version",
    "x-pm-message-stream",
    "x-pm-tag",
    "x-pm-trackopens",
    "x-pm-tracklinks",
];
const RESERVED_HEADER_PREFIX: &str = "x-pm-metadata-";

/// An address with an optional display name, as in `Shop <shop@example.com>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: EmailAddress,
}

impl Mailbox {
    /// Reads `addr`, `<addr>`, `Name <addr>` or `"Quoted, Name" <addr>`.
    pub fn parse(input: &str) -> Result<Self, String> {
        let text = input.trim();
        let (name, address) = match (text.rfind('<'), text.ends_with('>')) {
            (Some(open), true) => (text[..open].trim(), &text[open + 1..text.len() - 1]),
            (None, false) => ("", text),
            _ => return Err("must be an address or Name <address>".into()),
        };
        let address = EmailAddress::parse(address).map_err(|e| e.to_string())?;
        let name = unquote(name)?;
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(format!(
                "the display name is longer than {MAX_NAME_CHARS} characters"
            ));
        }
        if name.chars().any(char::is_control) {
            return Err("the display name contains a control character".into());
        }
        Ok(Self {
            name: (!name.is_empty()).then_some(name),
            address,
        })
    }
}

fn unquote(name: &str) -> Result<String, String> {
    let Some(inner) = name.strip_prefix('"') else {
        if name.contains('"') {
            return Err("a display name with quotes must be quoted as a whole".into());
        }
        return Ok(name.to_owned());
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or("the quoted display name is not closed")?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next().ok_or("the display name ends with '\\'")?),
            '"' => return Err("a quote inside the display name must be escaped as \\\"".into()),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Characters a display name may hold without quotes (RFC 5322 atext, spaces and non-ASCII).
fn is_plain_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == ' ' || !c.is_ascii() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

impl fmt::Display for Mailbox {
    /// The form Postmark and SMTP read: quoted when the name needs it (a comma would split it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            None => f.write_str(self.address.as_str()),
            Some(name) if name.chars().all(is_plain_name_char) => {
                write!(f, "{name} <{}>", self.address)
            }
            Some(name) => {
                let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
                write!(f, "\"{escaped}\" <{}>", self.address)
            }
        }
    }
}

/// A custom header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// A file attached to the message; `content` is base64 as Postmark expects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub content: String,
    pub content_type: String,
    pub content_id: Option<String>,
}

/// A valid send job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendJob {
    pub id: JobId,
    pub email_type: EmailType,
    pub from: Mailbox,
    /// The one recipient.
    pub to: Mailbox,
    pub reply_to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub subject: String,
    pub html_body: Option<String>,
    pub text_body: Option<String>,
    pub headers: Vec<Header>,
    pub tag: Option<String>,
    /// The producer's own metadata (the trace is added when sending, see [`SendJob::metadata`]).
    pub metadata: BTreeMap<String, String>,
    /// The broadcast or sequence the job belongs to (none for transactional mail).
    pub campaign: Option<Campaign>,
    pub subscriber_id: Option<String>,
    pub track_opens: bool,
    pub track_clicks: bool,
    /// Send through this email server only.
    pub server_id: Option<ServerId>,
    pub attachments: Vec<Attachment>,
}

/// What is wrong with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A job that cannot be sent as it is, with every reason found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid send job: {}", .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct InvalidJob {
    /// The job's id, when it could be read.
    pub id: Option<JobId>,
    pub errors: Vec<FieldError>,
}

impl InvalidJob {
    fn body(message: impl Into<String>) -> Self {
        Self {
            id: None,
            errors: vec![FieldError {
                field: "body".into(),
                message: message.into(),
            }],
        }
    }
}

/// Collects field errors while a job is read.
struct Reader {
    map: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Reader {
    fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// A field's value, `None` when absent or null.
    fn take(&mut self, field: &str) -> Option<Value> {
        self.map.remove(field).filter(|v| !v.is_null())
    }

    fn string(&mut self, field: &str) -> Option<String> {
        match self.take(field)? {
            Value::String(s) => Some(s),
            other => {
                self.fail(field, format!("must be a string, not {}", kind(&other)));
                None
            }
        }
    }

    fn required_string(&mut self, field: &str) -> Option<String> {
        let value = self.string(field);
        if value.is_none() && !self.errors.iter().any(|e| e.field == field) {
            self.fail(field, "is required");
        }
        value
    }

    fn bool(&mut self, field: &str) -> bool {
        match self.take(field) {
            None => false,
            Some(Value::Bool(b)) => b,
            Some(other) => {
                self.fail(
                    field,
                    format!("must be true or false, not {}", kind(&other)),
                );
                false
            }
        }
    }

    /// A reference to something of the platform's (campaign, subscriber): safe in a storage key.
    fn reference(&mut self, field: &str) -> Option<String> {
        let value = self.string(field)?;
        let ok = !value.is_empty()
            && value.chars().count() <= MAX_REF_CHARS
            && value.trim() == value
            && !value.contains('#')
            && !value.chars().any(char::is_control);
        if ok {
            Some(value)
        } else {
            self.fail(
                field,
                format!("must be 1-{MAX_REF_CHARS} characters without '#', control characters or surrounding spaces"),
            );
            None
        }
    }

    fn mailbox(&mut self, field: &str, value: &str) -> Option<Mailbox> {
        match Mailbox::parse(value) {
            Ok(m) => Some(m),
            Err(e) => {
                self.fail(field, format!("{value:?}: {e}"));
                None
            }
        }
    }

    /// An address list: one address as a string, or an array of them.
    fn mailboxes(&mut self, field: &str) -> Vec<Mailbox> {
        let values = match self.take(field) {
            None => return Vec::new(),
            Some(Value::String(s)) => vec![Value::String(s)],
            Some(Value::Array(list)) => list,
            Some(other) => {
                self.fail(
                    field,
                    format!(
                        "must be an address or an array of addresses, not {}",
                        kind(&other)
                    ),
                );
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(values.len());
        for (i, v) in values.into_iter().enumerate() {
            let name = format!("{field}[{i}]");
            match v {
                Value::String(s) => out.extend(self.mailbox(&name, &s)),
                other => self.fail(name, format!("must be a string, not {}", kind(&other))),
            }
        }
        out
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 100 && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

impl SendJob {
    /// Reads and checks a job. `fallback_id` (the SQS message id) is the id of a job that names none.
    pub fn parse(body: &str, fallback_id: Option<&str>) -> Result<Self, InvalidJob> {
        let value: Value = serde_json::from_str(body)
            .map_err(|e| InvalidJob::body(format!("not valid JSON ({e})")))?;
        let Value::Object(map) = value else {
            return Err(InvalidJob::body(format!(
                "must be a JSON object, not {}",
                kind(&value)
            )));
        };
        let mut r = Reader {
            map,
            errors: Vec::new(),
        };

        let mut unknown: Vec<String> = r
            .map
            .keys()
            .filter(|k| !FIELDS.contains(&k.as_str()))
            .cloned()
            .collect();
        unknown.sort();
        for field in unknown {
            r.map.remove(&field);
            r.fail(field, "is not a field of a send job (check the spelling)");
        }

        match r.take("version") {
            Some(Value::Number(n)) if n.as_u64() == Some(VERSION) => {}
            Some(other) => r.fail(
                "version",
                format!("must be {VERSION}, the version this sender reads (got {other})"),
            ),
            None => r.fail(
                "version",
                format!("is required (the current version is {VERSION})"),
            ),
        }

        let id = match r.string("id") {
            Some(id) => JobId::parse(&id).map_err(|e| r.fail("id", e.why)).ok(),
            None if r.errors.iter().any(|e| e.field == "id") => None,
            None => match fallback_id.map(JobId::parse) {
                Some(Ok(id)) => Some(id),
                _ => {
                    r.fail(
                        "id",
                        "is required when the message has no usable SQS message id",
                    );
                    None
                }
            },
        };

        let email_type = r.required_string("email_type").and_then(|t| {
            t.parse::<EmailType>()
                .map_err(|e| r.fail("email_type", e.why))
                .ok()
        });
        let from = r
            .required_string("from")
            .and_then(|f| r.mailbox("from", &f));
        let to = match r.take("to") {
            Some(Value::String(s)) => r.mailbox("to", &s),
            Some(Value::Array(_)) => {
                r.fail(
                    "to",
                    "must be one address: one job is one email to one recipient",
                );
                None
            }
            Some(other) => {
                r.fail("to", format!("must be a string, not {}", kind(&other)));
                None
            }
            None => {
                r.fail("to", "is required");
                None
            }
        };
        let reply_to = r.mailboxes("reply_to");
        let cc = r.mailboxes("cc");
        let bcc = r.mailboxes("bcc");
        if 1 + cc.len() + bcc.len() > MAX_RECIPIENTS {
            r.fail(
                "cc",
                format!("to, cc and bcc together may hold at most {MAX_RECIPIENTS} addresses"),
            );
        }

        let subject = r.required_string("subject");
        if let Some(s) = &subject {
            if s.trim().is_empty() {
                r.fail("subject", "must not be empty");
            } else if s.chars().count() > MAX_SUBJECT_CHARS {
                r.fail(
                    "subject",
                    format!("is longer than {MAX_SUBJECT_CHARS} characters"),
                );
            } else if s.contains(['\r', '\n']) {
                r.fail("subject", "must be one line");
            }
        }
        let html_body = r.string("html_body").filter(|b| !b.is_empty());
        let text_body = r.string("text_body").filter(|b| !b.is_empty());
        if html_body.is_none()
            && text_body.is_none()
            && !r
                .errors
                .iter()
                .any(|e| e.field == "html_body" || e.field == "text_body")
        {
            r.fail("html_body", "a job needs html_body, text_body or both");
        }

        let headers = read_headers(&mut r);
        let tag = r.string("tag");
        if let Some(t) = &tag {
            if t.chars().count() > MAX_TAG_CHARS {
                r.fail("tag", format!("is longer than {MAX_TAG_CHARS} characters"));
            } else if t.chars().any(char::is_control) {
                r.fail("tag", "contains a control character");
            }
        }
        let metadata = read_metadata(&mut r);

        let broadcast_id = r.reference("broadcast_id");
        let sequence_id = r.reference("sequence_id");
        let campaign = campaign_of(&mut r, email_type, broadcast_id, sequence_id);
        let subscriber_id = r.reference("subscriber_id");
        let track_opens = r.bool("track_opens");
        let track_clicks = r.bool("track_clicks");
        if (track_opens || track_clicks) && html_body.is_none() {
            let field = if track_opens {
                "track_opens"
            } else {
                "track_clicks"
            };
            r.fail(field, "native tracking needs an html_body");
        }
        let server_id = r.string("server_id").and_then(|s| {
            ServerId::parse(&s)
                .map_err(|e| r.fail("server_id", e.why))
                .ok()
        });
        let attachments = read_attachments(&mut r);

        let size = subject.as_ref().map_or(0, String::len)
            + html_body.as_ref().map_or(0, String::len)
            + text_body.as_ref().map_or(0, String::len)
            + headers
                .iter()
                .map(|h| h.name.len() + h.value.len())
                .sum::<usize>()
            + attachments.iter().map(|a| a.content.len()).sum::<usize>();
        if size > MAX_MESSAGE_BYTES {
            r.fail(
                "body",
                format!(
                    "the message would be {size} bytes; Postmark takes at most {MAX_MESSAGE_BYTES} (bodies and base64 attachments)"
                ),
            );
        }

        match (r.errors.is_empty(), id, email_type, from, to, subject) {
            (true, Some(id), Some(email_type), Some(from), Some(to), Some(subject)) => Ok(Self {
                id,
                email_type,
                from,
                to,
                reply_to,
                cc,
                bcc,
                subject,
                html_body,
                text_body,
                headers,
                tag,
                metadata,
                campaign,
                subscriber_id,
                track_opens,
                track_clicks,
                server_id,
                attachments,
            }),
            (_, id, ..) => Err(InvalidJob {
                id,
                errors: r.errors,
            }),
        }
    }

    /// The recipient's address.
    pub fn recipient(&self) -> &EmailAddress {
        &self.to.address
    }

    /// What lets a webhook event about this message find its job, campaign and subscriber.
    pub fn trace(&self) -> MessageTrace {
        MessageTrace {
            job_id: Some(self.id.to_string()),
            email_type: Some(self.email_type),
            campaign: self.campaign.clone(),
            subscriber_id: self.subscriber_id.clone(),
            sent_at: None,
        }
    }

    /// The metadata to send: the producer's entries and the trace. The trace wins: a producer's key
    /// that matches a trace key (in any case; Postmark refuses keys that differ only in case) is
    /// dropped, so that events always find their way back.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let trace = self.trace().to_metadata();
        let mut merged: BTreeMap<String, String> = self
            .metadata
            .iter()
            .filter(|(k, _)| !is_trace_key(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        merged.extend(trace);
        merged
    }
}

fn is_trace_key(key: &str) -> bool {
    [
        trace::JOB_ID,
        trace::EMAIL_TYPE,
        trace::BROADCAST_ID,
        trace::SEQUENCE_ID,
        trace::SUBSCRIBER_ID,
        trace::SEND_ID,
        trace::SENT_AT,
    ]
    .iter()
    .any(|t| t.eq_ignore_ascii_case(key))
}

/// The campaign a job counts towards: a broadcast job names its broadcast, a sequence job its sequence,
/// a transactional job neither.
fn campaign_of(
    r: &mut Reader,
    email_type: Option<EmailType>,
    broadcast_id: Option<String>,
    sequence_id: Option<String>,
) -> Option<Campaign> {
    let email_type = email_type?;
    let mut campaign = None;
    for (kind, field, id) in [
        (CampaignKind::Broadcast, "broadcast_id", broadcast_id),
        (CampaignKind::Sequence, "sequence_id", sequence_id),
    ] {
        let wanted = match kind {
            CampaignKind::Broadcast => email_type == EmailType::Broadcast,
            CampaignKind::Sequence => email_type == EmailType::Sequence,
        };
        match (wanted, id) {
            (true, Some(id)) => campaign = Some(Campaign { kind, id }),
            (true, None) => {
                if !r.errors.iter().any(|e| e.field == field) {
                    r.fail(field, format!("is required for a {email_type} job"));
                }
            }
            (false, Some(_)) => r.fail(
                field,
                format!(
                    "only {} jobs carry one, this is a {email_type} job",
                    kind.as_str()
                ),
            ),
            (false, None) => {}
        }
    }
    campaign
}

fn read_headers(r: &mut Reader) -> Vec<Header> {
    let pairs: Vec<(String, Value, String)> = match r.take("headers") {
        None => return Vec::new(),
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| (k.clone(), v, format!("headers.{k}")))
            .collect(),
        Some(Value::Array(list)) => {
            let mut pairs = Vec::new();
            for (i, item) in list.into_iter().enumerate() {
                let field = format!("headers[{i}]");
                let Value::Object(mut obj) = item else {
                    r.fail(field, "must be an object {\"name\": ..., \"value\": ...}");
                    continue;
                };
                let name = obj.remove("name");
                let value = obj.remove("value");
                if let Some(extra) = obj.keys().next() {
                    r.fail(
                        field,
                        format!("has an unknown field {extra:?} (only name and value)"),
                    );
                    continue;
                }
                match (name, value) {
                    (Some(Value::String(name)), Some(value)) => pairs.push((name, value, field)),
                    _ => r.fail(field, "needs a string name and a string value"),
                }
            }
            pairs
        }
        Some(other) => {
            r.fail(
                "headers",
                format!(
                    "must be an object or an array of {{name, value}}, not {}",
                    kind(&other)
                ),
            );
            return Vec::new();
        }
    };
    let mut headers = Vec::with_capacity(pairs.len());
    for (name, value, field) in pairs {
        let Value::String(value) = value else {
            r.fail(field, "the value must be a string");
            continue;
        };
        let lower = name.to_ascii_lowercase();
        if !is_header_name(&name) {
            r.fail(
                field,
                "the name must be printable ASCII without spaces or ':'",
            );
        } else if RESERVED_HEADERS.contains(&lower.as_str())
            || lower.starts_with(RESERVED_HEADER_PREFIX)
        {
            r.fail(
                field,
                format!("{name} is set by the sender; use the job's own fields"),
            );
        } else if value.contains(['\r', '\n']) || value.chars().count() > MAX_HEADER_VALUE_CHARS {
            r.fail(
                field,
                format!(
                    "the value must be one line of at most {MAX_HEADER_VALUE_CHARS} characters"
                ),
            );
        } else {
            headers.push(Header { name, value });
        }
    }
    headers
}

fn read_metadata(r: &mut Reader) -> BTreeMap<String, String> {
    let map = match r.take("metadata") {
        None => return BTreeMap::new(),
        Some(Value::Object(map)) => map,
        Some(other) => {
            r.fail(
                "metadata",
                format!("must be an object of strings, not {}", kind(&other)),
            );
            return BTreeMap::new();
        }
    };
    let mut out = BTreeMap::new();
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in map {
        let field = format!("metadata.{key}");
        let lower = key.to_lowercase();
        if key.is_empty() || key.chars().count() > MAX_METADATA_KEY_CHARS {
            r.fail(
                field,
                format!("keys must be 1-{MAX_METADATA_KEY_CHARS} characters (Postmark's limit)"),
            );
            continue;
        }
        if seen.contains(&lower) {
            r.fail(
                field,
                "keys that differ only in case are refused by Postmark",
            );
            continue;
        }
        seen.push(lower);
        match value {
            Value::String(v) if v.chars().count() <= MAX_METADATA_VALUE_CHARS => {
                out.insert(key, v);
            }
            Value::String(_) => r.fail(
                field,
                format!("values must be at most {MAX_METADATA_VALUE_CHARS} characters"),
            ),
            other => r.fail(
                field,
                format!("values must be strings, not {}", kind(&other)),
            ),
        }
    }
    out
}

fn is_mime_type(t: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let essence = t.split(';').next().unwrap_or_default().trim();
    matches!(essence.split_once('/'), Some((a, b)) if token(a) && token(b))
}

fn read_attachments(r: &mut Reader) -> Vec<Attachment> {
    let list = match r.take("attachments") {
        None => return Vec::new(),
        Some(Value::Array(list)) => list,
        Some(other) => {
            r.fail(
                "attachments",
                format!("must be an array, not {}", kind(&other)),
            );
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, item) in list.into_iter().enumerate() {
        let field = format!("attachments[{i}]");
        let Value::Object(mut obj) = item else {
            r.fail(field, "must be an object");
            continue;
        };
        let mut text = |name: &str, required: bool, r: &mut Reader| match obj.remove(name) {
            Some(Value::String(s)) => Some(s),
            None | Some(Value::Null) if !required => None,
            None | Some(Value::Null) => {
                r.fail(format!("{field}.{name}"), "is required");
                None
            }
            Some(other) => {
                r.fail(
                    format!("{field}.{name}"),
                    format!("must be a string, not {}", kind(&other)),
                );
                None
            }
        };
        let name = text("name", true, r);
        let content = text("content", true, r);
        let content_type = text("content_type", true, r);
        let content_id = text("content_id", false, r);
        if let Some(extra) = obj.keys().next() {
            r.fail(
                format!("{field}.{extra}"),
                "is not a field of an attachment (name, content, content_type, content_id)",
            );
            continue;
        }
        let (Some(name), Some(content), Some(content_type)) = (name, content, content_type) else {
            continue;
        };
        let mut ok = true;
        if name.trim().is_empty()
            || name.chars().count() > 255
            || name.chars().any(char::is_control)
        {
            r.fail(
                format!("{field}.name"),
                "must be a file name of 1-255 characters",
            );
            ok = false;
        }
        let content: String = content
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        if STANDARD.decode(&content).is_err() {
            r.fail(format!("{field}.content"), "must be base64");
            ok = false;
        }
        if !is_mime_type(&content_type) {
            r.fail(
                format!("{field}.content_type"),
                "must be a MIME type such as application/pdf",
            );
            ok = false;
        }
        if let Some(cid) = &content_id
            && (cid.is_empty() || !cid.bytes().all(|b| b.is_ascii_graphic()))
        {
            r.fail(
                format!("{field}.content_id"),
                "must be ASCII without spaces",
            );
            ok = false;
        }
        if ok {
            out.push(Attachment {
                name,
                content,
                content_type,
                content_id,
            });
        }
    }
    out
}

/// Why a job is not sent to its recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The address is on the suppression list.
    Suppressed(SuppressionReason),
    /// The subscriber's status stops this kind of mail.
    Status(SubscriberStatus),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Suppressed(reason) => write!(f, "the address is suppressed ({reason})"),
            Self::Status(status) => write!(f, "the subscriber is {status}"),
        }
    }
}

/// Whether a job of `email_type` skips a recipient standing as `standing` (`None`: unknown, active).
///
/// Marketing mail (broadcasts, sequences) goes only to active, unsuppressed subscribers.
/// Transactional mail (receipts, password resets) goes to unsubscribed addresses too, since an
/// unsubscribe withdraws consent to marketing only; it is stopped by a hard bounce, a spam complaint and
/// Postmark's inactive-recipient answer (see [`SuppressionReason::blocks_transactional`]): Postmark
/// itself refuses every stream of a server for an address that complained, so sending would only earn
/// a 406.
pub fn skip_reason(
    email_type: EmailType,
    standing: Option<&RecipientStanding>,
) -> Option<SkipReason> {
    let standing = standing?;
    if email_type.is_marketing() {
        if let Some(reason) = standing.suppression {
            return Some(SkipReason::Suppressed(reason));
        }
        return (standing.status != SubscriberStatus::Active)
            .then_some(SkipReason::Status(standing.status));
    }
    if let Some(reason) = standing.suppression.filter(|r| r.blocks_transactional()) {
        return Some(SkipReason::Suppressed(reason));
    }
    matches!(
        standing.status,
        SubscriberStatus::Deactivated | SubscriberStatus::Complained
    )
    .then_some(SkipReason::Status(standing.status))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn broadcast() -> Value {
        json!({
            "version": 1,
            "id": "job-1",
            "email_type": "broadcast",
            "from": "Shop <news@example.com>",
            "to": "Ada Lovelace <Ada@Example.org>",
            "subject": "Spring sale",
            "html_body": "<p>Hi</p>",
            "broadcast_id": "b-7",
            "subscriber_id": "s-9",
            "tag": "spring",
            "metadata": {"locale": "en"},
            "track_opens": true,
        })
    }

    fn parse(v: &Value) -> Result<SendJob, InvalidJob> {
        SendJob::parse(&v.to_string(), Some("sqs-message-1"))
    }

    fn fields(e: &InvalidJob) -> Vec<&str> {
        e.errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn reads_a_broadcast_job() {
        let job = parse(&broadcast()).unwrap();
        assert_eq!(job.id.as_str(), "job-1");
        assert_eq!(job.to.address.key(), "ada@example.org");
        assert_eq!(job.to.to_string(), "Ada Lovelace <Ada@Example.org>");
        assert_eq!(job.from.to_string(), "Shop <news@example.com>");
        assert_eq!(
            job.campaign,
            Some(Campaign {
                kind: CampaignKind::Broadcast,
                id: "b-7".into()
            })
        );
        assert!(job.track_opens && !job.track_clicks);
        let m = job.metadata();
        assert_eq!(m["job_id"], "job-1");
        assert_eq!(m["broadcast_id"], "b-7");
        assert_eq!(m["subscriber_id"], "s-9");
        assert_eq!(m["email_type"], "broadcast");
        assert_eq!(m["locale"], "en");
    }

    #[test]
    fn the_sqs_message_id_stands_in_for_a_missing_id() {
        let mut v = broadcast();
        v.as_object_mut().unwrap().remove("id");
        assert_eq!(parse(&v).unwrap().id.as_str(), "sqs-message-1");
        let e = SendJob::parse(&v.to_string(), None).unwrap_err();
        assert_eq!(fields(&e), ["id"]);
    }

    #[test]
    fn every_error_names_its_field() {
        let v = json!({
            "version": 2,
            "id": "a#b",
            "email_type": "newsletter",
            "from": "not an address",
            "to": ["a@example.com", "b@example.com"],
            "subject": "",
            "html_bdoy": "<p>typo</p>",
            "metadata": {"a_key_longer_than_twenty": "x", "n": 5},
            "headers": {"X-PM-Tag": "x", "Bad Name": "y", "X-Ok": "line\nbreak"},
            "track_clicks": "yes",
            "attachments": [{"name": "a.pdf", "content": "%%%", "content_type": "pdf"}],
        });
        let e = parse(&v).unwrap_err();
        let f = fields(&e);
        for want in [
            "html_bdoy",
            "version",
            "id",
            "email_type",
            "from",
            "to",
            "subject",
            "html_body",
            "metadata.a_key_longer_than_twenty",
            "metadata.n",
            "headers.X-PM-Tag",
            "headers.Bad Name",
            "headers.X-Ok",
            "track_clicks",
            "attachments[0].content",
            "attachments[0].content_type",
        ] {
            assert!(f.contains(&want), "{want} missing from {f:?}");
        }
        assert_eq!(e.id, None);
        let text = e.to_string();
        assert!(text.contains("html_bdoy: is not a field"), "{text}");
        assert!(text.contains("to: must be one address"), "{text}");
    }

    #[test]
    fn campaign_ids_go_with_their_type() {
        let mut v = broadcast();
        v.as_object_mut().unwrap().remove("broadcast_id");
        assert_eq!(fields(&parse(&v).unwrap_err()), ["broadcast_id"]);
        let mut v = broadcast();
        v["email_type"] = json!("sequence");
        let e = parse(&v).unwrap_err();
        assert!(fields(&e).contains(&"broadcast_id"), "{e}");
        assert_eq!(e.id.as_ref().map(JobId::as_str), Some("job-1"));
        let mut v = broadcast();
        v["email_type"] = json!("transactional");
        assert_eq!(fields(&parse(&v).unwrap_err()), ["broadcast_id"]);
        let mut v = broadcast();
        v["sequence_id"] = json!("s-1");
        assert_eq!(fields(&parse(&v).unwrap_err()), ["sequence_id"]);
    }

    #[test]
    fn needs_a_body_and_a_subject() {
        let mut v = broadcast();
        v.as_object_mut().unwrap().remove("html_body");
        let e = parse(&v).unwrap_err();
        assert_eq!(fields(&e), ["html_body", "track_opens"]);
        v["text_body"] = json!("Hi");
        v["track_opens"] = json!(false);
        assert!(parse(&v).is_ok());
        v.as_object_mut().unwrap().remove("subject");
        assert_eq!(fields(&parse(&v).unwrap_err()), ["subject"]);
    }

    #[test]
    fn not_json_and_not_an_object_are_body_errors() {
        for body in ["{", "[]", "\"x\"", ""] {
            let e = SendJob::parse(body, Some("m")).unwrap_err();
            assert_eq!(fields(&e), ["body"], "{body:?}");
        }
    }

    #[test]
    fn headers_as_object_or_array_and_lists_as_string_or_array() {
        let mut v = broadcast();
        v["headers"] = json!([{"name": "X-Campaign", "value": "spring"}]);
        v["cc"] = json!("Boss <boss@example.com>");
        v["bcc"] = json!(["audit@example.com", "\"Doe, Jane\" <jane@example.com>"]);
        v["reply_to"] = json!("help@example.com");
        let job = parse(&v).unwrap();
        assert_eq!(job.headers[0].name, "X-Campaign");
        assert_eq!(job.cc.len(), 1);
        assert_eq!(job.bcc[1].to_string(), "\"Doe, Jane\" <jane@example.com>");
        v["headers"] = json!({"X-Campaign": "spring", "X-PM-Bounce-Type": "HardBounce"});
        assert_eq!(parse(&v).unwrap().headers.len(), 2);
        v["headers"] = json!([{"name": "X-A", "value": "1", "extra": 2}]);
        assert_eq!(fields(&parse(&v).unwrap_err()), ["headers[0]"]);
    }

    #[test]
    fn trace_keys_win_over_the_producers_metadata() {
        let mut v = broadcast();
        v["metadata"] = json!({"Job_ID": "forged", "campaign": "x"});
        let m = parse(&v).unwrap().metadata();
        assert_eq!(m["job_id"], "job-1");
        assert!(!m.contains_key("Job_ID"));
        assert_eq!(m["campaign"], "x");
        assert!(m.keys().all(|k| k.len() <= MAX_METADATA_KEY_CHARS));
        v["metadata"] = json!({"Locale": "a", "locale": "b"});
        assert_eq!(parse(&v).unwrap_err().errors.len(), 1);
    }

    #[test]
    fn attachments_are_checked() {
        let mut v = broadcast();
        v["attachments"] = json!([{
            "name": "invoice.pdf",
            "content": "JVBER i0x\nLjQ=",
            "content_type": "application/pdf",
            "content_id": "cid:invoice"
        }]);
        let job = parse(&v).unwrap();
        assert_eq!(job.attachments[0].content, "JVBERi0xLjQ=");
        v["attachments"] =
            json!([{"name": "a", "content": "", "content_type": "text/plain", "size": 1}]);
        assert_eq!(fields(&parse(&v).unwrap_err()), ["attachments[0].size"]);
    }

    #[test]
    fn oversized_jobs_are_refused() {
        let mut v = broadcast();
        v["html_body"] = json!("x".repeat(MAX_MESSAGE_BYTES + 1));
        assert_eq!(fields(&parse(&v).unwrap_err()), ["body"]);
    }

    #[test]
    fn mailboxes_read_and_print_as_postmark_expects() {
        let m = Mailbox::parse("  \"O'Brien, Pat \\\"PJ\\\"\" <pat@example.ie> ").unwrap();
        assert_eq!(m.name.as_deref(), Some("O'Brien, Pat \"PJ\""));
        assert_eq!(
            m.to_string(),
            "\"O'Brien, Pat \\\"PJ\\\"\" <pat@example.ie>"
        );
        assert_eq!(Mailbox::parse(&m.to_string()).unwrap(), m);
        assert_eq!(Mailbox::parse("<a@b.co>").unwrap().to_string(), "a@b.co");
        assert_eq!(
            Mailbox::parse("Zoë <z@b.co>").unwrap().to_string(),
            "Zoë <z@b.co>"
        );
        for bad in [
            "Pat <pat@example.ie",
            "Pat \"x\" <a@b.co>",
            "a@b.co, c@d.co",
            "",
        ] {
            assert!(Mailbox::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn who_is_skipped() {
        use EmailType::*;
        let standing = |status, suppression| RecipientStanding {
            status,
            suppression,
        };
        let unsub = standing(
            SubscriberStatus::Unsubscribed,
            Some(SuppressionReason::Unsubscribed),
        );
        let complained = standing(
            SubscriberStatus::Complained,
            Some(SuppressionReason::SpamComplaint),
        );
        let bounced = standing(
            SubscriberStatus::Deactivated,
            Some(SuppressionReason::HardBounce),
        );
        let active = standing(SubscriberStatus::Active, None);
        assert_eq!(skip_reason(Broadcast, None), None);
        assert_eq!(skip_reason(Broadcast, Some(&active)), None);
        assert_eq!(
            skip_reason(Broadcast, Some(&unsub)),
            Some(SkipReason::Suppressed(SuppressionReason::Unsubscribed))
        );
        assert_eq!(skip_reason(Transactional, Some(&unsub)), None);
        assert_eq!(
            skip_reason(Transactional, Some(&complained)),
            Some(SkipReason::Suppressed(SuppressionReason::SpamComplaint))
        );
        assert_eq!(
            skip_reason(Sequence, Some(&bounced)),
            Some(SkipReason::Suppressed(SuppressionReason::HardBounce))
        );
        assert_eq!(
            skip_reason(
                Transactional,
                Some(&standing(SubscriberStatus::Deactivated, None))
            ),
            Some(SkipReason::Status(SubscriberStatus::Deactivated))
        );
        assert_eq!(
            skip_reason(
                Sequence,
                Some(&standing(SubscriberStatus::Unsubscribed, None))
            )
            .map(|r| r.to_string()),
            Some("the subscriber is unsubscribed".into())
        );
    }
}
