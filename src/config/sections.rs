//! The one-table sections of `config.toml` — `[site]`, `[publish]`, `[server]`,
//! `[store]`, `[fetch]`, `[dedupe]` — each a validated type with its own `from_raw`.
//! `[[source]]` and `[[channel]]` are `sources`'s; the file as a whole is the parent's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;
use url::Url;

use super::problems::{self, duration, parse_tz, positive, Problems};
use super::raw::{RawDedupe, RawFetch, RawPublish, RawServer, RawSite, RawStore};
use super::target::RemoteTarget;
use super::ServerLimits;
use crate::db_url::DbUrl;
use crate::schedule::Cron;

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
    /// When the daemon refreshes and publishes, and when a source without its own
    /// `schedule` is fetched (5-field input is read with seconds = 0).
    pub schedule: Cron,
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
    /// Object storage the outputs are also uploaded to (`publish.target`), after they
    /// are written to `output_dir`.
    pub target: Option<RemoteTarget>,
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
    pub limits: ServerLimits,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Which store, and where: `store.path` or `store.url`.
    pub location: StoreLocation,
    /// Items kept per source at least; older ones beyond it may be pruned.
    pub max_items: usize,
    pub max_age: Option<Duration>,
    /// With a PostgreSQL store: how soon a standby leads once the leader's connection
    /// is gone (`store::postgres::Timing`).
    pub takeover: Duration,
    /// With a PostgreSQL store: how often a standby re-reads the documents it serves
    /// (from `publish.target` when set, else `publish.output_dir`).
    pub standby_refresh: Duration,
    /// With a PostgreSQL store: the CA certificates trusted for the server instead of
    /// the system's.
    pub ca_file: Option<PathBuf>,
}

/// Where the store lives. An enum rather than a path and an optional URL, so no
/// caller can open the SQLite file of a deployment configured for PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// The SQLite file (`store.path`, the default `state/feedwerk.sqlite`), read beside
    /// the config file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (`store.url`); prints without its password.
    Postgres(DbUrl),
}

impl std::fmt::Display for StoreLocation {
    /// The file's path or the URL without its password: what messages name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "{}", path.display()),
            StoreLocation::Postgres(url) => write!(f, "{url}"),
        }
    }
}

/// `store.takeover` when not set.
pub const DEFAULT_TAKEOVER: Duration = Duration::from_secs(15);
/// The shortest `store.takeover`: the server's keepalive settings go in whole seconds,
/// and a fifth of it is the leader's probe interval.
pub const MIN_TAKEOVER: Duration = Duration::from_secs(5);
/// `store.standby_refresh` when not set, and its longest: the loop's longest round.
pub const DEFAULT_STANDBY_REFRESH: Duration = Duration::from_secs(30);

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

/// `x` as written, or relative to the config file's directory.
pub(super) fn relative_to(dir: &Path, x: &Path) -> PathBuf {
    if x.is_absolute() {
        x.to_owned()
    } else {
        dir.join(x)
    }
}

/// Where invalid values point while the other problems are collected (never used: a
/// config with a problem is refused).
fn placeholder_url() -> Url {
    Url::parse("https://invalid.example/").expect("static URL")
}

