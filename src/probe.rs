//! Reading one feed or page on demand, outside the schedule: what `feedwerk import` and
//! `feedwerk doctor` share. A location (URL or file) becomes bytes (through the same
//! hardened [`Fetcher`] the daemon uses), the bytes are sniffed (feed, HTML page, plain
//! text), and feeds and pages go through [`source::parse_remote`] and
//! [`normalise::normalise_all`] exactly as a configured source would, so what an
//! operator previews or imports is what the daemon will publish.
//!
//! Nothing here touches the store or the published outputs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use url::Url;

use crate::fetch::{FetchError, FetchOutcome, Fetcher, Validators};
use crate::model::{Item, PageSelectors, ParsedFeed, Source, SourceId, SourceKind};
use crate::normalise::{self, Context, NormaliseError};
use crate::source::{self, decode::Decoded, SourceError};

/// Where to read from: `http(s)://…` is fetched, anything else is a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Url(Url),
    File(PathBuf),
}

impl Location {
    pub fn parse(s: &str) -> Location {
        match Url::parse(s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Location::Url(u),
            _ => Location::File(PathBuf::from(s)),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Url(u) => write!(f, "{u}"),
            Location::File(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}: the server answered 304 Not Modified to an unconditional request")]
    NotModified(String),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{location}: this is an HTML page, not a feed; give `--selectors` to read it as a page source{}", announced(.feeds))]
    HtmlWithoutSelectors { location: String, feeds: Vec<Url> },
    #[error("{0}: the document is empty")]
    Empty(String),
}

fn announced(feeds: &[Url]) -> String {
    if feeds.is_empty() {
        String::new()
    } else {
        format!(
            " (the page announces a feed: {})",
            feeds.iter().map(Url::as_str).collect::<Vec<_>>().join(", ")
        )
    }
}

/// The raw bytes of a location and what HTTP said about them.
#[derive(Debug, Clone)]
pub struct Document {
    pub location: Location,
    /// Base for relative links: the URL after redirects, or `--base-url` for a file.
    pub base: Option<Url>,
    pub body: Vec<u8>,
    pub charset: Option<String>,
    pub content_type: Option<String>,
    /// Set when a permanent redirect was followed.
    pub moved_to: Option<Url>,
}

/// Fetches (unconditionally) or reads one location.
pub async fn load(
    location: &Location,
    fetcher: &Fetcher,
    base_override: Option<&Url>,
) -> Result<Document, ProbeError> {
    match location {
        Location::Url(url) => match fetcher.fetch(url, &Validators::default()).await? {
            FetchOutcome::Fetched(f) => Ok(Document {
                location: location.clone(),
                base: Some(
                    base_override
                        .cloned()
                        .unwrap_or_else(|| f.final_url.clone()),
                ),
                body: f.body,
                charset: f.charset,
                content_type: f.content_type,
                moved_to: f.moved_permanently,
            }),
            FetchOutcome::NotModified { .. } => Err(ProbeError::NotModified(url.to_string())),
        },
        Location::File(path) => {
            let body = std::fs::read(path).map_err(|source| ProbeError::Read {
                path: path.display().to_string(),
                source,
            })?;
            Ok(Document {
                location: location.clone(),
                base: base_override.cloned(),
                body,
                charset: None,
                content_type: None,
                moved_to: None,
            })
        }
    }
}

/// What the bytes look like, before any parser sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// XML or JSON: a feed candidate.
    Feed,
    Html,
    /// Anything else: a plain-text listing (for `import`).
    Text,
}

/// Looks at the first significant characters (after a BOM and whitespace).
pub fn sniff(body: &[u8]) -> Sniffed {
    let text = String::from_utf8_lossy(&body[..body.len().min(1024)]).to_ascii_lowercase();
    let t = text.trim_start_matches('\u{feff}').trim_start();
    // UTF-16 feeds start with a BOM and NULs the lossy view cannot read as text.
    if body.starts_with(&[0xff, 0xfe]) || body.starts_with(&[0xfe, 0xff]) {
        return Sniffed::Feed;
    }
    if t.starts_with("<!doctype html") || t.starts_with("<html") {
        return Sniffed::Html;
    }
    if t.starts_with('<') {
        // An XML prolog or comment may precede either; look for the root.
        if t.contains("<rss") || t.contains("<feed") || t.contains("<rdf:rdf") {
            return Sniffed::Feed;
        }
        if t.contains("<html") || t.contains("<body") || t.contains("<div") {
            return Sniffed::Html;
        }
        return Sniffed::Feed;
    }
    if t.starts_with('{') {
        return Sniffed::Feed;
    }
    Sniffed::Text
}

/// How to read a location.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Our source id for the items (their IDs start with it).
    pub source_id: String,
    /// Read as a page with these selectors (else: a feed).
    pub selectors: Option<PageSelectors>,
    pub date_formats: Vec<String>,
    pub timezone: Tz,
    /// Force a character encoding (as the source setting `encoding`).
    pub encoding: Option<String>,
    pub language: Option<String>,
    pub tag_map: BTreeMap<String, String>,
}

