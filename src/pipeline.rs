//! The one module that knows the order of the stages:
//! sources → fetch → decode/parse → normalise → dedupe → store → render → publish.
//!
//! `feedwerk build` runs one [`Pipeline::refresh`] and one [`Pipeline::publish`]; the
//! daemon runs them on its schedule. A broken source or post is data in the report,
//! never a reason to stop the others.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use url::Url;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::fetch::{self, FetchError, FetchOutcome, Fetcher, Validators};
use crate::model::{Item, ParsedFeed, Source, SourceId, SourceKind};
use crate::model::{SourceReport, SourceStatus};
use crate::normalise::{self, Context};
use crate::publish::{self, Mode, Preview, PublishReport, PUBLISHED_CONFIG, UNPUBLISHED};
use crate::reading;
use crate::schedule::{self, NextFetch, Outcome, Politeness};
use crate::source;
use crate::store::{SourceState, Store, StoreError};
use crate::websub::{Hub, WebSubError};

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
        let store = Store::open(&cfg.store.path, &publish::authority(&cfg))?;
        Ok(Pipeline::with_store(cfg, store))
    }

    /// A pipeline over a private in-memory copy of the store, for `build --dry-run`:
    /// refreshing it fetches for real but writes nothing to the store file.
    pub fn open_dry_run(cfg: Config) -> Result<Pipeline, StoreError> {
        let store = Store::snapshot(&cfg.store.path, &publish::authority(&cfg))?;
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
        Ok(Preview::new(reports, &before, &after, plan))
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
                        Some(f) => waiting.push_back(f),
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
            .is_none_or(|h| h != publish::config_fingerprint(&self.cfg))
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
        let (catalog, report) = publish::run(&self.cfg, &store, now, mode, last.as_deref())?;
        if mode == Mode::Catalog {
            *self.last_catalog.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Arc::new(catalog.clone()));
        }
        Ok((catalog, report))
    }

    /// Tells the WebSub hub (if one is configured) which subscription feeds changed.
    pub async fn announce(&self, report: &PublishReport) -> Vec<WebSubError> {
        publish::announce(self.hub.as_ref(), &self.cfg.site.base_url, report).await
    }

    pub fn output_dir(&self) -> &Path {
        &self.cfg.publish.output_dir
    }
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

fn report(id: &SourceId, status: SourceStatus) -> SourceReport {
    SourceReport {
        id: id.clone(),
        status,
        problems: Vec::new(),
        moved_to: None,
        elapsed: Duration::ZERO,
    }
}
