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
    let text = std::str::from_utf8(body).map_err(|e| VerifyError::NotUtf8(e.valid_up_to()))?;
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
            let scan = scan(text, Some(entry))?;
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
    scan(text, None).map(|s| s.root)
}

/// Which elements are a feed's entries: `name` at `depth` below the root (RSS 2.0
/// `rss/channel/item`, Atom `feed/entry`).
#[derive(Debug, Clone, Copy)]
struct Entry {
    name: &'static str,
    depth: usize,
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
struct Scanned {
    /// The root element's qualified name.
    root: String,
    /// How many `entry` elements (0 when none was asked for).
    entries: usize,
}

/// The first character XML 1.0 does not allow, and where. Works on bytes: in UTF-8 the
/// only illegal characters are the C0 controls other than tab, LF and CR (one byte
/// each) and U+FFFE/U+FFFF (`EF BF BE`/`EF BF BF`); surrogates cannot occur in a `str`.
fn illegal_char(text: &str) -> Option<(usize, char)> {
    let b = text.as_bytes();
    let at = b.iter().enumerate().position(|(i, &c)| {
        (c < 0x20 && !matches!(c, b'\t' | b'\n' | b'\r'))
            || (c == 0xEF
                && b.get(i + 1) == Some(&0xBF)
                && matches!(b.get(i + 2), Some(0xBE | 0xBF)))
    })?;
    let c = text[at..].chars().next()?;
    Some((at, c))
}

/// Checks well-formedness and counts `entry` elements in one pass.
fn scan(text: &str, entry: Option<Entry>) -> Result<Scanned, VerifyError> {
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
    let err = |reader: &Reader<&[u8]>, message: String| VerifyError::Xml {
        at: reader.buffer_position(),
        message,
    };
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| err(&reader, e.to_string()))?;
        match ev {
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
                    a.normalized_value(XmlVersion::Explicit1_0)
                        .map_err(|e| err(&reader, e.to_string()))?;
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
    Ok(Scanned { root, entries })
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
fn json_feed(text: &str, items: Option<usize>) -> Result<(), VerifyError> {
    use serde_json::Value;
    let bad = |m: &str| VerifyError::JsonFeed(m.to_owned());
    let v: Value = serde_json::from_str(text).map_err(|e| VerifyError::JsonFeed(e.to_string()))?;
    if v["version"] != "https://jsonfeed.org/version/1.1" {
        return Err(bad("`version` is not https://jsonfeed.org/version/1.1"));
    }
    if !v["title"].is_string() {
        return Err(bad("`title` missing"));
    }
    let list = v["items"]
        .as_array()
        .ok_or_else(|| bad("`items` missing"))?;
    for (i, it) in list.iter().enumerate() {
        let at = |m: &str| VerifyError::JsonFeed(format!("items[{i}]: {m}"));
        if !it["id"].is_string() {
            return Err(at("`id` must be a string"));
        }
        if !it["content_html"].is_string() && !it["content_text"].is_string() {
            return Err(at("needs `content_html` or `content_text`"));
        }
        for k in ["date_published", "date_modified"] {
            if let Some(d) = it.get(k) {
                let ok = d
                    .as_str()
                    .is_some_and(|d| chrono::DateTime::parse_from_rfc3339(d).is_ok());
                if !ok {
                    return Err(at(&format!("`{k}` is not RFC 3339")));
                }
            }
        }
    }
    if let Some(n) = items.filter(|n| *n != list.len()) {
        return Err(VerifyError::ItemCount {
            found: list.len(),
            expected: n,
        });
    }
    Ok(())
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
            assert!(
                check(
                    DocKind::Feed(Format::Json),
                    bad.as_bytes(),
                    None,
                    Depth::Reparse
                )
                .is_err(),
                "{bad}"
            );
        }
    }
}
