//! The publish stage: store → documents → files on disk and the catalog the server
//! reads. [`run`] is the whole stage; it takes the config and the store and never the
//! pipeline, which only calls it and keeps the catalog it returns.
//!
//! One pass, top to bottom:
//!
//! 1. plan the channels ([`channels`]: combined, per source, tag, language, the
//!    `[[channel]]`s), each with its [`crate::model::ChannelKind`];
//! 2. ask the store what changed since the last publish; a channel none of whose items
//!    changed keeps its documents (from the last catalog, or as its files);
//! 3. render the others' documents ([`documents`]; archive pages in [`archive`]), post
//!    pages of changed local sources, OPML and the assets, feeding each to the
//!    [`writer`] as it is rendered, which checks, compresses ([`compress`]) and writes
//!    changed ones atomically ([`files`]);
//! 4. remove the files of channels no longer published, seal archive pages that
//!    reached their final form, attach the `/embed` lists, and note in the store what
//!    was published.
//!
//! Rendering bytes is [`crate::render`]'s; serving them is the server's (`serve`), over
//! [`crate::catalog`]. [`announce`] tells a WebSub hub what changed.

mod archive;
pub mod channels;
mod compress;
mod documents;
mod files;
mod on_disk;
mod preview;
mod unchanged;
mod writer;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::rc::Rc;

use chrono::{DateTime, Utc};
use url::Url;

use crate::catalog::{Catalog, EmbedList};
use crate::config::Config;
use crate::model::{Channel, ChannelFilter, ChannelKind, Format, Source, SourceId, SourceKind};
use crate::render::splice::Fragments;
use crate::render::verify::VerifyError;
use crate::render::{self, Paging};
use crate::store::{Backend, Dirty, ItemCache, StoreError, PUBLISHED_CONFIG, UNPUBLISHED};
use crate::websub::{Hub, WebSubError};
use archive::Seal;
use channels::{keeps_archive, GENERATED_CHANNEL_DIRS};
use documents::{with_source_titles, RenderCtx};
use unchanged::Unchanged;
use writer::Published;
pub use writer::{Body, Document, Publisher};

pub use compress::{compressible, on_request, precompress, Coding, Reach};
pub(crate) use files::readable_temp_file;
pub use files::sweep_stale_temp_files;
pub use preview::Preview;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct PublishReport {
    /// Paths written this time.
    pub written: Vec<String>,
    /// Documents kept as they were (same bytes, or their channel did not change).
    pub unchanged: usize,
    /// Documents rendered in this pass (the others' channels did not change).
    pub rendered: usize,
    /// Subscription feeds (paths) whose content changed: what WebSub subscribers need.
    pub changed_feeds: Vec<String>,
    /// Documents that failed their check: the previous version stays published.
    pub failed: Vec<(String, VerifyError)>,
    /// Documents of channels no longer published, removed from the output directory
    /// with their compressed copies (see [`remove_unpublished`]).
    pub removed: Vec<String>,
}

/// What a publishing pass produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Files, and every document in memory for the server.
    Catalog,
    /// Files only (`build`): holds no catalog, so memory does not grow with the number
    /// of channels or archive pages, and a build where nothing changed renders nothing.
    Files,
    /// Nothing: only which documents would be written (`build --dry-run`).
    Plan,
}

/// The RFC 4151 tagging entity for published IDs: the site's host and `site.id_date`.
pub fn authority(cfg: &Config) -> String {
    let host = cfg.site.base_url.host_str().unwrap_or("localhost");
    crate::identity::tagging_entity(host, cfg.site.id_date)
}

