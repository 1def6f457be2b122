//! The path every message takes, from the API or SMTP: Postmark's checks, acceptance, what happens to
//! each recipient (delivery, fake bounce, spam complaint) and the webhooks that tell about it. Also the
//! other changes that post webhooks: suppressions by hand, bounce reactivation, opens and clicks.

use std::collections::BTreeMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use postmark::webhook::{
    Bounce, Click, Delivery, Geo, Open, SubscriptionChange, SuppressionOrigin, SuppressionReason,
    UserAgentPart, WebhookEvent,
};
use postmark::{BounceClass, BounceType, Email, Metadata, SendReceipt, TrackLinks};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::address;
use crate::config::{BOUNCE_TESTING_DOMAIN, Triggers, WebhookConfig};
use crate::state::{
    AttachmentInfo, BounceRecord, RecipientOutcome, Server, Sim, StoredMessage, SuppressionEntry,
    Via, lock, now,
};

/// Postmark's limit on recipients per message (To, Cc and Bcc together).
pub(crate) const MAX_RECIPIENTS: usize = postmark::MAX_RECIPIENTS;
/// Postmark's limit on one message, everything included.
pub(crate) const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
/// Postmark's limit on a batch request.
pub(crate) const MAX_BATCH_BYTES: usize = 50 * 1024 * 1024;
/// Postmark's limit on messages per batch.
pub(crate) const MAX_BATCH_MESSAGES: usize = 500;
const MAX_METADATA_KEY_CHARS: usize = 20;
const MAX_TAG_CHARS: usize = 1000;

/// Postmark said no to a request or to one message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub http_status: u16,
    pub error_code: i64,
    pub message: String,
}

impl Rejection {
    pub fn new(http_status: u16, error_code: i64, message: impl Into<String>) -> Self {
        Self {
            http_status,
            error_code,
            message: message.into(),
        }
    }

    /// ErrorCode 300, "Invalid email request", with HTTP 422.
    fn invalid(message: impl Into<String>) -> Self {
        Self::new(422, 300, message)
    }

    /// The `{ErrorCode, Message}` body.
    pub fn receipt(&self) -> SendReceipt {
        SendReceipt {
            error_code: Some(self.error_code).filter(|code| *code != 0),
            message: Some(self.message.clone()),
            ..SendReceipt::default()
        }
    }
}

/// One message as it arrives.
pub(crate) struct Incoming {
    pub email: Email,
    pub via: Via,
    /// Its size as submitted (JSON object or MIME message), for the 10 MB limit.
    pub size: usize,
}

struct Checked {
    email: Email,
    via: Via,
    stream: String,
    recipients: Vec<String>,
    bounce_type: Option<String>,
}

fn check(server: &Server, incoming: Incoming) -> Result<Checked, Rejection> {
    let Incoming { email, via, size } = incoming;
    if size > MAX_MESSAGE_BYTES {
        return Err(Rejection::new(
            413,
            0,
            "Payload too large: a message may not exceed Postmark's size limit of 10 MB for our Email API and 50 MB total for batch.",
        ));
    }
    let stream = email
        .message_stream
        .clone()
        .unwrap_or_else(|| server.default_stream().to_owned());
    if server.stream(&stream).is_none() {
        return Err(Rejection::new(
            422,
            1235,
            format!("The stream provided: '{stream}' does not exist on this server."),
        ));
    }
    let Some(from) = address::parse_mailbox(&email.from) else {
        return Err(Rejection::invalid(format!(
            "Invalid 'From' address: '{}'.",
            email.from.trim()
        )));
    };
    if !server.may_send_as(from) {
        return Err(Rejection::invalid(format!(
            "Invalid 'From' address: '{from}' is not a verified sender signature."
        )));
    }
    let mut recipients = Vec::new();
    for entry in email.recipients() {
        let Some(recipient) = address::parse_mailbox(entry) else {
            let field = [("To", &email.to), ("Cc", &email.cc), ("Bcc", &email.bcc)]
                .into_iter()
                .find(|(_, value)| value.as_deref().is_some_and(|list| list.contains(entry)))
                .map_or("To", |(field, _)| field);
            return Err(Rejection::invalid(format!(
                "Invalid '{field}' address: '{entry}'."
            )));
        };
        recipients.push(recipient.to_owned());
    }
    if recipients.is_empty() {
        return Err(Rejection::invalid("Zero recipients specified"));
    }
    if recipients.len() > MAX_RECIPIENTS {
        return Err(Rejection::invalid(format!(
            "Too many recipients: {} given, at most {MAX_RECIPIENTS} are allowed (To, Cc and Bcc combined).",
            recipients.len()
        )));
    }
    let has_body = |body: &Option<String>| body.as_deref().is_some_and(|text| !text.is_empty());
    if !has_body(&email.html_body) && !has_body(&email.text_body) {
        return Err(Rejection::invalid(
            "Provide either email TextBody or HtmlBody or both.",
        ));
    }
    if email
        .metadata
        .keys()
        .any(|key| key.chars().count() > MAX_METADATA_KEY_CHARS)
    {
        return Err(Rejection::invalid(
            "Invalid metadata content. Field names are limited to 20 characters...",
        ));
    }
    let mut lower_keys: Vec<String> = email.metadata.keys().map(|k| k.to_lowercase()).collect();
    lower_keys.sort_unstable();
    if lower_keys.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(Rejection::invalid(
            "Invalid metadata content. Duplicate field names (case-insensitive) are not allowed.",
        ));
    }
    if email
        .tag
        .as_deref()
        .is_some_and(|tag| tag.chars().count() > MAX_TAG_CHARS)
    {
        return Err(Rejection::invalid(
            "The 'Tag' field may not be longer than 1000 characters.",
        ));
    }
    let bounce_type = email
        .headers
        .iter()
        .find(|header| header.name.eq_ignore_ascii_case("X-PM-Bounce-Type"))
        .map(|header| header.value.trim().to_owned());
    Ok(Checked {
        email,
        via,
        stream,
        recipients,
        bounce_type,
    })
}

