//! The incremental publish path as the store grows: a `build`'s publish (files, no
//! catalog) after one item of one source among 50 changed, with 2 000 and with 20 000
//! items held. What a one-changed publish costs should follow the change (the
//! combined channel, the source's own, its tags' and language's), not the history:
//! the two sizes should take about the same time (issue 16: within 1.2×).
//!
//! The stores are filled through `Store::upsert_source_items` (every item its own
//! story) and published once before measuring. Run with `cargo bench --bench publish`.
//!
//! `record-outputs`: what recording a cold medium build's 1 953 written documents in
//! the store costs after the last rename, one autocommit per document against one
//! transaction for the pass (`Store::save_output_states`).

mod common;

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use feedwerk::config::Config;
use feedwerk::dedupe::Decision;
use feedwerk::model::{Item, SourceId};
use feedwerk::publish::{self, Mode};
use feedwerk::store::Store;

const SOURCES: usize = 50;

/// A deployment of `SOURCES` partner feeds publishing into `out`.
fn config(out: &Path) -> Config {
    let mut text = format!(
        "[site]\ntitle = \"Bench\"\nbase_url = \"https://bench.example/news/\"\n\
         language = \"de\"\ntimezone = \"Europe/Berlin\"\n\n[publish]\noutput_dir = {:?}\n\n\
         [store]\npath = \"bench.sqlite\"\n\n",
        out.display().to_string()
    );
    for s in 0..SOURCES {
        text.push_str(&format!(
            "[[source]]\nid = \"p{s}\"\nkind = \"feed\"\ntitle = \"Partner {s}\"\n\
             url = \"https://p{s}.example/feed.xml\"\n\n"
        ));
    }
    Config::parse(&text, Path::new("bench/config.toml")).expect("bench config is valid")
}

/// `held` items spread over the sources, stored and published once.
fn published_store(held: usize, dir: &Path) -> (Config, Store, Vec<Item>) {
    let cfg = config(&dir.join("public"));
    let base = common::items(&common::config());
    let mut store = Store::open(&dir.join("store.sqlite"), &publish::authority(&cfg)).unwrap();
    let per_source = held / SOURCES;
    let mut last = Vec::new();
    for s in 0..SOURCES {
        let source = SourceId(format!("p{s}"));
        let items: Vec<Item> = common::many_items(&base, held)
            .into_iter()
            .skip(s * per_source)
            .take(per_source)
            .map(|mut it| {
                it.source = source.clone();
                it.id = feedwerk::model::ItemId(format!("p{s}:{}", it.id.0));
                it.canonical_url = it.canonical_url.map(|u| format!("{u}/p{s}"));
                it.fingerprint.text_hash = format!("{}p{s}", it.fingerprint.text_hash);
                it
            })
            .collect();
        if s == SOURCES / 2 {
            last = items.clone();
        }
        store
            .upsert_source_items(&source, items, common::now(), |_, _| Ok(Decision::New))
            .unwrap();
    }
    publish::run(&cfg, &store, common::now(), Mode::Files, None).unwrap();
    (cfg, store, last)
}

fn one_changed(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish-one-changed");
    group.sample_size(10);
    for held in [2_000, 20_000] {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, mut store, items) = published_store(held, dir.path());
        let source = items[0].source.clone();
        let mut round = 0u64;
        group.bench_function(BenchmarkId::from_parameter(held), |b| {
            b.iter(|| {
                // One item of one source edited, as a refresh stores it; then publish.
                round += 1;
                let mut edited = items.clone();
                edited[0].title = format!("{} ({round})", items[0].title);
                let now = common::now() + chrono::Duration::minutes(round as i64);
                store
                    .upsert_source_items(&source, edited, now, |_, _| Ok(Decision::New))
                    .unwrap();
                publish::run(&cfg, &store, now, Mode::Files, None).unwrap()
            });
        });
    }
    group.finish();
}

fn record_outputs(c: &mut Criterion) {
    let mut group = c.benchmark_group("record-outputs");
    group.sample_size(10);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store.sqlite"), "bench.example,2024").unwrap();
    let states: Vec<(String, String)> = (0..1953)
        .map(|i| (format!("tags/t{i}.rss"), format!("{i:064x}")))
        .collect();
    let mut round = 0i64;
    group.bench_function("one-by-one", |b| {
        b.iter(|| {
            round += 1;
            let at = common::now() + chrono::Duration::seconds(round);
            for (path, hash) in &states {
                store.save_output_state(path, hash, at).unwrap();
            }
        })
    });
    group.bench_function("one-transaction", |b| {
        b.iter(|| {
            round += 1;
            let at = common::now() + chrono::Duration::seconds(round);
            store.save_output_states(&states, at).unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, one_changed, record_outputs);
criterion_main!(benches);
