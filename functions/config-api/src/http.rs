//! Answers and errors as the API sends them: JSON bodies, `Cache-Control: no-store` (answers can carry
//! the webhook password), and one error shape, `{"error": code, "message": text, "fields": {...}}`.

use std::collections::BTreeMap;

use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use lambda_http::{Body, Response};
use serde::Serialize;
use store::StoreError;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON answer.
pub fn json(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    match serde_json::to_string(body) {
        Ok(text) => response(status, Body::Text(text)),
        Err(e) => {
            tracing::error!(error = %e, "an answer could not be serialised");
            ApiError::internal().into_response()
        }
    }
}

/// An answer without a body.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::Empty);
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn response(status: StatusCode, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let headers = r.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub use store::error::chain;

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    fields: &'a BTreeMap<String, String>,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fields: BTreeMap<String, String>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: BTreeMap::new(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send the admin key as `Authorization: Bearer <key>`",
        )
        .with_header(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn method_not_allowed(allowed: &[Method]) -> Self {
        let list = allowed
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let error = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("this path accepts {list}"),
        );
        match HeaderValue::from_str(&list) {
            Ok(value) => error.with_header(http::header::ALLOW, value),
            Err(_) => error,
        }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        )
    }

    /// 422 with a message per field.
    pub fn invalid(fields: BTreeMap<String, String>) -> Self {
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "some fields are invalid: see `fields`",
        );
        error.fields = fields;
        error
    }

    /// 422 for one field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::invalid(BTreeMap::from([(field.to_owned(), message.into())]))
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on our side; the details are in the function's logs",
        )
    }

    /// Logs a store failure with its cause chain and turns it into an opaque answer.
    pub fn store(context: &str, error: StoreError) -> Self {
        match error {
            StoreError::InvalidCursor => {
                Self::invalid_field("cursor", "not a cursor this API gave out")
            }
            e if e.is_transient() => {
                tracing::warn!(error = %chain(&e), "{context}: the store is unavailable");
                Self::unavailable("the store is busy or unavailable; try again shortly")
            }
            e => {
                tracing::error!(error = %chain(&e), "{context}");
                Self::internal()
            }
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let mut r = json(
            self.status,
            &ErrorBody {
                error: self.code,
                message: &self.message,
                fields: &self.fields,
            },
        );
        for (name, value) in self.headers {
            r.headers_mut().insert(name, value);
        }
        r
    }
}

/// The outcome of a route.
pub type ApiResult = Result<Response<Body>, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_one_shape() {
        let r = ApiError::method_not_allowed(&[Method::GET, Method::POST]).into_response();
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()["allow"], "GET, POST");
        let Body::Text(text) = r.body() else {
            panic!("a text body")
        };
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["error"], "method_not_allowed");
        assert!(v.get("fields").is_none());
        let r = ApiError::invalid_field("label", "must not be empty").into_response();
        let Body::Text(text) = r.body() else {
            panic!("a text body")
        };
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(v["fields"]["label"], "must not be empty");
        assert_eq!(r.headers()["cache-control"], "no-store");
    }
}
