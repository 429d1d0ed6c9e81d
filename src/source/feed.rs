//! Feed text → [`ParsedFeed`]: the checks and repairs every XML feed gets, the choice
//! of adapter for the document's dialect, and the feed-rs adapter itself (RSS 0.91/0.92
//! and 2.0, Atom 1.0, JSON Feed). The only file that names feed-rs types.
//!
//! In order, for XML: internal DTD entities are expanded within a cap (or the document
//! refused, [`super::entities`]); the hostile-XML check runs ([`super::guard`]);
//! undeclared named HTML entities become character references; the root element picks
//! the adapter:
//!
//! | root | adapter |
//! |---|---|
//! | `<feed>` of Atom 0.3 (namespace `purl.org/atom/ns#` or `version="0.3"`) | ours, [`super::atom03`] |
//! | `<rdf:RDF>` with RSS 1.0 or RSS 0.90 elements | ours, [`super::rdf`] |
//! | `<rss>` without a `version`, with one feed-rs does not know (`2.0.1`), or in the default namespace of an RSS 2.0 draft (`backend.userland.com/rss2`) | feed-rs, after the root tag is rewritten to plain `<rss version="2.0">` |
//! | anything else (`<rss>`, Atom 1.0 `<feed>`, JSON) | feed-rs |
//!
//! Dublin Core and DCMI terms, which feed-rs reads only partly, are read beside it
//! ([`super::dc`]). When the adapter refuses the document, the conservative repairs of
//! [`super::lenient`] are tried, one at a time. Every reading that departs from what the
//! document says lands in [`ParsedFeed::repairs`] for `doctor`.
//!
//! We configure feed-rs to leave IDs and sanitising to us (its generated IDs are random
//! or title-dependent), and hand it our date rules so German and zone-less dates survive.

use std::borrow::Cow;

use chrono_tz::Tz;
use feed_rs::model as fr;
use url::Url;

use super::dc::{self, DcFields};
use super::xmltree::{self, Element};
use super::{atom03, rdf};
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
    // Control characters are not allowed in XML 1.0 and would make our own output
    // invalid; quick-xml passes them through, so they go before parsing.
    let cleaned = crate::normalise::text::strip_controls(text);
    if cleaned
        .trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with('{')
    {
        // JSON Feed: none of the XML steps apply (`&nbsp;` in a JSON string is text).
        let feed = parse_with_feed_rs(&cleaned, tz).map_err(fail)?;
        return Ok(finish(convert(feed, base, &Scope::default(), &[], origin)));
    }
    let mut repairs = Vec::new();
    let expanded = super::entities::expand_internal(&cleaned)
        .map_err(|r| fail(format!("the document declares entities we refuse: {r}")))?;
    repairs.extend(expanded.note.clone());
    // The guard and the scope scan in one pass. The entity repair below changes only
    // references (`&nbsp;` → `&#160;`), never markup, so the scopes hold for its output.
    let scopes = scan(&expanded.text, base, true).map_err(|h| fail(h.to_string()))?;
    let (prepared, note) = super::entities::repair_html_entities(&expanded.text);
    repairs.extend(note);
    let text: &str = &prepared;
    let mut parsed = match read_xml(text, base, tz, origin, &mut repairs, Some(scopes)) {
        Ok(p) => p,
        Err(first) => {
            let mut retried = None;
            // A bare `&` ("AT&T") makes the whole document ill-formed.
            let amp = super::decode::repair_ampersands(text);
            let mut current: Cow<str> = Cow::Borrowed(text);
            let mut notes = Vec::new();
            if amp != text {
                let n = amp.matches("&amp;").count() - text.matches("&amp;").count();
                notes.push(format!("{n} bare `&` escaped (\"AT&T\" is not XML)"));
                current = Cow::Owned(amp);
                let mut r = repairs.clone();
                if let Ok(p) = read_xml(&current, base, tz, origin, &mut r, None) {
                    repairs = r;
                    retried = Some(p);
                }
            }
            if retried.is_none() {
                if let Some((fixed, note)) = super::lenient::repair_trailing_end_tags(&current) {
                    notes.push(note);
                    let mut r = repairs.clone();
                    if let Ok(p) = read_xml(&fixed, base, tz, origin, &mut r, None) {
                        repairs = r;
                        retried = Some(p);
                    }
                }
            }
            match retried {
                Some(p) => {
                    repairs.extend(notes);
                    p
                }
                None => return Err(fail(first)),
            }
        }
    };
    parsed.repairs = repairs;
    Ok(parsed)
}

