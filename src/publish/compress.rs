//! Compression of published documents: which documents get gzip and brotli copies,
//! and how hard each is worked for ([`Reach`]). Made once per changed document when it
//! is written, never per request; the server only picks a variant.

use std::io::Write;

use bytes::Bytes;

/// Only text formats are worth compressing.
pub(crate) fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.contains("xml")
        || content_type.contains("json")
        || content_type.contains("javascript")
}

/// How widely a document is read: decides how hard its brotli copy is worked for.
///
/// Measured on the documents of a full medium build (`rust-brotli` 8, one core; a
/// sample of 349 documents, 37 MB): quality 9 makes 21.4 % of the input at 3.5–11 MB/s,
/// because its hasher (H9) allocates and zeroes a 32 MiB table for every document, so a
/// 60 KB tag feed pays for page faults, not for compression; quality 8 makes files
/// within 0.2 % of that size at 38–42 MB/s, quality 5 within 1.2 % (feeds) to 5 %
/// (archive pages) at 57–77 MB/s. Quality 11 would save another 7.5 % at under 1 MB/s
/// — 70× the CPU of quality 8 for every changed document, not worth it for files that
/// readers mostly revalidate with a `304`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The site's front door, fetched by most readers and rewritten on every change:
    /// the combined feeds, `[[channel]]` feeds, the news and post pages, OPML and
    /// assets. Brotli quality 8.
    Wide,
    /// One of many: per-source, per-tag and per-language channels (hundreds, each with
    /// few readers) and RFC 5005 archive pages (written once, rarely fetched). Brotli
    /// quality 5: a full build has thousands of these.
    Narrow,
}

impl Reach {
    fn brotli_quality(self) -> i32 {
        match self {
            Reach::Wide => 8,
            Reach::Narrow => 5,
        }
    }
}

/// Level 6, not 9: on feed XML level 9 costs twice the CPU for 0.5 % of size, and a
/// cold publish compresses thousands of documents. The deflate backend is zlib-rs (see
/// `Cargo.toml`): at level 6 it is 2.2–2.5× as fast as miniz_oxide on our documents,
/// for files 0.3–0.8 % larger.
pub(crate) fn gzip(data: &[u8]) -> Bytes {
    // Deflated feed XML is about a fifth of its input: one allocation, not a doubling
    // series of reallocations and the page faults that come with them.
    let out = Vec::with_capacity(data.len() / 4 + 64);
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::new(6));
    enc.write_all(data).expect("in-memory");
    Bytes::from(enc.finish().expect("in-memory"))
}

pub(crate) fn brotli(data: &[u8], reach: Reach) -> Bytes {
    let mut out = Vec::with_capacity(data.len() / 4 + 64);
    // A window no larger than the document: with brotli's default 4 MiB window every
    // 20 KB feed allocated and zeroed megabytes of tables (page faults and clear_page in
    // the profile). Output size is unaffected, since a window can't reach further back
    // than the document's start anyway. At least 2^17, though: with a 2^16 window
    // qualities 5–8 switch to the H40–H42 hashers, which on our 30–64 KB feeds ran at
    // 8 MB/s instead of 60 (their per-document setup dominates).
    let lgwin = (usize::BITS - data.len().max(1).leading_zeros()).clamp(17, 22) as i32;
    let params = brotli::enc::BrotliEncoderParams {
        quality: reach.brotli_quality(),
        lgwin,
        size_hint: data.len(),
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &data[..], &mut out, &params).expect("in-memory");
    Bytes::from(out)
}

/// The gzip and brotli copies a publishing pass writes beside a text document of `reach`
/// (`cargo bench --bench render` measures them on a rendered feed).
pub fn precompress(body: &[u8], reach: Reach) -> (Bytes, Bytes) {
    (gzip(body), brotli(body, reach))
}
