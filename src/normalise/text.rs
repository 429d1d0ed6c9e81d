//! Plain-text rules: HTML → text, titles, summaries, and the normalised text used for
//! comparison. Sanitising HTML (what stays markup) is `html`'s; this module only reads it.

use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

use crate::model::Text;

/// Collapses runs of whitespace (including no-break spaces) to one space, trims, and
/// drops control characters, which would make our XML output invalid.
///
/// Runs of printable ASCII are copied whole rather than char by char: this was half of
/// reading the text of an item's HTML (issue 16).
pub fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (c, end) = if is_printable_ascii(b) {
            // The run goes on across Latin-1 letters (U+00C0–U+00FF, lead byte C3: none
            // is whitespace or a control) and across single spaces before a printable
            // character, which stay as they are: a line of words is one copy, not one
            // per word (the copy per word was most of this function's cost, issue 16).
            let mut run = 1;
            loop {
                match bytes.get(i + run) {
                    Some(&n) if is_printable_ascii(n) => run += 1,
                    Some(0xC3) => run += 2,
                    Some(b' ') => match bytes.get(i + run + 1) {
                        Some(&n) if is_printable_ascii(n) => run += 2,
                        Some(0xC3) => run += 3,
                        _ => break,
                    },
                    _ => break,
                }
            }
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push_str(&s[i..i + run]);
            i += run;
            continue;
        } else if b.is_ascii() {
            (char::from(b), i + 1)
        } else {
            let c = s[i..].chars().next().expect("i is at a char boundary");
            (c, i + c.len_utf8())
        };
        i = end;
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

/// ASCII that [`collapse_whitespace`] copies as it is: neither whitespace nor control.
fn is_printable_ascii(b: u8) -> bool {
    (0x21..0x7f).contains(&b)
}

/// HTML → plain text: tags dropped, entities decoded, whitespace collapsed; the content
/// of `script`, `style` and `template` is not text and goes too. Block boundaries become
/// spaces so words do not run together.
///
/// The text is that of the tree the HTML parser builds. Markup whose tree is just its
/// tags' nesting (the sanitiser's output nearly always) is read from the tokens without
/// building the tree ([`super::flat_text`]); the rest from the tree.
pub fn to_text(html: &str) -> String {
    let raw = super::flat_text::text(html, is_block).unwrap_or_else(|| tree_text(html));
    collapse_whitespace(&raw)
}

/// [`to_text`] before collapsing whitespace, read from the parsed tree (also what the
/// token reading is tested against, in `html`'s tests of the sanitiser's output).
pub(crate) fn tree_text(html: &str) -> String {
    use ego_tree::iter::Edge;
    let frag = scraper::Html::parse_fragment(html);
    let mut out = String::with_capacity(html.len());
    let mut hidden = 0usize;
    for edge in frag.root_element().traverse() {
        match edge {
            Edge::Open(node) => {
                if let Some(e) = node.value().as_element() {
                    if matches!(e.name(), "script" | "style" | "template") {
                        hidden += 1;
                    } else if is_block(e.name()) {
                        out.push(' ');
                    }
                } else if let Some(t) = node.value().as_text() {
                    if hidden == 0 {
                        out.push_str(t);
                    }
                }
            }
            Edge::Close(node) => {
                if let Some(e) = node.value().as_element() {
                    if matches!(e.name(), "script" | "style" | "template") {
                        hidden -= 1;
                    } else if is_block(e.name()) {
                        out.push(' ');
                    }
                }
            }
        }
    }
    out
}

pub(super) fn is_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "br"
            | "li"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "div"
            | "tr"
            | "td"
            | "th"
            | "dt"
            | "dd"
            | "blockquote"
            | "figcaption"
            | "figure"
            | "pre"
            | "hr"
            | "table"
            | "ul"
            | "ol"
            | "section"
            | "article"
            | "header"
            | "footer"
            | "img"
    )
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
    // Titles longer than this are broken feeds, not headlines.
    const MAX_CHARS: usize = 1000;
    let s: String = t.body.chars().take(MAX_CHARS).collect();
    plain(&s)
}

