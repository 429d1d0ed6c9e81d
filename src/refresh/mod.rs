//! The refresh stage: brings the store up to date with the configured sources.
//!
//! ```text
//!  select ──► acquire ─────────────► prepare ─────────────────► commit
//!  which run,  fetch or read, within  parse and normalise on     the store, one writer:
//!  why not     host/global/deadline   worker threads (CPU only)  items, then fetch state
//! ```
//!
//! [`refresh`] runs the steps as a stream: fetches run concurrently, documents are
//! prepared on blocking threads as they arrive, and this task alone writes the store,
//! several finished sources per transaction, in completion order. Every source's new
//! fetch state (a [`SourceState`] changed by its own transition methods, see `state`)
//! is saved in one more transaction at the end.
//!
//! It owns the order and the concurrency of the steps, not their content: HTTP is
//! `fetch`'s, parsing `source`'s, normalising `normalise`'s, the duplicate rules
//! `dedupe`'s, the SQL `store`'s, timing and back-off `schedule`'s. It does not publish:
//! it only notes in the store that the outputs are behind.
//!
//! [`local_duplicates`] runs the commit step's deduplication on a local source's posts
//! alone, in a scratch store, for `feedwerk check`.

mod acquire;
mod commit;
mod prepare;
mod scratch;
mod select;
mod state;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;

pub use scratch::{local_duplicates, LocalDuplicate};
pub use select::RefreshMode;

use crate::config::Config;
use crate::dedupe::Deduper;
use crate::fetch::Fetcher;
use crate::model::{Source, SourceId, SourceReport, SourceState, SourceStatus};
use crate::store::Backend;
use acquire::Downloaded;
use commit::{note_changed, Commit};
use state::report;

/// What a refresh works with. The store sits behind the pipeline's lock, which a
/// refresh takes only for its own reads and writes, never across an `await`.
#[derive(Clone, Copy)]
pub struct Stage<'a> {
    pub cfg: &'a Arc<Config>,
    pub store: &'a Mutex<Box<dyn Backend>>,
    pub fetcher: &'a Fetcher,
}

impl Stage<'_> {
    fn store(&self) -> MutexGuard<'_, Box<dyn Backend>> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions
        // roll back), so a poisoned lock is safe to reuse.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Deduplication with the configured thresholds and source priorities.
pub fn deduper(cfg: &Config) -> Deduper {
    Deduper::new(
        cfg.dedupe.clone(),
        cfg.sources
            .iter()
            .map(|s| (s.id.clone(), s.priority))
            .collect(),
    )
}

/// Refreshes the sources `mode` selects: fetches them concurrently (one request at a
/// time per host, at most `fetch.concurrency` in all, each within its own timeout and
/// the whole run within `fetch.deadline`), then stores each source's items in its own
/// transaction and every source's fetch state in one more.
pub async fn refresh(stage: Stage<'_>, now: DateTime<Utc>, mode: RefreshMode) -> Vec<SourceReport> {
    let started = tokio::time::Instant::now();
    let now = monotonic_now(&**stage.store(), now);
    withdraw_unconfigured(stage);
    let states = match stage.store().source_states() {
        Ok(s) => s,
        Err(e) => {
            return stage
                .cfg
                .sources
                .iter()
                .map(|s| report(s, SourceStatus::Failed(e.to_string())))
                .collect();
        }
    };
    let readings = stage.store().reading_fingerprints().unwrap_or_default();
    let (due, mut reports) = select::select(stage.cfg, &states, &readings, now, mode);
    let (stored, new_states) = run(stage, due, now, started).await;
    reports.extend(stored);
    if let Err(e) = stage.store().flush_dedupe_index() {
        tracing::error!(error = %e, "cannot write the near-duplicate index; the next run retries");
    }
    if let Err(e) = stage.store().save_source_states(&new_states) {
        tracing::error!(error = %e, "cannot save the sources' fetch state");
    }
    reports.sort_by(|a, b| a.id.cmp(&b.id));
    prune(stage, now);
    reports
}

