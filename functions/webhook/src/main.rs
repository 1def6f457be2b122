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
    let app = App::new(&store::aws::load_config().await, config);
    let app = &app;
    run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(webhook::handle(app, req).await)
    }))
    .await
}
