//! SQS helpers: the send queue with its dead-letter queue, enqueueing in batches, receiving and
//! deleting. The sender function is triggered by SQS itself; these serve producers, the local poller
//! that plays the event source mapping, and tests.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, QueueAttributeName, SendMessageBatchRequestEntry,
};

use crate::error::{StoreError, classify};

/// SQS's limit of entries in one batch call.
pub const SQS_BATCH_LIMIT: usize = 10;

/// A queue and the dead-letter queue its failed messages move to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePair {
    pub url: String,
    pub arn: String,
    pub dlq_url: String,
    pub dlq_arn: String,
}

async fn queue_arn(client: &Client, url: &str) -> Result<String, StoreError> {
    let attrs = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(classify)?;
    attrs
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| StoreError::Other(format!("queue {url} has no ARN").into()))
}

/// Creates `name` and `name-dlq`, with a redrive policy after `max_receive` receives.
pub async fn create_queue_with_dlq(
    client: &Client,
    name: &str,
    max_receive: u32,
    visibility_timeout_secs: u32,
) -> Result<QueuePair, StoreError> {
    let dlq_url = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await
        .map_err(classify)?
        .queue_url
        .unwrap_or_default();
    let dlq_arn = queue_arn(client, &dlq_url).await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": max_receive.to_string(),
    });
    let url = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_timeout_secs.to_string(),
        )
        .send()
        .await
        .map_err(classify)?
        .queue_url
        .unwrap_or_default();
    let arn = queue_arn(client, &url).await?;
    Ok(QueuePair {
        url,
        arn,
        dlq_url,
        dlq_arn,
    })
}

/// Enqueues message bodies, ten per request. Returns how many SQS refused (0 when all went in).
pub async fn send_bodies(
    client: &Client,
    url: &str,
    bodies: &[String],
) -> Result<usize, StoreError> {
    let mut refused = 0;
    for chunk in bodies.chunks(SQS_BATCH_LIMIT) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .map_err(StoreError::build)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = client
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(classify)?;
        refused += out.failed.len();
    }
    Ok(refused)
}

/// Receives up to `max` messages (at most 10 per call), waiting up to `wait_secs` for the first.
pub async fn receive(
    client: &Client,
    url: &str,
    max: i32,
    wait_secs: i32,
) -> Result<Vec<Message>, StoreError> {
    let out = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(max.clamp(1, 10))
        .wait_time_seconds(wait_secs.clamp(0, 20))
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(classify)?;
    Ok(out.messages.unwrap_or_default())
}

/// Deletes received messages by receipt handle, ten per request.
pub async fn delete(client: &Client, url: &str, receipts: &[String]) -> Result<(), StoreError> {
    for chunk in receipts.chunks(SQS_BATCH_LIMIT) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, r)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(r)
                    .build()
                    .map_err(StoreError::build)
            })
            .collect::<Result<Vec<_>, _>>()?;
        client
            .delete_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(classify)?;
    }
    Ok(())
}