/// The bounce type a bounce-testing address asks for: its local part, case and `_` ignored;
/// Postmark's default (a hard bounce) when it names no type. Postmark cannot fake complaints.
fn fake_bounce_type(recipient: &str, header: Option<&str>) -> Option<BounceType> {
    let (local, domain) = recipient.rsplit_once('@')?;
    if !domain.eq_ignore_ascii_case(BOUNCE_TESTING_DOMAIN) {
        return None;
    }
    let wanted = |text: &str| text.replace(['_', '-'], "").to_ascii_lowercase();
    let named = |text: &str| {
        BOUNCE_TYPES
            .iter()
            .find(|info| info.name.to_ascii_lowercase() == wanted(text))
            .map(|info| BounceType::from(info.name))
            .filter(|kind| *kind != BounceType::SpamComplaint)
    };
    Some(
        header
            .and_then(named)
            .or_else(|| named(local))
            .unwrap_or(BounceType::HardBounce),
    )
}

struct BounceInfo {
    name: &'static str,
    code: i64,
    title: &'static str,
    description: &'static str,
}

macro_rules! bounce_types {
    ($( $name:literal, $code:literal, $title:literal, $description:literal; )+) => {
        const BOUNCE_TYPES: &[BounceInfo] = &[
            $( BounceInfo { name: $name, code: $code, title: $title, description: $description }, )+
        ];
    };
}

// Postmark's bounce-types table: Type, TypeCode, Name and Description as its bounce API gives them.
bounce_types! {
    "HardBounce", 1, "Hard bounce", "The server was unable to deliver your message (ex: unknown user, mailbox not found).";
    "Transient", 2, "Message delayed", "The server could not temporarily deliver your message (ex: Message is delayed due to network troubles).";
    "Unsubscribe", 16, "Unsubscribe request", "Unsubscribe or Remove request.";
    "Subscribe", 32, "Subscribe request", "Subscribe request from someone wanting to get added to the mailing list.";
    "AutoResponder", 64, "Auto responder", "Automatic email responder (ex: \"Out of Office\" or \"On Vacation\").";
    "AddressChange", 128, "Address change", "The recipient has requested an address change.";
    "DnsError", 256, "DNS error", "A temporary DNS error.";
    "SpamNotification", 512, "Spam notification", "The message was delivered, but was either blocked by the user, or classified as spam, bulk mail, or had rejected content.";
    "OpenRelayTest", 1024, "Open relay test", "The NDR is actually a test email message to see if the mail server is an open relay.";
    "Unknown", 2048, "Unknown", "Unable to classify the NDR.";
    "SoftBounce", 4096, "Soft bounce/Undeliverable", "Unable to temporarily deliver message (i.e. mailbox full, account disabled, exceeds quota, out of disk space).";
    "VirusNotification", 8192, "Virus notification", "The bounce is actually a virus notification warning about a virus/code infected message.";
    "ChallengeVerification", 16384, "Spam challenge verification", "The bounce is a challenge asking for verification you actually sent the email. Typcial challenges are made by Spam Arrest, or MailFrontier Matador.";
    "BadEmailAddress", 100000, "Invalid email address", "The address is not a valid email address.";
    "SpamComplaint", 100001, "Spam complaint", "The subscriber explicitly marked this message as spam.";
    "ManuallyDeactivated", 100002, "Manually deactivated", "The email was manually deactivated.";
    "Unconfirmed", 100003, "Registration not confirmed", "The subscriber has not clicked on the confirmation link upon registration or import.";
    "Blocked", 100006, "ISP block", "Blocked from this ISP due to content or blacklisting.";
    "SMTPApiError", 100007, "SMTP API error", "An error occurred while accepting an email through the SMTP API.";
    "InboundError", 100008, "Processing failed", "Unable to deliver inbound message to destination inbound hook.";
    "DMARCPolicy", 100009, "DMARC Policy", "Email rejected due DMARC Policy.";
    "TemplateRenderingFailed", 100010, "Template rendering failed", "An error occurred while attempting to render your template.";
}

fn bounce_info(kind: &BounceType) -> &'static BounceInfo {
    BOUNCE_TYPES
        .iter()
        .find(|info| info.name == kind.as_str())
        .unwrap_or(&BOUNCE_TYPES[9])
}

/// An event with the webhooks it goes to.
type Outgoing = Vec<(WebhookConfig, WebhookEvent)>;

