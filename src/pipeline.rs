//! The conductor: the one module that knows the order of the stages. A cycle reads
//! top to bottom — open the store, [`Pipeline::refresh_with`] (the `refresh` stage:
//! sources → fetch → parse → normalise → dedupe → store), [`Pipeline::publish`] (the
//! `publish` stage: store → render → files and catalog), [`Pipeline::upload`] (the
//! output directory → object storage, when configured), [`Pipeline::announce`] (WebSub),
//! and [`Pipeline::next_wakeup`] — each a call into its stage with what that stage
//! needs (the config, the store, the fetcher), never this type.
//!
//! `feedwerk build` runs one refresh and one publish; the daemon runs them on its
//! schedule. A broken source or post is data in the report, never a reason to stop the
//! others. What the stages do is theirs: this module holds no stage's work.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use crate::catalog::Catalog;
use crate::config::{Config, StoreLocation};
use crate::fetch::Fetcher;
use crate::model::SourceReport;
use crate::publish::{self, Mode, Preview, PublishReport};
use crate::refresh;
pub use crate::refresh::RefreshMode;
use crate::store::postgres::PgStore;
use crate::store::{Backend, Store, StoreError, PUBLISHED_CONFIG, UNPUBLISHED};
use crate::upload::{self, UploadReport};
use crate::websub::{Hub, WebSubError};

/// Everything a cycle needs: config, store, HTTP client.
pub struct Pipeline {
    pub cfg: Arc<Config>,
    store: Mutex<Box<dyn Backend>>,
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
    /// Opens the configured store (`store.path` or `store.url`) and a pipeline over it.
    pub fn open(cfg: Config) -> Result<Pipeline, StoreError> {
        let authority = publish::authority(&cfg);
        let store: Box<dyn Backend> = match &cfg.store.location {
            StoreLocation::Sqlite(path) => Box::new(Store::open(path, &authority)?),
            StoreLocation::Postgres(url) => Box::new(PgStore::open(
                url,
                cfg.store.ca_file.as_deref(),
                &authority,
            )?),
        };
        Ok(Pipeline::with_store(cfg, store))
    }

    /// A pipeline over a private in-memory copy of the store, for `build --dry-run`:
    /// refreshing it fetches for real but writes nothing to the store file. Refused on
    /// PostgreSQL ([`StoreError::DryRunOnPostgres`]): a shared database has no private
    /// copy to refresh.
    pub fn open_dry_run(cfg: Config) -> Result<Pipeline, StoreError> {
        let path = match &cfg.store.location {
            StoreLocation::Sqlite(path) => path,
            StoreLocation::Postgres(url) => {
                return Err(StoreError::DryRunOnPostgres {
                    url: url.to_string(),
                })
            }
        };
        let store = Store::snapshot(path, &publish::authority(&cfg))?;
        Ok(Pipeline::with_store(cfg, Box::new(store)))
    }

    /// Runs a refresh against a private in-memory copy of the store and reports what the
    /// next publish would add, change and withdraw, and (with `publish.target`) what it
    /// would upload and delete there. Partners are fetched for real (with the stored
    /// validators), but neither the store file nor any output is written, and the
    /// target is not contacted.
    pub async fn preview(
        cfg: Config,
        now: DateTime<Utc>,
    ) -> Result<(Preview, Option<upload::DryRun>), PipelineError> {
        let p = Pipeline::open_dry_run(cfg)?;
        let max = p.cfg.publish.max_items;
        let before = p.store().visible_items(max)?;
        let reports = p.refresh(now).await;
        let after = p.store().visible_items(max)?;
        let (_, plan) = p.publish_pass(now, Mode::Plan)?;
        let remote = match &p.cfg.publish.target {
            Some(t) => Some(upload::dry_run(
                &**p.store(),
                t,
                &p.cfg.publish.output_dir,
                &plan.written,
            )?),
            None => None,
        };
        Ok((Preview::new(reports, &before, &after, plan), remote))
    }

    /// A pipeline over `store` (the daemon opens a leader's fenced store itself).
    pub fn with_store(cfg: Config, store: Box<dyn Backend>) -> Pipeline {
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
    pub fn store(&self) -> MutexGuard<'_, Box<dyn Backend>> {
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
            .is_none_or(|h| h != publish::config_fingerprint(&self.cfg))
    }

    /// Publishes what changed since the last publish (see [`publish::run`]) and returns
    /// the full catalog for the server; keeps it, so the next publish can keep the
    /// documents of channels that did not change.
    pub fn publish(&self, now: DateTime<Utc>) -> Result<(Catalog, PublishReport), PipelineError> {
        self.publish_pass(now, Mode::Catalog)
    }

    /// [`Pipeline::publish`] for a one-shot `build`: writes the files of the channels
    /// that changed and holds no catalog ([`Mode::Files`]).
    pub fn publish_files(&self, now: DateTime<Utc>) -> Result<PublishReport, PipelineError> {
        self.publish_pass(now, Mode::Files).map(|(_, r)| r)
    }

    fn publish_pass(
        &self,
        now: DateTime<Utc>,
        mode: Mode,
    ) -> Result<(Catalog, PublishReport), PipelineError> {
        let last = self
            .last_catalog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let store = self.store();
        let (catalog, report) = publish::run(&self.cfg, &**store, now, mode, last.as_deref())?;
        if mode == Mode::Catalog {
            *self.last_catalog.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Arc::new(catalog.clone()));
        }
        Ok((catalog, report))
    }

    /// Uploads what changed in the output directory to `publish.target`, if one is
    /// configured (see [`upload::sync`]); runs after a publish, or after a cycle with
    /// nothing to publish, so a failed upload is retried even when nothing changed.
    pub async fn upload(&self, now: DateTime<Utc>, retry: upload::Retry) -> Option<UploadReport> {
        let t = self.cfg.publish.target.as_ref()?;
        Some(upload::sync(t, &self.store, &self.cfg.publish.output_dir, now, retry).await)
    }

    /// Tells the WebSub hub (if one is configured) which subscription feeds changed.
    pub async fn announce(&self, report: &PublishReport) -> Vec<WebSubError> {
        publish::announce(self.hub.as_ref(), &self.cfg.site.base_url, report).await
    }

    pub fn output_dir(&self) -> &Path {
        &self.cfg.publish.output_dir
    }
}
