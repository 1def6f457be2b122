use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use stream::{App, Config};

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
            stream::handle(app, &event.payload).await?;
            Ok::<_, Error>(())
        },
    ))
    .await
}
