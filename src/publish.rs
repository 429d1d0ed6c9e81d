//! Rendered documents → files on disk and the in-memory catalog the server reads.
//!
//! Every document is read back and checked ([`crate::render::verify`]) before it may
//! replace the published one; a document that fails keeps its previous file and
//! validators, and the failure is logged and reported. Files are written to a
//! temporary file in the same directory, synced and renamed into place, so readers
//! (and a crash) never see half a file. Compressed variants are made once, here.
//!
//! Byte stability: a dated document (a feed, whose `updated`/`lastBuildDate` is "when
//! the content last changed") is first rendered with the date it was last published
//! with; if the bytes are the same as then, nothing changed and nothing is written, so
//! the ETag and Last-Modified stay and readers keep getting 304. Only when the content
//! differs is it rendered again with the current time.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use chrono::{DateTime, SubsecRound, Utc};

use crate::render::verify::{self, VerifyError};
use crate::render::DocKind;
use crate::store::{Store, StoreError};

/// One servable document with its validators and precompressed variants.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub path: String,
    pub content_type: &'static str,
    pub body: Bytes,
    pub gzip: Option<Bytes>,
    pub brotli: Option<Bytes>,
    /// Strong ETag of `body` (quoted); compressed variants append `-gz`/`-br`.
    pub etag: String,
    pub last_modified: DateTime<Utc>,
    /// `Cache-Control` value for this document.
    pub cache_control: &'static str,
    /// Header values made once here rather than on every request (see [`HttpFields`]).
    pub http: HttpFields,
}

/// `Last-Modified` and the ETag of every variant (identity, gzip, brotli; each also as
/// the browser's XML view), formatted once per publish: conditional GETs are the bulk
/// of a feed server's traffic, and these are all they need.
#[derive(Debug, Clone)]
pub struct HttpFields {
    pub last_modified: Bytes,
    /// Index: `encoding * 2 + browser_view`, encoding 0 identity, 1 gzip, 2 brotli.
    pub etags: [Bytes; 6],
}

impl HttpFields {
    /// `etag` is the quoted strong ETag of the identity body.
    pub fn new(etag: &str, last_modified: DateTime<Utc>) -> HttpFields {
        let stem = etag.trim_end_matches('"');
        let v = |suffix: &str| Bytes::from(format!("{stem}{suffix}\""));
        HttpFields {
            last_modified: Bytes::from(httpdate::fmt_http_date(std::time::SystemTime::from(
                last_modified,
            ))),
            etags: [v(""), v("-x"), v("-gz"), v("-gz-x"), v("-br"), v("-br-x")],
        }
    }
}

/// The news list of one channel for `/embed`: pre-rendered `<li>` entries.
#[derive(Debug, Clone)]
pub struct EmbedList {
    pub title: String,
    pub language: String,
    pub items: Vec<String>,
    /// Changes whenever `items` do; part of the `/embed` ETag.
    pub hash: String,
    pub last_modified: DateTime<Utc>,
}

/// Everything the server answers from: documents by path (without leading `/`) and
/// embed lists by channel key (`all`, `sources/efus`, …).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    docs: HashMap<String, Arc<Rendered>>,
    embeds: HashMap<String, Arc<EmbedList>>,
}

impl Catalog {
    pub fn get(&self, path: &str) -> Option<&Arc<Rendered>> {
        self.docs.get(path)
    }
    pub fn insert(&mut self, doc: Rendered) {
        self.docs.insert(doc.path.clone(), Arc::new(doc));
    }
    pub fn len(&self) -> usize {
        self.docs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }
    /// Every document path, in no particular order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.docs.keys().map(String::as_str)
    }
    pub fn embed(&self, channel: &str) -> Option<&Arc<EmbedList>> {
        self.embeds.get(channel)
    }
    pub fn insert_embed(&mut self, channel: &str, list: EmbedList) {
        self.embeds.insert(channel.to_owned(), Arc::new(list));
    }
}

/// The catalog the server reads; swapped whole after each publish.
#[derive(Clone, Default)]
pub struct SharedCatalog(Arc<ArcSwap<Catalog>>);

impl SharedCatalog {
    pub fn load(&self) -> Arc<Catalog> {
        self.0.load_full()
    }
    pub fn store(&self, c: Catalog) {
        self.0.store(Arc::new(c));
    }
}

/// How a document's bytes are made.
pub enum Body<'a> {
    /// Bytes that do not depend on when they are published.
    Fixed(Vec<u8>),
    /// Bytes that carry "when the content last changed"; called with that time.
    Dated(Box<dyn Fn(DateTime<Utc>) -> Vec<u8> + 'a>),
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
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct PublishReport {
    /// Paths written this time.
    pub written: Vec<String>,
    pub unchanged: usize,
    /// Subscription feeds (paths) whose content changed: what WebSub subscribers need.
    pub changed_feeds: Vec<String>,
    /// Documents that failed their check: the previous version stays published.
    pub failed: Vec<(String, VerifyError)>,
}

/// Only text formats are worth compressing.
fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.contains("xml")
        || content_type.contains("json")
        || content_type.contains("javascript")
}

fn gzip(data: &[u8]) -> Bytes {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).expect("in-memory");
    Bytes::from(enc.finish().expect("in-memory"))
}

fn brotli(data: &[u8]) -> Bytes {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 9,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &data[..], &mut out, &params).expect("in-memory");
    Bytes::from(out)
}

/// Name prefix of the temporary files [`write_atomic`] renames into place.
const TEMP_PREFIX: &str = ".feedwerk-";

