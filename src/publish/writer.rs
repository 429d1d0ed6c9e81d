//! The publishing pass proper: documents in, files and catalog entries out.
//!
//! Every document is read back and checked ([`crate::render::verify`]) before it may
//! replace the published one; a document that fails keeps its previous file and
//! validators, and the failure is logged and reported. Front-door documents are read
//! back in full (well-formed, and parsed as a feed again); the many narrow ones are
//! scanned for well-formedness and their entries counted in the same pass (see
//! [`verify::Depth`]). Compressed variants of front-door documents are made once,
//! here; narrow ones are compressed by the server when asked for (see [`Reach`]).
//!
//! Files are written to temporary files in their directories by the writer threads,
//! without a sync each; when the pass is over, [`Publisher::finish`] syncs them all at
//! once and renames them into place ([`super::files::commit`] says why that is as
//! crash-safe as a sync per file), so readers (and a crash) never see half a file.
//!
//! Byte stability: a dated document (a feed, whose `updated`/`lastBuildDate` is "when
//! the content last changed") is first rendered with the date it was last published
//! with; if the bytes are the same as then, nothing changed and nothing is written, so
//! the ETag and Last-Modified stay and readers keep getting 304. Only when the content
//! differs is it rendered again with the current time.
//!
//! What documents there are is not decided here: that is the rest of [`super`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, SubsecRound, Utc};

use super::compress::{brotli, compressible, gzip, Reach};
use super::files::{self, sibling, stage, sync_dir, Staged};
use super::on_disk::OnDisk;
use super::{Mode, PublishError, PublishReport};
use crate::catalog::{content_hash, sealed, Catalog, Rendered, Stamp};
use crate::render::splice::{Assembled, Splice};
use crate::render::verify::{self, VerifyError};
use crate::render::DocKind;
use crate::store::Backend;

/// How a document's bytes are made.
pub enum Body<'a> {
    /// Bytes that do not depend on when they are published.
    Fixed(Vec<u8>),
    /// Bytes that carry "when the content last changed"; called with that time. A
    /// channel document says how it was spliced from item fragments, so that its check
    /// reads each fragment once (see [`crate::render::splice::check_spliced`]).
    Dated(Box<dyn Fn(DateTime<Utc>) -> Assembled + 'a>),
    /// A sealed document (a full RFC 5005 archive page): the file on disk is final.
    Keep,
}

/// A document to publish.
pub struct Document<'a> {
    pub path: String,
    pub kind: DocKind,
    pub content_type: &'static str,
    pub body: Body<'a>,
    pub cache_control: &'static str,
    /// How many entries a feed must hold when read back.
    pub items: Option<usize>,
    pub reach: Reach,
}

/// Threads that check, compress and stage changed documents. With one sync per pass
/// they no longer wait on `fsync`s; more threads than cores still overlap the writes
/// of the temporary files with checking.
const WRITERS: usize = 4;
/// Rendered documents waiting for a writer; bounds what a cold build holds in memory.
const QUEUE: usize = 8;
/// Document headers recorded per store transaction (see `Publisher::headers`), so a
/// cold build of many archive pages holds no list of them all.
const HEADER_BATCH: usize = 512;

/// A changed document on its way to disk.
struct Job {
    path: String,
    kind: DocKind,
    content_type: &'static str,
    cache_control: &'static str,
    items: Option<usize>,
    reach: Reach,
    body: Vec<u8>,
    /// Where the body's item fragments are, when it was spliced from them.
    splice: Option<Splice>,
    file: PathBuf,
    /// Was a version of the file there already (so compressed copies may be too)?
    on_disk: bool,
    /// The published version's validators, kept if this one fails its check.
    previous: Option<(String, DateTime<Utc>)>,
}

enum Outcome {
    Written {
        path: String,
        /// Where it goes: its directory is synced at the end of the pass.
        file: PathBuf,
        /// Its files (compressed copies first), renamed into place at the end of the pass.
        staged: Vec<Staged>,
        hash: String,
        feed: bool,
        rendered: Option<Box<Rendered>>,
    },
    Failed {
        path: String,
        error: VerifyError,
        previous: Option<(String, DateTime<Utc>)>,
        file: PathBuf,
        content_type: &'static str,
        cache_control: &'static str,
        reach: Reach,
    },
}

