//! Native tracking put into an HTML body: `href`s of links replaced by click-tracking URLs and an open
//! pixel before `</body>`, by a scanner that copies every other byte as it was. The HTML is never parsed
//! into a tree and printed again: re-serialising reorders attributes, changes quotes and entities and
//! breaks the conditional comments that email clients rely on.
//!
//! What is rewritten: the first `href` of each `<a>` and `<area>` tag whose value (entities decoded) is
//! an absolute http or https URL. What is left as it is: `mailto:`, `tel:` and other schemes, `#anchors`
//! and relative links, links with a `data-no-track` or `data-pm-no-track` attribute, values that hold a
//! template placeholder (`{{ }}`, `{% %}`, `*| |*`, `%%`, `${`), and everything inside comments (Outlook's
//! conditional comments included), `<script>`, `<style>`, `<title>` and `<textarea>`.

use std::ops::Range;

/// The open pixel, with `{}` for its URL.
const PIXEL: (&str, &str) = (
    "<img src=\"",
    "\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\" />",
);

/// Elements whose content is text, not markup: a `<a href>` in them is not a link.
const RAW_TEXT: &[&str] = &["script", "style", "title", "textarea"];

/// Markers of template placeholders left for a later renderer; such a link must keep its value.
const PLACEHOLDERS: &[&str] = &["{{", "{%", "*|", "%%", "${", "%7b%7b", "%7b%25"];

/// Gives the tracked URL for a link's target URL, or `None` to leave the link as it is.
pub type ClickUrl<'a> = &'a mut dyn FnMut(&str) -> Option<String>;

/// One change: the bytes `input` of the original were replaced by the bytes `output` of the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub input: Range<usize>,
    pub output: Range<usize>,
}

/// The rewritten HTML with the list of its changes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub html: String,
    pub edits: Vec<Edit>,
    /// Links rewritten.
    pub links: usize,
    /// Whether the pixel was added.
    pub pixel: bool,
}

impl Rewritten {
    /// The original HTML, rebuilt from the result by undoing every change.
    pub fn undo(&self, original_values: impl Fn(&Edit) -> String) -> String {
        let mut out = String::with_capacity(self.html.len());
        let mut at = 0;
        for edit in &self.edits {
            out.push_str(&self.html[at..edit.output.start]);
            out.push_str(&original_values(edit));
            at = edit.output.end;
        }
        out.push_str(&self.html[at..]);
        out
    }
}

/// Inserts tracking into `html`.
///
/// `click` gets each trackable link's target URL (entities decoded, surrounding spaces trimmed) and
/// answers the URL to put in its place, or `None` to leave it; it is not called when `None` is given.
/// `pixel_url` adds the open pixel before the last `</body>` (any case), or at the end when there is
/// none. URLs are HTML-escaped where they are written.
pub fn insert_tracking(
    html: &str,
    mut click: Option<ClickUrl<'_>>,
    pixel_url: Option<&str>,
) -> Rewritten {
    let scan = scan(html);
    let mut replacements: Vec<(Range<usize>, String)> = Vec::new();
    if let Some(click) = click.as_mut() {
        for link in &scan.links {
            let raw = &html[link.clone()];
            if let Some(target) = trackable_target(raw)
                && let Some(url) = click(&target)
            {
                replacements.push((link.clone(), escape_attribute(&url)));
            }
        }
    }
    let links = replacements.len();
    let pixel = pixel_url.is_some();
    if let Some(url) = pixel_url {
        let at = scan.last_body_close.unwrap_or(html.len());
        replacements.push((
            at..at,
            format!("{}{}{}", PIXEL.0, escape_attribute(url), PIXEL.1),
        ));
    }
    replacements.sort_by_key(|(r, _)| (r.start, r.end));

    let extra: usize = replacements.iter().map(|(_, s)| s.len()).sum();
    let mut out = String::with_capacity(html.len() + extra);
    let mut edits = Vec::with_capacity(replacements.len());
    let mut copied = 0;
    for (range, text) in replacements {
        out.push_str(&html[copied..range.start]);
        let start = out.len();
        out.push_str(&text);
        edits.push(Edit {
            input: range.clone(),
            output: start..out.len(),
        });
        copied = range.end;
    }
    out.push_str(&html[copied..]);
    Rewritten {
        html: out,
        edits,
        links,
        pixel,
    }
}

