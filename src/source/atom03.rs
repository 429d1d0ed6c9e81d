//! Our adapter for Atom 0.3 (`<feed version="0.3" xmlns="http://purl.org/atom/ns#">`,
//! draft-nottingham-atom-format-02), which old CMS and blog installations still serve
//! and feed-rs reads as an Atom 1.0 feed with no known elements: no items at all.
//!
//! Field mapping (Miniflux's `atom_03.go` reads it the same way):
//!
//! | ours | entry | feed |
//! |---|---|---|
//! | `guid` / `id` | `<id>` | `<id>` |
//! | `link` | `<link rel="alternate">` (no `rel` counts as alternate), else the first | likewise |
//! | `title` | `<title>` content construct, else `dc:title` | likewise |
//! | `summary` | `<summary>` | — |
//! | `content` | `<content>`: the HTML one of several, the HTML part of `multipart/alternative` | — |
//! | `published` | `<issued>`, else `<created>` (zone-less `issued` is the source's time zone) | — |
//! | `updated` | `<modified>` | `<modified>` |
//! | `authors` | `<author><name>` (with `<email>` as "email (name)"), else the feed's | `<author>` |
//! | categories, more dates | Dublin Core, see [`super::dc`] | likewise |
//!
//! A content construct has a MIME `type` (default `text/plain`) and a `mode`: `xml`
//! (the default: inline markup, or plain text), `escaped` (markup escaped as text), or
//! `base64` (the bytes base64-encoded; read as UTF-8). Types that are not text or
//! markup (`image/png`) are not content we can publish and are skipped.

use base64::Engine as _;
use chrono_tz::Tz;

use super::dc::DcFields;
use super::rdf::Read;
use super::xmltree::Element;
use crate::model::{Entry, Text};

pub const ATOM03: &str = "http://purl.org/atom/ns#";

/// Whether a `<feed>` root is Atom 0.3: its namespace, or a `version` attribute of
/// 0.3 and below on an un-namespaced root (Atom 1.0 has no `version`).
pub fn is_atom03(ns: &str, version: Option<&str>) -> bool {
    ns == ATOM03 || (ns.is_empty() && matches!(version.map(str::trim), Some("0.3" | "0.2" | "0.1")))
}

/// Reads an Atom 0.3 `<feed>` root.
pub fn read(root: &Element, tz: Tz) -> Read {
    let ns = root.ns.as_str();
    let date = |e: &Element, name: &str| {
        e.child(ns, name)
            .and_then(Element::trimmed_text)
            .and_then(|s| crate::dates::parse(&s, tz))
    };
    let feed_dc = DcFields::of(root);
    let feed_authors: Vec<String> = authors(root, ns)
        .into_iter()
        .chain(feed_dc.creators.iter().cloned())
        .collect();
    let entries = root
        .elements()
        .filter(|e| e.is(ns, "entry"))
        .map(|e| {
            let dc = DcFields::of(e);
            let dcdate = |s: Option<&str>| s.and_then(|s| crate::dates::parse(s, tz));
            let mut entry_authors: Vec<String> = authors(e, ns);
            entry_authors.extend(dc.creators.iter().cloned());
            if entry_authors.is_empty() {
                entry_authors = feed_authors.clone();
            }
            Entry {
                guid: e.child(ns, "id").and_then(Element::trimmed_text),
                link: alternate(e, ns),
                title: e
                    .child(ns, "title")
                    .and_then(construct)
                    .or(dc.title.clone().map(Text::plain)),
                summary: e
                    .child(ns, "summary")
                    .and_then(construct)
                    .or(dc.description.clone().map(Text::html)),
                content: content(e, ns),
                published: date(e, "issued")
                    .or_else(|| date(e, "created"))
                    .or_else(|| dcdate(dc.item_published())),
                updated: date(e, "modified").or_else(|| dcdate(dc.modified.as_deref())),
                authors: entry_authors,
                tags: dc.subjects.clone(),
                language: dc.language.clone(),
                ..Entry::default()
            }
        })
        .collect();
    Read {
        format: "atom03",
        title: root
            .child(ns, "title")
            .and_then(construct)
            .or(feed_dc.title.clone().map(Text::plain)),
        link: alternate(root, ns),
        id: root.child(ns, "id").and_then(Element::trimmed_text),
        updated: date(root, "modified").or_else(|| {
            feed_dc
                .feed_updated()
                .and_then(|s| crate::dates::parse(s, tz))
        }),
        language: feed_dc.language.clone(),
        authors: feed_authors,
        categories: feed_dc.subjects.clone(),
        entries,
    }
}

