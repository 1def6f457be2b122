//! The same handler over plain HTTP, for running the API locally (demo, contract tests): each request
//! is turned into the request Lambda would hand over, and the answer back.

use std::sync::Arc;

use axum::Router;
use axum::body::Body as AxumBody;
use axum::extract::{Request as AxumRequest, State};
use axum::response::Response as AxumResponse;
use lambda_http::Body;
use tokio::net::TcpListener;

use crate::App;
use crate::http::{ApiError, MAX_BODY_BYTES};

async fn adapt(State(app): State<Arc<App>>, req: AxumRequest) -> AxumResponse {
    let (parts, body) = req.into_parts();
    // One byte over the limit is enough for the handler to answer 413.
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES + 1).await {
        Ok(bytes) => bytes,
        Err(_) => return into_axum(ApiError::too_large().into_response()),
    };
    let body = if body.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(body.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        }
    };
    let response = crate::handle(&app, lambda_http::Request::from_parts(parts, body)).await;
    into_axum(response)
}

fn into_axum(response: lambda_http::Response<Body>) -> AxumResponse {
    let (parts, body) = response.into_parts();
    let body = match body {
        Body::Text(text) => AxumBody::from(text),
        Body::Binary(bytes) => AxumBody::from(bytes),
        _ => AxumBody::empty(),
    };
    AxumResponse::from_parts(parts, body)
}

/// Serves the API on `listener` until the task is dropped.
pub async fn serve(app: Arc<App>, listener: TcpListener) -> std::io::Result<()> {
    let router = Router::new().fallback(adapt).with_state(app);
    axum::serve(listener, router).await
}
