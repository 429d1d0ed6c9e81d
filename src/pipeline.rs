//! The one module that knows the order of the stages:
//! sources → fetch → decode/parse → normalise → dedupe → store → render → publish.
//!
//! `feedwerk build` runs one [`Pipeline::refresh`] and one [`Pipeline::publish`]; the
//! daemon runs them on its schedule. A broken source or post is data in the report,
//! never a reason to stop the others.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use url::Url;

use crate::archive_plan;
use crate::config::Site;
use crate::config::{Archives, Config};
use crate::fetch::Fetcher;
use crate::model::SourceReport;
use crate::model::{Channel, ChannelFilter, Format, Source, SourceId, SourceKind};
use crate::publish::{self, Body, Catalog, Document, EmbedList, Mode, PublishReport, Reach};
use crate::refresh;
pub use crate::refresh::RefreshMode;
use crate::render::{self, assets, DocKind, FeedDoc, Paging};
use crate::store::{Store, StoreError, StoredItem, PUBLISHED_CONFIG, UNPUBLISHED};
use crate::websub::{Hub, WebSubError};

/// What the next publish would do, from `build --dry-run`.
#[derive(Debug)]
pub struct Preview {
    pub reports: Vec<SourceReport>,
    /// Items that would enter the combined feed.
    pub added: Vec<StoredItem>,
    /// Items in the combined feed whose content would change.
    pub changed: Vec<StoredItem>,
    /// Items that would leave the combined feed (source removed, pruned, pushed out).
    pub withdrawn: Vec<StoredItem>,
    /// Output paths whose bytes would change.
    pub rewrite: Vec<String>,
    /// How many output documents there would be.
    pub documents: usize,
}

/// Everything a cycle needs: config, store, HTTP client.
pub struct Pipeline {
    pub cfg: Arc<Config>,
    store: Mutex<Store>,
    fetcher: Fetcher,
    hub: Option<Hub>,
    /// The catalog of the last publish, whose untouched documents the next one keeps.
    last_catalog: Mutex<Option<Arc<Catalog>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Publish(#[from] publish::PublishError),
}

impl Pipeline {
    pub fn open(cfg: Config) -> Result<Pipeline, StoreError> {
        let store = Store::open(&cfg.store.path, &authority(&cfg))?;
        Ok(Pipeline::with_store(cfg, store))
    }

    /// A pipeline over a private in-memory copy of the store, for `build --dry-run`:
    /// refreshing it fetches for real but writes nothing to the store file.
    pub fn open_dry_run(cfg: Config) -> Result<Pipeline, StoreError> {
        let store = Store::snapshot(&cfg.store.path, &authority(&cfg))?;
        Ok(Pipeline::with_store(cfg, store))
    }

    /// Runs a refresh against a private in-memory copy of the store and reports what the
    /// next publish would add, change and withdraw. Partners are fetched for real (with
    /// the stored validators), but neither the store file nor any output is written.
    pub async fn preview(cfg: Config, now: DateTime<Utc>) -> Result<Preview, PipelineError> {
        let p = Pipeline::open_dry_run(cfg)?;
        let max = p.cfg.publish.max_items;
        let before = p.store().visible_items(max)?;
        let reports = p.refresh(now).await;
        let after = p.store().visible_items(max)?;
        let (_, plan) = p.publish_pass(now, Mode::Plan)?;
        let old: HashMap<&str, &StoredItem> =
            before.iter().map(|s| (s.item.id.0.as_str(), s)).collect();
        let new: HashMap<&str, &StoredItem> =
            after.iter().map(|s| (s.item.id.0.as_str(), s)).collect();
        let added = after
            .iter()
            .filter(|s| !old.contains_key(s.item.id.0.as_str()))
            .cloned()
            .collect();
        let changed = after
            .iter()
            .filter(|s| {
                old.get(s.item.id.0.as_str())
                    .is_some_and(|o| o.item != s.item || o.also_at != s.also_at)
            })
            .cloned()
            .collect();
        let withdrawn = before
            .iter()
            .filter(|s| !new.contains_key(s.item.id.0.as_str()))
            .cloned()
            .collect();
        Ok(Preview {
            reports,
            added,
            changed,
            withdrawn,
            documents: plan.written.len() + plan.unchanged,
            rewrite: plan.written,
        })
    }

