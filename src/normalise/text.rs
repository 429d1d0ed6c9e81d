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

/// A title as plain text. HTML titles lose their tags; entities are decoded once, or
/// twice when the partner escaped them twice (`&amp;amp;`, `&amp;uuml;`).
pub fn plain_title(t: &Text) -> String {
    let once = match t.kind {
        TextKind::Html => super::html::to_text(&t.body),
        TextKind::Plain => decode_entities(&t.body),
    };
    // A title still holding an entity after one decoding was escaped twice.
    let out = if looks_escaped(&once) {
        decode_entities(&once)
    } else {
        once
    };
    collapse_whitespace(&out)
}

fn looks_escaped(s: &str) -> bool {
    let Some(at) = s.find('&') else { return false };
    let rest = &s[at + 1..];
    let end = rest.find(';').unwrap_or(0);
    end > 0
        && end <= 10
        && rest[..end]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '#')
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