/// Checks, compresses and stages one changed document: its temporary files are synced
/// and renamed by [`Publisher::finish`] once all writers are done.
fn write_job(job: Job, keep: bool, now: DateTime<Utc>) -> Result<Outcome, PublishError> {
    let depth = match job.reach {
        Reach::Wide => verify::Depth::Reparse,
        Reach::Narrow => verify::Depth::Scan,
    };
    if let Err(error) = crate::render::splice::check_spliced(
        job.kind,
        &job.body,
        job.splice.as_ref(),
        job.items,
        depth,
    ) {
        return Ok(Outcome::Failed {
            path: job.path,
            error,
            previous: job.previous,
            file: job.file,
            content_type: job.content_type,
            cache_control: job.cache_control,
            reach: job.reach,
        });
    }
    // Hashed here, not by the renderer: the main thread is the critical path of a cold
    // publish once the writers are more than one (a cold medium build hashes 190 MB).
    let hash = content_hash(&job.body);
    let body = Bytes::from(job.body);
    let (gz, br) = variants(&job.file, &body, job.content_type, job.reach, true);
    let err = |p: &Path| {
        let path = p.to_owned();
        move |source| PublishError::Write { path, source }
    };
    if !job.reach.precompressed() && job.on_disk {
        // Copies an earlier version (or an earlier feedwerk) wrote beside a narrow
        // document: gone before the new version is renamed in, so that a web server
        // sending `.gz` files never pairs a new document with an old copy.
        for ext in ["gz", "br"] {
            let old = sibling(&job.file, ext);
            match std::fs::remove_file(&old) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(err(&old)(e));
                }
                _ => {}
            }
        }
    }
    let mut staged = Vec::with_capacity(3);
    for (ext, copy) in [("gz", &gz), ("br", &br)] {
        if let Some(c) = copy {
            let p = sibling(&job.file, ext);
            staged.push(stage(&p, c).map_err(err(&p))?);
        }
    }
    staged.push(stage(&job.file, &body).map_err(err(&job.file))?);
    Ok(Outcome::Written {
        staged,
        feed: matches!(job.kind, DocKind::Feed(_)),
        rendered: keep.then(|| {
            Box::new(
                Rendered::new(
                    job.path.clone(),
                    job.content_type,
                    job.cache_control,
                    body,
                    format!("\"{hash}\""),
                    now,
                )
                .with_variants(gz, br),
            )
        }),
        path: job.path,
        file: job.file,
        hash,
    })
}

/// One publishing pass, fed document by document as they are rendered (so only a few
/// rendered documents are held at a time). Unchanged documents are recognised by their
/// bytes and never rewritten; changed ones go to a small pool of writer threads, so
/// rendering, checking, compressing and syncing overlap. [`Publisher::start`] opens a
/// pass, [`Publisher::add`] and the `keep_*` methods feed it, [`Publisher::finish`]
/// waits for the writers and records what reached the disk.
pub struct Publisher<'a> {
    /// Absolute: a temporary file under a relative directory cost a `getcwd` each
    /// (tempfile makes its path absolute, so that it can always remove it).
    out_dir: PathBuf,
    store: &'a dyn Backend,
    now: DateTime<Utc>,
    keep: bool,
    /// Only report in `written` what would be written (`build --dry-run`).
    plan: bool,
    jobs: Option<std::sync::mpsc::SyncSender<Job>>,
    /// The writer threads; each returns what it did when the queue closes.
    writers: Vec<std::thread::JoinHandle<Vec<Result<Outcome, PublishError>>>>,
    catalog: Catalog,
    report: PublishReport,
    published: HashMap<String, DateTime<Utc>>,
    /// The headers of the documents fed to this pass, recorded in the store every
    /// [`HEADER_BATCH`] documents and at the end: uploading to object storage sets them
    /// on each object (`crate::upload`).
    headers: Vec<(String, &'static str, &'static str)>,
    /// What a pass without a catalog already read of the output directory and the
    /// stored validators: asked for a rendered document's instead of a query and a
    /// `stat` each.
    known: Option<&'a OnDisk<'a>>,
}