    fn with_store(cfg: Config, store: Store) -> Pipeline {
        let fetcher = Fetcher::new(&cfg.fetch, &cfg.user_agent());
        let hub = cfg
            .publish
            .websub_hub
            .clone()
            .map(|u| Hub::new(u, &cfg.user_agent()));
        Pipeline {
            cfg: Arc::new(cfg),
            store: Mutex::new(store),
            fetcher,
            hub,
            last_catalog: Mutex::new(None),
        }
    }

    /// The store, for read-only commands (`sources`, `dupes`).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions
        // roll back), so a poisoned lock is safe to reuse.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refreshes every source a manual `build` should fetch ([`RefreshMode::Manual`]).
    pub async fn refresh(&self, now: DateTime<Utc>) -> Vec<SourceReport> {
        self.refresh_with(now, RefreshMode::Manual).await
    }

    /// Refreshes the sources `mode` selects (see [`refresh::refresh`]).
    pub async fn refresh_with(&self, now: DateTime<Utc>, mode: RefreshMode) -> Vec<SourceReport> {
        let stage = refresh::Stage {
            cfg: &self.cfg,
            store: &self.store,
            fetcher: &self.fetcher,
        };
        refresh::refresh(stage, now, mode).await
    }

    /// When the daemon should next wake: the earliest due time over all sources that are
    /// still polled (a gone source waits for a config change).
    pub fn next_wakeup(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let states = self.store().source_states().unwrap_or_default();
        self.cfg
            .sources
            .iter()
            .filter_map(|s| {
                let st = states.get(s.id.as_str());
                match st {
                    Some(st) if st.is_gone_at(s.kind.url()) => None,
                    Some(st) => Some(st.next_fetch.unwrap_or(now)),
                    None => Some(now),
                }
            })
            .min()
            .unwrap_or(now + chrono::Duration::hours(1))
    }

    /// Whether outputs must be rendered again: something in the store changed since
    /// the last publish, the config changed, or the outputs are missing. A cycle of 304s
    /// answers `false`, so nothing is re-rendered or rewritten.
    pub fn needs_publish(&self) -> bool {
        // Kept in the store, not in this process (see [`UNPUBLISHED`]).
        if self.store().meta(UNPUBLISHED).ok().flatten().as_deref() != Some("0") {
            return true;
        }
        let out = &self.cfg.publish.output_dir;
        if !out.join("rss.xml").exists() || !out.join("atom.xml").exists() {
            return true;
        }
        self.store()
            .meta(PUBLISHED_CONFIG)
            .ok()
            .flatten()
            .is_none_or(|h| h != self.config_fingerprint())
    }

    fn config_fingerprint(&self) -> String {
        let text = format!("{}\n{:?}", env!("CARGO_PKG_VERSION"), self.cfg);
        blake3::hash(text.as_bytes()).to_hex().to_string()
    }

    /// Deduplication with the configured thresholds and source priorities.
    pub fn deduper(&self) -> crate::dedupe::Deduper {
        refresh::deduper(&self.cfg)
    }

