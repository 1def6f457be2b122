// The run's future nests deeply (async closures over paged searches).
#![recursion_limit = "256"]

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use recover::{App, Config};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time()
        .init();
    let config = Config::from_env()?;
    let app = App::new(&store::aws::load_config().await, config);
    let app = &app;
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let run = recover::handle(app, &event.payload).await;
            // A run with errors fails the invocation (its summary is kept and logged all the same), so
            // that the function's error metric and its alarm see it.
            if run.ok() {
                Ok(run)
            } else {
                let errors: Vec<&String> = run.servers.iter().flat_map(|s| &s.errors).collect();
                Err(Error::from(format!(
                    "recovery run {} had {} errors: {errors:?}",
                    run.id,
                    errors.len()
                )))
            }
        },
    ))
    .await
}
