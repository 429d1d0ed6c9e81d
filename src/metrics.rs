//! What an operator can watch: the Prometheus metrics behind `/metrics` and the health
//! verdict behind `/healthz`.
//!
//! [`Telemetry`] is shared by the daemon's working loop (which records each cycle and
//! beats the heartbeat) and the HTTP server (which counts requests and answers the two
//! endpoints). It owns the `prometheus-client` registry; that crate's types stay in
//! this module. Deciding *when* to record is the daemon's job; what a cycle did is its
//! report ([`crate::model::SourceReport`]), so this module depends on no stage.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::model::{SourceReport, SourceStatus};

/// `Content-Type` of the classic Prometheus text format (0.0.4).
pub const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// `Content-Type` of the OpenMetrics text format, served when a scraper asks for it.
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FetchLabels {
    source: String,
    /// `updated`, `not_modified`, `skipped` or `failed`.
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    path: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn fetch_histogram() -> Histogram {
    // 50 ms … ~100 s: a local directory read up to a partner at its timeout.
    Histogram::new(exponential_buckets(0.05, 2.0, 12))
}

/// Every metric feedwerk exports, registered once.
struct Metrics {
    registry: Registry,
    fetches: Family<FetchLabels, Counter>,
    last_success: Family<SourceLabel, Gauge>,
    items_held: Family<SourceLabel, Gauge>,
    items_new: Family<SourceLabel, Counter>,
    fetch_duration: HistogramFamily<SourceLabel>,
    publish_duration: Histogram,
    publishes: Family<ResultLabel, Counter>,
    items_published: Gauge,
    documents_written: Counter,
    last_publish: Gauge,
    upload: UploadMetrics,
    http_requests: Family<HttpLabels, Counter>,
    connections_open: Gauge,
    connections_max: Gauge,
    connections_accepted: Counter,
    connections_closed: Family<ReasonLabel, Counter>,
    accept_errors: Counter,
    leadership: LeaderMetrics,
}

/// Which process leads, when several share one PostgreSQL store.
#[derive(Default)]
struct LeaderMetrics {
    leader: Gauge,
    epoch: Gauge,
}

impl LeaderMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "leader",
            "1 while this process refreshes and publishes, 0 while it stands by (several processes on one PostgreSQL store; always 1 with SQLite)",
            self.leader.clone(),
        );
        registry.register(
            "leader_epoch",
            "The leadership term this process leads in (0 with SQLite, or while standing by)",
            self.epoch.clone(),
        );
    }
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("feedwerk");
        let m = Metrics {
            fetches: Family::default(),
            last_success: Family::default(),
            items_held: Family::default(),
            items_new: Family::default(),
            fetch_duration: Family::new_with_constructor(fetch_histogram),
            publish_duration: Histogram::new(exponential_buckets(0.01, 2.0, 12)),
            publishes: Family::default(),
            items_published: Gauge::default(),
            documents_written: Counter::default(),
            last_publish: Gauge::default(),
            upload: UploadMetrics::default(),
            http_requests: Family::default(),
            connections_open: Gauge::default(),
            connections_max: Gauge::default(),
            connections_accepted: Counter::default(),
            connections_closed: Family::default(),
            accept_errors: Counter::default(),
            leadership: LeaderMetrics::default(),
            registry: Registry::default(),
        };
        registry.register(
            "source_fetches",
            "Refreshes of a source, by result (updated, not_modified, skipped, failed)",
            m.fetches.clone(),
        );
        registry.register(
            "source_last_success_timestamp_seconds",
            "Unix time of the source's last successful refresh (0: never)",
            m.last_success.clone(),
        );
        registry.register(
            "source_items",
            "Items held in the store for the source (not withdrawn)",
            m.items_held.clone(),
        );
        registry.register(
            "source_items_new",
            "Items seen for the first time, by source",
            m.items_new.clone(),
        );
        registry.register(
            "source_fetch_duration_seconds",
            "Time to fetch (or read) one source and store its items",
            m.fetch_duration.clone(),
        );
        registry.register(
            "publish_duration_seconds",
            "Time to render and write every output",
            m.publish_duration.clone(),
        );
        registry.register(
            "publishes",
            "Publish runs, by result (ok, failed)",
            m.publishes.clone(),
        );
        registry.register(
            "items_published",
            "Items in the combined feed after the last publish",
            m.items_published.clone(),
        );
        registry.register(
            "documents_written",
            "Output documents rewritten because their bytes changed",
            m.documents_written.clone(),
        );
        registry.register(
            "last_publish_timestamp_seconds",
            "Unix time of the last successful publish",
            m.last_publish.clone(),
        );
        m.upload.register(&mut registry);
        registry.register(
            "http_requests",
            "HTTP requests answered, by path (unknown paths counted as \"other\") and status",
            m.http_requests.clone(),
        );
        registry.register(
            "http_connections_open",
            "HTTP connections open now",
            m.connections_open.clone(),
        );
        registry.register(
            "http_connections_max",
            "The cap on open HTTP connections (server.max_connections)",
            m.connections_max.clone(),
        );
        registry.register(
            "http_connections_accepted",
            "HTTP connections accepted",
            m.connections_accepted.clone(),
        );
        registry.register(
            "http_connections_closed",
            "HTTP connections closed, by reason (done, header_timeout, idle_timeout, write_timeout, shed, refused, bad_request, head_too_large, error, shutdown)",
            m.connections_closed.clone(),
        );
        registry.register(
            "http_accept_errors",
            "Failed accepts of an HTTP connection (out of file descriptors, most likely)",
            m.accept_errors.clone(),
        );
        m.leadership.register(&mut registry);
        registry.register(
            "build",
            "The running feedwerk version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        Metrics { registry, ..m }
    }
}

