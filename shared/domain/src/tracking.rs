//! Native open and click tracking: signed tokens that name a message (its job) and, for clicks, the link.
//!
//! A token is `base64url(payload).base64url(tag)`, where the tag is the first 16 bytes of
//! HMAC-SHA256(key, "track-v1\n" + payload). The click target travels inside the token, so a redirect
//! needs no lookup, and a tampered, forged or truncated token fails verification: it never redirects.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::JobId;

const DOMAIN_SEPARATOR: &[u8] = b"track-v1\n";
const TAG_LEN: usize = 16;
/// Longest link that is rewritten; longer ones are left as they are.
pub const MAX_URL_LEN: usize = 4096;

/// What a tracking token points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackingTarget {
    Open { job: JobId },
    Click { job: JobId, url: String },
}

impl TrackingTarget {
    pub fn job(&self) -> &JobId {
        match self {
            Self::Open { job } | Self::Click { job, .. } => job,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadToken {
    #[error("the token is not well formed")]
    Malformed,
    #[error("the token's signature does not match")]
    Forged,
    #[error("the link is not an http or https URL")]
    UnsafeTarget,
}

/// Only absolute http and https URLs are redirected to.
pub fn is_trackable_url(url: &str) -> bool {
    if url.len() > MAX_URL_LEN || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return false;
    }
    match url::Url::parse(url) {
        Ok(u) => matches!(u.scheme(), "http" | "https") && u.host_str().is_some(),
        Err(_) => false,
    }
}

/// A short, stable identifier of a link for per-link counters (hex of 8 bytes of SHA-256).
pub fn link_hash(url: &str) -> String {
    let digest = Sha256::digest(url.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Signs and verifies tokens with one key.
#[derive(Clone)]
pub struct TokenSigner {
    /// HMAC with the key and the domain separator already mixed in: each token starts from a copy
    /// instead of hashing the key again (a newsletter signs one token per link).
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner([redacted])")
    }
}

impl TokenSigner {
    pub fn new(key: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        keyed.update(DOMAIN_SEPARATOR);
        Self { keyed }
    }

    fn tag(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(payload);
        mac
    }

    /// The token for a target. Click targets must be trackable URLs.
    pub fn sign(&self, target: &TrackingTarget) -> Result<String, BadToken> {
        let payload = match target {
            TrackingTarget::Open { job } => format!("o\n{job}"),
            TrackingTarget::Click { job, url } => {
                if !is_trackable_url(url) {
                    return Err(BadToken::UnsafeTarget);
                }
                format!("c\n{job}\n{url}")
            }
        };
        let tag = self.tag(payload.as_bytes()).finalize().into_bytes();
        Ok(format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN])
        ))
    }

    /// The target of a token this signer issued; anything else is refused.
    pub fn verify(&self, token: &str) -> Result<TrackingTarget, BadToken> {
        if token.len() > 2 * MAX_URL_LEN {
            return Err(BadToken::Malformed);
        }
        let (payload_b64, tag_b64) = token.split_once('.').ok_or(BadToken::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| BadToken::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag_b64)
            .map_err(|_| BadToken::Malformed)?;
        if tag.len() != TAG_LEN {
            return Err(BadToken::Malformed);
        }
        self.tag(&payload)
            .verify_truncated_left(&tag)
            .map_err(|_| BadToken::Forged)?;
        let text = String::from_utf8(payload).map_err(|_| BadToken::Malformed)?;
        let mut parts = text.splitn(3, '\n');
        let kind = parts.next().ok_or(BadToken::Malformed)?;
        let job = JobId::parse(parts.next().ok_or(BadToken::Malformed)?)
            .map_err(|_| BadToken::Malformed)?;
        match (kind, parts.next()) {
            ("o", None) => Ok(TrackingTarget::Open { job }),
            ("c", Some(url)) if is_trackable_url(url) => Ok(TrackingTarget::Click {
                job,
                url: url.to_owned(),
            }),
            ("c", Some(_)) => Err(BadToken::UnsafeTarget),
            _ => Err(BadToken::Malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TokenSigner {
        TokenSigner::new(b"a key that only the tests know")
    }

    fn job() -> JobId {
        JobId::parse("job-42").unwrap()
    }

    #[test]
    fn tokens_round_trip() {
        let s = signer();
        let open = TrackingTarget::Open { job: job() };
        assert_eq!(s.verify(&s.sign(&open).unwrap()).unwrap(), open);
        let click = TrackingTarget::Click {
            job: job(),
            url: "https://example.com/a?b=c&d=%20e#top".into(),
        };
        let token = s.sign(&click).unwrap();
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        );
        assert_eq!(s.verify(&token).unwrap(), click);
    }

    #[test]
    fn tampered_forged_and_truncated_tokens_are_refused() {
        let s = signer();
        let token = s
            .sign(&TrackingTarget::Click {
                job: job(),
                url: "https://example.com/".into(),
            })
            .unwrap();
        let (payload, tag) = token.split_once('.').unwrap();
        // Another target under the original tag.
        let evil = URL_SAFE_NO_PAD.encode(b"c\njob-42\nhttps://evil.example/");
        assert_eq!(s.verify(&format!("{evil}.{tag}")), Err(BadToken::Forged));
        // Signed with another key.
        let other = TokenSigner::new(b"another key").sign(&TrackingTarget::Open { job: job() });
        assert_eq!(s.verify(&other.unwrap()), Err(BadToken::Forged));
        // Truncated tag, missing parts, garbage.
        assert_eq!(
            s.verify(&format!("{payload}.{}", &tag[..tag.len() - 2])),
            Err(BadToken::Malformed)
        );
        assert_eq!(s.verify(payload), Err(BadToken::Malformed));
        assert_eq!(s.verify(""), Err(BadToken::Malformed));
        assert_eq!(s.verify("%%%.###"), Err(BadToken::Malformed));
        // One flipped character anywhere is refused.
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            if bytes[i] == b'.' {
                continue;
            }
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let flipped = String::from_utf8(bytes).unwrap();
            if flipped != token {
                assert!(s.verify(&flipped).is_err(), "flipped at {i}");
            }
        }
    }

    #[test]
    fn only_http_and_https_targets() {
        let s = signer();
        for url in [
            "javascript:alert(1)",
            "mailto:a@b.co",
            "data:text/html,x",
            "//example.com/x",
            "/relative",
            "https://exa mple.com",
        ] {
            let target = TrackingTarget::Click {
                job: job(),
                url: url.into(),
            };
            assert_eq!(s.sign(&target), Err(BadToken::UnsafeTarget), "{url}");
        }
        // A signed token that names an unsafe target (a key holder's mistake) still never redirects.
        let payload = b"c\njob-42\njavascript:alert(1)";
        let tag = s.tag(payload).finalize().into_bytes();
        let token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(&tag[..TAG_LEN])
        );
        assert_eq!(s.verify(&token), Err(BadToken::UnsafeTarget));
    }

    #[test]
    fn link_hashes_are_stable_and_short() {
        assert_eq!(
            link_hash("https://a.example/"),
            link_hash("https://a.example/")
        );
        assert_ne!(
            link_hash("https://a.example/"),
            link_hash("https://b.example/")
        );
        assert_eq!(link_hash("x").len(), 16);
    }
}
