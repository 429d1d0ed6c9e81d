//! Parse throughput: bytes → decoded UTF-8 → feed-rs adapter → `ParsedFeed`, per fixture
//! format (compare with `bench/run`'s end-to-end figure against sfeed).

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use feedwerk::source;

fn parse(c: &mut Criterion) {
    let cfg = common::config();
    let src = common::source(&cfg);
    let url = src.kind.url().cloned();
    let mut g = c.benchmark_group("parse");
    for (name, bytes) in common::fixtures() {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let decoded = source::decode::decode_xml(black_box(&bytes), None, None);
                source::feed::parse(&decoded.text, url.as_ref(), src.timezone, "bench").unwrap()
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("decode");
    for (name, bytes) in common::fixtures() {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| source::decode::decode_xml(black_box(&bytes), None, None))
        });
    }
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
