//! The HTTP API client.

use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue, USER_AGENT};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::api_types::{
    BatchItemOutcome, BounceActivation, MessageStreamInfo, MessageStreamsEnvelope, SendReceipt,
    ServerEdit, ServerInfo, Suppression, SuppressionChange, SuppressionQuery, SuppressionsEnvelope,
};
use crate::error::{ApiError, PostmarkError};
use crate::message::Email;
use crate::messages::{
    MAX_SEARCH_COUNT, MAX_SEARCH_WINDOW, OutboundMessageDetails, OutboundMessages, OutboundSearch,
};
use crate::reads::{BounceQuery, Bounces, Clicks, Opens, TrackingQuery};
use crate::token::ServerToken;
use crate::webhook::Bounce;
use crate::webhooks_api::{
    NewWebhook, Webhook, WebhookEdit, WebhookStatistics, WebhookVerification, WebhooksEnvelope,
};

/// Postmark's API.
pub const DEFAULT_BASE_URL: &str = "https://api.postmarkapp.com";
/// A timeout that leaves room for a retry inside a Lambda invocation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most messages one `POST /email/batch` may carry.
pub const MAX_BATCH_SIZE: usize = 500;

const SERVER_TOKEN_HEADER: &str = "X-Postmark-Server-Token";
const JSON: &str = "application/json";
const EXCERPT_CHARS: usize = 300;

/// A client for one Postmark server (one Server API Token).
///
/// Cheap to clone (the connection pool is shared); build it once per process.
///
/// ```no_run
/// use std::time::Duration;
/// use postmark::{Email, PostmarkClient, ServerToken};
///
/// # async fn run() -> Result<(), postmark::PostmarkError> {
/// let client = PostmarkClient::new(
///     postmark::DEFAULT_BASE_URL.parse().expect("valid URL"),
///     ServerToken::new("server-token-from-secrets-manager"),
///     Duration::from_secs(10),
/// )?;
/// let email = Email::new("shop@example.com", "ada@example.org")
///     .subject("Hello")
///     .text_body("Hi Ada")
///     .message_stream("outbound");
/// match client.send(&email).await {
///     Ok(receipt) => println!("sent as {:?}", receipt.message_id),
///     Err(error) if error.is_retryable() => { /* try again later */ }
///     Err(error) => eprintln!("not sent ({}): {error}", error.class()),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PostmarkClient {
    http: reqwest::Client,
    base_url: Url,
    token: HeaderValue,
    timeout: Duration,
}

