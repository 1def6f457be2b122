//! How a poller reaches its function: through the Lambda invoke API (`cargo lambda watch` locally), or
//! by a call in the same process (load runs, where an HTTP hop would only add noise).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

/// Calls the function in this process with an event (JSON) and gives its answer (JSON), or why the
/// invocation failed.
pub type InvokeFn =
    Arc<dyn Fn(Value) -> Pin<Box<dyn Future<Output = Result<Value, String>> + Send>> + Send + Sync>;

pub(crate) enum Invoker {
    Http(reqwest::Client),
    InProcess(InvokeFn),
}

impl Invoker {
    pub(crate) fn http() -> Self {
        Self::Http(reqwest::Client::new())
    }

    /// Invokes the function with `event`: an error is a failed invocation (the function returned an
    /// error, crashed or could not be reached).
    pub(crate) async fn invoke(&self, url: &str, event: Value) -> Result<Value, String> {
        let http = match self {
            Self::InProcess(invoke) => return invoke(event).await,
            Self::Http(http) => http,
        };
        let r = http
            .post(url)
            .json(&event)
            .timeout(Duration::from_secs(900))
            .send()
            .await
            .map_err(|e| format!("invoke failed: {e}"))?;
        if r.status().is_success()
            && r.headers()
                .get("lambda-runtime-function-error-type")
                .is_none()
            && r.headers().get("x-amz-function-error").is_none()
        {
            r.json::<Value>()
                .await
                .map_err(|e| format!("unreadable answer: {e}"))
        } else {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            Err(format!("function error ({status}): {text}"))
        }
    }
}