impl Sim {
    /// Checks and accepts the messages of one request (or one SMTP transaction). One answer per
    /// message, in order; the accepted ones are stored and their webhooks queued.
    pub fn submit(
        &self,
        server: &Server,
        items: Vec<Incoming>,
    ) -> Vec<Result<SendReceipt, Rejection>> {
        let checked: Vec<Result<Checked, Rejection>> =
            items.into_iter().map(|item| check(server, item)).collect();
        let submitted_at = now();
        let mut accepted = Vec::new();
        let mut answers = Vec::with_capacity(checked.len());
        {
            let mut suppressions = lock(&self.suppressions);
            for item in checked {
                let item = match item {
                    Ok(item) => item,
                    Err(rejection) => {
                        answers.push(Err(rejection));
                        continue;
                    }
                };
                let mut outcomes = BTreeMap::new();
                let mut inactive = Vec::new();
                for recipient in &item.recipients {
                    let key = address::key(recipient);
                    let suppression_key = (server.id, item.stream.clone(), key.clone());
                    let outcome = match suppressions.entry(suppression_key) {
                        Entry::Occupied(_) => {
                            inactive.push(recipient.clone());
                            RecipientOutcome::Inactive
                        }
                        Entry::Vacant(slot) => {
                            let (outcome, suppressed_for) = if let Some(kind) =
                                fake_bounce_type(recipient, item.bounce_type.as_deref())
                            {
                                let hard = kind.class() == BounceClass::Hard;
                                let outcome = RecipientOutcome::Bounced {
                                    bounce_type: kind.as_str().to_owned(),
                                };
                                (outcome, hard.then_some(SuppressionReason::HardBounce))
                            } else if server.complains(&key) {
                                (
                                    RecipientOutcome::Complained,
                                    Some(SuppressionReason::SpamComplaint),
                                )
                            } else {
                                (RecipientOutcome::Delivered, None)
                            };
                            if let Some(reason) = suppressed_for {
                                slot.insert(suppression(recipient, reason));
                            }
                            outcome
                        }
                    };
                    outcomes.entry(key).or_insert(outcome);
                }
                // Over SMTP the message is accepted and dropped afterwards (an SMTP API error).
                if inactive.len() == item.recipients.len() && item.via == Via::Api {
                    answers.push(Err(Rejection::new(
                        422,
                        406,
                        format!(
                            "You tried to send to a recipient that has been marked as inactive. Found inactive addresses: {}. Inactive recipients are ones that have generated a hard bounce, a spam complaint, or a manual suppression.",
                            inactive.join(", ")
                        ),
                    )));
                    continue;
                }
                let message = if inactive.is_empty() {
                    "OK".to_owned()
                } else {
                    format!(
                        "Message OK, but will not deliver to these inactive addresses: {}. Inactive recipients are ones that have generated a hard bounce or a spam complaint.",
                        inactive.join(", ")
                    )
                };
                let stored = self.store_shape(server, item, outcomes, &submitted_at);
                answers.push(Ok(SendReceipt {
                    to: stored.to.clone(),
                    submitted_at: Some(submitted_at),
                    message_id: Some(stored.message_id.clone()),
                    error_code: Some(0),
                    message: Some(message),
                }));
                accepted.push(Arc::new(stored));
            }
        }
        {
            let mut counters = lock(&self.counters);
            let smtp = accepted.iter().filter(|m| m.via == Via::Smtp).count() as u64;
            counters.messages_accepted += accepted.len() as u64;
            counters.smtp_messages += smtp;
            counters.messages_rejected += (answers.len() - accepted.len()) as u64;
        }
        if !accepted.is_empty() {
            let mut forgotten = Vec::new();
            {
                let mut log = lock(&self.messages);
                for message in &accepted {
                    forgotten.extend(log.push(message.clone(), self.options.max_stored));
                }
            }
            if !forgotten.is_empty() {
                let mut events = lock(&self.events);
                for id in &forgotten {
                    events.remove(id);
                }
            }
        }
        for message in &accepted {
            self.after_acceptance(server, message);
        }
        answers
    }

    fn store_shape(
        &self,
        server: &Server,
        item: Checked,
        outcomes: BTreeMap<String, RecipientOutcome>,
        submitted_at: &chrono::DateTime<chrono::FixedOffset>,
    ) -> StoredMessage {
        let Checked {
            email,
            via,
            stream,
            recipients,
            ..
        } = item;
        let has_html = email
            .html_body
            .as_deref()
            .is_some_and(|html| !html.is_empty());
        let track_links = email
            .track_links
            .or(server.config.track_links)
            .unwrap_or(TrackLinks::None);
        StoredMessage {
            message_id: self.message_id(),
            server_id: server.id,
            message_stream: stream,
            via,
            submitted_at: postmark_time(submitted_at),
            track_opens: has_html && (server.config.track_opens || email.track_opens == Some(true)),
            track_links,
            attachments: email
                .attachments
                .iter()
                .map(|attachment| AttachmentInfo {
                    name: attachment.name.clone(),
                    content_type: attachment.content_type.clone(),
                    content_id: attachment.content_id.clone(),
                    size: attachment.decoded().map_or(0, |bytes| bytes.len()),
                })
                .collect(),
            from: email.from,
            to: email.to,
            cc: email.cc,
            bcc: email.bcc,
            reply_to: email.reply_to,
            subject: email.subject,
            html_body: email.html_body,
            text_body: email.text_body,
            tag: email.tag,
            metadata: email.metadata,
            headers: email.headers,
            recipients,
            outcomes,
        }
    }

