//! The vocabulary every stage speaks: sources, entries as read, items as normalised,
//! and the channels we publish.
//!
//! This module depends on nothing else in the crate, which is what keeps the pipeline
//! one-way: each stage takes one of these types and hands the next stage another.
//! Foreign types (feed-rs, rss, atom_syndication, reqwest, scraper) never appear here.

use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::schedule::Cron;

/// The configured, stable handle of a source (`[[source]] id`). Never the URL: partners
/// move their feeds, and our IDs must not move with them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SourceId(pub String);

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl SourceId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Our published, never-changing identifier of an item (see [`crate::identity`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemId(pub String);

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ItemId {
    /// The item's key within its source: what follows `<source id>:` (see
    /// `normalise::item_id`, which makes every ID so): a local post's slug, or a hash.
    /// The one place an ID is taken apart.
    pub fn key_in_source(&self) -> Option<&str> {
        self.0.split_once(':').map(|(_, key)| key)
    }
}

/// CSS selectors that turn a partner's HTML news page into entries.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageSelectors {
    /// One match per news item; the other selectors are applied inside it.
    pub item: String,
    pub title: String,
    #[serde(default)]
    pub link: Option<String>,
    #[serde(default)]
    pub date: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
}

/// Where a source's entries come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// Markdown files with TOML front matter in a directory of ours.
    Local { path: PathBuf },
    /// A partner's RSS, Atom or JSON Feed document.
    Feed { url: Url },
    /// A partner's HTML page without a feed, read with CSS selectors.
    Page {
        url: Url,
        selectors: PageSelectors,
        /// chrono format strings tried in order on the date text.
        date_formats: Vec<String>,
    },
}

impl SourceKind {
    pub fn name(&self) -> &'static str {
        match self {
            SourceKind::Local { .. } => "local",
            SourceKind::Feed { .. } => "feed",
            SourceKind::Page { .. } => "page",
        }
    }

    /// The remote URL, for the kinds that have one.
    pub fn url(&self) -> Option<&Url> {
        match self {
            SourceKind::Local { .. } => None,
            SourceKind::Feed { url } | SourceKind::Page { url, .. } => Some(url),
        }
    }
}

/// One configured input, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub id: SourceId,
    pub kind: SourceKind,
    /// Human name, shown in outputs ("also at …", `atom:source`).
    pub title: String,
    /// The partner's website, for OPML and `atom:source` links.
    pub homepage: Option<Url>,
    /// Higher wins when the same story comes from several sources.
    pub priority: i32,
    /// Language used when neither the item nor the feed declares one.
    pub language: Option<String>,
    /// Zone for dates that carry none.
    pub timezone: Tz,
    /// Own cron schedule, overriding `[publish] schedule` for fetching.
    pub schedule: Option<Cron>,
    /// Forced character encoding for partners that mislabel theirs.
    pub encoding: Option<String>,
    /// Extra hosts whose `<iframe>` embeds survive sanitising (video players).
    pub allow_iframe_hosts: Vec<String>,
    /// This source's own category → tag mapping (lower-cased category → tag), applied
    /// before the site-wide `[tags]` vocabulary.
    pub tag_map: std::collections::BTreeMap<String, String>,
}

/// A source's fetch state as remembered between runs: the validators of the last good
/// copy, how the last attempt ended, and when to try next. The store keeps it; the
/// refresh stage changes it, one method per transition (as Miniflux's `model.Feed` has
/// `CheckedNow`, `WithError`, `ResetErrorCounter`, `ScheduleNextCheck`), so no caller
/// sets its fields one by one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceState {
    pub id: String,
    pub url: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub last_attempt: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_status: Option<String>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub next_fetch: Option<DateTime<Utc>>,
    pub moved_to: Option<String>,
    pub gone: bool,
    pub fetch_count: i64,
    pub items_held: i64,
}

impl SourceState {
    /// Whether the state was made for `url`: validators and a noted redirect apply
    /// only to the resource they came from.
    pub fn is_for(&self, url: Option<&Url>) -> bool {
        self.url.as_deref() == url.map(Url::as_str)
    }

    /// A 410 stops polling until the configured URL differs from the one that was gone.
    pub fn is_gone_at(&self, url: Option<&Url>) -> bool {
        self.gone && self.is_for(url)
    }

