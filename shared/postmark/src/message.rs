//! The outgoing message, one model for the API client and the SMTP transport.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

/// Postmark accepts at most this many recipients per message (To, Cc and Bcc together, to be safe:
/// the field docs say 50 per field, `llms.txt` says 50 combined).
pub const MAX_RECIPIENTS: usize = 50;

/// One email, as Postmark's `POST /email` body (PascalCase JSON) and as the SMTP transport sends it.
///
/// Address fields are strings in Postmark's own format: `"John Doe <john@example.com>"`, several
/// addresses comma-separated. `From` must be a confirmed Sender Signature or on a verified domain.
///
/// ```
/// use postmark::{Email, TrackLinks};
///
/// let email = Email::new("Shop <shop@example.com>", "ada@example.org")
///     .subject("Your receipt")
///     .html_body("<p>Thanks!</p>")
///     .text_body("Thanks!")
///     .tag("receipt")
///     .metadata("job_id", "j-42")
///     .message_stream("outbound")
///     .track_opens(true)
///     .track_links(TrackLinks::HtmlAndText);
/// let json = serde_json::to_value(&email).unwrap();
/// assert_eq!(json["From"], "Shop <shop@example.com>");
/// assert_eq!(json["Metadata"]["job_id"], "j-42");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Email {
    /// Sender, e.g. `"Shop <shop@example.com>"`.
    pub from: String,
    /// Recipients, comma-separated. May be absent when Cc or Bcc carry the recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Carbon-copy recipients, comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cc: Option<String>,
    /// Blind-copy recipients, comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bcc: Option<String>,
    /// Reply-To, comma-separated; overrides the Sender Signature's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Subject line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// HTML body (at least one of the two bodies is required by Postmark).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_body: Option<String>,
    /// Plain-text body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_body: Option<String>,
    /// Extra headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<Header>,
    /// One tag per message (Postmark limit: 1000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// String metadata, returned in every webhook about this message (keys at most 20 characters).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Message stream ID; absent = the server's default transactional stream (`outbound`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_stream: Option<String>,
    /// Open tracking; absent = the server/stream setting (which, when on, cannot be turned off per email).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_opens: Option<bool>,
    /// Link tracking; absent = the server/stream setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_links: Option<TrackLinks>,
    /// Attachments (Postmark's limit: 10 MB per message, everything included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

impl Email {
    /// A message from `from` to `to` (each in Postmark's address format).
    pub fn new(from: impl Into<String>, to: impl Into<String>) -> Self {
        Self {
            from: from.into(),
            to: Some(to.into()),
            ..Self::default()
        }
    }

    /// Sets the subject.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Sets the HTML body.
    pub fn html_body(mut self, html: impl Into<String>) -> Self {
        self.html_body = Some(html.into());
        self
    }

    /// Sets the plain-text body.
    pub fn text_body(mut self, text: impl Into<String>) -> Self {
        self.text_body = Some(text.into());
        self
    }

    /// Sets the Cc recipients.
    pub fn cc(mut self, cc: impl Into<String>) -> Self {
        self.cc = Some(cc.into());
        self
    }

    /// Sets the Bcc recipients.
    pub fn bcc(mut self, bcc: impl Into<String>) -> Self {
        self.bcc = Some(bcc.into());
        self
    }

