//! Tolerant serde helpers for what Postmark sends.
//!
//! Postmark's payloads drift over time (fields appear, disappear, change type, numbers arrive as strings),
//! so every optional field of a response or webhook is read through one of these: a value of the wrong
//! type becomes `None` instead of failing the whole payload.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Timelike};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serializer};
use serde_json::Value;

/// Any `T`; a value that does not fit `T` (including `null`) becomes `None`.
pub(crate) fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    Ok(T::deserialize(value).ok())
}

/// A string; numbers and booleans are kept as their text, other shapes become `None`.
pub(crate) fn lenient_string<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Value::deserialize(deserializer)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

/// An integer, also when sent as a string (`"42"`) or as an integral float (`42.0`).
pub(crate) fn lenient_i64<'de, D>(deserializer: D) -> Result<Option<i64>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(value_as_i64(&Value::deserialize(deserializer)?))
}

/// A required integer (an ID), also when sent as a string; `null` or another shape fails.
pub(crate) fn required_i64<'de, D>(deserializer: D) -> Result<i64, D::Error>
where
    D: Deserializer<'de>,
{
    let value = Value::deserialize(deserializer)?;
    value_as_i64(&value)
        .ok_or_else(|| serde::de::Error::custom(format!("expected an integer id, got {value}")))
}

pub(crate) fn value_as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A boolean, also when sent as `"true"`/`"false"`.
pub(crate) fn lenient_bool<'de, D>(deserializer: D) -> Result<Option<bool>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Value::deserialize(deserializer)? {
        Value::Bool(b) => Some(b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    })
}

/// A Postmark timestamp (see [`parse_timestamp`]); anything unparseable becomes `None`.
pub(crate) fn lenient_timestamp<'de, D>(
    deserializer: D,
) -> Result<Option<DateTime<FixedOffset>>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Value::deserialize(deserializer)? {
        Value::String(s) => parse_timestamp(&s),
        _ => None,
    })
}

/// Writes a timestamp the way Postmark does (see [`format_timestamp`]).
pub(crate) fn serialize_timestamp<S>(
    value: &Option<DateTime<FixedOffset>>,
    serializer: S,
) -> Result<S::Ok, S::Error>
where
    S: Serializer,
{
    match value {
        Some(at) => serializer.serialize_str(&format_timestamp(at)),
        None => serializer.serialize_none(),
    }
}

/// Parses the timestamps Postmark sends: RFC 3339 with 0 to 7 (or more) fraction digits and `Z` or a
/// `±hh:mm` offset. A timestamp without an offset (seen in hand-written test payloads) is taken as UTC.
pub fn parse_timestamp(text: &str) -> Option<DateTime<FixedOffset>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at);
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc().fixed_offset())
}

/// Formats a timestamp like Postmark: seven fraction digits when there is a fraction, `Z` for UTC,
/// otherwise the offset (`2019-11-05T16:33:54.9070259Z`, `2014-02-17T07:25:01.4178645-05:00`).
pub fn format_timestamp(at: &DateTime<FixedOffset>) -> String {
    let mut text = at.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = at.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        text.push_str(&format!(".{:07}", nanos / 100));
    }
    if at.offset().local_minus_utc() == 0 {
        text.push('Z');
    } else {
        text.push_str(&at.format("%:z").to_string());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_observed_timestamp_form() {
        for text in [
            "2019-11-05T16:33:54.9070259Z",
            "2022-09-02T14:29:57.123456Z",
            "2014-08-01T13:28:10.2735393-04:00",
            "2022-06-05T17:17:32Z",
            "2016-12-01T15:41:45-05:00",
            "2019-12-17T08:58:33-05:00",
            "2020-02-01T10:53:34.4Z",
            "2020-02-01T10:53:34.416071",
        ] {
            assert!(parse_timestamp(text).is_some(), "{text}");
        }
        assert!(parse_timestamp("yesterday").is_none());
    }

    #[test]
    fn formats_like_postmark() {
        for text in [
            "2019-11-05T16:33:54.9070259Z",
            "2014-02-17T07:25:01.4178645-05:00",
            "2022-06-05T17:17:32Z",
        ] {
            let at = parse_timestamp(text).expect("parses");
            assert_eq!(format_timestamp(&at), text);
        }
    }

    #[test]
    fn integers_arrive_in_many_shapes() {
        assert_eq!(value_as_i64(&serde_json::json!(42)), Some(42));
        assert_eq!(value_as_i64(&serde_json::json!("42")), Some(42));
        assert_eq!(value_as_i64(&serde_json::json!(42.0)), Some(42));
        assert_eq!(value_as_i64(&serde_json::json!(42.5)), None);
        assert_eq!(value_as_i64(&serde_json::json!([1])), None);
    }
}