    /// Every channel to publish: combined, per source, per tag, per language, and the
    /// ones the config defines.
    pub fn channels(&self) -> Result<Vec<Channel>, StoreError> {
        let cfg = &self.cfg;
        let max = cfg.publish.max_items;
        let mut out = vec![Channel {
            stem: String::new(),
            title: cfg.site.title.clone(),
            filter: ChannelFilter::default(),
            max_items: max,
        }];
        if cfg.publish.per_source {
            for s in &cfg.sources {
                out.push(Channel {
                    stem: format!("sources/{}", s.id),
                    title: format!("{} – {}", cfg.site.title, s.title),
                    filter: ChannelFilter {
                        sources: vec![s.id.clone()],
                        ..ChannelFilter::default()
                    },
                    max_items: max,
                });
            }
        }
        let store = self.store();
        if cfg.publish.per_tag {
            // Tags that differ only in case or accents share one URL (and one channel).
            // A tag gets a channel when it is named in `[tags]` or carried by at least
            // `tag_min_items` items (counted per spelling, so an item carrying two
            // spellings of one tag counts twice; that only errs towards publishing).
            let named: HashSet<String> = cfg.tags.values().map(slug::slugify).collect();
            let mut by_slug: BTreeMap<String, (Vec<String>, usize)> = BTreeMap::new();
            for (tag, n) in store.visible_tag_counts()? {
                let slug = slug::slugify(&tag);
                if !slug.is_empty() {
                    let entry = by_slug.entry(slug).or_default();
                    entry.0.push(tag);
                    entry.1 += n;
                }
            }
            for (slug, (tags, n)) in by_slug {
                if n < cfg.publish.tag_min_items && !named.contains(&slug) {
                    continue;
                }
                out.push(Channel {
                    stem: format!("tags/{slug}"),
                    title: format!("{} – {}", cfg.site.title, tags[0]),
                    filter: ChannelFilter {
                        tags,
                        ..ChannelFilter::default()
                    },
                    max_items: max,
                });
            }
        }
        if cfg.publish.per_language {
            for lang in store.visible_languages()? {
                out.push(Channel {
                    stem: format!("lang/{}", lang.to_lowercase()),
                    title: format!("{} – {lang}", cfg.site.title),
                    filter: ChannelFilter {
                        languages: vec![lang],
                        ..ChannelFilter::default()
                    },
                    max_items: max,
                });
            }
        }
        out.extend(cfg.channels.iter().cloned());
        Ok(out)
    }

    /// Renders the channels whose items changed since the last publish — subscription
    /// documents in three formats, RFC 5005 archive pages, the news page, post pages —
    /// plus OPML, the browser stylesheet and the embed script, and publishes what
    /// changed; returns the full catalog for the server (untouched channels' documents
    /// come from the last catalog). Full archive pages that reached their final form are
    /// sealed afterwards.
    pub fn publish(&self, now: DateTime<Utc>) -> Result<(Catalog, PublishReport), PipelineError> {
        self.publish_pass(now, Mode::Catalog)
    }

    /// [`Pipeline::publish`] for a one-shot `build`: writes the files of the channels
    /// that changed and holds no catalog, so memory does not grow with the number of
    /// channels or archive pages, and a build where nothing changed renders nothing.
    pub fn publish_files(&self, now: DateTime<Utc>) -> Result<PublishReport, PipelineError> {
        self.publish_pass(now, Mode::Files).map(|(_, r)| r)
    }

