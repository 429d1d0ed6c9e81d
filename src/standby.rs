//! What a standby serves while another process leads (several `feedwerk run` on one
//! PostgreSQL store).
//!
//! With `publish.target`, the bucket's documents ([`BucketMirror`]): instances on other
//! machines never see the leader's files, but they all see the bucket. Each round lists
//! the prefix and fetches only the objects whose ETag changed ([`round`]), so a quiet
//! round costs one listing. Rounds run in a task of their own ([`Mirroring`]), so a slow
//! bucket never stops the working loop's heartbeat; a failed round changes nothing (the
//! last catalog keeps serving), and until one succeeds the local directory is served.
//!
//! Without a target, the documents in `publish.output_dir` as they are on disk
//! ([`catalog_from_dir`]). With a shared output directory (or processes on one machine)
//! those are the leader's latest; otherwise they are what this process published when
//! it last led.
//!
//! The leader's catalog carries each document's exact headers from rendering. From the
//! bucket they are the ones it uploaded; from a file, its type comes from its name (the
//! names publishing gives) and the `Cache-Control` is short, since a standby's copy may
//! be the older one. Either way the ETag is the hash of the bytes (the same the
//! leader's is), so a client's conditional GET answers alike on every instance.
//! Precompressed `.gz` and `.br` files go with their document; the bucket holds none
//! (only identity bytes are uploaded). The publisher's temporary files (hidden,
//! `.feedwerk-…`) are skipped.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use crate::catalog::{content_hash, Catalog, Rendered};
use crate::config::RemoteTarget;
use crate::model::Format;
use crate::upload::{Client, Fetched, Listed};

/// Objects fetched at once in a round.
const FETCHES: usize = 8;

/// How long a client may keep a document a standby served.
const STANDBY_CACHE: &str = "public, max-age=60";

/// The documents under `dir` (missing or unreadable files are left out, with a log
/// line: a standby serves what it can).
pub fn catalog_from_dir(dir: &Path) -> Catalog {
    let mut catalog = Catalog::default();
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    for rel in &files {
        if rel.ends_with(".gz") || rel.ends_with(".br") {
            continue;
        }
        let Some(content_type) = content_type(rel) else {
            continue;
        };
        let path = dir.join(rel);
        let (body, modified) = match read(&path) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(file = %path.display(), "standby: cannot read a published document: {e}");
                continue;
            }
        };
        let variant = |ext: &str| {
            std::fs::read(dir.join(format!("{rel}.{ext}")))
                .ok()
                .map(Bytes::from)
        };
        let etag = format!("\"{}\"", content_hash(&body));
        let doc = Rendered::new(
            rel.clone(),
            content_type,
            STANDBY_CACHE,
            body,
            etag,
            modified,
        )
        .with_variants(variant("gz"), variant("br"));
        catalog.insert(doc);
    }
    catalog
}

fn read(path: &Path) -> std::io::Result<(Bytes, DateTime<Utc>)> {
    let body = std::fs::read(path)?;
    let modified = std::fs::metadata(path)?.modified()?;
    Ok((Bytes::from(body), DateTime::<Utc>::from(modified)))
}

/// The `/`-separated paths of the regular files under `dir`, relative to `root`.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(root, &path, out),
            Ok(t) if t.is_file() => {
                if let Ok(rel) = path.strip_prefix(root) {
                    let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
                    out.push(parts.join("/"));
                }
            }
            _ => {}
        }
    }
}

/// The type publishing gives a document of this name; `None` for files it does not
/// make.
fn content_type(rel: &str) -> Option<&'static str> {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let ext = name.rsplit_once('.').map(|(_, e)| e)?;
    Some(match (name, ext) {
        ("rss.xml", _) | (_, "rss") => Format::Rss.content_type(),
        ("atom.xml", _) | (_, "atom") => Format::Atom.content_type(),
        (_, "json") => Format::Json.content_type(),
        (_, "html") => "text/html; charset=utf-8",
        (_, "opml") => "text/x-opml; charset=utf-8",
        (_, "xsl") => "text/xsl; charset=utf-8",
        (_, "js") => "text/javascript; charset=utf-8",
        _ => return None,
    })
}

/// A document mirrored from the bucket, with the ETag the bucket gave its object (what
/// the next round compares; the served ETag is the hash of the bytes).
#[derive(Clone)]
struct Held {
    bucket_etag: String,
    doc: Arc<Rendered>,
}

/// The documents of `publish.target` as the last round found them.
pub struct BucketMirror {
    client: Client,
    target: String,
    held: HashMap<String, Held>,
}

/// What a round does with a listing: which objects to keep as held and which to fetch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round<'a> {
    pub keep: Vec<&'a str>,
    pub fetch: Vec<&'a Listed>,
}