    /// An attempt at source `id` was made at `now`, whatever its outcome.
    pub fn checked_now(&mut self, id: &SourceId, now: DateTime<Utc>) {
        self.id = id.to_string();
        self.last_attempt = Some(now);
        self.fetch_count += 1;
    }

    /// The attempt went to `url`. A URL other than the remembered one is a new
    /// resource: nothing remembered of the old one applies to it.
    pub fn tried_at(&mut self, url: Option<&Url>) {
        if !self.is_for(url) {
            self.etag = None;
            self.last_modified = None;
            self.moved_to = None;
        }
        self.url = url.map(Url::to_string);
    }

    /// The held items were read with other settings than the config's now (see
    /// `reading`): no validators go out, so a 304 cannot keep the items as the old
    /// settings made them.
    pub fn forget_validators(&mut self) {
        self.etag = None;
        self.last_modified = None;
    }

    /// The attempt failed: one more failure in a row, and what it was. `gone`: the
    /// partner answered 410, so polling stops until the URL changes.
    pub fn with_error(&mut self, status: String, message: String, gone: bool) {
        self.consecutive_failures += 1;
        self.last_status = Some(status);
        self.last_error = Some(message);
        self.gone = gone;
    }

    /// The attempt succeeded at `now`: the failure count starts again.
    pub fn reset_error_counter(&mut self, now: DateTime<Utc>) {
        self.last_success = Some(now);
        self.last_error = None;
        self.consecutive_failures = 0;
    }

    /// The partner answered 304 for our copy. RFC 9110 §15.4.5: a 304 may carry
    /// updated validators, so those it sends replace ours; those it leaves out stay.
    pub fn not_modified(
        &mut self,
        etag: Option<String>,
        last_modified: Option<String>,
        moved_to: Option<&Url>,
    ) {
        self.last_status = Some("304 not modified".into());
        if etag.is_some() {
            self.etag = etag;
        }
        if last_modified.is_some() {
            self.last_modified = last_modified;
        }
        self.moved_to = moved_to.map(Url::to_string);
    }

    /// A copy read from `url` (`None` for a local directory) was stored; `status` says
    /// how ("200 ok", "read 12 posts"). A URL that was gone answers again.
    pub fn stored(&mut self, url: Option<&Url>, status: String) {
        self.url = url.map(Url::to_string);
        self.gone = false;
        self.last_status = Some(status);
    }

    /// The validators and the permanent redirect of the copy just fetched, replacing
    /// the old ones (a response without validators leaves none to send).
    pub fn with_validators(
        &mut self,
        etag: Option<String>,
        last_modified: Option<String>,
        moved_to: Option<&Url>,
    ) {
        self.etag = etag;
        self.last_modified = last_modified;
        self.moved_to = moved_to.map(Url::to_string);
    }

    /// When to try next; `None` never (a source gone with 410).
    pub fn schedule_next_check(&mut self, at: Option<DateTime<Utc>>) {
        self.next_fetch = at;
    }
}

/// Text as a source delivered it: plain or HTML, not yet trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Text {
    pub body: String,
    pub kind: TextKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TextKind {
    Plain,
    Html,
}

impl Text {
    pub fn plain(body: impl Into<String>) -> Self {
        Text {
            body: body.into(),
            kind: TextKind::Plain,
        }
    }
    pub fn html(body: impl Into<String>) -> Self {
        Text {
            body: body.into(),
            kind: TextKind::Html,
        }
    }
}

/// What a source adapter read from one item: untrusted and unnormalised.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    /// The source's own identifier (RSS `guid`, Atom `id`, JSON Feed `id`), untouched.
    pub guid: Option<String>,
    /// The item's link as written (may be relative).
    pub link: Option<String>,
    pub title: Option<Text>,
    pub summary: Option<Text>,
    pub content: Option<Text>,
    pub published: Option<DateTime<Utc>>,
    pub updated: Option<DateTime<Utc>>,
    pub authors: Vec<String>,
    pub tags: Vec<String>,
    pub language: Option<String>,
    /// Base for relative URLs: `xml:base`, else the item link, else the feed link.
    pub base: Option<Url>,
    /// A stable key the adapter already knows (local posts: their path), used for the ID.
    pub stable_key: Option<String>,
    /// Where it came from, for error messages: `file.md:3` or `URL#item 4`.
    pub origin: String,
}

