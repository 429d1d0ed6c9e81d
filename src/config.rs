//! `config.toml` → validated [`Config`]. Every error names the key and its line, and all
//! problems are reported at once, so an operator fixes the file in one pass.
//!
//! Parsing happens in two phases: serde reads `Raw*` structs (rejecting unknown keys and
//! wrong types with toml's own spans), then [`Config::from_raw`] checks what serde cannot
//! (cron expressions, URLs, zones, unique ids, selectors, date formats) and builds the
//! model types. Nothing downstream validates again.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;
use url::Url;

use crate::model::{
    Channel, ChannelFilter, ChannelKind, PageSelectors, Source, SourceId, SourceKind,
};

/// One problem in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: `{}`: {}", self.key, self.message),
            None => write!(f, "`{}`: {}", self.key, self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}:\n{}", problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<ConfigProblem>,
    },
}

/// The validated deployment.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from; relative paths in it are relative to its directory.
    pub path: PathBuf,
    pub site: Site,
    pub publish: Publish,
    pub server: Server,
    pub store: StoreConfig,
    pub fetch: FetchConfig,
    pub dedupe: DedupeConfig,
    pub sources: Vec<Source>,
    /// Extra channels defined with `[[channel]]`.
    pub channels: Vec<Channel>,
    /// Lower-cased category → tag.
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Site {
    pub title: String,
    pub description: String,
    /// Public URL the outputs live under; always ends with `/`.
    pub base_url: Url,
    pub language: String,
    pub timezone: Tz,
    pub author: Option<String>,
    /// The date in every published ID (`tag:<host>,<id_date>:…`, see [`crate::identity`]).
    pub id_date: chrono::NaiveDate,
}

#[derive(Debug, Clone)]
pub struct Publish {
    pub output_dir: PathBuf,
    /// Cron expression with seconds (5-field input is accepted and prefixed with `0`).
    pub schedule: String,
    pub max_items: usize,
    /// Items per archive page (RFC 5005).
    pub archive_page_size: usize,
    pub websub_hub: Option<Url>,
    /// Channels per source, tag and language.
    pub per_source: bool,
    pub per_tag: bool,
    pub per_language: bool,
    /// A tag gets its own channel when at least this many visible items carry it, or
    /// when it is named in `[tags]`.
    pub tag_min_items: usize,
    pub archives: Archives,
}

/// Which channels keep RFC 5005 archive pages (`publish.archives`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Archives {
    /// The combined feed and the `[[channel]]` feeds. Every item is in the combined
    /// archive once; per-source, tag and language archives would repeat it about
    /// three times over (a large build wrote 5.6 GB for 566 MB of partner feeds).
    #[default]
    Combined,
    /// Every channel.
    All,
    /// None: subscription documents only.
    None,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub path: PathBuf,
    /// Items kept per source at least; older ones beyond it may be pruned.
    pub max_items: usize,
    pub max_age: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct FetchConfig {
    pub user_agent: Option<String>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub max_body_bytes: u64,
    pub max_redirects: usize,
    pub concurrency: usize,
    pub per_host_concurrency: usize,
    pub backoff_cap: Duration,
    /// A whole refresh ends by then: sources still waiting for their host are skipped
    /// (and tried next cycle), so one slow partner never holds up the publish.
    pub deadline: Duration,
}