    /// Bounce records and webhooks for an accepted message.
    fn after_acceptance(&self, server: &Server, message: &StoredMessage) {
        let targets = self.targets(server, &message.message_stream);
        let mut outgoing: Outgoing = Vec::new();
        for recipient in &message.recipients {
            let Some(outcome) = message.outcomes.get(&address::key(recipient)) else {
                continue;
            };
            // One instant per event: its webhook and its record in the read APIs agree on it.
            let at = now();
            match outcome {
                RecipientOutcome::Inactive if message.via == Via::Smtp => {
                    let record = self.record_bounce(
                        server,
                        message,
                        recipient,
                        &BounceType::SMTPApiError,
                        at,
                    );
                    self.note_event(
                        &message.message_id,
                        recipient,
                        "Bounced",
                        json!({
                            "Summary": record.details.clone().unwrap_or_default(),
                            "BounceID": record.id.map(|id| id.to_string()).unwrap_or_default(),
                        }),
                        at,
                    );
                    if server.config.enable_smtp_api_error_hooks {
                        for target in &targets {
                            if target.triggers.bounce {
                                outgoing
                                    .push((target.clone(), WebhookEvent::Bounce(record.clone())));
                            }
                        }
                    }
                }
                RecipientOutcome::Inactive => {}
                RecipientOutcome::Delivered => {
                    self.note_delivered(message, recipient, at);
                    push(
                        &mut outgoing,
                        &targets,
                        |t| t.delivery,
                        || delivery(server, message, recipient, at),
                    );
                }
                RecipientOutcome::Bounced { bounce_type } => {
                    let kind = BounceType::from(bounce_type.as_str());
                    let record = self.record_bounce(server, message, recipient, &kind, at);
                    self.note_event(
                        &message.message_id,
                        recipient,
                        "Bounced",
                        json!({
                            "Summary": record.details.clone().unwrap_or_default(),
                            "BounceID": record.id.map(|id| id.to_string()).unwrap_or_default(),
                        }),
                        at,
                    );
                    if kind.class() == BounceClass::Hard {
                        self.note_suppressed(message, recipient, at);
                    }
                    for target in &targets {
                        if target.triggers.bounce {
                            let mut bounce = record.clone();
                            if !target.triggers.bounce_include_content {
                                bounce.content = None;
                            }
                            outgoing.push((target.clone(), WebhookEvent::Bounce(bounce)));
                        }
                    }
                    if kind.class() == BounceClass::Hard {
                        push(
                            &mut outgoing,
                            &targets,
                            |t| t.subscription_change,
                            || {
                                subscription_change(
                                    server,
                                    &message.message_stream,
                                    recipient,
                                    Some(SuppressionReason::HardBounce),
                                    SuppressionOrigin::Recipient,
                                    Some(message),
                                    at,
                                )
                            },
                        );
                    }
                }
                RecipientOutcome::Complained => {
                    self.note_delivered(message, recipient, at);
                    self.note_suppressed(message, recipient, at);
                    push(
                        &mut outgoing,
                        &targets,
                        |t| t.delivery,
                        || delivery(server, message, recipient, at),
                    );
                    let record = self.record_bounce(
                        server,
                        message,
                        recipient,
                        &BounceType::SpamComplaint,
                        at,
                    );
                    for target in &targets {
                        if target.triggers.spam_complaint {
                            let mut complaint = record.clone();
                            if !target.triggers.spam_complaint_include_content {
                                complaint.content = None;
                            }
                            outgoing.push((target.clone(), WebhookEvent::SpamComplaint(complaint)));
                        }
                    }
                    push(
                        &mut outgoing,
                        &targets,
                        |t| t.subscription_change,
                        || {
                            subscription_change(
                                server,
                                &message.message_stream,
                                recipient,
                                Some(SuppressionReason::SpamComplaint),
                                SuppressionOrigin::Recipient,
                                Some(message),
                                at,
                            )
                        },
                    );
                }
            }
        }
        self.post_all(outgoing);
    }

    fn note_delivered(&self, message: &StoredMessage, recipient: &str, at: Instant) {
        self.note_event(
            &message.message_id,
            recipient,
            "Delivered",
            json!({
                "DeliveryMessage": "smtp;250 2.0.0 OK (simulated delivery)",
                "DestinationServer": "mx.simulated.invalid (127.0.0.1)",
                "DestinationIP": "127.0.0.1",
            }),
            at,
        );
    }

    /// The SubscriptionChanged event of a hard bounce or complaint (strings, as Postmark sends).
    fn note_suppressed(&self, message: &StoredMessage, recipient: &str, at: Instant) {
        self.note_event(
            &message.message_id,
            recipient,
            "SubscriptionChanged",
            json!({ "Origin": "Recipient", "SuppressSending": "True" }),
            at,
        );
    }

    fn record_bounce(
        &self,
        server: &Server,
        message: &StoredMessage,
        recipient: &str,
        kind: &BounceType,
        at: Instant,
    ) -> Bounce {
        let info = bounce_info(kind);
        let class = kind.class();
        let complaint = *kind == BounceType::SpamComplaint;
        let smtp_api_error = kind.as_str() == "SMTPApiError";
        // An SMTP API error: the recipient is already inactive on the stream; nothing was sent,
        // so there is no dump, and the bounce itself reactivates nothing.
        let inactive = complaint || smtp_api_error || class == BounceClass::Hard;
        let bounce = Bounce {
            id: Some(self.bounce_id()),
            bounce_type: Some(kind.clone()),
            type_code: Some(info.code),
            name: Some(info.title.to_owned()),
            tag: Some(message.tag.clone().unwrap_or_default()),
            message_id: Some(message.message_id.clone()),
            metadata: Some(metadata(message)),
            server_id: Some(server.id as i64),
            message_stream: Some(message.message_stream.clone()),
            description: Some(info.description.to_owned()),
            details: Some(if complaint {
                "The recipient reported this message as spam (simulated).".to_owned()
            } else if smtp_api_error {
                format!(
                    "You tried to send to a recipient that has been marked as inactive. Found inactive addresses: {recipient}. Inactive recipients are ones that have generated a hard bounce, a spam complaint, or a manual suppression."
                )
            } else {
                format!(
                    "smtp;550 5.1.1 {} (simulated for a bounce-testing address)",
                    info.title
                )
            }),
            email: Some(recipient.to_owned()),
            from: Some(message.from.clone()),
            bounced_at: Some(at),
            dump_available: Some(!smtp_api_error),
            inactive: Some(inactive),
            can_activate: Some(!complaint && !smtp_api_error),
            subject: message.subject.clone(),
            content: (!smtp_api_error).then(|| dump(message, recipient)),
            ..Bounce::default()
        };
        if let Some(id) = bounce.id {
            lock(&self.bounces).insert(
                id,
                BounceRecord {
                    server_id: server.id,
                    stream: message.message_stream.clone(),
                    bounce: bounce.clone(),
                },
            );
        }
        bounce
    }

