//! The function's settings, read once at cold start from environment variables.

use std::time::Duration;

use url::Url;

/// How long the admin key and the webhook password are cached: a rotated admin key takes effect within
/// this time.
pub const SECRET_TTL: Duration = Duration::from_secs(300);
/// The grace period of a refreshed webhook password unless configured.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);
/// Each network step of a server test: room for the whole test inside API Gateway's 30 s.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(8);

#[derive(Clone, Debug)]
pub struct Config {
    /// `TABLE_NAME`.
    pub table_name: String,
    /// `SECRETS_PREFIX`: server secrets are `{prefix}/servers/{id}`.
    pub secrets_prefix: String,
    /// `ADMIN_KEY_SECRET`: the name of the secret holding the admin key.
    pub admin_key_secret: String,
    /// `WEBHOOK_PASSWORD_SECRET`: the name of the secret holding the webhook password.
    pub webhook_password_secret: String,
    /// `WEBHOOK_PASSWORD_GRACE_SECONDS` (default 86400).
    pub webhook_password_grace: Duration,
    /// `PUBLIC_BASE_URL`: the HTTP API's base URL, under which `/wh/postmark` is served.
    pub public_base_url: Url,
    /// `POSTMARK_API_URL` (default `https://api.postmarkapp.com`).
    pub postmark_api_url: Url,
    /// `SMTP_EXTRA_CA_PEM`, or the contents of the file `SMTP_EXTRA_CA_PEM_FILE`: a CA to trust besides the
    /// system's when testing SMTP servers (local servers with their own certificate).
    pub smtp_extra_ca_pem: Option<String>,
    /// Timeout of each step of a server test.
    pub test_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the environment variable {0} is not set")]
    Missing(&'static str),
    #[error("the environment variable {name} is invalid: {why}")]
    Invalid { name: &'static str, why: String },
    #[error("could not read {path} (SMTP_EXTRA_CA_PEM_FILE)")]
    CaFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Config {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let url = |name: &'static str, value: String| -> Result<Url, ConfigError> {
            let parsed = Url::parse(value.trim()).map_err(|e| ConfigError::Invalid {
                name,
                why: e.to_string(),
            })?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(ConfigError::Invalid {
                    name,
                    why: "must be an http or https URL with a host".into(),
                });
            }
            Ok(parsed)
        };
        let grace = match get("WEBHOOK_PASSWORD_GRACE_SECONDS") {
            None => DEFAULT_GRACE,
            Some(text) => Duration::from_secs(text.trim().parse::<u64>().map_err(|_| {
                ConfigError::Invalid {
                    name: "WEBHOOK_PASSWORD_GRACE_SECONDS",
                    why: "must be a whole number of seconds".into(),
                }
            })?),
        };
        let secrets_prefix = required("SECRETS_PREFIX")?
            .trim()
            .trim_end_matches('/')
            .to_owned();
        if secrets_prefix.is_empty() {
            return Err(ConfigError::Invalid {
                name: "SECRETS_PREFIX",
                why: "must name a path such as myapp/prod".into(),
            });
        }
        let smtp_extra_ca_pem = match (get("SMTP_EXTRA_CA_PEM"), get("SMTP_EXTRA_CA_PEM_FILE")) {
            (Some(pem), _) => Some(pem),
            (None, Some(path)) => Some(
                std::fs::read_to_string(&path)
                    .map_err(|source| ConfigError::CaFile { path, source })?,
            ),
            (None, None) => None,
        };
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            secrets_prefix,
            admin_key_secret: required("ADMIN_KEY_SECRET")?,
            webhook_password_secret: required("WEBHOOK_PASSWORD_SECRET")?,
            webhook_password_grace: grace,
            public_base_url: url("PUBLIC_BASE_URL", required("PUBLIC_BASE_URL")?)?,
            postmark_api_url: url(
                "POSTMARK_API_URL",
                get("POSTMARK_API_URL").unwrap_or_else(|| postmark::DEFAULT_BASE_URL.to_owned()),
            )?,
            smtp_extra_ca_pem,
            test_timeout: TEST_TIMEOUT,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const BASE: &[(&str, &str)] = &[
        ("TABLE_NAME", "t"),
        ("SECRETS_PREFIX", "app/prod/"),
        ("ADMIN_KEY_SECRET", "app/prod/admin-key"),
        ("WEBHOOK_PASSWORD_SECRET", "app/prod/webhook-password"),
        (
            "PUBLIC_BASE_URL",
            "https://abc.execute-api.eu-west-1.amazonaws.com",
        ),
    ];

    #[test]
    fn defaults_apply_and_the_prefix_loses_its_trailing_slash() {
        let c = Config::from_lookup(env(BASE)).unwrap();
        assert_eq!(c.secrets_prefix, "app/prod");
        assert_eq!(c.webhook_password_grace, DEFAULT_GRACE);
        assert_eq!(c.postmark_api_url.as_str(), "https://api.postmarkapp.com/");
        assert!(c.smtp_extra_ca_pem.is_none());
    }

    #[test]
    fn missing_and_invalid_settings_are_named() {
        let err = Config::from_lookup(env(&BASE[1..])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the environment variable TABLE_NAME is not set"
        );
        let mut pairs = BASE.to_vec();
        pairs.push(("WEBHOOK_PASSWORD_GRACE_SECONDS", "1 day"));
        let err = Config::from_lookup(env(&pairs)).unwrap_err();
        assert!(err.to_string().contains("WEBHOOK_PASSWORD_GRACE_SECONDS"));
        let mut pairs = BASE.to_vec();
        pairs.push(("POSTMARK_API_URL", "ftp://x"));
        assert!(Config::from_lookup(env(&pairs)).is_err());
    }

    #[test]
    fn a_ca_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "-----BEGIN CERTIFICATE-----").unwrap();
        let mut pairs = BASE.to_vec();
        let path = path.to_string_lossy().into_owned();
        pairs.push(("SMTP_EXTRA_CA_PEM_FILE", &path));
        let c = Config::from_lookup(env(&pairs)).unwrap();
        assert!(c.smtp_extra_ca_pem.unwrap().starts_with("-----BEGIN"));
    }
}