impl ProbeOptions {
    /// The source a configured one would be, so its rules apply unchanged.
    pub fn from_source(s: &Source) -> ProbeOptions {
        let (selectors, date_formats) = match &s.kind {
            SourceKind::Page {
                selectors,
                date_formats,
                ..
            } => (Some(selectors.clone()), date_formats.clone()),
            _ => (None, Vec::new()),
        };
        ProbeOptions {
            source_id: s.id.to_string(),
            selectors,
            date_formats,
            timezone: s.timezone,
            encoding: s.encoding.clone(),
            language: s.language.clone(),
            tag_map: s.tag_map.clone(),
        }
    }

    fn source(&self, url: Url) -> Source {
        let kind = match &self.selectors {
            Some(sel) => SourceKind::Page {
                url,
                selectors: sel.clone(),
                date_formats: self.date_formats.clone(),
            },
            None => SourceKind::Feed { url },
        };
        Source {
            id: SourceId(self.source_id.clone()),
            kind,
            title: self.source_id.clone(),
            homepage: None,
            priority: 50,
            language: self.language.clone(),
            timezone: self.timezone,
            schedule: None,
            encoding: self.encoding.clone(),
            allow_iframe_hosts: Vec::new(),
            tag_map: self.tag_map.clone(),
        }
    }
}

/// A document read as a feed or page: what the parser saw and the items we would publish.
#[derive(Debug)]
pub struct Probe {
    pub source: Source,
    pub decoded: Decoded,
    pub parsed: ParsedFeed,
    pub items: Vec<Item>,
    pub errors: Vec<NormaliseError>,
}

/// Parses and normalises a fetched or read document. `now` dates undated items.
pub fn read(doc: &Document, opts: &ProbeOptions, now: DateTime<Utc>) -> Result<Probe, ProbeError> {
    let location = doc.location.to_string();
    if doc.body.iter().all(u8::is_ascii_whitespace) {
        return Err(ProbeError::Empty(location));
    }
    if opts.selectors.is_none() && sniff(&doc.body) == Sniffed::Html {
        let decoded = source::decode::decode_html(&doc.body, doc.charset.as_deref(), None);
        let feeds = doc
            .base
            .as_ref()
            .map(|b| source::page::discover_feeds(&decoded.text, b))
            .unwrap_or_default();
        return Err(ProbeError::HtmlWithoutSelectors { location, feeds });
    }
    // A file without `--base-url` has no web address; links in it stay unresolvable
    // (and are reported) rather than pointing at this machine's disk.
    let base = doc
        .base
        .clone()
        .unwrap_or_else(|| Url::parse("file:///").expect("static URL"));
    let source = opts.source(base.clone());
    let (parsed, decoded) =
        source::parse_remote(&source, &doc.body, doc.charset.as_deref(), &base, &location)?;
    let feed_link = parsed.link.clone().or_else(|| doc.base.clone());
    let tag_map = opts.tag_map.clone();
    let ctx = Context {
        source: &source,
        feed_link: feed_link.as_ref(),
        feed_language: parsed.language.as_deref(),
        tag_map: &tag_map,
        now,
        back_catalogue: None,
    };
    let (items, errors) = normalise::normalise_all(&parsed.entries, &ctx);
    Ok(Probe {
        source: source.clone(),
        decoded,
        parsed,
        items,
        errors,
    })
}