    /// The webhooks of a server for a stream (none when its webhooks are off): those configured
    /// with the simulator (a webhook without a stream gets every stream; the server's
    /// `PostFirstOpenOnly` and `IncludeBounceContentInHook` apply to them, as to Postmark's
    /// server-level hooks), then the verified ones of the Webhooks API for that stream.
    pub(crate) fn targets(&self, server: &Server, stream: &str) -> Vec<WebhookConfig> {
        if !server.config.webhooks_enabled {
            return Vec::new();
        }
        let mut targets: Vec<WebhookConfig> = server
            .config
            .webhooks
            .iter()
            .filter(|webhook| {
                webhook
                    .message_stream
                    .as_deref()
                    .is_none_or(|only| only == stream)
            })
            .cloned()
            .map(|mut webhook| {
                webhook.triggers.post_first_open_only |= server.config.post_first_open_only;
                webhook.triggers.bounce_include_content |=
                    server.config.include_bounce_content_in_hook;
                webhook
            })
            .collect();
        targets.extend(
            lock(&self.api_webhooks)
                .values()
                .filter(|webhook| {
                    webhook.server_id == server.id
                        && webhook.verified
                        && webhook.config.message_stream.as_deref() == Some(stream)
                })
                .map(|webhook| webhook.config.clone()),
        );
        targets
    }

    fn post_all(&self, outgoing: Outgoing) {
        for (target, event) in outgoing {
            self.outbox.enqueue(&target, &event);
        }
    }

    /// Adds addresses to a stream's suppression list by hand (`Origin: Customer`).
    pub fn suppress(
        &self,
        server: &Server,
        stream: &str,
        addresses: &[String],
    ) -> Vec<postmark::SuppressionChange> {
        let mut changes = Vec::new();
        let mut suppressed = Vec::new();
        {
            let mut suppressions = lock(&self.suppressions);
            for entry in addresses {
                let Some(recipient) = address::parse_mailbox(entry) else {
                    changes.push(failed(entry, "An invalid email address was provided."));
                    continue;
                };
                let key = (server.id, stream.to_owned(), address::key(recipient));
                if let Some(existing) = suppressions.get(&key)
                    && existing.reason == SuppressionReason::SpamComplaint
                {
                    changes.push(failed(entry, NO_AUTHORITY));
                    continue;
                }
                let mut entry_value = suppression(recipient, SuppressionReason::ManualSuppression);
                entry_value.origin = SuppressionOrigin::Customer;
                suppressions.insert(key, entry_value);
                suppressed.push(recipient.to_owned());
                changes.push(postmark::SuppressionChange {
                    email_address: Some(entry.clone()),
                    status: Some(postmark::SuppressionStatus::Suppressed),
                    message: None,
                });
            }
        }
        let targets = self.targets(server, stream);
        let mut outgoing = Vec::new();
        for recipient in &suppressed {
            push(
                &mut outgoing,
                &targets,
                |t| t.subscription_change,
                || {
                    subscription_change(
                        server,
                        stream,
                        recipient,
                        Some(SuppressionReason::ManualSuppression),
                        SuppressionOrigin::Customer,
                        None,
                        now(),
                    )
                },
            );
        }
        self.post_all(outgoing);
        changes
    }

    /// Removes addresses from a stream's suppression list (spam complaints stay). Removing a hard
    /// bounce reactivates its bounces.
    pub fn unsuppress(
        &self,
        server: &Server,
        stream: &str,
        addresses: &[String],
    ) -> Vec<postmark::SuppressionChange> {
        let mut changes = Vec::new();
        let mut removed = Vec::new();
        {
            let mut suppressions = lock(&self.suppressions);
            for entry in addresses {
                let Some(recipient) = address::parse_mailbox(entry) else {
                    changes.push(failed(entry, "An invalid email address was provided."));
                    continue;
                };
                let key = (server.id, stream.to_owned(), address::key(recipient));
                match suppressions
                    .get(&key)
                    .map(|existing| existing.reason.clone())
                {
                    Some(SuppressionReason::SpamComplaint) => {
                        changes.push(failed(entry, NO_AUTHORITY));
                        continue;
                    }
                    Some(_) => {
                        suppressions.remove(&key);
                        removed.push(recipient.to_owned());
                    }
                    None => {}
                }
                changes.push(postmark::SuppressionChange {
                    email_address: Some(entry.clone()),
                    status: Some(postmark::SuppressionStatus::Deleted),
                    message: None,
                });
            }
        }
        if !removed.is_empty() {
            let mut bounces = lock(&self.bounces);
            for record in bounces.values_mut() {
                let bounced = record.bounce.email.as_deref().map(address::key);
                if record.server_id == server.id
                    && record.stream == stream
                    && bounced
                        .is_some_and(|bounced| removed.iter().any(|r| address::key(r) == bounced))
                {
                    record.bounce.inactive = Some(false);
                }
            }
        }
        let targets = self.targets(server, stream);
        let mut outgoing = Vec::new();
        for recipient in &removed {
            push(
                &mut outgoing,
                &targets,
                |t| t.subscription_change,
                || {
                    subscription_change(
                        server,
                        stream,
                        recipient,
                        None,
                        SuppressionOrigin::Customer,
                        None,
                        now(),
                    )
                },
            );
        }
        self.post_all(outgoing);
        changes
    }

