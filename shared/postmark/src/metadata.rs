//! Message metadata as webhooks carry it.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `Metadata` object of a webhook.
///
/// Documented as string to string, but real payloads carry numbers (`{"user_id": 43}`) and other
/// values: they are kept as JSON values, and [`Metadata::get_str`] gives the string view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Metadata(pub Map<String, Value>);

impl Metadata {
    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// `key`'s value as a string: strings as they are, numbers and booleans as their JSON text,
    /// arrays and objects as compact JSON; `null` and a missing key give `None`.
    pub fn get_str(&self, key: &str) -> Option<Cow<'_, str>> {
        self.0.get(key).and_then(value_as_str)
    }

    /// Every entry in the string view (entries whose value is `null` are left out).
    pub fn to_string_map(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .filter_map(|(key, value)| {
                value_as_str(value).map(|text| (key.clone(), text.into_owned()))
            })
            .collect()
    }

    /// Adds or replaces an entry.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        self.0.insert(key.into(), value.into());
    }

    /// The entries.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

fn value_as_str(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(Cow::Borrowed(text)),
        other => Some(Cow::Owned(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn string_view_of_any_value() {
        let metadata: Metadata = serde_json::from_value(
            json!({"a": "x", "user_id": 43, "ok": true, "n": null, "o": {"k": 1}}),
        )
        .unwrap();
        assert_eq!(metadata.get_str("a").as_deref(), Some("x"));
        assert_eq!(metadata.get_str("user_id").as_deref(), Some("43"));
        assert_eq!(metadata.get_str("ok").as_deref(), Some("true"));
        assert_eq!(metadata.get_str("n"), None);
        assert_eq!(metadata.get_str("o").as_deref(), Some("{\"k\":1}"));
        assert_eq!(metadata.to_string_map().len(), 4);
    }
}
