//! Rendered documents → files on disk and the in-memory catalog the server reads.
//!
//! Every file is written to a temporary file in the same directory, synced and renamed
//! into place, so readers (and a crash) never see half a file. Documents whose bytes did
//! not change are not rewritten, so their ETag and Last-Modified stay put and readers'
//! conditional requests keep getting 304. Compressed variants are made once, here.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use chrono::{DateTime, Utc};

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
}

/// path (without leading `/`) → document.
pub type Catalog = HashMap<String, Arc<Rendered>>;

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

/// A document to publish.
pub struct Document {
    pub path: String,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub cache_control: &'static str,
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
    pub written: Vec<String>,
    pub unchanged: usize,
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

/// Writes `bytes` to `path` atomically: temp file in the same directory, fsync, rename,
/// fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".feedwerk-")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Publishes `docs` under `out_dir`, reusing validators of unchanged documents from the
/// store. Returns the new catalog and what was written.
pub fn publish(
    out_dir: &Path,
    docs: Vec<Document>,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<(Catalog, PublishReport), PublishError> {
    let mut catalog = Catalog::with_capacity(docs.len());
    let mut report = PublishReport::default();
    for doc in docs {
        let hash = blake3::hash(&doc.body).to_hex()[..20].to_owned();
        let file = out_dir.join(&doc.path);
        let previous = store.output_state(&doc.path)?;
        let unchanged = previous.as_ref().is_some_and(|(h, _)| *h == hash) && file.exists();
        let last_modified = match (&previous, unchanged) {
            (Some((_, lm)), true) => *lm,
            _ => now,
        };
        let body = Bytes::from(doc.body);
        let (gz, br) = if compressible(doc.content_type) && body.len() > 256 {
            (Some(gzip(&body)), Some(brotli(&body)))
        } else {
            (None, None)
        };
        if unchanged {
            report.unchanged += 1;
        } else {
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
        }
        catalog.insert(
            doc.path.clone(),
            Arc::new(Rendered {
                path: doc.path,
                content_type: doc.content_type,
                body,
                gzip: gz,
                brotli: br,
                etag: format!("\"{hash}\""),
                last_modified,
                cache_control: doc.cache_control,
            }),
        );
    }
    Ok((catalog, report))
}

fn sibling(file: &Path, ext: &str) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}
