//! Addresses as Postmark reads them: `Name <local@domain>` or a bare `local@domain`.

/// The address part of `"Name" <local@domain>` (or the whole text when there are no angle brackets),
/// if it is a deliverable address: one `@`, a non-empty local part, and a dotted domain of letters,
/// digits and hyphens (Postmark refuses `invalid@localhost`).
pub(crate) fn parse_mailbox(text: &str) -> Option<&str> {
    let text = text.trim();
    let address = match (text.rfind('<'), text.ends_with('>')) {
        (Some(open), true) => text[open + 1..text.len() - 1].trim(),
        (None, false) => text,
        _ => return None,
    };
    is_valid_address(address).then_some(address)
}

fn is_valid_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.contains(char::is_whitespace)
        && !local.contains(['<', '>', ',', '@']);
    let domain_ok = domain.len() <= 255
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || !ch.is_ascii())
        });
    local_ok && domain_ok
}

/// The normalised key of an address (lower case), for suppressions and comparisons.
pub(crate) fn key(address: &str) -> String {
    address.trim().to_ascii_lowercase()
}

/// The domain of an address, lower case.
pub(crate) fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, domain)| domain.to_ascii_lowercase())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_postmark_address_forms() {
        assert_eq!(parse_mailbox("a@example.com"), Some("a@example.com"));
        assert_eq!(
            parse_mailbox("\"Doe, John\" <j.doe@mail.example.org>"),
            Some("j.doe@mail.example.org")
        );
        assert_eq!(
            parse_mailbox(" Shop <shop@example.com> "),
            Some("shop@example.com")
        );
        for bad in [
            "invalid@localhost",
            "no-at.example.com",
            "a@",
            "@b.com",
            "a b@c.com",
            "x <a@b.com",
            "a@-b.com",
        ] {
            assert_eq!(parse_mailbox(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_and_domains() {
        assert_eq!(key(" Ada@Example.COM"), "ada@example.com");
        assert_eq!(domain_of("ada@Example.COM"), "example.com");
    }
}
