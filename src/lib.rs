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
//!   [`model::Item`] (normalised, trusted), [`model::Channel`] (what we publish).
//! - [`fetch`]: HTTP with conditional GET and limits → [`fetch::FetchOutcome`];
//!   [`reading`] says when a source's settings changed, so it is re-read, not answered 304.
//! - [`source`]: bytes or files → [`model::ParsedFeed`]; foreign parser types stay there.
//! - [`dates`]: every date rule (RFC 822/3339, German forms, zones, DST).
//! - [`normalise`]: `Entry` → `Item`: URLs, sanitised HTML, text, language, fingerprint.
//! - [`dedupe`]: which stored story a new item repeats.
//! - [`store`]: SQLite: items, published IDs, clusters, fetch state; [`identity`] is the
//!   rule that makes an item's published ID.
//! - [`render`] and [`publish`]: channel documents, written atomically, served from memory;
//!   [`archive_plan`] lays out a channel's RFC 5005 archive pages.
//! - [`serve`]: the HTTP server over the published catalog, `/healthz` and `/metrics`.
//! - [`metrics`]: Prometheus metrics and the health verdict.
//! - [`websub`]: tells a WebSub hub which feeds changed.
//! - [`pipeline`]: the only module that knows the order of the stages.
//! - [`schedule`]: [`schedule::Cron`] on the wall clock without DST skips/doubles, jitter,
//!   back-off.
//! - [`daemon`]: process lifecycle: schedule, signals.
//!
//! Beside the pipeline, for operators: [`probe`] reads one URL or file through the same
//! fetch → source → normalise stages without storing anything; [`doctor`] explains what
//! it found, and [`import`] turns it (or a plain-text news listing) into local posts.

pub mod archive_plan;
pub mod config;
pub mod daemon;
pub mod dates;
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
pub mod render;
pub mod schedule;
pub mod serve;
pub mod source;
pub mod store;
pub mod websub;
