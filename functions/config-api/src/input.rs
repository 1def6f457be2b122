//! Reading request input: the JSON body, query parameters, and field-by-field checks that collect every
//! problem so that one 422 names them all.

use std::collections::{BTreeMap, HashMap};

use lambda_http::{Body, Request};
use serde_json::{Map, Value};

use crate::http::{ApiError, MAX_BODY_BYTES};

/// Problems found in the input, by field path (`smtp.port`, `email_types[1]`).
#[derive(Debug, Default)]
pub struct Errors(BTreeMap<String, String>);

impl Errors {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.entry(field.into()).or_insert_with(|| message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `value` if nothing was wrong, else the 422.
    pub fn finish<T>(self, value: Option<T>) -> Result<T, ApiError> {
        match value {
            Some(v) if self.0.is_empty() => Ok(v),
            None if self.0.is_empty() => {
                tracing::error!("input was refused without saying why");
                Err(ApiError::internal())
            }
            _ => Err(ApiError::invalid(self.0)),
        }
    }
}

/// The request body as bytes: 413 when too large.
pub fn body_bytes(req: &Request) -> Result<&[u8], ApiError> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::too_large());
    }
    Ok(bytes)
}

/// The body as a JSON object: 400 when it is not JSON at all, 422 when it is JSON but not an object.
pub fn json_object(req: &Request) -> Result<Map<String, Value>, ApiError> {
    let bytes = body_bytes(req)?;
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not JSON ({}); send a JSON object with Content-Type: application/json",
            e.classify_name()
        ))
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::invalid_field("body", "must be a JSON object")),
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Eof => "it ends too early",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data | serde_json::error::Category::Io => "unreadable",
        }
    }
}

/// The query string's parameters (the first value of each).
pub fn query(req: &Request) -> HashMap<String, String> {
    let mut params = HashMap::new();
    if let Some(q) = req.uri().query() {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            params
                .entry(k.into_owned())
                .or_insert_with(|| v.into_owned());
        }
    }
    params
}

/// Refuses query parameters other than `allowed`.
pub fn only_params(params: &HashMap<String, String>, allowed: &[&str], errors: &mut Errors) {
    for name in params.keys() {
        if !allowed.contains(&name.as_str()) {
            errors.add(
                name.clone(),
                format!("unknown query parameter; accepted: {}", allowed.join(", ")),
            );
        }
    }
}

/// Page size from `limit`: 1..=100, default 50.
pub fn limit(params: &HashMap<String, String>, errors: &mut Errors) -> i32 {
    match params.get("limit") {
        None => 50,
        Some(text) => match text.parse::<i32>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                errors.add("limit", "must be a whole number from 1 to 100");
                50
            }
        },
    }
}

/// Refuses members other than `allowed` in an object at `path` (empty for the top level).
pub fn only_fields(obj: &Map<String, Value>, allowed: &[&str], path: &str, errors: &mut Errors) {
    for name in obj.keys() {
        if !allowed.contains(&name.as_str()) {
            errors.add(join(path, name), "unknown field");
        }
    }
}

pub fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// A string member (absent and null are `None`).
pub fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    path: &str,
    errors: &mut Errors,
) -> Option<&'a str> {
    match obj.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            errors.add(join(path, name), "must be a string");
            None
        }
    }
}

pub fn opt_bool(
    obj: &Map<String, Value>,
    name: &str,
    path: &str,
    errors: &mut Errors,
) -> Option<bool> {
    match obj.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            errors.add(join(path, name), "must be true or false");
            None
        }
    }
}

/// An object member (absent and null are `None`).
pub fn opt_object<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    path: &str,
    errors: &mut Errors,
) -> Option<&'a Map<String, Value>> {
    match obj.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map),
        Some(_) => {
            errors.add(join(path, name), "must be an object");
            None
        }
    }
}

/// A credential or other single-line text: not empty, no control characters, at most `max` characters.
pub fn single_line(value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        Err("must not be empty".into())
    } else if value.chars().count() > max {
        Err(format!("must be at most {max} characters"))
    } else if value.chars().any(char::is_control) {
        Err("must not contain line breaks or control characters".into())
    } else {
        Ok(())
    }
}

/// JSON merge patch (RFC 7396): members of `patch` replace those of `target`, objects merge, `null`
/// removes.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target_map) = target {
        for (k, v) in patch_map {
            if v.is_null() {
                target_map.remove(k);
            } else {
                merge_patch(target_map.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut target = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        merge_patch(
            &mut target,
            &json!({"a": null, "b": {"c": 9}, "e": [2, 3], "f": "new"}),
        );
        assert_eq!(
            target,
            json!({"b": {"c": 9, "d": 3}, "e": [2, 3], "f": "new"})
        );
    }

    #[test]
    fn single_line_refuses_empty_long_and_multi_line_text() {
        assert!(single_line("ok", 5).is_ok());
        assert!(single_line("", 5).is_err());
        assert!(single_line("toolong", 5).is_err());
        assert!(single_line("a\nb", 5).is_err());
    }
}