/// Text for a plain-text field (title, summary, tag, author): read as HTML until nothing
/// changes, whitespace collapsed, control characters gone. The result holds no tag and
/// no entity reference, not even as visible text: many feed readers and partner pages
/// render "plain" titles and summaries as HTML, so `<script>` must not reach them even
/// escaped once. Idempotent: `plain(plain(x)) == plain(x)`.
pub fn plain(s: &str) -> String {
    // No plain-text field needs more (summaries are cut to 300 characters, titles to
    // 1000); the bound also caps the rounds below, which would otherwise be quadratic
    // in a megabyte of `&amp;amp;amp;…`.
    const MAX_CHARS: usize = 4096;
    let stripped = strip_controls(s);
    let head = prefix_chars(&stripped, MAX_CHARS);
    if !head.contains(['&', '<']) {
        return collapse_whitespace(head);
    }
    let mut s = head.to_owned();
    // Each round that changes the text makes it shorter (a tag or an entity reference
    // becomes at most two characters), so this ends; the bound is a second guard.
    for _ in 0..=s.len() {
        let next = to_text(&s);
        if next == s {
            break;
        }
        s = next;
    }
    s
}

/// The first `max` characters of `s`, borrowed (a body's text is kilobytes, and copying
/// it char by char was a tenth of normalising an item).
fn prefix_chars(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    s.char_indices().nth(max).map_or(s, |(i, _)| &s[..i])
}

/// Removes characters XML 1.0 forbids (C0 controls other than tab, LF and CR; U+FFFE;
/// U+FFFF) and the C1 controls, which in feeds are always mis-decoded bytes: invisible,
/// and fatal to our XML output. Borrowed when there is nothing to remove (nearly always).
pub fn strip_controls(s: &str) -> std::borrow::Cow<'_, str> {
    fn bad(c: char) -> bool {
        (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{fffe}' | '\u{ffff}')
    }
    if has_forbidden_bytes(s.as_bytes()) {
        std::borrow::Cow::Owned(s.chars().filter(|c| !bad(*c)).collect())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Whether UTF-8 text holds one of the characters [`strip_controls`] removes, read as
/// bytes: C0 controls and DEL are single bytes, C1 controls are `C2 80`–`C2 9F`, U+FFFE
/// and U+FFFF are `EF BF BE`/`EF BF BF`. Every document is checked before parsing, and
/// decoding it char by char took 12 % of the parse.
fn has_forbidden_bytes(b: &[u8]) -> bool {
    // A branch-free first look, which the compiler vectorises: only a chunk with a byte
    // that may start a forbidden character is read byte by byte.
    let maybe =
        |x: u8| (x < 0x20 && !matches!(x, b'\t' | b'\n' | b'\r')) | matches!(x, 0x7F | 0xC2 | 0xEF);
    const CHUNK: usize = 64;
    b.chunks(CHUNK).enumerate().any(|(n, chunk)| {
        chunk.iter().fold(false, |acc, &x| acc | maybe(x))
            && precise(&b[n * CHUNK..(n * CHUNK + CHUNK + 2).min(b.len())])
    })
}

/// The exact test, byte by byte (`b` may end inside a character: a lookahead past its
/// end is simply not there).
fn precise(b: &[u8]) -> bool {
    b.iter().enumerate().any(|(i, &x)| match x {
        0x00..=0x08 | 0x0B | 0x0C | 0x0E..=0x1F | 0x7F => true,
        0xC2 => matches!(b.get(i + 1), Some(0x80..=0x9F)),
        0xEF => b.get(i + 1) == Some(&0xBF) && matches!(b.get(i + 2), Some(0xBE | 0xBF)),
        _ => false,
    })
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
///
/// NFKC runs only on the pieces of the text that Unicode's quick check cannot pass: most
/// texts are NFKC already (77 % of a large corpus, issue 16) and most of the rest only
/// in places (a typographic `…`, a ligature). The text is cut before each character that
/// is a starter with `NFKC_Quick_Check=Yes`: such a character has a normalisation
/// boundary before it (UAX #15: it never combines with what precedes it), so normalising
/// the pieces on their own gives NFKC of the whole, and a piece the quick check passes is
/// its own NFKC. The property tests hold this against NFKC of the whole text.
///
/// One pass: each character is lowered and written as it is read, and the state before
/// the current piece is remembered; when the piece turns out to need NFKC, what it wrote
/// is taken back and its NFKC written instead (pieces are a character or a few). ASCII,
/// nearly all of every text, goes through one table. Reading the text twice (once to cut
/// it, once to lower it) was most of this function's cost (issue 16).
pub fn for_matching(text: &str) -> String {
    let mut out = Matching::with_capacity(text.len());
    let bytes = text.as_bytes();
    // Where the current piece starts, and the output as it was before it.
    let mut start = 0;
    let mut before = out.mark();
    // Whether the current piece needs NFKC (then what it wrote is taken back at its end).
    let mut needs = false;
    let mut last_class = 0u8;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii() {
            // Every ASCII character is a starter that passes the quick check: a piece of
            // its own, which needs nothing.
            if needs {
                out.replace_with_nfkc(before, &text[start..i]);
                needs = false;
            }
            last_class = 0;
            // The run of ASCII, each character a piece; only the last one stays current.
            while i < bytes.len() && bytes[i].is_ascii() {
                before = out.mark();
                out.push_ascii(bytes[i]);
                i += 1;
            }
            start = i - 1;
            continue;
        }
        let c = text[i..].chars().next().expect("i is at a char boundary");
        let (class, quick) = nfkc_class(c);
        if class == 0 && quick && i > start {
            if needs {
                out.replace_with_nfkc(before, &text[start..i]);
                needs = false;
            }
            start = i;
            before = out.mark();
        }
        if !quick || (class != 0 && last_class > class) {
            needs = true;
        }
        last_class = class;
        if !needs {
            out.push(c);
        }
        i += c.len_utf8();
    }
    if needs {
        out.replace_with_nfkc(before, &text[start..]);
    }
    out.finish()
}

/// A char's canonical combining class and whether it passes NFKC's quick check. The
/// accented letters of Latin-1 (U+00C0–U+00FF, most of the non-ASCII in our partners'
/// texts) are starters that pass, without the tables' search (a test holds this to them).
#[inline]
fn nfkc_class(c: char) -> (u8, bool) {
    if ('\u{c0}'..='\u{ff}').contains(&c) {
        return (0, true);
    }
    (
        canonical_combining_class(c),
        is_nfkc_quick(std::iter::once(c)) == IsNormalized::Yes,
    )
}

/// How [`for_matching`] writes an ASCII byte: letters lowered, digits as they are, and
/// 0 for every other byte (a separator).
const MATCHING_ASCII: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        let b = i as u8;
        if b.is_ascii_alphanumeric() {
            t[i] = b.to_ascii_lowercase();
        }
        i += 1;
    }
    t
};