fn authors(parent: &Element, ns: &str) -> Vec<String> {
    parent
        .elements()
        .filter(|e| e.is(ns, "author"))
        .filter_map(|a| {
            let name = a.child(ns, "name").and_then(Element::trimmed_text);
            let email = a.child(ns, "email").and_then(Element::trimmed_text);
            match (name, email) {
                (Some(n), Some(e)) if n != e => Some(format!("{e} ({n})")),
                (n, e) => n.or(e),
            }
        })
        .collect()
}

/// The alternate link's `href`: `rel="alternate"` or no `rel`, preferring an HTML
/// `type`, else the first link.
fn alternate(parent: &Element, ns: &str) -> Option<String> {
    let links: Vec<&Element> = parent
        .elements()
        .filter(|e| e.is(ns, "link") && e.attr("href").is_some_and(|h| !h.trim().is_empty()))
        .collect();
    let is_alt = |l: &&&Element| l.attr("rel").is_none_or(|r| r.trim() == "alternate");
    links
        .iter()
        .filter(is_alt)
        .find(|l| l.attr("type").is_some_and(|t| t.contains("html")))
        .or_else(|| links.iter().find(is_alt))
        .or_else(|| links.first())
        .and_then(|l| l.attr("href"))
        .map(|h| h.trim().to_owned())
}

/// The entry's content: of several `<content>`s (or the parts of a
/// `multipart/alternative` one) the first HTML one, else the first readable one.
fn content(entry: &Element, ns: &str) -> Option<Text> {
    let mut parts: Vec<&Element> = Vec::new();
    for c in entry.elements().filter(|e| e.is(ns, "content")) {
        if c.attr("type")
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("multipart/alternative"))
        {
            parts.extend(c.elements().filter(|e| e.is(ns, "content")));
        } else {
            parts.push(c);
        }
    }
    let read: Vec<Text> = parts.into_iter().filter_map(construct).collect();
    read.iter()
        .find(|t| t.kind == crate::model::TextKind::Html)
        .or_else(|| read.first())
        .cloned()
}

/// One Atom 0.3 content construct as text, per its `mode` and `type`; `None` when empty
/// or of a type that is not text.
pub fn construct(e: &Element) -> Option<Text> {
    let ty = e
        .attr("type")
        .map(|t| t.trim().to_ascii_lowercase())
        .unwrap_or_else(|| "text/plain".into());
    let markup = ty.contains("html") || ty.ends_with("/xml") || ty.ends_with("+xml");
    if !markup && !ty.starts_with("text/") {
        return None;
    }
    let mode = e.attr("mode").map(|m| m.trim().to_ascii_lowercase());
    let (body, html) = match mode.as_deref() {
        Some("escaped") => (e.text(), markup),
        Some("base64") => {
            let compact: String = e.text().chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT
                .decode(compact.as_bytes())
                .ok()?;
            (String::from_utf8_lossy(&bytes).into_owned(), markup)
        }
        // mode="xml" (the default): inline markup when there is any.
        _ if e.elements().next().is_some() => (e.inner_xml(), true),
        _ => (e.text(), false),
    };
    if body.trim().is_empty() {
        return None;
    }
    Some(if html {
        Text::html(body)
    } else {
        Text::plain(body)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(xml: &str) -> Element {
        super::super::xmltree::parse(xml).unwrap()
    }

    #[test]
    fn content_modes_escaped_base64_and_xml_read_as_html_or_text() {
        let escaped = construct(&el(
            r#"<content type="text/html" mode="escaped">&lt;p&gt;Hallo&lt;/p&gt;</content>"#,
        ))
        .unwrap();
        assert_eq!(escaped, Text::html("<p>Hallo</p>"));
        // "<p>Grüße</p>" in base64, wrapped as generators do.
        let b64 = construct(&el(
            "<content type=\"text/html\" mode=\"base64\">PHA+R3LDvMOf\nZTwvcD4=</content>",
        ))
        .unwrap();
        assert_eq!(b64, Text::html("<p>Grüße</p>"));
        let xml = construct(&el(
            r#"<content type="application/xhtml+xml" mode="xml"><div xmlns="http://www.w3.org/1999/xhtml"><p>Eins &amp; zwei</p></div></content>"#,
        ))
        .unwrap();
        assert_eq!(xml, Text::html("<div><p>Eins &amp; zwei</p></div>"));
        assert_eq!(
            construct(&el("<title>Nur Text</title>")),
            Some(Text::plain("Nur Text"))
        );
        assert_eq!(
            construct(&el(
                r#"<content type="image/png" mode="base64">iVBORw0KGgo=</content>"#
            )),
            None
        );
    }

    #[test]
    fn version_attribute_or_namespace_make_atom03() {
        assert!(is_atom03(ATOM03, Some("0.3")));
        assert!(is_atom03("", Some("0.3")));
        assert!(!is_atom03("http://www.w3.org/2005/Atom", None));
        assert!(!is_atom03("", None));
    }
}