impl PostmarkClient {
    /// A client for `base_url` (normally [`DEFAULT_BASE_URL`]) with a request timeout.
    pub fn new(
        base_url: Url,
        token: ServerToken,
        timeout: Duration,
    ) -> Result<Self, PostmarkError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|source| PostmarkError::Http { source })?;
        Self::with_http_client(http, base_url, token, timeout)
    }

    /// Like [`PostmarkClient::new`], sharing an existing `reqwest::Client` (and its connection pool)
    /// between several Postmark servers. `timeout` is applied to every request.
    pub fn with_http_client(
        http: reqwest::Client,
        base_url: Url,
        token: ServerToken,
        timeout: Duration,
    ) -> Result<Self, PostmarkError> {
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(PostmarkError::InvalidBaseUrl {
                url: base_url.to_string(),
            });
        }
        let mut token =
            HeaderValue::from_str(token.expose()).map_err(|_| PostmarkError::InvalidToken)?;
        token.set_sensitive(true);
        Ok(Self {
            http,
            base_url,
            token,
            timeout,
        })
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// Sends one message (`POST /email`).
    #[tracing::instrument(name = "postmark.send", skip_all, fields(stream = email.message_stream.as_deref()))]
    pub async fn send(&self, email: &Email) -> Result<SendReceipt, PostmarkError> {
        let (status, body) = self
            .call(Method::POST, &["email"], &[], Some(email))
            .await?;
        item_outcome(status.as_u16(), body)
            .map_err(PostmarkError::from)?
            .map_err(|body| unexpected(status, &body, None))
    }

    /// Sends up to [`MAX_BATCH_SIZE`] messages in one call (`POST /email/batch`).
    ///
    /// Answers one outcome per message, in order. More than 500 messages is
    /// [`PostmarkError::BatchTooLarge`] before any request; an empty batch sends nothing.
    #[tracing::instrument(name = "postmark.send_batch", skip_all, fields(count = emails.len()))]
    pub async fn send_batch(
        &self,
        emails: &[Email],
    ) -> Result<Vec<BatchItemOutcome>, PostmarkError> {
        if emails.len() > MAX_BATCH_SIZE {
            return Err(PostmarkError::BatchTooLarge {
                count: emails.len(),
                max: MAX_BATCH_SIZE,
            });
        }
        if emails.is_empty() {
            return Ok(Vec::new());
        }
        let (status, body) = self
            .call(Method::POST, &["email", "batch"], &[], Some(emails))
            .await?;
        let Value::Array(items) = body else {
            return Err(unexpected(status, &body, None));
        };
        if items.len() != emails.len() {
            return Err(PostmarkError::BatchLengthMismatch {
                sent: emails.len(),
                answered: items.len(),
            });
        }
        items
            .into_iter()
            .map(|item| match item_outcome(status.as_u16(), item) {
                Ok(Ok(receipt)) => Ok(Ok(receipt)),
                Ok(Err(item)) => Err(unexpected(status, &item, None)),
                Err(api) => Ok(Err(api)),
            })
            .collect()
    }

    /// The server this token belongs to (`GET /server`): the way to check a token.
    #[tracing::instrument(name = "postmark.server", skip_all)]
    pub async fn server(&self) -> Result<ServerInfo, PostmarkError> {
        self.get_json(&["server"], &[]).await
    }

    /// One message stream (`GET /message-streams/{id}`); an unknown id is ErrorCode 1226.
    #[tracing::instrument(name = "postmark.message_stream", skip(self))]
    pub async fn message_stream(
        &self,
        stream_id: &str,
    ) -> Result<MessageStreamInfo, PostmarkError> {
        self.get_json(&["message-streams", stream_id], &[]).await
    }

    /// The suppression list of a stream
    /// (`GET /message-streams/{stream_id}/suppressions/dump`).
    #[tracing::instrument(name = "postmark.suppressions", skip(self, query))]
    pub async fn suppressions(
        &self,
        stream_id: &str,
        query: &SuppressionQuery,
    ) -> Result<Vec<Suppression>, PostmarkError> {
        let envelope: SuppressionsEnvelope<Suppression> = self
            .get_json(
                &["message-streams", stream_id, "suppressions", "dump"],
                &query.pairs(),
            )
            .await?;
        Ok(envelope.suppressions)
    }

    /// Suppresses addresses on a stream (`POST /message-streams/{stream_id}/suppressions`).
    /// Answers per address; HTTP 200 even when some failed.
    #[tracing::instrument(name = "postmark.create_suppressions", skip_all, fields(stream = stream_id, count = addresses.len()))]
    pub async fn create_suppressions<A: AsRef<str>>(
        &self,
        stream_id: &str,
        addresses: &[A],
    ) -> Result<Vec<SuppressionChange>, PostmarkError> {
        self.change_suppressions(&["message-streams", stream_id, "suppressions"], addresses)
            .await
    }

    /// Removes suppressions from a stream (`POST /message-streams/{stream_id}/suppressions/delete`).
    /// Removing a HardBounce suppression reactivates the bounce; SpamComplaint ones cannot be removed.
    #[tracing::instrument(name = "postmark.delete_suppressions", skip_all, fields(stream = stream_id, count = addresses.len()))]
    pub async fn delete_suppressions<A: AsRef<str>>(
        &self,
        stream_id: &str,
        addresses: &[A],
    ) -> Result<Vec<SuppressionChange>, PostmarkError> {
        self.change_suppressions(
            &["message-streams", stream_id, "suppressions", "delete"],
            addresses,
        )
        .await
    }

    /// Reactivates a bounced address (`PUT /bounces/{bounce_id}/activate`).
    #[tracing::instrument(name = "postmark.activate_bounce", skip(self))]
    pub async fn activate_bounce(&self, bounce_id: i64) -> Result<BounceActivation, PostmarkError> {
        let id = bounce_id.to_string();
        let (status, body) = self
            .call::<()>(Method::PUT, &["bounces", &id, "activate"], &[], None)
            .await?;
        decode(status, body)
    }

    /// Searches sent messages (`GET /messages/outbound`), newest first.
    ///
    /// The way to learn, after an ambiguous send, which messages Postmark accepted: search by the
    /// metadata every message of one call carries. Search is eventually consistent (a message
    /// may appear seconds after it was accepted), so an empty answer right after a send proves
    /// nothing. A `count` outside 1..=500 or `count + offset` above 10,000 is
    /// [`PostmarkError::InvalidSearch`] before any request.
    #[tracing::instrument(name = "postmark.search_outbound", skip_all, fields(count = query.count(), offset = query.skipped()))]
    pub async fn search_outbound(
        &self,
        query: &OutboundSearch,
    ) -> Result<OutboundMessages, PostmarkError> {
        check_paging(query.paging_ok(), query.count(), query.skipped())?;
        let pairs = query.pairs();
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        self.get_json(&["messages", "outbound"], &pairs).await
    }

    /// One sent message with its bodies and events
    /// (`GET /messages/outbound/{message_id}/details`). A message Postmark does not know (or has
    /// not indexed yet) is an [`ApiError`] with ErrorCode 701, see
    /// [`ApiError::is_message_not_found`].
    #[tracing::instrument(name = "postmark.outbound_message_details", skip(self))]
    pub async fn outbound_message_details(
        &self,
        message_id: &str,
    ) -> Result<OutboundMessageDetails, PostmarkError> {
        self.get_json(&["messages", "outbound", message_id, "details"], &[])
            .await
    }

    /// Changes the server's settings (`PUT /server`) and answers them as they are now. Only the
    /// fields set in `edit` are sent.
    #[tracing::instrument(name = "postmark.edit_server", skip_all)]
    pub async fn edit_server(&self, edit: &ServerEdit<'_>) -> Result<ServerInfo, PostmarkError> {
        let (status, body) = self.call(Method::PUT, &["server"], &[], Some(edit)).await?;
        decode(status, body)
    }

    /// The server's message streams (`GET /message-streams`; Postmark's defaults: every type,
    /// archived streams left out).
    #[tracing::instrument(name = "postmark.list_message_streams", skip_all)]
    pub async fn list_message_streams(&self) -> Result<Vec<MessageStreamInfo>, PostmarkError> {
        let envelope: MessageStreamsEnvelope = self.get_json(&["message-streams"], &[]).await?;
        Ok(envelope.message_streams)
    }

    /// The server's webhooks (`GET /webhooks`), all of them or those of one stream
    /// (`?MessageStream=`). Not paged. The answers hold `HttpAuth` passwords in clear text.
    #[tracing::instrument(name = "postmark.list_webhooks", skip(self))]
    pub async fn list_webhooks(&self, stream: Option<&str>) -> Result<Vec<Webhook>, PostmarkError> {
        let query: Vec<(&str, &str)> = stream
            .map(|stream| ("MessageStream", stream))
            .into_iter()
            .collect();
        let envelope: WebhooksEnvelope = self.get_json(&["webhooks"], &query).await?;
        Ok(envelope.webhooks)
    }

    /// One webhook (`GET /webhooks/{id}`); an unknown id is HTTP 422 (ErrorCode 1352).
    #[tracing::instrument(name = "postmark.webhook", skip(self))]
    pub async fn webhook(&self, id: i64) -> Result<Webhook, PostmarkError> {
        self.get_json(&["webhooks", &id.to_string()], &[]).await
    }

    /// Creates a webhook (`POST /webhooks`) and answers it with its new `ID`.
    ///
    /// Postmark first test-posts every enabled trigger (unless `Verify` is false) and saves nothing
    /// when one fails: [`PostmarkError::WebhookNotVerified`] when it answers the per-trigger results,
    /// else an [`crate::ApiError`] with ErrorCode 1364. `Verify`, when set, is sent both as the body
    /// field the docs describe and as the `verify` query parameter Postmark's error text names.
    #[tracing::instrument(name = "postmark.create_webhook", skip_all, fields(stream = webhook.message_stream))]
    pub async fn create_webhook(&self, webhook: &NewWebhook<'_>) -> Result<Webhook, PostmarkError> {
        self.save_webhook(Method::POST, &["webhooks"], webhook, webhook.verify)
            .await
    }

    /// Changes a webhook (`PUT /webhooks/{id}`); Postmark merges the fields sent with what it has.
    /// Verification as for [`PostmarkClient::create_webhook`]; on failure the webhook is unchanged.
    #[tracing::instrument(name = "postmark.edit_webhook", skip(self, edit))]
    pub async fn edit_webhook(
        &self,
        id: i64,
        edit: &WebhookEdit<'_>,
    ) -> Result<Webhook, PostmarkError> {
        let id = id.to_string();
        self.save_webhook(Method::PUT, &["webhooks", &id], edit, edit.verify)
            .await
    }

    /// Deletes a webhook (`DELETE /webhooks/{id}`).
    #[tracing::instrument(name = "postmark.delete_webhook", skip(self))]
    pub async fn delete_webhook(&self, id: i64) -> Result<(), PostmarkError> {
        let id = id.to_string();
        let (status, body) = self
            .call::<()>(Method::DELETE, &["webhooks", &id], &[], None)
            .await?;
        // `{"ErrorCode":0,"Message":"Webhook 1234 removed."}`; an ErrorCode other than 0 is an error.
        decode::<Value>(status, body).map(drop)
    }

    /// Test-posts every enabled trigger of a webhook (`POST /webhooks/{id}/verify`). Postmark
    /// answers HTTP 200 also when it failed: see [`WebhookVerification::succeeded`].
    #[tracing::instrument(name = "postmark.verify_webhook", skip(self))]
    pub async fn verify_webhook(&self, id: i64) -> Result<WebhookVerification, PostmarkError> {
        let id = id.to_string();
        let (status, body) = self
            .call::<()>(Method::POST, &["webhooks", &id, "verify"], &[], None)
            .await?;
        decode(status, body)
    }

    /// A webhook's delivery figures of the last 24 hours and its triggers' verification
    /// (`GET /webhooks/{id}/statistics`).
    #[tracing::instrument(name = "postmark.webhook_statistics", skip(self))]
    pub async fn webhook_statistics(&self, id: i64) -> Result<WebhookStatistics, PostmarkError> {
        self.get_json(&["webhooks", &id.to_string(), "statistics"], &[])
            .await
    }

    /// Bounces (`GET /bounces`), SMTP API errors included (`Type` `SMTPApiError`). A `count`
    /// outside 1..=500 or `count + offset` above 10,000 is [`PostmarkError::InvalidSearch`] before
    /// any request.
    #[tracing::instrument(name = "postmark.bounces", skip_all, fields(count = query.count(), offset = query.skipped()))]
    pub async fn bounces(&self, query: &BounceQuery) -> Result<Bounces, PostmarkError> {
        check_paging(query.paging_ok(), query.count(), query.skipped())?;
        let pairs = query.pairs();
        self.get_json(&["bounces"], &borrow_pairs(&pairs)).await
    }

    /// One bounce (`GET /bounces/{id}`).
    #[tracing::instrument(name = "postmark.bounce", skip(self))]
    pub async fn bounce(&self, id: i64) -> Result<Bounce, PostmarkError> {
        self.get_json(&["bounces", &id.to_string()], &[]).await
    }

    /// Opens of sent messages (`GET /messages/outbound/opens`); Postmark keeps only the first
    /// open of each recipient. Paging is checked as for [`PostmarkClient::bounces`].
    #[tracing::instrument(name = "postmark.opens", skip_all, fields(count = query.count(), offset = query.skipped()))]
    pub async fn opens(&self, query: &TrackingQuery) -> Result<Opens, PostmarkError> {
        check_paging(query.paging_ok(), query.count(), query.skipped())?;
        let pairs = query.pairs();
        self.get_json(&["messages", "outbound", "opens"], &borrow_pairs(&pairs))
            .await
    }

    /// Link clicks of sent messages (`GET /messages/outbound/clicks`), one per recipient and link.
    #[tracing::instrument(name = "postmark.clicks", skip_all, fields(count = query.count(), offset = query.skipped()))]
    pub async fn clicks(&self, query: &TrackingQuery) -> Result<Clicks, PostmarkError> {
        check_paging(query.paging_ok(), query.count(), query.skipped())?;
        let pairs = query.pairs();
        self.get_json(&["messages", "outbound", "clicks"], &borrow_pairs(&pairs))
            .await
    }

    /// The opens of one message (`GET /messages/outbound/opens/{message_id}`).
    ///
    /// Postmark answers ErrorCode 701 ("This message was not found.") for a message nobody has
    /// opened yet, so 701 reads as an empty list here, not as an error.
    #[tracing::instrument(name = "postmark.message_opens", skip(self))]
    pub async fn message_opens(
        &self,
        message_id: &str,
        count: u32,
        offset: u32,
    ) -> Result<Opens, PostmarkError> {
        self.per_message(
            &["messages", "outbound", "opens", message_id],
            count,
            offset,
        )
        .await
    }

    /// The clicks of one message (`GET /messages/outbound/clicks/{message_id}`); 701 reads as an
    /// empty list, as for [`PostmarkClient::message_opens`].
    #[tracing::instrument(name = "postmark.message_clicks", skip(self))]
    pub async fn message_clicks(
        &self,
        message_id: &str,
        count: u32,
        offset: u32,
    ) -> Result<Clicks, PostmarkError> {
        self.per_message(
            &["messages", "outbound", "clicks", message_id],
            count,
            offset,
        )
        .await
    }

    async fn per_message<T: DeserializeOwned + Default>(
        &self,
        path: &[&str],
        count: u32,
        offset: u32,
    ) -> Result<T, PostmarkError> {
        check_paging(crate::messages::paging_ok(count, offset), count, offset)?;
        let (count, offset) = (count.to_string(), offset.to_string());
        match self
            .get_json(
                path,
                &[("count", count.as_str()), ("offset", offset.as_str())],
            )
            .await
        {
            Err(PostmarkError::Api(api)) if api.is_message_not_found() => Ok(T::default()),
            other => other,
        }
    }

    async fn save_webhook<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &[&str],
        body: &B,
        verify: Option<bool>,
    ) -> Result<Webhook, PostmarkError> {
        let verify = verify.map(|verify| if verify { "true" } else { "false" });
        let query: Vec<(&str, &str)> = verify.map(|v| ("verify", v)).into_iter().collect();
        let (status, bytes) = self.call_raw(method, path, &query, Some(body)).await?;
        if !status.is_success()
            && let Some(error) = verification_failure(status, &bytes)
        {
            return Err(error);
        }
        let (status, body) = interpret(status, &bytes)?;
        decode(status, body)
    }

    async fn change_suppressions<A: AsRef<str>>(
        &self,
        path: &[&str],
        addresses: &[A],
    ) -> Result<Vec<SuppressionChange>, PostmarkError> {
        #[derive(Serialize)]
        struct Entry<'a> {
            #[serde(rename = "EmailAddress")]
            email_address: &'a str,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "Suppressions")]
            suppressions: Vec<Entry<'a>>,
        }
        let body = Body {
            suppressions: addresses
                .iter()
                .map(|address| Entry {
                    email_address: address.as_ref(),
                })
                .collect(),
        };
        let (status, body) = self.call(Method::POST, path, &[], Some(&body)).await?;
        let envelope: SuppressionsEnvelope<SuppressionChange> = decode(status, body)?;
        Ok(envelope.suppressions)
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, &str)],
    ) -> Result<T, PostmarkError> {
        let (status, body) = self.call::<()>(Method::GET, path, query, None).await?;
        decode(status, body)
    }

    fn url(&self, path: &[&str], query: &[(&str, &str)]) -> Result<Url, PostmarkError> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|()| PostmarkError::InvalidBaseUrl {
                url: self.base_url.to_string(),
            })?
            .pop_if_empty()
            .extend(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Makes the request; answers the status and JSON body of a success, or the classified error.
    async fn call<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&B>,
    ) -> Result<(StatusCode, Value), PostmarkError> {
        let (status, bytes) = self.call_raw(method, path, query, body).await?;
        interpret(status, &bytes)
    }

    /// Makes the request; answers the status and body as they came.
    async fn call_raw<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&B>,
    ) -> Result<(StatusCode, bytes::Bytes), PostmarkError> {
        let url = self.url(path, query)?;
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(JSON));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
        headers.insert(SERVER_TOKEN_HEADER, self.token.clone());
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("postmark-integration/", env!("CARGO_PKG_VERSION"))),
        );
        let mut request = self
            .http
            .request(method.clone(), url)
            .headers(headers)
            .timeout(self.timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let started = Instant::now();
        let response = request.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?;
        tracing::debug!(
            %method,
            path = %path.first().copied().unwrap_or_default(),
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "postmark answered"
        );
        Ok((status, bytes))
    }

    fn transport_error(&self, source: reqwest::Error) -> PostmarkError {
        if source.is_timeout() {
            PostmarkError::Timeout {
                timeout: self.timeout,
                source,
            }
        } else if source.is_connect() || source.is_request() || source.is_body() {
            PostmarkError::Connection { source }
        } else {
            PostmarkError::Http { source }
        }
    }
}

