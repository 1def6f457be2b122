//! [`Email`] to a MIME message with Postmark's `X-PM-*` headers.

use lettre::Message;
use lettre::message::header::{self, ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment as MimeAttachment, Mailbox, Mailboxes, MultiPart, SinglePart};

use super::SmtpError;
use crate::message::{Attachment, Email};

/// `X-PM-Message-Stream`: the stream (absent = the server's default transactional stream).
pub const HEADER_MESSAGE_STREAM: &str = "X-PM-Message-Stream";
/// `X-PM-Tag`.
pub const HEADER_TAG: &str = "X-PM-Tag";
/// `X-PM-Metadata-<key>`: one header per metadata entry.
pub const HEADER_METADATA_PREFIX: &str = "X-PM-Metadata-";
/// `X-PM-TrackOpens`: `true` or `false`.
pub const HEADER_TRACK_OPENS: &str = "X-PM-TrackOpens";
/// `X-PM-TrackLinks`: `None`, `HtmlAndText`, `HtmlOnly` or `TextOnly`.
pub const HEADER_TRACK_LINKS: &str = "X-PM-TrackLinks";

/// Builds the MIME message: addresses parsed, bodies as text/html alternatives, attachments (inline
/// ones under multipart/related), custom headers and the Postmark headers.
pub(crate) fn build_message(email: &Email) -> Result<Message, SmtpError> {
    let from: Mailbox = email
        .from
        .trim()
        .parse()
        .map_err(|e| invalid(format!("the From address '{}' is not valid", email.from), e))?;
    let mut builder = Message::builder().from(from);
    if let Some(to) = addresses("To", email.to.as_deref())? {
        builder = builder.mailbox(header::To::from(to));
    }
    if let Some(cc) = addresses("Cc", email.cc.as_deref())? {
        builder = builder.mailbox(header::Cc::from(cc));
    }
    if let Some(bcc) = addresses("Bcc", email.bcc.as_deref())? {
        builder = builder.mailbox(header::Bcc::from(bcc));
    }
    if let Some(reply_to) = addresses("Reply-To", email.reply_to.as_deref())? {
        builder = builder.mailbox(header::ReplyTo::from(reply_to));
    }
    if let Some(subject) = &email.subject {
        builder = builder.subject(subject.clone());
    }

    for custom in &email.headers {
        builder = builder.raw_header(raw_header(&custom.name, &custom.value)?);
    }
    if let Some(stream) = non_empty(email.message_stream.as_deref()) {
        builder = builder.raw_header(raw_header(HEADER_MESSAGE_STREAM, stream)?);
    }
    if let Some(tag) = non_empty(email.tag.as_deref()) {
        builder = builder.raw_header(raw_header(HEADER_TAG, tag)?);
    }
    for (key, value) in &email.metadata {
        builder = builder.raw_header(raw_header(
            &format!("{HEADER_METADATA_PREFIX}{key}"),
            value,
        )?);
    }
    if let Some(track_opens) = email.track_opens {
        let value = if track_opens { "true" } else { "false" };
        builder = builder.raw_header(raw_header(HEADER_TRACK_OPENS, value)?);
    }
    if let Some(track_links) = email.track_links {
        builder = builder.raw_header(raw_header(HEADER_TRACK_LINKS, track_links.as_str())?);
    }

    let body = body_part(email);
    let (inline, attached): (Vec<&Attachment>, Vec<&Attachment>) = email
        .attachments
        .iter()
        .partition(|attachment| attachment.content_id.is_some());
    let built = if inline.is_empty() && attached.is_empty() {
        match body {
            Body::Single(part) => builder.singlepart(part),
            Body::Multi(part) => builder.multipart(part),
        }
    } else {
        let mut content = match body {
            Body::Single(part) => MultiPart::related().singlepart(part),
            Body::Multi(part) => MultiPart::related().multipart(part),
        };
        for attachment in inline {
            content = content.singlepart(attachment_part(attachment)?);
        }
        let mut mixed = MultiPart::mixed().multipart(content);
        for attachment in attached {
            mixed = mixed.singlepart(attachment_part(attachment)?);
        }
        builder.multipart(mixed)
    };
    built.map_err(|e| invalid("the message cannot be built".to_owned(), e))
}

enum Body {
    Single(SinglePart),
    Multi(MultiPart),
}

fn body_part(email: &Email) -> Body {
    match (&email.text_body, &email.html_body) {
        (Some(text), Some(html)) => Body::Multi(MultiPart::alternative_plain_html(
            text.clone(),
            html.clone(),
        )),
        (None, Some(html)) => Body::Single(SinglePart::html(html.clone())),
        (Some(text), None) => Body::Single(SinglePart::plain(text.clone())),
        (None, None) => Body::Single(SinglePart::plain(String::new())),
    }
}

