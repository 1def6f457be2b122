//! Email addresses as the integration keys them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest address SMTP can carry (RFC 5321: 256-octet path less the angle brackets).
const MAX_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;

/// A single mailbox address such as `Jane.Doe@Example.com`.
///
/// The original spelling is kept for display and for sending; [`EmailAddress::key`] is the normalised form
/// (trimmed, ASCII letters lower-cased) under which subscribers, suppressions and activity are stored,
/// because Postmark and mailbox providers treat addresses case-insensitively for those purposes. Only
/// ASCII is folded: Unicode's case rules would give two different addresses one key (the Kelvin sign
/// `K`, U+212A, lower-cases to `k`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress {
    original: String,
    key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEmail {
    #[error("the address is empty")]
    Empty,
    #[error("the address is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("the address must contain exactly one '@' with text on both sides")]
    Shape,
    #[error("the part before '@' is longer than {MAX_LOCAL_LEN} characters")]
    LocalTooLong,
    #[error("the address contains a space, a control character or one of <>(),;:\"[]\\")]
    BadCharacter,
    #[error("the domain must be a dotted name such as example.com")]
    BadDomain,
}

impl EmailAddress {
    /// Parses a bare address (no display name). Surrounding white space is ignored.
    pub fn parse(input: &str) -> Result<Self, InvalidEmail> {
        let original = input.trim();
        if original.is_empty() {
            return Err(InvalidEmail::Empty);
        }
        if original.chars().count() > MAX_LEN {
            return Err(InvalidEmail::TooLong);
        }
        if original
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>(),;:\"[]\\".contains(c))
        {
            return Err(InvalidEmail::BadCharacter);
        }
        let (local, domain) = original.split_once('@').ok_or(InvalidEmail::Shape)?;
        if local.is_empty() || domain.is_empty() || domain.contains('@') {
            return Err(InvalidEmail::Shape);
        }
        if local.len() > MAX_LOCAL_LEN {
            return Err(InvalidEmail::LocalTooLong);
        }
        let labels_ok = domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
        if !labels_ok || !domain.contains('.') {
            return Err(InvalidEmail::BadDomain);
        }
        Ok(Self {
            original: original.to_owned(),
            key: original.to_ascii_lowercase(),
        })
    }

    /// The address as it was given.
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// The normalised address: the identity of a subscriber in storage.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The domain, normalised.
    pub fn domain(&self) -> &str {
        self.key
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or_default()
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({})", self.original)
    }
}

impl std::str::FromStr for EmailAddress {
    type Err = InvalidEmail;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for EmailAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.original)
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_addresses_never_share_a_key() {
        let kelvin = EmailAddress::parse("\u{212A}ate@example.com").unwrap();
        let k = EmailAddress::parse("kate@example.com").unwrap();
        assert_ne!(kelvin.key(), k.key(), "the Kelvin sign is not a k");
        assert_ne!(kelvin, k);
        let dotted = EmailAddress::parse("\u{130}nci@example.com").unwrap();
        assert_ne!(
            dotted.key(),
            EmailAddress::parse("i\u{307}nci@example.com")
                .unwrap()
                .key()
        );
        assert_eq!(
            EmailAddress::parse("KATE@EXAMPLE.COM").unwrap().key(),
            k.key(),
            "ASCII case still folds"
        );
    }

    #[test]
    fn keeps_the_original_and_keys_lower_case() {
        let a = EmailAddress::parse("  Jane.Doe@Example.COM ").unwrap();
        assert_eq!(a.as_str(), "Jane.Doe@Example.COM");
        assert_eq!(a.key(), "jane.doe@example.com");
        assert_eq!(a.domain(), "example.com");
        assert_eq!(a, EmailAddress::parse("Jane.Doe@Example.COM").unwrap());
    }

    #[test]
    fn accepts_what_real_senders_use() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "HardBounce@bounce-testing.postmarkapp.com",
            "o'brien@example.ie",
            "user@xn--bcher-kva.example",
        ] {
            assert!(EmailAddress::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_what_is_not_one_address() {
        let cases = [
            ("", InvalidEmail::Empty),
            ("   ", InvalidEmail::Empty),
            ("no-at-sign", InvalidEmail::Shape),
            ("@example.com", InvalidEmail::Shape),
            ("a@", InvalidEmail::Shape),
            ("a@b@c.com", InvalidEmail::Shape),
            ("a b@example.com", InvalidEmail::BadCharacter),
            ("Jane <jane@example.com>", InvalidEmail::BadCharacter),
            ("a@b.com,c@d.com", InvalidEmail::BadCharacter),
            ("a@localhost", InvalidEmail::BadDomain),
            ("a@-x.com", InvalidEmail::BadDomain),
            ("a@x..com", InvalidEmail::BadDomain),
        ];
        for (input, want) in cases {
            assert_eq!(EmailAddress::parse(input), Err(want), "{input:?}");
        }
        let long_local = format!("{}@example.com", "x".repeat(65));
        assert_eq!(
            EmailAddress::parse(&long_local),
            Err(InvalidEmail::LocalTooLong)
        );
        let long = format!("a@{}.com", "x".repeat(260));
        assert_eq!(EmailAddress::parse(&long), Err(InvalidEmail::TooLong));
    }

    #[test]
    fn serde_round_trips_and_rejects_bad_input() {
        let a: EmailAddress = serde_json::from_str("\"Bob@Example.com\"").unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"Bob@Example.com\"");
        assert!(serde_json::from_str::<EmailAddress>("\"nope\"").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_keys_are_idempotent(s in "\\PC{0,80}") {
            if let Ok(a) = EmailAddress::parse(&s) {
                let again = EmailAddress::parse(a.key()).unwrap();
                proptest::prop_assert_eq!(again.key(), a.key());
            }
        }
    }
}
