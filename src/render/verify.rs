//! Reads every rendered document back before it may replace the published one.
//!
//! XML documents must be well-formed XML 1.0 (legal characters, known entities,
//! matching tags, one root) with the expected root element, and a feed must keep every
//! item (its `<item>`s or `<entry>`s are counted in the same scan); JSON Feeds must be
//! JSON with the JSON Feed 1.1 shape. How much more is checked is the caller's
//! [`Depth`]: front-door documents are also parsed again with feed-rs (the parser our
//! own ingest uses). A failure names what is wrong and where, and the publisher keeps
//! the previous file. quick-xml and feed-rs types stay in this file.

use quick_xml::events::Event;
use quick_xml::{Reader, XmlVersion};

use super::DocKind;
use crate::model::Format;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("not UTF-8 at byte {0}")]
    NotUtf8(usize),
    #[error("character U+{code:04X} is not allowed in XML (byte {at})")]
    IllegalChar { code: u32, at: usize },
    #[error("not well-formed XML at byte {at}: {message}")]
    Xml { at: u64, message: String },
    #[error("root element is <{found}>, expected <{expected}>")]
    Root { found: String, expected: String },
    #[error("feed parser rejects it: {0}")]
    Feed(String),
    #[error("{found} items read back, {expected} expected")]
    ItemCount { found: usize, expected: usize },
    #[error("not a JSON Feed 1.1: {0}")]
    JsonFeed(String),
    #[error("HTML document does not start with <!DOCTYPE html>")]
    Html,
}

/// How thoroughly a document is read back.
///
/// In a profile of a cold medium build (1 939 documents, `perf record`), checking was
/// 9.3 % of the CPU, the feed-rs reparse 4.3 % of it and well-formedness 2.7 %. The
/// reparse finds little in our own rendering that the scan does not — a renderer bug
/// that loses items or breaks the markup shows in the scan's entry count or its
/// well-formedness — so it is kept where a second opinion from a real feed parser is
/// worth its cost: the few front-door documents most readers fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Well-formedness, root element and entry count in one streaming scan; for JSON,
    /// the JSON Feed shape.
    Scan,
    /// All of [`Depth::Scan`], then a feed-rs parse of the feed.
    Reparse,
}

/// Checks `body` as a document of `kind`. `items` is how many entries a feed must have
/// when read back (`None`: not checked).
pub fn check(
    kind: DocKind,
    body: &[u8],
    items: Option<usize>,
    depth: Depth,
) -> Result<(), VerifyError> {
    let text = utf8(body)?;
    match kind {
        DocKind::Feed(Format::Json) | DocKind::Archive(Format::Json) => {
            json_feed(text, items)?;
            if depth == Depth::Reparse {
                parse_feed(body, items)?;
            }
            Ok(())
        }
        DocKind::Feed(f) | DocKind::Archive(f) => {
            let (root, entry) = if f == Format::Rss {
                ("rss", Entry::RSS)
            } else {
                ("feed", Entry::ATOM)
            };
            let scan = scan(text, Some(entry), Within::Document)?;
            if scan.root != root {
                return Err(VerifyError::Root {
                    found: scan.root,
                    expected: root.into(),
                });
            }
            match items {
                Some(n) if scan.entries != n => {
                    return Err(VerifyError::ItemCount {
                        found: scan.entries,
                        expected: n,
                    })
                }
                _ => {}
            }
            if depth == Depth::Reparse {
                parse_feed(body, items)?;
            }
            Ok(())
        }
        DocKind::Opml => expect_root(text, "opml"),
        DocKind::Xslt => expect_root(text, "xsl:stylesheet"),
        DocKind::Html => {
            if text.trim_start().starts_with("<!DOCTYPE html>") {
                Ok(())
            } else {
                Err(VerifyError::Html)
            }
        }
        DocKind::Script => Ok(()),
    }
}

/// Checks one item fragment of a `format` document: legal UTF-8 characters, one
/// well-formed element (`<item>` for RSS, `<entry>` for Atom) and no declaration; a
/// JSON Feed item: a JSON object with the item rules of [`check`].
pub fn fragment(format: Format, bytes: &[u8]) -> Result<(), VerifyError> {
    let text = utf8(bytes)?;
    let Some((_, entry)) = xml_entry(format) else {
        let item: shape::Item =
            serde_json::from_str(text).map_err(|e| VerifyError::JsonFeed(e.to_string()))?;
        return item_rules(&item, 0);
    };
    let scan = scan(text, None, Within::Fragment)?;
    if scan.root != entry.name {
        return Err(VerifyError::Root {
            found: scan.root,
            expected: entry.name.into(),
        });
    }
    Ok(())
}

