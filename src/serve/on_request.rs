//! Compressed variants made on request: a narrow document (see
//! [`crate::publish::Reach`]) is published without `.gz`/`.br` copies, and the first
//! request that accepts gzip or brotli compresses it here. The result is cached,
//! bounded by bytes, keyed by the variant's ETag — the identity body's content hash
//! plus the coding — so a document that changed (new bytes, new hash) can never be
//! answered with a variant of its old bytes, and two paths with the same bytes share
//! one entry. Which variant a request gets, and its headers, stay with [`super`].

use axum::http::HeaderValue;
use bytes::Bytes;

use crate::publish::{self, Coding};

/// How many bytes of compressed variants the server holds at most. A medium build's
/// narrow documents compress to about this much in brotli and gzip together; the ones
/// readers ask for again stay, the rest is made again when asked for.
pub const CACHE_BYTES: u64 = 64 << 20;

/// The cache shared by the server's threads.
pub struct Variants {
    cache: quick_cache::sync::Cache<HeaderValue, Bytes, ByLength>,
}

/// Weighs an entry by the bytes it holds.
#[derive(Clone)]
struct ByLength;

impl quick_cache::Weighter<HeaderValue, Bytes> for ByLength {
    fn weight(&self, key: &HeaderValue, body: &Bytes) -> u64 {
        (key.len() + body.len()) as u64
    }
}

impl Default for Variants {
    fn default() -> Variants {
        Variants::with_capacity(CACHE_BYTES)
    }
}

impl Variants {
    /// A cache holding at most `bytes` of variants.
    pub fn with_capacity(bytes: u64) -> Variants {
        // quick_cache sizes its table from an item estimate: narrow documents compress
        // to ~10 KB on average.
        let items = (bytes / 10_000).clamp(16, 1 << 16) as usize;
        Variants {
            cache: quick_cache::sync::Cache::with_weighter(items, bytes, ByLength),
        }
    }

    /// The cached variant whose ETag is `etag`.
    pub fn get(&self, etag: &HeaderValue) -> Option<Bytes> {
        self.cache.get(etag)
    }

    /// `identity` compressed with `coding`, cached under `etag` (the variant's ETag).
    /// Runs the compressor: call it off the connection's thread.
    pub fn make(&self, etag: HeaderValue, identity: &[u8], coding: Coding) -> Bytes {
        let body = publish::on_request(identity, coding);
        self.cache.insert(etag, body.clone());
        body
    }

    /// Bytes held now.
    pub fn weight(&self) -> u64 {
        self.cache.weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_stays_within_its_bytes() {
        let v = Variants::with_capacity(100_000);
        let body: Vec<u8> = (0..20_000u32).flat_map(|i| i.to_le_bytes()).collect();
        for i in 0..50 {
            let etag = HeaderValue::from_str(&format!("\"{i}-gz\"")).unwrap();
            v.make(etag, &body, Coding::Gzip);
            assert!(v.weight() <= 100_000, "{} after {i}", v.weight());
        }
        let last = HeaderValue::from_static("\"49-gz\"");
        assert!(v.get(&last).is_some(), "the newest entry is kept");
    }
}
