//! Keys that identify one webhook event across Postmark's redeliveries.
//!
//! Postmark may post the same event more than once (retries after a timeout or a 5xx, or a redelivery).
//! The key is built from the event itself, so that every copy maps to one key whatever its headers:
//! record type, MessageID, recipient, the event's timestamp, and what distinguishes events of one message
//! (the bounce's ID and Type, the clicked link, the suppression flag). Only when the payload lacks the
//! MessageID, the recipient or the timestamp does the key fall back to Postmark's `X-PM-Webhook-Trace-Id`
//! (stable across retries of one delivery), and without that to a digest of the body.

use sha2::{Digest, Sha256};

/// The parts of an event that identify it.
#[derive(Debug, Clone, Default)]
pub struct EventIdentity<'a> {
    pub record_type: &'a str,
    pub message_id: Option<&'a str>,
    pub recipient: Option<&'a str>,
    /// The event's own timestamp as Postmark sent it.
    pub timestamp: Option<&'a str>,
    /// What else distinguishes events of one message: bounce ID and Type, link, suppression flag.
    pub discriminator: Option<String>,
}

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The dedup key of a Postmark webhook event.
pub fn postmark_event_key(id: &EventIdentity<'_>, trace_id: Option<&str>, body: &[u8]) -> String {
    match (id.message_id, id.recipient, id.timestamp) {
        (Some(m), Some(r), Some(t)) => format!(
            "pm:{}",
            digest(&[
                id.record_type,
                m,
                &r.to_ascii_lowercase(),
                t,
                id.discriminator.as_deref().unwrap_or(""),
            ])
        ),
        _ => match trace_id.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => format!("trace:{}", digest(&[t])),
            None => format!("body:{}", hex_digest(body)),
        },
    }
}

/// The key of a native open or click: every hit is an action of its own (there are no redeliveries), so
/// the key only has to be unique.
pub fn native_event_key(nonce: &str) -> String {
    format!("native:{nonce}")
}

/// Whether every copy of the event with this key also carries the same timestamp: true for keys built
/// from the payload's own timestamp and for native actions (never delivered twice). Such an event's
/// activity entry, keyed by time and dedup key, can serve as its dedup record; an event whose time is
/// the time of arrival needs a record of its own.
pub fn key_fixes_time(key: &str) -> bool {
    key.starts_with("pm:") || key.starts_with("native:")
}

fn hex_digest(body: &[u8]) -> String {
    Sha256::digest(body)[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id<'a>(t: &'a str) -> EventIdentity<'a> {
        EventIdentity {
            record_type: "Open",
            message_id: Some("m-1"),
            recipient: Some("A@Example.com"),
            timestamp: Some(t),
            discriminator: None,
        }
    }

    #[test]
    fn copies_of_one_event_share_a_key_and_other_events_do_not() {
        let a = postmark_event_key(&id("2026-01-01T00:00:00Z"), Some("trace-1"), b"x");
        let b = postmark_event_key(&id("2026-01-01T00:00:00Z"), Some("trace-2"), b"y");
        assert_eq!(
            a, b,
            "the headers do not matter when the payload identifies the event"
        );
        let later = postmark_event_key(&id("2026-01-01T00:00:01Z"), Some("trace-1"), b"x");
        assert_ne!(a, later);
        let mut click = id("2026-01-01T00:00:00Z");
        click.discriminator = Some("https://a.example/".into());
        assert_ne!(postmark_event_key(&click, None, b""), a);
    }

    #[test]
    fn incomplete_payloads_fall_back_to_the_trace_id_then_the_body() {
        let bare = EventIdentity {
            record_type: "Unknown",
            ..EventIdentity::default()
        };
        let t1 = postmark_event_key(&bare, Some("trace-1"), b"x");
        assert_eq!(
            t1,
            postmark_event_key(&bare, Some("trace-1"), b"other body")
        );
        assert!(t1.starts_with("trace:"));
        assert!(!key_fixes_time(&t1));
        assert!(key_fixes_time(&postmark_event_key(
            &id("2026-01-01T00:00:00Z"),
            None,
            b""
        )));
        assert!(key_fixes_time(&native_event_key("n")));
        let b1 = postmark_event_key(&bare, None, b"body");
        assert_eq!(b1, postmark_event_key(&bare, Some("  "), b"body"));
        assert_ne!(b1, postmark_event_key(&bare, None, b"body2"));
    }
}