impl Default for FetchConfig {
    /// The limits `[fetch]` gets when it sets nothing (used by `import` and `doctor`
    /// when there is no config file).
    fn default() -> Self {
        FetchConfig {
            user_agent: None,
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            max_body_bytes: 10 * 1024 * 1024,
            max_redirects: 5,
            concurrency: 16,
            per_host_concurrency: 1,
            backoff_cap: Duration::from_secs(6 * 3600),
            deadline: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone)]
/// `[dedupe]`: thresholds of the near-duplicate rules (see the `dedupe` module doc).
/// Defaults were chosen by measurement on a labelled corpus (README, "Deduplication").
pub struct DedupeConfig {
    /// Text Jaccard (5-word shingles) at which two texts dated within `window_days`
    /// are one story.
    pub near_jaccard: f64,
    /// Text Jaccard at which two texts are one story however far apart their dates.
    pub strong_jaccard: f64,
    /// Text Jaccard enough when the titles are the same (and dates within the window).
    pub title_jaccard: f64,
    /// Share of a short text's shingles found in a longer one for a same-title teaser.
    pub teaser_containment: f64,
    /// Days apart two copies may be dated for the weaker rules.
    pub window_days: i64,
}

impl Default for DedupeConfig {
    fn default() -> Self {
        DedupeConfig {
            near_jaccard: 0.5,
            strong_jaccard: 0.8,
            title_jaccard: 0.3,
            teaser_containment: 0.8,
            window_days: 30,
        }
    }
}

// ---- raw, as serde reads it ------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    site: RawSite,
    #[serde(default)]
    publish: RawPublish,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    fetch: RawFetch,
    #[serde(default)]
    dedupe: RawDedupe,
    #[serde(default, rename = "source")]
    sources: Vec<RawSource>,
    #[serde(default, rename = "channel")]
    channels: Vec<RawChannel>,
    #[serde(default)]
    tags: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    title: String,
    #[serde(default)]
    description: Option<String>,
    base_url: Spanned<String>,
    #[serde(default = "default_language")]
    language: Spanned<String>,
    #[serde(default = "default_timezone")]
    timezone: Spanned<String>,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    id_date: Option<Spanned<toml::value::Datetime>>,
}