impl Site {
    pub(super) fn from_raw(raw: RawSite, p: &mut Problems) -> Site {
        let base_url = match Url::parse(raw.base_url.get_ref()) {
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
                    raw.base_url.span(),
                    "must be an http(s) URL",
                );
                placeholder_url()
            }
            Err(e) => {
                p.add(
                    "site.base_url",
                    raw.base_url.span(),
                    format!("invalid URL: {e}"),
                );
                placeholder_url()
            }
        };
        let timezone =
            parse_tz(&raw.timezone, "site.timezone", p).unwrap_or(chrono_tz::Europe::Berlin);
        let language = match crate::normalise::lang::normalise_tag(raw.language.get_ref()) {
            Some(l) => l,
            None => {
                p.add(
                    "site.language",
                    raw.language.span(),
                    "not a language tag (e.g. `de`, `en-GB`)",
                );
                "de".into()
            }
        };
        Site {
            title: raw.title,
            description: raw.description.unwrap_or_default(),
            base_url,
            language,
            timezone,
            author: raw.author,
            id_date: id_date(raw.id_date.as_ref(), p),
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

impl Publish {
    pub(super) fn from_raw(raw: RawPublish, dir: &Path, p: &mut Problems) -> Publish {
        let schedule = problems::schedule(&raw.schedule, "publish.schedule", p)
            .unwrap_or_else(|| Cron::parse("0 */15 * * * *").expect("the default schedule"));
        let websub_hub = raw
            .websub_hub
            .as_ref()
            .and_then(|h| match Url::parse(h.get_ref()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
                _ => {
                    p.add("publish.websub_hub", h.span(), "must be an http(s) URL");
                    None
                }
            });
        Publish {
            output_dir: relative_to(dir, &raw.output_dir),
            schedule,
            max_items: positive(&raw.max_items, "publish.max_items", p),
            archive_page_size: positive(&raw.archive_page_size, "publish.archive_page_size", p),
            websub_hub,
            per_source: raw.per_source,
            per_tag: raw.per_tag,
            per_language: raw.per_language,
            tag_min_items: positive(&raw.tag_min_items, "publish.tag_min_items", p),
            archives: raw.archives,
            target: RemoteTarget::from_raw(
                raw.target.as_ref(),
                &raw.max_deletes,
                raw.s3.as_ref(),
                p,
            ),
        }
    }
}

impl Server {
    pub(super) fn from_raw(raw: RawServer, p: &mut Problems) -> Server {
        let listen = match raw.listen.get_ref().parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                p.add(
                    "server.listen",
                    raw.listen.span(),
                    "expected an address like `127.0.0.1:8080`",
                );
                SocketAddr::from(([127, 0, 0, 1], 8080))
            }
        };
        Server {
            listen,
            limits: ServerLimits::from_raw(&raw, p),
        }
    }
}

impl StoreConfig {
    pub(super) fn from_raw(raw: RawStore, dir: &Path, p: &mut Problems) -> StoreConfig {
        let location = match (&raw.url, raw.path) {
            (Some(url), path) => {
                check_store_url(url, path.is_some(), p);
                StoreLocation::Postgres(DbUrl::new(url.get_ref().clone()))
            }
            (None, path) => {
                let path = path
                    .map(Spanned::into_inner)
                    .unwrap_or_else(super::raw::default_store);
                StoreLocation::Sqlite(relative_to(dir, &path))
            }
        };
        StoreConfig {
            location,
            max_items: positive(&raw.max_items, "store.max_items", p),
            max_age: raw
                .max_age
                .as_ref()
                .and_then(|s| duration(s, "store.max_age", p)),
            takeover: takeover(raw.takeover.as_ref(), p),
            standby_refresh: standby_refresh(raw.standby_refresh.as_ref(), p),
            ca_file: raw
                .ca_file
                .map(|f| relative_to(dir, &Spanned::into_inner(f))),
        }
    }
}

/// `store.takeover`: a duration of at least [`MIN_TAKEOVER`].
fn takeover(raw: Option<&Spanned<String>>, p: &mut Problems) -> Duration {
    let Some(v) = raw else {
        return DEFAULT_TAKEOVER;
    };
    match duration(v, "store.takeover", p) {
        Some(d) if d < MIN_TAKEOVER => {
            p.add(
                "store.takeover",
                v.span(),
                format!(
                    "`{}` is shorter than {}s, the least a takeover can be promised in",
                    v.get_ref(),
                    MIN_TAKEOVER.as_secs()
                ),
            );
            DEFAULT_TAKEOVER
        }
        Some(d) => d,
        None => DEFAULT_TAKEOVER,
    }
}

/// `store.standby_refresh`: a duration of one second to [`DEFAULT_STANDBY_REFRESH`]
/// (a standby's loop goes round at least that often anyway).
fn standby_refresh(raw: Option<&Spanned<String>>, p: &mut Problems) -> Duration {
    let Some(v) = raw else {
        return DEFAULT_STANDBY_REFRESH;
    };
    match duration(v, "store.standby_refresh", p) {
        Some(d) if d < Duration::from_secs(1) || d > DEFAULT_STANDBY_REFRESH => {
            p.add(
                "store.standby_refresh",
                v.span(),
                format!(
                    "`{}` is outside 1s to {}s",
                    v.get_ref(),
                    DEFAULT_STANDBY_REFRESH.as_secs()
                ),
            );
            DEFAULT_STANDBY_REFRESH
        }
        Some(d) => d,
        None => DEFAULT_STANDBY_REFRESH,
    }
}

