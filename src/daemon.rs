//! The long-running process (`feedwerk run`): its lifecycle under systemd.
//!
//! Start: open the store, publish what it holds (so the last good feeds are served at
//! once, even with every partner offline), listen, then `READY=1`. One working loop
//! then owns everything that changes state: it runs refresh-and-publish cycles on the
//! cron schedule, re-reads the config on SIGHUP (`RELOADING=1` … `READY=1`; a broken
//! config is refused and the running one kept, with `STATUS=` saying so) and stops on
//! SIGTERM/SIGINT (`STOPPING=1`, a running fetch is abandoned between sources, the
//! server drains, exit 0).
//!
//! Liveness is proven by the loop itself: `WATCHDOG=1` and the `/healthz` heartbeat are
//! sent only when the loop goes round, or while a cycle is still within its time budget
//! (a cycle past its budget is abandoned). A loop blocked in a system call or a lock
//! therefore stops pinging, and systemd restarts the service.
//!
//! With several processes on one PostgreSQL store ([`run_replicated`]) a process
//! works only while it leads ([`crate::role`]): it opens its pipeline for the term,
//! publishes from the store and runs cycles; a standby serves the published documents
//! ([`crate::standby`]), `/healthz` ("standby") and `/metrics`, and runs no cycle. A
//! cycle running when the term ends is abandoned (its writes are refused anyway).
//!
//! What a cycle does is [`crate::pipeline`]'s business; the numbers go to
//! [`crate::metrics`]; HTTP is [`crate::serve`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sd_notify::NotifyState;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::catalog::SharedCatalog;
use crate::config::{Config, StoreLocation};
use crate::metrics::Telemetry;
use crate::model::{SourceReport, SourceStatus};
use crate::pipeline::{Pipeline, RefreshMode};
use crate::role::{self, Replication};
use crate::serve::{self, AppState};