/// Reads well-formed (or repaired) XML with the adapter its root element calls for.
/// `scopes`: what [`scan_scopes`] gives for `text`, when it was read already.
fn read_xml(
    text: &str,
    base: Option<&Url>,
    tz: Tz,
    origin: &str,
    repairs: &mut Vec<String>,
    mut scopes: Option<Scopes>,
) -> Result<ParsedFeed, String> {
    let root = RootTag::read(text);
    let own: Option<fn(&Element, Tz) -> Option<rdf::Read>> = match &root {
        Some(r) if r.local == "feed" && atom03::is_atom03(&r.ns, r.version.as_deref()) => {
            Some(|el, tz| Some(atom03::read(el, tz)))
        }
        Some(r) if r.local == "RDF" => Some(rdf::read),
        _ => None,
    };
    if let Some(adapter) = own {
        let tree = xmltree::parse(text)?;
        if let Some(read) = adapter(&tree, tz) {
            let scanned = scopes.take();
            let (root_scope, scopes) = aligned_scopes(text, base, read.entries.len(), scanned);
            return Ok(finish(from_own(read, base, &root_scope, &scopes, origin)));
        }
    }
    let rewritten = match &root {
        Some(r) if r.local == "rss" => r.plain_rss2(text, repairs),
        _ => None,
    };
    if rewritten.is_some() {
        // The root tag was rewritten: read its scope from the new one.
        scopes = None;
    }
    let text = rewritten.as_deref().unwrap_or(text);
    let feed = parse_with_feed_rs(text, tz)?;
    let (root_scope, scopes) = aligned_scopes(text, base, feed.entries.len(), scopes);
    let mut parsed = convert(feed, base, &root_scope, &scopes, origin);
    if dc::worth_reading(text, parsed.format != "atom") {
        if let Ok(tree) = xmltree::parse(text) {
            supplement_dublin_core(&mut parsed, &tree, tz);
        }
    }
    Ok(finish(parsed))
}

/// The root scope and one scope per entry, or no entry scopes when the scan counted
/// another number of items than the adapter read: better no entry-level scope than one
/// applied to the wrong entry.
fn aligned_scopes(
    text: &str,
    base: Option<&Url>,
    entries: usize,
    scanned: Option<Scopes>,
) -> (Scope, Vec<Scope>) {
    let scanned = scanned.unwrap_or_else(|| scan_scopes(text, base));
    let (root, mut scopes) = scanned.unwrap_or_default();
    if scopes.len() != entries {
        scopes.clear();
    }
    (root, scopes)
}

/// The root element's start tag, as written.
struct RootTag {
    ns: String,
    local: String,
    version: Option<String>,
    /// Byte span of the whole start tag.
    span: (usize, usize),
    empty: bool,
    /// Raw attributes (name, escaped value), in order.
    attrs: Vec<(String, String)>,
}

/// Default namespaces RSS 2.0 drafts put on `<rss>`; feed-rs then knows none of the
/// elements. The first is the 2002 UserLand draft's, the second the Harvard-era one.
const RSS2_DRAFT_NAMESPACES: [&str; 2] = [
    "http://backend.userland.com/rss2",
    "http://blogs.law.harvard.edu/tech/rss",
];

