//! Opens and clicks that look automated: security scanners that follow every link, mail-server
//! prefetchers, link previews, scripts. They are recorded with a flag and kept out of the human counts.

/// User-agent fragments of known scanners, prefetchers and scripts (matched case-insensitively).
const AUTOMATED_AGENTS: &[&str] = &[
    "barracuda",
    "mimecast",
    "proofpoint",
    "urldefense",
    "messagelabs",
    "symantec",
    "forcepoint",
    "fortiguard",
    "trendmicro",
    "sophos",
    "zscaler",
    "cisco ironport",
    "bingpreview",
    "microsoft office protection",
    "safelinks",
    "headlesschrome",
    "phantomjs",
    "python-requests",
    "python-urllib",
    "go-http-client",
    "curl/",
    "wget/",
    "java/",
    "okhttp",
    "libwww-perl",
    "facebookexternalhit",
    "slackbot",
    "twitterbot",
    "linkedinbot",
    "discordbot",
    "whatsapp",
    "telegrambot",
    "bot/",
    "crawler",
    "spider",
];

/// A click this soon after the message was sent is almost always a scanner following every link (delivery
/// follows the send within seconds, and scanners click on delivery).
pub const MIN_HUMAN_CLICK_SECONDS: i64 = 10;

/// Why an action looks automated, or `None` if it looks human.
pub fn automated_reason(
    user_agent: Option<&str>,
    is_click: bool,
    seconds_since_sent: Option<i64>,
) -> Option<String> {
    if let Some(agent) = user_agent {
        let lower = agent.to_ascii_lowercase();
        if let Some(hit) = AUTOMATED_AGENTS.iter().find(|a| lower.contains(*a)) {
            return Some(format!(
                "user agent looks automated ({})",
                hit.trim_end_matches('/')
            ));
        }
    }
    match seconds_since_sent {
        Some(s) if is_click && (0..MIN_HUMAN_CLICK_SECONDS).contains(&s) => Some(format!(
            "clicked {s} s after sending (scanners click within {MIN_HUMAN_CLICK_SECONDS} s)"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanners_and_instant_clicks_are_flagged_people_are_not() {
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
        assert_eq!(automated_reason(Some(chrome), true, Some(600)), None);
        assert_eq!(
            automated_reason(Some(chrome), false, Some(1)),
            None,
            "opens have no timing rule"
        );
        assert!(
            automated_reason(Some("Mozilla/5.0 (compatible; Barracuda)"), false, None).is_some()
        );
        assert!(automated_reason(Some("python-requests/2.31"), true, None).is_some());
        assert!(
            automated_reason(Some(chrome), true, Some(3))
                .unwrap()
                .contains("3 s")
        );
        assert_eq!(automated_reason(None, true, None), None);
    }
}
