//! Atom 1.0 (RFC 4287) with `atom_syndication`. Every date is set explicitly (the crate
//! writes 1970-01-01 otherwise); partner items carry `atom:source`; other copies of a
//! story are `rel="related"` links.

use atom_syndication as at;
use chrono::{DateTime, FixedOffset, Utc};

use super::FeedDoc;
use crate::model::Format;

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

pub fn render(doc: &FeedDoc) -> Vec<u8> {
    let self_url = doc.self_url(Format::Atom);
    let site_author = at::Person {
        name: doc
            .site
            .author
            .clone()
            .unwrap_or_else(|| doc.site.title.clone()),
        ..at::Person::default()
    };
    let entries = doc
        .items
        .iter()
        .map(|s| {
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
            let authors = if it.authors.is_empty() {
                match doc.source(&it.source) {
                    Some(src) if doc.is_partner(&it.source) => vec![at::Person {
                        name: src.title.clone(),
                        ..at::Person::default()
                    }],
                    _ => vec![site_author.clone()],
                }
            } else {
                it.authors
                    .iter()
                    .map(|a| at::Person {
                        name: a.clone(),
                        ..at::Person::default()
                    })
                    .collect()
            };
            let source = doc.is_partner(&it.source).then(|| {
                let src = doc.source(&it.source).expect("partner known");
                let mut links = Vec::new();
                if let Some(h) = &src.homepage {
                    links.push(link(h.as_str(), "alternate", Some("text/html"), None));
                }
                if let Some(u) = src.kind.url() {
                    links.push(link(u.as_str(), "self", None, None));
                }
                at::Source {
                    title: at::Text::plain(src.title.clone()),
                    id: src
                        .kind
                        .url()
                        .map(|u| u.to_string())
                        .unwrap_or_else(|| format!("{}#source-{}", doc.site.base_url, src.id)),
                    updated: fixed(it.updated.unwrap_or(it.published)),
                    links,
                    ..at::Source::default()
                }
            });
            at::Entry {
                title: at::Text::plain(it.title.clone()),
                id: s.published_id.clone(),
                updated: fixed(it.updated.unwrap_or(it.published)),
                published: Some(fixed(it.published)),
                authors,
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
                content: it.content_html.as_ref().map(|h| at::Content {
                    value: Some(h.clone()),
                    content_type: Some("html".into()),
                    lang: it.language.clone(),
                    ..at::Content::default()
                }),
                source,
                ..at::Entry::default()
            }
        })
        .collect();
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
    if let Some(hub) = doc.websub_hub {
        links.push(link(hub.as_str(), "hub", None, None));
    }
    let feed = at::Feed {
        title: at::Text::plain(doc.channel.title.clone()),
        id: self_url.to_string(),
        updated: fixed(doc.updated()),
        authors: vec![site_author],
        links,
        generator: Some(at::Generator {
            value: "feedwerk".into(),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            ..at::Generator::default()
        }),
        subtitle: (!doc.site.description.is_empty())
            .then(|| at::Text::plain(doc.site.description.clone())),
        entries,
        lang: Some(doc.language()),
        ..at::Feed::default()
    };
    let mut out = Vec::with_capacity(4096 + doc.items.len() * 2048);
    feed.write_to(&mut out)
        .expect("writing to a Vec cannot fail");
    out.push(b'\n');
    out
}