fn default_language() -> Spanned<String> {
    Spanned::new(0..0, "de".into())
}
fn default_timezone() -> Spanned<String> {
    Spanned::new(0..0, "Europe/Berlin".into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublish {
    #[serde(default = "default_output")]
    output_dir: PathBuf,
    #[serde(default = "default_schedule")]
    schedule: Spanned<String>,
    #[serde(default = "default_max_items")]
    max_items: Spanned<i64>,
    #[serde(default = "default_archive")]
    archive_page_size: Spanned<i64>,
    #[serde(default)]
    websub_hub: Option<Spanned<String>>,
    #[serde(default = "yes")]
    per_source: bool,
    #[serde(default = "yes")]
    per_tag: bool,
    #[serde(default = "yes")]
    per_language: bool,
    #[serde(default = "default_tag_min_items")]
    tag_min_items: Spanned<i64>,
    #[serde(default)]
    archives: Archives,
}

fn yes() -> bool {
    true
}
fn default_output() -> PathBuf {
    "public".into()
}
fn default_schedule() -> Spanned<String> {
    Spanned::new(0..0, "0 */15 * * * *".into())
}
fn default_max_items() -> Spanned<i64> {
    Spanned::new(0..0, 50)
}
/// Partners' free-form categories are mostly used once or twice ("Allgemein", a place
/// name): a channel of one or two stories is noise in the channel list and, at three
/// formats plus archive pages each, most of a build's files.
fn default_tag_min_items() -> Spanned<i64> {
    Spanned::new(0..0, 3)
}
fn default_archive() -> Spanned<i64> {
    Spanned::new(0..0, 100)
}

impl Default for RawPublish {
    fn default() -> Self {
        RawPublish {
            output_dir: default_output(),
            schedule: default_schedule(),
            max_items: default_max_items(),
            archive_page_size: default_archive(),
            websub_hub: None,
            per_source: true,
            per_tag: true,
            per_language: true,
            tag_min_items: default_tag_min_items(),
            archives: Archives::default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default = "default_listen")]
    listen: Spanned<String>,
}

fn default_listen() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1:8080".into())
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: default_listen(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    #[serde(default = "default_store")]
    path: PathBuf,
    #[serde(default = "default_keep")]
    max_items: Spanned<i64>,
    #[serde(default)]
    max_age: Option<Spanned<String>>,
}

fn default_store() -> PathBuf {
    "state/feedwerk.sqlite".into()
}
fn default_keep() -> Spanned<i64> {
    Spanned::new(0..0, 1000)
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            path: default_store(),
            max_items: default_keep(),
            max_age: None,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFetch {
    user_agent: Option<String>,
    connect_timeout: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    max_body_bytes: Option<Spanned<i64>>,
    max_redirects: Option<Spanned<i64>>,
    concurrency: Option<Spanned<i64>>,
    per_host_concurrency: Option<Spanned<i64>>,
    backoff_cap: Option<Spanned<String>>,
    deadline: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDedupe {
    near_jaccard: Option<Spanned<f64>>,
    strong_jaccard: Option<Spanned<f64>>,
    title_jaccard: Option<Spanned<f64>>,
    teaser_containment: Option<Spanned<f64>>,
    window_days: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    id: Spanned<String>,
    kind: Spanned<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    path: Option<PathBuf>,
    #[serde(default)]
    url: Option<Spanned<String>>,
    #[serde(default)]
    homepage: Option<Spanned<String>>,
    #[serde(default)]
    priority: Option<i32>,
    #[serde(default)]
    language: Option<Spanned<String>>,
    #[serde(default)]
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    schedule: Option<Spanned<String>>,
    #[serde(default)]
    encoding: Option<Spanned<String>>,
    #[serde(default)]
    allow_iframe_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    tags: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    selectors: Option<Spanned<PageSelectors>>,
    #[serde(default)]
    date_format: Option<Spanned<StringOrList>>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    fn into_vec(self) -> Vec<String> {
        match self {
            StringOrList::One(s) => vec![s],
            StringOrList::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    id: Spanned<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    sources: Vec<Spanned<String>>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    languages: Vec<String>,
    #[serde(default)]
    max_items: Option<Spanned<i64>>,
}

// ---- validation -----------------------------------------------------------------------

/// Collects problems with line numbers computed from spans in `text`.
struct Problems<'a> {
    text: &'a str,
    list: Vec<ConfigProblem>,
}

impl Problems<'_> {
    fn line_of(&self, span: std::ops::Range<usize>) -> Option<usize> {
        if span == (0..0) {
            return None;
        }
        Some(
            self.text[..span.start.min(self.text.len())]
                .matches('\n')
                .count()
                + 1,
        )
    }

    fn add(
        &mut self,
        key: impl Into<String>,
        span: std::ops::Range<usize>,
        msg: impl Into<String>,
    ) {
        let line = self.line_of(span);
        self.list.push(ConfigProblem {
            key: key.into(),
            line,
            message: msg.into(),
        });
    }
}

/// Accepts cron with seconds (6 or 7 fields) or the classic 5 fields (seconds = 0).
pub fn parse_schedule(expr: &str) -> Result<cron::Schedule, String> {
    let fields = expr.split_whitespace().count();
    let full = if fields == 5 {
        format!("0 {expr}")
    } else {
        expr.to_owned()
    };
    cron::Schedule::from_str(&full).map_err(|e| {
        let detail = e.to_string();
        let detail = detail.lines().last().unwrap_or_default().trim().to_owned();
        format!("invalid cron expression `{expr}` (expected `sec min hour day month weekday`, e.g. \"0 */15 * * * *\"): {detail}")
    })
}

impl Config {
    /// Reads and validates the config at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Validates `text` as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |problems| ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        };
        let raw: RawConfig = match toml::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let mut p = Problems { text, list: vec![] };
                let key = key_at(text, e.span());
                p.add(key, e.span().unwrap_or(0..0), e.message().to_owned());
                return Err(invalid(p.list));
            }
        };
        let mut p = Problems { text, list: vec![] };
        let cfg = Config::from_raw(raw, path, &mut p);
        if p.list.is_empty() {
            Ok(cfg)
        } else {
            Err(invalid(p.list))
        }
    }

    fn from_raw(raw: RawConfig, path: &Path, p: &mut Problems) -> Config {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let rel = |x: &Path| {
            if x.is_absolute() {
                x.to_owned()
            } else {
                dir.join(x)
            }
        };

        let base_url = match Url::parse(raw.site.base_url.get_ref()) {
            Ok(mut u) if matches!(u.scheme(), "http" | "https") => {
                if !u.path().ends_with('/') {
                    let path = format!("{}/", u.path());
                    u.set_path(&path);
                }
                u
            }
            Ok(_) => {
                p.add(
                    "site.base_url",
                    raw.site.base_url.span(),
                    "must be an http(s) URL",
                );
                Url::parse("https://invalid.example/").unwrap()
            }
            Err(e) => {
                p.add(
                    "site.base_url",
                    raw.site.base_url.span(),
                    format!("invalid URL: {e}"),
                );
                Url::parse("https://invalid.example/").unwrap()
            }
        };
        let site_tz =
            parse_tz(&raw.site.timezone, "site.timezone", p).unwrap_or(chrono_tz::Europe::Berlin);
        let language = match crate::normalise::lang::normalise_tag(raw.site.language.get_ref()) {
            Some(l) => l,
            None => {
                p.add(
                    "site.language",
                    raw.site.language.span(),
                    "not a language tag (e.g. `de`, `en-GB`)",
                );
                "de".into()
            }
        };
        let site = Site {
            title: raw.site.title,
            description: raw.site.description.unwrap_or_default(),
            base_url,
            language,
            timezone: site_tz,
            author: raw.site.author,
            id_date: id_date(raw.site.id_date.as_ref(), p),
        };

        let schedule = check_schedule(&raw.publish.schedule, "publish.schedule", p);
        let websub_hub =
            raw.publish
                .websub_hub
                .as_ref()
                .and_then(|h| match Url::parse(h.get_ref()) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
                    _ => {
                        p.add("publish.websub_hub", h.span(), "must be an http(s) URL");
                        None
                    }
                });
        let publish = Publish {
            output_dir: rel(&raw.publish.output_dir),
            schedule,
            max_items: positive(&raw.publish.max_items, "publish.max_items", p),
            archive_page_size: positive(
                &raw.publish.archive_page_size,
                "publish.archive_page_size",
                p,
            ),
            websub_hub,
            per_source: raw.publish.per_source,
            per_tag: raw.publish.per_tag,
            per_language: raw.publish.per_language,
            tag_min_items: positive(&raw.publish.tag_min_items, "publish.tag_min_items", p),
            archives: raw.publish.archives,
        };

        let listen = match raw.server.listen.get_ref().parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                p.add(
                    "server.listen",
                    raw.server.listen.span(),
                    "expected an address like `127.0.0.1:8080`",
                );
                SocketAddr::from(([127, 0, 0, 1], 8080))
            }
        };

        let store = StoreConfig {
            path: rel(&raw.store.path),
            max_items: positive(&raw.store.max_items, "store.max_items", p),
            max_age: raw
                .store
                .max_age
                .as_ref()
                .and_then(|s| duration(s, "store.max_age", p)),
        };

        let f = &raw.fetch;
        let dur = |v: &Option<Spanned<String>>, key: &str, d: u64, p: &mut Problems| {
            v.as_ref()
                .and_then(|s| duration(s, key, p))
                .unwrap_or(Duration::from_secs(d))
        };
        let num = |v: &Option<Spanned<i64>>, key: &str, d: usize, p: &mut Problems| {
            v.as_ref().map(|s| positive(s, key, p)).unwrap_or(d)
        };
        let mut fetch = FetchConfig {
            user_agent: f.user_agent.clone(),
            connect_timeout: dur(&f.connect_timeout, "fetch.connect_timeout", 10, p),
            timeout: dur(&f.timeout, "fetch.timeout", 30, p),
            max_body_bytes: num(
                &f.max_body_bytes,
                "fetch.max_body_bytes",
                10 * 1024 * 1024,
                p,
            ) as u64,
            max_redirects: num(&f.max_redirects, "fetch.max_redirects", 5, p),
            concurrency: num(&f.concurrency, "fetch.concurrency", 16, p),
            per_host_concurrency: num(&f.per_host_concurrency, "fetch.per_host_concurrency", 1, p),
            backoff_cap: dur(&f.backoff_cap, "fetch.backoff_cap", 6 * 3600, p),
            deadline: Duration::ZERO,
        };
        fetch.deadline = match &f.deadline {
            Some(d) => match duration(d, "fetch.deadline", p) {
                Some(v) if v < fetch.timeout => {
                    p.add(
                        "fetch.deadline",
                        d.span(),
                        "must be at least `fetch.timeout` (each source gets its full timeout)",
                    );
                    v
                }
                Some(v) => v,
                None => fetch.timeout * 2,
            },
            // Room for one slow partner plus a second one queued behind it on its host.
            None => fetch.timeout * 2,
        };

        let d = &raw.dedupe;
        let frac = |v: &Option<Spanned<f64>>, key: &str, def: f64, p: &mut Problems| match v {
            Some(s) if !(0.0..=1.0).contains(s.get_ref()) => {
                p.add(key, s.span(), "must be between 0 and 1");
                def
            }
            Some(s) => *s.get_ref(),
            None => def,
        };
        let dd = DedupeConfig::default();
        let dedupe = DedupeConfig {
            near_jaccard: frac(&d.near_jaccard, "dedupe.near_jaccard", dd.near_jaccard, p),
            strong_jaccard: frac(
                &d.strong_jaccard,
                "dedupe.strong_jaccard",
                dd.strong_jaccard,
                p,
            ),
            title_jaccard: frac(
                &d.title_jaccard,
                "dedupe.title_jaccard",
                dd.title_jaccard,
                p,
            ),
            teaser_containment: frac(
                &d.teaser_containment,
                "dedupe.teaser_containment",
                dd.teaser_containment,
                p,
            ),
            window_days: d
                .window_days
                .as_ref()
                .map(|s| positive(s, "dedupe.window_days", p) as i64)
                .unwrap_or(dd.window_days),
        };

        let mut seen = HashSet::new();
        let mut sources = Vec::new();
        for (i, s) in raw.sources.into_iter().enumerate() {
            let key = |k: &str| format!("source[{i}].{k}");
            let id = s.id.get_ref().clone();
            if !valid_id(&id) {
                p.add(
                    key("id"),
                    s.id.span(),
                    "use lower-case letters, digits, `-` and `_`",
                );
            }
            if !seen.insert(id.clone()) {
                p.add(
                    key("id"),
                    s.id.span(),
                    format!("duplicate source id `{id}`"),
                );
            }
            let url = s.url.as_ref().and_then(|u| match Url::parse(u.get_ref()) {
                Ok(x) if matches!(x.scheme(), "http" | "https") => Some(x),
                Ok(_) => {
                    p.add(key("url"), u.span(), "must be an http(s) URL");
                    None
                }
                Err(e) => {
                    p.add(
                        key("url"),
                        u.span(),
                        format!("invalid URL `{}`: {e}", u.get_ref()),
                    );
                    None
                }
            });
            let kind = match s.kind.get_ref().as_str() {
                "local" => match &s.path {
                    Some(path) => Some(SourceKind::Local { path: rel(path) }),
                    None => {
                        p.add(key("path"), s.kind.span(), "a local source needs `path`");
                        None
                    }
                },
                "feed" => match (url, &s.url) {
                    (Some(url), _) => Some(SourceKind::Feed { url }),
                    (None, None) => {
                        p.add(key("url"), s.kind.span(), "a feed source needs `url`");
                        None
                    }
                    (None, Some(_)) => None,
                },
                "page" => {
                    let selectors = match &s.selectors {
                        Some(sel) => {
                            check_selectors(sel.get_ref(), &id, &key("selectors"), sel.span(), p);
                            Some(sel.get_ref().clone())
                        }
                        None => {
                            p.add(
                                key("selectors"),
                                s.kind.span(),
                                "a page source needs `selectors`",
                            );
                            None
                        }
                    };
                    let date_formats = s.date_format.clone().map(|f| {
                        let span = f.span();
                        let v = f.into_inner().into_vec();
                        if v.is_empty() {
                            p.add(
                                key("date_format"),
                                span.clone(),
                                format!(
                                    "source `{id}`: give at least one format, e.g. \"%d.%m.%Y\""
                                ),
                            );
                        }
                        for fmt in &v {
                            if let Err(e) = crate::source::page::check_date_format(fmt) {
                                p.add(
                                    key("date_format"),
                                    span.clone(),
                                    format!("source `{id}`: {e}"),
                                );
                            }
                        }
                        v
                    });
                    match (url, selectors, &s.url) {
                        (Some(url), Some(selectors), _) => Some(SourceKind::Page {
                            url,
                            selectors,
                            date_formats: date_formats.unwrap_or_default(),
                        }),
                        (_, _, None) => {
                            p.add(key("url"), s.kind.span(), "a page source needs `url`");
                            None
                        }
                        _ => None,
                    }
                }
                other => {
                    p.add(
                        key("kind"),
                        s.kind.span(),
                        format!("unknown kind `{other}` (expected local, feed or page)"),
                    );
                    None
                }
            };
            if let Some(sel) = &s.selectors {
                if !matches!(kind, Some(SourceKind::Page { .. }) | None) {
                    p.add(
                        key("selectors"),
                        sel.span(),
                        "only page sources take selectors",
                    );
                }
            }
            if let Some(f) = &s.date_format {
                if !matches!(kind, Some(SourceKind::Page { .. }) | None) {
                    p.add(
                        key("date_format"),
                        f.span(),
                        "only page sources take date_format (feeds carry their own date format)",
                    );
                }
            }
            let timezone = s
                .timezone
                .as_ref()
                .and_then(|t| parse_tz(t, &key("timezone"), p))
                .unwrap_or(site_tz);
            let schedule = s
                .schedule
                .as_ref()
                .map(|sch| check_schedule(sch, &key("schedule"), p));
            let homepage = s
                .homepage
                .as_ref()
                .and_then(|h| match Url::parse(h.get_ref()) {
                    Ok(u) => Some(u),
                    Err(e) => {
                        p.add(key("homepage"), h.span(), format!("invalid URL: {e}"));
                        None
                    }
                });
            let language = s.language.as_ref().and_then(|l| {
                let t = crate::normalise::lang::normalise_tag(l.get_ref());
                if t.is_none() {
                    p.add(key("language"), l.span(), "not a language tag");
                }
                t
            });
            let encoding = s.encoding.as_ref().and_then(|e| {
                if encoding_rs::Encoding::for_label(e.get_ref().as_bytes()).is_none() {
                    p.add(
                        key("encoding"),
                        e.span(),
                        format!("unknown encoding `{}`", e.get_ref()),
                    );
                    None
                } else {
                    Some(e.get_ref().clone())
                }
            });
            let allow_iframe_hosts = s
                .allow_iframe_hosts
                .iter()
                .filter_map(|h| {
                    let host = h.get_ref().trim().to_ascii_lowercase();
                    let bare = !host.is_empty()
                        && host
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
                    if bare {
                        Some(host)
                    } else {
                        p.add(
                            key("allow_iframe_hosts"),
                            h.span(),
                            format!(
                                "`{}` is not a host name (write e.g. \"www.youtube-nocookie.com\", without scheme or path)",
                                h.get_ref()
                            ),
                        );
                        None
                    }
                })
                .collect();
            let tag_map = tag_vocabulary(s.tags);
            if let Some(kind) = kind {
                let priority = s
                    .priority
                    .unwrap_or(if matches!(kind, SourceKind::Local { .. }) {
                        100
                    } else {
                        50
                    });
                sources.push(Source {
                    title: s.title.unwrap_or_else(|| id.clone()),
                    id: SourceId(id),
                    kind,
                    homepage,
                    priority,
                    language,
                    timezone,
                    schedule,
                    encoding,
                    allow_iframe_hosts,
                    tag_map,
                });
            }
        }
        if sources.is_empty() && p.list.is_empty() {
            p.add(
                "source",
                0..0,
                "no sources configured; add at least one [[source]]",
            );
        }

        let mut channels = Vec::new();
        let mut channel_ids = HashSet::new();
        for (i, c) in raw.channels.into_iter().enumerate() {
            let key = |k: &str| format!("channel[{i}].{k}");
            let id = c.id.get_ref().clone();
            if !valid_id(&id) {
                p.add(
                    key("id"),
                    c.id.span(),
                    "use lower-case letters, digits, `-` and `_`",
                );
            }
            if !channel_ids.insert(id.clone()) {
                p.add(
                    key("id"),
                    c.id.span(),
                    format!("duplicate channel id `{id}`"),
                );
            }
            for s in &c.sources {
                if !seen.contains(s.get_ref()) {
                    p.add(
                        key("sources"),
                        s.span(),
                        format!("unknown source `{}`", s.get_ref()),
                    );
                }
            }
            channels.push(Channel {
                kind: ChannelKind::Defined,
                stem: format!("channels/{id}"),
                title: c.title.unwrap_or_else(|| format!("{} – {id}", site.title)),
                filter: ChannelFilter {
                    sources: c
                        .sources
                        .into_iter()
                        .map(|s| SourceId(s.into_inner()))
                        .collect(),
                    tags: c.tags,
                    languages: c.languages,
                },
                max_items: c
                    .max_items
                    .as_ref()
                    .map(|m| positive(m, &key("max_items"), p))
                    .unwrap_or(publish.max_items),
            });
        }

        let tags = tag_vocabulary(raw.tags);

        Config {
            path: path.to_owned(),
            site,
            publish,
            server: Server { listen },
            store,
            fetch,
            dedupe,
            sources,
            channels,
            tags,
        }
    }

    pub fn source(&self, id: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.id.as_str() == id)
    }

    /// The User-Agent: names feedwerk, its version and the site, so partners can reach us.
    pub fn user_agent(&self) -> String {
        self.fetch.user_agent.clone().unwrap_or_else(|| {
            format!(
                "feedwerk/{} (+{})",
                env!("CARGO_PKG_VERSION"),
                self.site.base_url
            )
        })
    }
}

