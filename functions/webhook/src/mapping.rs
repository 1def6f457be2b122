//! From Postmark's webhook payload to the domain's [`Event`].

use chrono::Utc;
use domain::EmailAddress;
use domain::automation::automated_reason;
use domain::dedup::{EventIdentity, postmark_event_key};
use domain::events::{BounceClass, ClientInfo, Event, EventKind, Source};
use domain::text::{MAX_DETAIL_CHARS, cap, cap_strings};
use domain::trace::MessageTrace;
use domain::tracking::{TokenSigner, TrackingTarget};
use postmark::webhook::{UserAgentPart, WebhookEvent};
use serde_json::{Value, json};

fn bounce_class(class: postmark::BounceClass) -> BounceClass {
    match class {
        postmark::BounceClass::Hard => BounceClass::Hard,
        postmark::BounceClass::Soft => BounceClass::Soft,
        postmark::BounceClass::Complaint => BounceClass::Complaint,
        postmark::BounceClass::Unsubscribe => BounceClass::Unsubscribe,
        postmark::BounceClass::AutoReply => BounceClass::AutoReply,
        postmark::BounceClass::Other => BounceClass::Other,
    }
}

fn part_name(part: Option<&UserAgentPart>) -> Option<String> {
    part.and_then(|p| p.name.clone().or_else(|| p.family.clone()))
        .filter(|n| !n.is_empty())
}

/// When native click tracking is on and Postmark tracks links too, Postmark's `OriginalLink` is our own
/// redirect; the link the person meant is inside its token.
fn real_link(link: &str, signer: Option<&TokenSigner>) -> String {
    let inner = url::Url::parse(link).ok().and_then(|u| {
        let token = u.path().strip_prefix("/t/c/")?.to_owned();
        match signer?.verify(&token).ok()? {
            TrackingTarget::Click { url, .. } => Some(url),
            TrackingTarget::Open { .. } => None,
        }
    });
    inner.unwrap_or_else(|| link.to_owned())
}