impl<'a> Publisher<'a> {
    /// Opens a publishing pass under `out_dir` at `now` and starts its writers. With
    /// [`Mode::Catalog`] the catalog holds every document (for the server); with
    /// [`Mode::Files`] it stays empty (for `build`, which only needs the files);
    /// [`Mode::Plan`] writes nothing and only reports what would be written.
    pub fn start(
        out_dir: &'a Path,
        store: &'a dyn Backend,
        now: DateTime<Utc>,
        mode: Mode,
    ) -> Self {
        let keep = mode == Mode::Catalog;
        // Validators and feed dates are stored and sent with whole seconds; a fraction
        // would make the next cycle's re-render differ from what was published.
        let now = now.trunc_subsecs(0);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(QUEUE);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let writers = (0..WRITERS)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            Ok(job) => done.push(write_job(job, keep, now)),
                            Err(_) => return done,
                        }
                    }
                })
            })
            .collect();
        Publisher {
            out_dir: std::path::absolute(out_dir).unwrap_or_else(|_| out_dir.to_owned()),
            store,
            now,
            keep,
            plan: mode == Mode::Plan,
            jobs: Some(tx),
            writers,
            catalog: Catalog::default(),
            report: PublishReport::default(),
            published: HashMap::new(),
            headers: Vec::new(),
            known: None,
        }
    }

    /// Takes a rendered document's validators and whether its file exists from `known`
    /// (see [`OnDisk`]) rather than from a query and a `stat` of its own.
    pub(super) fn knowing(mut self, known: Option<&'a OnDisk<'a>>) -> Self {
        self.known = known;
        self
    }

    /// Closes the pass: the writers finish what is queued, what they staged is synced
    /// and renamed into place ([`files::commit`]), the directories written to are
    /// synced, and every document that reached the disk is recorded in the store —
    /// even when another one failed (the first error is returned after that).
    pub fn finish(mut self) -> Result<Published, PublishError> {
        self.jobs = None; // closes the queue: writers finish what is left, then stop
        let mut outcomes: Vec<Result<Outcome, PublishError>> = std::mem::take(&mut self.writers)
            .into_iter()
            .flat_map(|w| w.join().expect("writer threads do not panic"))
            .collect();
        let batches = outcomes
            .iter_mut()
            .filter_map(|o| match o {
                Ok(Outcome::Written { staged, .. }) => Some(std::mem::take(staged)),
                _ => None,
            })
            .collect();
        let mut renamed = files::commit(batches).into_iter();
        for o in &mut outcomes {
            if let Ok(Outcome::Written { file, .. }) = o {
                if let Some(Err(source)) = renamed.next() {
                    let path = file.clone();
                    *o = Err(PublishError::Write { path, source });
                }
            }
        }
        // This pass's renames become durable before the store says they happened: one
        // fsync per directory written to.
        let dirs: std::collections::BTreeSet<&Path> = outcomes
            .iter()
            .filter_map(|o| match o {
                Ok(Outcome::Written { file, .. }) => file.parent(),
                _ => None,
            })
            .collect();
        for dir in dirs {
            sync_dir(dir);
        }
        let mut first_error = None;
        // Every document that reached the disk, recorded in one go (see
        // `OutputStore::save_output_states`): after the renames, before the report.
        let states: Vec<(String, String)> = outcomes
            .iter()
            .filter_map(|o| match o {
                Ok(Outcome::Written { path, hash, .. }) => Some((path.clone(), hash.clone())),
                _ => None,
            })
            .collect();
        if let Err(e) = self.store.save_output_states(&states, self.now) {
            first_error.get_or_insert(e.into());
        }
        for o in outcomes {
            if let Err(e) = o.and_then(|o| self.record(o)) {
                first_error.get_or_insert(e);
            }
        }
        if !self.plan {
            if let Err(e) = self.store.save_output_headers(&self.headers) {
                first_error.get_or_insert(e.into());
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        self.report.written.sort();
        self.report.changed_feeds.sort();
        self.report.failed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Published {
            catalog: std::mem::take(&mut self.catalog),
            report: std::mem::take(&mut self.report),
            paths: std::mem::take(&mut self.published),
        })
    }
}

