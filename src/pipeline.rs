//! The one module that knows the order of the stages:
//! sources → fetch → decode/parse → normalise → dedupe → store → render → publish.
//!
//! `feedwerk build` runs one [`Pipeline::refresh`] and one [`Pipeline::publish`]; the
//! daemon runs them on its schedule. A broken source or post is data in the report,
//! never a reason to stop the others.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

use crate::archive_plan;
use crate::config::Site;
use crate::config::{Archives, Config};
use crate::fetch::{self, FetchError, FetchOutcome, Fetcher, Validators};
use crate::model::{
    Channel, ChannelFilter, Format, Item, ParsedFeed, Source, SourceId, SourceKind,
};
use crate::normalise::{self, Context};
use crate::publish::{self, Body, Catalog, Document, EmbedList, Mode, PublishReport, Reach};
use crate::reading;
use crate::render::{self, assets, DocKind, FeedDoc, Paging};
use crate::schedule::{self, NextFetch, Outcome, Politeness};
use crate::source;
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
    /// The catalog of the last publish, whose untouched documents the next one keeps.
    last_catalog: Mutex<Option<Arc<Catalog>>>,
}

/// Which sources a refresh fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshMode {
    /// Only sources whose next fetch time has come (the daemon; `build --due-only` for
    /// deployments that run `build` from a timer).
    Due,
    /// Every source except those a partner or our back-off paused (`build`): an operator
    /// asking for a build wants fresh data, but a failing or rate-limiting partner is
    /// still left alone until its pause ends.
    Manual,
    /// Every source now, pauses ignored (`build --force`). A source gone with HTTP 410
    /// still waits for its URL to change in the config.
    Force,
}

/// The meta key holding the config fingerprint of the last publish.
const PUBLISHED_CONFIG: &str = "published_config";
/// The meta key that is "1" while the store holds changes not yet published.
const UNPUBLISHED: &str = "unpublished_changes";

