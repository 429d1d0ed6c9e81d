//! `Entry` → `Item`: the single place where untrusted input becomes trusted.
//!
//! Order matters: URLs are resolved first (sanitising needs the base), HTML is
//! sanitised once, text and the fingerprint are derived from the sanitised HTML.

mod elements;
pub mod fingerprint;
mod flat_text;
pub mod html;
pub mod lang;
pub mod text;
pub mod url;

use std::collections::BTreeMap;

use ::url::Url;
use chrono::{DateTime, Duration, Utc};

use crate::model::{DateSource, Entry, Item, ItemId, Source, TextKind};

/// Summaries are cut to about this many characters.
pub const SUMMARY_CHARS: usize = 300;

/// What normalisation needs beyond the entry itself.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub source: &'a Source,
    /// The feed's own link, or the URL the document came from: the last fallback base
    /// for relative URLs.
    pub feed_link: Option<&'a Url>,
    /// The feed's declared language (`<language>`, `xml:lang`).
    pub feed_language: Option<&'a str>,
    /// Lower-cased category → tag, from `[tags]` in the config.
    pub tag_map: &'a BTreeMap<String, String>,
    pub now: DateTime<Utc>,
    /// Set on a source's first ingest (the store holds nothing from it yet): its undated
    /// items are back catalogue, not news. See [`normalise_all`].
    pub back_catalogue: Option<BackCatalogue>,
}

/// Where a new source's undated back catalogue is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackCatalogue {
    /// The oldest item readers currently see in the combined feed, if any: undated items
    /// of a document without any dated item are placed just below it.
    pub below: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NormaliseError {
    #[error("{origin}: item has neither a title nor any text nor a link")]
    Empty { origin: String },
}

impl NormaliseError {
    /// The dropped entry's [`Entry::origin`].
    pub fn origin(&self) -> &str {
        match self {
            NormaliseError::Empty { origin } => origin,
        }
    }

    /// Why it was dropped, without the origin (`doctor` lists it under the entry).
    pub fn reason(&self) -> String {
        match self {
            NormaliseError::Empty { .. } => {
                "item has neither a title nor any text nor a link".into()
            }
        }
    }
}

/// Normalises every entry of one document, applying the rules that need the whole
/// document: the placement of undated items.
///
/// **Undated items.** An item without a usable date (none, unreadable, or more than a
/// day in the future) is dated by when we first saw it ([`DateSource::FirstSeen`]; the
/// store keeps that time on later fetches). That is right for a feed we already follow:
/// a new undated item *is* news now. It is wrong on the first fetch of a newly added
/// source, where every undated item would be "new" and the partner's whole archive would
/// flood the top of the combined feed. So on a first ingest ([`Context::back_catalogue`])
/// undated items are placed, in document order, one second apart just *below* the
/// oldest dated item of the same document; when the document has no dated item at all,
/// just below the oldest item the combined feed currently shows (or at first-seen time
/// when the store is empty, since then nothing can be flooded).
pub fn normalise_all(entries: &[Entry], ctx: &Context) -> (Vec<Item>, Vec<NormaliseError>) {
    let mut items = Vec::with_capacity(entries.len());
    // Items that carried no date at all (a future date is a date: it stays at first-seen).
    let mut undated = Vec::new();
    let mut errors = Vec::new();
    for e in entries {
        match normalise(e, ctx) {
            Ok(i) => {
                undated.push(e.published.is_none() && e.updated.is_none());
                items.push(i);
            }
            Err(err) => errors.push(err),
        }
    }
    if let Some(bc) = ctx.back_catalogue {
        let oldest_dated = items
            .iter()
            .filter(|i| i.date_source == DateSource::Declared)
            .map(|i| i.published)
            .min();
        if let Some(anchor) = oldest_dated.or(bc.below) {
            let anchor = anchor.min(ctx.now);
            let mut k = 0;
            for (it, _) in items.iter_mut().zip(&undated).filter(|(_, u)| **u) {
                k += 1;
                it.published = anchor - Duration::seconds(k);
            }
        }
    }
    (items, errors)
}

