//! Channel + stored items → document bytes, one writer per format.
//!
//! Rendering is a pure function of its input: items come newest first with ties broken
//! by ID, and feed-level dates derive from the items (never from "now"), so a cycle that
//! changed nothing produces the same bytes — and the same ETag.

pub mod atom;
pub mod html;
pub mod json;
pub mod rss;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use url::Url;

use crate::config::Site;
use crate::model::{Channel, Format, Source, SourceId};
use crate::store::StoredItem;

/// Everything a writer needs for one channel.
pub struct FeedDoc<'a> {
    pub site: &'a Site,
    pub channel: &'a Channel,
    pub items: &'a [StoredItem],
    pub sources: &'a HashMap<SourceId, Source>,
    pub websub_hub: Option<&'a Url>,
}

impl FeedDoc<'_> {
    /// The newest date among the items; the epoch of the site for an empty channel.
    pub fn updated(&self) -> DateTime<Utc> {
        self.items
            .iter()
            .map(|s| {
                s.item
                    .updated
                    .unwrap_or(s.item.published)
                    .max(s.item.published)
            })
            .max()
            .unwrap_or_else(|| DateTime::from_timestamp(0, 0).expect("epoch"))
    }

    /// Absolute URL of this channel in `format`.
    pub fn self_url(&self, format: Format) -> Url {
        self.site
            .base_url
            .join(&self.channel.path(format))
            .expect("channel paths are relative")
    }

    /// The channel's language: the site's unless every item agrees on another.
    pub fn language(&self) -> String {
        let first = self.items.first().and_then(|s| s.item.language.clone());
        match first {
            Some(l)
                if self
                    .items
                    .iter()
                    .all(|s| s.item.language.as_deref() == Some(&l)) =>
            {
                l
            }
            _ => self.site.language.clone(),
        }
    }

    pub fn source(&self, id: &SourceId) -> Option<&Source> {
        self.sources.get(id)
    }

    /// True when the item comes from a partner (not a local post).
    pub fn is_partner(&self, id: &SourceId) -> bool {
        self.source(id)
            .is_some_and(|s| !matches!(s.kind, crate::model::SourceKind::Local { .. }))
    }
}

/// Renders `doc` in `format`.
pub fn render(doc: &FeedDoc, format: Format) -> Vec<u8> {
    match format {
        Format::Rss => rss::render(doc),
        Format::Atom => atom::render(doc),
        Format::Json => json::render(doc),
    }
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