    /// Renders what changed; then publishes it, or (`Mode::Plan`, for `build --dry-run`)
    /// only reports in `written` what publishing would write, returning an empty catalog.
    fn publish_pass(
        &self,
        now: DateTime<Utc>,
        mode: Mode,
    ) -> Result<(Catalog, PublishReport), PipelineError> {
        let keep = mode == Mode::Catalog;
        let cfg = &self.cfg;
        let channels = self.channels()?;
        let sources: HashMap<SourceId, Source> = cfg
            .sources
            .iter()
            .map(|s| (s.id.clone(), s.clone()))
            .collect();
        let ctx = RenderCtx {
            site: &cfg.site,
            sources: &sources,
            hub: cfg.publish.websub_hub.as_ref(),
        };
        let store = self.store();
        store.ensure_archive_schema()?;
        // What changed since the last publish (recorded by the store's triggers).
        let dirty = store.publish_dirty()?;
        let digest = self.config_fingerprint();
        let previous = if keep {
            self.last_catalog
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        } else {
            None
        };
        let previous = previous.as_deref();
        // Outputs also depend on the config and on this program's renderers: when either
        // changed, everything is rendered again; so it is when a server starts without a
        // catalog in memory.
        let everything = (keep && previous.is_none())
            || store.meta(PUBLISHED_CONFIG)?.as_deref() != Some(digest.as_str());
        let mut seals: Vec<Seal> = Vec::new();
        let mut embeds: Vec<(&Channel, Vec<String>, String)> = Vec::new();
        let published = publish::publish_pass(
            &cfg.publish.output_dir,
            &store,
            now,
            mode,
            |p| -> Result<(), PipelineError> {
                for ch in &channels {
                    if !everything
                        && !dirty.affects(&ch.filter)
                        && keep_channel(&store, p, ch, previous)?
                    {
                        continue;
                    }
                    let pages = if keeps_archive(cfg.publish.archives, ch) {
                        self.archive_docs(&store, ctx, ch, p, &mut seals)?
                    } else {
                        0
                    };
                    let mut docs: Vec<Document> = Vec::new();
                    let items = Rc::new(with_source_titles(
                        store.visible_items_where(&ch.filter, ch.max_items)?,
                        &sources,
                    ));
                    let paging = Paging::Subscription {
                        prev_archive: (pages > 0).then_some(pages),
                    };
                    for f in Format::ALL {
                        docs.push(Document {
                            path: ch.path(f),
                            kind: DocKind::Feed(f),
                            content_type: f.content_type(),
                            items: Some(items.len()),
                            body: ctx.feed_body(ch, items.clone(), paging, f),
                            cache_control: FEED_CACHE,
                            reach: reach(ch),
                        });
                    }
                    let doc = ctx.doc(ch, &items, paging, now);
                    if keep {
                        embeds.push((
                            ch,
                            render::embed::list_items(&doc, cfg.site.timezone),
                            doc.language(),
                        ));
                    }
                    if ch.stem.is_empty() {
                        docs.push(Document {
                            path: "index.html".into(),
                            kind: DocKind::Html,
                            content_type: "text/html; charset=utf-8",
                            body: Body::Fixed(render::html::index(&doc, &channels)),
                            cache_control: FEED_CACHE,
                            items: None,
                            reach: Reach::Wide,
                        });
                    }
                    for d in docs {
                        p.add(d)?;
                    }
                }
                let combined = &channels[0];
                for s in cfg
                    .sources
                    .iter()
                    .filter(|s| matches!(s.kind, SourceKind::Local { .. }))
                {
                    if !everything && !dirty.sources.contains(s.id.as_str()) {
                        // Unchanged posts: a build leaves their files alone; the server
                        // keeps the pages it has.
                        let Some(prev) = previous else { continue };
                        let prefix = format!("posts/{}/", s.id);
                        for path in prev.paths().filter(|p| p.starts_with(&prefix)) {
                            p.keep_unchanged(path, previous)?;
                        }
                        continue;
                    }
                    let filter = ChannelFilter {
                        sources: vec![s.id.clone()],
                        ..ChannelFilter::default()
                    };
                    let items: Vec<StoredItem> = with_source_titles(
                        store.visible_items_where(&filter, cfg.store.max_items)?,
                        &sources,
                    );
                    let doc = ctx.doc(
                        combined,
                        &items,
                        Paging::Subscription { prev_archive: None },
                        now,
                    );
                    for it in &items {
                        let Some(slug) = it.item.id.key_in_source().map(str::to_owned) else {
                            continue;
                        };
                        let own = crate::source::local::post_url(
                            &cfg.site.base_url,
                            s.id.as_str(),
                            &slug,
                        );
                        if it.item.url.as_ref() != Some(&own) {
                            continue;
                        }
                        p.add(Document {
                            path: format!("posts/{}/{slug}.html", s.id),
                            kind: DocKind::Html,
                            content_type: "text/html; charset=utf-8",
                            body: Body::Fixed(render::html::post(&doc, it)),
                            cache_control: FEED_CACHE,
                            items: None,
                            reach: Reach::Wide,
                        })?;
                    }
                }
                let per_source: Vec<Channel> = channels
                    .iter()
                    .filter(|c| c.stem.starts_with("sources/"))
                    .cloned()
                    .collect();
                p.add(Document {
                    path: "sources.opml".into(),
                    kind: DocKind::Opml,
                    content_type: "text/x-opml; charset=utf-8",
                    body: Body::Fixed(render::opml::render(&cfg.site, &cfg.sources, &per_source)),
                    cache_control: FEED_CACHE,
                    items: None,
                    reach: Reach::Wide,
                })?;
                p.add(Document {
                    path: assets::FEED_XSL_PATH.into(),
                    kind: DocKind::Xslt,
                    content_type: "text/xsl; charset=utf-8",
                    body: Body::Fixed(assets::FEED_XSL.as_bytes().to_vec()),
                    cache_control: ASSET_CACHE,
                    items: None,
                    reach: Reach::Wide,
                })?;
                p.add(Document {
                    path: assets::EMBED_JS_PATH.into(),
                    kind: DocKind::Script,
                    content_type: "text/javascript; charset=utf-8",
                    body: Body::Fixed(
                        assets::EMBED_JS
                            .replace("__TIMEZONE__", cfg.site.timezone.name())
                            .into_bytes(),
                    ),
                    cache_control: ASSET_CACHE,
                    items: None,
                    reach: Reach::Wide,
                })?;
                // Unchanged channels keep their embed lists.
                if let Some(prev) = previous {
                    let rendered: std::collections::HashSet<&str> =
                        embeds.iter().map(|(c, ..)| c.key()).collect();
                    for ch in &channels {
                        if !rendered.contains(ch.key()) {
                            p.keep_embed(ch.key(), prev);
                        }
                    }
                }
                Ok(())
            },
        )?;
        let publish::Published {
            mut catalog,
            mut report,
            paths,
        } = published;
        if mode == Mode::Plan {
            return Ok((catalog, report));
        }
        let live: HashSet<&str> = channels.iter().map(|c| c.key()).collect();
        let archived: HashSet<&str> = channels
            .iter()
            .filter(|c| keeps_archive(cfg.publish.archives, c))
            .map(|c| c.key())
            .collect();
        if !channels
            .iter()
            .any(|c| c.stem.is_empty() && archived.contains(c.key()))
        {
            report.removed.extend(publish::remove_archive_pages(
                &cfg.publish.output_dir,
                "archive",
            ));
        }
        for dir in GENERATED_CHANNEL_DIRS {
            report.removed.extend(publish::remove_stale_channels(
                &cfg.publish.output_dir,
                dir,
                &live,
                &archived,
            ));
        }
        // From now on readers know these representatives' IDs: they never change. With
        // nothing changed, there is no new representative to mark.
        if everything || !dirty.is_empty() {
            store.mark_shown(now)?;
        }
        for seal in seals {
            let failed = report.failed.iter().any(|(p, _)| seal.paths.contains(p));
            let served = seal.paths.iter().all(|p| paths.contains_key(p));
            if !failed && served {
                store.seal_archive_page(&seal.channel, seal.page)?;
            }
        }
        for (ch, items, language) in embeds {
            let last_modified = paths.get(&ch.path(Format::Json)).copied().unwrap_or(now);
            let hash = blake3::hash(items.concat().as_bytes()).to_hex()[..16].to_owned();
            catalog.insert_embed(
                ch.key(),
                EmbedList {
                    title: ch.title.clone(),
                    language,
                    items,
                    hash,
                    last_modified,
                },
            );
        }
        store.clear_publish_dirty()?;
        store.set_meta(PUBLISHED_CONFIG, &digest)?;
        store.set_meta(UNPUBLISHED, "0")?;
        if keep {
            *self.last_catalog.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Arc::new(catalog.clone()));
        }
        Ok((catalog, report))
    }

