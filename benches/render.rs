//! Rendering one channel of 50 items in each format, and precompressing the Atom one
//! as a publishing pass does (gzip, and brotli for each [`Reach`]).

mod common;

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use feedwerk::model::{AlsoAt, Channel, ChannelFilter, ChannelKind, Format};
use feedwerk::publish::{self, Reach};
use feedwerk::render::{self, FeedDoc, Paging};
use feedwerk::store::StoredItem;

fn render(c: &mut Criterion) {
    let cfg = common::config();
    let base = common::items(&cfg);
    let mut items: Vec<StoredItem> = common::many_items(&base, 50)
        .into_iter()
        .enumerate()
        .map(|(i, item)| StoredItem {
            published_id: format!("tag:bench.example,2024-06-01:partner/{i}"),
            // Every fifth story was also published elsewhere.
            also_at: if i % 5 == 0 {
                vec![AlsoAt {
                    source: item.source.clone(),
                    source_title: "Other partner".into(),
                    title: item.title.clone(),
                    url: item.url.clone(),
                }]
            } else {
                Vec::new()
            },
            item,
        })
        .collect();
    items.sort_by_key(|s| std::cmp::Reverse(s.item.published));
    let channel = Channel {
        kind: ChannelKind::Combined,
        stem: String::new(),
        title: cfg.site.title.clone(),
        filter: ChannelFilter::default(),
        max_items: 50,
    };
    let sources: HashMap<_, _> = cfg
        .sources
        .iter()
        .map(|s| (s.id.clone(), s.clone()))
        .collect();
    let doc = FeedDoc {
        site: &cfg.site,
        channel: &channel,
        items: &items,
        sources: &sources,
        websub_hub: None,
        updated: common::now(),
        paging: Paging::Subscription { prev_archive: None },
    };
    let mut g = c.benchmark_group("render_50_items");
    g.throughput(Throughput::Elements(items.len() as u64));
    for f in Format::ALL {
        g.bench_function(f.extension(), |b| {
            b.iter(|| render::render(black_box(&doc), f))
        });
    }
    g.finish();

    let atom = render::render(&doc, Format::Atom);
    let mut g = c.benchmark_group("precompress_50_items_atom");
    g.throughput(Throughput::Bytes(atom.len() as u64));
    for (name, reach) in [("wide", Reach::Wide), ("narrow", Reach::Narrow)] {
        g.bench_function(name, |b| {
            b.iter(|| publish::precompress(black_box(&atom), reach))
        });
    }
    g.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
