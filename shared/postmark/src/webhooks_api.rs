//! The Webhooks API (`/webhooks`): the webhook configurations of a server's streams.
//!
//! Not to be confused with [`crate::webhook`], the payloads Postmark posts to them.
//!
//! A webhook answer carries its `HttpAuth` password in clear text: `Debug` of these types never
//! prints it (nor header values, which may hold credentials too), but serialising them does.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::serde_util::{lenient, lenient_bool, lenient_i64, lenient_string};

/// `HttpAuth`: the basic-auth credentials Postmark sends with every webhook POST.
///
/// `Debug` hides the password.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HttpAuth {
    /// `Username`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub username: Option<String>,
    /// `Password` (Postmark answers it in clear text).
    #[serde(default, deserialize_with = "lenient_string")]
    pub password: Option<String>,
}

impl HttpAuth {
    /// Credentials `username:password`.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: Some(username.into()),
            password: Some(password.into()),
        }
    }
}

impl fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpAuth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// One of `HttpHeaders`: a header Postmark adds to every webhook POST.
///
/// `Debug` hides the value (it may be a credential, e.g. `Authorization`).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HttpHeader {
    /// `Name`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub name: Option<String>,
    /// `Value`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub value: Option<String>,
}

impl HttpHeader {
    /// A header `name: value`.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            value: Some(value.into()),
        }
    }
}

impl fmt::Debug for HttpHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpHeader")
            .field("name", &self.name)
            .field("value", &self.value.as_ref().map(|_| "***"))
            .finish()
    }
}

/// `Triggers.Open`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OpenTrigger {
    /// `Enabled`.
    #[serde(
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub enabled: Option<bool>,
    /// `PostFirstOpenOnly`: only the first open of each recipient is posted.
    #[serde(
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub post_first_open_only: Option<bool>,
}

/// `Triggers.Click`, `Triggers.Delivery`, `Triggers.SubscriptionChange`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Trigger {
    /// `Enabled`.
    #[serde(
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub enabled: Option<bool>,
}

/// `Triggers.Bounce`, `Triggers.SpamComplaint`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContentTrigger {
    /// `Enabled`.
    #[serde(
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub enabled: Option<bool>,
    /// `IncludeContent`: the payload carries the full dump in `Content`.
    #[serde(
        default,
        deserialize_with = "lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub include_content: Option<bool>,
}

/// `Triggers`: which records a webhook receives.
///
/// On edit Postmark merges: a trigger left out keeps its setting, so send every trigger you mean.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WebhookTriggers {
    /// `Open`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub open: Option<OpenTrigger>,
    /// `Click`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub click: Option<Trigger>,
    /// `Delivery`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub delivery: Option<Trigger>,
    /// `Bounce` (SMTP API errors come here too when the server has `EnableSmtpApiErrorHooks`).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub bounce: Option<ContentTrigger>,
    /// `SpamComplaint`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub spam_complaint: Option<ContentTrigger>,
    /// `SubscriptionChange`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub subscription_change: Option<Trigger>,
}

impl WebhookTriggers {
    /// Every trigger switched on or off (`PostFirstOpenOnly` and `IncludeContent` off).
    pub fn all(enabled: bool) -> Self {
        let on = Trigger {
            enabled: Some(enabled),
        };
        let content = ContentTrigger {
            enabled: Some(enabled),
            include_content: Some(false),
        };
        Self {
            open: Some(OpenTrigger {
                enabled: Some(enabled),
                post_first_open_only: Some(false),
            }),
            click: Some(on),
            delivery: Some(on),
            bounce: Some(content),
            spam_complaint: Some(content),
            subscription_change: Some(on),
        }
    }

    /// Whether Postmark posts opens (a missing trigger is off).
    pub fn open_enabled(&self) -> bool {
        self.open.and_then(|t| t.enabled).unwrap_or(false)
    }

    /// Whether Postmark posts clicks.
    pub fn click_enabled(&self) -> bool {
        self.click.and_then(|t| t.enabled).unwrap_or(false)
    }