    /// Publishes the RFC 5005 archive pages of `ch` as [`archive_plan::plan_pages`] lays
    /// them out: cuts new full pages from the items after the last page, renders pages
    /// that are not sealed yet (the open page with every item after the last full one),
    /// and keeps the sealed ones as they are on disk. Returns the number of pages. Each page goes to the
    /// publisher as soon as it is read, so one page's items are in memory at a time, not
    /// a channel's whole history (a first build of 200,000 items held them all).
    fn archive_docs<'a>(
        &self,
        store: &Store,
        ctx: RenderCtx<'a>,
        ch: &'a Channel,
        publisher: &mut publish::Publisher,
        seals: &mut Vec<Seal>,
    ) -> Result<u32, PipelineError> {
        let key = ch.key();
        let stored = store.archive_pages(key)?;
        let last_end = stored.last().map(|p| p.end.clone());
        let fresh = store.archive_cursors(&ch.filter, last_end.as_ref())?;
        let plan = archive_plan::plan_pages(
            stored.len(),
            stored.last().is_some_and(|p| p.sealed),
            &fresh,
            self.cfg.publish.archive_page_size,
            ch.max_items,
        );
        for (i, end) in plan.new_full.iter().enumerate() {
            store.add_archive_page(key, (stored.len() + i + 1) as u32, end)?;
        }
        let pages = plan.pages(stored.into_iter().map(|p| (p.end, p.sealed)));
        let count = pages.len() as u32;
        let out = &self.cfg.publish.output_dir;
        for (i, p) in pages.iter().enumerate() {
            let final_form = p.number < count;
            let paths: Vec<String> = ARCHIVE_FORMATS
                .iter()
                .map(|f| ch.archive_path(*f, p.number))
                .collect();
            let cache_control = if final_form {
                ARCHIVE_CACHE
            } else {
                FEED_CACHE
            };
            if p.sealed && paths.iter().all(|path| out.join(path).exists()) {
                for (f, path) in ARCHIVE_FORMATS.iter().zip(paths) {
                    publisher.add(Document {
                        path,
                        kind: DocKind::Archive(*f),
                        content_type: f.content_type(),
                        body: Body::Keep,
                        cache_control,
                        items: None,
                        reach: Reach::Narrow,
                    })?;
                }
                continue;
            }
            let after = i.checked_sub(1).and_then(|j| pages[j].end.as_ref());
            let mut items: Vec<StoredItem> = with_source_titles(
                store
                    .archive_items(&ch.filter, after, p.end.as_ref())?
                    .into_iter()
                    .map(|(s, _)| s)
                    .collect(),
                ctx.sources,
            );
            items.sort_by(|a, b| {
                b.item
                    .published
                    .cmp(&a.item.published)
                    .then_with(|| a.item.id.cmp(&b.item.id))
            });
            let items = Rc::new(items);
            let paging = Paging::Archive {
                page: p.number,
                pages: count,
            };
            for (f, path) in ARCHIVE_FORMATS.iter().zip(paths.iter()) {
                publisher.add(Document {
                    path: path.clone(),
                    kind: DocKind::Archive(*f),
                    content_type: f.content_type(),
                    items: Some(items.len()),
                    body: ctx.feed_body(ch, items.clone(), paging, *f),
                    cache_control,
                    reach: Reach::Narrow,
                })?;
            }
            if final_form {
                seals.push(Seal {
                    channel: key.to_owned(),
                    page: p.number,
                    paths,
                });
            }
        }
        Ok(count)
    }

    /// Tells the WebSub hub (if one is configured) which subscription feeds changed.
    pub async fn announce(&self, report: &PublishReport) -> Vec<WebSubError> {
        let Some(hub) = &self.hub else {
            return Vec::new();
        };
        let topics: Vec<Url> = report
            .changed_feeds
            .iter()
            .filter_map(|p| self.cfg.site.base_url.join(p).ok())
            .collect();
        if topics.is_empty() {
            return Vec::new();
        }
        hub.ping(&topics).await
    }

    pub fn output_dir(&self) -> &Path {
        &self.cfg.publish.output_dir
    }
}

