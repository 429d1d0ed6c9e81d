//! Shared set-up for the criterion benches: the committed fixture feeds, a config, and
//! normalised items made from them through the library's public API (no hand-built
//! items, so the benches measure what the pipeline really produces).
#![allow(dead_code)] // each bench binary uses a different part of this module

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use feedwerk::config::Config;
use feedwerk::model::{Item, ItemId, ParsedFeed, Source};
use feedwerk::normalise::{self, Context};
use feedwerk::source;

/// (fixture name, bytes). RSS 2.0 with `content:encoded`, Atom with HTML content, RSS 1.0
/// (RDF), and an ISO-8859-1 RSS 2.0 feed (the decoding path), 20 items each.
pub fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/fixtures");
    [
        "rss2-content-encoded-20-items.xml",
        "atom-html-20-items.xml",
        "rss1-rdf-20-items.xml",
        "rss2-iso-8859-1-20-items.xml",
    ]
    .into_iter()
    .map(|name| {
        let path: PathBuf = dir.join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        (name.trim_end_matches(".xml"), bytes)
    })
    .collect()
}

/// A deployment with one partner feed source, parsed by the real config loader.
pub fn config() -> Config {
    let text = r#"
[site]
title = "Bench"
base_url = "https://bench.example/news/"
language = "de"
timezone = "Europe/Berlin"

[store]
path = "bench.sqlite"

[[source]]
id = "partner"
kind = "feed"
title = "Partner"
url = "https://partner.example/feed.xml"
"#;
    Config::parse(text, Path::new("bench/config.toml")).expect("bench config is valid")
}

pub fn source(cfg: &Config) -> &Source {
    &cfg.sources[0]
}

/// A fixed "now", so benches do not depend on the wall clock.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap()
}

/// Decodes and parses one fixture the way the pipeline does.
pub fn parse(bytes: &[u8], src: &Source) -> ParsedFeed {
    let decoded = source::decode::decode_xml(bytes, None, None);
    let url = src.kind.url().cloned();
    source::feed::parse(&decoded.text, url.as_ref(), src.timezone, "bench").expect("fixture parses")
}

/// Every fixture's entries, normalised.
pub fn items(cfg: &Config) -> Vec<Item> {
    let src = source(cfg);
    let mut out = Vec::new();
    for (_, bytes) in fixtures() {
        let parsed = parse(&bytes, src);
        let ctx = Context {
            source: src,
            feed_link: parsed.link.as_ref(),
            feed_language: parsed.language.as_deref(),
            tag_map: &cfg.tags,
            now: now(),
            back_catalogue: None,
        };
        for e in &parsed.entries {
            out.push(normalise::normalise(e, &ctx).expect("fixture entries normalise"));
        }
    }
    out
}

/// `n` distinct items (new IDs, URLs and text hashes) cycling through the fixture items,
/// for stores of realistic size.
pub fn many_items(base: &[Item], n: usize) -> Vec<Item> {
    (0..n)
        .map(|i| {
            let mut it = base[i % base.len()].clone();
            let round = i / base.len();
            it.id = ItemId(format!("{}-{round}", it.id.0));
            it.canonical_url = it.canonical_url.map(|u| format!("{u}/{round}"));
            it.fingerprint.text_hash = format!("{}{round}", it.fingerprint.text_hash);
            it.published += chrono::Duration::seconds(round as i64);
            it
        })
        .collect()
}
