//! RSS 2.0 with the `rss` crate: `atom:link rel="self"` (and `hub`, RFC 5005 paging),
//! `content:encoded`, `dc:creator`, RFC 822 dates (the crate writes whatever string it
//! is given, so we format them), `guid isPermaLink` only when the ID is the item's link,
//! and `<author>` only when we know an e-mail address (RSS 2.0 requires one there).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rss::extension::atom::{AtomExtension, Link};
use rss::extension::dublincore::DublinCoreExtension;
use rss::extension::{Extension, ExtensionMap};

use super::{FeedDoc, FH_NS};
use crate::model::{Format, Item, SourceKind};
use crate::store::StoredItem;

/// RFC 822 date as RSS 2.0 wants it, in English, with a two-digit day and `+0000`.
pub fn rfc822(d: DateTime<Utc>) -> String {
    d.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

/// `"jane@example.org (Jane Doe)"` for an author string that carries an e-mail address;
/// `None` for a plain name (names go to `dc:creator`).
pub fn author_with_email(author: &str) -> Option<String> {
    let email = author
        .split(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '(' | ')' | ','))
        .map(|w| w.trim_start_matches("mailto:"))
        .find(|w| {
            w.split_once('@').is_some_and(|(l, d)| {
                !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
            })
        })?;
    let name: String = author
        .replace(email, "")
        .replace("mailto:", "")
        .chars()
        .filter(|c| !matches!(c, '<' | '>' | '(' | ')'))
        .collect();
    let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
    Some(if name.is_empty() {
        email.to_owned()
    } else {
        format!("{email} ({name})")
    })
}

/// The document without its items, and where they go: before `</channel>` (the crate
/// writes the items last, after every channel element and extension).
pub fn envelope(doc: &FeedDoc) -> (Vec<u8>, usize) {
    let (namespaces, extensions) = namespaces_and_extensions(doc);
    let channel = rss::Channel {
        title: doc.channel.title.clone(),
        link: doc.site.base_url.to_string(),
        description: if doc.site.description.is_empty() {
            doc.channel.title.clone()
        } else {
            doc.site.description.clone()
        },
        language: Some(doc.language()),
        last_build_date: Some(rfc822(doc.updated)),
        generator: Some(format!("feedwerk {}", env!("CARGO_PKG_VERSION"))),
        docs: Some("https://www.rssboard.org/rss-specification".into()),
        atom_ext: Some(AtomExtension {
            links: atom_links(doc),
        }),
        namespaces,
        extensions,
        ..rss::Channel::default()
    };
    let mut out = Vec::with_capacity(4096);
    channel
        .write_to(&mut out)
        .expect("writing to a Vec cannot fail");
    let out = super::with_prolog(out, &doc.stylesheet_href(Format::Rss));
    let at = rfind(&out, b"</channel>").expect("a channel element");
    (out, at)
}

/// One item's `<item>` element, byte for byte as the crate writes it inside a channel.
/// The crate has no public writer for an item alone, so the item is written in a
/// channel of its own, with the namespaces the documents declare (an item's elements
/// are written the same under any channel), and cut out of it: the carrier channel's
/// own elements are empty, so its first `<item>` is the item's, and `</channel>`
/// follows the item's end.
pub fn fragment(doc: &FeedDoc, s: &StoredItem) -> Vec<u8> {
    let carrier = rss::Channel {
        items: vec![item(doc, s)],
        namespaces: namespaces(),
        ..rss::Channel::default()
    };
    let mut out = Vec::with_capacity(4096);
    carrier
        .write_to(&mut out)
        .expect("writing to a Vec cannot fail");
    let start = find(&out, b"<item>").expect("the carrier's item");
    let end = rfind(&out, b"</channel>").expect("the carrier's channel");
    out.truncate(end);
    out.drain(..start);
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::rfind(hay, needle)
}

/// `atom:link`s: `self`, the WebSub hub (subscription documents only), RFC 5005 paging.
fn atom_links(doc: &FeedDoc) -> Vec<Link> {
    let self_url = doc.self_url(Format::Rss);
    let mut links = vec![Link {
        href: self_url.to_string(),
        rel: "self".into(),
        mime_type: Some("application/rss+xml".into()),
        ..Link::default()
    }];
    if let Some(hub) = doc.websub_hub.filter(|_| !doc.is_archive()) {
        links.push(Link {
            href: hub.to_string(),
            rel: "hub".into(),
            ..Link::default()
        });
    }
    for (rel, url) in doc.paging_links(Format::Rss) {
        links.push(Link {
            href: url.to_string(),
            rel: rel.into(),
            mime_type: Some("application/rss+xml".into()),
            ..Link::default()
        });
    }
    links
}