/// The root and entry elements of an XML feed format.
pub(super) fn xml_entry(format: Format) -> Option<(&'static str, Entry)> {
    match format {
        Format::Rss => Some(("rss", Entry::RSS)),
        Format::Atom => Some(("feed", Entry::ATOM)),
        Format::Json => None,
    }
}

impl VerifyError {
    /// The error with its position moved by `by` bytes (a fragment's error, placed in
    /// the document holding the fragment).
    pub(super) fn shifted(self, by: usize) -> Self {
        match self {
            VerifyError::NotUtf8(at) => VerifyError::NotUtf8(at + by),
            VerifyError::IllegalChar { code, at } => VerifyError::IllegalChar { code, at: at + by },
            VerifyError::Xml { at, message } => VerifyError::Xml {
                at: at + by as u64,
                message,
            },
            other => other,
        }
    }
}

/// `body` as text. simdutf8's validation first (several times as fast as the standard
/// library's on our megabytes of mostly ASCII); only a document that fails it is looked
/// at again, for the position of its first bad byte.
pub(super) fn utf8(body: &[u8]) -> Result<&str, VerifyError> {
    match simdutf8::basic::from_utf8(body) {
        Ok(text) => Ok(text),
        Err(_) => Err(VerifyError::NotUtf8(
            std::str::from_utf8(body).map_or_else(|e| e.valid_up_to(), |_| body.len()),
        )),
    }
}

fn expect_root(text: &str, expected: &str) -> Result<(), VerifyError> {
    let root = well_formed(text)?;
    if root == expected {
        Ok(())
    } else {
        Err(VerifyError::Root {
            found: root,
            expected: expected.into(),
        })
    }
}

/// XML 1.0 `Char`: what may appear in a document at all (§2.2).
fn legal_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Checks well-formedness; returns the root element's qualified name.
pub fn well_formed(text: &str) -> Result<String, VerifyError> {
    scan(text, None, Within::Document).map(|s| s.root)
}

/// Which elements are a feed's entries: `name` at `depth` below the root (RSS 2.0
/// `rss/channel/item`, Atom `feed/entry`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub name: &'static str,
    pub depth: usize,
}

impl Entry {
    const RSS: Entry = Entry {
        name: "item",
        depth: 2,
    };
    const ATOM: Entry = Entry {
        name: "entry",
        depth: 1,
    };
}

/// What one well-formedness scan found.
pub(super) struct Scanned {
    /// The root element's qualified name.
    pub root: String,
    /// How many `entry` elements (0 when none was asked for).
    pub entries: usize,
    /// How many elements were open at the byte asked for ([`Within::Splice`]), if it
    /// lies between two pieces of markup.
    pub depth_at: Option<usize>,
}

/// What a scanned text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Within {
    /// A document.
    Document,
    /// A document into which fragments go at this byte: the scan notes how deep it is.
    Splice(usize),
    /// An element to go into a document: it may hold no XML declaration or DTD, which
    /// only a document's start may.
    Fragment,
}

/// The first character XML 1.0 does not allow, and where. Works on bytes: in UTF-8 the
/// only illegal characters are the C0 controls other than tab, LF and CR (one byte
/// each) and U+FFFE/U+FFFF (`EF BF BE`/`EF BF BF`); surrogates cannot occur in a `str`.
///
/// Every published byte passes through here, so it is written to be cheap: the
/// controls are looked for a block at a time with a test the compiler turns into
/// vector instructions (a block that has one is then searched byte by byte), and
/// `EF` — rare in feeds — with `memchr`. A byte-at-a-time `position` cost about 6
/// instructions per byte, 1.2 G of the 10.5 G instructions of a publish of a medium
/// build (callgrind).
fn illegal_char(text: &str) -> Option<(usize, char)> {
    const BLOCK: usize = 64;
    let b = text.as_bytes();
    let control = |c: u8| c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r');
    let first_control = b
        .chunks(BLOCK)
        .enumerate()
        .find(|(_, block)| {
            // Non-short-circuiting on purpose: the whole block in one vectorised pass.
            block.iter().fold(false, |any, &c| {
                any | ((c < 0x20) & (c != b'\t') & (c != b'\n') & (c != b'\r'))
            })
        })
        .and_then(|(n, block)| Some(n * BLOCK + block.iter().position(|&c| control(c))?));
    let limit = first_control.unwrap_or(b.len());
    let first_nonchar = memchr::memchr_iter(0xEF, &b[..limit])
        .find(|&i| b.get(i + 1) == Some(&0xBF) && matches!(b.get(i + 2), Some(0xBE | 0xBF)));
    let at = first_nonchar.or(first_control)?;
    let c = text[at..].chars().next()?;
    Some((at, c))
}