/// Normalises one entry. `first_seen` is `ctx.now`; the store keeps an earlier one.
pub fn normalise(entry: &Entry, ctx: &Context) -> Result<Item, NormaliseError> {
    // Relative item links resolve against xml:base, else the feed's link.
    let link_base = entry.base.as_ref().or(ctx.feed_link);
    let link = entry
        .link
        .as_deref()
        .and_then(|l| url::resolve(l, link_base));
    // Relative URLs in content: xml:base, else the item's link, else the feed's link.
    let content_base = entry.base.as_ref().or(link.as_ref()).or(ctx.feed_link);
    let allow = &ctx.source.allow_iframe_hosts;

    let body_html = entry
        .content
        .as_ref()
        .or(entry.summary.as_ref())
        .map(|t| match t.kind {
            TextKind::Html => html::sanitise(&t.body, content_base, allow),
            TextKind::Plain => plain_to_html(&text::strip_controls(&t.body)),
        });
    let body_text = body_html.as_deref().map(text::to_text).unwrap_or_default();
    // The body's text for plain-text fields, without markup even as visible text: only
    // needed when the entry has no summary or no title of its own.
    let plain_body_cell = std::cell::OnceCell::new();
    let plain_body = || {
        plain_body_cell
            .get_or_init(|| text::plain(&body_text))
            .as_str()
    };

    let title = entry
        .title
        .as_ref()
        .map(text::plain_title)
        .unwrap_or_default();
    let summary = match &entry.summary {
        Some(s) if entry.content.is_some() => {
            let t = match s.kind {
                TextKind::Html => text::plain(&html::sanitised_text(&s.body, content_base)),
                TextKind::Plain => text::plain(&s.body),
            };
            if t.is_empty() {
                text::summarise(plain_body(), SUMMARY_CHARS)
            } else {
                text::summarise(&t, SUMMARY_CHARS)
            }
        }
        _ => text::summarise(plain_body(), SUMMARY_CHARS),
    };
    if title.is_empty() && body_text.is_empty() && link.is_none() {
        return Err(NormaliseError::Empty {
            origin: entry.origin.clone(),
        });
    }
    let title = if title.is_empty() {
        text::summarise(plain_body(), 80)
    } else {
        title
    };

    let language = lang::choose(
        entry.language.as_deref(),
        ctx.feed_language,
        &format!("{title}. {body_text}"),
        ctx.source.language.as_deref(),
    );

    let (published, updated, date_source) = dates(entry, ctx.now);
    let tags = tags(&entry.tags, &ctx.source.tag_map, ctx.tag_map);

    let canonical_url = link.as_ref().map(url::canonical);
    let matching = text::for_matching(&body_text);
    let fingerprint = fingerprint::fingerprint(&matching);
    let id = item_id(
        ctx.source,
        entry,
        canonical_url.as_deref(),
        &title,
        published,
    );
    Ok(Item {
        id,
        source: ctx.source.id.clone(),
        guid: entry.guid.clone().filter(|g| !g.trim().is_empty()),
        url: link.as_ref().map(url::clean),
        source_link: link.as_ref().map(|u| u.to_string()),
        canonical_url,
        title,
        summary,
        content_html: body_html.filter(|h| !h.trim().is_empty()),
        published,
        updated,
        date_source,
        authors: entry
            .authors
            .iter()
            .map(|a| text::plain(a))
            .filter(|a| !a.is_empty())
            .collect(),
        tags,
        language,
        first_seen: ctx.now,
        text: matching,
        fingerprint,
    })
}

/// `published` and `updated` are kept apart: `published` is the declared publication
/// date, else the declared update date (Atom requires only `updated`), else first-seen
/// time. `updated` is kept only when it is later than `published`. A date more than a
/// day ahead of now is a partner's mistake (or a scheduled post leaking early) and would
/// pin the item to the top for that long, so it counts as no date at all.
fn dates(entry: &Entry, now: DateTime<Utc>) -> (DateTime<Utc>, Option<DateTime<Utc>>, DateSource) {
    let future = now + Duration::days(1);
    let updated = entry.updated.filter(|u| *u <= future);
    let (published, source) = match entry.published {
        Some(d) if d > future => (now, DateSource::FirstSeen),
        Some(d) => (d, DateSource::Declared),
        None => match updated {
            Some(u) => (u, DateSource::Declared),
            None => (now, DateSource::FirstSeen),
        },
    };
    (published, updated.filter(|u| *u > published), source)
}

/// Categories → tags: plain text (see [`text::plain`]), then the source's own
/// mapping, then the site vocabulary (so a source can map onto an alias of a site tag);
/// a category neither maps is kept as written. Sorted, without duplicates.
fn tags(
    categories: &[String],
    source_map: &BTreeMap<String, String>,
    site_map: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut tags: Vec<String> = categories
        .iter()
        .map(|t| text::plain(t))
        .filter(|t| !t.is_empty())
        .map(|t| source_map.get(&t.to_lowercase()).cloned().unwrap_or(t))
        .map(|t| site_map.get(&t.to_lowercase()).cloned().unwrap_or(t))
        .filter(|t| !t.is_empty())
        .collect();
    tags.sort();
    tags.dedup();
    tags
}

/// The identity rule, in one place. An item's key within its source is, in order:
/// the adapter's stable key (local posts: their file name), the source's GUID, the
/// canonical URL, or a hash of title and date. It never depends on mutable text when
/// a better key exists, so editing a title does not make a "new" item.
pub fn item_id(
    source: &Source,
    entry: &Entry,
    canonical_url: Option<&str>,
    title: &str,
    published: DateTime<Utc>,
) -> ItemId {
    let key = if let Some(k) = &entry.stable_key {
        return ItemId(format!("{}:{}", source.id, k));
    } else if let Some(g) = entry.guid.as_deref().filter(|g| !g.trim().is_empty()) {
        format!("g\u{0}{}", g.trim())
    } else if let Some(u) = canonical_url {
        format!("u\u{0}{u}")
    } else {
        format!("t\u{0}{title}\u{0}{}", published.timestamp())
    };
    let hash = blake3::hash(key.as_bytes()).to_hex();
    ItemId(format!("{}:{}", source.id, &hash[..20]))
}

/// Plain text → HTML paragraphs (escaped).
fn plain_to_html(s: &str) -> String {
    let escaped = s
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    escaped
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| format!("<p>{p}</p>"))
        .collect::<Vec<_>>()
        .join("\n")
}