/// Acquires, prepares and commits the `due` sources; returns their reports and the
/// fetch states to save.
async fn run(
    stage: Stage<'_>,
    due: Vec<(Source, SourceState)>,
    now: DateTime<Utc>,
    started: tokio::time::Instant,
) -> (Vec<SourceReport>, Vec<SourceState>) {
    let cfg = stage.cfg;
    // Undated back catalogue of a source seen for the first time goes below the
    // oldest item the combined feed showed when this refresh began: read once, so
    // parsing can run on worker threads without the store (see `normalise_all`).
    let below = if due.iter().any(|(_, st)| st.items_held == 0) {
        back_catalogue_floor(cfg, &**stage.store())
    } else {
        None
    };
    // Bodies held at once: the fetches in flight plus the ones parsed or waiting for
    // the store.
    let workers = prepare::parse_workers();
    let held = cfg.fetch.concurrency.max(1) + 2 * workers;
    let progress = crate::progress::Refresh::begin(due.len());
    let mut fetches = std::pin::pin!(acquire::acquire_all(cfg, stage.fetcher, due, started, held));
    let deduper = deduper(cfg);
    let commit = Commit {
        cfg,
        deduper: &deduper,
        now,
    };
    // Parse and normalise on blocking threads, `workers` at a time; the store is
    // written from this task alone, one group of sources per transaction, in
    // completion order. Twice the cores in flight: while the store commits, finished
    // documents pile up to form the next group instead of leaving the workers idle.
    let in_flight = 2 * workers;
    let mut parsing = FuturesUnordered::new();
    let mut waiting: VecDeque<Downloaded> = VecDeque::new();
    let mut fetching = true;
    let (mut reports, mut new_states) = (Vec::new(), Vec::new());
    loop {
        let group = tokio::select! {
            next = fetches.next(), if fetching => {
                match next {
                    Some(f) => {
                        progress.fetched();
                        waiting.push_back(f);
                    }
                    None => fetching = false,
                }
                None
            }
            Some(first) = parsing.next() => {
                let mut group = vec![first];
                while group.len() < in_flight {
                    match parsing.next().now_or_never() {
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
            parsing.push(prepare::start(cfg, d, now, below));
        }
        let Some(group) = group else { continue };
        let committed = commit.group(&mut **stage.store(), group);
        for ((mut rep, state), begun_at) in committed {
            rep.elapsed = begun_at.elapsed();
            progress.stored();
            new_states.extend(state);
            reports.push(rep);
        }
    }
    (reports, new_states)
}

/// `now`, moved past the newest `first_seen` held when a previous cycle ran in the
/// same second (or the clock stepped back). Archive pages and "new since" order items
/// by (`first_seen`, id) in whole seconds: an item of a later cycle must never sort
/// before one of an earlier cycle, or it would fall inside a sealed archive page and
/// never be published there.
fn monotonic_now(store: &dyn Backend, now: DateTime<Utc>) -> DateTime<Utc> {
    match store.latest_first_seen() {
        Ok(Some(latest)) if latest.timestamp() >= now.timestamp() => {
            latest + chrono::Duration::seconds(1)
        }
        _ => now,
    }
}

/// Takes the items of sources no longer configured out of every output.
fn withdraw_unconfigured(stage: Stage<'_>) {
    let configured: Vec<SourceId> = stage.cfg.sources.iter().map(|s| s.id.clone()).collect();
    let withdrawn = stage.store().withdraw_unconfigured(&configured);
    match withdrawn {
        Ok(0) => {}
        Ok(n) => {
            note_changed(&**stage.store());
            tracing::info!("withdrew {n} items of sources no longer configured");
        }
        Err(e) => tracing::error!(error = %e, "cannot withdraw items of removed sources"),
    }
}

/// Drops what the retention limits (`[store] max_items`, `max_age`) no longer keep.
fn prune(stage: Stage<'_>, now: DateTime<Utc>) {
    let keep = stage.cfg.store.max_items;
    let age = stage
        .cfg
        .store
        .max_age
        .and_then(|d| chrono::Duration::from_std(d).ok());
    let pruned = stage.store().prune(keep, age, now);
    match pruned {
        Ok(0) => {}
        Ok(_) => note_changed(&**stage.store()),
        Err(e) => tracing::error!(error = %e, "pruning the store failed"),
    }
}

/// The oldest item the combined feed shows now: where a new source's undated back
/// catalogue goes when its document has no dated item (see `normalise::normalise_all`).
fn back_catalogue_floor(cfg: &Config, store: &dyn Backend) -> Option<DateTime<Utc>> {
    let window = store
        .visible_items(cfg.publish.max_items)
        .unwrap_or_default();
    window.last().map(|i| i.item.published)
}