/// The URL a link goes to, if it is one to track.
fn trackable_target(raw: &str) -> Option<String> {
    let lower_raw = raw.to_ascii_lowercase();
    if PLACEHOLDERS.iter().any(|p| lower_raw.contains(p)) {
        return None;
    }
    let decoded = decode_entities(raw);
    let target = decoded.trim_matches(|c: char| c.is_ascii_whitespace());
    let lower = target.to_ascii_lowercase();
    if target.starts_with('#')
        || lower.starts_with("mailto:")
        || lower.starts_with("tel:")
        || PLACEHOLDERS.iter().any(|p| lower.contains(p))
        || !crate::tracking::is_trackable_url(target)
    {
        return None;
    }
    Some(target.to_owned())
}

/// What the scanner found: the value ranges of the links to consider, and the last `</body>`.
struct Scan {
    links: Vec<Range<usize>>,
    last_body_close: Option<usize>,
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from >= bytes.len() {
        return None;
    }
    bytes[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

fn find_ignore_case(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from >= bytes.len() {
        return None;
    }
    bytes[from..]
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| from + p)
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

/// The end of a tag name or attribute name starting at `i`.
fn name_end(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && !is_space(bytes[i]) && !matches!(bytes[i], b'/' | b'>') {
        i += 1;
    }
    i
}

struct Attribute {
    name: Range<usize>,
    value: Option<Range<usize>>,
}

/// Reads a start tag's attributes from `i` (just after its name). Returns them and the index after the
/// tag's `>`; `None` when the tag never ends (an unclosed quote swallows the rest of the document).
fn attributes(bytes: &[u8], mut i: usize) -> Option<(Vec<Attribute>, usize)> {
    let mut attrs = Vec::new();
    loop {
        while i < bytes.len() && (is_space(bytes[i]) || bytes[i] == b'/') {
            i += 1;
        }
        match bytes.get(i) {
            None => return None,
            Some(b'>') => return Some((attrs, i + 1)),
            Some(_) => {}
        }
        let start = i;
        i += 1;
        while i < bytes.len() && !is_space(bytes[i]) && !matches!(bytes[i], b'/' | b'>' | b'=') {
            i += 1;
        }
        let name = start..i;
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        let mut value = None;
        if bytes.get(i) == Some(&b'=') {
            i += 1;
            while i < bytes.len() && is_space(bytes[i]) {
                i += 1;
            }
            match bytes.get(i) {
                Some(&q @ (b'"' | b'\'')) => {
                    let end = find(bytes, i + 1, &[q])?;
                    value = Some(i + 1..end);
                    i = end + 1;
                }
                Some(_) => {
                    let start = i;
                    while i < bytes.len() && !is_space(bytes[i]) && bytes[i] != b'>' {
                        i += 1;
                    }
                    value = Some(start..i);
                }
                None => return None,
            }
        }
        attrs.push(Attribute { name, value });
    }
}

fn scan(html: &str) -> Scan {
    let b = html.as_bytes();
    let mut links = Vec::new();
    let mut last_body_close = None;
    let mut i = 0;
    while let Some(lt) = find(b, i, b"<") {
        i = lt;
        let next = b.get(i + 1).copied();
        if b[i..].starts_with(b"<!--") {
            i = find(b, i + 4, b"-->").map_or(b.len(), |e| e + 3);
        } else if b[i..].starts_with(b"<![CDATA[") {
            i = find(b, i + 9, b"]]>").map_or(b.len(), |e| e + 3);
        } else if matches!(next, Some(b'!' | b'?')) {
            i = find(b, i + 2, b">").map_or(b.len(), |e| e + 1);
        } else if next == Some(b'/') && b.get(i + 2).is_some_and(u8::is_ascii_alphabetic) {
            let end = name_end(b, i + 2);
            if b[i + 2..end].eq_ignore_ascii_case(b"body") {
                last_body_close = Some(i);
            }
            i = find(b, end, b">").map_or(b.len(), |e| e + 1);
        } else if next.is_some_and(|c| c.is_ascii_alphabetic()) {
            let end = name_end(b, i + 1);
            let name = &b[i + 1..end];
            let Some((attrs, after)) = attributes(b, end) else {
                break;
            };
            i = after;
            if name.eq_ignore_ascii_case(b"a") || name.eq_ignore_ascii_case(b"area") {
                let has = |wanted: &[u8]| {
                    attrs
                        .iter()
                        .any(|a| b[a.name.clone()].eq_ignore_ascii_case(wanted))
                };
                if !has(b"data-no-track")
                    && !has(b"data-pm-no-track")
                    && let Some(href) = attrs
                        .iter()
                        .find(|a| b[a.name.clone()].eq_ignore_ascii_case(b"href"))
                    && let Some(value) = &href.value
                {
                    links.push(value.clone());
                }
            } else if let Some(raw) = RAW_TEXT
                .iter()
                .find(|t| name.eq_ignore_ascii_case(t.as_bytes()))
            {
                let close = format!("</{raw}");
                i = find_ignore_case(b, i, close.as_bytes()).unwrap_or(b.len());
            }
        } else {
            i += 1;
        }
    }
    Scan {
        links,
        last_body_close,
    }
}

/// Decodes the character references a URL in an attribute may hold: `&amp;` and the other basic named
/// ones, and numeric ones. Unknown or unterminated references stay as they are, as browsers read them in
/// attribute values (`?a=1&copy=2` keeps its `&copy`).
pub fn decode_entities(raw: &str) -> String {
    if !raw.contains('&') {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after.find(';').filter(|&semi| semi <= 10).and_then(|semi| {
            let name = &after[..semi];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, semi))
        });
        match decoded {
            Some((c, semi)) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Escapes text for an attribute value (quoted either way, or unquoted without spaces).
pub fn escape_attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn track(html: &str) -> Rewritten {
        let mut click = |url: &str| Some(format!("https://t.example/c?u={}", url.len()));
        insert_tracking(html, Some(&mut click), Some("https://t.example/o/x&y"))
    }

    fn undo_of(html: &str, r: &Rewritten) -> String {
        r.undo(|e| html[e.input.clone()].to_owned())
    }

    #[test]
    fn rewrites_links_of_every_quote_style_and_keeps_the_rest() {
        let html = "<html><BODY>\n<a href=\"https://a.example/x?y=1&amp;z=2\">A</a>\n\
            <A class=btn HREF='http://b.example/'>B</A>\n<a href=https://c.example/p>C</a>\n\
            <area shape=rect href=\"https://d.example/\">\n</body></html>";
        let mut seen = Vec::new();
        let mut click = |url: &str| {
            seen.push(url.to_owned());
            Some(format!("https://t.example/c/{}", seen.len()))
        };
        let r = insert_tracking(html, Some(&mut click), Some("https://t.example/o/1"));
        assert_eq!(
            seen,
            [
                "https://a.example/x?y=1&z=2",
                "http://b.example/",
                "https://c.example/p",
                "https://d.example/"
            ]
        );
        assert_eq!(
            r.html,
            "<html><BODY>\n<a href=\"https://t.example/c/1\">A</a>\n\
            <A class=btn HREF='https://t.example/c/2'>B</A>\n<a href=https://t.example/c/3>C</a>\n\
            <area shape=rect href=\"https://t.example/c/4\">\n<img src=\"https://t.example/o/1\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\" /></body></html>"
        );
        assert_eq!((r.links, r.pixel), (4, true));
        assert_eq!(undo_of(html, &r), html);
    }

    #[test]
    fn leaves_what_must_not_be_tracked() {
        let html = concat!(
            "<a href=\"mailto:help@example.com\">m</a>",
            "<a href=\"TEL:+15551234\">t</a>",
            "<a href=\"#top\">anchor</a>",
            "<a href=\"/relative\">rel</a>",
            "<a data-no-track href=\"https://keep.example/\">k</a>",
            "<a href=\"https://keep.example/2\" DATA-PM-NO-TRACK=\"\">k2</a>",
            "<a href=\"https://x.example/?u={{ unsubscribe_url }}\">p</a>",
            "<a href=\"*|UNSUB|*\">p2</a>",
            "<a href=\"https://x.example/%7B%7Bid%7D%7D\">p3</a>",
            "<a href=\"javascript:alert(1)\">js</a>",
            "<a name=\"x\">no href</a>",
            "<!-- <a href=\"https://commented.example/\">c</a> -->",
            "<!--[if mso]><v:roundrect href=\"https://vml.example/\"><![endif]-->",
            "<script>var s = '<a href=\"https://script.example/\">';</script>",
            "<style>a[href=\"https://css.example/\"]{}</style>",
            "<link href=\"https://fonts.example/css\" rel=stylesheet>",
            "<img src=\"https://img.example/a.png\">",
        );
        let r = track(html);
        assert_eq!(r.links, 0);
        assert_eq!(r.edits.len(), 1, "only the pixel");
        assert_eq!(&r.html[..html.len()], html);
        assert!(r.html.ends_with(
            "<img src=\"https://t.example/o/x&amp;y\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\" />"
        ));
    }

    #[test]
    fn the_pixel_goes_before_the_last_body_close() {
        let html = "<body><p>a</p><!-- </body> --></body><p>after</p></BODY >\n";
        let r = insert_tracking(html, None, Some("https://t.example/o"));
        let at = r.html.find("<img").unwrap();
        assert_eq!(&r.html[at + r.edits[0].output.len()..], "</BODY >\n");
        let r = insert_tracking("<p>no body tag</p>", None, Some("https://t.example/o"));
        assert!(r.html.starts_with("<p>no body tag</p><img src="));
        let r = insert_tracking("<p>x</p>", None, None);
        assert_eq!((r.html.as_str(), r.edits.len()), ("<p>x</p>", 0));
    }

    #[test]
    fn tracked_urls_are_escaped_and_only_the_first_href_counts() {
        let html = "<a href='https://a.example/' href='https://b.example/'>x</a>";
        let mut click = |_: &str| Some("https://t.example/c?a=1&b='2'".to_owned());
        let r = insert_tracking(html, Some(&mut click), None);
        assert_eq!(
            r.html,
            "<a href='https://t.example/c?a=1&amp;b=&#39;2&#39;' href='https://b.example/'>x</a>"
        );
    }

    #[test]
    fn broken_markup_is_left_alone() {
        for html in [
            "<a href=\"https://a.example/",
            "<a href=",
            "<a",
            "<",
            "<!-- open",
            "<script><a href=\"https://a.example/\">",
            "a < b and c > d",
        ] {
            let r = track(html);
            assert_eq!(r.links, 0, "{html}");
            assert_eq!(undo_of(html, &r), html);
        }
    }

    #[test]
    fn entities_decode_like_a_browser_reads_attribute_values() {
        assert_eq!(decode_entities("a&amp;b&#38;c&#x26;d&quot;"), "a&b&c&d\"");
        assert_eq!(decode_entities("?a=1&copy=2&amp"), "?a=1&copy=2&amp");
        assert_eq!(decode_entities("&#xZZ;&#99999999;"), "&#xZZ;&#99999999;");
    }

    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9 .,é中\n]{0,12}",
            Just("<a href=\"https://a.example/x?y=1&amp;z=2\">".to_owned()),
            Just("<a href='http://b.example/'>".to_owned()),
            Just("<A HREF=https://c.example/p>".to_owned()),
            Just("<a data-no-track href=\"https://d.example/\">".to_owned()),
            Just("<a href=\"mailto:x@y.z\">".to_owned()),
            Just("<area href=\"https://e.example/\">".to_owned()),
            Just("</a>".to_owned()),
            Just("<!-- <a href=\"https://f.example/\"> -->".to_owned()),
            Just("</body>".to_owned()),
            Just("</BODY>".to_owned()),
            Just("<style>p{}</style>".to_owned()),
            Just("<br/>".to_owned()),
            Just("<".to_owned()),
            Just(">".to_owned()),
            Just("\"".to_owned()),
            Just("'".to_owned()),
            Just("&amp;".to_owned()),
        ]
    }

    proptest! {
        #[test]
        fn undoing_the_edits_gives_back_the_input(parts in proptest::collection::vec(fragment(), 0..30)) {
            let html: String = parts.concat();
            let r = track(&html);
            prop_assert_eq!(undo_of(&html, &r), html.clone());
            // Each edit wrote a tracked URL or the pixel, and nothing else.
            for e in &r.edits {
                let written = &r.html[e.output.clone()];
                prop_assert!(written.starts_with("https://t.example/c?u=") || written.starts_with("<img src="));
                prop_assert!(e.input.is_empty() || !html[e.input.clone()].is_empty());
            }
        }

        #[test]
        fn never_panics_on_any_text(html in "\\PC{0,200}") {
            let r = track(&html);
            prop_assert_eq!(undo_of(&html, &r), html);
        }
    }
}