/// The metrics of uploads to `publish.target` (all zero without one).
#[derive(Default)]
struct UploadMetrics {
    uploads: Family<ResultLabel, Counter>,
    objects_uploaded: Counter,
    objects_deleted: Counter,
    deletes_held: Gauge,
    consecutive_failures: Gauge,
    last_upload: Gauge,
}

impl UploadMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "uploads",
            "Uploads to publish.target, by result (ok, failed, paused: backing off after failures)",
            self.uploads.clone(),
        );
        registry.register(
            "objects_uploaded",
            "Objects uploaded to publish.target because their bytes or headers changed",
            self.objects_uploaded.clone(),
        );
        registry.register(
            "objects_deleted",
            "Objects deleted from publish.target because they are no longer published",
            self.objects_deleted.clone(),
        );
        registry.register(
            "upload_deletes_held",
            "Deletes the last upload held back because there were more than publish.max_deletes",
            self.deletes_held.clone(),
        );
        registry.register(
            "upload_consecutive_failures",
            "Failed uploads to publish.target since the last one that succeeded",
            self.consecutive_failures.clone(),
        );
        registry.register(
            "last_upload_timestamp_seconds",
            "Unix time of the last successful upload to publish.target",
            self.last_upload.clone(),
        );
    }
}

/// One path's request counters for the statuses nearly every answer has; the same
/// series [`Telemetry::http_request`] counts into.
#[derive(Debug, Clone)]
pub struct PathCounters {
    ok: Counter,
    not_modified: Counter,
}

impl PathCounters {
    /// Counts an answer; `false` if its status has no counter here (count it by path).
    pub fn count(&self, status: u16) -> bool {
        match status {
            200 => self.ok.inc(),
            304 => self.not_modified.inc(),
            _ => return false,
        };
        true
    }
}