/// What the outputs depend on besides the store: the config and this program's
/// renderers. Stored with each publish; when it differs, everything is rendered again.
pub fn config_fingerprint(cfg: &Config) -> String {
    let text = format!("{}\n{:?}", env!("CARGO_PKG_VERSION"), cfg);
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// Renders the channels whose items changed since the last publish — subscription
/// documents in three formats, RFC 5005 archive pages, the news page, post pages —
/// plus OPML, the browser stylesheet and the embed script, and publishes what changed
/// (or, with [`Mode::Plan`], only reports in `written` what would be written, returning
/// an empty catalog). With [`Mode::Catalog`] it returns the full catalog for the
/// server: untouched channels' documents come from `previous`, the last catalog. Full
/// archive pages that reached their final form are sealed afterwards.
pub fn run(
    cfg: &Config,
    store: &dyn Backend,
    now: DateTime<Utc>,
    mode: Mode,
    previous: Option<&Catalog>,
) -> Result<(Catalog, PublishReport), PublishError> {
    let keep = mode == Mode::Catalog;
    let previous = previous.filter(|_| keep);
    let channels = channels::plan(cfg, store)?;
    let sources: HashMap<SourceId, Source> = cfg
        .sources
        .iter()
        .map(|s| (s.id.clone(), s.clone()))
        .collect();
    store.ensure_archive_schema()?;
    // What changed since the last publish (recorded by the store's triggers).
    let dirty = store.publish_dirty()?;
    let digest = config_fingerprint(cfg);
    // Outputs also depend on the config and on this program's renderers: when either
    // changed, everything is rendered again; so it is when a server starts without a
    // catalog in memory.
    let everything = (keep && previous.is_none())
        || store.meta(PUBLISHED_CONFIG)?.as_deref() != Some(digest.as_str());
    let pass = Pass {
        cfg,
        store,
        ctx: RenderCtx {
            site: &cfg.site,
            sources: &sources,
            hub: cfg.publish.websub_hub.as_ref(),
        },
        channels: &channels,
        dirty: &dirty,
        previous,
        unchanged: Unchanged::new(keep, previous, store, &cfg.publish.output_dir),
        everything,
        keep,
        now,
        read: RefCell::new(Read {
            items: ItemCache::new(ITEM_CACHE),
            fragments: Fragments::new(FRAGMENT_CACHE),
        }),
    };
    let mut publisher = Publisher::start(&cfg.publish.output_dir, store, now, mode)
        .knowing(pass.unchanged.on_disk());
    let produced = pass.produce(&mut publisher);
    // Record every document that reached the disk, even when producing failed.
    let finished = publisher.finish();
    let (seals, embeds) = produced?;
    let Published {
        mut catalog,
        mut report,
        paths,
    } = finished?;
    if mode == Mode::Plan {
        return Ok((catalog, report));
    }
    report.removed.extend(remove_unpublished(cfg, &channels));
    // From now on readers know these representatives' IDs: they never change. With
    // nothing changed, there is no new representative to mark.
    if everything || !dirty.is_empty() {
        store.mark_representatives_shown(now)?;
    }
    archive::seal(store, seals, &report, &paths)?;
    for embed in embeds {
        catalog.insert_embed(embed.channel.key(), embed.list(&paths, now));
    }
    store.clear_publish_dirty()?;
    store.set_meta(PUBLISHED_CONFIG, &digest)?;
    store.set_meta(UNPUBLISHED, "0")?;
    Ok((catalog, report))
}

/// Removes the files of channels no longer published (and the combined channel's
/// archive pages when it has none any more); returns the document paths removed.
fn remove_unpublished(cfg: &Config, channels: &[Channel]) -> Vec<String> {
    let out = &cfg.publish.output_dir;
    let live: HashSet<&str> = channels.iter().map(Channel::key).collect();
    let archived: HashSet<&str> = channels
        .iter()
        .filter(|c| keeps_archive(cfg.publish.archives, c))
        .map(Channel::key)
        .collect();
    let mut removed = Vec::new();
    if !channels
        .iter()
        .any(|c| c.kind == ChannelKind::Combined && archived.contains(c.key()))
    {
        removed.extend(files::remove_archive_pages(out, "archive"));
    }
    for dir in GENERATED_CHANNEL_DIRS {
        removed.extend(files::remove_stale_channels(out, dir, &live, &archived));
    }
    removed
}

/// A channel's `/embed` list as rendered in this pass, before its Last-Modified is known.
struct Embed<'a> {
    channel: &'a Channel,
    items: Vec<String>,
    language: String,
}