impl RootTag {
    fn read(text: &str) -> Option<RootTag> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::NsReader::from_str(text);
        loop {
            let before = reader.buffer_position() as usize;
            let (ns, event) = reader.read_resolved_event().ok()?;
            let ns = match ns {
                quick_xml::name::ResolveResult::Bound(n) => n.into_inner().to_owned(),
                _ => String::new(),
            };
            let (e, empty) = match event {
                Event::Start(e) => (e, false),
                Event::Empty(e) => (e, true),
                Event::Eof => return None,
                _ => continue,
            };
            let after = reader.buffer_position() as usize;
            let attrs: Vec<(String, String)> = e
                .attributes()
                .with_checks(false)
                .flatten()
                .map(|a| (a.key.as_ref().to_owned(), a.value.to_string()))
                .collect();
            let version = attrs
                .iter()
                .find(|(k, _)| k == "version")
                .map(|(_, v)| v.trim().to_owned());
            return Some(RootTag {
                ns,
                local: e.local_name().as_ref().to_owned(),
                version,
                span: (before, after),
                empty,
                attrs,
            });
        }
    }

    /// The document with its `<rss>` tag rewritten to what feed-rs reads, when it has
    /// to be: no or an unknown `version` (read as 2.0), or an RSS 2.0 draft's default
    /// namespace (dropped). `None` when the tag is fine as it is.
    fn plain_rss2(&self, text: &str, repairs: &mut Vec<String>) -> Option<String> {
        let known = matches!(self.version.as_deref(), Some("2.0" | "0.91" | "0.92"));
        let draft_ns = self
            .attrs
            .iter()
            .find(|(k, v)| k == "xmlns" && RSS2_DRAFT_NAMESPACES.contains(&v.trim()));
        if known && draft_ns.is_none() {
            return None;
        }
        match self.version.as_deref() {
            _ if known => {}
            None => {
                repairs.push("the <rss> element has no version attribute; read as RSS 2.0".into())
            }
            Some(v) => repairs.push(format!(
                "RSS version \"{v}\" is not one we know; read as RSS 2.0"
            )),
        }
        if let Some((_, ns)) = draft_ns {
            repairs.push(format!(
                "RSS 2.0 in the default namespace {ns} (an RSS 2.0 draft's); read as plain RSS 2.0"
            ));
        }
        let mut tag = String::from("<rss");
        for (k, v) in &self.attrs {
            if (k == "xmlns" && draft_ns.is_some()) || k == "version" {
                continue;
            }
            let q = if v.contains('"') { '\'' } else { '"' };
            tag.push_str(&format!(" {k}={q}{v}{q}"));
        }
        let version = if known {
            self.version.as_deref().unwrap_or("2.0")
        } else {
            "2.0"
        };
        tag.push_str(&format!(" version=\"{version}\""));
        tag.push_str(if self.empty { "/>" } else { ">" });
        let (start, end) = self.span;
        Some(format!("{}{tag}{}", &text[..start], &text[end..]))
    }
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
type Scopes = Option<(Scope, Vec<Scope>)>;

fn scan_scopes(text: &str, doc_url: Option<&Url>) -> Scopes {
    scan(text, doc_url, false).unwrap_or_default()
}