/// The rest of [`for_matching`], after NFKC: lower case, letters and digits only.
struct Matching {
    text: Vec<u8>,
    space: bool,
}

/// The output of a [`Matching`] at one point, to go back to.
#[derive(Clone, Copy)]
struct Mark {
    len: usize,
    space: bool,
}

impl Matching {
    fn with_capacity(n: usize) -> Matching {
        Matching {
            text: Vec::with_capacity(n),
            space: false,
        }
    }

    fn mark(&self) -> Mark {
        Mark {
            len: self.text.len(),
            space: self.space,
        }
    }

    /// Takes back what was written since `mark`, and writes `piece`'s NFKC instead.
    fn replace_with_nfkc(&mut self, mark: Mark, piece: &str) {
        self.text.truncate(mark.len);
        self.space = mark.space;
        piece.nfkc().for_each(|c| self.push(c));
    }

    #[inline(always)]
    fn push_ascii(&mut self, b: u8) {
        let lower = MATCHING_ASCII[usize::from(b)];
        if lower == 0 {
            self.space = true;
        } else {
            if self.space && !self.text.is_empty() {
                self.text.push(b' ');
            }
            self.space = false;
            self.text.push(lower);
        }
    }

    fn push(&mut self, c: char) {
        // ASCII (most of every text) without the Unicode tables: its lower case is one
        // ASCII character, and its letters and digits are the ASCII ones.
        if c.is_ascii() {
            self.push_ascii(c as u8);
        } else if let Some((lower, alphanumeric)) = latin1_lower(c) {
            self.push_lower(lower, alphanumeric);
        } else {
            for c in c.to_lowercase() {
                self.push_lower(c, c.is_alphanumeric());
            }
        }
    }