    /// `PUT /bounces/{id}/activate`.
    pub fn activate_bounce(&self, server: &Server, id: i64) -> Result<Bounce, Rejection> {
        let record = lock(&self.bounces)
            .get(&id)
            .filter(|record| record.server_id == server.id)
            .cloned()
            .ok_or_else(|| Rejection::new(422, 1000, "The bounce was not found."))?;
        if record.bounce.can_activate != Some(true) {
            return Err(Rejection::new(
                422,
                1003,
                "Due to the type of bounce, this address cannot be reactivated.",
            ));
        }
        let recipient = record.bounce.email.clone().unwrap_or_default();
        let was_suppressed = {
            let key = (server.id, record.stream.clone(), address::key(&recipient));
            let mut suppressions = lock(&self.suppressions);
            let hard = suppressions
                .get(&key)
                .is_some_and(|entry| entry.reason == SuppressionReason::HardBounce);
            if hard {
                suppressions.remove(&key);
            }
            hard
        };
        let bounce = {
            let mut bounces = lock(&self.bounces);
            match bounces.get_mut(&id) {
                Some(stored) => {
                    stored.bounce.inactive = Some(false);
                    stored.bounce.clone()
                }
                None => record.bounce,
            }
        };
        if was_suppressed {
            let targets = self.targets(server, &record.stream);
            let mut outgoing = Vec::new();
            push(
                &mut outgoing,
                &targets,
                |t| t.subscription_change,
                || {
                    subscription_change(
                        server,
                        &record.stream,
                        &recipient,
                        None,
                        SuppressionOrigin::Customer,
                        None,
                        now(),
                    )
                },
            );
            self.post_all(outgoing);
        }
        Ok(bounce)
    }

    /// Records an open and posts it (only the first one where the webhook asks for that).
    pub fn open(&self, request: OpenRequest) -> Result<EngagementOutcome, EngagementError> {
        let (server, message, recipient) =
            self.engaged(&request.message_id, request.recipient.as_deref())?;
        if !message.track_opens {
            return Err(EngagementError::NotTracked(
                "open tracking is off for this message (or it has no HTML body)",
            ));
        }
        let first = lock(&self.engagement)
            .opened
            .insert((message.message_id.clone(), address::key(&recipient)));
        let user_agent = request
            .user_agent
            .clone()
            .unwrap_or_else(|| DEFAULT_USER_AGENT.to_owned());
        let at = now();
        if first {
            // Postmark stores only the first open of a recipient.
            self.note_event(
                &message.message_id,
                &recipient,
                "Opened",
                json!({ "Summary": format!("Email opened with {user_agent}") }),
                at,
            );
        }
        let event = WebhookEvent::Open(Open {
            first_open: Some(first),
            server_id: Some(server.id as i64),
            message_stream: Some(message.message_stream.clone()),
            message_id: Some(message.message_id.clone()),
            recipient: Some(recipient.clone()),
            tag: Some(message.tag.clone().unwrap_or_default()),
            received_at: Some(at),
            read_seconds: Some(request.read_seconds.unwrap_or(5)),
            platform: Some(request.platform.unwrap_or_else(|| "Desktop".to_owned())),
            client: Some(request.client.unwrap_or_else(default_client)),
            os: Some(request.os.unwrap_or_else(default_os)),
            user_agent: Some(user_agent),
            geo: Some(request.geo.unwrap_or_else(default_geo)),
            metadata: Some(metadata(&message)),
            ..Open::default()
        });
        if first {
            self.record_engagement(&server, &message, &recipient, &event);
        }
        let targets = self.targets(&server, &message.message_stream);
        let outgoing: Outgoing = targets
            .into_iter()
            .filter(|target| {
                target.triggers.open && (first || !target.triggers.post_first_open_only)
            })
            .map(|target| (target, event.clone()))
            .collect();
        let posted = outgoing.len();
        self.post_all(outgoing);
        Ok(EngagementOutcome { first, posted })
    }

    /// Records a click and posts it the first time this recipient clicks this link.
    pub fn click(&self, request: ClickRequest) -> Result<EngagementOutcome, EngagementError> {
        let (server, message, recipient) =
            self.engaged(&request.message_id, request.recipient.as_deref())?;
        let location = request.click_location.unwrap_or_else(|| {
            if message.html_body.is_some() {
                "HTML"
            } else {
                "Text"
            }
            .to_owned()
        });
        let tracked = match message.track_links {
            TrackLinks::None => false,
            TrackLinks::HtmlAndText => true,
            TrackLinks::HtmlOnly => location.eq_ignore_ascii_case("HTML"),
            TrackLinks::TextOnly => location.eq_ignore_ascii_case("Text"),
        };
        if !tracked {
            return Err(EngagementError::NotTracked(
                "link tracking is off for this message and click location",
            ));
        }
        let first = lock(&self.engagement).clicked.insert((
            message.message_id.clone(),
            address::key(&recipient),
            request.link.clone(),
        ));
        let mut posted = 0;
        if first {
            let at = now();
            let body = if location.eq_ignore_ascii_case("Text") {
                "TextBody"
            } else {
                "HTMLBody"
            };
            self.note_event(
                &message.message_id,
                &recipient,
                "LinkClicked",
                json!({
                    "Summary": format!("Tracked Link '{}' was clicked from the {body}.", request.link),
                    "Link": request.link,
                    "ClickLocation": location,
                }),
                at,
            );
            let event = WebhookEvent::Click(Click {
                click_location: Some(location),
                server_id: Some(server.id as i64),
                message_stream: Some(message.message_stream.clone()),
                message_id: Some(message.message_id.clone()),
                recipient: Some(recipient.clone()),
                tag: Some(message.tag.clone().unwrap_or_default()),
                original_link: Some(request.link),
                received_at: Some(at),
                platform: Some(request.platform.unwrap_or_else(|| "Desktop".to_owned())),
                client: Some(request.client.unwrap_or_else(default_client)),
                os: Some(request.os.unwrap_or_else(default_os)),
                user_agent: Some(
                    request
                        .user_agent
                        .unwrap_or_else(|| DEFAULT_USER_AGENT.to_owned()),
                ),
                geo: Some(request.geo.unwrap_or_else(default_geo)),
                metadata: Some(metadata(&message)),
                ..Click::default()
            });
            self.record_engagement(&server, &message, &recipient, &event);
            let outgoing: Outgoing = self
                .targets(&server, &message.message_stream)
                .into_iter()
                .filter(|target| target.triggers.click)
                .map(|target| (target, event.clone()))
                .collect();
            posted = outgoing.len();
            self.post_all(outgoing);
        }
        Ok(EngagementOutcome { first, posted })
    }

