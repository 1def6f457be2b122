//! The Server API Token, kept secret.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// A Postmark **Server** API Token (the `X-Postmark-Server-Token` header).
///
/// It never prints: `Debug` shows `ServerToken(***)`, and no error of this crate contains it.
/// An *Account* API Token is a different secret and is rejected by the server endpoints with
/// ErrorCode 10.
#[derive(Clone)]
pub struct ServerToken(SecretString);

impl ServerToken {
    /// Postmark's test token: send endpoints validate the request and answer
    /// `"Test job accepted"` without delivering anything.
    pub const TEST: &'static str = "POSTMARK_API_TEST";

    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(SecretString::from(token.into()))
    }

    /// The token's text, for the one place that needs it: the request header.
    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<SecretString> for ServerToken {
    fn from(secret: SecretString) -> Self {
        Self(secret)
    }
}

impl From<String> for ServerToken {
    fn from(token: String) -> Self {
        Self::new(token)
    }
}

impl fmt::Debug for ServerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerToken(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let token = ServerToken::new("a1b2c3d4-secret");
        assert!(!format!("{token:?}").contains("secret"));
        assert!(!format!("{token:#?}").contains("a1b2"));
        assert_eq!(token.expose(), "a1b2c3d4-secret");
    }
}