/// Checks well-formedness and counts `entry` elements in one pass.
pub(super) fn scan(
    text: &str,
    entry: Option<Entry>,
    within: Within,
) -> Result<Scanned, VerifyError> {
    if let Some((at, c)) = illegal_char(text) {
        debug_assert!(!legal_xml_char(c));
        return Err(VerifyError::IllegalChar { code: c as u32, at });
    }
    let mut entries = 0;
    let mut reader = Reader::from_str(text);
    let cfg = reader.config_mut();
    cfg.check_end_names = true;
    cfg.check_comments = true;
    let mut depth = 0usize;
    let mut root: Option<String> = None;
    let splice_at = match within {
        Within::Splice(at) => Some(at as u64),
        _ => None,
    };
    let mut depth_at = None;
    let err = |reader: &Reader<&[u8]>, message: String| VerifyError::Xml {
        at: reader.buffer_position(),
        message,
    };
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| err(&reader, e.to_string()))?;
        match ev {
            Event::Decl(_) | Event::DocType(_) if within == Within::Fragment => {
                return Err(err(&reader, "a declaration inside an item".into()));
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                if depth == 0 {
                    if root.is_some() {
                        return Err(err(&reader, "a second root element".into()));
                    }
                    root = Some(e.name().0.to_owned());
                } else if entry.is_some_and(|en| en.depth == depth && e.name().0 == en.name) {
                    entries += 1;
                }
                for a in e.attributes() {
                    let a = a.map_err(|e| err(&reader, e.to_string()))?;
                    // Only a reference can make a value wrong (an unknown entity, a bad
                    // character reference): unescaping allocates, so only values that
                    // hold one are unescaped.
                    if memchr::memchr(b'&', a.value.as_bytes()).is_some() {
                        a.normalized_value(XmlVersion::Explicit1_0)
                            .map_err(|e| err(&reader, e.to_string()))?;
                    }
                }
                if matches!(ev, Event::Start(_)) {
                    depth += 1;
                }
            }
            Event::End(_) => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| err(&reader, "end tag without start".into()))?;
            }
            Event::GeneralRef(r) => {
                let known = matches!(&*r, "amp" | "lt" | "gt" | "quot" | "apos");
                let char_ok = r
                    .resolve_char_ref()
                    .ok()
                    .flatten()
                    .is_some_and(legal_xml_char);
                if !(known || char_ok) {
                    return Err(err(&reader, format!("unknown entity &{};", &*r)));
                }
            }
            Event::Text(t) if depth == 0 && !t.trim().is_empty() => {
                return Err(err(&reader, "text outside the root element".into()));
            }
            Event::CData(_) if depth == 0 => {
                return Err(err(&reader, "CDATA outside the root element".into()));
            }
            Event::Eof => break,
            _ => {}
        }
        if splice_at == Some(reader.buffer_position()) {
            depth_at = Some(depth);
        }
    }
    if depth != 0 {
        return Err(VerifyError::Xml {
            at: text.len() as u64,
            message: format!("{depth} element(s) not closed"),
        });
    }
    let root = root.ok_or_else(|| VerifyError::Xml {
        at: 0,
        message: "no root element".into(),
    })?;
    Ok(Scanned {
        root,
        entries,
        depth_at,
    })
}

fn parse_feed(body: &[u8], items: Option<usize>) -> Result<(), VerifyError> {
    let feed = feed_rs::parser::parse(body).map_err(|e| VerifyError::Feed(e.to_string()))?;
    match items {
        Some(n) if feed.entries.len() != n => Err(VerifyError::ItemCount {
            found: feed.entries.len(),
            expected: n,
        }),
        _ => Ok(()),
    }
}

/// The JSON Feed 1.1 rules a reader relies on: version, title, items with string IDs
/// and some content, RFC 3339 dates.
///
/// Read with serde visitors that keep only what these rules look at (is it a string,
/// is the date RFC 3339), not into a `serde_json::Value`: building the tree of every
/// feed — a map and a `String` for each field of each item — cost 1.4 G instructions
/// of a 10.5 G publish of a medium build, a third of all checking.
fn json_feed(text: &str, items: Option<usize>) -> Result<(), VerifyError> {
    let bad = |m: &str| VerifyError::JsonFeed(m.to_owned());
    let feed: shape::Feed =
        serde_json::from_str(text).map_err(|e| VerifyError::JsonFeed(e.to_string()))?;
    if !feed.version_ok {
        return Err(bad("`version` is not https://jsonfeed.org/version/1.1"));
    }
    if feed.title != shape::Seen::String {
        return Err(bad("`title` missing"));
    }
    let list = feed.items.ok_or_else(|| bad("`items` missing"))?;
    for (i, it) in list.iter().enumerate() {
        item_rules(it, i)?;
    }
    if let Some(n) = items.filter(|n| *n != list.len()) {
        return Err(VerifyError::ItemCount {
            found: list.len(),
            expected: n,
        });
    }
    Ok(())
}