/// The health verdict's inputs.
#[derive(Debug)]
struct HealthState {
    /// Last time the working loop went round (it also pings the watchdog then).
    heartbeat: Instant,
    /// The loop is considered stalled when it has not gone round for this long.
    stall_after: Duration,
    /// Outcome of the last publish: when it succeeded, or why it failed.
    last_publish: Option<Result<DateTime<Utc>, String>>,
    /// Outcome of the last upload to `publish.target` (`None` without one).
    last_upload: Option<Result<DateTime<Utc>, String>>,
    stopping: bool,
    /// Standing by while another process leads: publishing is not this one's job.
    standby: bool,
}

/// Metrics and health, shared by the working loop and the HTTP server.
pub struct Telemetry {
    metrics: Metrics,
    health: Mutex<HealthState>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

fn result_label(s: &SourceStatus) -> &'static str {
    match s {
        SourceStatus::Updated { .. } => "updated",
        SourceStatus::NotModified => "not_modified",
        SourceStatus::Skipped(_) => "skipped",
        SourceStatus::Failed(_) => "failed",
    }
}

impl Telemetry {
    pub fn new() -> Telemetry {
        Telemetry {
            metrics: Metrics::new(),
            health: Mutex::new(HealthState {
                heartbeat: Instant::now(),
                stall_after: Duration::from_secs(300),
                last_publish: None,
                last_upload: None,
                stopping: false,
                standby: false,
            }),
        }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, HealthState> {
        // Plain data behind the lock: a panic elsewhere cannot leave it inconsistent.
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The working loop went round; it must do so again within `stall_after`.
    pub fn heartbeat(&self, stall_after: Duration) {
        let mut h = self.health();
        h.heartbeat = Instant::now();
        h.stall_after = stall_after;
    }

    pub fn stopping(&self) {
        self.health().stopping = true;
    }

    /// This process leads under `epoch` (0 with SQLite, where it always leads).
    pub fn leading(&self, epoch: i64) {
        self.metrics.leadership.leader.set(1);
        self.metrics.leadership.epoch.set(epoch);
        self.health().standby = false;
    }

    /// This process stands by; what it published while leading says nothing now.
    pub fn standing_by(&self) {
        self.metrics.leadership.leader.set(0);
        self.metrics.leadership.epoch.set(0);
        let mut h = self.health();
        h.standby = true;
        h.last_publish = None;
        h.last_upload = None;
    }

    /// Records one source's refresh.
    pub fn record_source(&self, r: &SourceReport) {
        let m = &self.metrics;
        let source = r.id.to_string();
        m.fetches
            .get_or_create(&FetchLabels {
                source: source.clone(),
                result: result_label(&r.status),
            })
            .inc();
        if let SourceStatus::Updated { new, .. } = r.status {
            m.items_new
                .get_or_create(&SourceLabel {
                    source: source.clone(),
                })
                .inc_by(new as u64);
        }
        if !matches!(r.status, SourceStatus::Skipped(_)) {
            m.fetch_duration
                .get_or_create(&SourceLabel { source })
                .observe(r.elapsed.as_secs_f64());
        }
    }

    /// Sets a source's gauges from what the store holds.
    pub fn source_state(&self, source: &str, last_success: Option<DateTime<Utc>>, items: i64) {
        let l = SourceLabel {
            source: source.to_owned(),
        };
        self.metrics
            .last_success
            .get_or_create(&l)
            .set(last_success.map_or(0, |t| t.timestamp()));
        self.metrics.items_held.get_or_create(&l).set(items);
        // Make the counter families list the source even before its first result.
        let _ = self.metrics.items_new.get_or_create(&l);
    }

    /// Drops every per-source series of a source no longer configured.
    pub fn forget_source(&self, source: &str) {
        let m = &self.metrics;
        let l = SourceLabel {
            source: source.to_owned(),
        };
        m.last_success.remove(&l);
        m.items_held.remove(&l);
        m.items_new.remove(&l);
        m.fetch_duration.remove(&l);
        for result in ["updated", "not_modified", "skipped", "failed"] {
            m.fetches.remove(&FetchLabels {
                source: source.to_owned(),
                result,
            });
        }
    }

    /// Records a successful publish.
    pub fn publish_ok(
        &self,
        at: DateTime<Utc>,
        took: Duration,
        written: usize,
        items_in_combined: usize,
    ) {
        let m = &self.metrics;
        m.publish_duration.observe(took.as_secs_f64());
        m.publishes
            .get_or_create(&ResultLabel { result: "ok" })
            .inc();
        m.documents_written.inc_by(written as u64);
        m.items_published.set(items_in_combined as i64);
        m.last_publish.set(at.timestamp());
        self.health().last_publish = Some(Ok(at));
    }

    /// Records a failed publish; the previous outputs stay served.
    pub fn publish_failed(&self, took: Duration, error: &str) {
        let m = &self.metrics;
        m.publish_duration.observe(took.as_secs_f64());
        m.publishes
            .get_or_create(&ResultLabel { result: "failed" })
            .inc();
        self.health().last_publish = Some(Err(error.to_owned()));
    }

    /// Records a successful upload to `publish.target`.
    pub fn upload_ok(&self, at: DateTime<Utc>, uploaded: usize, deleted: usize, held: usize) {
        let m = &self.metrics.upload;
        m.uploads.get_or_create(&ResultLabel { result: "ok" }).inc();
        m.objects_uploaded.inc_by(uploaded as u64);
        m.objects_deleted.inc_by(deleted as u64);
        m.deletes_held.set(held as i64);
        m.consecutive_failures.set(0);
        m.last_upload.set(at.timestamp());
        self.health().last_upload = Some(Ok(at));
    }

    /// Records a failed upload (`uploaded` objects went up before it failed); the bucket
    /// keeps serving what it had. `consecutive` counts this one.
    pub fn upload_failed(&self, uploaded: usize, consecutive: u32, error: &str) {
        let m = &self.metrics.upload;
        m.uploads
            .get_or_create(&ResultLabel { result: "failed" })
            .inc();
        m.objects_uploaded.inc_by(uploaded as u64);
        m.consecutive_failures.set(i64::from(consecutive));
        self.health().last_upload = Some(Err(error.to_owned()));
    }

    /// Records an upload not tried because of the back-off; the verdict stays failed.
    pub fn upload_paused(&self) {
        self.metrics
            .upload
            .uploads
            .get_or_create(&ResultLabel { result: "paused" })
            .inc();
    }

    /// Counts one answered HTTP request. `known` says whether the path is one we serve;
    /// unknown paths share one label so scanners cannot blow up the series count.
    pub fn http_request(&self, path: &str, known: bool, status: u16) {
        let path = if known { path } else { "other" };
        self.metrics
            .http_requests
            .get_or_create(&HttpLabels {
                path: path.to_owned(),
                status,
            })
            .inc();
    }

    /// The counters of a served path's common answers (200 and 304), for the server
    /// to keep with the document: counting through them is one atomic add, where
    /// [`Telemetry::http_request`] takes the family's lock and allocates a label.
    pub fn path_counters(&self, path: &str) -> PathCounters {
        let counter = |status: u16| {
            self.metrics
                .http_requests
                .get_or_create(&HttpLabels {
                    path: path.to_owned(),
                    status,
                })
                .clone()
        };
        PathCounters {
            ok: counter(200),
            not_modified: counter(304),
        }
    }

    /// The cap on open HTTP connections, as the server resolved it at start.
    pub fn connection_cap(&self, cap: usize) {
        self.metrics.connections_max.set(cap as i64);
    }

    /// An HTTP connection was accepted.
    pub fn connection_opened(&self) {
        self.metrics.connections_accepted.inc();
        self.metrics.connections_open.inc();
    }

    /// An HTTP connection ended; `reason` is one of the few the server names.
    pub fn connection_closed(&self, reason: &'static str) {
        self.metrics.connections_open.dec();
        self.metrics
            .connections_closed
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Accepting a connection failed (it stays in the kernel's queue).
    pub fn accept_failed(&self) {
        self.metrics.accept_errors.inc();
    }

    /// The health verdict: `Ok(summary)` or `Err(reason)`.
    pub fn check(&self) -> Result<String, String> {
        let h = self.health();
        if h.stopping {
            return Err("stopping".into());
        }
        let since = h.heartbeat.elapsed();
        if since > h.stall_after {
            return Err(format!(
                "scheduler stalled: its loop last went round {}s ago (limit {}s)",
                since.as_secs(),
                h.stall_after.as_secs()
            ));
        }
        if h.standby {
            // Healthy: the leader publishes; this process serves and waits its turn.
            return Ok(
                "standby: another feedwerk leads; serving the last published documents".into(),
            );
        }
        if let Some(Err(e)) = &h.last_upload {
            // Readers are served from the bucket: stale there is stale for them.
            return Err(format!("last upload to publish.target failed: {e}"));
        }
        match &h.last_publish {
            None => Err("nothing published yet".into()),
            Some(Err(e)) => Err(format!("last publish failed: {e}")),
            Some(Ok(at)) => Ok(format!(
                "ok: scheduler alive, last publish {}",
                at.format("%Y-%m-%dT%H:%M:%SZ")
            )),
        }
    }

    /// The metrics in the classic Prometheus text format, or OpenMetrics.
    pub fn encode(&self, openmetrics: bool) -> String {
        let mut out = String::new();
        let r = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.metrics.registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.metrics.registry)
        };
        r.expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_reports_failed_publish_and_stall() {
        let t = Telemetry::new();
        assert_eq!(t.check().unwrap_err(), "nothing published yet");
        t.publish_ok(Utc::now(), Duration::from_millis(5), 3, 7);
        assert!(t.check().is_ok());
        t.publish_failed(Duration::from_millis(5), "disk full");
        assert!(t.check().unwrap_err().contains("disk full"));
        t.publish_ok(Utc::now(), Duration::from_millis(5), 0, 7);
        t.upload_failed(2, 1, "connection refused");
        assert!(t.check().unwrap_err().contains("upload"));
        t.upload_ok(Utc::now(), 3, 0, 0);
        assert!(t.check().is_ok());
        t.heartbeat(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(5));
        assert!(t.check().unwrap_err().contains("stalled"));
    }

    #[test]
    fn text_format_has_prefix_types_and_build_info() {
        let t = Telemetry::new();
        t.source_state("efus", None, 4);
        let text = t.encode(false);
        assert!(
            text.contains("# TYPE feedwerk_source_items gauge"),
            "{text}"
        );
        assert!(
            text.contains("feedwerk_source_items{source=\"efus\"} 4"),
            "{text}"
        );
        assert!(text.contains("feedwerk_build_info{version="), "{text}");
        assert!(t.encode(true).ends_with("# EOF\n"));
    }

    #[test]
    fn a_standby_is_healthy_without_publishing_and_says_so() {
        let t = Telemetry::new();
        t.publish_ok(Utc::now(), Duration::from_millis(5), 3, 7);
        t.leading(4);
        let text = t.encode(false);
        assert!(text.contains("feedwerk_leader 1\n"), "{text}");
        assert!(text.contains("feedwerk_leader_epoch 4\n"), "{text}");
        t.standing_by();
        assert!(t.check().unwrap().starts_with("standby"));
        let text = t.encode(false);
        assert!(text.contains("feedwerk_leader 0\n"), "{text}");
        assert!(text.contains("feedwerk_leader_epoch 0\n"), "{text}");
        // Leading again, it is judged by its own publishes, not the old term's.
        t.leading(6);
        assert_eq!(t.check().unwrap_err(), "nothing published yet");
        // A stalled loop is unhealthy whatever the role.
        t.standing_by();
        t.heartbeat(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(5));
        assert!(t.check().unwrap_err().contains("stalled"));
    }
}
