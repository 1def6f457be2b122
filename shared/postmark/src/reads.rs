//! Read-side lists: bounces (`GET /bounces`), opens and clicks (`GET /messages/outbound/opens`,
//! `.../clicks`). Their items are the webhook record types ([`Bounce`], [`Open`], [`Click`]): the API
//! answers the same objects Postmark posts.

use chrono::NaiveDateTime;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::bounce::BounceType;
use crate::messages::{EASTERN_DATE, paging_ok};
use crate::webhook::{Bounce, Click, Open};

/// Filters of `GET /bounces`, built step by step.
///
/// ```
/// use postmark::{BounceQuery, BounceType};
///
/// let query = BounceQuery::new(500)
///     .bounce_type(BounceType::HardBounce)
///     .inactive(true)
///     .stream("outbound");
/// assert_eq!(query.count(), 500);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceQuery {
    count: u32,
    offset: u32,
    bounce_type: Option<BounceType>,
    inactive: Option<bool>,
    email_filter: Option<String>,
    tag: Option<String>,
    message_id: Option<String>,
    from_date: Option<NaiveDateTime>,
    to_date: Option<NaiveDateTime>,
    message_stream: Option<String>,
}

impl BounceQuery {
    /// The first `count` bounces (1 to [`crate::MAX_SEARCH_COUNT`]; checked when the query is made).
    pub fn new(count: u32) -> Self {
        Self {
            count,
            offset: 0,
            bounce_type: None,
            inactive: None,
            email_filter: None,
            tag: None,
            message_id: None,
            from_date: None,
            to_date: None,
            message_stream: None,
        }
    }

    /// Skips this many (`count + offset` at most [`crate::MAX_SEARCH_WINDOW`]).
    pub fn offset(mut self, offset: u32) -> Self {
        self.offset = offset;
        self
    }

    /// Only this `Type` (e.g. [`BounceType::SMTPApiError`]).
    pub fn bounce_type(mut self, bounce_type: BounceType) -> Self {
        self.bounce_type = Some(bounce_type);
        self
    }

    /// Only bounces whose address Postmark deactivated (`true`) or did not (`false`).
    pub fn inactive(mut self, inactive: bool) -> Self {
        self.inactive = Some(inactive);
        self
    }

    /// Only addresses matching this (full or partial) address.
    pub fn email_filter(mut self, email: impl Into<String>) -> Self {
        self.email_filter = Some(email.into());
        self
    }

    /// Only this tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Only the bounces of this message.
    pub fn message_id(mut self, message_id: impl Into<String>) -> Self {
        self.message_id = Some(message_id.into());
        self
    }

    /// Only bounces at or after this time, read by Postmark as US Eastern Time (see
    /// [`crate::OutboundSearch::from_date`]).
    pub fn from_date(mut self, eastern: NaiveDateTime) -> Self {
        self.from_date = Some(eastern);
        self
    }

    /// Only bounces at or before this time, US Eastern Time.
    pub fn to_date(mut self, eastern: NaiveDateTime) -> Self {
        self.to_date = Some(eastern);
        self
    }

    /// Only this stream (without it Postmark is said to answer the `outbound` stream only).
    pub fn stream(mut self, stream: impl Into<String>) -> Self {
        self.message_stream = Some(stream.into());
        self
    }

    /// Bounces per page.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bounces skipped.
    pub fn skipped(&self) -> u32 {
        self.offset
    }

    pub(crate) fn paging_ok(&self) -> bool {
        paging_ok(self.count, self.offset)
    }

    /// The query string pairs, in a fixed order.
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            ("count", self.count.to_string()),
            ("offset", self.offset.to_string()),
        ];
        if let Some(bounce_type) = &self.bounce_type {
            pairs.push(("type", bounce_type.as_str().to_owned()));
        }
        if let Some(inactive) = self.inactive {
            pairs.push(("inactive", inactive.to_string()));
        }
        let texts = [
            ("emailFilter", &self.email_filter),
            ("tag", &self.tag),
            ("messageID", &self.message_id),
        ];
        for (name, value) in texts {
            if let Some(value) = value {
                pairs.push((name, value.clone()));
            }
        }
        push_dates(&mut pairs, self.from_date, self.to_date);
        if let Some(stream) = &self.message_stream {
            pairs.push(("messagestream", stream.clone()));
        }
        pairs
    }
}

