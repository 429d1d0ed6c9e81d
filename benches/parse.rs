//! Parse throughput: bytes → decoded UTF-8 → adapter (feed-rs, or ours for RSS 1.0) →
//! `ParsedFeed`, per fixture format, and the pre-steps every XML document pays (compare
//! with `bench/run`'s end-to-end figure against sfeed).

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
    // What every XML document pays before its adapter runs since issue 17: the DTD and
    // HTML-entity passes and the Dublin Core pre-filter (compare with `parse/`).
    let mut g = c.benchmark_group("prepare");
    for (name, bytes) in common::fixtures() {
        let text = source::decode::decode_xml(&bytes, None, None).text;
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let e = source::entities::expand_internal(black_box(&text)).unwrap();
                let (t, _) = source::entities::repair_html_entities(&e.text);
                source::dc::worth_reading(&t, true)
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