fn attachment_part(attachment: &Attachment) -> Result<SinglePart, SmtpError> {
    let bytes = attachment.decoded().map_err(|e| {
        invalid(
            format!(
                "the content of attachment '{}' is not valid base64",
                attachment.name
            ),
            e,
        )
    })?;
    let content_type = ContentType::parse(&attachment.content_type).map_err(|e| {
        invalid(
            format!(
                "the content type '{}' of attachment '{}' is not a valid MIME type",
                attachment.content_type, attachment.name
            ),
            e,
        )
    })?;
    let part = match &attachment.content_id {
        Some(content_id) => {
            let id = content_id.strip_prefix("cid:").unwrap_or(content_id);
            MimeAttachment::new_inline_with_name(id.to_owned(), attachment.name.clone())
        }
        None => MimeAttachment::new(attachment.name.clone()),
    };
    Ok(part.body(bytes, content_type))
}

fn addresses(field: &str, list: Option<&str>) -> Result<Option<Mailboxes>, SmtpError> {
    let Some(list) = non_empty(list) else {
        return Ok(None);
    };
    let mailboxes: Mailboxes = list
        .parse()
        .map_err(|e| invalid(format!("the {field} addresses '{list}' are not valid"), e))?;
    Ok(Some(mailboxes))
}

fn raw_header(name: &str, value: &str) -> Result<HeaderValue, SmtpError> {
    let valid_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    if !valid_name {
        return Err(SmtpError::InvalidMessage {
            reason: format!("'{name}' is not a valid header name"),
            source: None,
        });
    }
    if value.contains(['\r', '\n']) {
        return Err(SmtpError::InvalidMessage {
            reason: format!("the value of header '{name}' contains a line break"),
            source: None,
        });
    }
    let name = HeaderName::new_from_ascii(name.to_owned())
        .map_err(|e| invalid(format!("'{name}' is not a valid header name"), e))?;
    Ok(HeaderValue::new(name, value.to_owned()))
}

fn non_empty(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|text| !text.is_empty())
}

fn invalid<E>(reason: String, source: E) -> SmtpError
where
    E: std::error::Error + Send + Sync + 'static,
{
    SmtpError::InvalidMessage {
        reason,
        source: Some(Box::new(source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::TrackLinks;

    fn formatted(email: &Email) -> String {
        String::from_utf8(build_message(email).expect("builds").formatted()).expect("utf-8")
    }

    #[test]
    fn carries_the_postmark_headers() {
        let email = Email::new(
            "Shop <shop@example.com>",
            "a@example.org, \"B, C\" <b@example.org>",
        )
        .bcc("hidden@example.org")
        .subject("Hi")
        .text_body("Hello")
        .html_body("<p>Hello</p>")
        .tag("welcome")
        .metadata("job_id", "j-1")
        .message_stream("broadcast")
        .track_opens(true)
        .track_links(TrackLinks::HtmlAndText)
        .header("X-Custom", "yes");
        let message = build_message(&email).expect("builds");
        assert_eq!(message.envelope().to().len(), 3);
        let text = String::from_utf8(message.formatted()).unwrap();
        for line in [
            "X-PM-Message-Stream: broadcast",
            "X-PM-Tag: welcome",
            "X-PM-Metadata-job_id: j-1",
            "X-PM-TrackOpens: true",
            "X-PM-TrackLinks: HtmlAndText",
            "X-Custom: yes",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert!(
            !text.contains("hidden@example.org"),
            "Bcc must not be in the headers"
        );
    }

    #[test]
    fn refuses_header_injection_and_bad_addresses() {
        let injected = Email::new("a@example.com", "b@example.com").header("X-A", "1\r\nBcc: x@y");
        assert!(matches!(
            build_message(&injected),
            Err(SmtpError::InvalidMessage { .. })
        ));
        let bad_from = Email::new("not an address", "b@example.com");
        assert!(matches!(
            build_message(&bad_from),
            Err(SmtpError::InvalidMessage { .. })
        ));
        let bad_meta = Email::new("a@example.com", "b@example.com").metadata("a key", "v");
        assert!(matches!(
            build_message(&bad_meta),
            Err(SmtpError::InvalidMessage { .. })
        ));
    }

    #[test]
    fn attachments_become_parts() {
        let email = Email::new("a@example.com", "b@example.com")
            .html_body("<img src=\"cid:logo\">")
            .attachment(Attachment::from_bytes("logo.png", "image/png", b"png").inline("logo"))
            .attachment(Attachment::from_bytes("a.txt", "text/plain", b"hello"));
        let text = formatted(&email);
        assert!(text.contains("multipart/mixed"), "{text}");
        assert!(text.contains("multipart/related"), "{text}");
        assert!(text.contains("Content-ID: <logo>"), "{text}");
        assert!(text.contains("filename=\"a.txt\""), "{text}");
    }
}