/// Refuses paging Postmark would refuse, before any request.
fn check_paging(ok: bool, count: u32, offset: u32) -> Result<(), PostmarkError> {
    if ok {
        Ok(())
    } else {
        Err(PostmarkError::InvalidSearch {
            count,
            offset,
            max_count: MAX_SEARCH_COUNT,
            max_window: MAX_SEARCH_WINDOW,
        })
    }
}

fn borrow_pairs<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    pairs
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

/// A refused webhook save whose body is a verification result (`Results`, `Success: false`).
fn verification_failure(status: StatusCode, bytes: &[u8]) -> Option<PostmarkError> {
    let body: Value = serde_json::from_slice(bytes).ok()?;
    if !body.get("Results").is_some_and(Value::is_array) {
        return None;
    }
    let verification = WebhookVerification::deserialize(&body).ok()?;
    Some(PostmarkError::WebhookNotVerified {
        http_status: status.as_u16(),
        error_code: body
            .get("ErrorCode")
            .and_then(crate::serde_util::value_as_i64)
            .filter(|code| *code != 0),
        verification: Box::new(verification),
    })
}

/// Sorts an HTTP answer into a JSON success or a classified error.
fn interpret(status: StatusCode, bytes: &[u8]) -> Result<(StatusCode, Value), PostmarkError> {
    let json = serde_json::from_slice::<Value>(bytes);
    if status.is_success() {
        return match json {
            Ok(value) => Ok((status, value)),
            Err(source) => Err(PostmarkError::UnexpectedResponse {
                status: status.as_u16(),
                body_excerpt: excerpt(bytes),
                source: Some(source),
            }),
        };
    }
    match json {
        Ok(Value::Object(object)) => {
            let code = object
                .get("ErrorCode")
                .and_then(crate::serde_util::value_as_i64);
            let message = object
                .get("Message")
                .and_then(Value::as_str)
                .map_or_else(|| excerpt(bytes), str::to_owned);
            Err(ApiError::new(status.as_u16(), code, message).into())
        }
        _ if status == StatusCode::FORBIDDEN => Err(PostmarkError::BlockedByNetwork {
            status: status.as_u16(),
            body_excerpt: excerpt(bytes),
        }),
        _ => {
            let text = excerpt(bytes);
            let message = if text.is_empty() {
                status.canonical_reason().unwrap_or("no body").to_owned()
            } else {
                text
            };
            Err(ApiError::new(status.as_u16(), None, message).into())
        }
    }
}

