//! What the server reads: the [`Catalog`] of published documents ([`Rendered`], with
//! their validators, precompressed variants and ready-made [`HttpFields`]) and the
//! `/embed` news lists ([`EmbedList`]), swapped whole after each publish through
//! [`SharedCatalog`].
//!
//! The publish stage fills a catalog; the server (`serve`) answers from it. Neither reaches
//! into the other: this module is the boundary, and it knows nothing of rendering,
//! writing files or HTTP routing. The request counters a document carries are
//! [`crate::metrics`]' type.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::http::HeaderValue;
use bytes::Bytes;
use chrono::{DateTime, Utc};

/// The strong ETag (unquoted) of a document's bytes: what publishing stores and the
/// server compares when a file on disk changed behind its back.
pub(crate) fn content_hash(body: &[u8]) -> String {
    blake3::hash(body).to_hex()[..20].to_owned()
}

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
    /// Set for a sealed document (published `immutable`: a full RFC 5005 archive
    /// page): its bytes are not held here (`body` is empty, no `gzip`/`brotli`) but
    /// read from its files, indexed like [`HttpFields::etags`]' encodings (identity,
    /// gzip, brotli). Archive pages are most of what grows with the store; kept in
    /// memory they made the daemon's memory grow with it too.
    pub on_disk: Option<Arc<[Option<Stamp>; 3]>>,
}

impl Rendered {
    /// The one way to make a servable document: its header values are derived from
    /// `etag` and `last_modified` here, so they can never disagree with them. No
    /// compressed variants (see [`Rendered::with_variants`]) and held in memory.
    pub fn new(
        path: String,
        content_type: &'static str,
        cache_control: &'static str,
        body: Bytes,
        etag: String,
        last_modified: DateTime<Utc>,
    ) -> Rendered {
        Rendered {
            path,
            content_type,
            http: HttpFields::new(&etag, last_modified),
            body,
            gzip: None,
            brotli: None,
            etag,
            last_modified,
            cache_control,
            on_disk: None,
        }
    }

    /// The same document with its precompressed copies.
    pub fn with_variants(mut self, gzip: Option<Bytes>, brotli: Option<Bytes>) -> Rendered {
        self.gzip = gzip;
        self.brotli = brotli;
        self
    }
}

/// A published file as it was when it entered the catalog. Serving it checks that it
/// still is (same size and mtime), so its bytes always match the catalog's validators.
#[derive(Debug, Clone)]
pub struct Stamp {
    pub path: PathBuf,
    pub len: u64,
    pub modified: std::time::SystemTime,
}

impl Stamp {
    pub(crate) fn of(path: PathBuf) -> Option<Stamp> {
        let meta = std::fs::metadata(&path).ok()?;
        Some(Stamp {
            len: meta.len(),
            modified: meta.modified().ok()?,
            path,
        })
    }
}

/// Documents published with an `immutable` Cache-Control never change their bytes.
pub(crate) fn sealed(cache_control: &str) -> bool {
    cache_control.contains("immutable")
}

/// `Last-Modified` and the ETag of every variant (identity, gzip, brotli; each also as
/// the browser's XML view), made into header values once per publish: conditional GETs
/// are the bulk of a feed server's traffic, and these are all they need. Also the
/// document's request counters, looked up on its first request, so that counting the
/// rest takes no lock.
#[derive(Debug, Clone)]
pub struct HttpFields {
    pub last_modified: HeaderValue,
    /// Index: `encoding * 2 + browser_view`, encoding 0 identity, 1 gzip, 2 brotli.
    pub etags: [HeaderValue; 6],
    pub counters: std::sync::OnceLock<crate::metrics::PathCounters>,
}

impl HttpFields {
    /// `etag` is the quoted strong ETag of the identity body.
    pub fn new(etag: &str, last_modified: DateTime<Utc>) -> HttpFields {
        let stem = etag.trim_end_matches('"');
        let value = |s: String| {
            HeaderValue::from_maybe_shared(Bytes::from(s)).expect("ETags and HTTP dates are ASCII")
        };
        let v = |suffix: &str| value(format!("{stem}{suffix}\""));
        HttpFields {
            last_modified: value(httpdate::fmt_http_date(std::time::SystemTime::from(
                last_modified,
            ))),
            etags: [v(""), v("-x"), v("-gz"), v("-gz-x"), v("-br"), v("-br-x")],
            counters: std::sync::OnceLock::new(),
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
    /// Holds a document of an earlier catalog as it is (no copy of its bytes).
    pub fn insert_shared(&mut self, doc: Arc<Rendered>) {
        self.docs.insert(doc.path.clone(), doc);
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
    /// Holds an embed list of an earlier catalog as it is.
    pub fn insert_embed_shared(&mut self, channel: &str, list: Arc<EmbedList>) {
        self.embeds.insert(channel.to_owned(), list);
    }
}

/// The catalog the server reads; swapped whole after each publish.
#[derive(Clone, Default)]
pub struct SharedCatalog(Arc<ArcSwap<Catalog>>);

impl SharedCatalog {
    pub fn load(&self) -> Arc<Catalog> {
        self.0.load_full()
    }
    /// The current catalog for a moment (one request): no reference count to bump.
    pub fn guard(&self) -> arc_swap::Guard<Arc<Catalog>> {
        self.0.load()
    }
    pub fn store(&self, c: Catalog) {
        self.0.store(Arc::new(c));
    }
}