/// [`scan_scopes`], and with `guarded` the hostile-XML check ([`super::guard`]) in the
/// same pass: every XML document is read this way once before its adapter runs, and the
/// two used to be two whole quick-xml passes (a quarter of parsing a feed, issue 16).
///
/// The reader does not check end names (the guard must read on past a mismatch), so
/// that is done here for the scopes: the first mismatched end tag makes them `None`, as
/// a checking reader's error did.
fn scan(
    text: &str,
    doc_url: Option<&Url>,
    guarded: bool,
) -> Result<Scopes, super::guard::HostileXml> {
    use quick_xml::events::{BytesStart, Event};
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = false;
    let mut guard = super::guard::Guard::default();
    // Distinct scopes, and per open element the index of its scope: an element without
    // `xml:base` or `xml:lang` (nearly all) has its parent's, not a copy of it.
    let mut arena: Vec<Scope> = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    // Open elements' names, as a checking reader keeps them: one buffer, start offsets.
    let (mut names, mut starts) = (String::new(), Vec::<usize>::new());
    let mut mismatched = false;
    let mut root: Option<Scope> = None;
    let mut item_name = "item";
    let mut items = Vec::new();
    // The scope `e` opens inside `parent`: `None` when it declares neither attribute, so
    // it has the parent's base and language (and no language of its own).
    let open = |e: &BytesStart, parent: Option<&Scope>| -> Option<Scope> {
        let raw: &str = e;
        if !raw.contains("xml:") {
            return None;
        }
        let mut scope = parent.cloned().unwrap_or_default();
        scope.own_lang = None;
        let mut any = false;
        for attr in e.attributes().flatten() {
            match attr.key.as_ref() {
                // Only explicit bases are recorded; a relative one on the root is
                // relative to the document's URL.
                "xml:base" => {
                    let value = crate::normalise::text::decode_entities(&attr.value);
                    let against = scope.base.as_ref().or(doc_url);
                    scope.base = crate::normalise::url::resolve(&value, against);
                    any = true;
                }
                "xml:lang" => {
                    let value = crate::normalise::text::decode_entities(&attr.value);
                    scope.lang = Some(value).filter(|l| !l.trim().is_empty());
                    scope.own_lang = scope.lang.clone();
                    any = true;
                }
                _ => {}
            }
        }
        any.then_some(scope)
    };
    // The scope of an element that declares nothing: its parent's without `own_lang`.
    let inherited = |parent: Option<&Scope>| -> Scope {
        let mut scope = parent.cloned().unwrap_or_default();
        scope.own_lang = None;
        scope
    };
    loop {
        let event = match reader.read_event() {
            Ok(Event::Eof) => break,
            Ok(e) => e,
            Err(_) => return Ok(None),
        };
        if guarded {
            guard.event(&event)?;
        } else if mismatched {
            return Ok(None);
        }
        if mismatched {
            continue;
        }
        match event {
            Event::Start(e) => {
                let parent = stack.last().map(|&i| &arena[i]);
                let own = open(&e, parent);
                let is_root = root.is_none();
                let is_item = !is_root && e.local_name().as_ref() == item_name;
                if is_root || is_item {
                    let scope = own.clone().unwrap_or_else(|| inherited(parent));
                    if is_root {
                        if e.local_name().as_ref() == "feed" {
                            item_name = "entry";
                        }
                        root = Some(scope);
                    } else {
                        items.push(scope);
                    }
                }
                match own {
                    Some(scope) => {
                        arena.push(scope);
                        stack.push(arena.len() - 1);
                    }
                    None => match stack.last().copied() {
                        Some(i) => stack.push(i),
                        None => {
                            arena.push(Scope::default());
                            stack.push(arena.len() - 1);
                        }
                    },
                }
                starts.push(names.len());
                names.push_str(e.name().as_ref());
            }
            Event::Empty(e) if root.is_some() && e.local_name().as_ref() == item_name => {
                let parent = stack.last().map(|&i| &arena[i]);
                items.push(open(&e, parent).unwrap_or_else(|| inherited(parent)));
            }
            Event::End(e) => {
                stack.pop();
                if let Some(start) = starts.pop() {
                    if names[start..] != *e.name().as_ref() {
                        mismatched = true;
                    }
                    names.truncate(start);
                }
            }
            _ => {}
        }
    }
    if mismatched {
        return Ok(None);
    }
    Ok(root.map(|r| (r, items)))
}

/// feed-rs's model → ours. `base` is the document's URL, `root` the root element's
/// scope, `scopes` one per entry (or none).
///
/// | ours | RSS 2.0 / 0.9x | Atom 1.0 | JSON Feed |
/// |---|---|---|---|
/// | `guid` | `guid` | `id` | `id` |
/// | `link` | `link` | `link rel="alternate"` (or no rel, else the first) | `url` |
/// | `title` | `title` | `title` (text construct) | `title` |
/// | `summary` | `description` | `summary` | `summary` |
/// | `content` | `content:encoded` | `content` | `content_html`/`content_text` |
/// | `published` | `pubDate`, `dc:date` | `published` | `date_published` |
/// | `updated` | (feed-rs copies `pubDate`) | `updated` | `date_modified` |
/// | `authors` | `author` ("email (Name)"), `dc:creator` | `author` | `authors` |
/// | `tags` | `category` | `category` (`label`, else `term`) | `tags` |
/// | feed `updated` | `lastBuildDate`, else `pubDate` | `updated` | — |
///
/// Dublin Core beyond that is added by [`supplement_dublin_core`].
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
                authors: e.authors.iter().filter_map(person).collect(),
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
        title: feed.title.as_ref().and_then(|t| feed_title(&text(t))),
        link: feed_link,
        id: Some(feed.id.trim().to_owned()).filter(|s| !s.is_empty()),
        // RSS `lastBuildDate`, Atom `updated`; an RSS channel with only `pubDate` has
        // not said when it last changed, but that date is the best there is.
        updated: feed.updated.or(feed.published),
        // An `xml:lang` between the root and the items (RSS's `<channel>`) is the feed's.
        language: feed
            .language
            .or_else(|| root.lang.clone())
            .or(inherited_lang),
        ttl_minutes: feed.ttl,
        entries,
        authors: feed.authors.iter().filter_map(person).collect(),
        categories: feed
            .categories
            .iter()
            .map(|c| c.label.clone().unwrap_or_else(|| c.term.clone()))
            .collect(),
        ..ParsedFeed::default()
    }
}

