//! Just enough MIME to read a submitted message the way Postmark does: the headers it cares about
//! (`From`, `To`, `Cc`, `Reply-To`, `Subject` and the `X-PM-*` ones), the text and HTML bodies (also
//! inside simple multipart messages) and the attachments.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use postmark::smtp::{
    HEADER_MESSAGE_STREAM, HEADER_METADATA_PREFIX, HEADER_TAG, HEADER_TRACK_LINKS,
    HEADER_TRACK_OPENS,
};
use postmark::{Attachment, Email, Header, TrackLinks};

use crate::address;

/// Headers that are part of the message itself, not custom ones worth listing.
const STANDARD_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "content-id",
    "received",
    "return-path",
    "sender",
    "user-agent",
    "x-mailer",
];

/// The message as an [`Email`]; `envelope` holds the RCPT TO addresses (the ones not in To or Cc
/// become Bcc) and `mail_from` the MAIL FROM address (used when there is no `From` header).
pub(crate) fn to_email(raw: &[u8], mail_from: &str, envelope: &[String]) -> Email {
    let (headers, body) = split_message(raw);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    };
    let mut email = Email {
        from: header("From").unwrap_or_else(|| mail_from.to_owned()),
        to: header("To"),
        cc: header("Cc"),
        reply_to: header("Reply-To"),
        subject: header("Subject"),
        ..Email::default()
    };
    let listed: Vec<String> = email
        .recipients()
        .into_iter()
        .filter_map(address::parse_mailbox)
        .map(address::key)
        .collect();
    let hidden: Vec<&str> = envelope
        .iter()
        .filter(|recipient| !listed.contains(&address::key(recipient)))
        .map(String::as_str)
        .collect();
    if !hidden.is_empty() {
        email.bcc = Some(hidden.join(", "));
    }
    for (name, value) in &headers {
        if name.eq_ignore_ascii_case(HEADER_MESSAGE_STREAM) {
            email.message_stream = Some(value.trim().to_owned());
        } else if name.eq_ignore_ascii_case(HEADER_TAG) {
            email.tag = Some(value.trim().to_owned());
        } else if name.eq_ignore_ascii_case(HEADER_TRACK_OPENS) {
            email.track_opens = Some(value.trim().eq_ignore_ascii_case("true"));
        } else if name.eq_ignore_ascii_case(HEADER_TRACK_LINKS) {
            email.track_links = serde_json::from_value::<TrackLinks>(value.trim().into()).ok();
        } else if name.len() > HEADER_METADATA_PREFIX.len()
            && name[..HEADER_METADATA_PREFIX.len()].eq_ignore_ascii_case(HEADER_METADATA_PREFIX)
        {
            // Postmark keeps a repeated key by appending a number to it.
            let key = &name[HEADER_METADATA_PREFIX.len()..];
            let mut unique = key.to_owned();
            let mut number = 1;
            while email.metadata.contains_key(&unique) {
                unique = format!("{key}{number}");
                number += 1;
            }
            email.metadata.insert(unique, value.trim().to_owned());
        } else if name.eq_ignore_ascii_case("X-PM-KeepID") {
        } else if !STANDARD_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            email.headers.push(Header::new(name.clone(), value.clone()));
        }
    }
    let content_type = header("Content-Type").unwrap_or_else(|| "text/plain".to_owned());
    let encoding = header("Content-Transfer-Encoding");
    let disposition = header("Content-Disposition");
    let content_id = header("Content-ID");
    read_part(
        &mut email,
        Part {
            content_type: &content_type,
            encoding: encoding.as_deref(),
            disposition: disposition.as_deref(),
            content_id: content_id.as_deref(),
            body,
        },
        0,
    );
    email
}

struct Part<'a> {
    content_type: &'a str,
    encoding: Option<&'a str>,
    disposition: Option<&'a str>,
    content_id: Option<&'a str>,
    body: &'a [u8],
}