/// The servable objects of `listing` (the names publishing gives, no `.gz`/`.br`):
/// kept when `held` has the same bucket ETag for the path, else fetched (an object
/// without an ETag always is).
pub fn round<'a>(listing: &'a [Listed], held: &HashMap<String, String>) -> Round<'a> {
    let mut r = Round::default();
    for l in listing {
        if l.path.ends_with(".gz") || l.path.ends_with(".br") || content_type(&l.path).is_none() {
            continue;
        }
        match (&l.etag, held.get(&l.path)) {
            (Some(now), Some(before)) if now == before => r.keep.push(&l.path),
            _ => r.fetch.push(l),
        }
    }
    r
}

impl BucketMirror {
    pub fn new(t: &RemoteTarget) -> Result<BucketMirror, String> {
        Ok(BucketMirror {
            client: Client::new(t)?,
            target: t.url.clone(),
            held: HashMap::new(),
        })
    }

    /// The bucket's target, `s3://bucket/prefix/`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// One round: lists the prefix, fetches what changed, and returns the whole
    /// catalog. On any failure nothing held changes (the caller keeps serving the last
    /// catalog); so does a round dropped half-way.
    pub async fn refresh(&mut self) -> Result<Catalog, String> {
        let listing = self.client.list().await.map_err(|e| e.to_string())?;
        let etags: HashMap<String, String> = self
            .held
            .iter()
            .map(|(p, h)| (p.clone(), h.bucket_etag.clone()))
            .collect();
        let plan = round(&listing, &etags);
        let wanted: Vec<Listed> = plan.fetch.iter().map(|l| (*l).clone()).collect();
        let fetched: Vec<(Listed, _)> = futures_util::stream::iter(wanted)
            .map(|l| {
                let client = self.client.clone();
                async move {
                    let got = client.get(&l.path).await;
                    (l, got)
                }
            })
            .buffer_unordered(FETCHES)
            .collect()
            .await;
        let (fetch_count, keep_count) = (plan.fetch.len(), plan.keep.len());
        let mut next: HashMap<String, Held> = plan
            .keep
            .iter()
            .filter_map(|p| self.held.get(*p).map(|h| ((*p).to_owned(), h.clone())))
            .collect();
        for (l, got) in fetched {
            let got = got.map_err(|e| format!("{}{}: {e}", self.target, l.path))?;
            // Gone since the listing: the leader deleted it.
            let Some(f) = got else { continue };
            let held = Held {
                bucket_etag: f.etag.clone().or(l.etag.clone()).unwrap_or_default(),
                doc: Arc::new(document(&l.path, f)),
            };
            next.insert(l.path.clone(), held);
        }
        tracing::debug!(target = %self.target, fetched = fetch_count, kept = keep_count, "standby: mirrored the bucket");
        self.held = next;
        let mut catalog = Catalog::default();
        for h in self.held.values() {
            catalog.insert_shared(h.doc.clone());
        }
        Ok(catalog)
    }
}

/// A fetched object as the server serves it: the headers it was uploaded with (the
/// type from its name when it has none, [`STANDBY_CACHE`] without `Cache-Control`),
/// Last-Modified of the object, and the ETag of its bytes, as the leader's.
fn document(path: &str, f: Fetched) -> Rendered {
    let content_type = f
        .content_type
        .as_deref()
        .map(intern)
        .or_else(|| content_type(path))
        .unwrap_or("application/octet-stream");
    let cache = f
        .cache_control
        .as_deref()
        .map(intern)
        .unwrap_or(STANDBY_CACHE);
    let etag = format!("\"{}\"", content_hash(&f.body));
    Rendered::new(
        path.to_owned(),
        content_type,
        cache,
        f.body,
        etag,
        f.last_modified,
    )
}

/// The one `'static` copy of a header value (the catalog's documents hold them so).
/// The values are the few the leader uploads with, so the set stays small.
fn intern(v: &str) -> &'static str {
    static SEEN: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(s) = seen.get(v) {
        return s;
    }
    let s: &'static str = Box::leak(v.to_owned().into_boxed_str());
    seen.insert(s);
    s
}

/// The bucket rounds of a standby, each in a task of its own so the working loop keeps
/// beating (and answers signals) while a slow bucket answers.
#[derive(Default)]
pub struct Mirroring {
    /// Between rounds; `None` while one runs, or before the first.
    idle: Option<BucketMirror>,
    running: Option<JoinHandle<(BucketMirror, Result<Catalog, String>)>>,
}

