//! RSS 2.0 with the `rss` crate: `atom:link rel="self"`, `content:encoded`, `dc:creator`,
//! RFC 822 dates (the crate writes whatever string it is given, so we format them).

use std::collections::BTreeMap;

use rss::extension::atom::{AtomExtension, Link};
use rss::extension::dublincore::DublinCoreExtension;

use super::{escape, FeedDoc};
use crate::model::Format;

pub fn render(doc: &FeedDoc) -> Vec<u8> {
    let self_url = doc.self_url(Format::Rss);
    let mut links = vec![Link {
        href: self_url.to_string(),
        rel: "self".into(),
        mime_type: Some("application/rss+xml".into()),
        ..Link::default()
    }];
    if let Some(hub) = doc.websub_hub {
        links.push(Link {
            href: hub.to_string(),
            rel: "hub".into(),
            ..Link::default()
        });
    }
    let items = doc
        .items
        .iter()
        .map(|s| {
            let it = &s.item;
            let mut content = it.content_html.clone().unwrap_or_default();
            if !s.also_at.is_empty() {
                let links: Vec<String> = s
                    .also_at
                    .iter()
                    .map(|a| match &a.url {
                        Some(u) => format!(
                            r#"<a href="{}">{}</a>"#,
                            escape(u.as_str()),
                            escape(&a.source_title)
                        ),
                        None => escape(&a.source_title),
                    })
                    .collect();
                content.push_str(&format!(
                    "\n<p>Auch erschienen bei: {}</p>",
                    links.join(", ")
                ));
            }
            let dc = (!it.authors.is_empty()).then(|| DublinCoreExtension {
                creators: it.authors.clone(),
                ..DublinCoreExtension::default()
            });
            let source = doc.is_partner(&it.source).then(|| {
                let src = doc.source(&it.source).expect("partner known");
                rss::Source {
                    url: src.kind.url().map(|u| u.to_string()).unwrap_or_default(),
                    title: Some(src.title.clone()),
                }
            });
            rss::Item {
                title: Some(it.title.clone()),
                link: it.url.as_ref().map(|u| u.to_string()),
                description: Some(it.summary.clone()).filter(|s| !s.is_empty()),
                guid: Some(rss::Guid {
                    value: s.published_id.clone(),
                    permalink: false,
                }),
                pub_date: Some(it.published.to_rfc2822()),
                categories: it
                    .tags
                    .iter()
                    .map(|t| rss::Category {
                        name: t.clone(),
                        domain: None,
                    })
                    .collect(),
                content: Some(content).filter(|c| !c.is_empty()),
                dublin_core_ext: dc,
                source,
                ..rss::Item::default()
            }
        })
        .collect();
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
    let channel = rss::Channel {
        title: doc.channel.title.clone(),
        link: doc.site.base_url.to_string(),
        description: if doc.site.description.is_empty() {
            doc.channel.title.clone()
        } else {
            doc.site.description.clone()
        },
        language: Some(doc.language()),
        last_build_date: Some(doc.updated().to_rfc2822()),
        generator: Some(format!("feedwerk {}", env!("CARGO_PKG_VERSION"))),
        atom_ext: Some(AtomExtension { links }),
        items,
        namespaces: ns,
        ..rss::Channel::default()
    };
    let mut out = Vec::with_capacity(4096 + doc.items.len() * 2048);
    channel
        .write_to(&mut out)
        .expect("writing to a Vec cannot fail");
    out.push(b'\n');
    out
}
