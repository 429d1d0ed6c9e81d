//! Uploading the published outputs to object storage (`publish.target`, an
//! S3-compatible bucket a CDN serves): a sync step after publishing, which mirrors what
//! `output_dir` holds to the bucket.
//!
//! Why a sync after the local publish rather than a second writer inside it: the local
//! files stay what `feedwerk serve` and the daemon serve, written atomically as before,
//! and the upload reads only what the publisher recorded in the store — each output's
//! hash (`outputs`) and headers (`output_headers`, exactly the `Content-Type` and
//! `Cache-Control` the server sends) — so a cycle where nothing changed compares rows
//! and reads no file. What was uploaded is recorded per object (`remote_objects`).
//!
//! One [`sync`]:
//!
//! 1. [`plan`]: every published output whose bytes or headers differ from what was
//!    last uploaded, and every uploaded object no longer published;
//! 2. archive pages, post pages and assets first ([`Phase::Pages`]), then the
//!    subscription documents that link to them ([`Phase::Subscriptions`]) — so a reader
//!    never follows a link to a page not there yet;
//! 3. the deletes, only after every upload succeeded, and none at all when there are
//!    more than `publish.max_deletes` (they are reported and held back instead).
//!
//! An object without a record (a new store, an upload cut off before it was recorded)
//! is looked at first: when the bucket already holds the same bytes (its ETag is their
//! MD5) with the same headers, it is recorded without uploading again.
//!
//! Failures are data, as for partners: the first failed call stops the sync, the
//! objects uploaded so far are recorded (they are complete objects), nothing is
//! deleted, and the target's state in the store (`remote_state`) counts the failure
//! and sets a back-off before the next attempt. The bucket keeps serving the previous
//! version of every object not replaced yet. Only identity bytes are uploaded: S3
//! cannot choose a variant by `Accept-Encoding`, so compression is the CDN's (README).

mod client;
mod credentials;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use crate::config::RemoteTarget;
use crate::schedule::Politeness;
use crate::store::{Backend, PublishedOutput, RemoteObject, RemoteState, StoreError};
pub use client::{single_put_etag, Client, Fetched, Found, Headers, Listed};

/// Uploads (and deletes) in flight at once.
const CONCURRENCY: usize = 8;

/// Back-off after a failed upload: one minute, doubling, at most an hour (a target that
/// is down costs one quick failure per step, and is retried at least hourly).
fn politeness() -> Politeness {
    Politeness {
        backoff_base: Duration::from_secs(60),
        backoff_cap: Duration::from_secs(3600),
        ..Politeness::default()
    }
}

/// Which step of a sync uploads an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Archive pages, post pages and the stylesheet and script: what the subscription
    /// documents link to.
    Pages,
    /// The feeds, the news page and the OPML list: what readers poll.
    Subscriptions,
}

impl Phase {
    pub fn of(path: &str) -> Phase {
        let page = path.starts_with("archive/")
            || path.contains("/archive/")
            || path.starts_with("posts/")
            || path == crate::render::assets::FEED_XSL_PATH
            || path == crate::render::assets::EMBED_JS_PATH;
        if page {
            Phase::Pages
        } else {
            Phase::Subscriptions
        }
    }
}

/// One object to upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub output: PublishedOutput,
    /// Whether the store has a record of this path on the target (else it is looked at
    /// before uploading).
    pub recorded: bool,
}

/// What a sync would do, decided from the store and `output_dir` alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// In upload order: [`Phase::Pages`] first, then [`Phase::Subscriptions`].
    pub uploads: Vec<Planned>,
    /// Uploaded objects no longer published, by path.
    pub deletes: Vec<String>,
    /// Published outputs already uploaded as they are.
    pub unchanged: usize,
    pub max_deletes: usize,
}

impl Plan {
    /// Too many deletes: the guard holds them all back.
    pub fn deletes_held(&self) -> bool {
        self.deletes.len() > self.max_deletes
    }
}