/// One send answer: `Ok(Ok)` accepted, `Err` Postmark's error for it, `Ok(Err)` the answer given back
/// when it is not an object that reads as a receipt.
fn item_outcome(status: u16, item: Value) -> Result<Result<SendReceipt, Value>, ApiError> {
    if !item.is_object() {
        return Ok(Err(item));
    }
    let code = item
        .get("ErrorCode")
        .and_then(crate::serde_util::value_as_i64)
        .filter(|code| *code != 0);
    if let Some(code) = code {
        let message = item
            .get("Message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Err(ApiError::new(status, Some(code), message));
    }
    // Read in place: the answer is only needed again when it does not read.
    Ok(SendReceipt::deserialize(&item).map_err(|_| item))
}

fn decode<T: DeserializeOwned>(status: StatusCode, body: Value) -> Result<T, PostmarkError> {
    if let Some(code) = body
        .get("ErrorCode")
        .and_then(crate::serde_util::value_as_i64)
        .filter(|code| *code != 0)
    {
        let message = body
            .get("Message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return Err(ApiError::new(status.as_u16(), Some(code), message).into());
    }
    T::deserialize(&body).map_err(|source| unexpected(status, &body, Some(source)))
}

fn unexpected(
    status: StatusCode,
    body: &Value,
    source: Option<serde_json::Error>,
) -> PostmarkError {
    PostmarkError::UnexpectedResponse {
        status: status.as_u16(),
        body_excerpt: excerpt(body.to_string().as_bytes()),
        source,
    }
}

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_base_path_and_escape_ids() {
        let client = PostmarkClient::new(
            "http://127.0.0.1:9/sim/".parse().unwrap(),
            ServerToken::new("t"),
            DEFAULT_TIMEOUT,
        )
        .unwrap();
        let url = client
            .url(
                &["message-streams", "a/b c", "suppressions"],
                &[("Origin", "Recipient")],
            )
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/sim/message-streams/a%2Fb%20c/suppressions?Origin=Recipient"
        );
    }

    #[test]
    fn rejects_unusable_settings() {
        assert!(matches!(
            PostmarkClient::new(
                "mailto:x@y".parse().unwrap(),
                ServerToken::new("t"),
                DEFAULT_TIMEOUT
            ),
            Err(PostmarkError::InvalidBaseUrl { .. })
        ));
        let error = PostmarkClient::new(
            DEFAULT_BASE_URL.parse().unwrap(),
            ServerToken::new("secret\nvalue"),
            DEFAULT_TIMEOUT,
        )
        .unwrap_err();
        assert!(matches!(error, PostmarkError::InvalidToken));
        assert!(!error.to_string().contains("secret"));
    }

    #[test]
    fn debug_hides_the_token() {
        let client = PostmarkClient::new(
            DEFAULT_BASE_URL.parse().unwrap(),
            ServerToken::new("very-secret-token"),
            DEFAULT_TIMEOUT,
        )
        .unwrap();
        assert!(!format!("{client:?}").contains("very-secret-token"));
    }
}
