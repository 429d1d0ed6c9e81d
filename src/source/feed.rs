//! The feed-rs adapter: RSS 0.9x/1.0/2.0, Atom and JSON Feed text → [`ParsedFeed`].
//! The only file that names feed-rs types.
//!
//! We configure feed-rs to leave IDs and sanitising to us (its generated IDs are random
//! or title-dependent), and hand it our date rules so German and zone-less dates survive.

use chrono_tz::Tz;
use feed_rs::model as fr;
use url::Url;

use crate::model::{Entry, ParsedFeed, Text};

#[derive(Debug, thiserror::Error)]
#[error("{origin}: not a feed: {message}")]
pub struct FeedParseError {
    pub origin: String,
    pub message: String,
}

/// Parses decoded feed text. `base` is the URL the document came from (after
/// redirects): it resolves a relative root `xml:base` and stands in for a missing feed
/// link. `tz` is the zone for dates that carry none.
pub fn parse(
    text: &str,
    base: Option<&Url>,
    tz: Tz,
    origin: &str,
) -> Result<ParsedFeed, FeedParseError> {
    let fail = |message: String| FeedParseError {
        origin: origin.to_owned(),
        message,
    };
    if looks_like_html(text) {
        // Partners answer 200 with an error, login or "we moved" page surprisingly often.
        return Err(fail(
            "got an HTML page, not a feed (an error or login page served with status 200?)".into(),
        ));
    }
    super::guard::check(text).map_err(|h| fail(h.to_string()))?;
    // No `base_uri`: feed-rs would resolve RSS item links against the document's URL,
    // but our rule (xml:base, then the feed's own link) needs them as written; `normalise`
    // resolves them. An absolute `xml:base` still lets feed-rs resolve Atom links.
    // A fresh parser per attempt: feed-rs 3.0.0 keeps per-item state in the parser, and
    // reusing one after a document failed inside an `<item>` trips an assertion (a
    // panic) in its Media RSS handler.
    let parser = || {
        feed_rs::parser::Builder::new()
            .id_generator(|_, _, _| String::new())
            .sanitize_content(false)
            .timestamp_parser(move |s| crate::dates::parse(s, tz))
            .build()
    };
    // Control characters are not allowed in XML 1.0 and would make our own output
    // invalid; quick-xml passes them through, so they go before parsing.
    let cleaned = crate::normalise::text::strip_controls(text);
    let text = cleaned.as_ref();
    let feed = match parser().parse(text.as_bytes()) {
        Ok(f) => f,
        Err(first) => {
            // A bare `&` ("AT&T") makes the whole document ill-formed; repair and retry once.
            let repaired = super::decode::repair_ampersands(text);
            match parser().parse(repaired.as_bytes()) {
                Ok(f) => f,
                Err(_) => {
                    return Err(FeedParseError {
                        origin: origin.to_owned(),
                        message: first.to_string(),
                    })
                }
            }
        }
    };
    let (root, mut scopes) = scan_scopes(text, base).unwrap_or_default();
    if scopes.len() != feed.entries.len() {
        // An item element feed-rs did not count (or the other way round): better no
        // entry-level scope than one applied to the wrong entry.
        scopes.clear();
    }
    Ok(convert(feed, base, &root, &scopes, origin))
}

/// The first markup is an HTML doctype or `<html>` element.
fn looks_like_html(text: &str) -> bool {
    let mut rest = text.trim_start_matches('\u{feff}').trim_start();
    // Skip comments and processing instructions before the first real markup.
    loop {
        if let Some(r) = rest.strip_prefix("<!--") {
            rest = r.split_once("-->").map_or("", |(_, r)| r).trim_start();
        } else if rest.starts_with("<?") {
            rest = rest.split_once("?>").map_or("", |(_, r)| r).trim_start();
        } else {
            break;
        }
    }
    let head: String = rest
        .chars()
        .take(14)
        .collect::<String>()
        .to_ascii_lowercase();
    head.starts_with("<!doctype html") || head.starts_with("<html")
}

fn format_name(t: &fr::FeedType) -> &'static str {
    match t {
        fr::FeedType::Atom => "atom",
        fr::FeedType::JSON => "json",
        fr::FeedType::RSS0 => "rss0",
        fr::FeedType::RSS1 => "rss1",
        fr::FeedType::RSS2 => "rss2",
    }
}

fn text(t: &fr::Text) -> Text {
    if t.content_type.to_string().contains("html") {
        Text::html(t.content.clone())
    } else {
        Text::plain(t.content.clone())
    }
}

/// The alternate link: `rel="alternate"` or no rel, else the first.
fn alternate(links: &[fr::Link]) -> Option<&fr::Link> {
    links
        .iter()
        .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
        .or_else(|| links.first())
}

