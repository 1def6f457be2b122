//! The AWS SDK configuration, loaded once per process, and the one way every function builds its
//! DynamoDB client: [`dynamodb_client`] with a [`StorePolicy`] (bounded retries with exponential backoff
//! and full jitter, attempt and operation timeouts, and transaction conflicts treated as transient).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_get_items::TransactGetItemsError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::CancellationReason;
use aws_smithy_runtime_api::client::interceptors::context::{
    Error as OperationError, InterceptorContext,
};
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use aws_smithy_types::retry::ErrorKind;

/// Loads the SDK configuration from the environment: region, credentials, and `AWS_ENDPOINT_URL` (or the
/// per-service variants) when a local emulator stands in for AWS.
pub async fn load_config() -> aws_config::SdkConfig {
    aws_config::load_from_env().await
}

/// How the DynamoDB client meets a slow, throttling or conflicting store.
///
/// Every attempt is bounded by `attempt_timeout` (a stuck connection is abandoned and retried), every
/// operation, retries and backoff included, by `operation_timeout`. Retries use the SDK's standard mode:
/// at most `max_attempts` attempts (the first included), exponential backoff from `initial_backoff` to
/// `max_backoff` with full jitter, and the SDK's retry quota so that an outage does not turn into a storm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorePolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub operation_timeout: Duration,
    pub attempt_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for StorePolicy {
    /// Sized for functions with a 10 s timeout whose requests make two or three DynamoDB calls: DynamoDB
    /// answers in milliseconds, so 2 s for one attempt and 4 s for one call only cut off what is stuck.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(25),
            max_backoff: Duration::from_secs(1),
            operation_timeout: Duration::from_secs(4),
            attempt_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
        }
    }
}

impl StorePolicy {
    /// The SDK's standard retry mode with this policy's bounds.
    pub fn retry_config(&self) -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(self.max_attempts.max(1))
            .with_initial_backoff(self.initial_backoff)
            .with_max_backoff(self.max_backoff)
    }

    pub fn timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .operation_timeout(self.operation_timeout)
            .operation_attempt_timeout(self.attempt_timeout)
            .connect_timeout(self.connect_timeout)
            .build()
    }
}

/// The DynamoDB client configuration every function uses, as a builder so that a caller can add to it
/// (the test harness attaches its request counter).
pub fn dynamodb_config(sdk: &SdkConfig, policy: &StorePolicy) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::config::Builder::from(sdk)
        .retry_config(policy.retry_config())
        .timeout_config(policy.timeout_config())
        .retry_classifier(TransactionConflicts)
}

/// The DynamoDB client every function uses.
pub fn dynamodb_client(sdk: &SdkConfig, policy: &StorePolicy) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(dynamodb_config(sdk, policy).build())
}

/// The Secrets Manager client every function uses: the same bounded retries and timeouts, so that a
/// Secrets Manager that hangs is abandoned (and the cached value served, see [`crate::SecretCache`]).
pub fn secrets_client(sdk: &SdkConfig, policy: &StorePolicy) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(sdk)
            .retry_config(policy.retry_config())
            .timeout_config(policy.timeout_config())
            .build(),
    )
}

/// The SQS client of the functions: the same bounded retries and timeouts.
pub fn sqs_client(sdk: &SdkConfig, policy: &StorePolicy) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(sdk)
            .retry_config(policy.retry_config())
            .timeout_config(policy.timeout_config())
            .build(),
    )
}

/// Whether a transaction cancelled with these reasons may succeed if sent again: some item met a
/// conflicting transaction or a throttle, and none refused its condition (a refused condition is an
/// answer, the same every time).
pub fn retryable_cancellation<'a>(codes: impl IntoIterator<Item = &'a str>) -> bool {
    let mut retryable = false;
    for code in codes {
        match code {
            "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded" => {
                retryable = true;
            }
            "None" | "" => {}
            _ => return false,
        }
    }
    retryable
}

fn reasons_retryable(reasons: &[CancellationReason]) -> bool {
    retryable_cancellation(reasons.iter().map(|r| r.code().unwrap_or("None")))
}

/// Marks as transient what the SDK's own classifiers do not: `TransactionConflictException` (a
/// single-item write met an ongoing transaction; nothing was written) and a `TransactionCanceledException`
/// whose reasons are only conflicts or throttles (nothing was written either).
#[derive(Debug, Clone, Copy, Default)]
pub struct TransactionConflicts;

fn error_code(err: &OperationError) -> Option<&str> {
    use aws_sdk_dynamodb::operation::{
        batch_get_item::BatchGetItemError, batch_write_item::BatchWriteItemError,
        delete_item::DeleteItemError, get_item::GetItemError, put_item::PutItemError,
        query::QueryError, scan::ScanError, update_item::UpdateItemError,
    };
    macro_rules! code_of {
        ($($t:ty),*) => {
            $(if let Some(e) = err.downcast_ref::<$t>() {
                return e.code();
            })*
        };
    }
    code_of!(
        PutItemError,
        UpdateItemError,
        DeleteItemError,
        BatchWriteItemError,
        GetItemError,
        BatchGetItemError,
        QueryError,
        ScanError,
        TransactWriteItemsError,
        TransactGetItemsError
    );
    None
}

impl ClassifyRetry for TransactionConflicts {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(error)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let Some(err) = error.as_operation_error() else {
            return RetryAction::NoActionIndicated;
        };
        let cancelled = if let Some(TransactWriteItemsError::TransactionCanceledException(c)) =
            err.downcast_ref::<TransactWriteItemsError>()
        {
            Some(reasons_retryable(c.cancellation_reasons()))
        } else if let Some(TransactGetItemsError::TransactionCanceledException(c)) =
            err.downcast_ref::<TransactGetItemsError>()
        {
            Some(reasons_retryable(c.cancellation_reasons()))
        } else {
            None
        };
        match cancelled {
            Some(true) => return RetryAction::retryable_error(ErrorKind::TransientError),
            Some(false) => return RetryAction::NoActionIndicated,
            None => {}
        }
        if error_code(err) == Some("TransactionConflictException") {
            return RetryAction::retryable_error(ErrorKind::TransientError);
        }
        RetryAction::NoActionIndicated
    }

    fn name(&self) -> &'static str {
        "DynamoDB transaction conflicts"
    }
}

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Counts the requests a client sends, per `Service.Operation` (every attempt, retries included): what
/// AWS bills. Attach it with the client's config builder `.interceptor(counter.clone())`.
#[derive(Clone, Debug, Default)]
pub struct RequestCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl RequestCounter {
    /// Requests per operation so far.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Requests of one operation (e.g. `GetSecretValue`) so far, whichever service.
    pub fn count(&self, operation: &str) -> u64 {
        self.snapshot()
            .iter()
            .filter(|(k, _)| k.rsplit('.').next() == Some(operation))
            .map(|(_, v)| v)
            .sum()
    }

    /// All requests so far.
    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }

    pub fn reset(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.clear();
        }
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg
            .load::<Metadata>()
            .map(|m| format!("{}.{}", m.service(), m.name()))
            .unwrap_or_else(|| "unknown".into());
        if let Ok(mut m) = self.0.lock() {
            *m.entry(op).or_default() += 1;
        }
        Ok(())
    }
}
