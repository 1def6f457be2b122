//! Caps on the text kept from outside: DynamoDB refuses an item over 400 KB for good, so no field that
//! comes from a webhook, a job or an answer may grow without bound.

use serde_json::Value;

/// The longest string kept in an event's details (bounce details, descriptions, user agents, links).
pub const MAX_DETAIL_CHARS: usize = 2_000;
/// The longest reason kept with a rejected or failed job.
pub const MAX_REASON_CHARS: usize = 2_000;

/// `text` cut to at most `max` characters, marked with `…` where it was cut.
pub fn cap(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// Every string inside `value` (keys aside) cut to at most `max` characters.
pub fn cap_strings(value: &mut Value, max: usize) {
    match value {
        Value::String(s) if s.chars().count() > max => *s = cap(s, max),
        Value::Array(items) => items.iter_mut().for_each(|v| cap_strings(v, max)),
        Value::Object(map) => map.values_mut().for_each(|v| cap_strings(v, max)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn long_text_is_cut_on_a_character_and_short_text_kept() {
        assert_eq!(cap("short", 10), "short");
        assert_eq!(cap("abcdef", 6), "abcdef");
        let cut = cap("ééééééé", 4);
        assert_eq!(cut, "ééé…");
        assert_eq!(cut.chars().count(), 4);
    }

    #[test]
    fn every_string_in_a_document_is_capped() {
        let long = "x".repeat(100_000);
        let mut v = json!({"details": long, "nested": [{"ua": long}], "n": 5});
        cap_strings(&mut v, 10);
        assert_eq!(v["details"].as_str().unwrap().chars().count(), 10);
        assert_eq!(v["nested"][0]["ua"].as_str().unwrap().chars().count(), 10);
        assert_eq!(v["n"], 5);
        assert!(v.to_string().len() < 100);
    }
}
