//! Creates (or finds) the table, the send queue with its dead-letter queue, the secrets, and the feed's
//! bus with a rule routing every feed event to a queue.

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use serde::Serialize;
use store::StoreError;

/// Names of what the stack uses, the same variables the functions read.
#[derive(Debug, Clone, Serialize)]
pub struct Resources {
    pub table_name: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub dlq_url: String,
    pub secrets_prefix: String,
    pub webhook_password_secret: String,
    pub tracking_key_secret: String,
    pub admin_key_secret: String,
    pub event_bus_name: String,
    /// Where the rule on the bus sends every feed event.
    pub feed_queue_url: String,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub prefix: String,
    pub webhook_password: String,
    pub tracking_key: String,
    pub admin_key: String,
    /// Receives before a message moves to the dead-letter queue.
    pub max_receive: u32,
    pub visibility_timeout_secs: u32,
}

async fn ensure_secret(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: &str,
) -> Result<(), StoreError> {
    match client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .and_then(|s| s.code())
                .is_some_and(|c| c == "ResourceExistsException") =>
        {
            Ok(())
        }
        Err(e) => Err(store::error::classify(e)),
    }
}

/// Creates what is missing; what exists is kept.
pub async fn bootstrap(
    sdk: &aws_config::SdkConfig,
    settings: &Settings,
) -> Result<Resources, StoreError> {
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let secrets = aws_sdk_secretsmanager::Client::new(sdk);
    let p = &settings.prefix;
    let table_name = format!("{p}-table");
    let existing = dynamodb
        .list_tables()
        .send()
        .await
        .map_err(store::error::classify)?;
    if !existing.table_names().contains(&table_name) {
        store::schema::create_table(&dynamodb, &table_name).await?;
    }
    let queues = store::sqs::create_queue_with_dlq(
        &sqs,
        &format!("{p}-send"),
        settings.max_receive,
        settings.visibility_timeout_secs,
    )
    .await?;
    let events = store::feed::eventbridge_client(sdk, &store::aws::StorePolicy::default());
    let event_bus_name = format!("{p}-feed");
    let feed =
        store::feed::route_to_queue(&events, &sqs, &event_bus_name, &format!("{p}-feed")).await?;
    let resources = Resources {
        table_name,
        queue_url: queues.url,
        queue_arn: queues.arn,
        dlq_url: queues.dlq_url,
        secrets_prefix: format!("{p}/postmark"),
        webhook_password_secret: format!("{p}/webhook-password"),
        tracking_key_secret: format!("{p}/tracking-key"),
        admin_key_secret: format!("{p}/admin-key"),
        event_bus_name,
        feed_queue_url: feed.queue_url,
    };
    for (name, value) in [
        (
            &resources.webhook_password_secret,
            &settings.webhook_password,
        ),
        (&resources.tracking_key_secret, &settings.tracking_key),
        (&resources.admin_key_secret, &settings.admin_key),
    ] {
        ensure_secret(&secrets, name, value).await?;
    }
    Ok(resources)
}