/// `Tag = ["Alias", …]` → lower-cased alias (and the tag itself) → tag.
fn tag_vocabulary(raw: BTreeMap<String, Vec<String>>) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    for (tag, aliases) in raw {
        tags.insert(tag.to_lowercase(), tag.clone());
        for a in aliases {
            tags.insert(a.to_lowercase(), tag.clone());
        }
    }
    tags
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn positive(v: &Spanned<i64>, key: &str, p: &mut Problems) -> usize {
    if *v.get_ref() < 1 {
        p.add(key, v.span(), "must be at least 1");
        1
    } else {
        *v.get_ref() as usize
    }
}

fn duration(v: &Spanned<String>, key: &str, p: &mut Problems) -> Option<Duration> {
    match humantime::parse_duration(v.get_ref()) {
        Ok(d) => Some(d),
        Err(e) => {
            p.add(
                key,
                v.span(),
                format!(
                    "invalid duration `{}` ({e}); e.g. \"30s\", \"90d\"",
                    v.get_ref()
                ),
            );
            None
        }
    }
}

/// `site.id_date`: a TOML date alone (`2017-01-01`), else [`crate::identity::DEFAULT_ID_DATE`].
fn id_date(v: Option<&Spanned<toml::value::Datetime>>, p: &mut Problems) -> chrono::NaiveDate {
    let Some(v) = v else {
        return crate::identity::DEFAULT_ID_DATE;
    };
    let dt = v.get_ref();
    let day = match (dt.date, dt.time, dt.offset) {
        (Some(d), None, None) => {
            chrono::NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into())
        }
        _ => None,
    };
    day.unwrap_or_else(|| {
        p.add(
            "site.id_date",
            v.span(),
            format!("must be a date without a time (e.g. `2017-01-01`), not `{dt}`"),
        );
        crate::identity::DEFAULT_ID_DATE
    })
}