/// The `xml:base` and `xml:lang` in force on one item element, inherited from its
/// ancestors, resolved.
#[derive(Debug, Clone, Default, PartialEq)]
struct Scope {
    base: Option<Url>,
    lang: Option<String>,
}

/// The scope of the root element and of every item (`<entry>` in Atom, `<item>` in RSS),
/// in document order. feed-rs applies `xml:base` to links but reports it (and
/// `xml:lang`) only from `<content>`, so entry- and feed-level ones would be lost for
/// content URLs and languages. A small quick-xml pass finds them. `None` when the text
/// is not XML.
fn scan_scopes(text: &str, doc_url: Option<&Url>) -> Option<(Scope, Vec<Scope>)> {
    use quick_xml::events::{BytesStart, Event};
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Scope> = Vec::new();
    let mut root: Option<Scope> = None;
    let mut item_name = "item";
    let mut items = Vec::new();
    let open = |e: &BytesStart, parent: Option<&Scope>| -> Scope {
        let mut scope = parent.cloned().unwrap_or_default();
        for attr in e.attributes().flatten() {
            let value = crate::normalise::text::decode_entities(&attr.value);
            match attr.key.as_ref() {
                // Only explicit bases are recorded; a relative one on the root is
                // relative to the document's URL.
                "xml:base" => {
                    let against = scope.base.as_ref().or(doc_url);
                    scope.base = crate::normalise::url::resolve(&value, against)
                }
                "xml:lang" => scope.lang = Some(value).filter(|l| !l.trim().is_empty()),
                _ => {}
            }
        }
        scope
    };
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                let scope = open(&e, stack.last());
                if root.is_none() {
                    if e.local_name().as_ref() == "feed" {
                        item_name = "entry";
                    }
                    root = Some(scope.clone());
                } else if e.local_name().as_ref() == item_name {
                    items.push(scope.clone());
                }
                stack.push(scope);
            }
            Event::Empty(e) if root.is_some() && e.local_name().as_ref() == item_name => {
                items.push(open(&e, stack.last()));
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Some((root?, items))
}

/// `base` is the document's URL, `root_base` the root element's resolved `xml:base`.
fn convert(
    feed: fr::Feed,
    base: Option<&Url>,
    root: &Scope,
    scopes: &[Scope],
    origin: &str,
) -> ParsedFeed {
    let root_base = root.base.clone();
    // The feed's link is the last fallback base for relative URLs; a feed without one
    // falls back to the URL it was fetched from.
    let feed_link = alternate(&feed.links)
        .and_then(|l| crate::normalise::url::resolve(&l.href, root_base.as_ref().or(base)))
        .or_else(|| base.cloned());
    let entries = feed
        .entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let link = alternate(&e.links).map(|l| l.href.clone());
            // Only an explicit xml:base goes here: normalise falls back to the item's link
            // and then the feed's link itself, in that order.
            let scope = scopes.get(i).unwrap_or(root);
            let entry_base = match e.base.as_deref() {
                // xml:base on <content> itself, the innermost one.
                Some(b) => crate::normalise::url::resolve(b, scope.base.as_ref().or(base)),
                None => scope.base.clone(),
            };
            let content = e.content.as_ref().and_then(|c| {
                c.body.as_ref().map(|b| {
                    if c.content_type.to_string().contains("html")
                        || c.content_type.to_string().contains("xml")
                    {
                        Text::html(b.clone())
                    } else {
                        Text::plain(b.clone())
                    }
                })
            });
            Entry {
                guid: Some(e.id).filter(|g| !g.trim().is_empty()),
                link,
                title: e.title.as_ref().map(text),
                summary: e.summary.as_ref().map(text),
                content,
                published: e.published,
                updated: e.updated,
                authors: e
                    .authors
                    .iter()
                    // "email (Name)", RSS 2.0's own form, keeps the address for RSS
                    // `<author>`; render splits it again.
                    .filter_map(|p| match (&p.name, &p.email) {
                        (Some(n), Some(e)) if !e.is_empty() && n != e => Some(format!("{e} ({n})")),
                        _ => p.name.clone().or_else(|| p.email.clone()),
                    })
                    .collect(),
                tags: e
                    .categories
                    .iter()
                    .map(|c| c.label.clone().unwrap_or_else(|| c.term.clone()))
                    .collect(),
                language: e.language.clone().or_else(|| scope.lang.clone()),
                base: entry_base,
                stable_key: None,
                origin: format!("{origin}#item{}", i + 1),
            }
        })
        .collect();
    ParsedFeed {
        format: format_name(&feed.feed_type).to_owned(),
        title: feed.title.as_ref().map(|t| t.content.clone()),
        link: feed_link,
        id: Some(feed.id).filter(|s| !s.is_empty()),
        updated: feed.updated,
        language: feed.language.or_else(|| root.lang.clone()),
        ttl_minutes: feed.ttl,
        entries,
        problems: Vec::new(),
    }
}