/// The rules for item `i` of a JSON Feed.
fn item_rules(it: &shape::Item, i: usize) -> Result<(), VerifyError> {
    let at = |m: &str| VerifyError::JsonFeed(format!("items[{i}]: {m}"));
    if it.id != shape::Seen::String {
        return Err(at("`id` must be a string"));
    }
    if it.content_html != shape::Seen::String && it.content_text != shape::Seen::String {
        return Err(at("needs `content_html` or `content_text`"));
    }
    for (k, d) in [
        ("date_published", it.date_published),
        ("date_modified", it.date_modified),
    ] {
        if d == shape::Seen::Other {
            return Err(at(&format!("`{k}` is not RFC 3339")));
        }
    }
    Ok(())
}

/// What [`json_feed`] reads of a JSON Feed: for each field it checks, only whether it
/// is there and of the right kind. Objects are read as maps only (a JSON array is not a
/// feed, though serde's derived structs would take one); a field given twice counts as
/// its last value, as `serde_json::Value` has it.
mod shape {
    use std::fmt;

    use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use serde::Deserialize;

    /// A field as the rules see it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub(super) enum Seen {
        #[default]
        Absent,
        /// A string (for a date field: an RFC 3339 one).
        String,
        /// Anything else, `null` included.
        Other,
    }

    pub(super) struct Feed {
        pub version_ok: bool,
        pub title: Seen,
        pub items: Option<Vec<Item>>,
    }

    #[derive(Default)]
    pub(super) struct Item {
        pub id: Seen,
        pub content_html: Seen,
        pub content_text: Seen,
        pub date_published: Seen,
        pub date_modified: Seen,
    }

    /// Is the value a string, and does it pass `test`?
    struct Kind(fn(&str) -> bool);

    impl<'de> Visitor<'de> for Kind {
        type Value = Seen;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Seen, E> {
            Ok(if (self.0)(v) {
                Seen::String
            } else {
                Seen::Other
            })
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Seen, E> {
            Ok(Seen::Other)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Seen, E> {
            Ok(Seen::Other)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Seen, E> {
            Ok(Seen::Other)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Seen, E> {
            Ok(Seen::Other)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Seen, E> {
            Ok(Seen::Other)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Seen, A::Error> {
            IgnoredAny.visit_seq(seq).map(|_| Seen::Other)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Seen, A::Error> {
            IgnoredAny.visit_map(map).map(|_| Seen::Other)
        }
    }

    /// A field's value seen through [`Kind`].
    struct Field<const DATE: bool>(Seen);

    impl<'de, const DATE: bool> Deserialize<'de> for Field<DATE> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let test: fn(&str) -> bool = if DATE {
                |v| chrono::DateTime::parse_from_rfc3339(v).is_ok()
            } else {
                |_| true
            };
            d.deserialize_any(Kind(test)).map(Field)
        }
    }

    struct Version(bool);

    impl<'de> Deserialize<'de> for Version {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let seen = d.deserialize_any(Kind(|v| v == "https://jsonfeed.org/version/1.1"))?;
            Ok(Version(seen == Seen::String))
        }
    }

    impl<'de> Deserialize<'de> for Feed {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Feed;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a JSON Feed object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Feed, A::Error> {
                    let mut feed = Feed {
                        version_ok: false,
                        title: Seen::Absent,
                        items: None,
                    };
                    while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                        match &*key {
                            "version" => feed.version_ok = map.next_value::<Version>()?.0,
                            "title" => feed.title = map.next_value::<Field<false>>()?.0,
                            "items" => feed.items = map.next_value::<Items>()?.0,
                            _ => {
                                map.next_value::<IgnoredAny>()?;
                            }
                        }
                    }
                    Ok(feed)
                }
            }
            d.deserialize_map(V)
        }
    }

    /// `items`: `None` unless it is an array of objects.
    struct Items(Option<Vec<Item>>);

    impl<'de> Deserialize<'de> for Items {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Items;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
                    let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(50));
                    while let Some(it) = seq.next_element::<Item>()? {
                        out.push(it);
                    }
                    Ok(Items(Some(out)))
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Items, A::Error> {
                    IgnoredAny.visit_map(map).map(|_| Items(None))
                }
                fn visit_str<E: de::Error>(self, _: &str) -> Result<Items, E> {
                    Ok(Items(None))
                }
                fn visit_bool<E: de::Error>(self, _: bool) -> Result<Items, E> {
                    Ok(Items(None))
                }
                fn visit_i64<E: de::Error>(self, _: i64) -> Result<Items, E> {
                    Ok(Items(None))
                }
                fn visit_u64<E: de::Error>(self, _: u64) -> Result<Items, E> {
                    Ok(Items(None))
                }
                fn visit_f64<E: de::Error>(self, _: f64) -> Result<Items, E> {
                    Ok(Items(None))
                }
                fn visit_unit<E: de::Error>(self) -> Result<Items, E> {
                    Ok(Items(None))
                }
            }
            d.deserialize_any(V)
        }
    }

    impl<'de> Deserialize<'de> for Item {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Item;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a JSON Feed item object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
                    let mut it = Item::default();
                    while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                        let slot = match &*key {
                            "id" => &mut it.id,
                            "content_html" => &mut it.content_html,
                            "content_text" => &mut it.content_text,
                            "date_published" => {
                                it.date_published = map.next_value::<Field<true>>()?.0;
                                continue;
                            }
                            "date_modified" => {
                                it.date_modified = map.next_value::<Field<true>>()?.0;
                                continue;
                            }
                            _ => {
                                map.next_value::<IgnoredAny>()?;
                                continue;
                            }
                        };
                        *slot = map.next_value::<Field<false>>()?.0;
                    }
                    Ok(it)
                }
            }
            d.deserialize_map(V)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSS: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>t</title><link>https://x.example/</link><description>d</description>