fn parse_tz(v: &Spanned<String>, key: &str, p: &mut Problems) -> Option<Tz> {
    match v.get_ref().parse::<Tz>() {
        Ok(tz) => Some(tz),
        Err(_) => {
            p.add(
                key,
                v.span(),
                format!("unknown time zone `{}` (e.g. `Europe/Berlin`)", v.get_ref()),
            );
            None
        }
    }
}

fn check_schedule(v: &Spanned<String>, key: &str, p: &mut Problems) -> String {
    if let Err(e) = parse_schedule(v.get_ref()) {
        p.add(key, v.span(), e);
    }
    v.get_ref().clone()
}

fn check_selectors(
    sel: &PageSelectors,
    id: &str,
    key: &str,
    span: std::ops::Range<usize>,
    p: &mut Problems,
) {
    for (name, v) in crate::source::page::fields(sel) {
        if let Err(e) = crate::source::page::check_selector(v) {
            p.add(
                format!("{key}.{name}"),
                span.clone(),
                format!("source `{id}`: invalid CSS selector `{v}`: {e}"),
            );
        }
    }
}

/// Best-effort dotted key for a toml error span: the table header above and the key on
/// the line, so "unknown field" errors still name where they are.
fn key_at(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else {
        return "(file)".into();
    };
    let upto = &text[..span.start.min(text.len())];
    let line_start = upto.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = text[line_start..]
        .find('\n')
        .map(|i| line_start + i)
        .unwrap_or(text.len());
    let line = text[line_start..line_end].trim();
    let table = upto
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(['[', ']']).to_owned());
    let key = line.split('=').next().unwrap_or("").trim();
    match (table, key.is_empty() || line.starts_with('[')) {
        (Some(t), false) => format!("{t}.{key}"),
        (Some(t), true) => t,
        (None, false) => key.to_owned(),
        (None, true) => "(file)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("config.toml"))
    }

    const MINIMAL: &str = r#"
