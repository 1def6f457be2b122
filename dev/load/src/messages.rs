//! The messages of the send loads, the same for every client compared: a broadcast of a short
//! newsletter (about 2 KB of HTML, five links) to `reader{i}@example.org`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

pub const FROM: &str = "The Corner Bookshop <news@example.com>";
pub const SENDER_DOMAIN: &str = "example.com";
pub const BROADCAST: &str = "load-broadcast";

pub fn recipient(i: usize) -> String {
    format!("reader{i}@example.org")
}

pub fn subject(i: usize) -> String {
    format!("Spring has sprung: twelve new titles (#{i})")
}

pub fn html(i: usize) -> String {
    format!(
        "<html><body style=\"font-family:Georgia,serif\"><h1>Spring has sprung, reader {i}!</h1>\
         <p>Twelve new titles arrived this week. See <a href=\"https://bookshop.example.com/new?utm_source=newsletter&amp;utm_medium=email\">what's new</a>, \
         browse <a href=\"https://bookshop.example.com/sale?utm_source=newsletter\">the sale</a> or read \
         <a href=\"https://blog.example.com/spring-2026\">the booksellers' picks</a>.</p>\
         <p>A quiet, funny and generous novel about a family that opens a bookshop in a town that did not ask \
         for one. Our booksellers read it in one sitting and have been pressing it into customers' hands ever \
         since. Signed copies in May; <a href=\"https://bookshop.example.com/events\">book a place</a>.</p>\
         <p style=\"font-size:12px;color:#777\">The Corner Bookshop, 1 High Street, Oxford. \
         <a href=\"https://bookshop.example.com/preferences?s={i}\">Preferences</a> \
         <a href=\"mailto:hello@example.com\">Write to us</a></p></body></html>"
    )
}

pub fn text(i: usize) -> String {
    format!("Spring has sprung, reader {i}! What's new: https://bookshop.example.com/new")
}

pub fn job_id(i: usize) -> String {
    format!("load-{i}")
}

/// The send job for message `i` (native open and click tracking on, as a broadcast would ask).
pub fn job(i: usize) -> Value {
    json!({
        "version": 1,
        "id": job_id(i),
        "email_type": "broadcast",
        "broadcast_id": BROADCAST,
        "subscriber_id": format!("sub-{i}"),
        "from": FROM,
        "to": recipient(i),
        "subject": subject(i),
        "html_body": html(i),
        "text_body": text(i),
        "tag": "spring-2026",
        "track_opens": true,
        "track_clicks": true,
    })
}

/// Message `i` as a Postmark API message, with the metadata the sender attaches.
pub fn email(i: usize) -> postmark::Email {
    postmark::Email {
        from: FROM.to_owned(),
        to: Some(recipient(i)),
        subject: Some(subject(i)),
        html_body: Some(html(i)),
        text_body: Some(text(i)),
        tag: Some("spring-2026".to_owned()),
        metadata: BTreeMap::from([
            ("job_id".to_owned(), job_id(i)),
            ("broadcast_id".to_owned(), BROADCAST.to_owned()),
            ("subscriber_id".to_owned(), format!("sub-{i}")),
            ("email_type".to_owned(), "broadcast".to_owned()),
        ]),
        message_stream: Some("broadcast".to_owned()),
        ..postmark::Email::default()
    }
}

/// User plus system CPU seconds this process has used so far (from `/proc/self/stat`, 10 ms ticks).
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line; the first after the name is field 3.
    (ticks(11) + ticks(12)) / 100.0
}
