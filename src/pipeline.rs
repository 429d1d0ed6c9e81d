//! The one module that knows the order of the stages:
//! sources → fetch → decode/parse → normalise → dedupe → store → render → publish.
//!
//! `feedwerk build` runs one [`Pipeline::refresh`] and one [`Pipeline::publish`]; the
//! daemon runs them on its schedule. A broken source or post is data in the report,
//! never a reason to stop the others.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use url::Url;

use crate::config::Config;
use crate::config::Site;
use crate::fetch::{FetchError, FetchOutcome, Fetcher, Validators};
use crate::model::{
    Channel, ChannelFilter, Format, Item, ParsedFeed, Source, SourceId, SourceKind,
};
use crate::normalise::{self, Context};
use crate::publish::{self, Body, Catalog, Document, EmbedList, PublishReport};
use crate::render::{self, assets, DocKind, FeedDoc, Paging};
use crate::source;
use crate::store::archive::ArchivePage;
use crate::store::{SourceState, Store, StoreError, StoredItem};
use crate::websub::{Hub, WebSubError};

/// How one source's refresh ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceStatus {
    /// Fetched (or read) and stored.
    Updated {
        items: usize,
        new: usize,
        changed: usize,
    },
    /// The partner answered 304.
    NotModified,
    /// Not fetched this time (gone, or waiting out a back-off).
    Skipped(String),
    /// Fetch or parse failed; the items held stay published.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceReport {
    pub id: SourceId,
    pub status: SourceStatus,
    /// Problems with single posts or entries (file and line, item), the rest published.
    pub problems: Vec<String>,
    /// A permanent redirect was followed: the operator should update the config.
    pub moved_to: Option<String>,
    /// Wall time from the start of the fetch (or directory read) to the stored result.
    pub elapsed: Duration,
}

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
        let (_, plan) = p.render(now, Finish::Plan)?;
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
        }
    }

    /// The store, for read-only commands (`sources`, `dupes`).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions
        // roll back), so a poisoned lock is safe to reuse.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refreshes every configured source: fetches concurrently, then stores each
    /// source's items in its own transaction.
    pub async fn refresh(&self, now: DateTime<Utc>) -> Vec<SourceReport> {
        let sources: Vec<Source> = self.cfg.sources.clone();
        let configured: Vec<SourceId> = sources.iter().map(|s| s.id.clone()).collect();
        match self.store().withdraw_unconfigured(&configured) {
            Ok(0) => {}
            Ok(n) => tracing::info!("withdrew {n} items of sources no longer configured"),
            Err(e) => tracing::error!(error = %e, "cannot withdraw items of removed sources"),
        }
        let deadline = self.cfg.fetch.timeout + Duration::from_secs(5);
        let fetched: Vec<(Source, Result<Fetch, SourceReport>, Instant)> = stream::iter(sources)
            .map(|s| async move {
                let started = Instant::now();
                let r = tokio::time::timeout(deadline, self.acquire(&s)).await;
                let r = r.unwrap_or_else(|_| {
                    Err(report(
                        &s.id,
                        SourceStatus::Failed(format!(
                            "{}: no answer within {}s",
                            s.id,
                            deadline.as_secs()
                        )),
                    ))
                });
                (s, r, started)
            })
            .buffer_unordered(self.cfg.fetch.concurrency)
            .collect()
            .await;
        let mut reports: Vec<SourceReport> = fetched
            .into_iter()
            .map(|(s, r, started)| {
                let mut rep = match r {
                    Ok(f) => self.ingest(&s, f, now),
                    Err(rep) => {
                        self.record_failure(&s, &rep, now);
                        rep
                    }
                };
                rep.elapsed = started.elapsed();
                rep
            })
            .collect();
        reports.sort_by(|a, b| a.id.cmp(&b.id));
        let keep = self.cfg.store.max_items;
        let age = self
            .cfg
            .store
            .max_age
            .and_then(|d| chrono::Duration::from_std(d).ok());
        if let Err(e) = self.store().prune(keep, age, now) {
            tracing::error!(error = %e, "pruning the store failed");
        }
        reports
    }

    /// Reads or fetches one source's raw material.
    async fn acquire(&self, s: &Source) -> Result<Fetch, SourceReport> {
        match &s.kind {
            SourceKind::Local { path } => Ok(Fetch::Local(path.clone())),
            SourceKind::Feed { url } | SourceKind::Page { url, .. } => {
                let state = self
                    .store()
                    .source_state(&s.id)
                    .map_err(|e| report(&s.id, SourceStatus::Failed(e.to_string())))?;
                let same_url = state.url.as_deref() == Some(url.as_str());
                if state.gone && same_url {
                    return Err(report(
                        &s.id,
                        SourceStatus::Skipped(format!(
                            "{url}: gone (HTTP 410); change the config to poll again"
                        )),
                    ));
                }
                let validators = if same_url {
                    Validators {
                        etag: state.etag.clone(),
                        last_modified: state.last_modified.clone(),
                    }
                } else {
                    Validators::default()
                };
                match self.fetcher.fetch(url, &validators).await {
                    Ok(o) => Ok(Fetch::Remote(o)),
                    Err(e) => {
                        let mut r = report(&s.id, SourceStatus::Failed(e.to_string()));
                        if matches!(e, FetchError::Gone { .. }) {
                            r.problems.push("gone".into());
                        }
                        Err(r)
                    }
                }
            }
        }
    }

    fn record_failure(&self, s: &Source, rep: &SourceReport, now: DateTime<Utc>) {
        let SourceStatus::Failed(msg) = &rep.status else {
            return;
        };
        let store = self.store();
        let mut st = store.source_state(&s.id).unwrap_or_default();
        st.id = s.id.to_string();
        st.url = s.kind.url().map(|u| u.to_string());
        st.last_attempt = Some(now);
        st.last_status = Some("error".into());
        st.last_error = Some(msg.clone());
        st.consecutive_failures += 1;
        st.fetch_count += 1;
        st.gone = rep.problems.iter().any(|p| p == "gone");
        if let Err(e) = store.save_source_state(&st) {
            tracing::error!(source = %s.id, error = %e, "cannot record failure");
        }
        tracing::warn!(source = %s.id, error = %msg, failures = st.consecutive_failures, "source failed; its items stay published");
    }

    /// Parses, normalises and stores what one source delivered.
    fn ingest(&self, s: &Source, f: Fetch, now: DateTime<Utc>) -> SourceReport {
        let mut rep = report(&s.id, SourceStatus::NotModified);
        let (parsed, fetch_state) = match f {
            Fetch::Local(path) => {
                let (posts, errors) = source::local::read_dir(
                    &path,
                    s.id.as_str(),
                    &self.cfg.site.base_url,
                    s.timezone,
                );
                for e in &errors {
                    tracing::error!(source = %s.id, "{e}");
                }
                rep.problems.extend(errors.iter().map(ToString::to_string));
                let entries = posts
                    .into_iter()
                    .filter(|p| !p.draft)
                    .map(|p| p.entry)
                    .collect();
                (
                    ParsedFeed {
                        format: "local".into(),
                        language: s.language.clone(),
                        entries,
                        ..ParsedFeed::default()
                    },
                    None,
                )
            }
            Fetch::Remote(FetchOutcome::NotModified { .. }) => {
                let store = self.store();
                let mut st = store.source_state(&s.id).unwrap_or_default();
                st.last_attempt = Some(now);
                st.last_success = Some(now);
                st.last_status = Some("304 not modified".into());
                st.last_error = None;
                st.consecutive_failures = 0;
                st.fetch_count += 1;
                if let Err(e) = store.save_source_state(&st) {
                    rep.status = SourceStatus::Failed(e.to_string());
                }
                return rep;
            }
            Fetch::Remote(FetchOutcome::Fetched(fetched)) => {
                let origin = s.kind.url().map(|u| u.to_string()).unwrap_or_default();
                let parsed = source::parse_remote(
                    s,
                    &fetched.body,
                    fetched.charset.as_deref(),
                    &fetched.final_url,
                    &origin,
                )
                .map(|(parsed, _)| parsed)
                .map_err(|e| e.to_string());
                match parsed {
                    Ok(p) => (p, Some(fetched)),
                    Err(msg) => {
                        rep.status = SourceStatus::Failed(msg);
                        self.record_failure(s, &rep, now);
                        return rep;
                    }
                }
            }
        };
        rep.problems.extend(parsed.problems.iter().cloned());
        let back_catalogue = self.back_catalogue(s);
        let ctx = Context {
            source: s,
            feed_link: parsed.link.as_ref(),
            feed_language: parsed.language.as_deref(),
            tag_map: &self.cfg.tags,
            now,
            back_catalogue,
        };
        let (mut items, errors): (Vec<Item>, _) = normalise::normalise_all(&parsed.entries, &ctx);
        rep.problems.extend(errors.iter().map(ToString::to_string));
        // A post or entry we could not read is still at its source: retracting its held
        // copy would be wrong, so retractions wait for a clean read.
        let clean_read = rep.problems.is_empty();
        let same_guid = crate::dedupe::collapse_same_id(&mut items);
        if same_guid > 0 {
            rep.problems.push(format!(
                "{same_guid} entries repeat the GUID of an earlier entry in the same document; kept the first"
            ));
        }
        let count = items.len();
        let deduper = self.deduper();
        let whole_set = matches!(s.kind, SourceKind::Local { .. });
        let mut store = self.store();
        match store.remap_churned_ids(&s.id, &mut items, now) {
            Ok(churn) if churn.is_event() => {
                tracing::warn!(source = %s.id, "{churn}");
                rep.problems.push(churn.to_string());
            }
            Ok(_) => {}
            Err(e) => {
                rep.status = SourceStatus::Failed(e.to_string());
                return rep;
            }
        }
        let present: Vec<crate::model::ItemId> = items.iter().map(|i| i.id.clone()).collect();
        let result =
            store.upsert_source_items(&s.id, items, now, |conn, item| deduper.decide(conn, item));
        match result {
            Ok(u) => {
                rep.status = SourceStatus::Updated {
                    items: count,
                    new: u.new,
                    changed: u.changed,
                };
            }
            Err(e) => {
                rep.status = SourceStatus::Failed(e.to_string());
                return rep;
            }
        }
        let withdrawn = if clean_read {
            store.withdraw_missing(&s.id, &present, whole_set, now)
        } else {
            Ok(Vec::new())
        };
        match withdrawn {
            Ok(gone) => {
                for (id, title) in gone {
                    tracing::info!(source = %s.id, item = %id, "retracted by its source: withdrawn");
                    rep.problems
                        .push(format!("retracted: {title} ({id}) withdrawn"));
                }
            }
            Err(e) => {
                rep.status = SourceStatus::Failed(e.to_string());
                return rep;
            }
        }
        if let Some(f) = fetch_state {
            let mut st: SourceState = store.source_state(&s.id).unwrap_or_default();
            st.id = s.id.to_string();
            st.url = s.kind.url().map(|u| u.to_string());
            st.etag = f.validators.etag;
            st.last_modified = f.validators.last_modified;
            st.last_attempt = Some(now);
            st.last_success = Some(now);
            st.last_status = Some("200 ok".into());
            st.last_error = None;
            st.consecutive_failures = 0;
            st.fetch_count += 1;
            st.gone = false;
            st.moved_to = f.moved_permanently.map(|u| u.to_string());
            if let Some(m) = &st.moved_to {
                tracing::warn!(source = %s.id, "moved permanently to {m}; update the config");
                rep.moved_to = Some(m.clone());
            }
            if let Err(e) = store.save_source_state(&st) {
                rep.status = SourceStatus::Failed(e.to_string());
            }
        }
        rep
    }

    /// On a source's first ingest (nothing of it stored yet), where its undated items go:
    /// below the oldest item the combined feed shows now (see `normalise::normalise_all`).
    fn back_catalogue(&self, s: &Source) -> Option<normalise::BackCatalogue> {
        let store = self.store();
        let held = store
            .source_state(&s.id)
            .map(|st| st.items_held)
            .unwrap_or(0);
        if held > 0 {
            return None;
        }
        let window = store
            .visible_items(self.cfg.publish.max_items)
            .unwrap_or_default();
        Some(normalise::BackCatalogue {
            below: window.last().map(|i| i.item.published),
        })
    }

    /// Deduplication with the configured thresholds and source priorities.
    pub fn deduper(&self) -> crate::dedupe::Deduper {
        crate::dedupe::Deduper::new(
            self.cfg.dedupe.clone(),
            self.cfg
                .sources
                .iter()
                .map(|s| (s.id.clone(), s.priority))
                .collect(),
        )
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
            let mut by_slug: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for tag in store.visible_tags()? {
                let slug = slug::slugify(&tag);
                if !slug.is_empty() {
                    by_slug.entry(slug).or_default().push(tag);
                }
            }
            for (slug, tags) in by_slug {
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

    /// Renders every channel from the store — subscription documents in three formats,
    /// RFC 5005 archive pages, the news page, post pages, OPML, the browser stylesheet
    /// and the embed script — and publishes what changed. Full archive pages that
    /// reached their final form are sealed afterwards.
    pub fn publish(&self, now: DateTime<Utc>) -> Result<(Catalog, PublishReport), PipelineError> {
        self.render(now, Finish::Publish)
    }

    /// Renders everything; then publishes it, or (`Finish::Plan`, for `build --dry-run`)
    /// only reports in `written` what publishing would write, returning an empty catalog.
    fn render(
        &self,
        now: DateTime<Utc>,
        finish: Finish,
    ) -> Result<(Catalog, PublishReport), PipelineError> {
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
        let mut docs: Vec<Document> = Vec::new();
        let mut seals: Vec<Seal> = Vec::new();
        let mut embeds: Vec<(&Channel, Vec<String>, String)> = Vec::new();
        for ch in &channels {
            let pages = self.archive_docs(&store, ctx, ch, &mut docs, &mut seals)?;
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
                });
            }
            let doc = ctx.doc(ch, &items, paging, now);
            embeds.push((
                ch,
                render::embed::list_items(&doc, cfg.site.timezone),
                doc.language(),
            ));
            if ch.stem.is_empty() {
                docs.push(Document {
                    path: "index.html".into(),
                    kind: DocKind::Html,
                    content_type: "text/html; charset=utf-8",
                    body: Body::Fixed(render::html::index(&doc, &channels)),
                    cache_control: FEED_CACHE,
                    items: None,
                });
            }
        }
        let combined = &channels[0];
        for s in cfg
            .sources
            .iter()
            .filter(|s| matches!(s.kind, SourceKind::Local { .. }))
        {
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
                let Some(slug) = it.item.id.0.split_once(':').map(|(_, k)| k.to_owned()) else {
                    continue;
                };
                let own = crate::source::local::post_url(&cfg.site.base_url, s.id.as_str(), &slug);
                if it.item.url.as_ref() != Some(&own) {
                    continue;
                }
                docs.push(Document {
                    path: format!("posts/{}/{slug}.html", s.id),
                    kind: DocKind::Html,
                    content_type: "text/html; charset=utf-8",
                    body: Body::Fixed(render::html::post(&doc, it)),
                    cache_control: FEED_CACHE,
                    items: None,
                });
            }
        }
        let per_source: Vec<Channel> = channels
            .iter()
            .filter(|c| c.stem.starts_with("sources/"))
            .cloned()
            .collect();
        docs.push(Document {
            path: "sources.opml".into(),
            kind: DocKind::Opml,
            content_type: "text/x-opml; charset=utf-8",
            body: Body::Fixed(render::opml::render(&cfg.site, &cfg.sources, &per_source)),
            cache_control: FEED_CACHE,
            items: None,
        });
        docs.push(Document {
            path: assets::FEED_XSL_PATH.into(),
            kind: DocKind::Xslt,
            content_type: "text/xsl; charset=utf-8",
            body: Body::Fixed(assets::FEED_XSL.as_bytes().to_vec()),
            cache_control: ASSET_CACHE,
            items: None,
        });
        docs.push(Document {
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
        });
        if let Finish::Plan = finish {
            let total = docs.len();
            let written = publish::plan(&cfg.publish.output_dir, &docs, &store, now)?;
            let report = PublishReport {
                unchanged: total - written.len(),
                written,
                ..PublishReport::default()
            };
            return Ok((Catalog::default(), report));
        }
        let (mut catalog, report) = publish::publish(&cfg.publish.output_dir, docs, &store, now)?;
        // From now on readers know these representatives' IDs: they never change.
        store.mark_shown(now)?;
        for seal in seals {
            let failed = report.failed.iter().any(|(p, _)| seal.paths.contains(p));
            let served = seal.paths.iter().all(|p| catalog.get(p).is_some());
            if !failed && served {
                store.seal_archive_page(&seal.channel, seal.page)?;
            }
        }
        for (ch, items, language) in embeds {
            let last_modified = catalog
                .get(&ch.path(Format::Json))
                .map(|d| d.last_modified)
                .unwrap_or(now);
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
        Ok((catalog, report))
    }

    /// Adds the RFC 5005 archive pages of `ch` to `docs`: cuts new full pages from the
    /// items after the last page, renders pages that are not sealed yet, and keeps the
    /// sealed ones as they are on disk. Returns the number of pages.
    fn archive_docs<'a>(
        &self,
        store: &Store,
        ctx: RenderCtx<'a>,
        ch: &'a Channel,
        docs: &mut Vec<Document<'a>>,
        seals: &mut Vec<Seal>,
    ) -> Result<u32, StoreError> {
        let size = self.cfg.publish.archive_page_size;
        let key = ch.key();
        let mut pages = store.archive_pages(key)?;
        let last_end = pages.last().map(|p| p.end.clone());
        let fresh = store.archive_items(&ch.filter, last_end.as_ref(), None)?;
        for chunk in fresh.chunks_exact(size) {
            let page = pages.len() as u32 + 1;
            let end = chunk[size - 1].1.clone();
            store.add_archive_page(key, page, &end)?;
            pages.push(ArchivePage {
                page,
                end,
                sealed: false,
            });
        }
        let count = pages.len() as u32;
        let out = &self.cfg.publish.output_dir;
        for (i, p) in pages.iter().enumerate() {
            let final_form = p.page < count;
            let paths: Vec<String> = ARCHIVE_FORMATS
                .iter()
                .map(|f| ch.archive_path(*f, p.page))
                .collect();
            let cache_control = if final_form {
                ARCHIVE_CACHE
            } else {
                FEED_CACHE
            };
            if p.sealed && paths.iter().all(|path| out.join(path).exists()) {
                for (f, path) in ARCHIVE_FORMATS.iter().zip(paths) {
                    docs.push(Document {
                        path,
                        kind: DocKind::Archive(*f),
                        content_type: f.content_type(),
                        body: Body::Keep,
                        cache_control,
                        items: None,
                    });
                }
                continue;
            }
            let after = i.checked_sub(1).map(|j| &pages[j].end);
            let mut items: Vec<StoredItem> = with_source_titles(
                store
                    .archive_items(&ch.filter, after, Some(&p.end))?
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
                page: p.page,
                pages: count,
            };
            for (f, path) in ARCHIVE_FORMATS.iter().zip(paths.iter()) {
                docs.push(Document {
                    path: path.clone(),
                    kind: DocKind::Archive(*f),
                    content_type: f.content_type(),
                    items: Some(items.len()),
                    body: ctx.feed_body(ch, items.clone(), paging, *f),
                    cache_control,
                });
            }
            if final_form {
                seals.push(Seal {
                    channel: key.to_owned(),
                    page: p.page,
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

/// Cache lifetimes: subscription documents change every few minutes at most; a sealed
/// archive page never changes; stylesheet and script change with releases.
const FEED_CACHE: &str = "public, max-age=300";
const ARCHIVE_CACHE: &str = "public, max-age=31536000, immutable";
const ASSET_CACHE: &str = "public, max-age=86400";

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

/// What [`Pipeline::render`] does with the documents.
enum Finish {
    Publish,
    Plan,
}

/// The tag-URI authority for published IDs: the site's host.
fn authority(cfg: &Config) -> String {
    cfg.site
        .base_url
        .host_str()
        .unwrap_or("localhost")
        .to_owned()
}

enum Fetch {
    Local(std::path::PathBuf),
    Remote(FetchOutcome),
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

fn report(id: &SourceId, status: SourceStatus) -> SourceReport {
    SourceReport {
        id: id.clone(),
        status,
        problems: Vec::new(),
        moved_to: None,
        elapsed: Duration::ZERO,
    }
}