/// Filters of `GET /messages/outbound/opens` and `.../clicks`, built step by step.
///
/// ```
/// use postmark::TrackingQuery;
///
/// let query = TrackingQuery::new(100).recipient("ada@example.org").stream("broadcast");
/// assert_eq!(query.count(), 100);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingQuery {
    count: u32,
    offset: u32,
    recipient: Option<String>,
    tag: Option<String>,
    filters: Vec<(&'static str, String)>,
    from_date: Option<NaiveDateTime>,
    to_date: Option<NaiveDateTime>,
    message_stream: Option<String>,
}

impl TrackingQuery {
    /// The first `count` opens or clicks (1 to [`crate::MAX_SEARCH_COUNT`]).
    pub fn new(count: u32) -> Self {
        Self {
            count,
            offset: 0,
            recipient: None,
            tag: None,
            filters: Vec::new(),
            from_date: None,
            to_date: None,
            message_stream: None,
        }
    }

    /// Skips this many (`count + offset` at most [`crate::MAX_SEARCH_WINDOW`]).
    pub fn offset(mut self, offset: u32) -> Self {
        self.offset = offset;
        self
    }

    /// Only this recipient (To, Cc or Bcc).
    pub fn recipient(mut self, recipient: impl Into<String>) -> Self {
        self.recipient = Some(recipient.into());
        self
    }

    /// Only this tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Only this email client name (`client_name`, e.g. `Gmail`).
    pub fn client_name(self, name: impl Into<String>) -> Self {
        self.filter("client_name", name)
    }

    /// Only this operating system name (`os_name`).
    pub fn os_name(self, name: impl Into<String>) -> Self {
        self.filter("os_name", name)
    }

    /// Only this platform (`platform`: `WebMail`, `Desktop`, `Mobile`, `Unknown`).
    pub fn platform(self, platform: impl Into<String>) -> Self {
        self.filter("platform", platform)
    }

    /// Only this country (`country`).
    pub fn country(self, country: impl Into<String>) -> Self {
        self.filter("country", country)
    }

    /// Only opens or clicks at or after this time, US Eastern Time (`fromdate`; documented by
    /// Postmark's newer client only).
    pub fn from_date(mut self, eastern: NaiveDateTime) -> Self {
        self.from_date = Some(eastern);
        self
    }

    /// Only opens or clicks at or before this time, US Eastern Time (`todate`).
    pub fn to_date(mut self, eastern: NaiveDateTime) -> Self {
        self.to_date = Some(eastern);
        self
    }

    /// Only this stream.
    pub fn stream(mut self, stream: impl Into<String>) -> Self {
        self.message_stream = Some(stream.into());
        self
    }

    /// Items per page.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Items skipped.
    pub fn skipped(&self) -> u32 {
        self.offset
    }

    fn filter(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.filters.retain(|(known, _)| *known != name);
        self.filters.push((name, value.into()));
        self
    }

    pub(crate) fn paging_ok(&self) -> bool {
        paging_ok(self.count, self.offset)
    }

    /// The query string pairs, in a fixed order.
    pub(crate) fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![
            ("count", self.count.to_string()),
            ("offset", self.offset.to_string()),
        ];
        if let Some(recipient) = &self.recipient {
            pairs.push(("recipient", recipient.clone()));
        }
        if let Some(tag) = &self.tag {
            pairs.push(("tag", tag.clone()));
        }
        pairs.extend(self.filters.iter().cloned());
        push_dates(&mut pairs, self.from_date, self.to_date);
        if let Some(stream) = &self.message_stream {
            pairs.push(("messagestream", stream.clone()));
        }
        pairs
    }
}

