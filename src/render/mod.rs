//! Channel + stored items → document bytes, one writer per format, and the check that
//! reads every document back before it may be published ([`verify`]).
//!
//! Rendering is a pure function of its input: items come newest first with ties broken
//! by ID, and the feed-level date is handed in by the caller (the time the channel's
//! content last changed, see `publish`), never read from the clock, so a cycle that
//! changed nothing produces the same bytes — and the same ETag.
//!
//! What this module leaves to others: which items a channel holds and which archive page
//! they belong to (`pipeline` and `store`), writing and serving (`publish`, `serve`).

pub mod assets;
pub mod atom;
pub mod embed;
pub mod html;
pub mod json;
pub mod opml;
pub mod rss;
pub mod splice;
pub mod verify;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use url::Url;

use crate::config::Site;
use crate::model::{Channel, Format, Source, SourceId, SourceKind};
use crate::store::StoredItem;
use splice::{Assembled, Fragment, Fragments};

/// What kind of document a byte string is: decides how it is checked before publishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    /// A channel's subscription document (the one readers poll).
    Feed(Format),
    /// An RFC 5005 archive page of a channel.
    Archive(Format),
    Html,
    Opml,
    Xslt,
    Script,
}

/// Where a document stands in a channel's RFC 5005 history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// The subscription document; `prev_archive` is the newest archive page, if any.
    Subscription { prev_archive: Option<u32> },
    /// Archive page `page` (1 = oldest) of `pages` pages.
    Archive { page: u32, pages: u32 },
}

/// Everything a writer needs for one channel document.
pub struct FeedDoc<'a> {
    pub site: &'a Site,
    pub channel: &'a Channel,
    pub items: &'a [StoredItem],
    pub sources: &'a HashMap<SourceId, Source>,
    pub websub_hub: Option<&'a Url>,
    /// When the document's content last changed: Atom `updated`, RSS `lastBuildDate`.
    pub updated: DateTime<Utc>,
    pub paging: Paging,
}

/// The namespace of RFC 5005 (`fh:archive`).
pub const FH_NS: &str = "http://purl.org/syndication/history/1.0";

