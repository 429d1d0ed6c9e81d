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
    // Control characters are not allowed in XML 1.0 and would make our own output
    // invalid; quick-xml passes them through, so they go before parsing.
    let cleaned = crate::normalise::text::strip_controls(text);
    let text = cleaned.as_ref();
    let feed = match parse_with_feed_rs(text, tz) {
        Ok(f) => f,
        Err(first) => {
            // A bare `&` ("AT&T") makes the whole document ill-formed; repair and retry once.
            let repaired = super::decode::repair_ampersands(text);
            match parse_with_feed_rs(&repaired, tz) {
                Ok(f) => f,
                Err(_) => {
                    return Err(FeedParseError {
                        origin: origin.to_owned(),
                        message: first,
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

/// One feed-rs parse with a fresh parser. Fresh, because a feed-rs `Parser` keeps
/// MediaRSS state across calls, and after a document that fails inside an item the next
/// parse trips an assertion (`mediarss.rs`, found by the fuzz smoke test). A panic inside
/// feed-rs becomes an error: one partner's document must never take the others down.
fn parse_with_feed_rs(text: &str, tz: Tz) -> Result<fr::Feed, String> {
    // No `base_uri`: feed-rs would resolve RSS item links against the document's URL,
    // but our rule (xml:base, then the feed's own link) needs them as written; `normalise`
    // resolves them. An absolute `xml:base` still lets feed-rs resolve Atom links.
    let parser = feed_rs::parser::Builder::new()
        .id_generator(|_, _, _| String::new())
        .sanitize_content(false)
        .timestamp_parser(move |s| crate::dates::parse(s, tz))
        .build();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        parser.parse(text.as_bytes())
    })) {
        Ok(Ok(feed)) => Ok(feed),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the feed parser failed on this document (internal panic)".into()),
    }
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
    /// `xml:lang` on this very element: on an item, the item's own declaration, which
    /// wins over detection; one inherited from the feed or channel is the feed's.
    own_lang: Option<String>,
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
        scope.own_lang = None;
        for attr in e.attributes().flatten() {
            let value = crate::normalise::text::decode_entities(&attr.value);
            match attr.key.as_ref() {
                // Only explicit bases are recorded; a relative one on the root is
                // relative to the document's URL.
                "xml:base" => {
                    let against = scope.base.as_ref().or(doc_url);
                    scope.base = crate::normalise::url::resolve(&value, against)
                }
                "xml:lang" => {
                    scope.lang = Some(value).filter(|l| !l.trim().is_empty());
                    scope.own_lang = scope.lang.clone();
                }
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
    let inherited_lang = scopes
        .iter()
        .find_map(|s| s.lang.clone().filter(|_| s.own_lang.is_none()));
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
                language: e.language.clone().or_else(|| scope.own_lang.clone()),
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
        // An `xml:lang` between the root and the items (RSS's `<channel>`) is the feed's.
        language: feed
            .language
            .or_else(|| root.lang.clone())
            .or(inherited_lang),
        ttl_minutes: feed.ttl,
        entries,
        problems: Vec::new(),
    }
}

/// The fuzz target's body (`fuzz/fuzz_targets/parse_normalise.rs`), also run as a
/// proptest over random bytes so it is exercised without nightly and libFuzzer. Takes
/// any bytes through decode → parse → normalise and panics if a promise breaks: titles
/// are plain text and idempotent, no control characters, sanitised HTML holds no script,
/// handler or unsafe URL.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    use crate::model::{Source, SourceId, SourceKind};
    use crate::normalise::{self, BackCatalogue, Context};
    use chrono::TimeZone;

    let tz = chrono_tz::Europe::Berlin;
    let lossy = String::from_utf8_lossy(data);
    let _ = crate::dates::parse(&lossy, tz);
    let once = normalise::text::plain(&lossy);
    assert_eq!(normalise::text::plain(&once), once, "plain() is idempotent");

    let doc_url = Url::parse("https://partner.example/feed/").unwrap();
    let decoded = super::decode::decode_xml(data, None, None);
    let Ok(parsed) = parse(&decoded.text, Some(&doc_url), tz, "fuzz") else {
        return;
    };
    let source = Source {
        id: SourceId("fuzz".into()),
        kind: SourceKind::Feed {
            url: doc_url.clone(),
        },
        title: "Fuzz".into(),
        homepage: None,
        priority: 50,
        language: None,
        timezone: tz,
        schedule: None,
        encoding: None,
        allow_iframe_hosts: vec!["www.youtube-nocookie.com".into()],
        tag_map: [("x".to_owned(), "Y".to_owned())].into_iter().collect(),
    };
    let tags = [("y".to_owned(), "Z".to_owned())].into_iter().collect();
    let ctx = Context {
        source: &source,
        feed_link: parsed.link.as_ref(),
        feed_language: parsed.language.as_deref(),
        tag_map: &tags,
        now: chrono::Utc
            .with_ymd_and_hms(2026, 11, 25, 12, 0, 0)
            .unwrap(),
        back_catalogue: Some(BackCatalogue { below: None }),
    };
    let (items, _) = normalise::normalise_all(&parsed.entries, &ctx);
    let no_controls = |s: &str| {
        !s.chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    };
    for item in items {
        assert_eq!(
            normalise::text::plain(&item.title),
            item.title,
            "title is plain"
        );
        assert!(no_controls(&item.title) && no_controls(&item.summary));
        assert!(item.published <= ctx.now + chrono::Duration::days(1));
        if let Some(html) = &item.content_html {
            assert!(no_controls(html), "control character in {html:?}");
            let frag = scraper::Html::parse_fragment(html);
            for node in frag.tree.nodes() {
                let Some(e) = node.value().as_element() else {
                    continue;
                };
                assert!(
                    !matches!(
                        e.name(),
                        "script" | "style" | "object" | "embed" | "svg" | "math"
                    ),
                    "<{}> in {html}",
                    e.name()
                );
                for (name, value) in e.attrs() {
                    assert!(!name.starts_with("on"), "{name} in {html}");
                    if matches!(name, "href" | "src") {
                        let v = value.trim_start().to_ascii_lowercase();
                        assert!(
                            v.starts_with("https://")
                                || v.starts_with("http://")
                                || v.starts_with("mailto:"),
                            "{name}={value:?} in {html}"
                        );
                    }
                }
            }
        }
        if let Some(u) = &item.url {
            assert!(matches!(u.scheme(), "http" | "https"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fixture(name: &str) -> String {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/normalise/");
        std::fs::read_to_string(format!("{p}{name}")).unwrap()
    }

    #[test]
    fn every_fixture_passes_the_fuzz_checks() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/normalise");
        for e in std::fs::read_dir(dir).unwrap() {
            fuzz_check(&std::fs::read(e.unwrap().path()).unwrap());
        }
    }

    #[test]
    fn a_document_broken_inside_an_item_is_an_error_not_a_panic() {
        // The first parse fails inside the item, the `&` repair retries: feed-rs used to
        // assert on the second parse with the same parser.
        let text = "<rss version=\"2.0\"><channel><title>t</title><item><title>A & B</title><description>x</titel></item></channel></rss>";
        let err = parse(
            text,
            None,
            chrono_tz::Europe::Berlin,
            "https://partner.example/feed",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("https://partner.example/feed: not a feed"),
            "{err}"
        );
    }

    #[test]
    fn entry_and_feed_xml_base_and_lang_are_scoped_per_entry() {
        let text = fixture("atom-xml-base-xhtml-and-html-content.xml");
        let doc = Url::parse("https://partner.example/feed.xml").unwrap();
        let (root, items) = scan_scopes(&text, Some(&doc)).unwrap();
        assert_eq!(root.base.unwrap().as_str(), "https://partner.example/base/");
        assert_eq!(root.lang.as_deref(), Some("en-gb"));
        assert_eq!(
            items[0].base.as_ref().unwrap().as_str(),
            "https://partner.example/base/entries/"
        );
        assert_eq!(items[2].lang.as_deref(), Some("fr"));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// The libFuzzer-less smoke run of the fuzz target: random bytes, and random
        /// mutations of a real feed (so the parser gets past the first tag).
        #[test]
        fn parse_and_normalise_survive_random_bytes(data in prop::collection::vec(any::<u8>(), 0..2048)) {
            fuzz_check(&data);
        }

        #[test]
        fn parse_and_normalise_survive_mutated_feeds(
            cuts in prop::collection::vec((0usize..4000, any::<u8>()), 0..24)
        ) {
            let mut data = fixture("rss-relative-links-item-link-then-feed-link.xml").into_bytes();
            for (at, byte) in cuts {
                let at = at % data.len();
                data[at] = byte;
            }
            fuzz_check(&data);
        }
    }
}