    /// Keeps an open or click for the opens and clicks API, in its list shape.
    fn record_engagement(
        &self,
        server: &Server,
        message: &StoredMessage,
        recipient: &str,
        event: &WebhookEvent,
    ) {
        let mut item = serde_json::to_value(event).unwrap_or_default();
        if let Some(fields) = item.as_object_mut() {
            fields.remove("Metadata");
            fields.remove("ServerID");
        }
        let record = crate::state::EngagementRecord {
            server_id: server.id,
            stream: message.message_stream.clone(),
            message_id: message.message_id.clone(),
            recipient: recipient.to_owned(),
            tag: message.tag.clone(),
            item,
        };
        let mut engagement = lock(&self.engagement);
        if matches!(event, WebhookEvent::Open(_)) {
            engagement.opens.push(record);
        } else {
            engagement.clicks.push(record);
        }
    }

    fn engaged(
        &self,
        message_id: &str,
        recipient: Option<&str>,
    ) -> Result<(Arc<Server>, Arc<StoredMessage>, String), EngagementError> {
        let message = lock(&self.messages)
            .get(message_id)
            .ok_or(EngagementError::UnknownMessage)?;
        let server = self
            .server(message.server_id)
            .ok_or(EngagementError::UnknownMessage)?;
        let recipient = match recipient {
            Some(recipient) => message
                .recipients
                .iter()
                .find(|known| known.eq_ignore_ascii_case(recipient.trim()))
                .cloned()
                .ok_or(EngagementError::NotARecipient)?,
            None => message
                .recipients
                .iter()
                .find(|known| message.was_delivered_to(known))
                .cloned()
                .ok_or(EngagementError::NotARecipient)?,
        };
        if !message.was_delivered_to(&recipient) {
            return Err(EngagementError::NotARecipient);
        }
        Ok((server, message, recipient))
    }
}

const NO_AUTHORITY: &str = "You do not have the required authority to change this suppression.";

fn failed(entry: &str, message: &str) -> postmark::SuppressionChange {
    postmark::SuppressionChange {
        email_address: Some(entry.to_owned()),
        status: Some(postmark::SuppressionStatus::Failed),
        message: Some(message.to_owned()),
    }
}

fn suppression(recipient: &str, reason: SuppressionReason) -> SuppressionEntry {
    SuppressionEntry {
        address: recipient.to_owned(),
        reason,
        origin: SuppressionOrigin::Recipient,
        created_at: now(),
    }
}

/// Builds the event once if any target wants it, and queues it for each that does.
fn push(
    outgoing: &mut Outgoing,
    targets: &[WebhookConfig],
    wants: impl Fn(&Triggers) -> bool,
    event: impl FnOnce() -> WebhookEvent,
) {
    let wanting: Vec<&WebhookConfig> = targets.iter().filter(|t| wants(&t.triggers)).collect();
    if wanting.is_empty() {
        return;
    }
    let event = event();
    for target in wanting {
        outgoing.push((target.clone(), event.clone()));
    }
}

/// When a simulated event happened, in Postmark's Eastern time.
type Instant = chrono::DateTime<chrono::FixedOffset>;

fn metadata(message: &StoredMessage) -> Metadata {
    message
        .metadata
        .iter()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

fn delivery(
    server: &Server,
    message: &StoredMessage,
    recipient: &str,
    at: Instant,
) -> WebhookEvent {
    WebhookEvent::Delivery(Delivery {
        server_id: Some(server.id as i64),
        message_stream: Some(message.message_stream.clone()),
        message_id: Some(message.message_id.clone()),
        recipient: Some(recipient.to_owned()),
        tag: Some(message.tag.clone().unwrap_or_default()),
        delivered_at: Some(at),
        details: Some("smtp;250 2.0.0 OK (simulated delivery)".to_owned()),
        metadata: Some(metadata(message)),
        ..Delivery::default()
    })
}

/// A SubscriptionChange; `reason` None is a reactivation (no message, tag or metadata then).
fn subscription_change(
    server: &Server,
    stream: &str,
    recipient: &str,
    reason: Option<SuppressionReason>,
    origin: SuppressionOrigin,
    message: Option<&StoredMessage>,
    at: Instant,
) -> WebhookEvent {
    WebhookEvent::SubscriptionChange(SubscriptionChange {
        server_id: Some(server.id as i64),
        message_stream: Some(stream.to_owned()),
        message_id: message.map(|message| message.message_id.clone()),
        recipient: Some(recipient.to_owned()),
        tag: message.map(|message| message.tag.clone().unwrap_or_default()),
        changed_at: Some(at),
        origin: Some(origin),
        suppress_sending: Some(reason.is_some()),
        suppression_reason: reason,
        metadata: Some(message.map(metadata).unwrap_or_default()),
        ..SubscriptionChange::default()
    })
}

/// A short stand-in for the bounce or complaint dump.
fn dump(message: &StoredMessage, recipient: &str) -> String {
    format!(
        "Return-Path: <>\r\nTo: {}\r\nSubject: Undelivered Mail: {}\r\nX-PM-Message-Id: {}\r\n\r\nSimulated report for {recipient}.",
        message.from,
        message.subject.as_deref().unwrap_or(""),
        message.message_id
    )
}

pub(crate) fn postmark_time(at: &chrono::DateTime<chrono::FixedOffset>) -> String {
    postmark::format_timestamp(at)
}

const DEFAULT_USER_AGENT: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

fn default_client() -> UserAgentPart {
    UserAgentPart {
        name: Some("Chrome 120.0".to_owned()),
        company: Some("Google".to_owned()),
        family: Some("Chrome".to_owned()),
        ..UserAgentPart::default()
    }
}

fn default_os() -> UserAgentPart {
    UserAgentPart {
        name: Some("OS X 10.15 Catalina".to_owned()),
        company: Some("Apple Computer, Inc.".to_owned()),
        family: Some("OS X 10".to_owned()),
        ..UserAgentPart::default()
    }
}

fn default_geo() -> Geo {
    Geo {
        country_iso_code: Some("RS".to_owned()),
        country: Some("Serbia".to_owned()),
        region_iso_code: Some("VO".to_owned()),
        region: Some("Autonomna Pokrajina Vojvodina".to_owned()),
        city: Some("Novi Sad".to_owned()),
        zip: Some("21000".to_owned()),
        coords: Some("45.2517,19.8369".to_owned()),
        ip: Some("188.2.95.4".to_owned()),
        ..Geo::default()
    }
}

/// An open to simulate. Only `message_id` is required; the client fields default to a desktop
/// Chrome in Novi Sad. `client`, `os` and `geo` take Postmark's shapes (`{"Name": ...}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenRequest {
    /// The message.
    pub message_id: String,
    /// The recipient who opens; the first delivered recipient when absent.
    pub recipient: Option<String>,
    /// `Platform`: `WebMail`, `Desktop`, `Mobile` or `Unknown`.
    pub platform: Option<String>,
    /// `ReadSeconds`.
    pub read_seconds: Option<i64>,
    /// `UserAgent`.
    pub user_agent: Option<String>,
    /// `Client`.
    pub client: Option<UserAgentPart>,
    /// `OS`.
    pub os: Option<UserAgentPart>,
    /// `Geo`.
    pub geo: Option<Geo>,
}