/// `store.url`: a PostgreSQL store instead of the SQLite file. It must be a
/// `postgres://` or `postgresql://` URL (the key-value form of libpq is not accepted:
/// it could not be told from a typo), and `store.path` must not be set beside it.
/// Messages never repeat the password.
fn check_store_url(url: &Spanned<String>, path_set: bool, p: &mut Problems) {
    let span = url.span();
    let text = url.get_ref();
    if path_set {
        p.add(
            "store.url",
            span,
            "`store.url` and `store.path` exclude each other: `path` is the SQLite file, \
             `url` a PostgreSQL server; set one of them",
        );
    } else if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
        p.add(
            "store.url",
            span,
            format!(
                "`{}` is not a PostgreSQL URL (postgres://user@host:port/database)",
                DbUrl::new(text.clone())
            ),
        );
    }
}

impl FetchConfig {
    pub(super) fn from_raw(f: RawFetch, p: &mut Problems) -> FetchConfig {
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
        fetch
    }
}

impl DedupeConfig {
    pub(super) fn from_raw(d: RawDedupe, p: &mut Problems) -> DedupeConfig {
        let frac = |v: &Option<Spanned<f64>>, key: &str, def: f64, p: &mut Problems| match v {
            Some(s) if !(0.0..=1.0).contains(s.get_ref()) => {
                p.add(key, s.span(), "must be between 0 and 1");
                def
            }
            Some(s) => *s.get_ref(),
            None => def,
        };
        let dd = DedupeConfig::default();
        DedupeConfig {
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
        }
    }
}

#[cfg(test)]
mod store_timing_tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::Config;

    fn store(lines: &str) -> Result<Config, String> {
        let text = format!(
            "[site]\ntitle = \"T\"\nbase_url = \"https://example.org/\"\n\n[store]\n{lines}\n\n\
             [[source]]\nid = \"a\"\nkind = \"local\"\npath = \"feeds/a\"\n"
        );
        Config::parse(&text, Path::new("conf/config.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn takeover_defaults_to_15s_and_ca_file_is_read_beside_the_config() {
        let c = store("path = \"s.sqlite\"").unwrap();
        assert_eq!(c.store.takeover, Duration::from_secs(15));
        assert_eq!(c.store.ca_file, None);
        let c = store("path = \"s.sqlite\"\ntakeover = \"40s\"\nca_file = \"tls/ca.pem\"").unwrap();
        assert_eq!(c.store.takeover, Duration::from_secs(40));
        assert_eq!(
            c.store.ca_file.as_deref(),
            Some(Path::new("conf/tls/ca.pem"))
        );
    }

    #[test]
    fn a_takeover_too_short_or_unreadable_is_named_with_its_line() {
        let err = store("takeover = \"2s\"").unwrap_err();
        assert!(
            err.contains("line 6: `store.takeover`: `2s` is shorter than 5s"),
            "{err}"
        );
        let err = store("takeover = \"soon\"").unwrap_err();
        assert!(
            err.contains("line 6: `store.takeover`: invalid duration"),
            "{err}"
        );
    }

    #[test]
    fn standby_refresh_defaults_to_30s_and_is_one_to_thirty_seconds() {
        assert_eq!(
            store("").unwrap().store.standby_refresh,
            Duration::from_secs(30)
        );
        let c = store("standby_refresh = \"2s\"").unwrap();
        assert_eq!(c.store.standby_refresh, Duration::from_secs(2));
        for v in ["500ms", "1m"] {
            let err = store(&format!("standby_refresh = \"{v}\"")).unwrap_err();
            assert!(
                err.contains(&format!(
                    "`store.standby_refresh`: `{v}` is outside 1s to 30s"
                )),
                "{err}"
            );
        }
    }
}