/// An author as one string: "email (Name)", RSS 2.0's own form, keeps the address for
/// RSS `<author>` (render splits it again); else the name or the address.
fn person(p: &fr::Person) -> Option<String> {
    // feed-rs leaves the parentheses of RSS 2.0's "email (Name)" on the name.
    let name = p
        .name
        .as_deref()
        .map(|n| {
            let n = n.trim();
            n.strip_prefix('(')
                .and_then(|n| n.strip_suffix(')'))
                .unwrap_or(n)
                .trim()
        })
        .filter(|n| !n.is_empty());
    let email = p.email.as_deref().map(str::trim).filter(|e| !e.is_empty());
    match (name, email) {
        (Some(n), Some(e)) if n != e => Some(format!("{e} ({n})")),
        (n, e) => n.or(e).map(str::to_owned),
    }
}

/// A feed's title as plain text, by the rule item titles follow
/// ([`crate::normalise::text::plain_title`]): `&nbsp;`, markup of `type="html"` and
/// `type="xhtml"` constructs, and double escaping all come out as readers expect.
fn feed_title(t: &Text) -> Option<String> {
    Some(crate::normalise::text::plain_title(t)).filter(|t| !t.is_empty())
}

/// What our own adapters read → [`ParsedFeed`], with scopes and origins applied as in
/// [`convert`].
fn from_own(
    read: rdf::Read,
    base: Option<&Url>,
    root: &Scope,
    scopes: &[Scope],
    origin: &str,
) -> ParsedFeed {
    let feed_link = read
        .link
        .as_deref()
        .and_then(|l| crate::normalise::url::resolve(l, root.base.as_ref().or(base)))
        .or_else(|| base.cloned());
    // As in `convert`: an entry's own `xml:lang` is its language, an inherited one the
    // feed's.
    let inherited_lang = scopes
        .iter()
        .find_map(|s| s.lang.clone().filter(|_| s.own_lang.is_none()));
    let entries = read
        .entries
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            let scope = scopes.get(i).unwrap_or(root);
            e.base = scope.base.clone();
            e.language = e.language.or_else(|| scope.own_lang.clone());
            e.origin = format!("{origin}#item{}", i + 1);
            e
        })
        .collect();
    ParsedFeed {
        format: read.format.to_owned(),
        title: read.title.as_ref().and_then(feed_title),
        link: feed_link,
        id: read.id,
        updated: read.updated,
        language: read
            .language
            .or_else(|| root.lang.clone())
            .or(inherited_lang),
        entries,
        authors: read.authors,
        categories: read.categories,
        ..ParsedFeed::default()
    }
}

/// What every adapter's result gets last: feed-level authors and categories as plain
/// text without repeats, and entries without authors of their own given the feed's
/// (RFC 4287 §4.2.1 says so for Atom; a channel's `dc:creator` means the same).
fn finish(mut p: ParsedFeed) -> ParsedFeed {
    let clean = |v: &mut Vec<String>| {
        let mut seen = std::collections::HashSet::new();
        v.retain(|s| !s.trim().is_empty() && seen.insert(s.trim().to_owned()));
    };
    clean(&mut p.authors);
    clean(&mut p.categories);
    for e in &mut p.entries {
        if e.authors.is_empty() {
            e.authors = p.authors.clone();
        }
    }
    p
}