type Namespaces = BTreeMap<String, String>;

/// The namespaces every document declares.
fn namespaces() -> Namespaces {
    let mut ns = BTreeMap::new();
    ns.insert("atom".to_owned(), "http://www.w3.org/2005/Atom".to_owned());
    ns.insert(
        "dc".to_owned(),
        "http://purl.org/dc/elements/1.1/".to_owned(),
    );
    ns.insert(
        "content".to_owned(),
        "http://purl.org/rss/1.0/modules/content/".to_owned(),
    );
    ns
}

/// The namespaces used, and `fh:archive` on an archive page.
fn namespaces_and_extensions(doc: &FeedDoc) -> (Namespaces, ExtensionMap) {
    let mut ns = namespaces();
    let mut extensions = BTreeMap::new();
    if doc.is_archive() {
        ns.insert("fh".to_owned(), FH_NS.to_owned());
        let mut fh = BTreeMap::new();
        fh.insert(
            "archive".to_owned(),
            vec![Extension {
                name: "fh:archive".into(),
                ..Extension::default()
            }],
        );
        extensions.insert("fh".to_owned(), fh);
    }
    (ns, extensions)
}

fn item(doc: &FeedDoc, s: &StoredItem) -> rss::Item {
    let it = &s.item;
    let mut content = it.content_html.clone().unwrap_or_default();
    if !s.also_at.is_empty() {
        content.push_str(&format!(
            "\n<p>Auch erschienen bei: {}</p>",
            super::also_at_links(&s.also_at)
        ));
    }
    let source = doc.source(&it.source).and_then(|src| match &src.kind {
        SourceKind::Feed { url } => Some(rss::Source {
            url: url.to_string(),
            title: Some(src.title.clone()),
        }),
        _ => None,
    });
    let link = it.url.as_ref().map(|u| u.to_string());
    let permalink = link.as_deref() == Some(s.published_id.as_str());
    rss::Item {
        title: Some(it.title.clone()),
        link,
        description: Some(it.summary.clone()).filter(|s| !s.is_empty()),
        author: it.authors.iter().find_map(|a| author_with_email(a)),
        guid: Some(rss::Guid {
            value: s.published_id.clone(),
            permalink,
        }),
        pub_date: Some(rfc822(it.published)),
        categories: it
            .tags
            .iter()
            .map(|t| rss::Category {
                name: t.clone(),
                domain: None,
            })
            .collect(),
        content: Some(content).filter(|c| !c.is_empty()),
        dublin_core_ext: dublin_core(doc, it),
        source,
        ..rss::Item::default()
    }
}

/// Names go to `dc:creator`; a partner item without names is credited to the partner,
/// a local one to the site's author.
fn dublin_core(doc: &FeedDoc, it: &Item) -> Option<DublinCoreExtension> {
    let creators: Vec<String> = if !it.authors.is_empty() {
        it.authors
            .iter()
            .map(|a| super::split_author(a).0)
            .collect()
    } else if doc.is_partner(&it.source) {
        vec![doc.source_title(&it.source).to_owned()]
    } else {
        doc.site.author.iter().cloned().collect()
    };
    (!creators.is_empty()).then(|| DublinCoreExtension {
        creators,
        ..DublinCoreExtension::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc822_has_english_names_and_two_digit_day() {
        let d = DateTime::parse_from_rfc3339("2017-10-08T22:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(rfc822(d), "Sun, 08 Oct 2017 22:00:00 +0000");
    }

    #[test]
    fn rss_author_needs_an_email_address() {
        assert_eq!(author_with_email("Jane Doe"), None);
        assert_eq!(
            author_with_email("Jane Doe <jane@example.org>").as_deref(),
            Some("jane@example.org (Jane Doe)")
        );
        assert_eq!(
            author_with_email("jane@example.org").as_deref(),
            Some("jane@example.org")
        );
        assert_eq!(author_with_email("@handle"), None);
    }
}