    /// Whether Postmark posts deliveries.
    pub fn delivery_enabled(&self) -> bool {
        self.delivery.and_then(|t| t.enabled).unwrap_or(false)
    }

    /// Whether Postmark posts bounces.
    pub fn bounce_enabled(&self) -> bool {
        self.bounce.and_then(|t| t.enabled).unwrap_or(false)
    }

    /// Whether Postmark posts spam complaints.
    pub fn spam_complaint_enabled(&self) -> bool {
        self.spam_complaint.and_then(|t| t.enabled).unwrap_or(false)
    }

    /// Whether Postmark posts subscription changes.
    pub fn subscription_change_enabled(&self) -> bool {
        self.subscription_change
            .and_then(|t| t.enabled)
            .unwrap_or(false)
    }
}

/// A webhook as the Webhooks API answers it (`GET /webhooks/{id}`, and create/edit).
///
/// Only `ID` is required. `Debug` hides the `HttpAuth` password and header values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Webhook {
    /// `ID`.
    #[serde(rename = "ID", deserialize_with = "crate::serde_util::required_i64")]
    pub id: i64,
    /// `Url`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub url: Option<String>,
    /// `MessageStream`.
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub message_stream: Option<String>,
    /// `HttpAuth` (the password is in clear text: never log a serialised webhook).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub http_auth: Option<HttpAuth>,
    /// `HttpHeaders`.
    #[serde(
        default,
        deserialize_with = "lenient_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub http_headers: Vec<HttpHeader>,
    /// `Triggers`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub triggers: Option<WebhookTriggers>,
    /// `Status` (2026 docs: `verified` or `unverified`; an unverified webhook receives nothing).
    #[serde(
        default,
        deserialize_with = "lenient_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub status: Option<String>,
}

impl Webhook {
    /// True when Postmark says the webhook is not verified (it then receives no events).
    /// Absent `Status` (older answers) is not "unverified".
    pub fn is_unverified(&self) -> bool {
        self.status
            .as_deref()
            .is_some_and(|status| status.eq_ignore_ascii_case("unverified"))
    }
}

/// `POST /webhooks`: a new webhook.
///
/// ```
/// use postmark::{HttpAuth, NewWebhook, WebhookTriggers};
///
/// let auth = HttpAuth::new("hook", "secret");
/// let triggers = WebhookTriggers::all(true);
/// let hook = NewWebhook::new("https://example.com/hooks/postmark")
///     .message_stream("outbound")
///     .http_auth(&auth)
///     .triggers(&triggers);
/// let json = serde_json::to_value(&hook).unwrap();
/// assert_eq!(json["Url"], "https://example.com/hooks/postmark");
/// assert_eq!(json["Triggers"]["Bounce"]["Enabled"], true);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewWebhook<'a> {
    /// `Url` (required).
    pub url: &'a str,
    /// `MessageStream`; absent = `outbound`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_stream: Option<&'a str>,
    /// `HttpAuth`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_auth: Option<&'a HttpAuth>,
    /// `HttpHeaders`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_headers: Option<&'a [HttpHeader]>,
    /// `Triggers`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triggers: Option<&'a WebhookTriggers>,
    /// `Verify`: whether Postmark test-posts every enabled trigger before saving (its default:
    /// yes). A failed verification is HTTP 422 with ErrorCode 1364 and nothing is saved; `false`
    /// saves the webhook unverified, and it receives nothing until verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
}

impl<'a> NewWebhook<'a> {
    /// A webhook posting to `url`.
    pub fn new(url: &'a str) -> Self {
        Self {
            url,
            message_stream: None,
            http_auth: None,
            http_headers: None,
            triggers: None,
            verify: None,
        }
    }

    /// On this stream (it cannot be changed later).
    pub fn message_stream(mut self, stream: &'a str) -> Self {
        self.message_stream = Some(stream);
        self
    }

    /// With basic-auth credentials.
    pub fn http_auth(mut self, auth: &'a HttpAuth) -> Self {
        self.http_auth = Some(auth);
        self
    }

