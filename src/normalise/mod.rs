//! `Entry` → `Item`: the single place where untrusted input becomes trusted.
//!
//! Order matters: URLs are resolved first (sanitising needs the base), HTML is
//! sanitised once, text and the fingerprint are derived from the sanitised HTML.

pub mod fingerprint;
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
    /// The feed's own link (last fallback base for relative URLs).
    pub feed_link: Option<&'a Url>,
    /// The feed's declared language (`<language>`, `xml:lang`).
    pub feed_language: Option<&'a str>,
    /// Lower-cased category → tag, from `[tags]` in the config.
    pub tag_map: &'a BTreeMap<String, String>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NormaliseError {
    #[error("{origin}: item has neither a title nor any text nor a link")]
    Empty { origin: String },
}

/// Normalises one entry. `first_seen` is `ctx.now`; the store keeps an earlier one.
pub fn normalise(entry: &Entry, ctx: &Context) -> Result<Item, NormaliseError> {
    let base = entry.base.as_ref().or(ctx.feed_link);
    let link = entry.link.as_deref().and_then(|l| url::resolve(l, base));
    let content_base = link.as_ref().or(base);
    let allow = &ctx.source.allow_iframe_hosts;

    let body_html = entry
        .content
        .as_ref()
        .or(entry.summary.as_ref())
        .map(|t| match t.kind {
            TextKind::Html => html::sanitise(&t.body, content_base, allow),
            TextKind::Plain => plain_to_html(&t.body),
        });
    let body_text = body_html.as_deref().map(html::to_text).unwrap_or_default();

    let title = entry
        .title
        .as_ref()
        .map(text::plain_title)
        .unwrap_or_default();
    let summary = match &entry.summary {
        Some(s) if entry.content.is_some() => {
            let t = match s.kind {
                TextKind::Html => html::to_text(&s.body),
                TextKind::Plain => text::collapse_whitespace(&text::decode_entities(&s.body)),
            };
            text::summarise(&t, SUMMARY_CHARS)
        }
        _ => text::summarise(&body_text, SUMMARY_CHARS),
    };
    if title.is_empty() && body_text.is_empty() && link.is_none() {
        return Err(NormaliseError::Empty {
            origin: entry.origin.clone(),
        });
    }
    let title = if title.is_empty() {
        text::summarise(&body_text, 80)
    } else {
        title
    };

    let language = entry
        .language
        .as_deref()
        .or(ctx.feed_language)
        .and_then(lang::normalise_tag)
        .or_else(|| lang::detect(&format!("{title}. {body_text}")))
        .or_else(|| ctx.source.language.clone());

    // A date more than a day ahead is a partner's mistake; it would pin the item on top.
    let future = ctx.now + Duration::days(1);
    let (published, date_source) = match entry.published.or(entry.updated) {
        Some(d) if d <= future => (d, DateSource::Declared),
        _ => (ctx.now, DateSource::FirstSeen),
    };
    let updated = entry.updated.filter(|u| *u <= future && *u > published);

    let mut tags: Vec<String> = entry
        .tags
        .iter()
        .map(|t| text::collapse_whitespace(&text::decode_entities(t)))
        .filter(|t| !t.is_empty())
        .map(|t| ctx.tag_map.get(&t.to_lowercase()).cloned().unwrap_or(t))
        .collect();
    tags.sort();
    tags.dedup();

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
            .map(|a| text::collapse_whitespace(&text::decode_entities(a)))
            .filter(|a| !a.is_empty())
            .collect(),
        tags,
        language,
        first_seen: ctx.now,
        text: matching,
        fingerprint,
    })
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
