//! Normalisation cost per item: URLs, sanitising, text, language, fingerprint.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use feedwerk::normalise::{self, Context};

fn normalise(c: &mut Criterion) {
    let cfg = common::config();
    let src = common::source(&cfg);
    let mut g = c.benchmark_group("normalise");
    for (name, bytes) in common::fixtures() {
        let parsed = common::parse(&bytes, src);
        let ctx = Context {
            source: src,
            feed_link: parsed.link.as_ref(),
            feed_language: parsed.language.as_deref(),
            tag_map: &cfg.tags,
            now: common::now(),
            back_catalogue: None,
        };
        g.throughput(Throughput::Elements(parsed.entries.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                for e in &parsed.entries {
                    black_box(normalise::normalise(black_box(e), &ctx).unwrap());
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, normalise);
criterion_main!(benches);
