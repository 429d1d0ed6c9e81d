//! feedwerk: an RSS/Atom feed publisher and aggregator.
//!
//! Data flows one way through stages, each a module that owns one thing and hands the
//! next stage a type:
//!
//! ```text
//!  feeds/<source>/*.md ─┐
//!  partner feeds ───────┼─► fetch ─► source (decode, parse) ─► normalise ─► dedupe ─► store ─► render ─► publish ─► serve
//!  partner pages ───────┘  Fetched    ParsedFeed of Entry       Item         cluster    SQLite   bytes     files +   HTTP
//!                                                                                                         catalog
//! ```
//!
//! - [`config`]: `config.toml` → validated [`config::Config`] (errors name key and line),
//!   one constructor per section; cron expressions parsed once into [`schedule::Cron`].
//! - [`model`]: the vocabulary: [`model::Source`], [`model::Entry`] (untrusted, as read),
//!   [`model::Item`] (normalised, trusted), [`model::Channel`] (what we publish),
//!   [`model::SourceState`] (a source's fetch state, with its transitions), and the
//!   refresh reports ([`model::SourceReport`]) the CLI, daemon and metrics read.
//! - [`fetch`]: HTTP with conditional GET and limits → [`fetch::FetchOutcome`];
//!   [`reading`] says when a source's settings changed, so it is re-read, not answered 304.
//! - [`source`]: bytes or files → [`model::ParsedFeed`]; foreign parser types stay there.
//! - [`dates`]: every date rule (RFC 822/3339, German forms, zones, DST).
//! - [`normalise`]: `Entry` → `Item`: URLs, sanitised HTML, text, language, fingerprint.
//! - [`dedupe`]: which stored story a new item repeats.
//! - [`store`]: SQLite: items, published IDs, clusters, fetch state; [`identity`] is the
//!   rule that makes an item's published ID.
//! - [`render`]: channel documents as bytes (RSS, Atom, JSON Feed, HTML, OPML).
//! - [`publish`]: the publish stage, `publish::run(&Config, &Store, …)`: channel planning
//!   over [`model::ChannelKind`], which documents changed, archive pages (laid out by
//!   [`archive_plan`]), the file writer (checked, compressed, atomic), WebSub
//!   announcements.
//! - [`catalog`]: what the server reads: [`catalog::Catalog`] of [`catalog::Rendered`]
//!   documents and `/embed` lists, filled by `publish`, read by `serve`.
//! - [`serve`]: the HTTP server over the published catalog, `/healthz` and `/metrics`.
//! - [`metrics`]: Prometheus metrics and the health verdict.
//! - [`websub`]: tells a WebSub hub which feeds changed.
//! - [`upload`]: after publishing, uploads what changed in the output directory to
//!   object storage (`publish.target`, S3-compatible), deletes what is gone, records it.
//! - [`refresh`]: brings the store up to date: which sources run and why not, their
//!   fetches, the CPU-only prepare step, and the commit step (the only refresh code
//!   that writes the store); fetch-state transitions are methods of [`model::SourceState`].
//! - [`pipeline`]: the conductor, the only module that knows the order of the stages:
//!   open, refresh, publish, next wake-up.
//! - [`schedule`]: [`schedule::Cron`] on the wall clock without DST skips/doubles, jitter,
//!   back-off.
//! - [`daemon`]: process lifecycle: schedule, signals.
//!
//! Beside the pipeline, for operators: [`probe`] reads one URL or file through the same
//! fetch → source → normalise stages without storing anything; [`doctor`] explains what
//! it found, and [`import`] turns it (or a plain-text news listing) into local posts.

// No function longer than `clippy.toml`'s `too-many-lines-threshold` (120): a long
// function is a stage doing its neighbours' work (issue 15). `.ci/run` denies warnings.
#![warn(clippy::too_many_lines)]

pub mod archive_plan;
pub mod catalog;
pub mod config;
pub mod daemon;
pub mod dates;
pub mod db_url;
pub mod dedupe;
pub mod doctor;
pub mod fetch;
pub mod identity;
pub mod import;
pub mod metrics;
pub mod model;
pub mod normalise;
pub mod pipeline;
pub mod probe;
pub mod progress;
pub mod publish;
pub mod reading;
pub mod refresh;
pub mod render;
pub mod role;
pub mod schedule;
pub mod serve;
pub mod source;
pub mod standby;
pub mod store;
pub mod upload;
pub mod websub;