<item><title>a &amp; b</title><guid isPermaLink="false">1</guid></item></channel></rss>
"#;

    #[test]
    fn a_good_rss_document_passes() {
        check(
            DocKind::Feed(Format::Rss),
            RSS.as_bytes(),
            Some(1),
            Depth::Reparse,
        )
        .unwrap();
    }

    #[test]
    fn a_control_character_is_rejected() {
        let broken = RSS.replace("a &amp; b", "a \u{b} b");
        let e = check(
            DocKind::Feed(Format::Rss),
            broken.as_bytes(),
            None,
            Depth::Reparse,
        )
        .unwrap_err();
        assert!(
            matches!(e, VerifyError::IllegalChar { code: 0xB, .. }),
            "{e}"
        );
    }

    #[test]
    fn a_bare_ampersand_and_an_html_entity_are_rejected() {
        for bad in ["a & b", "a&nbsp;b"] {
            let broken = RSS.replace("a &amp; b", bad);
            let e = check(
                DocKind::Feed(Format::Rss),
                broken.as_bytes(),
                None,
                Depth::Reparse,
            )
            .unwrap_err();
            assert!(matches!(e, VerifyError::Xml { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn a_truncated_document_is_rejected() {
        let broken = &RSS[..RSS.len() - 20];
        assert!(check(
            DocKind::Feed(Format::Rss),
            broken.as_bytes(),
            None,
            Depth::Reparse
        )
        .is_err());
    }

    #[test]
    fn mismatched_tags_and_a_wrong_root_are_rejected() {
        let broken = RSS.replace("</title><guid", "</titel><guid");
        assert!(check(
            DocKind::Feed(Format::Rss),
            broken.as_bytes(),
            None,
            Depth::Reparse
        )
        .is_err());
        let e = check(
            DocKind::Feed(Format::Atom),
            RSS.as_bytes(),
            None,
            Depth::Reparse,
        )
        .unwrap_err();
        assert!(matches!(e, VerifyError::Root { .. }), "{e}");
    }

    #[test]
    fn lost_items_are_noticed_by_the_scan_alone() {
        for depth in [Depth::Scan, Depth::Reparse] {
            let e = check(DocKind::Feed(Format::Rss), RSS.as_bytes(), Some(2), depth).unwrap_err();
            assert_eq!(
                e,
                VerifyError::ItemCount {
                    found: 1,
                    expected: 2
                }
            );
        }
    }

    const ATOM: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>urn:x</id><updated>2024-01-01T00:00:00Z</updated>
<entry><title>a</title><id>urn:1</id><updated>2024-01-01T00:00:00Z</updated><source><entry/></source></entry>
<entry><title>b</title><id>urn:2</id><updated>2024-01-01T00:00:00Z</updated></entry></feed>
"#;

    #[test]
    fn the_scan_counts_only_the_feeds_own_entries() {
        // An `<entry>` nested deeper (here inside `<source>`) is not one of the feed's.
        check(
            DocKind::Archive(Format::Atom),
            ATOM.as_bytes(),
            Some(2),
            Depth::Scan,
        )
        .unwrap();
        check(
            DocKind::Archive(Format::Atom),
            ATOM.as_bytes(),
            Some(2),
            Depth::Reparse,
        )
        .unwrap();
        let nested_item = RSS.replace("<guid", "<x><item/></x><guid");
        check(
            DocKind::Feed(Format::Rss),
            nested_item.as_bytes(),
            Some(1),
            Depth::Scan,
        )
        .unwrap();
        let e = check(
            DocKind::Archive(Format::Atom),
            ATOM.as_bytes(),
            Some(3),
            Depth::Scan,
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                VerifyError::ItemCount {
                    found: 2,
                    expected: 3
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn the_scan_rejects_what_the_reparse_rejects_in_markup() {
        let broken = [
            RSS.replace("a &amp; b", "a \u{1} b"),
            RSS.replace("a &amp; b", "a & b"),
            RSS.replace("a &amp; b", "a \u{FFFE} b"),
            RSS.replace("</title><guid", "</titel><guid"),
            RSS[..RSS.len() - 20].to_owned(),
        ];
        for b in broken {
            assert!(
                check(DocKind::Feed(Format::Rss), b.as_bytes(), None, Depth::Scan).is_err(),
                "{b}"
            );
        }
        let e = check(
            DocKind::Feed(Format::Rss),
            "a \u{FFFF}".as_bytes(),
            None,
            Depth::Scan,
        )
        .unwrap_err();
        assert_eq!(
            e,
            VerifyError::IllegalChar {
                code: 0xFFFF,
                at: 2
            }
        );
        // Legal characters next to the illegal ones' bytes pass: U+FFFD, U+EFFF, U+10000.
        let fine = RSS.replace("a &amp; b", "\u{FFFD}\u{EFFF}\u{10000}");
        check(
            DocKind::Feed(Format::Rss),
            fine.as_bytes(),
            Some(1),
            Depth::Scan,
        )
        .unwrap();
    }

    #[test]
    fn json_feed_needs_version_ids_and_content() {
        let good = r#"{"version":"https://jsonfeed.org/version/1.1","title":"t","items":[{"id":"1","content_text":"x","date_published":"2020-01-01T00:00:00Z"}]}"#;
        check(
            DocKind::Feed(Format::Json),
            good.as_bytes(),
            Some(1),
            Depth::Reparse,
        )
        .unwrap();
        check(
            DocKind::Feed(Format::Json),
            good.as_bytes(),
            Some(1),
            Depth::Scan,
        )
        .unwrap();
        for bad in [
            good.replace("1.1", "1"),
            good.replace(r#""id":"1""#, r#""id":1"#),
            good.replace("content_text", "text"),
            good.replace("2020-01-01T00:00:00Z", "yesterday"),
            good[..good.len() - 2].to_owned(),
        ] {
            for depth in [Depth::Scan, Depth::Reparse] {
                assert!(
                    check(DocKind::Feed(Format::Json), bad.as_bytes(), None, depth).is_err(),
                    "{depth:?}: {bad}"
                );
            }
        }
    }

    #[test]
    fn the_json_scan_alone_rejects_wrong_kinds_of_values() {
        let good = r#"{"version":"https://jsonfeed.org/version/1.1","title":"t","items":[{"id":"1","content_html":"<p>x</p>","date_published":"2020-01-01T00:00:00Z","date_modified":"2020-01-02T00:00:00Z","tags":["a"],"_feedwerk":{"also_at":[{"title":"y"}]}}]}"#;
        check(
            DocKind::Feed(Format::Json),
            good.as_bytes(),
            Some(1),
            Depth::Scan,
        )
        .unwrap();
        for bad in [
            good.replace(r#""title":"t""#, r#""title":null"#),
            good.replace(
                r#""date_modified":"2020-01-02T00:00:00Z""#,
                r#""date_modified":null"#,
            ),
            good.replace(r#""content_html":"<p>x</p>""#, r#""content_html":["x"]"#),
            good.replace(r#"[{"id""#, r#"["x",{"id""#),
            r#"{"version":"https://jsonfeed.org/version/1.1","title":"t","items":{}}"#.to_owned(),
            format!("[{good}]"),
        ] {
            assert!(
                check(
                    DocKind::Feed(Format::Json),
                    bad.as_bytes(),
                    None,
                    Depth::Scan
                )
                .is_err(),
                "{bad}"
            );
        }
        let e = check(
            DocKind::Feed(Format::Json),
            good.as_bytes(),
            Some(2),
            Depth::Scan,
        )
        .unwrap_err();
        assert_eq!(
            e,
            VerifyError::ItemCount {
                found: 1,
                expected: 2
            }
        );
    }

    #[test]
    fn an_illegal_character_anywhere_in_a_long_document_is_found_first_one_first() {
        // The character search works a block at a time: place the bad characters in
        // later blocks, on a block's edges, and in either order.
        let pad = "x".repeat(200);
        let doc = |body: &str| RSS.replace("a &amp; b", &format!("{pad}{body}"));
        let start = doc("").find(&pad).unwrap() + pad.len();
        for (body, code, at) in [
            ("\u{1}", 0x1, 0),
            ("yyy\u{1f}", 0x1F, 3),
            ("\u{FFFF}z\u{2}", 0xFFFF, 0),
            ("\u{3}z\u{FFFE}", 0x3, 0),
        ] {
            let e = check(
                DocKind::Feed(Format::Rss),
                doc(body).as_bytes(),
                None,
                Depth::Scan,
            )
            .unwrap_err();
            assert_eq!(
                e,
                VerifyError::IllegalChar {
                    code,
                    at: start + at
                },
                "{body:?}"
            );
        }
        for shift in 0..70 {
            let text = format!("{}\u{8}", "y".repeat(shift));
            assert_eq!(
                illegal_char(&text),
                Some((shift, '\u{8}')),
                "control at {shift}"
            );
        }
        assert_eq!(illegal_char(&format!("{pad}\t\r\n")), None);
    }

    #[test]
    fn an_attribute_with_an_unknown_entity_is_rejected_and_a_known_one_passes() {
        let with =
            |v: &str| RSS.replace(r#"isPermaLink="false""#, &format!(r#"isPermaLink="{v}""#));
        let e = check(
            DocKind::Feed(Format::Rss),
            with("a&nbsp;b").as_bytes(),
            None,
            Depth::Scan,
        )
        .unwrap_err();
        assert!(matches!(e, VerifyError::Xml { .. }), "{e}");
        check(
            DocKind::Feed(Format::Rss),
            with("a&amp;b&#65;").as_bytes(),
            Some(1),
            Depth::Scan,
        )
        .unwrap();
    }

    #[test]
    fn bytes_that_are_not_utf8_are_rejected_with_their_position() {
        let mut bytes = RSS.as_bytes().to_vec();
        let at = RSS.find("a &amp; b").unwrap();
        bytes[at] = 0xFF;
        let e = check(DocKind::Feed(Format::Rss), &bytes, None, Depth::Scan).unwrap_err();
        assert_eq!(e, VerifyError::NotUtf8(at));
    }

    #[test]
    fn illegal_characters_are_found_wherever_they_fall_in_a_block() {
        // The control search goes a block of 64 bytes at a time: its edges, the end,
        // and a non-character before a control are where a mistake would hide.
        let filler = "a".repeat(200);
        for at in [0, 1, 62, 63, 64, 65, 127, 128, 199] {
            let mut text = filler.clone();
            text.replace_range(at..at + 1, "\u{1f}");
            assert_eq!(illegal_char(&text), Some((at, '\u{1f}')), "control at {at}");
            let mut text = filler.clone();
            text.replace_range(at..at + 1, "\u{FFFF}");
            assert_eq!(
                illegal_char(&text),
                Some((at, '\u{FFFF}')),
                "U+FFFF at {at}"
            );
        }
        assert_eq!(illegal_char(&filler), None);
        assert_eq!(illegal_char("\t\r\n ok \u{FFFD}"), None);
        let both = format!("{}\u{FFFE}{}\u{8}", "a".repeat(70), "b".repeat(10));
        assert_eq!(illegal_char(&both), Some((70, '\u{FFFE}')));
        let both = format!("{}\u{8}{}\u{FFFE}", "a".repeat(70), "b".repeat(10));
        assert_eq!(illegal_char(&both), Some((70, '\u{8}')));
    }

    #[test]
    fn json_feed_escapes_repeated_fields_and_arrays_read_as_a_value_tree_reads_them() {
        let good = r#"{"version":"https:\/\/jsonfeed.org\/version\/1.1","title":"t \"q\"","x":{"y":[1,null]},"items":[{"id":"1","content_html":"<p>\"x\"</p>","date_modified":"2020-01-01T00:00:00+02:00","extra":[{}]}]}"#;
        check(
            DocKind::Feed(Format::Json),
            good.as_bytes(),
            Some(1),
            Depth::Scan,
        )
        .unwrap();
        for bad in [
            // A date given as null is no RFC 3339 date; neither is a number.
            good.replace(r#""2020-01-01T00:00:00+02:00""#, "null"),
            good.replace(r#""2020-01-01T00:00:00+02:00""#, "2020"),
            good.replace(r#""title":"t \"q\"""#, r#""title":["t"]"#),
            good.replace(r#""id":"1""#, r#""id":null"#),
            good.replace(r#""items":[{"#, r#""items":{"a":{"#)
                .replace("}]}", "}}}"),
            // An array is not a feed, nor an item, even with the fields in order.
            r#"["https://jsonfeed.org/version/1.1","t",[]]"#.to_owned(),
            r#"{"version":"https://jsonfeed.org/version/1.1","title":"t","items":[["1","x"]]}"#
                .to_owned(),
        ] {
            assert!(
                check(
                    DocKind::Feed(Format::Json),
                    bad.as_bytes(),
                    None,
                    Depth::Scan
                )
                .is_err(),
                "{bad}"
            );
        }
        // A field given twice counts with its last value.
        let twice = good.replace(r#""title":"t \"q\"""#, r#""title":1,"title":"t""#);
        check(
            DocKind::Feed(Format::Json),
            twice.as_bytes(),
            Some(1),
            Depth::Scan,
        )
        .unwrap();
        assert_eq!(
            check(
                DocKind::Feed(Format::Json),
                good.as_bytes(),
                Some(2),
                Depth::Scan
            ),
            Err(VerifyError::ItemCount {
                found: 1,
                expected: 2
            })
        );
    }
}

#[cfg(test)]
mod spliced_tests {
    use std::sync::Arc;

    use super::*;
    use crate::render::splice::{check_spliced, Fragment, Splice};

    const HEAD: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rss version=\"2.0\"><channel><title>t</title><link>https://x.example/</link><description>d</description>";
    const TAIL: &str = "</channel></rss>\n";

    fn spliced(items: &[&str], head: &str) -> (Vec<u8>, Splice) {
        let parts: Vec<Arc<Fragment>> = items
            .iter()
            .map(|i| Arc::new(Fragment::new(i.as_bytes().to_vec())))
            .collect();
        let body = format!("{head}{}{TAIL}", items.concat()).into_bytes();
        let splice = Splice {
            format: Format::Rss,
            start: head.len(),
            end: head.len() + items.iter().map(|i| i.len()).sum::<usize>(),
            parts,
        };
        (body, splice)
    }

    fn both(items: &[&str], head: &str) -> (Result<(), VerifyError>, Result<(), VerifyError>) {
        let (body, splice) = spliced(items, head);
        let kind = DocKind::Feed(Format::Rss);
        let n = Some(items.len());
        (
            check(kind, &body, n, Depth::Scan),
            check_spliced(kind, &body, Some(&splice), n, Depth::Scan),
        )
    }

    /// Hostile items (what a renderer bug or an unescaped partner string would put in a
    /// fragment) fail a spliced document exactly when they fail the whole document.
    #[test]
    fn a_spliced_document_fails_when_the_whole_would() {
        let good = "<item><title>a &amp; b</title></item>";
        for bad in [
            "<item><title>bell \u{7}</title></item>",
            "<item><title>nonchar \u{FFFF}</title></item>",
            "<item><title>open</item>",
            "<item><title>x</title></item></channel><channel><item>",
            "<item>&nbsp;</item>",
            "<item><![CDATA[x]]></item><item/>",
            "</channel><item/>",
            "<entry/>",
            "text only",
        ] {
            let (whole, parts) = both(&[good, bad, good], HEAD);
            assert!(parts.is_err(), "{bad:?} passed spliced");
            assert!(
                whole.is_err() || bad == "<entry/>" || bad == "text only",
                "{bad:?}: whole {whole:?}"
            );
        }
        let (whole, parts) = both(&[good, good], HEAD);
        assert_eq!(whole, Ok(()));
        assert_eq!(parts, Ok(()));
        // An envelope cut at the wrong place: inside the description's text.
        let cut = &HEAD[..HEAD.len() - "d</description>".len()];
        let (_, parts) = both(&[good], cut);
        assert!(parts.is_err());
    }

    /// A fragment's error names its place in the document, as the whole check does.
    #[test]
    fn a_fragments_error_is_placed_in_the_document() {
        let good = "<item><title>a</title></item>";
        let (whole, parts) = both(&[good, "<item><title>\u{1}</title></item>"], HEAD);
        assert_eq!(whole, parts);
        assert!(matches!(
            parts,
            Err(VerifyError::IllegalChar { code: 1, .. })
        ));
    }

    /// The bytes between the splice's ends must be its fragments.
    #[test]
    fn a_splice_that_does_not_match_its_bytes_fails() {
        let (mut body, splice) = spliced(&["<item/>", "<item/>"], HEAD);
        let at = splice.start + 1;
        body[at] = b'x';
        let r = check_spliced(
            DocKind::Feed(Format::Rss),
            &body,
            Some(&splice),
            Some(2),
            Depth::Scan,
        );
        assert!(r.is_err());
    }
}
