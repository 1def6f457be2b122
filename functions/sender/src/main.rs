use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use sender::{App, Config};

// One invocation at a time, on a fraction of a vCPU: a second thread would only add cross-thread
// wake-ups to every request.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .without_time()
        .init();
    let config = Config::from_env()?;
    let app = App::new(&store::aws::load_config().await, config)?;
    let app = &app;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let deadline = sender::deadline_of(event.context.deadline);
        Ok::<_, Error>(sender::handle_until(app, event.payload, deadline).await)
    }))
    .await
}