    fn push_lower(&mut self, c: char, alphanumeric: bool) {
        if alphanumeric {
            if self.space && !self.text.is_empty() {
                self.text.push(b' ');
            }
            self.space = false;
            let mut buf = [0u8; 4];
            self.text
                .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        } else {
            self.space = true;
        }
    }

    fn finish(self) -> String {
        String::from_utf8(self.text).expect("written as whole chars")
    }
}

/// The lower case of a char of Latin-1's upper half (U+00C0–U+00FF: the accented
/// letters of the languages our partners write in, and `×`, `÷`) and whether it is a
/// letter, without the Unicode tables: `À`–`Þ` lower by 0x20, `ß`–`ÿ` are lower case
/// already, and `×`/`÷` are no letters. `None` for any other char. The tables' search
/// for `ä` or `é` cost more than the rest of that char's way through [`for_matching`].
fn latin1_lower(c: char) -> Option<(char, bool)> {
    match c {
        '\u{d7}' | '\u{f7}' => Some((c, false)),
        '\u{c0}'..='\u{de}' => Some((char::from_u32(c as u32 + 0x20)?, true)),
        '\u{df}'..='\u{ff}' => Some((c, true)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn forbidden_characters_are_found_as_bytes_exactly_as_by_char_for_every_code_point() {
        let by_char = |s: &str| {
            s.chars().any(|c| {
                (c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
                    || matches!(c, '\u{fffe}' | '\u{ffff}')
            })
        };
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let s = format!("a{c}b");
            assert_eq!(
                has_forbidden_bytes(s.as_bytes()),
                by_char(&s),
                "U+{:04X}",
                c as u32
            );
        }
        // Across the boundaries of the vectorised first look.
        for c in ['\u{85}', '\u{ffff}', '\u{1}', 'ä', '\u{a0}'] {
            for at in 120..132 {
                let s = format!("{}{c}{}", "x".repeat(at), "y".repeat(3));
                assert_eq!(
                    has_forbidden_bytes(s.as_bytes()),
                    by_char(&s),
                    "{c:?} at {at}"
                );
            }
        }
    }

    #[test]
    fn latin1_letters_are_starters_that_pass_the_quick_check_as_the_tables_say() {
        for c in '\u{c0}'..='\u{ff}' {
            assert_eq!(canonical_combining_class(c), 0, "U+{:04X}", c as u32);
            assert_eq!(
                is_nfkc_quick(std::iter::once(c)),
                IsNormalized::Yes,
                "U+{:04X}",
                c as u32
            );
        }
    }

    #[test]
    fn latin1_letters_lower_as_the_unicode_tables_say() {
        for c in (0x80..=0x17f_u32).filter_map(char::from_u32) {
            if let Some((lower, letter)) = super::latin1_lower(c) {
                let want: Vec<char> = c.to_lowercase().collect();
                assert_eq!(want, [lower], "U+{:04X}", c as u32);
                assert_eq!(letter, lower.is_alphanumeric(), "U+{:04X}", c as u32);
            }
        }
        assert!(super::latin1_lower('\u{bf}').is_none());
        assert!(super::latin1_lower('\u{100}').is_none());
    }

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

    /// [`for_matching`] as it was: NFKC on every text.
    pub(super) fn matching_with_nfkc(s: &str) -> String {
        let mut out = String::new();
        let mut space = false;
        for c in s.nfkc().flat_map(char::to_lowercase) {
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

    #[test]
    fn matching_text_skips_nfkc_only_where_it_changes_nothing() {
        for s in [
            "Grüße aus Köln",
            "ﬁnal … ½ Ⅻ",
            "e\u{301}t\u{e9}",
            "ＡＢＣ １２３",
            "plain ascii",
            "ǅ Ω K",
            "\u{1100}\u{1161}\u{11a8} \u{ac00}\u{11a8}",
            "a\u{0328}\u{0301}\u{0315} \u{0f73} \u{0344}x",
            "…ﬁ…",
        ] {
            assert_eq!(for_matching(s), matching_with_nfkc(s), "{s}");
        }
    }

    #[test]
    fn summaries_cut_at_a_word() {
        let s = summarise(&"Wort ".repeat(100), 300);
        assert!(s.chars().count() <= 301);
        assert!(s.ends_with("Wort…"), "{s}");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn title() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            prop::sample::select(vec![
                "&amp;",
                "&amp;amp;",
                "&lt;",
                "&gt;",
                "&lt;b&gt;",
                "&nbsp;",
                "&#160;",
                "&#x26;",
                "&uuml;",
                "&amp;uuml;",
                "&",
                ";",
                "#",
                "<b>",
                "</b>",
                "<script>",
                "</script>",
                "<",
                ">",
                " ",
                "\t",
                "\n",
                "\u{a0}",
                "\u{1}",
                "AT&T",
                "x<y",
                "<!--",
                "-->",
            ])
            .prop_map(str::to_owned),
            "[a-zA-Zäöüß0-9 ]{0,6}",
            any::<String>(),
        ];
        prop::collection::vec(piece, 0..16).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn normalising_a_title_twice_equals_once(raw in title(), html in any::<bool>()) {
            let t = if html { Text::html(raw) } else { Text::plain(raw) };
            let once = plain_title(&t);
            prop_assert_eq!(plain_title(&Text::plain(once.clone())), once.clone());
            prop_assert_eq!(plain_title(&Text::html(once.clone())), once.clone());
            prop_assert!(!once.chars().any(|c| c.is_control()), "{:?}", once);
            prop_assert_eq!(once.trim(), once.as_str());
        }

        #[test]
        fn whitespace_collapses_as_read_char_by_char(s in any::<String>(), t in "[ a\t\n\u{b}\u{c}\r\u{1}\u{1f}\u{7f}\u{85}\u{a0}\u{2009}ä]{0,40}") {
            let by_char = |s: &str| {
                let mut out = String::new();
                let mut space = false;
                for c in s.chars() {
                    if c.is_whitespace() || c == '\u{a0}' {
                        space = true;
                    } else if !c.is_control() {
                        if space && !out.is_empty() {
                            out.push(' ');
                        }
                        space = false;
                        out.push(c);
                    }
                }
                out
            };
            prop_assert_eq!(collapse_whitespace(&s), by_char(&s));
            prop_assert_eq!(collapse_whitespace(&t), by_char(&t));
        }

        #[test]
        fn matching_text_equals_matching_after_nfkc(s in any::<String>()) {
            prop_assert_eq!(for_matching(&s), tests::matching_with_nfkc(&s));
        }

        /// Where normalisation reaches across characters: combining marks in and out of
        /// order, Hangul jamo that compose, compatibility forms, next to ASCII.
        #[test]
        fn matching_text_of_combining_sequences_equals_matching_after_nfkc(
            chars in prop::collection::vec(prop::sample::select(vec![
                'a', 'e', 'E', ' ', '.', '1', 'é', 'ä', '\u{0300}', '\u{0301}', '\u{0308}',
                '\u{0315}', '\u{0323}', '\u{0328}', '\u{0344}', '\u{0345}', '\u{0f73}',
                '\u{1100}', '\u{1161}', '\u{11a8}', '\u{ac00}', '\u{ac01}', 'ﬁ', '½',
                '…', 'Ⅻ', 'Ａ', '\u{2126}', '\u{212a}', 'ǅ', '\u{3099}', 'か', '\u{ff76}',
                '\u{ff9e}', 'ß', 'İ', '\u{1e9b}', '\u{05b0}', '\u{0591}',
            ]), 0..24)
        ) {
            let s: String = chars.into_iter().collect();
            prop_assert_eq!(for_matching(&s), tests::matching_with_nfkc(&s), "{:?}", s);
        }

        #[test]
        fn summaries_stay_short_and_end_on_a_word(text in "[a-zäöü ]{0,900}") {
            let s = summarise(&text, 300);
            prop_assert!(s.chars().count() <= 301, "{}", s.chars().count());
            if let Some(cut) = s.strip_suffix('…') {
                let collapsed = collapse_whitespace(&text);
                let rest = &collapsed[cut.len()..];
                prop_assert!(
                    rest.is_empty() || rest.starts_with(' ') || cut.chars().count() >= 300,
                    "cut inside a word: {:?} | {:?}", cut, &rest[..rest.len().min(20)]
                );
            }
        }
    }
}