impl Embed<'_> {
    /// The list, dated like the channel's JSON feed as published.
    fn list(self, published: &HashMap<String, DateTime<Utc>>, now: DateTime<Utc>) -> EmbedList {
        let ch = self.channel;
        let last_modified = published
            .get(&ch.path(Format::Json))
            .copied()
            .unwrap_or(now);
        let hash = blake3::hash(self.items.concat().as_bytes()).to_hex()[..16].to_owned();
        EmbedList {
            title: ch.title.clone(),
            language: self.language,
            items: self.items,
            hash,
            last_modified,
        }
    }
}

/// What one publishing pass reads: decided once in [`run`], shared by its steps.
struct Pass<'a> {
    cfg: &'a Config,
    store: &'a dyn Backend,
    ctx: RenderCtx<'a>,
    /// The combined channel first.
    channels: &'a [Channel],
    dirty: &'a Dirty,
    /// The last catalog (only in a pass that builds one).
    previous: Option<&'a Catalog>,
    /// What was published before and can be kept as it is.
    unchanged: Unchanged<'a>,
    /// Render every channel, changed or not.
    everything: bool,
    /// Build a catalog for the server.
    keep: bool,
    now: DateTime<Utc>,
    /// What earlier channels of this pass read and rendered.
    read: RefCell<Read>,
}

/// What a pass keeps of its earlier channels for its later ones.
struct Read {
    /// The items parsed.
    items: ItemCache,
    /// The items rendered.
    fragments: Fragments,
}

/// How many parsed items a pass keeps for its later channels (see [`ItemCache`]). Tag
/// channels draw their newest items from every source, so the cache must span many
/// sources' channels to help them; 8 192 items of a few KB each bound it at about
/// 25 MB (a medium build's peak RSS did not change measurably: 97-100 MB).
const ITEM_CACHE: usize = 8192;

/// How many bytes of rendered item fragments a pass keeps for its later documents (see
/// [`Fragments`]): what the distinct fragments of a cold medium build come to (66 MB),
/// so each of its items is rendered and checked once per format. A larger site keeps
/// the fragments of its most recently rendered items.
const FRAGMENT_CACHE: usize = 64 << 20;

impl<'a> Pass<'a> {
    /// Feeds every document of this pass to `p`; returns the archive pages to seal and
    /// the embed lists rendered.
    fn produce(&self, p: &mut Publisher) -> Result<(Vec<Seal>, Vec<Embed<'a>>), PublishError> {
        let mut seals = Vec::new();
        let mut embeds = Vec::new();
        for ch in self.channels {
            self.channel(p, ch, &mut seals, &mut embeds)?;
        }
        for s in self
            .cfg
            .sources
            .iter()
            .filter(|s| matches!(s.kind, SourceKind::Local { .. }))
        {
            self.posts(p, s)?;
        }
        p.add(documents::opml(self.cfg, self.channels))?;
        for doc in documents::assets(&self.cfg.site) {
            p.add(doc)?;
        }
        // Unchanged channels keep their embed lists.
        if let Some(prev) = self.previous {
            let rendered: HashSet<&str> = embeds.iter().map(|e| e.channel.key()).collect();
            for ch in self.channels {
                if !rendered.contains(ch.key()) {
                    p.keep_embed(ch.key(), prev);
                }
            }
        }
        Ok((seals, embeds))
    }

