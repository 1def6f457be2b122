//! The feed step: the batch's records that are outcomes the platform cares about become feed events
//! ([`domain::feed`]) and are published to the bus, at least once.
//!
//! - An event's counted record, inserted when the webhook function recorded the event (one record per
//!   event: a redelivered webhook inserts nothing), becomes the event's feed event.
//!
//! Everything else (activity entries beside a record, counters, markers, subscribers, expiring records)
//! is not an outcome. A batch handed over again publishes the same events again, with the same ids.

use domain::feed::FeedEvent;
use store::StoreError;
use store::events::{counted_event, recorded_event};
use store::feed::Published;
use store::stream::{Change, StreamRecord};
use tracing::info;

use crate::App;

/// The feed events of a batch's records, in the records' order.
pub fn feed_events(records: &[StreamRecord]) -> Vec<FeedEvent> {
    records.iter().filter_map(feed_event).collect()
}

fn feed_event(record: &StreamRecord) -> Option<FeedEvent> {
    let image = record.new_image.as_ref()?;
    if record.change != Change::Insert || counted_event(image).is_none() {
        return None;
    }
    let (event, standing_unchanged) = recorded_event(image)?;
    FeedEvent::from_event(&event, standing_unchanged)
}

/// Publishes the batch's feed events. Without a bus, nothing is published.
pub async fn publish(app: &App, records: &[StreamRecord]) -> Result<Published, StoreError> {
    let Some(publisher) = &app.feed else {
        return Ok(Published::default());
    };
    let events = feed_events(records);
    if events.is_empty() {
        return Ok(Published::default());
    }
    let published = publisher.publish(&events).await?;
    info!(
        accepted = published.accepted,
        left_out = published.left_out,
        "feed published"
    );
    Ok(published)
}
