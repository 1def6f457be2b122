//! The config API as a Lambda function behind API Gateway (HTTP API, payload 2.0).

use std::convert::Infallible;

use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let sdk = store::aws::load_config().await;
    let app = config_api::App::from_env(&sdk)?;
    let app = &app;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Infallible>(config_api::handle(app, req).await)
    }))
    .await
}