    /// Publishes one channel's documents (subscription feeds, archive pages, the news
    /// page of the combined channel), or keeps them when none of its items changed.
    fn channel(
        &self,
        p: &mut Publisher,
        ch: &'a Channel,
        seals: &mut Vec<Seal>,
        embeds: &mut Vec<Embed<'a>>,
    ) -> Result<(), PublishError> {
        if !self.everything && !self.dirty.affects(&ch.filter) && self.keep_channel(p, ch)? {
            return Ok(());
        }
        let pages = if keeps_archive(self.cfg.publish.archives, ch) {
            archive::docs(self, ch, p, seals)?
        } else {
            0
        };
        let items = Rc::new(with_source_titles(
            self.store.visible_items_cached(
                &ch.filter,
                ch.max_items,
                &mut self.read.borrow_mut().items,
            )?,
            self.ctx.sources,
        ));
        let paging = Paging::Subscription {
            prev_archive: (pages > 0).then_some(pages),
        };
        let mut docs = documents::feeds(
            self.ctx,
            ch,
            &items,
            paging,
            &mut self.read.borrow_mut().fragments,
        );
        let doc = self.ctx.doc(ch, &items, paging, self.now);
        if self.keep {
            embeds.push(Embed {
                channel: ch,
                items: render::embed::list_items(&doc, self.cfg.site.timezone),
                language: doc.language(),
            });
        }
        if ch.kind == ChannelKind::Combined {
            docs.push(documents::index(&doc, self.channels));
        }
        for d in docs {
            p.add(d)?;
        }
        Ok(())
    }

    /// Keeps every document of a channel none of whose items changed (its subscription
    /// documents, archive pages, news page and embed list), if all of them can be kept.
    fn keep_channel(&self, p: &mut Publisher, ch: &Channel) -> Result<bool, PublishError> {
        let mut paths: Vec<String> = Format::ALL.iter().map(|f| ch.path(*f)).collect();
        if ch.kind == ChannelKind::Combined {
            paths.push("index.html".into());
        }
        for path in &paths {
            if !self.unchanged.can_keep(path)? {
                return Ok(false);
            }
        }
        if p.keeps_catalog() && self.previous.and_then(|c| c.embed(ch.key())).is_none() {
            return Ok(false);
        }
        // A channel without archives has no pages on disk (see `remove_unpublished`),
        // whatever the store remembers from a config that gave it some.
        if keeps_archive(self.cfg.publish.archives, ch)
            && !archive::keep(self.store, ch, &self.unchanged, p)?
        {
            return Ok(false);
        }
        for path in &paths {
            self.unchanged.keep(p, path)?;
        }
        Ok(true)
    }

    /// Publishes the pages of a local source's posts, when its items changed.
    fn posts(&self, p: &mut Publisher, s: &Source) -> Result<(), PublishError> {
        if !self.everything && !self.dirty.sources.contains(s.id.as_str()) {
            // Unchanged posts: a build leaves their files alone; the server keeps the
            // pages it has.
            let Some(prev) = self.previous else {
                return Ok(());
            };
            let prefix = format!("posts/{}/", s.id);
            for path in prev.paths().filter(|p| p.starts_with(&prefix)) {
                p.keep_unchanged(path, self.previous)?;
            }
            return Ok(());
        }
        let filter = ChannelFilter {
            sources: vec![s.id.clone()],
            ..ChannelFilter::default()
        };
        let items: Vec<_> = with_source_titles(
            self.store.visible_items_cached(
                &filter,
                self.cfg.store.max_items,
                &mut self.read.borrow_mut().items,
            )?,
            self.ctx.sources,
        );
        let combined = &self.channels[0];
        let paging = Paging::Subscription { prev_archive: None };
        let doc = self.ctx.doc(combined, &items, paging, self.now);
        for it in &items {
            let Some(slug) = it.item.id.key_in_source().map(str::to_owned) else {
                continue;
            };
            let own = crate::source::local::post_url(&self.cfg.site.base_url, s.id.as_str(), &slug);
            if it.item.url.as_ref() != Some(&own) {
                continue;
            }
            p.add(documents::post(&doc, &s.id, &slug, it))?;
        }
        Ok(())
    }
}

/// Tells the WebSub hub (if one is configured) which subscription feeds changed.
pub async fn announce(
    hub: Option<&Hub>,
    base_url: &Url,
    report: &PublishReport,
) -> Vec<WebSubError> {
    let Some(hub) = hub else {
        return Vec::new();
    };
    let topics: Vec<Url> = report
        .changed_feeds
        .iter()
        .filter_map(|p| base_url.join(p).ok())
        .collect();
    if topics.is_empty() {
        return Vec::new();
    }
    hub.ping(&topics).await
}