/// What a source adapter read from one document: feed-level facts plus entries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedFeed {
    /// `rss2`, `rss0` (0.91/0.92), `rss1`, `rss090`, `atom`, `atom03`, `json`, `page`,
    /// `local`.
    pub format: String,
    /// Plain text, normalised like an item title.
    pub title: Option<String>,
    pub link: Option<Url>,
    pub id: Option<String>,
    pub updated: Option<DateTime<Utc>>,
    pub language: Option<String>,
    pub entries: Vec<Entry>,
    /// RSS `<ttl>`: minutes the partner asks readers to wait between fetches.
    pub ttl_minutes: Option<u32>,
    /// Problems with single entries that did not stop the rest (file and line, item index).
    pub problems: Vec<String>,
    /// The feed's own authors (Atom `author`, `dc:creator` on the channel); entries
    /// without authors of their own already carry them.
    pub authors: Vec<String>,
    /// The feed's own categories (`dc:subject` on the channel, Atom `category`): they
    /// describe the feed and are not given to its entries.
    pub categories: Vec<String>,
    /// How the document had to be read differently from what it says: repairs of
    /// ill-formed XML, expanded DTD entities, an RSS root read as another version. Shown
    /// by `feedwerk doctor`; the entries are read either way.
    pub repairs: Vec<String>,
}

/// How an item's `published` time was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DateSource {
    /// The source gave a usable date.
    Declared,
    /// No date (or a date far in the future): the time we first saw it.
    FirstSeen,
}

/// Text fingerprint used by deduplication (see `normalise::fingerprint`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Version of the hash family; signatures of other versions are recomputed.
    pub version: u32,
    /// blake3 of the normalised text, hex, for exact-content matches.
    pub text_hash: String,
    /// MinHash signature over word shingles. Not stored with the item: the store keeps
    /// it once, in `dedupe_sig`, and it can be made again from `Item::text`.
    #[serde(default, skip_serializing)]
    pub minhash: Vec<u32>,
    /// How many distinct shingles the text has (for containment estimates).
    pub shingles: u32,
}

/// One normalised item: trusted, comparable and safe to publish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Our published ID, stable across fetches and edits.
    pub id: ItemId,
    pub source: SourceId,
    /// The source's own identifier, untouched (for provenance and dedup keys).
    pub guid: Option<String>,
    /// Link for readers: absolute, tracking parameters removed.
    pub url: Option<Url>,
    /// The link as the source wrote it (resolved, tracking parameters kept): with the
    /// GUID, the key `feedwerk dupes --jsonl` reports an item under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_link: Option<String>,
    /// Identity form of the URL (scheme-less, no tracking, no fragment, no trailing slash).
    pub canonical_url: Option<String>,
    /// Plain text, entities decoded once, whitespace collapsed.
    pub title: String,
    /// Plain text, about 300 characters at most.
    pub summary: String,
    /// Sanitised HTML with absolute URLs.
    pub content_html: Option<String>,
    pub published: DateTime<Utc>,
    pub updated: Option<DateTime<Utc>>,
    pub date_source: DateSource,
    pub authors: Vec<String>,
    pub tags: Vec<String>,
    /// BCP 47 tag (`de`, `en-GB`).
    pub language: Option<String>,
    pub first_seen: DateTime<Utc>,
    /// Normalised body text the fingerprint was made from. Not stored in the item's
    /// JSON: the store keeps it in a column of its own (deduplication reads it without
    /// parsing the item), so the body is not held twice in one document.
    #[serde(default, skip_serializing)]
    pub text: String,
    pub fingerprint: Fingerprint,
}

/// The feed formats we publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Rss,
    Atom,
    Json,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Rss, Format::Atom, Format::Json];

    pub fn extension(self) -> &'static str {
        match self {
            Format::Rss => "rss",
            Format::Atom => "atom",
            Format::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Rss => "application/rss+xml; charset=utf-8",
            Format::Atom => "application/atom+xml; charset=utf-8",
            Format::Json => "application/feed+json; charset=utf-8",
        }
    }
}