impl OpenRequest {
    /// An open of `message_id` by `recipient`.
    pub fn new(message_id: impl Into<String>, recipient: impl Into<String>) -> Self {
        Self {
            message_id: message_id.into(),
            recipient: Some(recipient.into()),
            ..Self::default()
        }
    }
}

/// A click to simulate: `message_id` and `link` are required.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClickRequest {
    /// The message.
    pub message_id: String,
    /// The recipient who clicks; the first delivered recipient when absent.
    pub recipient: Option<String>,
    /// `OriginalLink`.
    pub link: String,
    /// `ClickLocation`: `HTML` or `Text` (HTML when the message has an HTML body).
    pub click_location: Option<String>,
    /// `Platform`.
    pub platform: Option<String>,
    /// `UserAgent`.
    pub user_agent: Option<String>,
    /// `Client`.
    pub client: Option<UserAgentPart>,
    /// `OS`.
    pub os: Option<UserAgentPart>,
    /// `Geo`.
    pub geo: Option<Geo>,
}

impl ClickRequest {
    /// A click on `link` in `message_id` by `recipient`.
    pub fn new(
        message_id: impl Into<String>,
        recipient: impl Into<String>,
        link: impl Into<String>,
    ) -> Self {
        Self {
            message_id: message_id.into(),
            recipient: Some(recipient.into()),
            link: link.into(),
            ..Self::default()
        }
    }
}

/// What an open or click did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngagementOutcome {
    /// The first open of this recipient, or the first click on this link by this recipient.
    pub first: bool,
    /// Webhook posts queued for it.
    pub posted: usize,
}

/// Why an open or click was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngagementError {
    /// No such message (or it was forgotten).
    #[error("no message with this MessageID")]
    UnknownMessage,
    /// The recipient did not receive the message.
    #[error("this recipient did not receive the message")]
    NotARecipient,
    /// Postmark would not see it.
    #[error("{0}")]
    NotTracked(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounce_testing_addresses_pick_their_type() {
        let kind =
            |address: &str| fake_bounce_type(address, None).map(|kind| kind.as_str().to_owned());
        assert_eq!(
            kind("HardBounce@bounce-testing.postmarkapp.com").as_deref(),
            Some("HardBounce")
        );
        assert_eq!(
            kind("hard_bounce@Bounce-Testing.PostmarkApp.com").as_deref(),
            Some("HardBounce")
        );
        assert_eq!(
            kind("softbounce@bounce-testing.postmarkapp.com").as_deref(),
            Some("SoftBounce")
        );
        assert_eq!(
            kind("dns_error@bounce-testing.postmarkapp.com").as_deref(),
            Some("DnsError")
        );
        assert_eq!(
            kind("anything@bounce-testing.postmarkapp.com").as_deref(),
            Some("HardBounce")
        );
        assert_eq!(
            kind("SpamComplaint@bounce-testing.postmarkapp.com").as_deref(),
            Some("HardBounce")
        );
        assert_eq!(kind("ada@example.com"), None);
        assert_eq!(
            fake_bounce_type("x@bounce-testing.postmarkapp.com", Some("Transient"))
                .map(|k| k.as_str().to_owned())
                .as_deref(),
            Some("Transient")
        );
    }

    #[test]
    fn every_bounce_type_has_its_code() {
        assert_eq!(BOUNCE_TYPES.len(), 22);
        assert_eq!(bounce_info(&BounceType::SoftBounce).code, 4096);
        assert_eq!(
            bounce_info(&BounceType::Other("New".into())).name,
            "Unknown"
        );
        for info in BOUNCE_TYPES {
            assert_eq!(BounceType::from(info.name).as_str(), info.name);
            assert!(
                !matches!(BounceType::from(info.name), BounceType::Other(_)),
                "{}",
                info.name
            );
        }
    }
}
