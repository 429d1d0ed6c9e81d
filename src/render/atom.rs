//! Atom 1.0 (RFC 4287) with `atom_syndication`. Every date is set explicitly (the crate
//! writes 1970-01-01 otherwise); partner items carry `atom:source`; other copies of a
//! story are `rel="related"` links; archive pages carry `fh:archive` (RFC 5005).

use std::collections::BTreeMap;

use atom_syndication as at;
use chrono::{DateTime, FixedOffset, Utc};

use super::{FeedDoc, FH_NS};
use crate::model::{Format, Item};
use crate::store::StoredItem;

fn fixed(d: DateTime<Utc>) -> DateTime<FixedOffset> {
    d.fixed_offset()
}

fn link(href: &str, rel: &str, mime: Option<&str>, title: Option<&str>) -> at::Link {
    at::Link {
        href: href.to_owned(),
        rel: rel.to_owned(),
        mime_type: mime.map(str::to_owned),
        title: title.map(str::to_owned),
        ..at::Link::default()
    }
}

fn person(name: &str) -> at::Person {
    at::Person {
        name: name.to_owned(),
        ..at::Person::default()
    }
}

fn site_author(doc: &FeedDoc) -> at::Person {
    person(doc.site.author.as_deref().unwrap_or(&doc.site.title))
}

/// The document without its entries, and where they go: before `</feed>` (the crate
/// writes the entries after every feed element, and we give it no extension element
/// that would follow them).
pub fn envelope(doc: &FeedDoc) -> (Vec<u8>, usize) {
    let mut namespaces = BTreeMap::new();
    if doc.is_archive() {
        namespaces.insert("fh".to_owned(), FH_NS.to_owned());
    }
    let feed = at::Feed {
        title: at::Text::plain(doc.channel.title.clone()),
        // Archive pages share the subscription document's ID: one logical feed.
        id: doc.subscription_url(Format::Atom).to_string(),
        updated: fixed(doc.updated),
        authors: vec![site_author(doc)],
        links: feed_links(doc),
        generator: Some(at::Generator {
            value: "feedwerk".into(),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            ..at::Generator::default()
        }),
        subtitle: (!doc.site.description.is_empty())
            .then(|| at::Text::plain(doc.site.description.clone())),
        lang: Some(doc.language()),
        namespaces,
        ..at::Feed::default()
    };
    let mut out = Vec::with_capacity(4096);
    feed.write_to(&mut out)
        .expect("writing to a Vec cannot fail");
    if doc.is_archive() {
        // The crate writes extension elements after the entries, where RFC 4287's
        // schema allows none; `fh:archive` goes before the first entry instead (the
        // entries go after it). Markup `</feed>` cannot occur earlier: text and
        // attribute values are escaped.
        let at = rfind(&out, b"</feed>").expect("a feed element");
        out.splice(at..at, b"<fh:archive/>".iter().copied());
    }
    let out = super::with_prolog(out, &doc.stylesheet_href(Format::Atom));
    let at = rfind(&out, b"</feed>").expect("a feed element");
    (out, at)
}

/// The start tag the crate gives an entry written alone: inside a feed it inherits the
/// namespace and is written as `<entry>`.
const STANDALONE_ENTRY: &[u8] = b"<entry xmlns=\"http://www.w3.org/2005/Atom\">";

/// One item's `<entry>` element, byte for byte as the crate writes it inside a feed
/// (`Entry::write_with_config` writes the same element, declaring the namespace).
pub fn fragment(doc: &FeedDoc, s: &StoredItem) -> Vec<u8> {
    let config = at::WriteConfig {
        write_document_declaration: false,
        indent_size: None,
    };
    let mut out = entry(doc, s, &site_author(doc))
        .write_with_config(Vec::with_capacity(4096), config)
        .expect("writing to a Vec cannot fail");
    assert!(
        out.starts_with(STANDALONE_ENTRY),
        "atom_syndication writes an entry's start tag as we expect"
    );
    out.splice(..STANDALONE_ENTRY.len(), b"<entry>".iter().copied());
    out
}

