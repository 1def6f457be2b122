//! Store errors, classified so that callers can decide: a refused condition is an answer, a throttle or
//! an outage is worth retrying, anything else is a bug or a misconfiguration.

use std::error::Error as StdError;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write found the item in a state it did not expect (e.g. it already exists).
    #[error("the condition of the write was not met")]
    ConditionFailed,
    /// A transaction was cancelled as a whole. `reasons` has one code per item, in order
    /// (`None` for items that were fine, `ConditionalCheckFailed`, `TransactionConflict`, ...).
    #[error("the transaction was cancelled: {}", reasons.join(", "))]
    TransactionCancelled { reasons: Vec<String> },
    /// Throttling, a service-side error, a timeout or a connection failure: try again later.
    #[error("the store is unavailable or throttling (retry later)")]
    Transient(#[source] BoxError),
    /// Data in the table that the code cannot read: a bug or a hand-edited item.
    #[error("corrupt item: {0}")]
    Corrupt(String),
    /// A pagination cursor that this store did not issue.
    #[error("the cursor is not one this API issued")]
    InvalidCursor,
    /// Anything else: a misconfiguration (missing table, no permission) or a bug.
    #[error("store request failed")]
    Other(#[source] BoxError),
}

impl StoreError {
    pub(crate) fn build(e: impl StdError + Send + Sync + 'static) -> Self {
        Self::Other(Box::new(e))
    }

    /// Whether the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transient(_) => true,
            Self::TransactionCancelled { reasons } => {
                crate::aws::retryable_cancellation(reasons.iter().map(String::as_str))
            }
            _ => false,
        }
    }

    /// Whether a transaction was cancelled only because item `index`'s condition failed.
    pub fn condition_failed_at(&self, index: usize) -> bool {
        match self {
            Self::TransactionCancelled { reasons } => reasons
                .get(index)
                .is_some_and(|r| r == "ConditionalCheckFailed"),
            Self::ConditionFailed => index == 0,
            _ => false,
        }
    }
}

/// A conditional write's answer: whether it was applied (a refused condition is an answer, not an
/// error).
pub(crate) fn applied<T>(result: Result<T, StoreError>) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(StoreError::ConditionFailed) => Ok(false),
        Err(e) => Err(e),
    }
}

/// An error with its causes, each cause once (SDK errors repeat their source in their own message), for
/// logs and for reasons an admin reads. No error of this workspace carries a secret in its text.
pub fn chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "TransactionInProgressException",
    // A single-item write met an ongoing transaction on its item; nothing was written.
    "TransactionConflictException",
    "LimitExceededException",
    "RequestThrottled",
];

/// Classifies any AWS SDK error (DynamoDB, SQS, Secrets Manager).
pub fn classify<E>(err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let (code, status) = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            return StoreError::Transient(Box::new(err));
        }
        SdkError::ServiceError(service) => (
            service.err().code().unwrap_or_default().to_owned(),
            service.raw().status().as_u16(),
        ),
        _ => return StoreError::Other(Box::new(err)),
    };
    if code == "ConditionalCheckFailedException" {
        StoreError::ConditionFailed
    } else if TRANSIENT_CODES.contains(&code.as_str()) || status >= 500 {
        StoreError::Transient(Box::new(err))
    } else {
        StoreError::Other(Box::new(err))
    }
}

/// Classifies the error of a `TransactWriteItems` call, keeping the per-item cancellation reasons.
pub fn classify_transaction(err: SdkError<TransactWriteItemsError, HttpResponse>) -> StoreError {
    if let SdkError::ServiceError(service) = &err
        && let TransactWriteItemsError::TransactionCanceledException(cancelled) = service.err()
    {
        let reasons = cancelled
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or("None").to_owned())
            .collect();
        return StoreError::TransactionCancelled { reasons };
    }
    classify(err)
}
