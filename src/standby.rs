//! What a standby serves while another process leads (several `feedwerk run` on one
//! PostgreSQL store): the documents in `publish.output_dir` as they are on disk, read
//! into a [`Catalog`] for the server. With a shared output directory (or processes on
//! one machine) those are the leader's latest; otherwise they are what this process
//! published when it last led. Readers of a deployment with object storage are served
//! by the bucket, whichever process leads.
//!
//! The leader's catalog carries each document's exact headers from rendering; here they
//! come from the file: its type from its name (the names publishing gives), its ETag
//! from its bytes (the same hash the leader's is), Last-Modified from its mtime, and a
//! short `Cache-Control`, since a standby's copy may be the older one. Precompressed
//! `.gz` and `.br` copies go with their document; the publisher's temporary files
//! (hidden, `.feedwerk-…`) are skipped.

use std::path::Path;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::catalog::{content_hash, Catalog, Rendered};
use crate::model::Format;

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

    #[test]
    fn a_missing_output_dir_is_an_empty_catalog() {
        assert!(catalog_from_dir(Path::new("does/not/exist")).is_empty());
    }
}