/// The feed's own links: `self`, the site, the WebSub hub (subscription documents only)
/// and RFC 5005 paging.
fn feed_links(doc: &FeedDoc) -> Vec<at::Link> {
    let self_url = doc.self_url(Format::Atom);
    let mut links = vec![
        link(
            self_url.as_str(),
            "self",
            Some("application/atom+xml"),
            None,
        ),
        link(
            doc.site.base_url.as_str(),
            "alternate",
            Some("text/html"),
            None,
        ),
    ];
    if let Some(hub) = doc.websub_hub.filter(|_| !doc.is_archive()) {
        links.push(link(hub.as_str(), "hub", None, None));
    }
    for (rel, url) in doc.paging_links(Format::Atom) {
        links.push(link(url.as_str(), rel, Some("application/atom+xml"), None));
    }
    links
}

fn entry(doc: &FeedDoc, s: &StoredItem, site_author: &at::Person) -> at::Entry {
    let it = &s.item;
    let mut links = Vec::new();
    if let Some(u) = &it.url {
        links.push(link(u.as_str(), "alternate", Some("text/html"), None));
    }
    for a in &s.also_at {
        if let Some(u) = &a.url {
            links.push(link(
                u.as_str(),
                "related",
                Some("text/html"),
                Some(&format!("{}: {}", a.source_title, a.title)),
            ));
        }
    }
    at::Entry {
        title: at::Text::plain(it.title.clone()),
        id: s.published_id.clone(),
        updated: fixed(it.updated.unwrap_or(it.published).max(it.published)),
        published: Some(fixed(it.published)),
        authors: entry_authors(doc, it, site_author),
        links,
        categories: it
            .tags
            .iter()
            .map(|t| at::Category {
                term: t.clone(),
                ..at::Category::default()
            })
            .collect(),
        summary: Some(at::Text::plain(it.summary.clone())).filter(|t| !t.value.is_empty()),
        content: entry_content(it),
        source: entry_source(doc, it),
        ..at::Entry::default()
    }
}

/// The item's own authors; else the partner for a partner item, the site for ours.
fn entry_authors(doc: &FeedDoc, it: &Item, site_author: &at::Person) -> Vec<at::Person> {
    if !it.authors.is_empty() {
        it.authors
            .iter()
            .map(|a| {
                let (name, email) = super::split_author(a);
                at::Person {
                    name,
                    email,
                    ..at::Person::default()
                }
            })
            .collect()
    } else if doc.is_partner(&it.source) {
        vec![person(doc.source_title(&it.source))]
    } else {
        vec![site_author.clone()]
    }
}

/// `atom:source` for a partner item: the partner feed's title, ID and links.
fn entry_source(doc: &FeedDoc, it: &Item) -> Option<at::Source> {
    let src = doc
        .source(&it.source)
        .filter(|_| doc.is_partner(&it.source))?;
    let mut links = Vec::new();
    if let Some(h) = &src.homepage {
        links.push(link(h.as_str(), "alternate", Some("text/html"), None));
    }
    if let Some(u) = src.kind.url() {
        links.push(link(u.as_str(), "self", None, None));
    }
    Some(at::Source {
        title: at::Text::plain(src.title.clone()),
        id: src
            .kind
            .url()
            .map(|u| u.to_string())
            .unwrap_or_else(|| format!("{}#source-{}", doc.site.base_url, src.id)),
        updated: fixed(it.updated.unwrap_or(it.published)),
        links,
        ..at::Source::default()
    })
}

/// RFC 4287 4.1.2: an entry needs an alternate link or content; an item without a link
/// and without HTML content carries its summary as text.
fn entry_content(it: &Item) -> Option<at::Content> {
    match (&it.content_html, &it.url) {
        (Some(h), _) => Some(at::Content {
            value: Some(h.clone()),
            content_type: Some("html".into()),
            lang: it.language.clone(),
            ..at::Content::default()
        }),
        (None, None) => Some(at::Content {
            value: Some(it.summary.clone()),
            content_type: Some("text".into()),
            lang: it.language.clone(),
            ..at::Content::default()
        }),
        (None, Some(_)) => None,
    }
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::rfind(hay, needle)
}