fn read_part(email: &mut Email, part: Part<'_>, depth: usize) {
    let media = part
        .content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media.starts_with("multipart/") && depth < 8 {
        let Some(boundary) = parameter(part.content_type, "boundary") else {
            return;
        };
        for raw in split_multipart(part.body, &boundary) {
            let (headers, body) = split_message(raw);
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(name))
                    .map(|(_, value)| value.clone())
            };
            let content_type = header("Content-Type").unwrap_or_else(|| "text/plain".to_owned());
            let encoding = header("Content-Transfer-Encoding");
            let disposition = header("Content-Disposition");
            let content_id = header("Content-ID");
            read_part(
                email,
                Part {
                    content_type: &content_type,
                    encoding: encoding.as_deref(),
                    disposition: disposition.as_deref(),
                    content_id: content_id.as_deref(),
                    body,
                },
                depth + 1,
            );
        }
        return;
    }
    let attached = part.disposition.is_some_and(|disposition| {
        disposition
            .trim()
            .to_ascii_lowercase()
            .starts_with("attachment")
    });
    let decoded = decode_transfer(part.body, part.encoding);
    match media.as_str() {
        "text/plain" if !attached && email.text_body.is_none() => {
            email.text_body = Some(String::from_utf8_lossy(&decoded).into_owned());
        }
        "text/html" if !attached && email.html_body.is_none() => {
            email.html_body = Some(String::from_utf8_lossy(&decoded).into_owned());
        }
        _ => {
            let name = part
                .disposition
                .and_then(|disposition| parameter(disposition, "filename"))
                .or_else(|| parameter(part.content_type, "name"))
                .unwrap_or_else(|| "attachment".to_owned());
            let mut attachment = Attachment::from_bytes(name, media, &decoded);
            if let Some(id) = part.content_id {
                attachment =
                    attachment.inline(id.trim().trim_start_matches('<').trim_end_matches('>'));
            }
            email.attachments.push(attachment);
        }
    }
}

/// Headers (unfolded, encoded words decoded) and the body.
fn split_message(raw: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    let (head, body) = match find(raw, b"\r\n\r\n") {
        Some(at) => (&raw[..at], &raw[at + 4..]),
        None => match find(raw, b"\n\n") {
            Some(at) => (&raw[..at], &raw[at + 2..]),
            None => (raw, &raw[raw.len()..]),
        },
    };
    let text = String::from_utf8_lossy(head);
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    for (_, value) in &mut headers {
        *value = decode_words(value);
    }
    (headers, body)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// A parameter of a header value: `boundary="abc"` in `multipart/mixed; boundary="abc"`.
fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|param| {
        let (key, raw) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| raw.trim().trim_matches('"').to_owned())
    })
}

/// The parts between `--boundary` lines (the preamble and epilogue left out).
fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut offset = 0;
    for line in body.split_inclusive(|byte| *byte == b'\n') {
        let trimmed = line.strip_suffix(b"\n").unwrap_or(line);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        if trimmed.starts_with(delimiter.as_bytes()) {
            if let Some(from) = start {
                let mut end = offset;
                // The line break before a delimiter belongs to the delimiter.
                if body[..end].ends_with(b"\r\n") {
                    end -= 2;
                } else if body[..end].ends_with(b"\n") {
                    end -= 1;
                }
                parts.push(&body[from..end.max(from)]);
            }
            if trimmed[delimiter.len()..].starts_with(b"--") {
                return parts;
            }
            start = Some(offset + line.len());
        }
        offset += line.len();
    }
    parts
}

fn decode_transfer(body: &[u8], encoding: Option<&str>) -> Vec<u8> {
    match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
        Some("base64") => {
            let compact: Vec<u8> = body
                .iter()
                .copied()
                .filter(|byte| !byte.is_ascii_whitespace())
                .collect();
            BASE64.decode(compact).unwrap_or_else(|_| body.to_vec())
        }
        Some("quoted-printable") => decode_quoted_printable(body, false),
        _ => body.to_vec(),
    }
}

