//! Dublin Core (`dc:`, elements 1.1 and 1.0) and DCMI terms (`dcterms:`) wherever a
//! feed carries them: on RSS 1.0 / 0.90 items and channels (our [`super::rdf`]
//! adapter), on Atom 0.3 (our [`super::atom03`]), and beside feed-rs on RSS 2.0 and
//! Atom 1.0, which it reads only partly (`dc:creator`, `dc:date` on RSS 2.0 items).
//!
//! The mapping, per element:
//!
//! | element | item | feed |
//! |---|---|---|
//! | `dc:title`, `dcterms:title` | title when the format's own is missing | title, likewise |
//! | `dc:creator`, `dcterms:creator` | authors | authors (items without their own inherit them) |
//! | `dc:subject`, `dcterms:subject` | categories → tags | categories (not given to items) |
//! | `dcterms:issued` | published | updated (when nothing better) |
//! | `dcterms:created` | published when no `issued` | updated (when nothing better) |
//! | `dc:date` | published when neither | updated |
//! | `dcterms:modified` | updated | updated (first choice) |
//! | `dc:description`, `dcterms:abstract` | summary when the format's own is missing | — |
//! | `dc:language` | language | language |
//!
//! `dc:date` is "a date associated with an event in the life cycle" (DCMI); in RSS 1.0
//! practice it is the publication date, so that is what it means on an item. This
//! module only collects text; dates are read with the source's rules by the adapter.

use super::xmltree::Element;

pub const DC: &str = "http://purl.org/dc/elements/1.1/";
/// Dublin Core 1.0, which a few old generators still declare.
pub const DC_10: &str = "http://purl.org/dc/elements/1.0/";
pub const DCTERMS: &str = "http://purl.org/dc/terms/";

/// The Dublin Core and DCMI terms elements found directly inside one item or channel,
/// as text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DcFields {
    pub title: Option<String>,
    pub creators: Vec<String>,
    pub subjects: Vec<String>,
    pub date: Option<String>,
    pub issued: Option<String>,
    pub created: Option<String>,
    pub modified: Option<String>,
    pub description: Option<String>,
    pub language: Option<String>,
}

impl DcFields {
    /// Reads the direct children of `parent`.
    pub fn of(parent: &Element) -> DcFields {
        let mut f = DcFields::default();
        for child in parent.elements() {
            f.add(child);
        }
        f
    }

    /// Takes one element if it is a Dublin Core one; the first of a single-valued
    /// element wins, repeatable ones (creator, subject) collect.
    pub fn add(&mut self, e: &Element) {
        let dc = e.ns == DC || e.ns == DC_10;
        let terms = e.ns == DCTERMS;
        if !dc && !terms {
            return;
        }
        let Some(text) = e.trimmed_text() else {
            return;
        };
        let first = |slot: &mut Option<String>| {
            if slot.is_none() {
                *slot = Some(text.clone());
            }
        };
        match (terms, e.name.as_str()) {
            (_, "title") => first(&mut self.title),
            (_, "creator") => self.creators.push(text.clone()),
            (_, "subject") => self.subjects.push(text.clone()),
            (_, "language") => first(&mut self.language),
            (false, "date") => first(&mut self.date),
            (false, "description") | (true, "abstract") => first(&mut self.description),
            (true, "issued") => first(&mut self.issued),
            (true, "created") => first(&mut self.created),
            (true, "modified") => first(&mut self.modified),
            _ => {}
        }
    }

    /// Whether anything was found.
    pub fn is_empty(&self) -> bool {
        *self == DcFields::default()
    }

    /// An item's publication date, as text: `dcterms:issued`, `dcterms:created`,
    /// `dc:date`.
    pub fn item_published(&self) -> Option<&str> {
        self.issued
            .as_deref()
            .or(self.created.as_deref())
            .or(self.date.as_deref())
    }

    /// A channel's "last changed": `dcterms:modified`, `dc:date`, `dcterms:issued`,
    /// `dcterms:created`.
    pub fn feed_updated(&self) -> Option<&str> {
        self.modified
            .as_deref()
            .or(self.date.as_deref())
            .or(self.issued.as_deref())
            .or(self.created.as_deref())
    }
}