/// Which items a channel carries.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChannelFilter {
    /// Empty: all sources.
    pub sources: Vec<SourceId>,
    /// Empty: any tag.
    pub tags: Vec<String>,
    /// Empty: any language.
    pub languages: Vec<String>,
}

impl ChannelFilter {
    /// How many of sources, tags and languages the filter restricts: with at most one,
    /// a store's query on that column is the whole filter; with more, each item must
    /// also be checked by [`ChannelFilter::matches`].
    pub fn dimensions(&self) -> usize {
        [
            !self.sources.is_empty(),
            !self.tags.is_empty(),
            !self.languages.is_empty(),
        ]
        .into_iter()
        .filter(|restricted| *restricted)
        .count()
    }

    pub fn matches(&self, item: &Item) -> bool {
        (self.sources.is_empty() || self.sources.contains(&item.source))
            && (self.tags.is_empty() || item.tags.iter().any(|t| self.tags.contains(t)))
            && (self.languages.is_empty()
                || item.language.as_ref().is_some_and(|l| {
                    self.languages
                        .iter()
                        .any(|want| l == want || l.starts_with(&format!("{want}-")))
                }))
    }
}

/// What a channel is, decided when it is planned: where its files go, how widely it is
/// read and whether it has archive pages follow from this, never from its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// Every item: `rss.xml`, `atom.xml`, `feed.json` (and the news page).
    Combined,
    /// One source's items: `sources/<id>`.
    Source,
    /// One tag's items: `tags/<slug>`.
    Tag,
    /// One language's items: `lang/<code>`.
    Language,
    /// A `[[channel]]` of the config: `channels/<id>`.
    Defined,
}

/// One published feed: which items, how many, under which path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub kind: ChannelKind,
    /// Path stem under the output dir, without extension: `combined` files are written
    /// as `rss.xml`/`atom.xml`/`feed.json`, others as `<stem>.rss` etc.
    pub stem: String,
    pub title: String,
    pub filter: ChannelFilter,
    pub max_items: usize,
}

impl Channel {
    /// Relative path of this channel's file in `format`.
    pub fn path(&self, format: Format) -> String {
        if self.kind == ChannelKind::Combined {
            match format {
                Format::Rss => "rss.xml".into(),
                Format::Atom => "atom.xml".into(),
                Format::Json => "feed.json".into(),
            }
        } else {
            format!("{}.{}", self.stem, format.extension())
        }
    }

    /// Relative path of archive page `page` (1 = oldest, RFC 5005) in `format`:
    /// `archive/3.atom` for the combined channel, `sources/efus/archive/3.atom` else.
    pub fn archive_path(&self, format: Format, page: u32) -> String {
        if self.kind == ChannelKind::Combined {
            format!("archive/{page}.{}", format.extension())
        } else {
            format!("{}/archive/{page}.{}", self.stem, format.extension())
        }
    }

    /// The name partners use for this channel in `/embed?channel=…`: its stem, or
    /// `all` for the combined channel.
    pub fn key(&self) -> &str {
        if self.kind == ChannelKind::Combined {
            "all"
        } else {
            &self.stem
        }
    }
}

/// Another copy of a story, kept as provenance on the published representative.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlsoAt {
    pub source: SourceId,
    pub source_title: String,
    pub title: String,
    pub url: Option<Url>,
}

/// How one source's refresh ended.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceStatus {
    /// Fetched (or read) and stored.
    Updated {
        items: usize,
        new: usize,
        changed: usize,
    },
    /// The partner answered 304.
    NotModified,
    /// Not fetched this time (gone, or waiting out a back-off).
    Skipped(String),
    /// Fetch or parse failed; the items held stay published.
    Failed(String),
}

/// What one source's refresh did: read by the CLI, the daemon's log and its metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceReport {
    pub id: SourceId,
    pub status: SourceStatus,
    /// Problems with single posts or entries (file and line, item), the rest published.
    pub problems: Vec<String>,
    /// A permanent redirect was followed: the operator should update the config.
    pub moved_to: Option<String>,
    /// Wall time from the start of the fetch (or directory read) to the stored result.
    pub elapsed: std::time::Duration,
}
