//! `sources.opml`: every configured source with its feed and website, OPML 2.0, so a
//! reader can subscribe to the partners directly. Sources without a feed of their own
//! (local posts, scraped pages) point to the per-source feed we publish for them.

use super::escape;
use crate::config::Site;
use crate::model::{Channel, Format, Source, SourceKind};

pub fn render(site: &Site, sources: &[Source], per_source: &[Channel]) -> Vec<u8> {
    let mut o = String::with_capacity(1024 + sources.len() * 256);
    o.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<opml version=\"2.0\">\n<head>\n");
    o.push_str(&format!(
        "<title>{} – Quellen</title>\n<docs>http://opml.org/spec2.opml</docs>\n",
        escape(&site.title)
    ));
    if let Some(a) = &site.author {
        o.push_str(&format!("<ownerName>{}</ownerName>\n", escape(a)));
    }
    o.push_str("</head>\n<body>\n");
    for s in sources {
        let ours = per_source
            .iter()
            .find(|c| c.filter.sources.len() == 1 && c.filter.sources[0] == s.id)
            .map(|c| site.base_url.join(&c.path(Format::Atom)).expect("relative"));
        let xml_url = match &s.kind {
            SourceKind::Feed { url } => Some(url.clone()),
            _ => ours,
        };
        let Some(xml_url) = xml_url else { continue };
        let html_url = s
            .homepage
            .clone()
            .or_else(|| match &s.kind {
                SourceKind::Page { url, .. } => Some(url.clone()),
                _ => None,
            })
            .unwrap_or_else(|| site.base_url.clone());
        o.push_str(&format!(
            "<outline type=\"rss\" text=\"{t}\" title=\"{t}\" xmlUrl=\"{}\" htmlUrl=\"{}\"{}/>\n",
            escape(xml_url.as_str()),
            escape(html_url.as_str()),
            s.language
                .as_deref()
                .map(|l| format!(" language=\"{}\"", escape(l)))
                .unwrap_or_default(),
            t = escape(&s.title),
        ));
    }
    o.push_str("</body>\n</opml>\n");
    o.into_bytes()
}
