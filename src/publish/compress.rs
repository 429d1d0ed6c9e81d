//! Compression of published documents: which documents get gzip and brotli copies,
//! and how hard each is worked for ([`Reach`]).
//!
//! Front-door documents ([`Reach::Wide`]) are compressed once per change, when they
//! are written: most readers fetch them, and a web server in front of the output
//! directory can send the `.gz`/`.br` files as they are. The many narrow ones
//! (per-source, tag and language channels, archive pages) are not compressed at
//! publish time at all — a cold medium build spent over a third of its CPU
//! compressing them for readers that mostly never come — but by the server on the
//! first request that accepts an encoding ([`on_request`]), which caches the result.

use std::io::Write;

use bytes::Bytes;

/// Only text formats are worth compressing.
pub fn compressible(content_type: &str) -> bool {
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
///
/// Front-door documents get quality 6, not 8: from quality 7 the H5 hasher's table is
/// 2^15 buckets × 2^(quality−1) slots of `u32` (8 MiB at 7, 16 MiB at 8, against 2 MiB at
/// 6), allocated zeroed for every document and all of it touched by a 150 KB feed. On
/// a VM where a page fault is dear that dominated: in `perf` of a cold medium build
/// `brotli_at` was 4.5 % of all CPU, for 7 documents, 70 % of it in `clear_page`.
/// Compressing a medium build's 7 front-door documents (614 KB) in a fresh process,
/// 3 rounds: quality 8 39–50 ms, 112 178 bytes; quality 7 26–28 ms, 112 270 bytes;
/// quality 6 16–18 ms, 112 560 bytes (+0.34 %); quality 5 16–23 ms, 113 236 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The site's front door, fetched by most readers and rewritten on every change:
    /// the combined feeds, `[[channel]]` feeds, the news and post pages, OPML and
    /// assets. Brotli quality 6.
    Wide,
    /// One of many: per-source, per-tag and per-language channels (hundreds, each with
    /// few readers) and RFC 5005 archive pages (written once, rarely fetched). Not
    /// compressed when published: the server compresses one on the first request that
    /// asks for an encoding ([`on_request`]).
    Narrow,
}

impl Reach {
    /// Does a publishing pass write `.gz`/`.br` copies of such a document?
    pub fn precompressed(self) -> bool {
        self == Reach::Wide
    }
}

/// The content codings a document may be sent in besides identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    Gzip,
    Brotli,
}

/// Levels for compressing a narrow document when a reader first asks for it. The
/// reader waits for it once per version of the document, then the server's cache
/// answers; what is saved is sent with every later 200 of that version. Measured on a
/// rendered 50-item Atom feed (157 KB; `cargo bench --bench render`,
/// `on_request_levels_*`, medians on a loaded 2-core machine): gzip 1 makes 31.5 % of
/// the input in 0.35 ms, gzip 3 22.9 % in 1.29 ms, gzip 6 22.0 % in 1.75 ms; brotli 4
/// 22.4 % in 1.92 ms, brotli 5 20.9 % in 3.06 ms. On the 1 932 narrow documents of a
/// medium build (193 MB, median 80 KB; zlib) gzip 6 makes 13 % less than gzip 1. A
/// few milliseconds once per version buys the smaller body for every later reader, so
/// the higher level of each range: gzip 6, brotli 5.
const GZIP_ON_REQUEST: u32 = 6;
const BROTLI_ON_REQUEST: i32 = 5;
/// Brotli quality of precompressed front-door documents (see [`Reach`]).
const BROTLI_WIDE: i32 = 6;

/// `data` compressed with `coding` at the levels for a request ([`GZIP_ON_REQUEST`],
/// [`BROTLI_ON_REQUEST`]).
pub fn on_request(data: &[u8], coding: Coding) -> Bytes {
    match coding {
        Coding::Gzip => gzip_at(data, GZIP_ON_REQUEST),
        Coding::Brotli => brotli_at(data, BROTLI_ON_REQUEST),
    }
}

/// Level 6, not 9: on feed XML level 9 costs twice the CPU for 0.5 % of size, and a
/// cold publish compresses thousands of documents. The deflate backend is zlib-rs (see
/// `Cargo.toml`): at level 6 it is 2.2–2.5× as fast as miniz_oxide on our documents,
/// for files 0.3–0.8 % larger.
pub(crate) fn gzip(data: &[u8]) -> Bytes {
    gzip_at(data, 6)
}

fn gzip_at(data: &[u8], level: u32) -> Bytes {
    // Deflated feed XML is about a fifth of its input: one allocation, not a doubling
    // series of reallocations and the page faults that come with them.
    let out = Vec::with_capacity(data.len() / 4 + 64);
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::new(level));
    enc.write_all(data).expect("in-memory");
    Bytes::from(enc.finish().expect("in-memory"))
}

/// The brotli copy of a front-door document.
pub(crate) fn brotli(data: &[u8]) -> Bytes {
    brotli_at(data, BROTLI_WIDE)
}

fn brotli_at(data: &[u8], quality: i32) -> Bytes {
    let mut out = Vec::with_capacity(data.len() / 4 + 64);
    // A window no larger than the document: with brotli's default 4 MiB window every
    // 20 KB feed allocated and zeroed megabytes of tables (page faults and clear_page in
    // the profile). Output size is unaffected, since a window can't reach further back
    // than the document's start anyway. At least 2^17, though: with a 2^16 window
    // qualities 5–8 switch to the H40–H42 hashers, which on our 30–64 KB feeds ran at
    // 8 MB/s instead of 60 (their per-document setup dominates).
    let lgwin = (usize::BITS - data.len().max(1).leading_zeros()).clamp(17, 22) as i32;
    let params = brotli::enc::BrotliEncoderParams {
        quality,
        lgwin,
        size_hint: data.len(),
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &data[..], &mut out, &params).expect("in-memory");
    Bytes::from(out)
}

/// The gzip and brotli copies a publishing pass writes beside a front-door text
/// document (`cargo bench --bench render` measures them on a rendered feed).
pub fn precompress(body: &[u8]) -> (Bytes, Bytes) {
    (gzip(body), brotli(body))
}
