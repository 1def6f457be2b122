//! The admin key: `Authorization: Bearer <key>`, compared in constant time with the key in Secrets
//! Manager (cached, so a rotated key takes effect within [`crate::config::SECRET_TTL`]).

use http::HeaderMap;
use http::header::AUTHORIZATION;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::App;
use crate::http::{ApiError, chain};

/// The bearer token of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether `presented` is `expected`, in time that depends on neither: both are hashed first, so that
/// not even the length of the key shows.
pub fn keys_match(presented: &str, expected: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.as_slice().ct_eq(b.as_slice()).into()
}

/// Admits the request or answers 401 (503 when the key cannot be read).
pub async fn authorize(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(presented) = bearer(headers) else {
        return Err(ApiError::unauthorized());
    };
    let key = app
        .secrets
        .current(&app.config.admin_key_secret)
        .await
        .map_err(|e| {
            tracing::error!(error = %chain(&e), "the admin key could not be read");
            ApiError::unavailable("the admin key cannot be checked right now; try again shortly")
        })?;
    let expected = key.value.expose_secret().trim();
    if !expected.is_empty() && keys_match(presented, expected) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn only_a_bearer_token_counts() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer  abc "));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer abc"));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn keys_match_exactly() {
        assert!(keys_match("k3y", "k3y"));
        assert!(!keys_match("k3y", "k3y "));
        assert!(!keys_match("", "k3y"));
    }
}