/// Compares what is published (outputs whose files are in `out_dir`) with what was
/// uploaded to `t`.
pub fn plan(store: &dyn Backend, t: &RemoteTarget, out_dir: &Path) -> Result<Plan, StoreError> {
    let uploaded = store.remote_objects(&t.url)?;
    let published: Vec<PublishedOutput> = store
        .published_outputs()?
        .into_iter()
        .filter(|o| out_dir.join(&o.path).is_file())
        .collect();
    let live: HashSet<&str> = published.iter().map(|o| o.path.as_str()).collect();
    let mut deletes: Vec<String> = uploaded
        .keys()
        .filter(|p| !live.contains(p.as_str()))
        .cloned()
        .collect();
    deletes.sort();
    let mut unchanged = 0;
    let mut uploads = Vec::new();
    for o in &published {
        match uploaded.get(&o.path) {
            Some(r)
                if r.content_hash == o.content_hash
                    && r.content_type == o.content_type
                    && r.cache_control == o.cache_control =>
            {
                unchanged += 1
            }
            r => uploads.push(Planned {
                output: o.clone(),
                recorded: r.is_some(),
            }),
        }
    }
    uploads.sort_by(|a, b| {
        (Phase::of(&a.output.path), &a.output.path)
            .cmp(&(Phase::of(&b.output.path), &b.output.path))
    });
    Ok(Plan {
        uploads,
        deletes,
        unchanged,
        max_deletes: t.max_deletes,
    })
}

/// How a sync ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every upload (and the deletes the guard allowed) done.
    Done,
    /// Stopped at the first failure; the rest is retried after `retry_at`.
    Failed {
        error: String,
        retry_at: DateTime<Utc>,
    },
    /// Not tried: backing off after earlier failures until then.
    Paused(DateTime<Utc>),
}

/// What one sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadReport {
    /// The target, `s3://bucket/prefix/`.
    pub target: String,
    /// Paths uploaded, in the order they completed.
    pub uploaded: Vec<String>,
    /// Paths found already in the bucket with the same bytes and headers, now recorded.
    pub verified: Vec<String>,
    /// Paths deleted from the bucket.
    pub deleted: Vec<String>,
    /// Deletes held back by `max_deletes` (all of them when there were too many).
    pub held_deletes: usize,
    /// Published outputs already uploaded as they are.
    pub unchanged: usize,
    pub outcome: Outcome,
}

impl UploadReport {
    fn new(target: &str) -> UploadReport {
        UploadReport {
            target: target.to_owned(),
            uploaded: Vec::new(),
            verified: Vec::new(),
            deleted: Vec::new(),
            held_deletes: 0,
            unchanged: 0,
            outcome: Outcome::Done,
        }
    }
}

/// Whether a sync honours the back-off after failures: the daemon does; a manual
/// `build` does too unless `--force`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    AfterBackoff,
    Now,
}

fn lock(store: &Mutex<Box<dyn Backend>>) -> MutexGuard<'_, Box<dyn Backend>> {
    // As in `pipeline`: SQLite rolls back a transaction a panic interrupted.
    store.lock().unwrap_or_else(|e| e.into_inner())
}

/// Uploads what changed in `out_dir` to `t` (see the module doc). The store is locked
/// only to read the plan and to record each finished call, never across a request.
pub async fn sync(
    t: &RemoteTarget,
    store: &Mutex<Box<dyn Backend>>,
    out_dir: &Path,
    now: DateTime<Utc>,
    retry: Retry,
) -> UploadReport {
    let mut report = UploadReport::new(&t.url);
    let state = match lock(store).remote_state(&t.url) {
        Ok(s) => s,
        Err(e) => return failed(report, t, store, RemoteState::default(), e.to_string(), now),
    };
    if let (Retry::AfterBackoff, Some(at)) = (retry, state.next_attempt) {
        if at > now {
            report.outcome = Outcome::Paused(at);
            return report;
        }
    }
    let planned = plan(&**lock(store), t, out_dir);
    let plan = match planned {
        Ok(p) => p,
        Err(e) => return failed(report, t, store, state, e.to_string(), now),
    };
    report.unchanged = plan.unchanged;
    if plan.deletes_held() {
        report.held_deletes = plan.deletes.len();
        tracing::warn!(
            target = %t.url,
            "{} objects are no longer published, more than publish.max_deletes ({}): none deleted; raise max_deletes if this is meant",
            plan.deletes.len(),
            t.max_deletes
        );
    }
    let deletes: &[String] = if plan.deletes_held() {
        &[]
    } else {
        &plan.deletes
    };
    // A quiet cycle makes no client (setting one up loads the TLS roots: tens of ms).
    if !plan.uploads.is_empty() || !deletes.is_empty() {
        let client = match Client::new(t) {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("cannot set up the client for {}: {e}", t.url);
                return failed(report, t, store, state, msg, now);
            }
        };
        for phase in [Phase::Pages, Phase::Subscriptions] {
            let batch: Vec<&Planned> = plan
                .uploads
                .iter()
                .filter(|p| Phase::of(&p.output.path) == phase)
                .collect();
            if let Err(e) = upload_all(&client, t, store, out_dir, &batch, now, &mut report).await {
                return failed(report, t, store, state, e, now);
            }
        }
        if let Err(e) = delete_all(&client, t, store, deletes, &mut report).await {
            return failed(report, t, store, state, e, now);
        }
    }
    let mut s = state;
    s.last_attempt = Some(now);
    s.last_success = Some(now);
    s.consecutive_failures = 0;
    s.last_error = None;
    s.next_attempt = None;
    s.held_deletes = report.held_deletes as u32;
    if let Err(e) = save_state(store, t, &mut s) {
        report.outcome = Outcome::Failed {
            error: e.to_string(),
            retry_at: now,
        };
    }
    report
}

