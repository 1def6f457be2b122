//! A job as the message Postmark receives: addresses, bodies with native tracking, headers, the tag,
//! the metadata that traces webhook events back, the stream, and Postmark's own tracking as the server
//! asks for it.

use chrono::{DateTime, Utc};
use domain::MessageStream;
use domain::jobs::SendJob;
use domain::rewrite::{ClickUrl, insert_tracking};
use domain::servers::{EmailServer, LinkTracking};
use domain::tracking::{TokenSigner, TrackingTarget};
use postmark::{Attachment, Email, Header, TrackLinks};

/// Signs native tracking URLs.
#[derive(Debug, Clone)]
pub struct Tracker {
    pub signer: TokenSigner,
    /// `https://host/stage`, no trailing slash.
    pub base_url: String,
}

impl Tracker {
    fn open_url(&self, job: &SendJob) -> Option<String> {
        let token = self
            .signer
            .sign(&TrackingTarget::Open {
                job: job.id.clone(),
            })
            .ok()?;
        Some(format!("{}/t/o/{token}", self.base_url))
    }

    fn click_url(&self, job: &SendJob, url: &str) -> Option<String> {
        let token = self
            .signer
            .sign(&TrackingTarget::Click {
                job: job.id.clone(),
                url: url.to_owned(),
            })
            .ok()?;
        Some(format!("{}/t/c/{token}", self.base_url))
    }

    /// The job's HTML with the native tracking it asks for.
    pub fn html(&self, job: &SendJob, html: &str) -> String {
        let mut click = |url: &str| self.click_url(job, url);
        let click: Option<ClickUrl<'_>> = job.track_clicks.then_some(&mut click);
        let pixel = job.track_opens.then(|| self.open_url(job)).flatten();
        insert_tracking(html, click, pixel.as_deref()).html
    }
}

fn track_links(setting: LinkTracking) -> TrackLinks {
    match setting {
        LinkTracking::None => TrackLinks::None,
        LinkTracking::HtmlAndText => TrackLinks::HtmlAndText,
        LinkTracking::HtmlOnly => TrackLinks::HtmlOnly,
        LinkTracking::TextOnly => TrackLinks::TextOnly,
    }
}

fn joined(list: &[domain::jobs::Mailbox]) -> Option<String> {
    (!list.is_empty()).then(|| {
        list.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// The message for `job` on `stream` of `server`, in the Postmark call `send_id` composed at `sent_at`.
/// `tracker` is needed when the job asks for native tracking (the caller refuses such a job without
/// one).
pub fn email(
    job: &SendJob,
    server: &EmailServer,
    stream: &MessageStream,
    send_id: &str,
    sent_at: DateTime<Utc>,
    tracker: Option<&Tracker>,
) -> Email {
    let html_body = match (&job.html_body, tracker) {
        (Some(html), Some(t)) if job.track_opens || job.track_clicks => Some(t.html(job, html)),
        (html, _) => html.clone(),
    };
    Email {
        from: job.from.to_string(),
        to: Some(job.to.to_string()),
        cc: joined(&job.cc),
        bcc: joined(&job.bcc),
        reply_to: joined(&job.reply_to),
        subject: Some(job.subject.clone()),
        html_body,
        text_body: job.text_body.clone(),
        headers: job
            .headers
            .iter()
            .map(|h| Header::new(&h.name, &h.value))
            .collect(),
        tag: job.tag.clone(),
        metadata: {
            let mut metadata = job.metadata();
            metadata.insert(domain::trace::SEND_ID.to_owned(), send_id.to_owned());
            metadata.insert(
                domain::trace::SENT_AT.to_owned(),
                domain::trace::format_sent_at(sent_at),
            );
            metadata
        },
        message_stream: Some(stream.as_str().to_owned()),
        // Postmark's tracking follows the server's settings, independently of native tracking.
        track_opens: Some(server.tracking.track_opens),
        track_links: Some(track_links(server.tracking.track_links)),
        attachments: job
            .attachments
            .iter()
            .map(|a| Attachment {
                name: a.name.clone(),
                content: a.content.clone(),
                content_type: a.content_type.clone(),
                content_id: a.content_id.clone(),
            })
            .collect(),
    }
}

/// Roughly what a message weighs in a batch request, to keep batches under Postmark's 50 MB.
pub fn weight(email: &Email) -> usize {
    let text = |v: &Option<String>| v.as_deref().map_or(0, str::len);
    1024 + email.from.len()
        + text(&email.to)
        + text(&email.cc)
        + text(&email.bcc)
        + text(&email.reply_to)
        + text(&email.subject)
        + text(&email.html_body)
        + text(&email.text_body)
        + text(&email.tag)
        + email
            .headers
            .iter()
            .map(|h| h.name.len() + h.value.len() + 32)
            .sum::<usize>()
        + email
            .metadata
            .iter()
            .map(|(k, v)| k.len() + v.len() + 8)
            .sum::<usize>()
        + email
            .attachments
            .iter()
            .map(|a| a.content.len() + a.name.len() + a.content_type.len() + 64)
            .sum::<usize>()
}
