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
/// redirects); `tz` is the zone for dates that carry none.
pub fn parse(
    text: &str,
    base: Option<&Url>,
    tz: Tz,
    origin: &str,
) -> Result<ParsedFeed, FeedParseError> {
    let parser = feed_rs::parser::Builder::new()
        .base_uri(base.map(Url::as_str))
        .id_generator(|_, _, _| String::new())
        .sanitize_content(false)
        .timestamp_parser(move |s| crate::dates::parse(s, tz))
        .build();
    let feed = match parser.parse(text.as_bytes()) {
        Ok(f) => f,
        Err(first) => {
            // A bare `&` ("AT&T") makes the whole document ill-formed; repair and retry once.
            let repaired = super::decode::repair_ampersands(text);
            match parser.parse(repaired.as_bytes()) {
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
    Ok(convert(feed, base, origin))
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

fn convert(feed: fr::Feed, base: Option<&Url>, origin: &str) -> ParsedFeed {
    let feed_link =
        alternate(&feed.links).and_then(|l| crate::normalise::url::resolve(&l.href, base));
    let feed_base = feed_link.clone().or_else(|| base.cloned());
    let entries = feed
        .entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let link = alternate(&e.links).map(|l| l.href.clone());
            let entry_base = e
                .base
                .as_deref()
                .and_then(|b| crate::normalise::url::resolve(b, feed_base.as_ref()))
                .or_else(|| feed_base.clone());
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
                    .filter_map(|p| p.name.clone().or_else(|| p.email.clone()))
                    .collect(),
                tags: e
                    .categories
                    .iter()
                    .map(|c| c.label.clone().unwrap_or_else(|| c.term.clone()))
                    .collect(),
                language: e.language.clone(),
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
        language: feed.language,
        entries,
        problems: Vec::new(),
    }
}