/// Keeps every document of a channel none of whose items changed (its subscription
/// documents, archive pages, news page and embed list), if all of them can be kept.
fn keep_channel(
    store: &Store,
    p: &mut publish::Publisher,
    ch: &Channel,
    previous: Option<&Catalog>,
) -> Result<bool, PipelineError> {
    let mut paths: Vec<String> = Format::ALL.iter().map(|f| ch.path(*f)).collect();
    if ch.stem.is_empty() {
        paths.push("index.html".into());
    }
    let stored = store.archive_pages(ch.key())?;
    for page in &stored {
        paths.extend(
            ARCHIVE_FORMATS
                .iter()
                .map(|f| ch.archive_path(*f, page.page)),
        );
    }
    for path in &paths {
        if !p.can_keep(path, previous)? {
            return Ok(false);
        }
    }
    if p.keeps_catalog() && previous.and_then(|c| c.embed(ch.key())).is_none() {
        return Ok(false);
    }
    // The open page after the full ones, when the last publish had one.
    let open = stored.len() as u32 + 1;
    for f in ARCHIVE_FORMATS {
        let path = ch.archive_path(f, open);
        if p.can_keep(&path, previous)? {
            paths.push(path);
        }
    }
    for path in &paths {
        p.keep_unchanged(path, previous)?;
    }
    Ok(true)
}

