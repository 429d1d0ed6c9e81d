//! Source adapters: whatever a source delivers (files, feed bytes, page bytes) becomes a
//! [`ParsedFeed`] of untrusted [`Entry`]s. Foreign parser types stay in these files.
//!
//! [`parse_remote`] is the one place that picks the decoder and the adapter for a remote
//! source's bytes; the pipeline, `import` and `doctor` all go through it, so what an
//! operator previews is what the daemon will read.

pub mod atom03;
pub mod dc;
pub mod decode;
pub mod entities;
pub mod feed;
pub mod guard;
pub mod lenient;
pub mod local;
pub mod page;
pub mod rdf;
pub mod xmltree;

use url::Url;

pub use crate::model::{Entry, ParsedFeed};
use crate::model::{Source, SourceKind};

/// Why a remote source's bytes gave no items.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Feed(#[from] feed::FeedParseError),
    #[error(transparent)]
    Page(#[from] page::PageError),
    #[error("{0}: a local source has no remote document")]
    Local(String),
    /// A parser panicked on this document (a bug in it, triggered by the input). The
    /// source fails like any broken feed; the process and the other sources go on.
    #[error("{origin}: the parser crashed on this document: {message}")]
    Crashed { origin: String, message: String },
}

/// Decodes and parses what a feed or page source delivered. `base` is the URL the bytes
/// came from after redirects; `origin` names the source in messages.
pub fn parse_remote(
    source: &Source,
    body: &[u8],
    http_charset: Option<&str>,
    base: &Url,
    origin: &str,
) -> Result<(ParsedFeed, decode::Decoded), SourceError> {
    // Parsers see hostile input; one that panics must cost this source, not the daemon.
    // Nothing shared is mutated inside, so unwinding out of it leaves no broken state.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        parse_unguarded(source, body, http_charset, base, origin)
    }))
    .unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(SourceError::Crashed {
            origin: origin.to_owned(),
            message,
        })
    })
}

fn parse_unguarded(
    source: &Source,
    body: &[u8],
    http_charset: Option<&str>,
    base: &Url,
    origin: &str,
) -> Result<(ParsedFeed, decode::Decoded), SourceError> {
    match &source.kind {
        SourceKind::Feed { .. } => {
            let decoded = decode::decode_xml(body, http_charset, source.encoding.as_deref());
            let parsed = feed::parse(&decoded.text, Some(base), source.timezone, origin)?;
            Ok((parsed, decoded))
        }
        SourceKind::Page {
            selectors,
            date_formats,
            ..
        } => {
            let decoded = decode::decode_html(body, http_charset, source.encoding.as_deref());
            let rules = page::PageRules {
                selectors,
                date_formats,
                timezone: source.timezone,
            };
            let parsed = page::parse(&decoded.text, base, &rules, origin)?;
            Ok((parsed, decoded))
        }
        SourceKind::Local { .. } => Err(SourceError::Local(origin.to_owned())),
    }
}