/// The longest the loop sleeps between two rounds (and so between two heartbeats) when
/// no watchdog asks for more.
const MAX_TICK: Duration = Duration::from_secs(30);
/// Temporary output files older than this are leftovers of a killed writer.
const STALE_TEMP: Duration = Duration::from_secs(60);
/// How long the HTTP server may take to finish in-flight requests after SIGTERM.
const DRAIN: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot listen on {addr}: {source} (is another feedwerk or web server running there? change `server.listen`)")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("first publish from the store failed: {0}")]
    Pipeline(#[from] crate::pipeline::PipelineError),
    #[error("server: {0}")]
    Serve(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Talks to systemd over `NOTIFY_SOCKET`; a no-op when not started by systemd.
struct Notifier {
    enabled: bool,
}

impl Notifier {
    fn new() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    fn send(&self, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }
}

/// Time a whole cycle may take before it is considered stuck and abandoned: every
/// remote source gets the pipeline's per-source deadline (fetch timeout + 5 s) in
/// rounds of `fetch.concurrency`, plus a minute for local posts, storing and publishing.
pub fn cycle_budget(cfg: &Config) -> Duration {
    let remote = cfg
        .sources
        .iter()
        .filter(|s| s.kind.url().is_some())
        .count();
    let rounds = remote.div_ceil(cfg.fetch.concurrency.max(1)) as u32;
    // The refresh itself ends by `fetch.deadline`; the budget must never cut it first.
    ((cfg.fetch.timeout + Duration::from_secs(5)) * rounds + Duration::from_secs(60))
        .max(cfg.fetch.deadline + Duration::from_secs(60))
}

/// The loop's round interval: half the watchdog interval (systemd's advice), at most
/// [`MAX_TICK`].
fn tick_for(watchdog: Option<Duration>) -> Duration {
    watchdog
        .map(|w| (w / 2).max(Duration::from_millis(10)))
        .unwrap_or(MAX_TICK)
        .min(MAX_TICK)
}

/// What the `STATUS=` line says: the last cycle, plus anything the operator must know
/// (a refused reload, a setting that needs a restart) until it is resolved.
#[derive(Default)]
struct StatusLine {
    listening: String,
    cycle: String,
    notes: Vec<String>,
}

impl StatusLine {
    fn render(&self) -> String {
        let mut parts = vec![self.listening.clone()];
        if !self.cycle.is_empty() {
            parts.push(self.cycle.clone());
        }
        parts.extend(self.notes.iter().cloned());
        // STATUS= is one line of the notify datagram: no newlines allowed.
        parts.join("; ").replace('\n', " ")
    }
}

fn summarise(reports: &[SourceReport], publish: &Result<(usize, usize), String>) -> String {
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| matches!(r.status, SourceStatus::Failed(_)))
        .map(|r| r.id.as_str())
        .collect();
    let new: usize = reports
        .iter()
        .map(|r| match r.status {
            SourceStatus::Updated { new, .. } => new,
            _ => 0,
        })
        .sum();
    let mut s = format!(
        "last cycle {}: {} sources",
        Utc::now().format("%H:%M:%SZ"),
        reports.len()
    );
    if failed.is_empty() {
        s.push_str(" ok");
    } else {
        s.push_str(&format!(
            ", {} failed ({})",
            failed.len(),
            failed.join(", ")
        ));
    }
    s.push_str(&format!(", {new} new items, "));
    match publish {
        Ok((written, total)) => s.push_str(&format!("{written} of {total} outputs rewritten")),
        Err(e) => s.push_str(&format!("PUBLISH FAILED: {e}")),
    }
    s
}

enum Outcome {
    Done,
    Stop,
}

struct Daemon {
    /// The running config (the pipeline's, while there is one).
    cfg: Config,
    /// `None` while standing by.
    pipeline: Option<Pipeline>,
    /// With several processes on one store: the election and the store opener.
    replication: Option<Replication>,
    /// The epoch of the term `pipeline` was opened for.
    epoch: Option<i64>,
    catalog: SharedCatalog,
    telemetry: Arc<Telemetry>,
    notifier: Notifier,
    status: StatusLine,
    /// The address the server was started with; changing it needs a restart.
    listen: SocketAddr,
    /// The server's timeouts and limits as started; changing them needs a restart.
    server_limits: crate::config::ServerLimits,
    tick: Duration,
    term: Signal,
    int: Signal,
    hup: Signal,
    /// Cancelled: stop as on SIGTERM.
    stop: CancellationToken,
    /// The first cycle after start fetches every source not paused (partners may have
    /// news since we last ran); later cycles fetch the sources that are due.
    started_cycle: bool,
    /// Standing by with `publish.target`: the bucket's documents, re-read each round.
    mirroring: crate::standby::Mirroring,
}

/// Runs until SIGTERM or SIGINT: on a SQLite store as its only process (always
/// leading), on a PostgreSQL store as one of any number ([`run_replicated`]).
pub async fn run(cfg: Config) -> Result<(), DaemonError> {
    let replication = match &cfg.store.location {
        StoreLocation::Sqlite(_) => None,
        StoreLocation::Postgres(url) => {
            let holder = role::holder(&cfg);
            tracing::info!(store = %url, %holder, "several instances may share this store: campaigning for leadership");
            Some(Replication::postgres(&cfg, url.secret(), &holder)?)
        }
    };
    run_with(cfg, replication, CancellationToken::new()).await
}

/// [`run`] as one of several processes on one PostgreSQL store: leading or standing
/// by as `replication`'s election says; also stops (as on SIGTERM) when `stop` is
/// cancelled.
pub async fn run_replicated(
    cfg: Config,
    replication: Replication,
    stop: CancellationToken,
) -> Result<(), DaemonError> {
    run_with(cfg, Some(replication), stop).await
}

async fn run_with(
    cfg: Config,
    replication: Option<Replication>,
    stop: CancellationToken,
) -> Result<(), DaemonError> {
    // Handlers first: SIGHUP's default action is to terminate, and systemd may send one
    // as soon as we say READY.
    let term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let notifier = Notifier::new();
    let watchdog = sd_notify::watchdog_enabled();
    let tick = tick_for(watchdog);
    let listen = cfg.server.listen;
    let limits = cfg.server.limits.clone();
    let telemetry = Arc::new(Telemetry::new());
    let pipeline = match replication {
        None => Some(Pipeline::open(cfg.clone())?),
        Some(_) => None,
    };
    let catalog = SharedCatalog::default();

    let mut daemon = Daemon {
        cfg,
        pipeline,
        replication,
        epoch: None,
        started_cycle: false,
        mirroring: Default::default(),
        catalog: catalog.clone(),
        telemetry: telemetry.clone(),
        notifier,
        status: StatusLine::default(),
        listen,
        server_limits: limits.clone(),
        tick,
        term,
        int,
        hup,
        stop,
    };
    // A crash between creating a temporary output and renaming it leaves the temporary
    // file behind; the outputs themselves are whole.
    let swept = crate::publish::sweep_stale_temp_files(&daemon.cfg.publish.output_dir, STALE_TEMP);
    if swept > 0 {
        tracing::info!("removed {swept} temporary files left by an interrupted publish");
    }
    if daemon.pipeline.is_some() {
        // Serve the last good outputs at once, before any partner is contacted.
        daemon.publish_from_store()?;
        if let Some(pipeline) = &daemon.pipeline {
            update_source_gauges(pipeline, &telemetry);
        }
        telemetry.leading(0);
    } else {
        // A standby until the election says otherwise (the first round of the loop).
        daemon.stand_by();
    }

    let listener = serve::bind(listen, limits.backlog).map_err(|source| DaemonError::Bind {
        addr: listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(DaemonError::Serve)?;
    tracing::info!(%addr, "serving on http://{addr}/");
    let token = CancellationToken::new();
    let listener = listener.into_std().map_err(DaemonError::Serve)?;
    let server = serve::start(
        listener,
        AppState::with_telemetry(catalog, telemetry.clone()),
        &limits,
        token.clone(),
    )
    .map_err(DaemonError::Serve)?;

    daemon.status.listening = format!("serving http://{addr}/");
    daemon.beat();
    daemon.notify_status(&[NotifyState::Ready]);
    if let Some(w) = watchdog {
        tracing::info!(
            "systemd watchdog every {:?}; the working loop pings every {tick:?}",
            w
        );
    }

    daemon.work().await;

    daemon.notifier.send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: draining HTTP connections"),
    ]);
    telemetry.stopping();
    tracing::info!("stopping");
    token.cancel();
    if tokio::time::timeout(DRAIN, server.stopped()).await.is_err() {
        // Exiting closes them.
        tracing::warn!("HTTP clients still connected after {DRAIN:?}; closing them");
    }
    tracing::info!("stopped");
    Ok(())
}

impl Daemon {
    /// The working loop: cycles on the schedule, reloads on SIGHUP, returns on
    /// SIGTERM/SIGINT.
    async fn work(&mut self) {
        // The first cycle runs at once: partners may have news since we last ran.
        let mut next = Instant::now();
        let mut roles = self.replication.as_ref().map(|r| r.leadership.watch());
        loop {
            self.beat();
            if self.follow_role() {
                // A new term: its first cycle fetches every source, at once.
                next = Instant::now();
            }
            let mut wait = next
                .saturating_duration_since(Instant::now())
                .min(self.tick);
            if self.pipeline.is_none() {
                wait = wait.min(self.cfg.store.standby_refresh);
            }
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.stop.cancelled() => return,
                _ = self.hup.recv() => {
                    if self.reload() {
                        // Added sources should not wait for the next scheduled cycle.
                        next = Instant::now();
                    }
                    continue;
                }
                _ = role::changed(&mut roles) => continue,
                c = self.mirroring.finished() => {
                    if let (Some(c), None) = (c, &self.pipeline) {
                        self.catalog.store(c);
                    }
                    continue;
                }
                _ = tokio::time::sleep(wait) => {}
            }
            if self.pipeline.is_none() {
                // Standing by: the leader may have published since.
                self.reread_standby();
                next = Instant::now() + self.cfg.store.standby_refresh;
                continue;
            }
            if Instant::now() < next {
                continue;
            }
            if let Outcome::Stop = self.guarded_cycle().await {
                return;
            }
            next = self.next_fire();
        }
    }

    /// When the next source is due. Each source has its own due time (its schedule or
    /// the global one, with jitter, back-off and the partner's hints; see
    /// [`crate::schedule`]), kept in the store. The floor keeps a source that stays due
    /// (its host was busy until the run's deadline) from spinning the loop.
    fn next_fire(&self) -> Instant {
        let Some(pipeline) = &self.pipeline else {
            return Instant::now() + self.tick;
        };
        let now = Utc::now();
        let wait = (pipeline.next_wakeup(now) - now)
            .to_std()
            .unwrap_or_default()
            .max(Duration::from_secs(1));
        Instant::now() + wait
    }

    /// The loop is alive: ping the watchdog and the health heartbeat.
    fn beat(&self) {
        self.notifier.send(&[NotifyState::Watchdog]);
        self.telemetry
            .heartbeat(self.tick * 2 + Duration::from_secs(30));
    }

    fn notify_status(&self, extra: &[NotifyState]) {
        let status = self.status.render();
        let mut states = extra.to_vec();
        states.push(NotifyState::Status(&status));
        self.notifier.send(&states);
    }

    /// Runs one cycle while still beating; abandons it past its budget or on SIGTERM.
    /// Abandoning is clean: each source is stored in its own transaction and publishing
    /// is synchronous, so the cycle can only be dropped between sources while fetching,
    /// or during an upload, where every object is recorded once it is complete (the next
    /// cycle uploads the rest).
    async fn guarded_cycle(&mut self) -> Outcome {
        let Some(pipeline) = &self.pipeline else {
            return Outcome::Done;
        };
        let mut roles = self.replication.as_ref().map(|r| r.leadership.watch());
        let budget = cycle_budget(&self.cfg);
        let mut ticker = tokio::time::interval(self.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let deadline = tokio::time::sleep(budget);
        tokio::pin!(deadline);
        let (catalog, telemetry) = (&self.catalog, &self.telemetry);
        let mode = if self.started_cycle {
            RefreshMode::Due
        } else {
            RefreshMode::Manual
        };
        self.started_cycle = true;
        let cycle = cycle(pipeline, catalog, telemetry, mode);
        tokio::pin!(cycle);
        let summary = loop {
            tokio::select! {
                s = &mut cycle => break s,
                _ = ticker.tick() => {
                    self.notifier.send(&[NotifyState::Watchdog]);
                    telemetry.heartbeat(self.tick * 2 + Duration::from_secs(30));
                }
                _ = self.term.recv() => {
                    tracing::info!("stop requested during a refresh: abandoning it; every source stored so far is complete");
                    return Outcome::Stop;
                }
                _ = self.int.recv() => return Outcome::Stop,
                _ = self.stop.cancelled() => return Outcome::Stop,
                _ = role::changed(&mut roles) => {
                    if self.epoch != self.replication.as_ref().and_then(|r| r.leadership.fence()).map(|f| f.epoch()) {
                        tracing::warn!("leadership lost during a refresh: abandoning it (its writes would be refused)");
                        break format!("last cycle {} ABANDONED: leadership lost", Utc::now().format("%H:%M:%SZ"));
                    }
                }
                _ = &mut deadline => {
                    tracing::error!("refresh still running after {budget:?}; abandoned (a partner or the store is stuck)");
                    break format!("last cycle {} ABANDONED after {}s", Utc::now().format("%H:%M:%SZ"), budget.as_secs());
                }
            }
        };
        self.status.cycle = summary;
        self.notify_status(&[]);
        Outcome::Done
    }

    fn publish_from_store(&mut self) -> Result<(), DaemonError> {
        let Some(pipeline) = &self.pipeline else {
            return Ok(());
        };
        let started = Instant::now();
        let now = Utc::now();
        match pipeline.publish(now) {
            Ok((cat, rep)) => {
                let items = combined_items(pipeline);
                self.catalog.store(cat);
                self.telemetry
                    .publish_ok(now, started.elapsed(), rep.written.len(), items);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// SIGHUP: re-read the config file, validate it, apply it. Returns whether the new
    /// config is now running.
    fn reload(&mut self) -> bool {
        let mut states = vec![NotifyState::Reloading];
        // systemd (since v253) wants MONOTONIC_USEC with RELOADING=1 to tell this reload
        // from an earlier one.
        if let Ok(m) = NotifyState::monotonic_usec_now() {
            states.push(m);
        }
        states.push(NotifyState::Status("reloading configuration"));
        self.notifier.send(&states);
        let path = self.cfg.path.clone();
        tracing::info!(config = %path.display(), "reloading configuration");
        let applied = match Config::load(&path).map_err(|e| e.to_string()) {
            Err(e) => Err(e),
            Ok(new) => self.apply(new),
        };
        // A refusal note lasts until a reload succeeds.
        self.status
            .notes
            .retain(|n| !n.starts_with("config reload refused"));
        let ok = match applied {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("config reload refused; still running the previous config: {e}");
                self.status.notes.push(format!(
                    "config reload refused at {}, previous config still running: {}",
                    Utc::now().format("%H:%M:%SZ"),
                    e.lines().map(str::trim).collect::<Vec<_>>().join(" ")
                ));
                false
            }
        };
        self.notify_status(&[NotifyState::Ready]);
        ok
    }

    fn apply(&mut self, new: Config) -> Result<(), String> {
        self.status
            .notes
            .retain(|n| !n.starts_with("server.listen"));
        if new.server.listen != self.listen {
            tracing::warn!(
                "server.listen changed to {}; still listening on {} until restarted",
                new.server.listen,
                self.listen
            );
            self.status.notes.push(format!(
                "server.listen changed to {}: takes effect after a restart",
                new.server.listen
            ));
        }
        self.status
            .notes
            .retain(|n| !n.starts_with("[server] limits"));
        if new.server.limits != self.server_limits {
            tracing::warn!("[server] timeouts or limits changed; the running server keeps its own until restarted");
            self.status
                .notes
                .push("[server] limits changed: take effect after a restart".into());
        }
        let old = &self.cfg.sources;
        let added: Vec<String> = new
            .sources
            .iter()
            .filter(|s| !old.iter().any(|o| o.id == s.id))
            .map(|s| s.id.to_string())
            .collect();
        let removed: Vec<String> = old
            .iter()
            .filter(|o| !new.sources.iter().any(|s| s.id == o.id))
            .map(|o| o.id.to_string())
            .collect();
        let changed: Vec<String> = new
            .sources
            .iter()
            .filter(|s| old.iter().any(|o| o.id == s.id && o != *s))
            .map(|s| s.id.to_string())
            .collect();
        let pipeline = self.open_pipeline(&new).map_err(|e| e.to_string())?;
        tracing::info!(
            added = ?added,
            removed = ?removed,
            changed = ?changed,
            schedule = %new.publish.schedule,
            "configuration reloaded"
        );
        for r in &removed {
            self.telemetry.forget_source(r);
        }
        self.pipeline = pipeline;
        self.cfg = new;
        Ok(())
    }
}

impl Daemon {
    /// The pipeline for `cfg`: on the store of this process's term while it leads,
    /// none while it stands by, and always one without replication.
    fn open_pipeline(&self, cfg: &Config) -> Result<Option<Pipeline>, crate::store::StoreError> {
        match &self.replication {
            None => Pipeline::open(cfg.clone()).map(Some),
            Some(r) => match r.leadership.fence() {
                Some(fence) if Some(fence.epoch()) == self.epoch => {
                    r.pipeline(cfg, fence).map(Some)
                }
                _ => Ok(None),
            },
        }
    }

    /// Follows the election: opens the pipeline when a term begins (and publishes from
    /// the store, so the new leader's outputs are current at once), drops it when the
    /// term ends. Returns whether a term began.
    fn follow_role(&mut self) -> bool {
        let Some(r) = &self.replication else {
            return false;
        };
        match (r.leadership.fence(), self.epoch) {
            (Some(fence), term) if term != Some(fence.epoch()) => {
                let epoch = fence.epoch();
                let pipeline = match r.pipeline(&self.cfg, fence) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(epoch, "leading, but cannot open the store: {e}; retrying");
                        return false;
                    }
                };
                tracing::info!(epoch, "leading: refreshing and publishing");
                self.mirroring.stop();
                self.pipeline = Some(pipeline);
                self.epoch = Some(epoch);
                self.started_cycle = false;
                self.telemetry.leading(epoch);
                if let Err(e) = self.publish_from_store() {
                    tracing::error!(epoch, "first publish of the term failed: {e}");
                }
                if let Some(p) = &self.pipeline {
                    update_source_gauges(p, &self.telemetry);
                }
                true
            }
            (None, Some(epoch)) => {
                tracing::warn!(epoch, "leadership lost: standing by");
                self.stand_by();
                false
            }
            _ => false,
        }
    }

    /// Stops working (if it did) and serves what is published on disk until the
    /// bucket's documents are read (the next round, at once).
    fn stand_by(&mut self) {
        self.pipeline = None;
        self.epoch = None;
        self.telemetry.standing_by();
        self.catalog.store(crate::standby::catalog_from_dir(
            &self.cfg.publish.output_dir,
        ));
    }

    /// A standby's round: with `publish.target`, a bucket round (its catalog is
    /// stored when it ends; a failed one keeps the last); else the output directory.
    fn reread_standby(&mut self) {
        match &self.cfg.publish.target {
            Some(t) => self.mirroring.start(t),
            None => self.catalog.store(crate::standby::catalog_from_dir(
                &self.cfg.publish.output_dir,
            )),
        }
    }
}

fn update_source_gauges(pipeline: &Pipeline, telemetry: &Telemetry) {
    let store = pipeline.store();
    for s in &pipeline.cfg.sources {
        match store.source_state(&s.id) {
            Ok(st) => telemetry.source_state(s.id.as_str(), st.last_success, st.items_held),
            Err(e) => tracing::warn!(source = %s.id, error = %e, "cannot read source state"),
        }
    }
}

fn combined_items(pipeline: &Pipeline) -> usize {
    pipeline
        .store()
        .visible_items(pipeline.cfg.publish.max_items)
        .map(|v| v.len())
        .unwrap_or(0)
}

/// One refresh-and-publish cycle; records it and returns the `STATUS=` summary.
async fn cycle(
    pipeline: &Pipeline,
    catalog: &SharedCatalog,
    telemetry: &Telemetry,
    mode: RefreshMode,
) -> String {
    let now = Utc::now();
    let reports = pipeline.refresh_with(now, mode).await;
    // Gauges first, so whoever sees a cycle's counters also sees its gauges.
    update_source_gauges(pipeline, telemetry);
    for r in &reports {
        telemetry.record_source(r);
        if let SourceStatus::Failed(e) = &r.status {
            tracing::warn!(source = %r.id, "{e}");
        }
    }
    let started = Instant::now();
    if !pipeline.needs_publish() {
        // Only 304s and unchanged documents: nothing to render, nothing to rewrite; a
        // failed upload is still retried (once its back-off has passed).
        let mut summary = summarise(&reports, &Ok((0, catalog.load().len())));
        summary.push_str(&upload(pipeline, telemetry, now).await);
        tracing::info!("{summary}; nothing changed");
        return summary;
    }
    let mut uploaded = String::new();
    let publish = match pipeline.publish(now) {
        Ok((cat, rep)) => {
            let total = cat.len();
            let items = combined_items(pipeline);
            catalog.store(cat);
            telemetry.publish_ok(now, started.elapsed(), rep.written.len(), items);
            // Subscribers the hub tells fetch from the bucket: upload first.
            uploaded = upload(pipeline, telemetry, now).await;
            // WebSub: tell the hub which feeds changed (never fails the cycle).
            pipeline.announce(&rep).await;
            Ok((rep.written.len(), total))
        }
        Err(e) => {
            tracing::error!(error = %e, "publish failed; the previous outputs stay served");
            telemetry.publish_failed(started.elapsed(), &e.to_string());
            Err(e.to_string())
        }
    };
    let summary = summarise(&reports, &publish) + &uploaded;
    tracing::info!("{summary}");
    summary
}

/// The cycle's upload to `publish.target` (none without one), recorded in the metrics
/// and the health verdict; returns its part of the `STATUS=` line.
async fn upload(pipeline: &Pipeline, telemetry: &Telemetry, now: DateTime<Utc>) -> String {
    use crate::upload::{Outcome, Retry};
    let Some(r) = pipeline.upload(now, Retry::AfterBackoff).await else {
        return String::new();
    };
    match &r.outcome {
        Outcome::Done => {
            telemetry.upload_ok(now, r.uploaded.len(), r.deleted.len(), r.held_deletes);
            let held = if r.held_deletes > 0 {
                format!(", {} deletes HELD (publish.max_deletes)", r.held_deletes)
            } else {
                String::new()
            };
            format!(", {} objects uploaded{held}", r.uploaded.len())
        }
        Outcome::Failed { error, retry_at } => {
            let failures = pipeline
                .store()
                .remote_state(&r.target)
                .map(|s| s.consecutive_failures)
                .unwrap_or(1);
            telemetry.upload_failed(r.uploaded.len(), failures, error);
            format!(
                ", UPLOAD FAILED ({error}); retry after {}",
                retry_at.format("%H:%M:%SZ")
            )
        }
        Outcome::Paused(at) => {
            telemetry.upload_paused();
            format!(", upload paused until {}", at.format("%H:%M:%SZ"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_is_half_the_watchdog_and_capped() {
        assert_eq!(tick_for(None), MAX_TICK);
        assert_eq!(
            tick_for(Some(Duration::from_secs(10))),
            Duration::from_secs(5)
        );
        assert_eq!(tick_for(Some(Duration::from_secs(600))), MAX_TICK);
    }

    #[test]
    fn status_line_is_one_line() {
        let s = StatusLine {
            listening: "serving http://127.0.0.1:1/".into(),
            cycle: "last cycle".into(),
            notes: vec!["config reload refused: line 1\nline 2".into()],
        };
        assert!(!s.render().contains('\n'));
    }
}