/// Dublin Core and DCMI terms that feed-rs does not read on RSS 2.0 / 0.9x and Atom
/// 1.0, filled in where feed-rs found nothing (see [`super::dc`] for the mapping).
/// Items are matched by position; when the counts differ nothing is filled in.
fn supplement_dublin_core(p: &mut ParsedFeed, root: &Element, tz: Tz) {
    let (container, item) = match root.name.as_str() {
        "rss" => match root.elements().find(|e| e.name == "channel") {
            Some(c) => (c, "item"),
            None => return,
        },
        "feed" => (root, "entry"),
        _ => return,
    };
    let date = |s: Option<&str>| s.and_then(|s| crate::dates::parse(s, tz));
    let feed_dc = DcFields::of(container);
    if p.title.is_none() {
        p.title = feed_dc
            .title
            .as_ref()
            .and_then(|t| feed_title(&Text::plain(t)));
    }
    p.updated = p.updated.or_else(|| date(feed_dc.feed_updated()));
    p.language = p.language.take().or(feed_dc.language.clone());
    p.authors.extend(feed_dc.creators.iter().cloned());
    p.categories.extend(feed_dc.subjects.iter().cloned());
    let items: Vec<&Element> = container.elements().filter(|e| e.name == item).collect();
    if items.len() != p.entries.len() {
        return;
    }
    for (e, el) in p.entries.iter_mut().zip(items) {
        let dc = DcFields::of(el);
        if dc.is_empty() {
            continue;
        }
        if e.title.as_ref().is_none_or(|t| t.body.trim().is_empty()) {
            if let Some(t) = &dc.title {
                e.title = Some(Text::plain(t.clone()));
            }
        }
        if e.summary.is_none() {
            e.summary = dc.description.clone().map(Text::html);
        }
        for c in &dc.creators {
            // RSS 2.0 `dc:creator` feed-rs read already.
            if !e.authors.iter().any(|a| a == c) {
                e.authors.push(c.clone());
            }
        }
        for s in &dc.subjects {
            if !e.tags.iter().any(|t| t == s) {
                e.tags.push(s.clone());
            }
        }
        e.published = e.published.or_else(|| date(dc.item_published()));
        if let Some(m) = date(dc.modified.as_deref()) {
            // feed-rs copies an RSS item's `pubDate` into `updated` when there is none.
            if e.updated.is_none() || e.updated == e.published {
                e.updated = Some(m);
            }
        }
        e.language = e.language.take().or(dc.language.clone());
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
        for dir in ["normalise", "formats"] {
            let dir = format!("{}/tests/fixtures/{dir}", env!("CARGO_MANIFEST_DIR"));
            for e in std::fs::read_dir(dir).unwrap() {
                fuzz_check(&std::fs::read(e.unwrap().path()).unwrap());
            }
        }
    }

    /// The fixtures of the shapes only our own adapters and repairs read.
    const SHAPES: [&str; 6] = [
        "atom03-escaped-content.xml",
        "atom03-base64-and-inline-xml-content.xml",
        "rdf-item-without-link.xml",
        "rss-internal-dtd-entities.xml",
        "rss-mismatched-end-tag-at-end.xml",
        "rss2-dublin-core-and-dcterms.xml",
    ];

    fn shape(name: &str) -> String {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/formats/");
        std::fs::read_to_string(format!("{p}{name}")).unwrap()
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

        /// The new paths (Atom 0.3, RDF, DTD entities, end-tag repair, Dublin Core)
        /// under random mutation.
        #[test]
        fn new_formats_survive_mutation(
            which in 0usize..SHAPES.len(),
            cuts in prop::collection::vec((0usize..4000, any::<u8>()), 0..24)
        ) {
            let mut data = shape(SHAPES[which]).into_bytes();
            for (at, byte) in cuts {
                let at = at % data.len();
                data[at] = byte;
            }
            fuzz_check(&data);
        }

        /// A truncated body is never read, whatever the repairs: every prefix that ends
        /// before the document's last `>` is an error (the last good copy stays). The
        /// one exception is RSS cut after a complete `</channel>`: feed-rs reads it, and
        /// no item can be missing.
        #[test]
        fn every_truncation_of_a_feed_is_refused(which in 0usize..SHAPES.len(), at in any::<prop::sample::Index>()) {
            let text = shape(SHAPES[which]);
            let end = text
                .contains("<rss")
                .then(|| text.rfind("</channel>"))
                .flatten()
                .unwrap_or_else(|| text.rfind('>').unwrap());
            let mut cut = at.index(end);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let r = parse(&text[..cut], None, chrono_tz::Europe::Berlin, "t");
            prop_assert!(r.is_err(), "cut at {} of {}: {:?}", cut, SHAPES[which], r.map(|p| p.entries.len()));
        }
    }
}