/// Cache lifetimes: subscription documents change every few minutes at most; a sealed
/// archive page never changes; stylesheet and script change with releases.
const FEED_CACHE: &str = "public, max-age=300";
const ARCHIVE_CACHE: &str = "public, max-age=31536000, immutable";
const ASSET_CACHE: &str = "public, max-age=86400";

/// How widely a channel's subscription documents are read (see [`Reach`]): the combined
/// channel and the `[[channel]]`s the site defines are its front door; the generated
/// per-source, per-tag and per-language channels are many, each with few readers.
fn reach(ch: &Channel) -> Reach {
    let generated = ["sources/", "tags/", "lang/"]
        .iter()
        .any(|prefix| ch.stem.starts_with(prefix));
    if generated {
        Reach::Narrow
    } else {
        Reach::Wide
    }
}

/// The directories whose channels come and go with the data or the config; files of a
/// channel no longer published are removed from them after each publish.
const GENERATED_CHANNEL_DIRS: [&str; 4] = ["sources", "tags", "lang", "channels"];

/// Whether `ch` has RFC 5005 archive pages under `publish.archives`.
fn keeps_archive(archives: Archives, ch: &Channel) -> bool {
    match archives {
        Archives::All => true,
        Archives::None => false,
        Archives::Combined => ch.stem.is_empty() || ch.stem.starts_with("channels/"),
    }
}

/// Archive pages exist in the formats that have RFC 5005 paging links.
const ARCHIVE_FORMATS: [Format; 2] = [Format::Rss, Format::Atom];

/// An archive page to seal once its final bytes are published.
struct Seal {
    channel: String,
    page: u32,
    paths: Vec<String>,
}

/// What every channel document shares, copied into each render closure.
#[derive(Clone, Copy)]
struct RenderCtx<'a> {
    site: &'a Site,
    sources: &'a HashMap<SourceId, Source>,
    hub: Option<&'a Url>,
}

impl<'a> RenderCtx<'a> {
    fn doc<'d>(
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

    /// A feed document whose date is filled in by `publish` (see [`Body::Dated`]).
    fn feed_body(
        self,
        channel: &'a Channel,
        items: Rc<Vec<StoredItem>>,
        paging: Paging,
        format: Format,
    ) -> Body<'a> {
        Body::Dated(Box::new(move |updated| {
            render::render(&self.doc(channel, &items, paging, updated), format)
        }))
    }
}

/// The RFC 4151 tagging entity for published IDs: the site's host and `site.id_date`.
fn authority(cfg: &Config) -> String {
    let host = cfg.site.base_url.host_str().unwrap_or("localhost");
    crate::identity::tagging_entity(host, cfg.site.id_date)
}

/// Provenance names the other sources by their configured titles ("Efus – …"), not IDs.
fn with_source_titles(
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
