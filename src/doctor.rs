//! `feedwerk doctor`: reads one feed or page (by URL or file) the way a configured
//! source would be read, and explains what it found: the format, the encoding and which
//! signal decided it, the feed's own facts, every item as we would publish it, every
//! entry read but dropped (with the reason), what had to be repaired to read the
//! document at all, and the problems an operator should know about before adding the
//! source.
//!
//! It owns only the diagnosis and its two renderings (text for people, one JSON object
//! for scripts); reading goes through [`crate::probe`], so the preview cannot drift from
//! what the daemon does.

use std::collections::HashMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Serialize;

use crate::model::{DateSource, ParsedFeed};
use crate::probe::{self, Document, Location, ProbeError, ProbeOptions, Sniffed};
use crate::source::decode::{self, DecidedBy};

/// The diagnosis of one document.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    /// The URL or file as given.
    pub location: String,
    /// `rss2`, `rss0` (0.91/0.92), `rss1`, `rss090`, `atom`, `atom03`, `json`, `page`,
    /// or `html` / `unknown` when it could not be read as either.
    pub format: String,
    /// The encoding the text was read in (WHATWG name, e.g. `windows-1252`).
    pub encoding: String,
    /// Which signal decided the encoding (BOM, valid UTF-8, the document's declaration,
    /// the HTTP charset, detection, or the `encoding` setting).
    pub encoding_decided_by: String,
    pub http: Option<Http>,
    pub feed: FeedFacts,
    pub items: Vec<ItemFacts>,
    /// Entries the document holds that would not be published, with the reason.
    pub dropped: Vec<DroppedFacts>,
    /// How the document had to be read differently from what it says (a repaired end
    /// tag, expanded DTD entities, an RSS root without version, …): it is read, but the
    /// partner should hear about it.
    pub repairs: Vec<String>,
    pub problems: Vec<String>,
    /// False when the document could not be read as a feed or page at all.
    pub readable: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Http {
    pub content_type: Option<String>,
    pub charset: Option<String>,
    pub bytes: usize,
    /// A permanent redirect was followed to here.
    pub moved_to: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FeedFacts {
    pub title: Option<String>,
    pub link: Option<String>,
    pub id: Option<String>,
    pub updated: Option<String>,
    pub language: Option<String>,
    pub authors: Vec<String>,
    pub categories: Vec<String>,
}

/// One entry read from the document but not published.
#[derive(Debug, Clone, Serialize)]
pub struct DroppedFacts {
    /// Its position among the document's entries (1 = first).
    pub entry: usize,
    pub guid: Option<String>,
    /// The title as plain text, empty when it has none.
    pub title: String,
    /// The link as written.
    pub link: Option<String>,
    pub reason: String,
}

/// One item as it would be published.
#[derive(Debug, Clone, Serialize)]
pub struct ItemFacts {
    /// Its position among the document's entries (1 = first).
    pub entry: usize,
    /// Our published item ID.
    pub id: String,
    /// The source's own identifier, untouched.
    pub guid: Option<String>,
    pub title: String,
    pub link: Option<String>,
    /// RFC 3339 UTC; `null` when the source gave no usable date (it would be dated when
    /// first seen).
    pub published: Option<String>,
    pub updated: Option<String>,
    pub language: Option<String>,
    pub authors: Vec<String>,
    pub tags: Vec<String>,
    pub summary: String,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Diagnoses a loaded document. Errors only when nothing at all could be read; a
/// document that decodes but does not parse is a diagnosis with `readable: false`.
pub fn diagnose(doc: &Document, opts: &ProbeOptions, now: DateTime<Utc>) -> Diagnosis {
    let sniffed = probe::sniff(&doc.body);
    let mut problems = Vec::new();
    let http = match &doc.location {
        Location::Url(_) => Some(Http {
            content_type: doc.content_type.clone(),
            charset: doc.charset.clone(),
            bytes: doc.body.len(),
            moved_to: doc.moved_to.as_ref().map(|u| u.to_string()),
        }),
        Location::File(_) => None,
    };
    if let Some(m) = &doc.moved_to {
        problems.push(format!(
            "moved permanently to {m}: use the new URL in the config"
        ));
    }
    let mut d = Diagnosis {
        location: doc.location.to_string(),
        format: "unknown".into(),
        encoding: String::new(),
        encoding_decided_by: String::new(),
        http,
        feed: FeedFacts::default(),
        items: Vec::new(),
        dropped: Vec::new(),
        repairs: Vec::new(),
        problems: Vec::new(),
        readable: false,
    };
    match probe::read(doc, opts, now) {
        Ok(p) => {
            d.readable = true;
            d.format = p.parsed.format.clone();
            d.encoding = p.decoded.encoding.to_owned();
            d.encoding_decided_by = p.decoded.decided_by.describe().to_owned();
            encoding_problems(
                doc,
                p.decoded.encoding,
                p.decoded.decided_by,
                p.parsed.format == "page",
                &mut problems,
            );
            d.feed = feed_facts(&p.parsed);
            problems.extend(p.parsed.problems.iter().cloned());
            problems.extend(p.errors.iter().map(ToString::to_string));
            item_problems(&p.parsed, &p.items, now, &mut problems);
            d.repairs = p.parsed.repairs.clone();
            let (published, dropped) = entry_positions(&p);
            d.dropped = dropped;
            d.items = p
                .items
                .iter()
                .zip(published)
                .map(|(i, entry)| ItemFacts {
                    entry,
                    id: i.id.to_string(),
                    guid: i.guid.clone(),
                    title: i.title.clone(),
                    link: i.url.as_ref().map(|u| u.to_string()),
                    published: (i.date_source == DateSource::Declared)
                        .then(|| rfc3339(i.published)),
                    updated: i.updated.map(rfc3339),
                    language: i.language.clone(),
                    authors: i.authors.clone(),
                    tags: i.tags.clone(),
                    summary: i.summary.clone(),
                })
                .collect();
        }
        Err(e) => {
            // Still say how the bytes were read: a wrong encoding is often the cause.
            let as_html = opts.selectors.is_some() || sniffed == Sniffed::Html;
            let dec = if as_html {
                decode::decode_html(&doc.body, doc.charset.as_deref(), opts.encoding.as_deref())
            } else {
                decode::decode_xml(&doc.body, doc.charset.as_deref(), opts.encoding.as_deref())
            };
            d.encoding = dec.encoding.to_owned();
            d.encoding_decided_by = dec.decided_by.describe().to_owned();
            encoding_problems(doc, dec.encoding, dec.decided_by, as_html, &mut problems);
            d.format = match (&e, sniffed) {
                (ProbeError::HtmlWithoutSelectors { .. }, _) => "html".into(),
                (_, _) if opts.selectors.is_some() => "page".into(),
                _ => "unknown".into(),
            };
            problems.push(e.to_string());
        }
    }
    d.problems = problems;
    d
}

fn feed_facts(p: &ParsedFeed) -> FeedFacts {
    let plain = |v: &[String]| {
        v.iter()
            .map(|s| crate::normalise::text::plain(s))
            .filter(|s| !s.is_empty())
            .collect()
    };
    FeedFacts {
        title: p.title.clone(),
        link: p.link.as_ref().map(|u| u.to_string()),
        id: p.id.clone(),
        updated: p.updated.map(rfc3339),
        language: p.language.clone(),
        authors: plain(&p.authors),
        categories: plain(&p.categories),
    }
}

/// Which entry of the document each published item is (1-based), and the entries
/// normalisation dropped. Normalisation keeps the document's order and reports each
/// dropped entry under its origin, so walking both in step pairs them exactly.
fn entry_positions(p: &probe::Probe) -> (Vec<usize>, Vec<DroppedFacts>) {
    let mut published = Vec::new();
    let mut dropped = Vec::new();
    let mut errors = p.errors.iter().peekable();
    for (n, e) in p.parsed.entries.iter().enumerate() {
        match errors.peek() {
            Some(err) if err.origin() == e.origin => {
                dropped.push(DroppedFacts {
                    entry: n + 1,
                    guid: e.guid.clone(),
                    title: e
                        .title
                        .as_ref()
                        .map(crate::normalise::text::plain_title)
                        .unwrap_or_default(),
                    link: e.link.clone(),
                    reason: err.reason(),
                });
                errors.next();
            }
            _ => published.push(n + 1),
        }
    }
    (published, dropped)
}

fn encoding_problems(
    doc: &Document,
    encoding: &str,
    by: DecidedBy,
    html: bool,
    problems: &mut Vec<String>,
) {
    if let Some(declared) = decode::declared_encoding(&doc.body, html) {
        if declared != encoding && by != DecidedBy::Forced {
            problems.push(format!(
                "the document declares {declared} but was read as {encoding} ({}): the declaration is wrong",
                by.describe()
            ));
        }
    }
    if by == DecidedBy::Detected {
        problems.push(format!(
            "no encoding declared anywhere (no BOM, no declaration, no HTTP charset) and the bytes are not UTF-8: guessed {encoding}"
        ));
    }
    if let Some(http) = &doc.charset {
        let named = encoding_rs::Encoding::for_label(http.as_bytes()).map(|e| e.name());
        if named != Some(encoding) && by != DecidedBy::Forced {
            problems.push(format!(
                "the server says charset={http} but the document was read as {encoding} ({})",
                by.describe()
            ));
        }
    }
}

fn item_problems(
    parsed: &ParsedFeed,
    items: &[crate::model::Item],
    now: DateTime<Utc>,
    problems: &mut Vec<String>,
) {
    if parsed.entries.is_empty() {
        problems.push("the document has no items".into());
    }
    let undated = parsed
        .entries
        .iter()
        .filter(|e| e.published.is_none() && e.updated.is_none())
        .count();
    if undated > 0 {
        problems.push(format!(
            "{undated} of {} items have no usable date: they would be dated when first seen",
            parsed.entries.len()
        ));
    }
    let future = now + Duration::days(1);
    for (n, e) in parsed.entries.iter().enumerate() {
        if e.published.or(e.updated).is_some_and(|d| d > future) {
            problems.push(format!(
                "item {}: dated in the future ({}); it would be dated when first seen",
                n + 1,
                rfc3339(e.published.or(e.updated).unwrap_or(now))
            ));
        }
    }
    let unlinked = items.iter().filter(|i| i.url.is_none()).count();
    if unlinked > 0 {
        problems.push(format!(
            "{unlinked} items have no usable link (missing, relative without a base, or not http/https)"
        ));
    }
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (n, i) in items.iter().enumerate() {
        if let Some(first) = ids.insert(i.id.0.as_str(), n + 1) {
            problems.push(format!(
                "items {first} and {} get the same ID {}: only one of them would be kept",
                n + 1,
                i.id
            ));
        }
    }
    let mut guids: HashMap<&str, usize> = HashMap::new();
    for (n, e) in parsed.entries.iter().enumerate() {
        if let Some(g) = e.guid.as_deref() {
            if let Some(first) = guids.insert(g, n + 1) {
                problems.push(format!("items {first} and {} share the GUID `{g}`", n + 1));
            }
        }
    }
}

/// Loads and diagnoses a location; a fetch or read failure is the only error.
pub async fn run(
    location: &Location,
    opts: &ProbeOptions,
    fetcher: &crate::fetch::Fetcher,
    base_url: Option<&url::Url>,
    now: DateTime<Utc>,
) -> Result<Diagnosis, ProbeError> {
    let doc = probe::load(location, fetcher, base_url).await?;
    Ok(diagnose(&doc, opts, now))
}

/// The diagnosis of a location that could not be fetched or read at all, so `--json`
/// still prints one object.
pub fn unreachable(location: &Location, error: &ProbeError) -> Diagnosis {
    Diagnosis {
        location: location.to_string(),
        format: "unknown".into(),
        encoding: String::new(),
        encoding_decided_by: String::new(),
        http: None,
        feed: FeedFacts::default(),
        items: Vec::new(),
        dropped: Vec::new(),
        repairs: Vec::new(),
        problems: vec![error.to_string()],
        readable: false,
    }
}

/// The JSON object for scripts: `format`, `encoding`, `feed`, `items`, plus how the
/// encoding was decided and the problems.
pub fn to_json(d: &Diagnosis) -> String {
    serde_json::to_string_pretty(d).expect("diagnoses serialise")
}

/// The report for people.
pub fn to_text(d: &Diagnosis) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "document:  {}", d.location);
    if let Some(h) = &d.http {
        let _ = writeln!(
            o,
            "http:      {} bytes, Content-Type: {}",
            h.bytes,
            h.content_type.as_deref().unwrap_or("(none)")
        );
    }
    let _ = writeln!(o, "format:    {}", d.format);
    let _ = writeln!(o, "encoding:  {} — {}", d.encoding, d.encoding_decided_by);
    if d.readable {
        let f = &d.feed;
        let field = |o: &mut String, name: &str, v: &Option<String>| {
            if let Some(v) = v {
                let _ = writeln!(o, "  {name:<9} {v}");
            }
        };
        let _ = writeln!(o, "feed:");
        field(&mut o, "title", &f.title);
        field(&mut o, "link", &f.link);
        field(&mut o, "id", &f.id);
        field(&mut o, "updated", &f.updated);
        field(&mut o, "language", &f.language);
        let list = |v: &[String]| (!v.is_empty()).then(|| v.join(", "));
        field(&mut o, "authors", &list(&f.authors));
        field(&mut o, "category", &list(&f.categories));
        let dated: Vec<&String> = d
            .items
            .iter()
            .filter_map(|i| i.published.as_ref())
            .collect();
        let _ = write!(
            o,
            "items:     {} ({} dated, {} undated",
            d.items.len(),
            dated.len(),
            d.items.len() - dated.len()
        );
        if let (Some(min), Some(max)) = (dated.iter().min(), dated.iter().max()) {
            let _ = write!(o, "; newest {max}, oldest {min}");
        }
        let _ = write!(o, ")");
        if !d.dropped.is_empty() {
            let _ = write!(o, "; {} more read but dropped", d.dropped.len());
        }
        let _ = writeln!(o);
        let mut dropped = d.dropped.iter().peekable();
        for i in &d.items {
            while let Some(x) = dropped.next_if(|x| x.entry < i.entry) {
                write_dropped(&mut o, x);
            }
            let _ = writeln!(o, "\n  {:>2}. {}", i.entry, i.title);
            let row = |o: &mut String, name: &str, v: Option<&str>| {
                if let Some(v) = v {
                    let _ = writeln!(o, "      {name:<10} {v}");
                }
            };
            row(&mut o, "id", Some(&i.id));
            row(&mut o, "guid", i.guid.as_deref());
            row(&mut o, "link", i.link.as_deref());
            row(
                &mut o,
                "published",
                Some(i.published.as_deref().unwrap_or("(none: first-seen time)")),
            );
            row(&mut o, "updated", i.updated.as_deref());
            row(&mut o, "language", i.language.as_deref());
            row(&mut o, "authors", list(&i.authors).as_deref());
            row(&mut o, "tags", list(&i.tags).as_deref());
            let summary = crate::normalise::text::summarise(&i.summary, 120);
            row(
                &mut o,
                "summary",
                (!summary.is_empty()).then_some(&*summary),
            );
        }
        for x in dropped {
            write_dropped(&mut o, x);
        }
    }
    if !d.repairs.is_empty() {
        let _ = writeln!(o, "\nrepaired (read anyway; tell the partner):");
        for r in &d.repairs {
            let _ = writeln!(o, "  - {r}");
        }
    }
    if d.problems.is_empty() {
        let _ = writeln!(o, "\nproblems:  none");
    } else {
        let _ = writeln!(o, "\nproblems:");
        for p in &d.problems {
            let _ = writeln!(o, "  - {p}");
        }
    }
    o
}

fn write_dropped(o: &mut String, x: &DroppedFacts) {
    use std::fmt::Write as _;
    let title = if x.title.is_empty() {
        "(no title)"
    } else {
        &x.title
    };
    let _ = writeln!(o, "\n  {:>2}. {title}", x.entry);
    let _ = writeln!(o, "      {:<10} {}", "dropped", x.reason);
    if let Some(g) = &x.guid {
        let _ = writeln!(o, "      {:<10} {g}", "guid");
    }
    if let Some(l) = &x.link {
        let _ = writeln!(o, "      {:<10} {l}", "link");
    }
}