    /// Sets Reply-To.
    pub fn reply_to(mut self, reply_to: impl Into<String>) -> Self {
        self.reply_to = Some(reply_to.into());
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    /// Sets the tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Adds one metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Sets the message stream.
    pub fn message_stream(mut self, stream: impl Into<String>) -> Self {
        self.message_stream = Some(stream.into());
        self
    }

    /// Sets open tracking.
    pub fn track_opens(mut self, on: bool) -> Self {
        self.track_opens = Some(on);
        self
    }

    /// Sets link tracking.
    pub fn track_links(mut self, mode: TrackLinks) -> Self {
        self.track_links = Some(mode);
        self
    }

    /// Adds an attachment.
    pub fn attachment(mut self, attachment: Attachment) -> Self {
        self.attachments.push(attachment);
        self
    }

    /// Every recipient address of To, Cc and Bcc, split on commas (display names kept).
    pub fn recipients(&self) -> Vec<&str> {
        [&self.to, &self.cc, &self.bcc]
            .into_iter()
            .flatten()
            .flat_map(|field| split_addresses(field))
            .collect()
    }
}

/// Splits a comma-separated address list, keeping commas inside quoted display names.
pub(crate) fn split_addresses(list: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut start = 0;
    for (index, ch) in list.char_indices() {
        match ch {
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                parts.push(&list[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&list[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect()
}

/// A custom header (`{"Name": ..., "Value": ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Header {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: String,
}

impl Header {
    /// A header.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Link tracking mode (`TrackLinks` in the API, `X-PM-TrackLinks` over SMTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TrackLinks {
    /// No link tracking.
    None,
    /// Track links in both bodies (the account API's `HtmlAndTextTracking` reads as this).
    #[serde(alias = "HtmlAndTextTracking")]
    HtmlAndText,
    /// Track links in the HTML body only (also read from `HtmlOnlyTracking`).
    #[serde(alias = "HtmlOnlyTracking")]
    HtmlOnly,
    /// Track links in the text body only (also read from `TextOnlyTracking`).
    #[serde(alias = "TextOnlyTracking")]
    TextOnly,
}

impl TrackLinks {
    /// The value as Postmark writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::HtmlAndText => "HtmlAndText",
            Self::HtmlOnly => "HtmlOnly",
            Self::TextOnly => "TextOnly",
        }
    }
}

/// An attachment. `Content` is base64, as Postmark expects it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Attachment {
    /// File name.
    pub name: String,
    /// The content, base64-encoded.
    pub content: String,
    /// MIME type, e.g. `application/pdf` (Postmark validates it).
    pub content_type: String,
    /// For inline images: `cid:...` (ASCII, no spaces), referenced from the HTML body.
    #[serde(rename = "ContentID", default, skip_serializing_if = "Option::is_none")]
    pub content_id: Option<String>,
}

impl Attachment {
    /// An attachment from raw bytes (encodes them as base64).
    pub fn from_bytes(
        name: impl Into<String>,
        content_type: impl Into<String>,
        bytes: &[u8],
    ) -> Self {
        Self {
            name: name.into(),
            content: BASE64.encode(bytes),
            content_type: content_type.into(),
            content_id: None,
        }
    }

    /// Makes it an inline attachment referenced as `cid:<content_id>` from the HTML body.
    pub fn inline(mut self, content_id: impl Into<String>) -> Self {
        let id = content_id.into();
        self.content_id = Some(if id.starts_with("cid:") {
            id
        } else {
            format!("cid:{id}")
        });
        self
    }

    /// The decoded content.
    pub fn decoded(&self) -> Result<Vec<u8>, base64::DecodeError> {
        BASE64.decode(self.content.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serialises_in_postmark_shape() {
        let email = Email::new("a@example.com", "b@example.com, c@example.com")
            .subject("Hi")
            .text_body("Hello")
            .header("X-Job", "1")
            .track_links(TrackLinks::HtmlOnly)
            .attachment(Attachment::from_bytes("a.txt", "text/plain", b"abc").inline("img1"));
        assert_eq!(
            serde_json::to_value(&email).unwrap(),
            json!({
                "From": "a@example.com",
                "To": "b@example.com, c@example.com",
                "Subject": "Hi",
                "TextBody": "Hello",
                "Headers": [{"Name": "X-Job", "Value": "1"}],
                "TrackLinks": "HtmlOnly",
                "Attachments": [{"Name": "a.txt", "Content": "YWJj", "ContentType": "text/plain", "ContentID": "cid:img1"}],
            })
        );
    }

    #[test]
    fn splits_address_lists() {
        let email = Email::new("a@x", "\"Doe, John\" <j@x>, k@x")
            .cc("c@x")
            .bcc(" ");
        assert_eq!(
            email.recipients(),
            vec!["\"Doe, John\" <j@x>", "k@x", "c@x"]
        );
    }
}