/// Whether a document feed-rs already read may hold Dublin Core it did not read: the
/// cheap test before the text is parsed a second time. feed-rs reads `dc:creator` and
/// `dc:date` on RSS 2.0 items, which is all WordPress (most RSS 2.0 in the wild, and
/// always declaring `dc:`) uses; so for RSS a document needs DCMI terms, another DC
/// element, or DC before its first item (the channel's). Atom 1.0 gets no DC from
/// feed-rs, so any DC element counts. Prefixes are read from the declarations.
pub fn worth_reading(text: &str, rss: bool) -> bool {
    use memchr::memmem;
    // memchr's SIMD search: this runs over every RSS and Atom document, whole.
    let bytes = text.as_bytes();
    if memmem::find(bytes, b"purl.org/dc/").is_none() {
        return false;
    }
    let prefixes = |uri: &str| -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(i) = memmem::find(rest.as_bytes(), b"xmlns:") {
            rest = &rest[i + 6..];
            let Some((name, after)) = rest.split_once('=') else {
                break;
            };
            let value = after.trim_start().trim_start_matches(['"', '\'']);
            if value.starts_with(uri) {
                out.push(name.trim().to_owned());
            }
        }
        out
    };
    if !prefixes(DCTERMS).is_empty() {
        return true;
    }
    let first_item =
        memmem::find(bytes, if rss { &b"<item"[..] } else { b"<entry" }).unwrap_or(text.len());
    let mut dc = prefixes(DC);
    dc.extend(prefixes(DC_10));
    dc.iter().any(|p| {
        let open = format!("<{p}:");
        if !rss {
            return memmem::find(bytes, open.as_bytes()).is_some();
        }
        memmem::find(&bytes[..first_item], open.as_bytes()).is_some()
            || memmem::find_iter(bytes, open.as_bytes()).any(|i| {
                let name = &text[i + open.len()..];
                !(name.starts_with("creator") || name.starts_with("date"))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_documents_with_dublin_core_feed_rs_skips_are_read_twice() {
        let wp = format!(
            r#"<rss version="2.0" xmlns:dc="{DC}"><channel><title>t</title><item><dc:creator>A</dc:creator><dc:date>2017-01-01</dc:date></item></channel></rss>"#
        );
        assert!(!worth_reading(&wp, true));
        assert!(worth_reading(
            &wp.replace(
                "<dc:date>2017-01-01</dc:date>",
                "<dc:subject>S</dc:subject>"
            ),
            true
        ));
        assert!(worth_reading(
            &wp.replace("<title>t</title>", "<dc:date>2017-01-01</dc:date>"),
            true
        ));
        assert!(worth_reading(
            &wp.replace(r#"xmlns:dc="#, &format!(r#"xmlns:t="{DCTERMS}" xmlns:dc="#)),
            true
        ));
        assert!(worth_reading(
            &wp.replace("xmlns:dc=", "xmlns:d=").replace("dc:", "d:"),
            false
        ));
        assert!(!worth_reading("<rss><channel/></rss>", true));
    }

    #[test]
    fn dc_and_dcterms_elements_are_collected_with_first_single_values() {
        let root = super::super::xmltree::parse(&format!(
            r#"<item xmlns:dc="{DC}" xmlns:dcterms="{DCTERMS}"><dc:title> T </dc:title><dc:title>U</dc:title>
<dc:creator>A</dc:creator><dc:creator>B</dc:creator><dc:subject>S</dc:subject><dcterms:subject>R</dcterms:subject>
<dcterms:created>2004-01-01</dcterms:created><dc:date>2005-01-01</dc:date><dcterms:modified>2006-01-01</dcterms:modified><dc:description></dc:description></item>"#
        ))
        .unwrap();
        let f = DcFields::of(&root);
        assert_eq!(f.title.as_deref(), Some("T"));
        assert_eq!(f.creators, ["A", "B"]);
        assert_eq!(f.subjects, ["S", "R"]);
        assert_eq!(f.item_published(), Some("2004-01-01"));
        assert_eq!(f.feed_updated(), Some("2006-01-01"));
        assert_eq!(f.description, None, "empty elements are not values");
    }
}