    /// With these headers.
    pub fn http_headers(mut self, headers: &'a [HttpHeader]) -> Self {
        self.http_headers = Some(headers);
        self
    }

    /// With these triggers.
    pub fn triggers(mut self, triggers: &'a WebhookTriggers) -> Self {
        self.triggers = Some(triggers);
        self
    }

    /// Sets `Verify` (see [`NewWebhook::verify`]).
    pub fn verify(mut self, verify: bool) -> Self {
        self.verify = Some(verify);
        self
    }
}

/// `PUT /webhooks/{id}`: changes to a webhook. Postmark merges: what is left out stays as it is,
/// and an empty `HttpHeaders` list removes the headers. `ID` and `MessageStream` cannot change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct WebhookEdit<'a> {
    /// `Url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<&'a str>,
    /// `HttpAuth`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_auth: Option<&'a HttpAuth>,
    /// `HttpHeaders` (`Some(&[])` removes them all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_headers: Option<&'a [HttpHeader]>,
    /// `Triggers`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triggers: Option<&'a WebhookTriggers>,
    /// `Verify`, as for [`NewWebhook::verify`]; on failure the webhook stays as it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
}

impl<'a> WebhookEdit<'a> {
    /// Changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new URL.
    pub fn url(mut self, url: &'a str) -> Self {
        self.url = Some(url);
        self
    }

    /// New credentials.
    pub fn http_auth(mut self, auth: &'a HttpAuth) -> Self {
        self.http_auth = Some(auth);
        self
    }

    /// New headers (empty removes them).
    pub fn http_headers(mut self, headers: &'a [HttpHeader]) -> Self {
        self.http_headers = Some(headers);
        self
    }

    /// New triggers.
    pub fn triggers(mut self, triggers: &'a WebhookTriggers) -> Self {
        self.triggers = Some(triggers);
        self
    }

    /// Sets `Verify`.
    pub fn verify(mut self, verify: bool) -> Self {
        self.verify = Some(verify);
        self
    }
}

/// One trigger's result in a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TriggerVerification {
    /// `TriggerType`, e.g. `Bounce`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub trigger_type: Option<String>,
    /// `Success`.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub success: Option<bool>,
    /// `StatusCode`: what the webhook URL answered.
    #[serde(default, deserialize_with = "lenient_i64")]
    pub status_code: Option<i64>,
    /// `Message`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub message: Option<String>,
}

/// The result of verifying a webhook (`POST /webhooks/{id}/verify`, HTTP 200 even when it
/// failed; also the body of a failed create or edit, when Postmark sends it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WebhookVerification {
    /// `Id` (spelled so here, unlike the webhook's `ID`).
    #[serde(rename = "Id", alias = "ID", default, deserialize_with = "lenient_i64")]
    pub id: Option<i64>,
    /// `Url`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub url: Option<String>,
    /// `Success`: every enabled trigger answered 200.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub success: Option<bool>,
    /// `Results`, one per trigger.
    #[serde(default, deserialize_with = "lenient_vec")]
    pub results: Vec<TriggerVerification>,
    /// `Message`, e.g. `4/5 triggers verified successfully`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub message: Option<String>,
}

impl WebhookVerification {
    /// True only when Postmark says it succeeded.
    pub fn succeeded(&self) -> bool {
        self.success == Some(true)
    }

    /// The triggers that failed.
    pub fn failed_triggers(&self) -> impl Iterator<Item = &TriggerVerification> {
        self.results
            .iter()
            .filter(|result| result.success != Some(true))
    }
}

