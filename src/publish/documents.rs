//! What each published document is: its path, kind, cache lifetime, reach and how its
//! bytes are rendered ([`crate::render`] makes the bytes). Subscription feeds in three
//! formats, the news page, post pages, OPML and the two assets. Which documents a pass
//! needs is decided by [`super::run`]; archive pages are [`super::archive`]'s.

use std::collections::HashMap;
use std::rc::Rc;

use chrono::{DateTime, Utc};
use url::Url;

use super::channels::reach;
use super::compress::Reach;
use super::writer::{Body, Document};
use crate::config::{Config, Site};
use crate::model::{Channel, ChannelKind, Format, Source, SourceId};
use crate::render::splice::Fragments;
use crate::render::{self, assets, DocKind, FeedDoc, Paging};
use crate::store::StoredItem;

/// Cache lifetimes: subscription documents change every few minutes at most; a sealed
/// archive page never changes; stylesheet and script change with releases.
pub(super) const FEED_CACHE: &str = "public, max-age=300";
pub(super) const ARCHIVE_CACHE: &str = "public, max-age=31536000, immutable";
const ASSET_CACHE: &str = "public, max-age=86400";

/// What every channel document shares, copied into each render closure.
#[derive(Clone, Copy)]
pub(super) struct RenderCtx<'a> {
    pub site: &'a Site,
    pub sources: &'a HashMap<SourceId, Source>,
    pub hub: Option<&'a Url>,
}

impl<'a> RenderCtx<'a> {
    pub fn doc<'d>(
        &self,
        channel: &'d Channel,
        items: &'d [StoredItem],
        paging: Paging,
        updated: DateTime<Utc>,
    ) -> FeedDoc<'d>
    where
        'a: 'd,
    {
        FeedDoc {
            site: self.site,
            channel,
            items,
            sources: self.sources,
            websub_hub: self.hub,
            updated,
            paging,
        }
    }

    /// A feed document whose date is filled in by the writer (see [`Body::Dated`]),
    /// spliced from its items' fragments, which are taken from `fragments` when this
    /// pass rendered them for another document (see [`render::splice`]).
    pub fn feed_body(
        self,
        channel: &'a Channel,
        items: Rc<Vec<StoredItem>>,
        paging: Paging,
        format: Format,
        fragments: &mut Fragments,
    ) -> Body<'a> {
        // Fragments do not depend on the date: rendered once, whatever the writer asks.
        let parts = render::parts(
            &self.doc(channel, &items, paging, DateTime::UNIX_EPOCH),
            format,
            fragments,
        );
        Body::Dated(Box::new(move |updated| {
            render::assemble(&self.doc(channel, &items, paging, updated), format, &parts)
        }))
    }
}

/// A channel's subscription documents, one per format.
pub(super) fn feeds<'a>(
    ctx: RenderCtx<'a>,
    ch: &'a Channel,
    items: &Rc<Vec<StoredItem>>,
    paging: Paging,
    fragments: &mut Fragments,
) -> Vec<Document<'a>> {
    Format::ALL
        .into_iter()
        .map(|f| Document {
            path: ch.path(f),
            kind: DocKind::Feed(f),
            content_type: f.content_type(),
            items: Some(items.len()),
            body: ctx.feed_body(ch, items.clone(), paging, f, fragments),
            cache_control: FEED_CACHE,
            reach: reach(ch),
        })
        .collect()
}

/// The news page of the combined channel, linking every other channel.
pub(super) fn index(doc: &FeedDoc, channels: &[Channel]) -> Document<'static> {
    html("index.html".into(), render::html::index(doc, channels))
}

/// The page of one local post, under `posts/<source>/<slug>.html`.
pub(super) fn post(
    doc: &FeedDoc,
    source: &SourceId,
    slug: &str,
    it: &StoredItem,
) -> Document<'static> {
    html(
        format!("posts/{source}/{slug}.html"),
        render::html::post(doc, it),
    )
}

fn html(path: String, body: Vec<u8>) -> Document<'static> {
    Document {
        path,
        kind: DocKind::Html,
        content_type: "text/html; charset=utf-8",
        body: Body::Fixed(body),
        cache_control: FEED_CACHE,
        items: None,
        reach: Reach::Wide,
    }
}

/// The subscription list of the per-source channels.
pub(super) fn opml(cfg: &Config, channels: &[Channel]) -> Document<'static> {
    let per_source: Vec<Channel> = channels
        .iter()
        .filter(|c| c.kind == ChannelKind::Source)
        .cloned()
        .collect();
    Document {
        path: "sources.opml".into(),
        kind: DocKind::Opml,
        content_type: "text/x-opml; charset=utf-8",
        body: Body::Fixed(render::opml::render(&cfg.site, &cfg.sources, &per_source)),
        cache_control: FEED_CACHE,
        items: None,
        reach: Reach::Wide,
    }
}

/// The browser stylesheet of the feeds and the embed script, which shows dates in the
/// site's time zone (templated in here, once per publish).
pub(super) fn assets(site: &Site) -> [Document<'static>; 2] {
    [
        Document {
            path: assets::FEED_XSL_PATH.into(),
            kind: DocKind::Xslt,
            content_type: "text/xsl; charset=utf-8",
            body: Body::Fixed(assets::FEED_XSL.as_bytes().to_vec()),
            cache_control: ASSET_CACHE,
            items: None,
            reach: Reach::Wide,
        },
        Document {
            path: assets::EMBED_JS_PATH.into(),
            kind: DocKind::Script,
            content_type: "text/javascript; charset=utf-8",
            body: Body::Fixed(
                assets::EMBED_JS
                    .replace("__TIMEZONE__", site.timezone.name())
                    .into_bytes(),
            ),
            cache_control: ASSET_CACHE,
            items: None,
            reach: Reach::Wide,
        },
    ]
}

/// Provenance names the other sources by their configured titles ("Efus – …"), not IDs.
pub(super) fn with_source_titles(
    mut items: Vec<StoredItem>,
    sources: &HashMap<SourceId, Source>,
) -> Vec<StoredItem> {
    for it in &mut items {
        for a in &mut it.also_at {
            if let Some(s) = sources.get(&a.source) {
                a.source_title = s.title.clone();
            }
        }
    }
    items
}