impl Publisher<'_> {
    /// Does this pass build a catalog (bodies in memory, for the server), or only files?
    pub fn keeps_catalog(&self) -> bool {
        self.keep
    }

    /// Keeps a document of a channel that did not change: from `previous` (the last
    /// catalog) when there is one, else — in a pass without a catalog — as the file on
    /// disk with its remembered validators. `false`: it must be rendered after all.
    pub fn keep_unchanged(
        &mut self,
        path: &str,
        previous: Option<&Catalog>,
    ) -> Result<bool, PublishError> {
        if let Some(doc) = previous.and_then(|c| c.get(path)) {
            self.published.insert(path.to_owned(), doc.last_modified);
            if self.keep {
                self.catalog.insert_shared(doc.clone());
            }
            self.report.unchanged += 1;
            return Ok(true);
        }
        if self.keep {
            return Ok(false);
        }
        match self.store.output_state(path)? {
            Some((_, last_modified)) if self.out_dir.join(path).exists() => {
                self.published.insert(path.to_owned(), last_modified);
                self.report.unchanged += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Keeps a document the caller found published and on disk (a pass without a
    /// catalog: nothing to read or hold), as published at `last_modified`.
    pub fn keep_on_disk(&mut self, path: &str, last_modified: DateTime<Utc>) {
        self.published.insert(path.to_owned(), last_modified);
        self.report.unchanged += 1;
    }

    /// Counts a sealed document kept on disk by a pass without a catalog: its file is
    /// final and nothing of it is read, held or recorded again.
    pub fn keep_final(&mut self) {
        self.report.unchanged += 1;
    }

    /// Keeps an unchanged channel's embed list from the last catalog.
    pub fn keep_embed(&mut self, key: &str, previous: &Catalog) -> bool {
        match previous.embed(key) {
            Some(e) => {
                self.catalog.insert_embed_shared(key, e.clone());
                true
            }
            None => false,
        }
    }

    /// Publishes one document.
    pub fn add(&mut self, doc: Document) -> Result<(), PublishError> {
        self.report.rendered += 1;
        self.headers
            .push((doc.path.clone(), doc.content_type, doc.cache_control));
        if self.headers.len() >= HEADER_BATCH && !self.plan {
            self.store.save_output_headers(&self.headers)?;
            self.headers.clear();
        }
        let now = self.now;
        let file = self.out_dir.join(&doc.path);
        let (previous, on_disk) = match self.known {
            Some(known) => {
                let (state, on_disk) = known.state(&doc.path)?;
                (state.map(|s| (s.hash, s.last_modified)), on_disk)
            }
            None => (self.store.output_state(&doc.path)?, file.exists()),
        };
        // The bytes as they would be if nothing changed, and whether they did.
        let (body, splice, changed) = match (&doc.body, &previous) {
            (Body::Keep, Some((_, lm))) if on_disk && !self.keep => {
                // Sealed and on disk: a pass without a catalog has nothing to do.
                self.published.insert(doc.path, *lm);
                self.report.unchanged += 1;
                return Ok(());
            }
            _ => match bytes_to_publish(&doc, &previous, &file, on_disk, now) {
                Some(b) => b,
                None => return Ok(()),
            },
        };
        if changed && self.plan {
            self.report.written.push(doc.path);
            return Ok(());
        }
        if changed {
            let job = Job {
                path: doc.path,
                kind: doc.kind,
                content_type: doc.content_type,
                cache_control: doc.cache_control,
                items: doc.items,
                reach: doc.reach,
                body,
                splice,
                file,
                on_disk,
                previous,
            };
            self.jobs
                .as_ref()
                .expect("open while publishing")
                .send(job)
                .expect("writers outlive the publisher");
            return Ok(());
        }
        let last_modified = previous.map(|(_, lm)| lm).unwrap_or(now);
        self.report.unchanged += 1;
        self.published.insert(doc.path.clone(), last_modified);
        if self.keep {
            let hash = content_hash(&body);
            let body = Bytes::from(body);
            // A sealed document is served from its files: no need to read its variants.
            let (gz, br) = if sealed(doc.cache_control) {
                (None, None)
            } else {
                variants(&file, &body, doc.content_type, doc.reach, false)
            };
            self.hold(
                Rendered::new(
                    doc.path,
                    doc.content_type,
                    doc.cache_control,
                    body,
                    format!("\"{hash}\""),
                    last_modified,
                )
                .with_variants(gz, br),
            );
        }
        Ok(())
    }

    /// Adds a document to the catalog. A sealed one goes in without its bytes: it is
    /// served from its files (see [`Rendered::on_disk`]), so the archive can grow
    /// without the daemon's memory growing with it.
    fn hold(&mut self, mut doc: Rendered) {
        if sealed(doc.cache_control) {
            let file = self.out_dir.join(&doc.path);
            let identity = Stamp::of(file.clone())
                .filter(|s| doc.body.is_empty() || s.len == doc.body.len() as u64);
            if let Some(identity) = identity {
                let compressed = compressible(doc.content_type) && identity.len > 256;
                let variant =
                    |ext: &str| compressed.then(|| Stamp::of(sibling(&file, ext))).flatten();
                doc.on_disk = Some(Arc::new([Some(identity), variant("gz"), variant("br")]));
                doc.body = Bytes::new();
                doc.gzip = None;
                doc.brotli = None;
            }
        }
        self.catalog.insert(doc);
    }

    /// Records what a writer did.
    fn record(&mut self, outcome: Outcome) -> Result<(), PublishError> {
        match outcome {
            Outcome::Written {
                path,
                feed,
                rendered,
                // Saved with the others' in `finish`.
                hash: _,
                file: _,
                staged: _,
            } => {
                self.published.insert(path.clone(), self.now);
                if let Some(r) = rendered {
                    self.hold(*r);
                }
                if feed {
                    self.report.changed_feeds.push(path.clone());
                }
                self.report.written.push(path);
            }
            Outcome::Failed {
                path,
                error,
                previous,
                file,
                content_type,
                cache_control,
                reach,
            } => {
                tracing::error!(path = %path, error = %error, "rendered document failed its check; the previous version stays published");
                if let (Some((h, lm)), true) = (&previous, file.exists()) {
                    self.published.insert(path.clone(), *lm);
                    if self.keep {
                        if let Ok(old) = std::fs::read(&file) {
                            let old = Bytes::from(old);
                            let (gz, br) = variants(&file, &old, content_type, reach, false);
                            self.hold(
                                Rendered::new(
                                    path.clone(),
                                    content_type,
                                    cache_control,
                                    old,
                                    format!("\"{h}\""),
                                    *lm,
                                )
                                .with_variants(gz, br),
                            );
                        }
                    }
                }
                self.report.failed.push((path, error));
            }
        }
        Ok(())
    }
}

/// What a publishing pass leaves: the catalog (empty unless [`Mode::Catalog`]), the
/// report, and the Last-Modified of every path that is published now.
pub struct Published {
    pub catalog: Catalog,
    pub report: PublishReport,
    pub paths: HashMap<String, DateTime<Utc>>,
}

/// The compressed variants of `body`: read from the files written with it when they
/// are still there and current, else made again.
fn variants(
    file: &Path,
    body: &Bytes,
    content_type: &str,
    reach: Reach,
    fresh: bool,
) -> (Option<Bytes>, Option<Bytes>) {
    if !reach.precompressed() || !compressible(content_type) || body.len() <= 256 {
        return (None, None);
    }
    let read = |ext: &str| {
        (!fresh)
            .then(|| std::fs::read(sibling(file, ext)).ok())
            .flatten()
            .map(Bytes::from)
    };
    (
        Some(read("gz").unwrap_or_else(|| gzip(body))),
        Some(read("br").unwrap_or_else(|| brotli(body))),
    )
}

/// The bytes a document has now (with where its fragments are, when spliced), and
/// whether they differ from what is published. `None` for a sealed document whose file
/// is gone or unreadable (logged).
fn bytes_to_publish(
    doc: &Document,
    previous: &Option<(String, DateTime<Utc>)>,
    file: &Path,
    on_disk: bool,
    now: DateTime<Utc>,
) -> Option<(Vec<u8>, Option<Splice>, bool)> {
    Some(match (&doc.body, previous) {
        (Body::Keep, Some(_)) if on_disk => match std::fs::read(file) {
            Ok(b) => (b, None, false),
            Err(e) => {
                tracing::error!(path = %doc.path, error = %e, "cannot read sealed document");
                return None;
            }
        },
        (Body::Keep, _) => {
            tracing::error!(path = %doc.path, "sealed document missing on disk");
            return None;
        }
        (Body::Fixed(b), prev) => {
            let same = prev.as_ref().is_some_and(|(h, _)| *h == content_hash(b)) && on_disk;
            (b.clone(), None, !same)
        }
        (Body::Dated(render), Some((h, lm))) if on_disk => {
            let b = render(*lm);
            if content_hash(&b.bytes) == *h {
                (b.bytes, b.splice, false)
            } else {
                let b = render(now);
                (b.bytes, b.splice, true)
            }
        }
        (Body::Dated(render), _) => {
            let b = render(now);
            (b.bytes, b.splice, true)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Format;
    use crate::store::Store;

    fn rss(title: &str) -> Vec<u8> {
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rss version=\"2.0\"><channel><title>{title}</title>\
             <link>https://x.example/</link><description>d</description></channel></rss>\n"
        )
        .into_bytes()
    }

    fn doc(body: Vec<u8>) -> Document<'static> {
        Document {
            path: "rss.xml".into(),
            kind: DocKind::Feed(Format::Rss),
            content_type: Format::Rss.content_type(),
            body: Body::Fixed(body),
            cache_control: "public, max-age=300",
            items: Some(0),
            reach: Reach::Wide,
        }
    }

    /// One pass for the server, as `publish::run` makes it: the documents fed one by
    /// one, then the writers waited for.
    fn publish(
        out_dir: &Path,
        docs: Vec<Document>,
        store: &dyn Backend,
        now: DateTime<Utc>,
    ) -> Result<(Catalog, PublishReport), PublishError> {
        let mut p = Publisher::start(out_dir, store, now, Mode::Catalog);
        for doc in docs {
            p.add(doc)?;
        }
        p.finish().map(|p| (p.catalog, p.report))
    }

    #[test]
    fn a_document_that_fails_its_check_leaves_the_old_file_and_validators() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::in_memory("x.example").unwrap();
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let (cat, rep) = publish(dir.path(), vec![doc(rss("good"))], &store, t0).unwrap();
        assert_eq!(rep.written, vec!["rss.xml".to_owned()]);
        let etag = cat.get("rss.xml").unwrap().etag.clone();

        // A control character cannot appear in XML: this one must never go out.
        let t1 = t0 + chrono::Duration::hours(1);
        let (cat, rep) = publish(dir.path(), vec![doc(rss("bad \u{1}"))], &store, t1).unwrap();
        assert!(rep.written.is_empty());
        assert_eq!(rep.failed.len(), 1, "{rep:?}");
        assert!(matches!(
            rep.failed[0].1,
            VerifyError::IllegalChar { code: 1, .. }
        ));
        let served = cat.get("rss.xml").expect("old version still served");
        assert_eq!(served.etag, etag);
        assert_eq!(served.last_modified, t0);
        assert_eq!(
            std::fs::read(dir.path().join("rss.xml")).unwrap(),
            rss("good")
        );
    }

    /// A narrow document (a tag channel, an archive page) is only scanned, not parsed
    /// again: a broken one must still never replace the published file.
    #[test]
    fn a_broken_narrow_document_keeps_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::in_memory("x.example").unwrap();
        let narrow = |body: Vec<u8>, items: usize| Document {
            path: "tags/x.rss".into(),
            items: Some(items),
            reach: Reach::Narrow,
            ..doc(body)
        };
        let good = rss(&"good ".repeat(100));
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let (cat, rep) = publish(dir.path(), vec![narrow(good.clone(), 0)], &store, t0).unwrap();
        assert_eq!(rep.written, vec!["tags/x.rss".to_owned()]);
        let etag = cat.get("tags/x.rss").unwrap().etag.clone();
        let file = dir.path().join("tags/x.rss");
        let t1 = t0 + chrono::Duration::hours(1);
        let truncated = good[..good.len() - 30].to_vec();
        let lost_item = rss(&"lost ".repeat(100));
        for (bad, items) in [(truncated, 0), (lost_item, 1), (rss("bad \u{1}"), 0)] {
            let (cat, rep) = publish(dir.path(), vec![narrow(bad, items)], &store, t1).unwrap();
            assert!(rep.written.is_empty());
            assert_eq!(rep.failed.len(), 1, "{rep:?}");
            assert_eq!(
                cat.get("tags/x.rss").expect("old version served").etag,
                etag
            );
            assert_eq!(std::fs::read(&file).unwrap(), good);
        }
        assert_eq!(
            std::fs::read_dir(dir.path().join("tags")).unwrap().count(),
            1,
            "no temporary file left"
        );
    }

    #[test]
    fn only_wide_documents_get_compressed_copies_and_stale_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::in_memory("x.example").unwrap();
        let body = |s: &str| rss(&s.repeat(100));
        let narrow = |b: Vec<u8>| Document {
            path: "tags/x.rss".into(),
            reach: Reach::Narrow,
            ..doc(b)
        };
        // Copies an earlier feedwerk wrote beside the narrow document.
        std::fs::create_dir_all(dir.path().join("tags")).unwrap();
        for f in ["tags/x.rss", "tags/x.rss.gz", "tags/x.rss.br"] {
            std::fs::write(dir.path().join(f), "old").unwrap();
        }
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let (cat, _) = publish(
            dir.path(),
            vec![doc(body("front ")), narrow(body("narrow "))],
            &store,
            t0,
        )
        .unwrap();
        let has = |f: &str| dir.path().join(f).exists();
        assert!(has("rss.xml.gz") && has("rss.xml.br"));
        assert!(has("tags/x.rss") && !has("tags/x.rss.gz") && !has("tags/x.rss.br"));
        let wide = cat.get("rss.xml").unwrap();
        assert!(wide.gzip.is_some() && wide.brotli.is_some());
        let n = cat.get("tags/x.rss").unwrap();
        assert!(n.gzip.is_none() && n.brotli.is_none());
        assert_eq!(
            std::fs::read(dir.path().join("tags/x.rss")).unwrap(),
            body("narrow ")
        );
    }

    #[test]
    fn a_sealed_document_is_held_as_its_files_and_others_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::in_memory("x.example").unwrap();
        let docs = || {
            vec![
                Document {
                    path: "archive/1.rss".into(),
                    cache_control: "public, max-age=31536000, immutable",
                    ..doc(rss(&"sealed ".repeat(60)))
                },
                doc(rss(&"current ".repeat(60))),
            ]
        };
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let t1 = t0 + chrono::Duration::hours(1);
        // Written in this pass, then kept unchanged in the next.
        for (t, written) in [(t0, 2), (t1, 0)] {
            let (cat, rep) = publish(dir.path(), docs(), &store, t).unwrap();
            assert_eq!(rep.written.len(), written);
            let sealed = cat.get("archive/1.rss").unwrap();
            assert!(sealed.body.is_empty() && sealed.gzip.is_none() && sealed.brotli.is_none());
            let files = sealed.on_disk.as_ref().expect("served from its files");
            let file = dir.path().join("archive/1.rss");
            let identity = files[0].as_ref().unwrap();
            assert_eq!(identity.path, file);
            assert_eq!(identity.len, std::fs::metadata(&file).unwrap().len());
            assert_eq!(
                files[1].as_ref().unwrap().path,
                dir.path().join("archive/1.rss.gz")
            );
            assert!(files[2].is_some());
            assert_eq!(sealed.last_modified, t0);
            assert_eq!(
                sealed.etag,
                format!("\"{}\"", content_hash(&std::fs::read(&file).unwrap()))
            );
            let current = cat.get("rss.xml").unwrap();
            assert!(current.on_disk.is_none() && !current.body.is_empty());
            assert!(current.gzip.is_some());
        }
    }

    #[test]
    fn a_dated_document_keeps_its_date_while_its_content_stays() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::in_memory("x.example").unwrap();
        let dated = |title: &'static str| Document {
            body: Body::Dated(Box::new(move |d: DateTime<Utc>| {
                rss(&format!("{title} {}", d.timestamp())).into()
            })),
            ..doc(Vec::new())
        };
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let t1 = t0 + chrono::Duration::hours(1);
        let (c0, _) = publish(dir.path(), vec![dated("a")], &store, t0).unwrap();
        let (c1, r1) = publish(dir.path(), vec![dated("a")], &store, t1).unwrap();
        assert!(r1.written.is_empty());
        assert_eq!(
            c1.get("rss.xml").unwrap().etag,
            c0.get("rss.xml").unwrap().etag
        );
        assert_eq!(c1.get("rss.xml").unwrap().last_modified, t0);
        let (c2, r2) = publish(dir.path(), vec![dated("b")], &store, t1).unwrap();
        assert_eq!(r2.changed_feeds, vec!["rss.xml".to_owned()]);
        assert_eq!(c2.get("rss.xml").unwrap().last_modified, t1);
        assert!(String::from_utf8_lossy(&c2.get("rss.xml").unwrap().body)
            .contains(&format!("b {}", t1.timestamp())));
    }
}
