//! `config.toml` → validated [`Config`]. Every error names the key and its line, and all
//! problems are reported at once, so an operator fixes the file in one pass.
//!
//! Parsing happens in two phases: serde reads the `Raw*` structs of `raw` (rejecting
//! unknown keys and wrong types with toml's own spans), then `Config::from_raw` hands
//! each section to its own constructor — `Site::from_raw`, `Publish::from_raw`, … in
//! `sections`, `Source::from_raw` and `Channel::from_raw` in `sources` — which check
//! what serde cannot (cron expressions, URLs, zones, unique ids, selectors, date
//! formats) and build the model types; `problems` collects what they find, with key and
//! line. Cron expressions become [`Cron`](crate::schedule::Cron) here, once. Nothing
//! downstream validates again.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

mod problems;
mod raw;
mod sections;
mod server;
mod sources;
mod target;

pub use sections::{
    Archives, DedupeConfig, FetchConfig, Publish, Server, Site, StoreConfig, StoreLocation,
};
pub use server::ServerLimits;
pub use target::RemoteTarget;

use crate::model::{Channel, Source};
use problems::{key_at, Problems};
use raw::RawConfig;
use sources::{tag_vocabulary, ChannelDefaults, SourceDefaults};

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
                let mut p = Problems::new(text);
                let key = key_at(text, e.span());
                p.add(key, e.span().unwrap_or(0..0), e.message().to_owned());
                return Err(invalid(p.list));
            }
        };
        let mut p = Problems::new(text);
        let cfg = Config::from_raw(raw, path, &mut p);
        if p.list.is_empty() {
            Ok(cfg)
        } else {
            Err(invalid(p.list))
        }
    }

    /// Each section by its own constructor, in file order, so the problems come out in
    /// the order an operator reads the file.
    fn from_raw(raw: RawConfig, path: &Path, p: &mut Problems) -> Config {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let site = Site::from_raw(raw.site, p);
        let publish = Publish::from_raw(raw.publish, &dir, p);
        let server = Server::from_raw(raw.server, p);
        let store = StoreConfig::from_raw(raw.store, &dir, p);
        let fetch = FetchConfig::from_raw(raw.fetch, p);
        let dedupe = DedupeConfig::from_raw(raw.dedupe, p);

        let source_defaults = SourceDefaults {
            dir: &dir,
            timezone: site.timezone,
        };
        let mut seen = HashSet::new();
        let sources: Vec<Source> = raw
            .sources
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| Source::from_raw(i, s, &source_defaults, &mut seen, p))
            .collect();
        if sources.is_empty() && p.list.is_empty() {
            p.add(
                "source",
                0..0,
                "no sources configured; add at least one [[source]]",
            );
        }

        let channel_defaults = ChannelDefaults {
            site_title: &site.title,
            max_items: publish.max_items,
            source_ids: &seen,
        };
        let mut channel_ids = HashSet::new();
        let channels = raw
            .channels
            .into_iter()
            .enumerate()
            .map(|(i, c)| Channel::from_raw(i, c, &channel_defaults, &mut channel_ids, p))
            .collect();

        Config {
            path: path.to_owned(),
            site,
            publish,
            server,
            store,
            fetch,
            dedupe,
            sources,
            channels,
            tags: tag_vocabulary(raw.tags),
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
    fn store_url_selects_postgres_and_path_the_sqlite_file_beside_the_config() {
        let at = |store: &str| {
            Config::parse(
                &format!("{MINIMAL}\n[store]\n{store}\n"),
                Path::new("conf/config.toml"),
            )
            .unwrap()
            .store
            .location
        };
        let pg = at("url = \"postgres://feedwerk:pw@db.internal/feedwerk\"");
        assert_eq!(
            pg,
            StoreLocation::Postgres(crate::db_url::DbUrl::new(
                "postgres://feedwerk:pw@db.internal/feedwerk"
            ))
        );
        assert_eq!(
            pg.to_string(),
            "postgres://feedwerk:***@db.internal/feedwerk"
        );
        assert!(!format!("{pg:?}").contains("pw@"), "{pg:?}");
        assert_eq!(
            at("path = \"db/x.sqlite\""),
            StoreLocation::Sqlite("conf/db/x.sqlite".into())
        );
        assert_eq!(
            at("max_items = 10"),
            StoreLocation::Sqlite("conf/state/feedwerk.sqlite".into())
        );
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
    fn schedules_are_parsed_once_into_cron_with_five_fields_accepted() {
        let c = parse(&MINIMAL.replace(
            "path = \"feeds/defus\"",
            "path = \"feeds/defus\"\nschedule = \"*/5 * * * *\"",
        ))
        .unwrap();
        assert_eq!(c.publish.schedule.as_str(), "0 */15 * * * *");
        let own = c.sources[0]
            .schedule
            .as_ref()
            .expect("the source's own schedule");
        assert_eq!(own.as_str(), "*/5 * * * *");
        let err = parse(&format!(
            "{MINIMAL}\n[publish]\nschedule = \"every minute\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`publish.schedule`: invalid cron expression `every minute`"),
            "{err}"
        );
    }
}