impl Mirroring {
    /// Starts a round for `t` unless one is running (a new mirror when the target
    /// changed or none was made yet).
    pub fn start(&mut self, t: &RemoteTarget) {
        if self.running.is_some() {
            return;
        }
        let mut mirror = match self.idle.take() {
            Some(m) if m.target() == t.url => m,
            _ => match BucketMirror::new(t) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(target = %t.url, "standby: cannot reach the bucket: {e}");
                    return;
                }
            },
        };
        self.running = Some(tokio::spawn(async move {
            let r = mirror.refresh().await;
            (mirror, r)
        }));
    }

    /// The catalog of the round running, once it ends; never when none runs. `None`
    /// when it failed (logged).
    pub async fn finished(&mut self) -> Option<Catalog> {
        let Some(h) = &mut self.running else {
            return std::future::pending().await;
        };
        let joined = h.await;
        self.running = None;
        match joined {
            Ok((mirror, r)) => {
                let target = mirror.target().to_owned();
                self.idle = Some(mirror);
                match r {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::warn!(%target, "standby: cannot read the bucket, still serving the last documents: {e}");
                        None
                    }
                }
            }
            Err(e) => {
                tracing::warn!("standby: a bucket round ended abnormally: {e}");
                None
            }
        }
    }

    /// Stops a running round and drops what was mirrored (this process leads now and
    /// serves its own catalog); the next round starts afresh.
    pub fn stop(&mut self) {
        if let Some(h) = self.running.take() {
            h.abort();
        }
        self.idle = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_files_are_served_with_their_types_variants_and_validators() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("sources")).unwrap();
        std::fs::write(d.join("atom.xml"), "<feed/>").unwrap();
        std::fs::write(d.join("atom.xml.gz"), "gz bytes").unwrap();
        std::fs::write(d.join("sources/efus.json"), "{}").unwrap();
        std::fs::write(d.join("index.html"), "<p>").unwrap();
        std::fs::write(d.join(".feedwerk-tmp-atom.xml"), "half").unwrap();
        std::fs::write(d.join("notes.txt"), "not ours").unwrap();
        let c = catalog_from_dir(d);
        let mut paths: Vec<&str> = c.paths().collect();
        paths.sort();
        assert_eq!(paths, ["atom.xml", "index.html", "sources/efus.json"]);
        let atom = c.get("atom.xml").unwrap();
        assert_eq!(atom.content_type, Format::Atom.content_type());
        assert_eq!(atom.body.as_ref(), b"<feed/>");
        assert_eq!(atom.gzip.as_deref(), Some(&b"gz bytes"[..]));
        assert_eq!(atom.etag, format!("\"{}\"", content_hash(b"<feed/>")));
        assert_eq!(
            c.get("sources/efus.json").unwrap().content_type,
            Format::Json.content_type()
        );
    }

    fn listed(path: &str, etag: Option<&str>) -> Listed {
        Listed {
            path: path.into(),
            etag: etag.map(Into::into),
            last_modified: Utc::now(),
        }
    }

    #[test]
    fn a_round_fetches_new_changed_and_untagged_objects_and_keeps_the_rest() {
        let listing = [
            listed("atom.xml", Some("\"same\"")),
            listed("rss.xml", Some("\"new\"")),
            listed("index.html", Some("\"first\"")),
            listed("sources/a.json", None),
            listed("atom.xml.gz", Some("\"gz\"")),
            listed("notes.txt", Some("\"x\"")),
        ];
        let held: HashMap<String, String> = [
            ("atom.xml", "\"same\""),
            ("rss.xml", "\"old\""),
            ("sources/a.json", ""),
            ("gone.xml", "\"g\""),
        ]
        .into_iter()
        .map(|(p, e)| (p.to_owned(), e.to_owned()))
        .collect();
        let r = round(&listing, &held);
        assert_eq!(r.keep, ["atom.xml"]);
        let fetch: Vec<&str> = r.fetch.iter().map(|l| l.path.as_str()).collect();
        assert_eq!(fetch, ["rss.xml", "index.html", "sources/a.json"]);
    }

    #[test]
    fn a_fetched_object_keeps_its_headers_and_gets_the_etag_of_its_bytes() {
        let when = Utc::now();
        let f = |content_type: Option<&str>, cache: Option<&str>| Fetched {
            body: Bytes::from_static(b"<feed/>"),
            etag: Some("\"md5\"".into()),
            content_type: content_type.map(Into::into),
            cache_control: cache.map(Into::into),
            last_modified: when,
        };
        let d = document(
            "atom.xml",
            f(Some("application/atom+xml"), Some("public, max-age=300")),
        );
        assert_eq!(d.content_type, "application/atom+xml");
        assert_eq!(d.cache_control, "public, max-age=300");
        assert_eq!(d.etag, format!("\"{}\"", content_hash(b"<feed/>")));
        assert_eq!(d.last_modified, when);
        let bare = document("atom.xml", f(None, None));
        assert_eq!(bare.content_type, Format::Atom.content_type());
        assert_eq!(bare.cache_control, STANDBY_CACHE);
    }

    #[test]
    fn a_missing_output_dir_is_an_empty_catalog() {
        assert!(catalog_from_dir(Path::new("does/not/exist")).is_empty());
    }
}