impl FeedDoc<'_> {
    /// Absolute URL of this document in `format` (an archive page's own URL for pages).
    pub fn self_url(&self, format: Format) -> Url {
        match self.paging {
            Paging::Subscription { .. } => self.subscription_url(format),
            Paging::Archive { page, .. } => self.archive_url(format, page),
        }
    }

    /// Absolute URL of the channel's subscription document in `format`.
    pub fn subscription_url(&self, format: Format) -> Url {
        self.url(&self.channel.path(format))
    }

    pub fn archive_url(&self, format: Format, page: u32) -> Url {
        self.url(&self.channel.archive_path(format, page))
    }

    fn url(&self, path: &str) -> Url {
        self.site
            .base_url
            .join(path)
            .expect("channel paths are relative")
    }

    /// RFC 5005 links of this document: `(rel, absolute URL)` in a fixed order.
    pub fn paging_links(&self, format: Format) -> Vec<(&'static str, Url)> {
        match self.paging {
            Paging::Subscription { prev_archive } => prev_archive
                .map(|p| vec![("prev-archive", self.archive_url(format, p))])
                .unwrap_or_default(),
            Paging::Archive { page, pages } => {
                let mut out = vec![("current", self.subscription_url(format))];
                if page > 1 {
                    out.push(("prev-archive", self.archive_url(format, page - 1)));
                }
                if page < pages {
                    out.push(("next-archive", self.archive_url(format, page + 1)));
                }
                out
            }
        }
    }

    pub fn is_archive(&self) -> bool {
        matches!(self.paging, Paging::Archive { .. })
    }

    /// The language the channel is written in. A language channel names its language;
    /// otherwise the language most of its items are in (ties go to the site's language,
    /// then to the alphabetically first, so the choice is deterministic); an empty
    /// channel falls back to its single source's language, then the site's.
    pub fn language(&self) -> String {
        if let [only] = self.channel.filter.languages.as_slice() {
            return only.clone();
        }
        let mut counts: Vec<(String, usize)> = Vec::new();
        for s in self.items {
            if let Some(l) = &s.item.language {
                match counts.iter_mut().find(|(k, _)| k == l) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((l.clone(), 1)),
                }
            }
        }
        let best = counts.iter().map(|(_, n)| *n).max();
        if let Some(best) = best {
            let mut winners: Vec<&String> = counts
                .iter()
                .filter(|(_, n)| *n == best)
                .map(|(k, _)| k)
                .collect();
            if winners.iter().any(|w| **w == self.site.language) {
                return self.site.language.clone();
            }
            winners.sort();
            return winners[0].clone();
        }
        if let [only] = self.channel.filter.sources.as_slice() {
            if let Some(l) = self.source(only).and_then(|s| s.language.clone()) {
                return l;
            }
        }
        self.site.language.clone()
    }

    pub fn source(&self, id: &SourceId) -> Option<&Source> {
        self.sources.get(id)
    }

    /// True when the item comes from a partner (not a local post).
    pub fn is_partner(&self, id: &SourceId) -> bool {
        self.source(id)
            .is_some_and(|s| !matches!(s.kind, SourceKind::Local { .. }))
    }

    /// The display name of an item's source.
    pub fn source_title<'s>(&'s self, id: &'s SourceId) -> &'s str {
        self.source(id)
            .map(|s| s.title.as_str())
            .unwrap_or(id.as_str())
    }

    /// `href` of the XSLT stylesheet relative to this document, so it resolves on the
    /// public host (behind a path prefix) and on the bare server alike.
    pub fn stylesheet_href(&self, format: Format) -> String {
        let path = match self.paging {
            Paging::Subscription { .. } => self.channel.path(format),
            Paging::Archive { page, .. } => self.channel.archive_path(format, page),
        };
        relative_to_root(&path, assets::FEED_XSL_PATH)
    }
}

