//! The webhook password: from `?password=` or from HTTP Basic credentials (`https://user:password@host/...`
//! in Postmark's webhook settings), compared in constant time with the current password and, during the
//! grace period after a refresh, with the previous one.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use lambda_http::{Request, RequestExt};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::App;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no password was given")]
    Missing,
    #[error("the password is wrong")]
    Wrong,
    #[error("the password could not be read")]
    Unavailable(#[source] store::StoreError),
}

/// The password the caller presented: the `password` query parameter, else Basic credentials.
pub fn presented_password(req: &Request) -> Option<String> {
    if let Some(p) = req
        .query_string_parameters_ref()
        .and_then(|q| q.first("password"))
        .filter(|p| !p.is_empty())
    {
        return Some(p.to_owned());
    }
    let header = req
        .headers()
        .get(http_header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_, password) = text.split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}

mod http_header {
    pub use lambda_http::http::header::AUTHORIZATION;
}

/// Equal in time independent of where the inputs differ (and of their lengths: digests are compared).
fn same(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes())
        .ct_eq(&Sha256::digest(b.as_bytes()))
        .into()
}

/// Checks the presented password against the current one and, within the grace period, the previous one.
pub async fn check(app: &App, presented: Option<&str>) -> Result<(), AuthError> {
    let presented = presented.ok_or(AuthError::Missing)?;
    let secret = &app.config.webhook_password_secret;
    let mut current = app
        .secrets
        .current(secret)
        .await
        .map_err(AuthError::Unavailable)?;
    if same(presented, current.value.expose_secret()) {
        return Ok(());
    }
    // The password may have been refreshed since it was cached.
    let fresher = app
        .secrets
        .current_within(secret, app.config.password_recheck)
        .await
        .map_err(AuthError::Unavailable)?;
    let refreshed_since_cached = fresher.version_id != current.version_id;
    if refreshed_since_cached {
        if same(presented, fresher.value.expose_secret()) {
            return Ok(());
        }
        current = fresher;
    }
    let refreshed_recently = current
        .created_at
        .is_some_and(|at| Utc::now() - at < app.config.password_grace);
    if refreshed_recently
        && let Some(previous) = app
            .secrets
            .previous_within(
                secret,
                if refreshed_since_cached {
                    std::time::Duration::ZERO
                } else {
                    app.config.password_recheck
                },
            )
            .await
            .map_err(AuthError::Unavailable)?
        && same(presented, previous.value.expose_secret())
    {
        return Ok(());
    }
    Err(AuthError::Wrong)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_is_exact() {
        assert!(same("s3cret", "s3cret"));
        assert!(!same("s3cret", "s3cre"));
        assert!(!same("s3cret", "S3cret"));
        assert!(!same("", "x"));
    }
}