/// Notes that the outputs no longer show what the store holds.
fn note_changed(store: &Store) {
    if let Err(e) = store.set_meta(UNPUBLISHED, "1") {
        tracing::error!(error = %e, "cannot note a change for the next publish");
    }
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

    /// `now`, moved past the newest `first_seen` held when a previous cycle ran in the
    /// same second (or the clock stepped back). Archive pages and "new since" order items
    /// by (`first_seen`, id) in whole seconds: an item of a later cycle must never sort
    /// before one of an earlier cycle, or it would fall inside a sealed archive page and
    /// never be published there.
    fn monotonic_now(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self.store().latest_first_seen() {
            Ok(Some(latest)) if latest.timestamp() >= now.timestamp() => {
                latest + chrono::Duration::seconds(1)
            }
            _ => now,
        }
    }

    /// Refreshes the sources `mode` selects: fetches them concurrently (one request at a
    /// time per host, at most `fetch.concurrency` in all, each within its own timeout and
    /// the whole run within `fetch.deadline`), then stores each source's items in its own
    /// transaction and every source's fetch state in one more.
    pub async fn refresh_with(&self, now: DateTime<Utc>, mode: RefreshMode) -> Vec<SourceReport> {
        let started = tokio::time::Instant::now();
        let now = self.monotonic_now(now);
        let configured: Vec<SourceId> = self.cfg.sources.iter().map(|s| s.id.clone()).collect();
        let withdrawn = self.store().withdraw_unconfigured(&configured);
        match withdrawn {
            Ok(0) => {}
            Ok(n) => {
                note_changed(&self.store());
                tracing::info!("withdrew {n} items of sources no longer configured");
            }
            Err(e) => tracing::error!(error = %e, "cannot withdraw items of removed sources"),
        }
        let states = match self.store().source_states() {
            Ok(s) => s,
            Err(e) => {
                return self
                    .cfg
                    .sources
                    .iter()
                    .map(|s| report(&s.id, SourceStatus::Failed(e.to_string())))
                    .collect();
            }
        };
        let readings = self.store().reading_fingerprints().unwrap_or_default();
        let mut reports = Vec::new();
        let mut due: Vec<(Source, SourceState)> = Vec::new();
        for s in &self.cfg.sources {
            let mut st = states.get(s.id.as_str()).cloned().unwrap_or_default();
            // Read with other settings than the config's now: fetch it now, without
            // validators, so a 304 cannot keep the items as the old settings made them.
            let stale = readings.get(s.id.as_str()) != Some(&reading::fingerprint(s, &self.cfg));
            if stale {
                st.etag = None;
                st.last_modified = None;
            }
            // Its schedule waits, but a back-off, a Retry-After or a 410 still holds.
            let paused = st.consecutive_failures > 0 || is_gone(s, &st);
            let skip = skip_reason(s, &st, now, mode).filter(|_| !stale || paused);
            match skip {
                Some(why) => {
                    if st.consecutive_failures > 0 || is_gone(s, &st) {
                        // Still broken, only not asked this time: keep saying so.
                        tracing::warn!(source = %s.id, "{why}");
                    }
                    reports.push(report(&s.id, SourceStatus::Skipped(why)));
                }
                None => due.push((s.clone(), st)),
            }
        }
        let global = Arc::new(Semaphore::new(self.cfg.fetch.concurrency.max(1)));
        let mut hosts: HashMap<String, Arc<Semaphore>> = HashMap::new();
        for (s, _) in &due {
            if let Some(u) = s.kind.url() {
                hosts.entry(fetch::host_key(u)).or_insert_with(|| {
                    Arc::new(Semaphore::new(self.cfg.fetch.per_host_concurrency.max(1)))
                });
            }
        }
        let run_deadline = started + self.cfg.fetch.deadline;
        let n = due.len().max(1);
        let progress = crate::progress::Refresh::begin(due.len());
        // Undated back catalogue of a source seen for the first time goes below the
        // oldest item the combined feed showed when this refresh began: read once, so
        // parsing can run on worker threads without the store (see `normalise_all`).
        let below = if due.iter().any(|(_, st)| st.items_held == 0) {
            Some(self.back_catalogue_floor())
        } else {
            None
        };
        // Bodies held at once: the fetches in flight plus the ones parsed or waiting for
        // the store. Fetching waits for a permit *before* it begins, so a slow store
        // holds back new downloads instead of piling them up in memory, and a fetch in
        // progress is never left unpolled long enough to time out.
        let workers = parse_workers();
        let held = Arc::new(Semaphore::new(
            self.cfg.fetch.concurrency.max(1) + 2 * workers,
        ));
        let mut fetches = stream::iter(due)
            .map(|(s, st)| {
                let host = s
                    .kind
                    .url()
                    .and_then(|u| hosts.get(&fetch::host_key(u)).cloned());
                let global = global.clone();
                let held = held.clone();
                async move {
                    let queued = tokio::time::Instant::now();
                    let permit = held.acquire_owned().await.expect("semaphore never closed");
                    // Time spent waiting for our own parser and store is not the
                    // partners' doing: the deadline moves by it, so a large first build
                    // is never cut short by its own backlog.
                    let run_deadline = run_deadline + queued.elapsed();
                    let begun_at = tokio::time::Instant::now();
                    let begun = AtomicBool::new(false);
                    let work = self.acquire(&s, &st, host, global, &begun, run_deadline);
                    let a = match tokio::time::timeout_at(run_deadline, work).await {
                        Ok(a) => a,
                        // Cut by the run's deadline, not by its own timeout: the partner
                        // did not get its full chance, so this is no failure of its own.
                        Err(_) if begun.load(Ordering::SeqCst) => Acquired::Skipped(format!(
                            "cut off by the run's deadline ({:?}) before its own timeout; tried next cycle",
                            self.cfg.fetch.deadline
                        )),
                        Err(_) => Acquired::Skipped(format!(
                            "not fetched: the run's deadline ({:?}) passed while it waited for its host; tried next cycle",
                            self.cfg.fetch.deadline
                        )),
                    };
                    (s, st, a, begun_at, permit)
                }
            })
            .buffer_unordered(n);
        // Parse and normalise on blocking threads, `workers` at a time; the store is
        // written from this task alone, one source per transaction, in completion order.
        // Parsing starts on a blocking thread as soon as a document is handed over (not
        // when its future is first polled), so workers keep going while the store takes
        // the previous group.
        let start = |(s, st, a, begun_at, permit): Downloaded| {
            let cfg = self.cfg.clone();
            let back = (st.items_held == 0).then_some(normalise::BackCatalogue {
                below: below.flatten(),
            });
            let source: Source = s.clone();
            let job = tokio::task::spawn_blocking(move || prepare(&cfg, &source, a, now, back));
            async move {
                let prepared = job.await.unwrap_or_else(|e| {
                    Prepared::Failed(Failure::Parse(format!(
                        "reading the document stopped unexpectedly: {e}"
                    )))
                });
                (s, st, prepared, begun_at, permit)
            }
        };
        // Twice the cores in flight: while the store commits, finished documents pile up
        // to form the next group instead of leaving the workers idle.
        let in_flight = 2 * workers;
        let mut parsing = futures_util::stream::FuturesUnordered::new();
        let mut waiting: std::collections::VecDeque<Downloaded> = std::collections::VecDeque::new();
        let mut fetching = true;
        let mut new_states = Vec::new();
        loop {
            let group = tokio::select! {
                next = fetches.next(), if fetching => {
                    match next {
                        Some(f) => { progress.fetched(); waiting.push_back(f) }
                        None => fetching = false,
                    }
                    None
                }
                Some(first) = parsing.next() => {
                    let mut group = vec![first];
                    while group.len() < in_flight {
                        match futures_util::FutureExt::now_or_never(parsing.next()) {
                            Some(Some(more)) => group.push(more),
                            _ => break,
                        }
                    }
                    progress.parsed(group.len());
                    Some(group)
                }
                else => break,
            };
            // Hand out waiting documents before the store takes the group, so the
            // workers keep parsing meanwhile.
            while parsing.len() < in_flight {
                let Some(d) = waiting.pop_front() else { break };
                parsing.push(start(d));
            }
            for (mut rep, state, begun_at) in
                group.map(|g| self.commit_group(g, now)).unwrap_or_default()
            {
                rep.elapsed = begun_at.elapsed();
                progress.stored();
                if let Some(state) = state {
                    new_states.push(state);
                }
                reports.push(rep);
            }
        }
        if let Err(e) = self.store().flush_dedupe_index() {
            tracing::error!(error = %e, "cannot write the near-duplicate index; the next run retries");
        }
        if let Err(e) = self.store().save_source_states(&new_states) {
            tracing::error!(error = %e, "cannot save the sources' fetch state");
        }
        reports.sort_by(|a, b| a.id.cmp(&b.id));
        let keep = self.cfg.store.max_items;
        let age = self
            .cfg
            .store
            .max_age
            .and_then(|d| chrono::Duration::from_std(d).ok());
        let pruned = self.store().prune(keep, age, now);
        match pruned {
            Ok(0) => {}
            Ok(_) => note_changed(&self.store()),
            Err(e) => tracing::error!(error = %e, "pruning the store failed"),
        }
        reports
    }

    /// Reads or fetches one source's raw material, waiting for its host's turn first.
    async fn acquire(
        &self,
        s: &Source,
        st: &SourceState,
        host: Option<Arc<Semaphore>>,
        global: Arc<Semaphore>,
        begun: &AtomicBool,
        run_deadline: tokio::time::Instant,
    ) -> Acquired {
        let url = match &s.kind {
            SourceKind::Local { path } => return Acquired::Local(path.clone()),
            SourceKind::Feed { url } | SourceKind::Page { url, .. } => url,
        };
        // Host first, then a global slot: a source queued behind its host must not hold
        // a global slot another host could use.
        let _host = match host {
            Some(h) => Some(h.acquire_owned().await.expect("semaphore never closed")),
            None => None,
        };
        let _slot = global
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        if tokio::time::Instant::now() >= run_deadline {
            // Our turn came as the run ended; leave the partner alone until next cycle.
            return Acquired::Skipped(format!(
                "not fetched: the run's deadline ({:?}) passed while it waited for its host; tried next cycle",
                self.cfg.fetch.deadline
            ));
        }
        begun.store(true, Ordering::SeqCst);
        let validators = if st.url.as_deref() == Some(url.as_str()) {
            Validators {
                etag: st.etag.clone(),
                last_modified: st.last_modified.clone(),
            }
        } else {
            // A new URL is a new resource: the old validators mean nothing there.
            Validators::default()
        };
        match self.fetcher.fetch(url, &validators).await {
            Ok(o) => Acquired::Remote(o),
            Err(e) => Acquired::Failed(e),
        }
    }

    /// When `s` is next due after an attempt at `now` that ended with `outcome`.
    fn next_fetch(&self, s: &Source, now: DateTime<Utc>, outcome: Outcome) -> NextFetch {
        let cron = s.schedule.as_ref().unwrap_or(&self.cfg.publish.schedule);
        let p = Politeness {
            backoff_cap: self.cfg.fetch.backoff_cap,
            ..Politeness::default()
        };
        schedule::next_fetch(
            cron,
            self.cfg.site.timezone,
            s.id.as_str(),
            now,
            outcome,
            &p,
        )
    }

    /// Records a failed attempt: the items held stay published; the failure, its time
    /// and count go into the state; the next try backs off.
    fn failed(
        &self,
        s: &Source,
        mut st: SourceState,
        err: Failure,
        now: DateTime<Utc>,
    ) -> (SourceReport, Option<SourceState>) {
        st.id = s.id.to_string();
        st.last_attempt = Some(now);
        st.consecutive_failures += 1;
        st.fetch_count += 1;
        let (short, message, retry_after, gone) = match &err {
            Failure::Fetch(e) => (
                e.short(),
                e.to_string(),
                e.retry_after(),
                matches!(e, FetchError::Gone { .. }),
            ),
            Failure::Parse(m) => ("parse error".to_owned(), m.clone(), None, false),
        };
        if st.url.as_deref() != s.kind.url().map(Url::as_str) {
            // First attempt at this URL: nothing remembered applies to it.
            st.etag = None;
            st.last_modified = None;
            st.moved_to = None;
        }
        st.url = s.kind.url().map(|u| u.to_string());
        st.last_status = Some(short);
        st.last_error = Some(message.clone());
        st.gone = gone;
        st.next_fetch = if gone {
            None
        } else {
            Some(
                self.next_fetch(
                    s,
                    now,
                    Outcome::Failure {
                        consecutive: st.consecutive_failures,
                        retry_after,
                    },
                )
                .at,
            )
        };
        tracing::warn!(
            source = %s.id,
            error = %message,
            failures = st.consecutive_failures,
            next = ?st.next_fetch,
            "source failed; its items stay published"
        );
        let mut rep = report(&s.id, SourceStatus::Failed(message));
        if st.items_held > 0 {
            rep.problems.push(format!(
                "keeping the {} items held from the last good copy",
                st.items_held
            ));
        }
        (rep, Some(st))
    }

    /// Stores several sources' prepared documents in one transaction: the hot band and
    /// index pages are written once per group, not once per source. Inside the group
    /// no source has a savepoint of its own (see [`Store::in_transaction`]), so when any
    /// write fails the group is rolled back and each source is stored again in its own
    /// transaction, from a copy of its items: the failing source is reported and the
    /// others are stored. When a source's own commit fails, it keeps its old fetch
    /// state, so the next cycle fetches it again.
    fn commit_group(
        &self,
        group: Vec<(
            Source,
            SourceState,
            Prepared,
            tokio::time::Instant,
            OwnedSemaphorePermit,
        )>,
        now: DateTime<Utc>,
    ) -> Vec<(SourceReport, Option<SourceState>, tokio::time::Instant)> {
        let mut done = Vec::with_capacity(group.len());
        let mut store = self.store();
        let mut writes = Vec::with_capacity(group.len());
        for (s, st, prepared, begun_at, permit) in group {
            match prepared {
                Prepared::Ready(ready) => writes.push((s, st, ready, begun_at, permit)),
                // Nothing to write but the fetch state, which is saved with the others.
                other => {
                    let (rep, state) = self.commit(&mut store, &s, st, other, now, &mut false);
                    done.push((rep, state, begun_at));
                }
            }
        }
        if writes.len() > 1 {
            let copies: Vec<Box<Ready>> = writes.iter().map(|w| w.2.clone()).collect();
            let mut readies = writes.iter_mut().zip(copies).map(|(w, copy)| {
                let ready = std::mem::replace(&mut w.2, copy);
                (&w.0, w.1.clone(), ready, w.3)
            });
            let together = store.in_transaction(|store| -> Result<_, Abort> {
                let mut stored = Vec::new();
                for (s, st, ready, begun_at) in readies.by_ref() {
                    let mut failed = false;
                    let (rep, state) =
                        self.commit(store, s, st, Prepared::Ready(ready), now, &mut failed);
                    if failed {
                        return Err(Abort::Write(Box::new(rep)));
                    }
                    stored.push((rep, state, begun_at));
                }
                Ok(stored)
            });
            match together {
                Ok(stored) => {
                    done.extend(stored);
                    return done;
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "storing {} sources together failed; storing each on its own",
                    writes.len()
                ),
            }
        }
        for (s, st, ready, begun_at, _permit) in writes {
            let alone = store.in_transaction(|store| -> Result<_, Abort> {
                let mut failed = false;
                let (rep, state) =
                    self.commit(store, &s, st, Prepared::Ready(ready), now, &mut failed);
                if failed {
                    return Err(Abort::Failed(Box::new((rep, state))));
                }
                Ok((rep, state))
            });
            done.push(match alone {
                Ok((rep, state)) => (rep, state, begun_at),
                // The source's failure, with the fetch state that counts it.
                Err(Abort::Failed(failed)) => (failed.0, failed.1, begun_at),
                Err(e) => {
                    tracing::error!(source = %s.id, error = %e, "the store could not commit a source");
                    let mut rep = report(&s.id, SourceStatus::NotModified);
                    rep.status = SourceStatus::Failed(format!("the store could not commit: {e}"));
                    (rep, None, begun_at)
                }
            });
        }
        done
    }

    /// Stores what [`prepare`] made of one source's delivery; returns the report and the
    /// source's new fetch state. Sets `write_failed` when a store write failed, which
    /// may have left it half done: the caller rolls the transaction back.
    fn commit(
        &self,
        store: &mut Store,
        s: &Source,
        mut st: SourceState,
        prepared: Prepared,
        now: DateTime<Utc>,
        write_failed: &mut bool,
    ) -> (SourceReport, Option<SourceState>) {
        let mut rep = report(&s.id, SourceStatus::NotModified);
        let ready = match prepared {
            Prepared::Skipped(why) => {
                rep.status = SourceStatus::Skipped(why);
                return (rep, None);
            }
            Prepared::Failed(f) => return self.failed(s, st, f, now),
            Prepared::NotModified {
                max_age,
                validators,
                moved_permanently,
            } => {
                // The partner confirmed our copy: no parse, no item writes, no re-render.
                st.id = s.id.to_string();
                st.last_attempt = Some(now);
                st.last_success = Some(now);
                st.last_status = Some("304 not modified".into());
                st.last_error = None;
                st.consecutive_failures = 0;
                st.fetch_count += 1;
                // RFC 9110 §15.4.5: a 304 may carry updated validators.
                if validators.etag.is_some() {
                    st.etag = validators.etag;
                }
                if validators.last_modified.is_some() {
                    st.last_modified = validators.last_modified;
                }
                st.moved_to = moved_permanently.map(|u| u.to_string());
                self.note_moved(s, &st, &mut rep);
                st.next_fetch = Some(
                    self.next_fetch(s, now, Outcome::Success { ttl: None, max_age })
                        .at,
                );
                return (rep, Some(st));
            }
            Prepared::Ready(r) => r,
        };
        let Ready {
            mut items,
            problems,
            ttl_minutes,
            fetched,
        } = *ready;
        rep.problems = problems;
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
        match store.remap_churned_ids(&s.id, &mut items, now) {
            Ok(churn) if churn.is_event() => {
                tracing::warn!(source = %s.id, "{churn}");
                rep.problems.push(churn.to_string());
            }
            Ok(_) => {}
            Err(e) => {
                *write_failed = true;
                return self.failed(s, st, Failure::Parse(e.to_string()), now);
            }
        }
        let present: Vec<crate::model::ItemId> = items.iter().map(|i| i.id.clone()).collect();
        let result =
            store.upsert_source_items(&s.id, items, now, |conn, item| deduper.decide(conn, item));
        let result = result.and_then(|u| {
            store.set_reading_fingerprint(s.id.as_str(), &reading::fingerprint(s, &self.cfg))?;
            Ok(u)
        });
        match result {
            Ok(u) => {
                if u.new + u.changed + u.restored > 0 {
                    note_changed(store);
                }
                rep.status = SourceStatus::Updated {
                    items: count,
                    new: u.new,
                    changed: u.changed,
                };
            }
            Err(e) => {
                *write_failed = true;
                return self.failed(s, st, Failure::Parse(e.to_string()), now);
            }
        }
        let withdrawn = if clean_read {
            store.withdraw_missing(&s.id, &present, whole_set, now)
        } else {
            Ok(Vec::new())
        };
        match withdrawn {
            Ok(gone) => {
                if !gone.is_empty() {
                    note_changed(store);
                }
                for (id, title) in gone {
                    tracing::info!(source = %s.id, item = %id, "retracted by its source: withdrawn");
                    rep.problems
                        .push(format!("retracted: {title} ({id}) withdrawn"));
                }
            }
            Err(e) => {
                *write_failed = true;
                return self.failed(s, st, Failure::Parse(e.to_string()), now);
            }
        }
        st.id = s.id.to_string();
        st.url = s.kind.url().map(|u| u.to_string());
        st.last_attempt = Some(now);
        st.last_success = Some(now);
        st.last_error = None;
        st.consecutive_failures = 0;
        st.fetch_count += 1;
        st.gone = false;
        let ttl = ttl_minutes.map(|m| std::time::Duration::from_secs(u64::from(m) * 60));
        let max_age = match fetched {
            Some(f) => {
                st.etag = f.validators.etag;
                st.last_modified = f.validators.last_modified;
                st.last_status = Some("200 ok".into());
                st.moved_to = f.moved_permanently.map(|u| u.to_string());
                self.note_moved(s, &st, &mut rep);
                f.max_age
            }
            None => {
                st.last_status = Some(format!("read {count} posts"));
                None
            }
        };
        st.next_fetch = Some(
            self.next_fetch(s, now, Outcome::Success { ttl, max_age })
                .at,
        );
        (rep, Some(st))
    }

    fn note_moved(&self, s: &Source, st: &SourceState, rep: &mut SourceReport) {
        if let Some(m) = &st.moved_to {
            tracing::warn!(source = %s.id, "moved permanently to {m}; update the config");
            rep.moved_to = Some(m.clone());
        }
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
                    Some(st) if is_gone(s, st) => None,
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
        // Kept in the store, not in this process: a `build` must publish what a running
        // daemon (or an interrupted earlier run) stored but did not publish yet.
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

    /// The oldest item the combined feed shows now: where a new source's undated back
    /// catalogue goes when its document has no dated item (see `normalise::normalise_all`).
    fn back_catalogue_floor(&self) -> Option<DateTime<Utc>> {
        let window = self
            .store()
            .visible_items(self.cfg.publish.max_items)
            .unwrap_or_default();
        window.last().map(|i| i.item.published)
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
                        let Some(slug) = it.item.id.0.split_once(':').map(|(_, k)| k.to_owned())
                        else {
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

/// What acquiring one source produced, before parsing.
enum Acquired {
    Local(std::path::PathBuf),
    Remote(FetchOutcome),
    Failed(FetchError),
    /// Not attempted (the run's deadline came first); not a failure.
    Skipped(String),
}

/// A source with what its fetch brought, holding its slot among the bodies in memory.
type Downloaded = (
    Source,
    SourceState,
    Acquired,
    tokio::time::Instant,
    OwnedSemaphorePermit,
);

/// One source's delivery made ready for the store, off the store's thread.
enum Prepared {
    Skipped(String),
    Failed(Failure),
    NotModified {
        max_age: Option<Duration>,
        validators: Validators,
        moved_permanently: Option<Url>,
    },
    Ready(Box<Ready>),
}

/// Normalised items of one document, with what the source's state needs from it.
#[derive(Clone)]
struct Ready {
    items: Vec<Item>,
    /// Problems with single entries or posts; the rest is stored.
    problems: Vec<String>,
    ttl_minutes: Option<u32>,
    /// The HTTP response's metadata (its body is dropped once parsed); `None` for posts.
    fetched: Option<Box<fetch::Fetched>>,
}

/// How many documents are parsed and normalised at once: one per core, since that
/// work is CPU-bound and the store is written from one thread anyway.
fn parse_workers() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// Parses and normalises what one source delivered. Pure CPU work that reads only the
/// config, so it runs on a worker thread while the store takes the previous source.
fn prepare(
    cfg: &Config,
    s: &Source,
    a: Acquired,
    now: DateTime<Utc>,
    back_catalogue: Option<normalise::BackCatalogue>,
) -> Prepared {
    let mut problems = Vec::new();
    let (parsed, fetched) = match a {
        Acquired::Skipped(why) => return Prepared::Skipped(why),
        Acquired::Failed(e) => return Prepared::Failed(Failure::Fetch(e)),
        Acquired::Remote(FetchOutcome::NotModified {
            max_age,
            validators,
            moved_permanently,
        }) => {
            return Prepared::NotModified {
                max_age,
                validators,
                moved_permanently,
            }
        }
        Acquired::Local(path) => {
            let (posts, errors) =
                source::local::read_dir(&path, s.id.as_str(), &cfg.site.base_url, s.timezone);
            for e in &errors {
                tracing::error!(source = %s.id, "{e}");
            }
            problems.extend(errors.iter().map(ToString::to_string));
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
        Acquired::Remote(FetchOutcome::Fetched(mut fetched)) => {
            let origin = s.kind.url().map(|u| u.to_string()).unwrap_or_default();
            let parsed = source::parse_remote(
                s,
                &fetched.body,
                fetched.charset.as_deref(),
                &fetched.final_url,
                &origin,
            );
            // The body is the biggest thing a source brings; it is not needed any more.
            fetched.body = Vec::new();
            match parsed {
                Ok((p, _)) => (p, Some(fetched)),
                Err(e) => return Prepared::Failed(Failure::Parse(e.to_string())),
            }
        }
    };
    problems.extend(parsed.problems.iter().cloned());
    let ctx = Context {
        source: s,
        feed_link: parsed.link.as_ref(),
        feed_language: parsed.language.as_deref(),
        tag_map: &cfg.tags,
        now,
        back_catalogue,
    };
    let (items, errors) = normalise::normalise_all(&parsed.entries, &ctx);
    problems.extend(errors.iter().map(ToString::to_string));
    Prepared::Ready(Box::new(Ready {
        items,
        problems,
        ttl_minutes: parsed.ttl_minutes,
        fetched,
    }))
}

enum Failure {
    Fetch(FetchError),
    Parse(String),
}

/// Why a transaction of source writes was rolled back.
#[derive(Debug, thiserror::Error)]
enum Abort {
    /// A write of a group failed (the report says which and why).
    #[error("{} was not stored: {:?}", .0.id, .0.status)]
    Write(Box<SourceReport>),
    /// A source stored on its own failed: its report and fetch state stand.
    #[error("{} was not stored: {:?}", .0.0.id, .0.0.status)]
    Failed(Box<(SourceReport, Option<SourceState>)>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A 410 stops polling until the configured URL differs from the one that was gone.
fn is_gone(s: &Source, st: &SourceState) -> bool {
    st.gone && st.url.as_deref() == s.kind.url().map(Url::as_str)
}

/// Why `s` is not fetched in this refresh, if it is not.
fn skip_reason(
    s: &Source,
    st: &SourceState,
    now: DateTime<Utc>,
    mode: RefreshMode,
) -> Option<String> {
    let url = s.kind.url()?;
    if is_gone(s, st) {
        return Some(format!(
            "{url}: gone (HTTP 410); change the URL in the config to poll again"
        ));
    }
    if st.url.as_deref() != Some(url.as_str()) {
        // A new or changed URL: nothing we remember applies, so fetch it now.
        return None;
    }
    let next = st.next_fetch.filter(|n| *n > now)?;
    let when = next.format("%Y-%m-%d %H:%M:%S UTC");
    match mode {
        RefreshMode::Force => None,
        RefreshMode::Manual if st.consecutive_failures == 0 => None,
        RefreshMode::Manual => Some(format!(
            "backing off after {} failure(s) (last: {}); next try {when} (--force fetches now)",
            st.consecutive_failures,
            st.last_status.as_deref().unwrap_or("error")
        )),
        RefreshMode::Due => Some(format!("not due until {when}")),
    }
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