/// An author string split into name and e-mail address: `"j@x.org (Jane)"` (RSS 2.0's
/// form, what the feed adapter keeps) and `"Jane <j@x.org>"` → `("Jane", Some("j@x.org"))`;
/// a bare address is its own name.
/// "Also at" provenance as HTML links (a source without a URL is its name alone), joined
/// with commas: the same line on the news page and in RSS content.
pub fn also_at_links(also_at: &[crate::model::AlsoAt]) -> String {
    also_at
        .iter()
        .map(|a| match &a.url {
            Some(u) => format!(
                "<a href=\"{}\">{}</a>",
                escape(u.as_str()),
                escape(&a.source_title)
            ),
            None => escape(&a.source_title),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn split_author(author: &str) -> (String, Option<String>) {
    if let Some((email, rest)) = author.trim().split_once(" (") {
        if let Some(name) = rest
            .strip_suffix(')')
            .filter(|_| email.contains('@') && !email.contains(' '))
        {
            // feed-rs keeps RSS's parentheses in the name: "x@y ((Name))".
            let name = name.trim();
            let name = name
                .strip_prefix('(')
                .and_then(|n| n.strip_suffix(')'))
                .unwrap_or(name);
            let name = if name.is_empty() { email } else { name };
            return (name.to_owned(), Some(email.to_owned()));
        }
    }
    if let Some((name, rest)) = author.rsplit_once('<') {
        if let Some(email) = rest.strip_suffix('>').filter(|e| e.contains('@')) {
            let name = name.trim();
            let name = if name.is_empty() { email } else { name };
            return (name.to_owned(), Some(email.trim().to_owned()));
        }
    }
    let a = author.trim();
    if a.contains('@') && !a.contains(' ') {
        return (a.to_owned(), Some(a.to_owned()));
    }
    (a.to_owned(), None)
}

/// `target` (a path from the output root) as seen from the document at `from`.
pub fn relative_to_root(from: &str, target: &str) -> String {
    let depth = from.matches('/').count();
    format!("{}{target}", "../".repeat(depth))
}

/// Renders `doc` in `format`.
pub fn render(doc: &FeedDoc, format: Format) -> Vec<u8> {
    let parts = parts(doc, format, &mut Fragments::new(0));
    assemble(doc, format, &parts).bytes
}

/// The fragments of `doc`'s items in `format`, in order, taken from `cache` when this
/// pass rendered them before (see [`splice`]).
pub fn parts(doc: &FeedDoc, format: Format, cache: &mut Fragments) -> Vec<Arc<Fragment>> {
    let render: fn(&FeedDoc, &StoredItem) -> Vec<u8> = match format {
        Format::Rss => rss::fragment,
        Format::Atom => atom::fragment,
        Format::Json => json::fragment,
    };
    doc.items
        .iter()
        .map(|s| cache.get_or_render(format, s, || render(doc, s)))
        .collect()
}

/// `doc` in `format` with `parts`, the fragments of its items ([`parts`]), spliced in.
pub fn assemble(doc: &FeedDoc, format: Format, parts: &[Arc<Fragment>]) -> Assembled {
    debug_assert_eq!(parts.len(), doc.items.len());
    let ((envelope, at), layout) = match format {
        Format::Rss => (rss::envelope(doc), None),
        Format::Atom => (atom::envelope(doc), None),
        Format::Json => (json::envelope(doc), Some(json::LAYOUT)),
    };
    splice::splice(format, envelope, at, parts, layout)
}

/// Replaces the XML declaration a writer produced with ours and adds the
/// `<?xml-stylesheet?>` instruction that makes browsers show a readable page.
pub fn with_prolog(xml: Vec<u8>, stylesheet_href: &str) -> Vec<u8> {
    let body = if xml.starts_with(b"<?xml") {
        match xml.windows(2).position(|w| w == b"?>") {
            Some(end) => &xml[end + 2..],
            None => &xml[..],
        }
    } else {
        &xml[..]
    };
    let body = body.strip_prefix(b"\n").unwrap_or(body);
    let mut out = Vec::with_capacity(body.len() + 128);
    out.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    out.extend_from_slice(
        format!(
            "<?xml-stylesheet type=\"text/xsl\" href=\"{}\"?>\n",
            escape(stylesheet_href)
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out
}

/// Escapes text for HTML/XML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn author_strings_split_into_name_and_email() {
        for (a, name, email) in [
            (
                "press@efus.example (Efus Press)",
                "Efus Press",
                Some("press@efus.example"),
            ),
            (
                "press@efus.example ((Efus Press))",
                "Efus Press",
                Some("press@efus.example"),
            ),
            ("Jane Doe <jane@x.org>", "Jane Doe", Some("jane@x.org")),
            ("jane@x.org", "jane@x.org", Some("jane@x.org")),
            ("Jane Doe (Efus)", "Jane Doe (Efus)", None),
            ("Jane Doe", "Jane Doe", None),
        ] {
            assert_eq!(
                split_author(a),
                (name.to_owned(), email.map(str::to_owned)),
                "{a}"
            );
        }
    }

    #[test]
    fn stylesheet_href_climbs_out_of_subdirectories() {
        assert_eq!(relative_to_root("atom.xml", "feed.xsl"), "feed.xsl");
        assert_eq!(
            relative_to_root("sources/efus/archive/2.atom", "feed.xsl"),
            "../../../feed.xsl"
        );
    }

    #[test]
    fn prolog_replaces_the_writers_declaration() {
        let out = with_prolog(b"<?xml version=\"1.0\"?>\n<feed/>".to_vec(), "feed.xsl");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<?xml-stylesheet type=\"text/xsl\" href=\"feed.xsl\"?>\n<feed/>\n"
        );
    }
}