/// Removes temporary files that a killed writer left under `out_dir` (a SIGKILL or power
/// cut between create and rename). Only files older than `older_than` go, so a `build`
/// running beside the daemon keeps its own. Returns how many were removed.
pub fn sweep_stale_temp_files(out_dir: &Path, older_than: std::time::Duration) -> usize {
    let mut removed = 0;
    let mut dirs = vec![out_dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                dirs.push(e.path());
                continue;
            }
            let stale = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age >= older_than);
            if stale
                && e.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
                && std::fs::remove_file(e.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

/// Writes `bytes` to `path` atomically: temp file in the same directory, fsync, rename,
/// fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn content_hash(body: &[u8]) -> String {
    blake3::hash(body).to_hex()[..20].to_owned()
}

/// The compressed variants of `body`: read from the files written with it when they
/// are still there and current, else made again.
fn variants(
    file: &Path,
    body: &Bytes,
    content_type: &str,
    fresh: bool,
) -> (Option<Bytes>, Option<Bytes>) {
    if !compressible(content_type) || body.len() <= 256 {
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

/// The bytes a document has now, and whether they differ from what is published.
/// `None` for a sealed document whose file is gone or unreadable (logged).
fn bytes_to_publish(
    doc: &Document,
    previous: &Option<(String, DateTime<Utc>)>,
    file: &Path,
    on_disk: bool,
    now: DateTime<Utc>,
) -> Option<(Vec<u8>, bool)> {
    Some(match (&doc.body, previous) {
        (Body::Keep, Some(_)) if on_disk => match std::fs::read(file) {
            Ok(b) => (b, false),
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
            (b.clone(), !same)
        }
        (Body::Dated(render), Some((h, lm))) if on_disk => {
            let b = render(*lm);
            if content_hash(&b) == *h {
                (b, false)
            } else {
                (render(now), true)
            }
        }
        (Body::Dated(render), _) => (render(now), true),
    })
}

/// The paths [`publish`] would write for `docs` (new or changed bytes), writing nothing:
/// for `build --dry-run`.
pub fn plan(
    out_dir: &Path,
    docs: &[Document],
    store: &Store,
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let now = now.trunc_subsecs(0);
    let mut out = Vec::new();
    for doc in docs {
        let file = out_dir.join(&doc.path);
        let previous = store.output_state(&doc.path)?;
        if let Some((_, true)) = bytes_to_publish(doc, &previous, &file, file.exists(), now) {
            out.push(doc.path.clone());
        }
    }
    Ok(out)
}

/// Publishes `docs` under `out_dir`, reusing validators of unchanged documents from the
/// store. Returns the new catalog and what was written.
pub fn publish(
    out_dir: &Path,
    docs: Vec<Document>,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<(Catalog, PublishReport), PublishError> {
    // Validators and feed dates are stored and sent with whole seconds; a fraction
    // would make the next cycle's re-render differ from what was published.
    let now = now.trunc_subsecs(0);
    let mut catalog = Catalog::default();
    let mut report = PublishReport::default();
    for doc in docs {
        let file = out_dir.join(&doc.path);
        let previous = store.output_state(&doc.path)?;
        let on_disk = file.exists();
        let Some((body, changed)) = bytes_to_publish(&doc, &previous, &file, on_disk, now) else {
            continue;
        };
        let hash = content_hash(&body);
        let last_modified = match (&previous, changed) {
            (Some((_, lm)), false) => *lm,
            _ => now,
        };
        if changed {
            if let Err(e) = verify::check(doc.kind, &body, doc.items) {
                tracing::error!(path = %doc.path, error = %e, "rendered document failed its check; the previous version stays published");
                report.failed.push((doc.path.clone(), e));
                if let (Some((h, lm)), true) = (&previous, on_disk) {
                    if let Ok(old) = std::fs::read(&file) {
                        let old = Bytes::from(old);
                        let (gz, br) = variants(&file, &old, doc.content_type, false);
                        catalog.insert(Rendered {
                            path: doc.path,
                            content_type: doc.content_type,
                            body: old,
                            gzip: gz,
                            brotli: br,
                            etag: format!("\"{h}\""),
                            last_modified: *lm,
                            cache_control: doc.cache_control,
                            http: HttpFields::new(&format!("\"{h}\""), *lm),
                        });
                    }
                }
                continue;
            }
        }
        let body = Bytes::from(body);
        let (gz, br) = variants(&file, &body, doc.content_type, changed);
        if changed {
            let w = |p: &Path, b: &[u8]| {
                write_atomic(p, b).map_err(|source| PublishError::Write {
                    path: p.to_owned(),
                    source,
                })
            };
            w(&file, &body)?;
            if let Some(g) = &gz {
                w(&sibling(&file, "gz"), g)?;
            }
            if let Some(b) = &br {
                w(&sibling(&file, "br"), b)?;
            }
            store.save_output_state(&doc.path, &hash, last_modified)?;
            report.written.push(doc.path.clone());
            if matches!(doc.kind, DocKind::Feed(_)) {
                report.changed_feeds.push(doc.path.clone());
            }
        } else {
            report.unchanged += 1;
        }
        let etag = format!("\"{hash}\"");
        catalog.insert(Rendered {
            path: doc.path,
            content_type: doc.content_type,
            body,
            gzip: gz,
            brotli: br,
            http: HttpFields::new(&etag, last_modified),
            etag,
            last_modified,
            cache_control: doc.cache_control,
        });
    }
    Ok((catalog, report))
}

fn sibling(file: &Path, ext: &str) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Format;

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
        }
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

    #[test]
    fn a_dated_document_keeps_its_date_while_its_content_stays() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::in_memory("x.example").unwrap();
        let dated = |title: &'static str| Document {
            body: Body::Dated(Box::new(move |d: DateTime<Utc>| {
                rss(&format!("{title} {}", d.timestamp()))
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
