//! Plain-text rules: titles, summaries, and the normalised text used for comparison.

use unicode_normalization::UnicodeNormalization;

use crate::model::{Text, TextKind};

/// Collapses runs of whitespace (including no-break spaces) to one space, trims, and
/// drops control characters, which would make our XML output invalid.
pub fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() || c == '\u{a0}' {
            space = true;
        } else if c.is_control() {
            continue;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}

/// A title as plain text, for people: never markup, never an entity reference.
///
/// After the XML parser has undone the document's own escaping, the title is read as
/// HTML whatever its declared type: tags are dropped and entities decoded. RSS titles
/// are HTML in practice, and a `type="text"` title holding `&amp;amp;` was escaped twice
/// by the partner's CMS (HTML-escaped, then XML-escaped again), the most common title
/// fault there is. If the result *still* holds an entity or a tag, the partner escaped
/// more than twice, and reading repeats until nothing changes. So `AT&amp;amp;T`,
/// `AT&amp;amp;amp;T` and `AT&amp;T` in the bytes all read "AT&T", and the rule is
/// idempotent: a normalised title read again is unchanged. The price is that a title
/// whose literal text is an entity (`&amp;`) or a tag (`<b>`) loses it; titles about
/// HTML escaping are rarer than partners who escape twice.
pub fn plain_title(t: &Text) -> String {
    // Titles longer than this are broken feeds, not headlines; the cap also bounds the
    // repeated reading below.
    const MAX_CHARS: usize = 1000;
    let mut s: String = strip_controls(&t.body).chars().take(MAX_CHARS).collect();
    if t.kind == TextKind::Plain && !s.contains(['&', '<']) {
        return collapse_whitespace(&s);
    }
    // Each round that changes the text makes it shorter (a tag or an entity reference
    // becomes at most two characters), so this ends; the bound is a second guard.
    for _ in 0..MAX_CHARS {
        let next = super::html::to_text(&s);
        if next == s {
            break;
        }
        s = next;
    }
    s
}

/// Removes characters XML 1.0 forbids (C0 controls other than tab, LF and CR; U+FFFE;
/// U+FFFF) and the C1 controls, which in feeds are always mis-decoded bytes: invisible,
/// and fatal to our XML output. Borrowed when there is nothing to remove (nearly always).
pub fn strip_controls(s: &str) -> std::borrow::Cow<'_, str> {
    fn bad(c: char) -> bool {
        (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{fffe}' | '\u{ffff}')
    }
    if s.chars().any(bad) {
        std::borrow::Cow::Owned(s.chars().filter(|c| !bad(*c)).collect())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Decodes HTML entities without interpreting tags (`<b>` stays literal text).
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let escaped = s.replace('<', "&lt;").replace('>', "&gt;");
    let frag = scraper::Html::parse_fragment(&escaped);
    frag.root_element().text().collect()
}

/// A plain-text summary of at most `max` characters, cut at a word boundary.
pub fn summarise(text: &str, max: usize) -> String {
    let text = collapse_whitespace(text);
    if text.chars().count() <= max {
        return text;
    }
    let cut: String = text.chars().take(max).collect();
    let cut = match cut.rfind(' ') {
        Some(i) if i > max / 2 => &cut[..i],
        _ => cut.as_str(),
    };
    format!(
        "{}…",
        cut.trim_end_matches([',', ';', ':', '.', ' ', '-', '–'])
    )
}

/// Text for comparison: NFKC, lower case, letters and digits only, single spaces.
pub fn for_matching(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.nfkc().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        } else {
            space = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_escaped_titles_read_right() {
        assert_eq!(
            plain_title(&Text::plain("Gr&amp;uuml;&amp;szlig;e &amp;amp; mehr")),
            "Grüße & mehr"
        );
        assert_eq!(plain_title(&Text::plain("AT&amp;T")), "AT&T");
        assert_eq!(
            plain_title(&Text::html("<b>Fett</b>&nbsp;und  <i>kursiv</i>")),
            "Fett und kursiv"
        );
    }

    #[test]
    fn summaries_cut_at_a_word() {
        let s = summarise(&"Wort ".repeat(100), 300);
        assert!(s.chars().count() <= 301);
        assert!(s.ends_with("Wort…"), "{s}");
    }
}