fn push_dates(
    pairs: &mut Vec<(&'static str, String)>,
    from: Option<NaiveDateTime>,
    to: Option<NaiveDateTime>,
) {
    if let Some(from) = from {
        pairs.push(("fromdate", from.format(EASTERN_DATE).to_string()));
    }
    if let Some(to) = to {
        pairs.push(("todate", to.format(EASTERN_DATE).to_string()));
    }
}

/// One page of `GET /bounces`: `TotalCount` counts every match, not only this page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bounces {
    /// `TotalCount`.
    pub total_count: u64,
    /// `Bounces`.
    pub bounces: Vec<Bounce>,
}

/// One page of opens: `TotalCount` counts every match. Postmark stores only the first open of
/// each recipient.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Opens {
    /// `TotalCount`.
    pub total_count: u64,
    /// `Opens`.
    pub opens: Vec<Open>,
}

/// One page of clicks: `TotalCount` counts every match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Clicks {
    /// `TotalCount`.
    pub total_count: u64,
    /// `Clicks`.
    pub clicks: Vec<Click>,
}

/// Reads `{TotalCount, <key>: [...]}`; items that are not objects are left out, objects are read
/// tolerantly.
fn page<'de, D, T>(deserializer: D, key: &str) -> Result<(u64, Vec<T>), D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let Value::Object(mut object) = Value::deserialize(deserializer)? else {
        return Err(serde::de::Error::custom("expected a JSON object"));
    };
    let total = object
        .get("TotalCount")
        .and_then(crate::serde_util::value_as_i64)
        .and_then(|count| u64::try_from(count).ok())
        .unwrap_or_default();
    let items = match object.remove(key) {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter(Value::is_object)
            .map(|item| T::deserialize(item).map_err(serde::de::Error::custom))
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    Ok((total, items))
}

impl<'de> Deserialize<'de> for Bounces {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (total_count, bounces) = page(deserializer, "Bounces")?;
        Ok(Self {
            total_count,
            bounces,
        })
    }
}

impl<'de> Deserialize<'de> for Opens {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (total_count, opens) = page(deserializer, "Opens")?;
        Ok(Self { total_count, opens })
    }
}

impl<'de> Deserialize<'de> for Clicks {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (total_count, clicks) = page(deserializer, "Clicks")?;
        Ok(Self {
            total_count,
            clicks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_str<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    #[test]
    fn bounce_query_pairs_follow_postmarks_names() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let query = BounceQuery::new(50)
            .offset(10)
            .bounce_type(BounceType::SMTPApiError)
            .inactive(false)
            .email_filter("ada@")
            .tag("t")
            .message_id("m-1")
            .from_date(day.and_hms_opt(0, 0, 0).unwrap())
            .to_date(day.and_hms_opt(23, 59, 59).unwrap())
            .stream("broadcast");
        assert_eq!(
            as_str(&query.pairs()),
            [
                ("count", "50"),
                ("offset", "10"),
                ("type", "SMTPApiError"),
                ("inactive", "false"),
                ("emailFilter", "ada@"),
                ("tag", "t"),
                ("messageID", "m-1"),
                ("fromdate", "2026-11-01T00:00:00"),
                ("todate", "2026-11-01T23:59:59"),
                ("messagestream", "broadcast"),
            ]
        );
        assert_eq!(
            as_str(&BounceQuery::new(5).pairs()),
            [("count", "5"), ("offset", "0")]
        );
    }

    #[test]
    fn tracking_query_replaces_a_repeated_filter() {
        let query = TrackingQuery::new(1)
            .platform("Mobile")
            .client_name("Gmail")
            .platform("Desktop");
        assert_eq!(
            as_str(&query.pairs()),
            [
                ("count", "1"),
                ("offset", "0"),
                ("client_name", "Gmail"),
                ("platform", "Desktop"),
            ]
        );
        assert!(!TrackingQuery::new(0).paging_ok());
        assert!(TrackingQuery::new(500).offset(9_500).paging_ok());
        assert!(!TrackingQuery::new(500).offset(9_501).paging_ok());
        assert!(!BounceQuery::new(501).paging_ok());
    }
}
