//! Our adapter for the RDF family: RSS 1.0 (`http://purl.org/rss/1.0/`) and its
//! ancestor RSS 0.90 (`http://my.netscape.com/rdf/simple/0.9/`), both `<rdf:RDF>`
//! documents with `<item>`s beside the `<channel>`, not inside it.
//!
//! feed-rs reads RSS 1.0 but drops every item without a `<link>` (although its
//! `rdf:about` names it), ignores `rdf:about` as an identifier and most of Dublin Core,
//! and does not know RSS 0.90 at all; the format is small enough to read here.
//!
//! Field mapping (RSS 1.0 spec, web.resource.org/rss/1.0/spec; RSS 0.90 has the same
//! elements minus `rdf:about` in practice):
//!
//! | ours | item | channel |
//! |---|---|---|
//! | `guid` / `id` | `rdf:about` | `rdf:about` |
//! | `link` | `<link>`, else `rdf:about` | `<link>` |
//! | `title` | `<title>`, else `dc:title` | likewise |
//! | `summary` | `<description>` (HTML in practice), else `dc:description` | — |
//! | `content` | `content:encoded` | — |
//! | dates, authors, categories, language | Dublin Core, see [`super::dc`] | likewise |
//!
//! `xml:base` and `xml:lang` scopes are applied by the caller, as for every format.

use chrono_tz::Tz;

use super::dc::DcFields;
use super::xmltree::Element;
use crate::model::{Entry, Text};

pub const RDF: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#";
pub const RSS10: &str = "http://purl.org/rss/1.0/";
pub const RSS090: &str = "http://my.netscape.com/rdf/simple/0.9/";
const CONTENT: &str = "http://purl.org/rss/1.0/modules/content/";

/// What the adapter read, before scopes and feed-level normalisation.
#[derive(Debug, Default)]
pub struct Read {
    pub format: &'static str,
    pub title: Option<Text>,
    pub link: Option<String>,
    pub id: Option<String>,
    pub updated: Option<chrono::DateTime<chrono::Utc>>,
    pub language: Option<String>,
    pub authors: Vec<String>,
    pub categories: Vec<String>,
    pub entries: Vec<Entry>,
}

/// Reads an `<rdf:RDF>` root. `None` when it holds neither an RSS 1.0 nor an RSS 0.90
/// channel or item (some other RDF document).
pub fn read(root: &Element, tz: Tz) -> Option<Read> {
    let ns = [RSS10, RSS090]
        .into_iter()
        .find(|ns| root.elements().any(|e| e.ns == *ns))?;
    let channel = root.child(ns, "channel");
    // Items belong beside the channel; a few generators nest them inside it.
    let mut items: Vec<&Element> = root.elements().filter(|e| e.is(ns, "item")).collect();
    if items.is_empty() {
        if let Some(c) = channel {
            items = c.elements().filter(|e| e.is(ns, "item")).collect();
        }
    }
    let text =
        |parent: &Element, name: &str| parent.child(ns, name).and_then(Element::trimmed_text);
    let date = |s: Option<&str>| s.and_then(|s| crate::dates::parse(s, tz));
    let mut read = Read {
        format: if ns == RSS10 { "rss1" } else { "rss090" },
        ..Read::default()
    };
    if let Some(c) = channel {
        let dc = DcFields::of(c);
        read.title = text(c, "title").or(dc.title.clone()).map(Text::plain);
        read.link = text(c, "link");
        read.id = c
            .attr_ns(RDF, "about")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Into::into);
        read.updated = date(dc.feed_updated());
        read.language = dc.language.clone();
        read.authors = dc.creators.clone();
        read.categories = dc.subjects.clone();
    }
    read.entries = items
        .into_iter()
        .map(|item| {
            let dc = DcFields::of(item);
            let about = item
                .attr_ns(RDF, "about")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            Entry {
                guid: about.clone(),
                link: text(item, "link").or(about),
                title: text(item, "title").or(dc.title.clone()).map(Text::plain),
                summary: item
                    .child(ns, "description")
                    .map(Element::text)
                    .filter(|s| !s.trim().is_empty())
                    .or(dc.description.clone())
                    .map(Text::html),
                content: item
                    .child(CONTENT, "encoded")
                    .map(Element::text)
                    .filter(|s| !s.trim().is_empty())
                    .map(Text::html),
                published: date(dc.item_published()),
                updated: date(dc.modified.as_deref()),
                authors: dc.creators.clone(),
                tags: dc.subjects.clone(),
                language: dc.language.clone(),
                ..Entry::default()
            }
        })
        .collect();
    Some(read)
}
