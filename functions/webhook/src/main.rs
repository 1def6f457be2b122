use std::time::Duration;

use lambda_http::{Error, Request, run, service_fn};
use webhook::{App, Config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time()
        .init();
    let config = Config::from_env()?;
    let mut app = App::new(&store::aws::load_config().await, config);
    if let Some(budget) = native_store_budget_from_env()? {
        app = app.with_native_store_budget(budget);
    }
    let app = &app;
    run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(webhook::handle(app, req).await)
    }))
    .await
}

/// `NATIVE_STORE_BUDGET_MS`: how long a native open or click waits for the store (default 800 ms).
fn native_store_budget_from_env() -> Result<Option<Duration>, Error> {
    match std::env::var("NATIVE_STORE_BUDGET_MS") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .map(|ms| Some(Duration::from_millis(ms)))
            .map_err(|_| {
                "configuration: NATIVE_STORE_BUDGET_MS must be a number of milliseconds".into()
            }),
        _ => Ok(None),
    }
}