/// Records the state with the number of objects now recorded.
fn save_state(
    store: &Mutex<Box<dyn Backend>>,
    t: &RemoteTarget,
    s: &mut RemoteState,
) -> Result<(), StoreError> {
    let st = lock(store);
    s.objects = st.remote_objects(&t.url)?.len() as u32;
    st.save_remote_state(&t.url, s)
}

/// Ends a sync that failed: counts the failure and sets the back-off.
fn failed(
    mut report: UploadReport,
    t: &RemoteTarget,
    store: &Mutex<Box<dyn Backend>>,
    mut s: RemoteState,
    error: String,
    now: DateTime<Utc>,
) -> UploadReport {
    s.consecutive_failures += 1;
    s.last_attempt = Some(now);
    s.last_error = Some(error.clone());
    let wait = crate::schedule::backoff(&t.url, s.consecutive_failures, now, &politeness());
    let retry_at = now + chrono::Duration::from_std(wait).unwrap_or_default();
    s.next_attempt = Some(retry_at);
    if let Err(e) = save_state(store, t, &mut s) {
        tracing::error!(target = %t.url, error = %e, "cannot record the failed upload");
    }
    tracing::error!(target = %t.url, error = %error, "upload failed; the bucket keeps the objects not replaced yet; retrying after {retry_at}");
    report.outcome = Outcome::Failed { error, retry_at };
    report
}