/// Maps a parsed webhook to an event. `trace_id` is `X-PM-Webhook-Trace-Id`; `body` the raw request body.
pub fn to_event(
    webhook: &WebhookEvent,
    trace_id: Option<&str>,
    body: &[u8],
    signer: Option<&TokenSigner>,
) -> Event {
    let (kind, client, detail, discriminator) = match webhook {
        WebhookEvent::Delivery(d) => (
            EventKind::Delivered,
            None,
            json!({ "details": d.details }),
            None,
        ),
        WebhookEvent::Bounce(b) => (
            EventKind::Bounced {
                class: if b.bounce_type() == postmark::BounceType::SMTPApiError {
                    BounceClass::Dropped
                } else {
                    bounce_class(b.class())
                },
                bounce_type: b.bounce_type().as_str().to_owned(),
            },
            None,
            json!({
                "type": b.bounce_type().as_str(),
                "description": b.description,
                "details": b.details,
                "bounce_id": b.id,
                "inactive": b.inactive,
            }),
            Some(format!(
                "{}|{}",
                b.id.unwrap_or_default(),
                b.bounce_type().as_str()
            )),
        ),
        WebhookEvent::SpamComplaint(b) => (
            EventKind::SpamComplaint,
            None,
            json!({ "bounce_id": b.id, "details": b.details }),
            Some(format!("{}", b.id.unwrap_or_default())),
        ),
        WebhookEvent::Open(o) => (
            EventKind::Opened,
            Some(ClientInfo {
                user_agent: o.user_agent.clone(),
                platform: o.platform.clone(),
                client: part_name(o.client.as_ref()),
                os: part_name(o.os.as_ref()),
                country: o.geo.as_ref().and_then(|g| g.country.clone()),
                city: o.geo.as_ref().and_then(|g| g.city.clone()),
            }),
            json!({ "first_open": o.first_open, "read_seconds": o.read_seconds }),
            None,
        ),
        WebhookEvent::Click(c) => {
            let link = real_link(c.original_link.as_deref().unwrap_or("unknown"), signer);
            (
                EventKind::Clicked { url: link.clone() },
                Some(ClientInfo {
                    user_agent: c.user_agent.clone(),
                    platform: c.platform.clone(),
                    client: part_name(c.client.as_ref()),
                    os: part_name(c.os.as_ref()),
                    country: c.geo.as_ref().and_then(|g| g.country.clone()),
                    city: c.geo.as_ref().and_then(|g| g.city.clone()),
                }),
                json!({ "link": link, "location": c.click_location }),
                Some(link),
            )
        }
        WebhookEvent::SubscriptionChange(s) => match s.suppress_sending {
            Some(suppress) => {
                let reason = s.suppression_reason.as_ref().map(|r| r.as_str().to_owned());
                let origin = s.origin.as_ref().map(|o| o.as_str().to_owned());
                (
                    EventKind::SubscriptionChanged {
                        suppress,
                        reason: reason.clone(),
                        origin: origin.clone(),
                    },
                    None,
                    json!({ "suppress_sending": suppress, "reason": reason, "origin": origin }),
                    Some(format!("{suppress}|{}", reason.as_deref().unwrap_or(""))),
                )
            }
            None => (
                EventKind::Unknown {
                    record_type: Some("SubscriptionChange".into()),
                },
                None,
                raw(webhook),
                None,
            ),
        },
        WebhookEvent::Unknown(_) => (
            EventKind::Unknown {
                record_type: webhook.record_type().map(str::to_owned),
            },
            None,
            raw(webhook),
            None,
        ),
    };
    let time = webhook.event_time();
    // The instant, in UTC: the same event read back from Postmark's API carries Eastern time.
    let timestamp = time.map(|t| {
        t.with_timezone(&Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    });
    let identity = EventIdentity {
        record_type: webhook.kind().as_str(),
        message_id: webhook.message_id(),
        recipient: webhook.recipient(),
        timestamp: timestamp.as_deref(),
        discriminator,
    };
    let metadata = webhook
        .metadata()
        .map(|m| m.to_string_map())
        .unwrap_or_default();
    let automated = match (&kind, &client) {
        (EventKind::Opened | EventKind::Clicked { .. }, Some(c)) => automated_reason(
            c.user_agent.as_deref(),
            matches!(kind, EventKind::Clicked { .. }),
            None,
        ),
        _ => None,
    };
    let mut detail = detail;
    cap_strings(&mut detail, MAX_DETAIL_CHARS);
    let client = client.map(|c| ClientInfo {
        user_agent: c.user_agent.map(|t| cap(&t, MAX_DETAIL_CHARS)),
        platform: c.platform.map(|t| cap(&t, MAX_DETAIL_CHARS)),
        client: c.client.map(|t| cap(&t, MAX_DETAIL_CHARS)),
        os: c.os.map(|t| cap(&t, MAX_DETAIL_CHARS)),
        country: c.country.map(|t| cap(&t, MAX_DETAIL_CHARS)),
        city: c.city.map(|t| cap(&t, MAX_DETAIL_CHARS)),
    });
    let kind = match kind {
        EventKind::Clicked { url } => EventKind::Clicked {
            url: cap(&url, MAX_DETAIL_CHARS),
        },
        EventKind::Bounced { class, bounce_type } => EventKind::Bounced {
            class,
            bounce_type: cap(&bounce_type, MAX_DETAIL_CHARS),
        },
        other => other,
    };
    Event {
        dedup_key: postmark_event_key(&identity, trace_id, body),
        recipient: webhook
            .recipient()
            .and_then(|r| EmailAddress::parse(r).ok()),
        message_id: webhook.message_id().map(str::to_owned),
        at: time.map(|t| t.with_timezone(&Utc)).unwrap_or_else(Utc::now),
        trace: MessageTrace::from_metadata(&metadata),
        stream: webhook.message_stream().map(str::to_owned),
        source: Source::Postmark,
        kind,
        client,
        automated,
        detail,
    }
}

fn raw(webhook: &WebhookEvent) -> Value {
    serde_json::to_value(webhook).unwrap_or(Value::Null)
}
