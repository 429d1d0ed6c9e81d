//! Acquiring each selected source's raw material: a local directory's path, or a
//! partner's response. Fetches run concurrently within three limits: one request at a
//! time per host (`fetch.per_host_concurrency`), `fetch.concurrency` in all, and the
//! bodies held in memory at once; each within its own timeout and the whole run within
//! `fetch.deadline`. HTTP itself is `fetch`'s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::Config;
use crate::fetch::{self, FetchError, FetchOutcome, Fetcher, Validators};
use crate::model::{Source, SourceKind, SourceState};

/// What acquiring one source produced, before parsing.
pub(super) enum Acquired {
    Local(std::path::PathBuf),
    Remote(FetchOutcome),
    Failed(FetchError),
    /// Not attempted (the run's deadline came first); not a failure.
    Skipped(String),
}

/// A source with what its fetch brought, holding its slot among the bodies in memory
/// until the store has taken it.
pub(super) struct Downloaded {
    pub source: Source,
    pub state: SourceState,
    pub acquired: Acquired,
    /// When its fetch (or directory read) began: the report's elapsed time starts here.
    pub begun_at: Instant,
    pub permit: OwnedSemaphorePermit,
}

/// The slots a fetch waits for before it begins.
struct Turn {
    host: Option<Arc<Semaphore>>,
    global: Arc<Semaphore>,
    run_deadline: Instant,
}

/// Fetches (or reads) every source of `due`, yielding each as it arrives. At most
/// `held` bodies are in memory at once: a fetch waits for a permit *before* it begins,
/// so a slow store holds back new downloads instead of piling them up in memory, and a
/// fetch in progress is never left unpolled long enough to time out.
pub(super) fn acquire_all<'a>(
    cfg: &'a Config,
    fetcher: &'a Fetcher,
    due: Vec<(Source, SourceState)>,
    started: Instant,
    held: usize,
) -> impl Stream<Item = Downloaded> + 'a {
    let global = Arc::new(Semaphore::new(cfg.fetch.concurrency.max(1)));
    let mut hosts: HashMap<String, Arc<Semaphore>> = HashMap::new();
    for (s, _) in &due {
        if let Some(u) = s.kind.url() {
            hosts
                .entry(fetch::host_key(u))
                .or_insert_with(|| Arc::new(Semaphore::new(cfg.fetch.per_host_concurrency.max(1))));
        }
    }
    let run_deadline = started + cfg.fetch.deadline;
    let n = due.len().max(1);
    let held = Arc::new(Semaphore::new(held));
    stream::iter(due)
        .map(move |(s, st)| {
            let host = s
                .kind
                .url()
                .and_then(|u| hosts.get(&fetch::host_key(u)).cloned());
            let global = global.clone();
            let held = held.clone();
            async move {
                let queued = Instant::now();
                let permit = held.acquire_owned().await.expect("semaphore never closed");
                // Time spent waiting for our own parser and store is not the
                // partners' doing: the deadline moves by it, so a large first build
                // is never cut short by its own backlog.
                let run_deadline = run_deadline + queued.elapsed();
                let begun_at = Instant::now();
                let begun = AtomicBool::new(false);
                let turn = Turn {
                    host,
                    global,
                    run_deadline,
                };
                let work = acquire(cfg, fetcher, &s, &st, turn, &begun);
                let acquired = match tokio::time::timeout_at(run_deadline, work).await {
                    Ok(a) => a,
                    // Cut by the run's deadline, not by its own timeout: the partner
                    // did not get its full chance, so this is no failure of its own.
                    Err(_) if begun.load(Ordering::SeqCst) => Acquired::Skipped(format!(
                        "cut off by the run's deadline ({:?}) before its own timeout; tried next cycle",
                        cfg.fetch.deadline
                    )),
                    Err(_) => waited_too_long(cfg),
                };
                Downloaded {
                    source: s,
                    state: st,
                    acquired,
                    begun_at,
                    permit,
                }
            }
        })
        .buffer_unordered(n)
}

/// A source whose turn did not come before the run's deadline.
fn waited_too_long(cfg: &Config) -> Acquired {
    Acquired::Skipped(format!(
        "not fetched: the run's deadline ({:?}) passed while it waited for its host; tried next cycle",
        cfg.fetch.deadline
    ))
}

/// Reads or fetches one source's raw material, waiting for its host's turn first.
/// Sets `begun` once the request goes out.
async fn acquire(
    cfg: &Config,
    fetcher: &Fetcher,
    s: &Source,
    st: &SourceState,
    turn: Turn,
    begun: &AtomicBool,
) -> Acquired {
    let url = match &s.kind {
        SourceKind::Local { path } => return Acquired::Local(path.clone()),
        SourceKind::Feed { url } | SourceKind::Page { url, .. } => url,
    };
    // Host first, then a global slot: a source queued behind its host must not hold
    // a global slot another host could use.
    let _host = match turn.host {
        Some(h) => Some(h.acquire_owned().await.expect("semaphore never closed")),
        None => None,
    };
    let _slot = turn
        .global
        .acquire_owned()
        .await
        .expect("semaphore never closed");
    if Instant::now() >= turn.run_deadline {
        // Our turn came as the run ended; leave the partner alone until next cycle.
        return waited_too_long(cfg);
    }
    begun.store(true, Ordering::SeqCst);
    let validators = if st.is_for(Some(url)) {
        Validators {
            etag: st.etag.clone(),
            last_modified: st.last_modified.clone(),
        }
    } else {
        // A new URL is a new resource: the old validators mean nothing there.
        Validators::default()
    };
    match fetcher.fetch(url, &validators).await {
        Ok(o) => Acquired::Remote(o),
        Err(e) => Acquired::Failed(e),
    }
}