/// Delivery figures of a webhook (`Metrics`, and per trigger in `MetricsByTrigger`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WebhookMetrics {
    /// `TotalRequests`.
    #[serde(default, deserialize_with = "lenient_i64")]
    pub total_requests: Option<i64>,
    /// `SuccessCount`.
    #[serde(default, deserialize_with = "lenient_i64")]
    pub success_count: Option<i64>,
    /// `FailureCount`.
    #[serde(default, deserialize_with = "lenient_i64")]
    pub failure_count: Option<i64>,
    /// `RetryCount`.
    #[serde(default, deserialize_with = "lenient_i64")]
    pub retry_count: Option<i64>,
    /// `SuccessRate`, in percent.
    #[serde(default, deserialize_with = "lenient")]
    pub success_rate: Option<f64>,
    /// `SlowCount`.
    #[serde(default, deserialize_with = "lenient_i64")]
    pub slow_count: Option<i64>,
    /// `VerySlowCount`.
    #[serde(default, deserialize_with = "lenient_i64")]
    pub very_slow_count: Option<i64>,
    /// `AverageTerminalResponseTimeMs`.
    #[serde(default, deserialize_with = "lenient")]
    pub average_terminal_response_time_ms: Option<f64>,
    /// `AverageRetryResponseTimeMs` (`null` without retries).
    #[serde(default, deserialize_with = "lenient")]
    pub average_retry_response_time_ms: Option<f64>,
}

/// `GET /webhooks/{id}/statistics`: the last 24 hours (rolling, not filterable), and whether
/// each trigger is verified. Postmark pauses a trigger that keeps failing until it is verified
/// again: [`WebhookStatistics::unverified_triggers`] names them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WebhookStatistics {
    /// `WebhookId`.
    #[serde(default, deserialize_with = "lenient_i64")]
    pub webhook_id: Option<i64>,
    /// `Url`.
    #[serde(default, deserialize_with = "lenient_string")]
    pub url: Option<String>,
    /// `Statuses`: trigger name to `verified` or `unverified`.
    #[serde(default, deserialize_with = "lenient")]
    pub statuses: Option<std::collections::BTreeMap<String, String>>,
    /// `Metrics`, all triggers together.
    #[serde(default, deserialize_with = "lenient")]
    pub metrics: Option<WebhookMetrics>,
    /// `MetricsByTrigger`.
    #[serde(default, deserialize_with = "lenient")]
    pub metrics_by_trigger: Option<std::collections::BTreeMap<String, WebhookMetrics>>,
}

impl WebhookStatistics {
    /// The triggers Postmark lists as not verified (they receive nothing until verified).
    pub fn unverified_triggers(&self) -> Vec<&str> {
        self.statuses
            .iter()
            .flatten()
            .filter(|(_, status)| status.eq_ignore_ascii_case("unverified"))
            .map(|(trigger, _)| trigger.as_str())
            .collect()
    }
}

/// `{"Webhooks": [...]}`.
#[derive(Debug, Deserialize)]
pub(crate) struct WebhooksEnvelope {
    #[serde(rename = "Webhooks", default)]
    pub(crate) webhooks: Vec<Webhook>,
}

/// A list whose items are read one by one; an item that does not read is left out.
pub(crate) fn lenient_vec<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|item| T::deserialize(item).ok())
            .collect(),
        _ => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_credentials() {
        let hook: Webhook = serde_json::from_str(
            r#"{"ID":1,"HttpAuth":{"Username":"u","Password":"pa55-word"},
                "HttpHeaders":[{"Name":"Authorization","Value":"Bearer xyz-123"}]}"#,
        )
        .unwrap();
        let shown = format!("{hook:?} {hook:#?}");
        assert!(!shown.contains("pa55-word"), "{shown}");
        assert!(!shown.contains("xyz-123"), "{shown}");
        assert!(shown.contains("Authorization"), "{shown}");
        assert_eq!(
            hook.http_auth.unwrap().password.as_deref(),
            Some("pa55-word")
        );
    }

    #[test]
    fn a_webhook_needs_its_id() {
        assert!(serde_json::from_str::<Webhook>(r#"{"Url":"https://x"}"#).is_err());
        assert!(serde_json::from_str::<Webhook>(r#"{"ID":null}"#).is_err());
        let hook: Webhook =
            serde_json::from_str(r#"{"ID":"7","Triggers":null,"HttpHeaders":null,"New":1}"#)
                .unwrap();
        assert_eq!(hook.id, 7);
        assert!(hook.triggers.is_none());
        assert!(hook.http_headers.is_empty());
    }
}
