//! The table's stream as Lambda delivers it: a batch of records, each with the item's keys and its new
//! and old images in DynamoDB's JSON (`{"S": "..."}`, `{"N": "1"}`, ...), read here into store items.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use domain::events::Event;

use crate::error::StoreError;
use crate::feed::job_of;
use crate::jobs::{JobRecord, JobStatus};
use crate::table::Item;

/// What happened to the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Insert,
    Modify,
    Remove,
}

/// One record of the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// Unique per record.
    pub event_id: String,
    /// The record's place in its shard: digits, increasing within the shard.
    pub sequence: String,
    pub change: Change,
    pub(crate) keys: Item,
    pub(crate) new_image: Option<Item>,
    pub(crate) old_image: Option<Item>,
}

/// A job item's change, as a record shows it: the job as it now is, and its status before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobChange {
    pub job: JobRecord,
    pub before: Option<JobStatus>,
}

impl StreamRecord {
    /// The event this record inserted, when it is an event's counted record (one per event), and whether
    /// its status change left the subscriber's standing as it was.
    pub fn recorded_event(&self) -> Option<(Event, bool)> {
        let image = self.new_image.as_ref()?;
        if self.change != Change::Insert {
            return None;
        }
        crate::events::counted_event(image)?;
        crate::events::recorded_event(image)
    }

    /// The job this record changed, when its item is a job's. A job item that cannot be read is an error.
    pub fn job_change(&self) -> Result<Option<JobChange>, StoreError> {
        let Some(job) = self.new_image.as_ref().map(job_of).transpose()?.flatten() else {
            return Ok(None);
        };
        let before = self
            .old_image
            .as_ref()
            .and_then(|old| job_of(old).ok().flatten())
            .and_then(|old| old.status);
        Ok(Some(JobChange { job, before }))
    }

    /// The record's sequence number in a form whose text order is the numeric order (sequence numbers
    /// have up to 40 digits, beyond any integer type).
    pub fn position(&self) -> String {
        format!("{:0>40}", self.sequence)
    }
}

/// Reads Lambda's DynamoDB stream event (`{"Records": [...]}`). A record that cannot be read fails the
/// whole batch: skipping it would lose an event, and Lambda retries the batch.
pub fn parse_event(event: &Value) -> Result<Vec<StreamRecord>, StoreError> {
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| StoreError::Corrupt("a stream event without Records".into()))?;
    records.iter().map(parse_record).collect()
}

fn parse_record(record: &Value) -> Result<StreamRecord, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("a stream record without {what}"));
    let change = match record.get("eventName").and_then(Value::as_str) {
        Some("INSERT") => Change::Insert,
        Some("MODIFY") => Change::Modify,
        Some("REMOVE") => Change::Remove,
        _ => return Err(corrupt("a known eventName")),
    };
    let dynamodb = record.get("dynamodb").ok_or_else(|| corrupt("dynamodb"))?;
    let image = |name: &str| dynamodb.get(name).map(item_of).transpose();
    Ok(StreamRecord {
        event_id: record
            .get("eventID")
            .and_then(Value::as_str)
            .ok_or_else(|| corrupt("eventID"))?
            .to_owned(),
        sequence: dynamodb
            .get("SequenceNumber")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| corrupt("a SequenceNumber"))?
            .to_owned(),
        change,
        keys: image("Keys")?.ok_or_else(|| corrupt("Keys"))?,
        new_image: image("NewImage")?,
        old_image: image("OldImage")?,
    })
}

/// An item in DynamoDB's JSON.
pub(crate) fn item_of(json: &Value) -> Result<Item, StoreError> {
    json.as_object()
        .ok_or_else(|| StoreError::Corrupt("an image that is not an object".into()))?
        .iter()
        .map(|(k, v)| Ok((k.clone(), attribute_of(v)?)))
        .collect()
}

fn attribute_of(json: &Value) -> Result<AttributeValue, StoreError> {
    let bad = || {
        StoreError::Corrupt(format!(
            "an attribute value DynamoDB does not write: {json}"
        ))
    };
    let obj = json.as_object().filter(|o| o.len() == 1).ok_or_else(bad)?;
    let (tag, value) = obj.iter().next().ok_or_else(bad)?;
    let text = || value.as_str().map(str::to_owned).ok_or_else(bad);
    let texts = || -> Result<Vec<String>, StoreError> {
        value
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
            .collect()
    };
    let blob = |s: &str| STANDARD.decode(s).map(Blob::new).map_err(|_| bad());
    Ok(match tag.as_str() {
        "S" => AttributeValue::S(text()?),
        "N" => AttributeValue::N(text()?),
        "B" => AttributeValue::B(blob(&text()?)?),
        "BOOL" => AttributeValue::Bool(value.as_bool().ok_or_else(bad)?),
        "NULL" => AttributeValue::Null(true),
        "SS" => AttributeValue::Ss(texts()?),
        "NS" => AttributeValue::Ns(texts()?),
        "BS" => AttributeValue::Bs(texts()?.iter().map(|s| blob(s)).collect::<Result<_, _>>()?),
        "L" => AttributeValue::L(
            value
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(attribute_of)
                .collect::<Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(item_of(value)?),
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_lambda_stream_event_reads_into_items_and_back() {
        let image = json!({
            "pk": {"S": "SUB#a@example.com"}, "n": {"N": "3"}, "ok": {"BOOL": true},
            "tags": {"SS": ["a", "b"]}, "nested": {"M": {"l": {"L": [{"S": "x"}, {"NULL": true}]}}},
            "raw": {"B": "aGk="},
        });
        let event = json!({"Records": [{
            "eventID": "e1", "eventName": "INSERT", "eventSource": "aws:dynamodb",
            "dynamodb": {"Keys": {"pk": {"S": "SUB#a@example.com"}}, "NewImage": image,
                         "SequenceNumber": "123", "StreamViewType": "NEW_AND_OLD_IMAGES"},
        }]});
        let records = parse_event(&event).unwrap();
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(r.change, Change::Insert);
        assert_eq!(r.old_image, None);
        assert_eq!(r.position().len(), 40);
        assert!(r.position().ends_with("0123"));
        let new = r.new_image.as_ref().unwrap();
        assert_eq!(new["n"], AttributeValue::N("3".into()));
        assert_eq!(new["ok"], AttributeValue::Bool(true));
        assert_eq!(
            new["tags"],
            AttributeValue::Ss(vec!["a".into(), "b".into()])
        );
        assert_eq!(new["raw"], AttributeValue::B(Blob::new(b"hi".to_vec())));
        let AttributeValue::M(nested) = &new["nested"] else {
            panic!("a map: {new:?}")
        };
        assert_eq!(
            nested["l"],
            AttributeValue::L(vec![
                AttributeValue::S("x".into()),
                AttributeValue::Null(true)
            ])
        );
    }

    #[test]
    fn a_record_that_cannot_be_read_fails_the_batch() {
        for bad in [
            json!({"Records": [{"eventID": "e", "eventName": "UPSERT", "dynamodb": {}}]}),
            json!({"Records": [{"eventID": "e", "eventName": "INSERT",
                   "dynamodb": {"Keys": {}, "SequenceNumber": "12a"}}]}),
            json!({"Records": [{"eventID": "e", "eventName": "INSERT",
                   "dynamodb": {"Keys": {"pk": {"Q": "x"}}, "SequenceNumber": "1"}}]}),
            json!({"records": []}),
        ] {
            assert!(parse_event(&bad).is_err(), "{bad}");
        }
    }
}