[site]
title = "T"
base_url = "https://example.org/news"

[[source]]
id = "defus"
kind = "local"
path = "feeds/defus"
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.site.base_url.as_str(), "https://example.org/news/");
        assert_eq!(c.site.timezone, chrono_tz::Europe::Berlin);
        assert_eq!(c.publish.max_items, 50);
        assert_eq!(c.sources[0].priority, 100);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = parse(&format!("{MINIMAL}\nbogus = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bogus"), "{err}");
        assert!(
            err.contains("line 11: `source.bogus`: unknown field `bogus`"),
            "{err}"
        );
    }

    #[test]
    fn bad_cron_url_and_duplicate_id_are_all_reported() {
        let text = format!(
            "{MINIMAL}\n[[source]]\nid = \"defus\"\nkind = \"feed\"\nurl = \"not a url\"\nschedule = \"every hour\"\n"
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("line 12: `source[1].id`: duplicate source id"),
            "{err}"
        );
        assert!(err.contains("line 14: `source[1].url`"), "{err}");
        assert!(err.contains("line 15: `source[1].schedule`"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = parse(&MINIMAL.replace("title = \"T\"", "title = 3"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("site.title"), "{err}");
    }

    #[test]
    fn five_field_cron_is_accepted() {
        assert!(parse_schedule("*/15 * * * *").is_ok());
        assert!(parse_schedule("0 */15 * * * *").is_ok());
        assert!(parse_schedule("every minute").is_err());
    }
}