/// Uploads one phase's objects, recording each as it completes; stops starting new
/// ones at the first failure and returns it.
async fn upload_all(
    client: &Client,
    t: &RemoteTarget,
    store: &Mutex<Box<dyn Backend>>,
    out_dir: &Path,
    batch: &[&Planned],
    now: DateTime<Utc>,
    report: &mut UploadReport,
) -> Result<(), String> {
    let stop = AtomicBool::new(false);
    let mut results = futures_util::stream::iter(batch.iter().copied())
        .take_while(|_| std::future::ready(!stop.load(Ordering::Relaxed)))
        .map(|p| upload_one(client, out_dir, p))
        .buffer_unordered(CONCURRENCY);
    let mut first_error = None;
    while let Some(r) = results.next().await {
        match r {
            Ok((path, object, done)) => {
                if let Err(e) = lock(store).save_remote_object(&t.url, &path, &object, now) {
                    stop.store(true, Ordering::Relaxed);
                    first_error.get_or_insert(e.to_string());
                }
                match done {
                    Done::Uploaded => report.uploaded.push(path),
                    Done::Verified => report.verified.push(path),
                }
            }
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

enum Done {
    Uploaded,
    Verified,
}

/// Uploads one object, or finds it already there when the store has no record of it.
async fn upload_one(
    client: &Client,
    out_dir: &Path,
    p: &Planned,
) -> Result<(String, RemoteObject, Done), String> {
    let o = &p.output;
    let file = out_dir.join(&o.path);
    let body = tokio::fs::read(&file)
        .await
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    // What is recorded is what was sent, even if the file changed since it was published.
    let object = RemoteObject {
        content_hash: crate::catalog::content_hash(&body),
        content_type: o.content_type.clone(),
        cache_control: o.cache_control.clone(),
        etag: None,
    };
    let headers = Headers {
        content_type: &o.content_type,
        cache_control: &o.cache_control,
    };
    // object_store's message names the method and the URL.
    let at = |e: object_store::Error| e.to_string();
    if !p.recorded {
        let md5 = single_put_etag(&body);
        if let Some(found) = client.head(&o.path).await.map_err(at)? {
            let same = found.etag.as_deref() == Some(md5.as_str())
                && found.content_type.as_deref() == Some(headers.content_type)
                && found.cache_control.as_deref() == Some(headers.cache_control);
            if same {
                let object = RemoteObject {
                    etag: found.etag,
                    ..object
                };
                return Ok((o.path.clone(), object, Done::Verified));
            }
        }
    }
    let etag = client
        .put(&o.path, Bytes::from(body), &headers)
        .await
        .map_err(at)?;
    Ok((
        o.path.clone(),
        RemoteObject { etag, ..object },
        Done::Uploaded,
    ))
}

/// Deletes objects no longer published, forgetting each once it is gone.
async fn delete_all(
    client: &Client,
    t: &RemoteTarget,
    store: &Mutex<Box<dyn Backend>>,
    deletes: &[String],
    report: &mut UploadReport,
) -> Result<(), String> {
    let mut results = futures_util::stream::iter(deletes)
        .map(|path| async move {
            client
                .delete(path)
                .await
                .map(|()| path.clone())
                .map_err(|e| format!("delete {}: {e}", client.key(path)))
        })
        .buffer_unordered(CONCURRENCY);
    let mut first_error = None;
    while let Some(r) = results.next().await {
        match r {
            Ok(path) => {
                if let Err(e) = lock(store).forget_remote_object(&t.url, &path) {
                    first_error.get_or_insert(e.to_string());
                }
                report.deleted.push(path);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// What `build --dry-run` says about the target: the paths that would be uploaded
/// (changed since the last upload, or about to be rewritten by the publish) and deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DryRun {
    pub target: String,
    pub uploads: Vec<String>,
    pub deletes: Vec<String>,
    pub deletes_held: bool,
    pub max_deletes: usize,
}

/// [`plan`] plus the documents the coming publish would write (`rewrite`, from
/// `build --dry-run`'s plan): those change in `out_dir` first, then upload.
pub fn dry_run(
    store: &dyn Backend,
    t: &RemoteTarget,
    out_dir: &Path,
    rewrite: &[String],
) -> Result<DryRun, StoreError> {
    let p = plan(store, t, out_dir)?;
    let mut uploads: Vec<String> = p.uploads.iter().map(|u| u.output.path.clone()).collect();
    for path in rewrite {
        if !uploads.contains(path) {
            uploads.push(path.clone());
        }
    }
    uploads.sort_by(|a, b| (Phase::of(a), a).cmp(&(Phase::of(b), b)));
    let live: HashSet<&String> = uploads.iter().collect();
    let deletes: Vec<String> = p
        .deletes
        .into_iter()
        .filter(|d| !live.contains(d))
        .collect();
    Ok(DryRun {
        target: t.url.clone(),
        deletes_held: deletes.len() > p.max_deletes,
        uploads,
        deletes,
        max_deletes: p.max_deletes,
    })
}

#[cfg(test)]
mod tests {
    use super::Phase;

    #[test]
    fn pages_and_assets_go_before_the_documents_that_link_to_them() {
        for page in [
            "archive/3.xml",
            "sources/efus/archive/1.json",
            "posts/defus/sommerfest.html",
            "feed.xsl",
            "embed.js",
        ] {
            assert_eq!(Phase::of(page), Phase::Pages, "{page}");
        }
        for doc in [
            "rss.xml",
            "atom.xml",
            "feed.json",
            "index.html",
            "sources.opml",
            "tags/kultur/rss.xml",
        ] {
            assert_eq!(Phase::of(doc), Phase::Subscriptions, "{doc}");
        }
    }
}