/// Quoted-printable (RFC 2045); `underscores` for the Q encoding of headers (RFC 2047).
fn decode_quoted_printable(input: &[u8], underscores: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut index = 0;
    while index < input.len() {
        match input[index] {
            b'=' => {
                let rest = &input[index + 1..];
                if rest.starts_with(b"\r\n") {
                    index += 3;
                } else if rest.starts_with(b"\n") {
                    index += 2;
                } else if let Some(byte) = rest
                    .get(..2)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                {
                    out.push(byte);
                    index += 3;
                } else {
                    out.push(b'=');
                    index += 1;
                }
            }
            b'_' if underscores => {
                out.push(b' ');
                index += 1;
            }
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    out
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`); text between two encoded
/// words that is only whitespace is dropped, as the RFC says.
fn decode_words(value: &str) -> String {
    if !value.contains("=?") {
        return value.to_owned();
    }
    let mut out = String::new();
    let mut rest = value;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, candidate) = rest.split_at(start);
        let Some(word) = encoded_word(candidate) else {
            out.push_str(before);
            out.push_str("=?");
            rest = &candidate[2..];
            last_was_word = false;
            continue;
        };
        if !(last_was_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        out.push_str(&word.0);
        rest = &candidate[word.1..];
        last_was_word = true;
    }
    out.push_str(rest);
    out
}

/// One encoded word at the start of `text`: its decoded text and its length.
fn encoded_word(text: &str) -> Option<(String, usize)> {
    let inner = text.strip_prefix("=?")?;
    let (_charset, after) = inner.split_once('?')?;
    let (encoding, after) = after.split_once('?')?;
    let end = after.find("?=")?;
    let payload = &after[..end];
    let bytes = match encoding.to_ascii_lowercase().as_str() {
        "b" => BASE64.decode(payload).ok()?,
        "q" => decode_quoted_printable(payload.as_bytes(), true),
        _ => return None,
    };
    let consumed = 2 + (inner.len() - after.len()) + end + 2;
    Some((String::from_utf8_lossy(&bytes).into_owned(), consumed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_multipart_message_with_postmark_headers() {
        let raw = b"From: Shop <shop@example.com>\r\n\
To: ada@example.org\r\n\
Subject: =?utf-8?b?SGVsbG8g8J+Riw==?=\r\n\
X-PM-Message-Stream: broadcast\r\n\
X-PM-Tag: welcome\r\n\
X-PM-Metadata-job_id: j-1\r\n\
X-PM-Metadata-job_id: j-2\r\n\
X-PM-TrackOpens: true\r\n\
X-PM-TrackLinks: HtmlOnly\r\n\
X-Campaign: spring\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
preamble\r\n\
--outer\r\n\
Content-Type: multipart/alternative; boundary=inner\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Hi Ada =E2=80=94 welcome=\r\n\
!\r\n\
--inner\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
PHA+SGk8L3A+\r\n\
--inner--\r\n\
--outer\r\n\
Content-Type: application/pdf; name=a.pdf\r\n\
Content-Disposition: attachment; filename=\"a.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERg==\r\n\
--outer--\r\n";
        let email = to_email(
            raw,
            "bounces@example.com",
            &["ada@example.org".into(), "hidden@example.net".into()],
        );
        assert_eq!(email.from, "Shop <shop@example.com>");
        assert_eq!(email.to.as_deref(), Some("ada@example.org"));
        assert_eq!(email.bcc.as_deref(), Some("hidden@example.net"));
        assert_eq!(email.subject.as_deref(), Some("Hello 👋"));
        assert_eq!(email.message_stream.as_deref(), Some("broadcast"));
        assert_eq!(email.tag.as_deref(), Some("welcome"));
        assert_eq!(
            email.metadata.get("job_id").map(String::as_str),
            Some("j-1")
        );
        assert_eq!(
            email.metadata.get("job_id1").map(String::as_str),
            Some("j-2")
        );
        assert_eq!(email.track_opens, Some(true));
        assert_eq!(email.track_links, Some(TrackLinks::HtmlOnly));
        assert_eq!(email.text_body.as_deref(), Some("Hi Ada — welcome!"));
        assert_eq!(email.html_body.as_deref(), Some("<p>Hi</p>"));
        assert_eq!(email.headers, vec![Header::new("X-Campaign", "spring")]);
        assert_eq!(email.attachments.len(), 1);
        assert_eq!(email.attachments[0].name, "a.pdf");
        assert_eq!(email.attachments[0].decoded().unwrap(), b"%PDF");
    }

    #[test]
    fn a_plain_message_is_its_text_body() {
        let email = to_email(
            b"Subject: hi\n\nline one\nline two\n",
            "a@example.com",
            &["b@example.com".into()],
        );
        assert_eq!(email.from, "a@example.com");
        assert_eq!(email.text_body.as_deref(), Some("line one\nline two\n"));
        assert_eq!(email.bcc.as_deref(), Some("b@example.com"));
    }

    #[test]
    fn decodes_encoded_words() {
        assert_eq!(
            decode_words("=?UTF-8?Q?caf=C3=A9_au_lait?= ok"),
            "café au lait ok"
        );
        assert_eq!(decode_words("=?utf-8?b?YQ==?= =?utf-8?b?Yg==?="), "ab");
        assert_eq!(decode_words("plain =? text"), "plain =? text");
    }
}
