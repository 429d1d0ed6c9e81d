//! The config file as serde reads it: one `Raw*` struct per table, every key optional
//! or defaulted, unknown keys rejected, spans kept for line numbers. Nothing here checks
//! a value; that is each section's `from_raw` (see the parent module).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::target::RawS3;
use super::Archives;
use crate::model::PageSelectors;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) site: RawSite,
    #[serde(default)]
    pub(super) publish: RawPublish,
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) store: RawStore,
    #[serde(default)]
    pub(super) fetch: RawFetch,
    #[serde(default)]
    pub(super) dedupe: RawDedupe,
    #[serde(default, rename = "source")]
    pub(super) sources: Vec<RawSource>,
    #[serde(default, rename = "channel")]
    pub(super) channels: Vec<RawChannel>,
    #[serde(default)]
    pub(super) tags: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSite {
    pub(super) title: String,
    #[serde(default)]
    pub(super) description: Option<String>,
    pub(super) base_url: Spanned<String>,
    #[serde(default = "default_language")]
    pub(super) language: Spanned<String>,
    #[serde(default = "default_timezone")]
    pub(super) timezone: Spanned<String>,
    #[serde(default)]
    pub(super) author: Option<String>,
    #[serde(default)]
    pub(super) id_date: Option<Spanned<toml::value::Datetime>>,
}

fn default_language() -> Spanned<String> {
    Spanned::new(0..0, "de".into())
}
fn default_timezone() -> Spanned<String> {
    Spanned::new(0..0, "Europe/Berlin".into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPublish {
    #[serde(default = "default_output")]
    pub(super) output_dir: PathBuf,
    #[serde(default = "default_schedule")]
    pub(super) schedule: Spanned<String>,
    #[serde(default = "default_max_items")]
    pub(super) max_items: Spanned<i64>,
    #[serde(default = "default_archive")]
    pub(super) archive_page_size: Spanned<i64>,
    #[serde(default)]
    pub(super) websub_hub: Option<Spanned<String>>,
    #[serde(default = "yes")]
    pub(super) per_source: bool,
    #[serde(default = "yes")]
    pub(super) per_tag: bool,
    #[serde(default = "yes")]
    pub(super) per_language: bool,
    #[serde(default = "default_tag_min_items")]
    pub(super) tag_min_items: Spanned<i64>,
    #[serde(default)]
    pub(super) archives: Archives,
    /// `s3://bucket/prefix/`: see `target`.
    #[serde(default)]
    pub(super) target: Option<Spanned<String>>,
    #[serde(default = "default_max_deletes")]
    pub(super) max_deletes: Spanned<i64>,
    #[serde(default)]
    pub(super) s3: Option<Spanned<RawS3>>,
}

fn default_max_deletes() -> Spanned<i64> {
    Spanned::new(0..0, super::target::DEFAULT_MAX_DELETES)
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
            target: None,
            max_deletes: default_max_deletes(),
            s3: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    #[serde(default = "default_listen")]
    pub(super) listen: Spanned<String>,
    // The limits; see `ServerLimits`.
    #[serde(default)]
    pub(super) header_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) idle_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) write_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) max_connections: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) max_header_bytes: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) max_headers: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) max_uri_bytes: Option<Spanned<i64>>,
    #[serde(default)]
    pub(super) backlog: Option<Spanned<i64>>,
}

fn default_listen() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1:8080".into())
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: default_listen(),
            header_timeout: None,
            idle_timeout: None,
            write_timeout: None,
            max_connections: None,
            max_header_bytes: None,
            max_headers: None,
            max_uri_bytes: None,
            backlog: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    /// The SQLite file; `None` when not set (then the default, unless `url` is set).
    #[serde(default)]
    pub(super) path: Option<Spanned<PathBuf>>,
    /// A PostgreSQL server (`postgres://…`) instead of the SQLite file.
    #[serde(default)]
    pub(super) url: Option<Spanned<String>>,
    #[serde(default = "default_keep")]
    pub(super) max_items: Spanned<i64>,
    #[serde(default)]
    pub(super) max_age: Option<Spanned<String>>,
    /// With `url`: how soon a standby leads after the leader's connection is gone.
    #[serde(default)]
    pub(super) takeover: Option<Spanned<String>>,
    /// With `url`: how often a standby re-reads what it serves.
    #[serde(default)]
    pub(super) standby_refresh: Option<Spanned<String>>,
    /// With `url`: the PEM file of the CA that signed the server's certificate.
    #[serde(default)]
    pub(super) ca_file: Option<Spanned<PathBuf>>,
}

pub(super) fn default_store() -> PathBuf {
    "state/feedwerk.sqlite".into()
}
fn default_keep() -> Spanned<i64> {
    Spanned::new(0..0, 1000)
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            path: None,
            url: None,
            max_items: default_keep(),
            max_age: None,
            takeover: None,
            standby_refresh: None,
            ca_file: None,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFetch {
    pub(super) user_agent: Option<String>,
    pub(super) connect_timeout: Option<Spanned<String>>,
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) max_body_bytes: Option<Spanned<i64>>,
    pub(super) max_redirects: Option<Spanned<i64>>,
    pub(super) concurrency: Option<Spanned<i64>>,
    pub(super) per_host_concurrency: Option<Spanned<i64>>,
    pub(super) backoff_cap: Option<Spanned<String>>,
    pub(super) deadline: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDedupe {
    pub(super) near_jaccard: Option<Spanned<f64>>,
    pub(super) strong_jaccard: Option<Spanned<f64>>,
    pub(super) title_jaccard: Option<Spanned<f64>>,
    pub(super) teaser_containment: Option<Spanned<f64>>,
    pub(super) window_days: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub(super) id: Spanned<String>,
    pub(super) kind: Spanned<String>,
    #[serde(default)]
    pub(super) title: Option<String>,
    #[serde(default)]
    pub(super) path: Option<PathBuf>,
    #[serde(default)]
    pub(super) url: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) homepage: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) priority: Option<i32>,
    #[serde(default)]
    pub(super) language: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) timezone: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) schedule: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) encoding: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) allow_iframe_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) tags: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub(super) selectors: Option<Spanned<PageSelectors>>,
    #[serde(default)]
    pub(super) date_format: Option<Spanned<StringOrList>>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(super) enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    pub(super) fn into_vec(self) -> Vec<String> {
        match self {
            StringOrList::One(s) => vec![s],
            StringOrList::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChannel {
    pub(super) id: Spanned<String>,
    #[serde(default)]
    pub(super) title: Option<String>,
    #[serde(default)]
    pub(super) sources: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) tags: Vec<String>,
    #[serde(default)]
    pub(super) languages: Vec<String>,
    #[serde(default)]
    pub(super) max_items: Option<Spanned<i64>>,
}
