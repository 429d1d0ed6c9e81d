//! Rendering one channel of 50 items in each format; the publish write path per
//! document (render, check, compress when front-door, stage, one sync and rename per
//! pass), wide against narrow; the checks alone at each depth; and the compression of
//! a narrow document on request at the levels considered for it.

mod common;

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use feedwerk::model::{AlsoAt, Channel, ChannelFilter, ChannelKind, Format};
use feedwerk::publish::{self, Body, Coding, Document, Mode, Publisher, Reach};
use feedwerk::render::splice::{Assembled, Fragments, Splice};
use feedwerk::render::verify::{self, Depth};
use feedwerk::render::{self, DocKind, FeedDoc, Paging};
use feedwerk::store::{Store, StoredItem};

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
            item: item.into(),
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
        // The same document in a pass that rendered its items for another document
        // already: only the envelope is rendered, the fragments spliced in.
        let parts = render::parts(&doc, f, &mut Fragments::new(usize::MAX));
        g.bench_function(format!("{}_from_fragments", f.extension()), |b| {
            b.iter(|| render::assemble(black_box(&doc), f, &parts))
        });
    }
    g.finish();

    let atom = render::render(&doc, Format::Atom);
    let mut g = c.benchmark_group("precompress_50_items_atom");
    g.throughput(Throughput::Bytes(atom.len() as u64));
    g.bench_function("wide", |b| {
        b.iter(|| publish::precompress(black_box(&atom)))
    });
    for (name, coding) in [
        ("on_request_gzip", Coding::Gzip),
        ("on_request_br", Coding::Brotli),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| publish::on_request(black_box(&atom), coding))
        });
    }
    g.finish();

    // Levels a narrow document could be compressed at on request; sizes go to stderr.
    let mut g = c.benchmark_group("on_request_levels_50_items_atom");
    g.throughput(Throughput::Bytes(atom.len() as u64));
    for level in [1, 3, 6] {
        let gz = |data: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
            std::io::Write::write_all(&mut e, data).unwrap();
            e.finish().unwrap()
        };
        eprintln!("gzip {level}: {} of {} bytes", gz(&atom).len(), atom.len());
        g.bench_function(format!("gzip_{level}"), |b| b.iter(|| gz(black_box(&atom))));
    }
    for quality in [4, 5] {
        let br = |data: &[u8]| {
            let params = brotli::enc::BrotliEncoderParams {
                quality,
                lgwin: 17,
                size_hint: data.len(),
                ..Default::default()
            };
            let mut out = Vec::new();
            brotli::BrotliCompress(&mut &data[..], &mut out, &params).unwrap();
            out
        };
        eprintln!(
            "brotli {quality}: {} of {} bytes",
            br(&atom).len(),
            atom.len()
        );
        g.bench_function(format!("brotli_{quality}"), |b| {
            b.iter(|| br(black_box(&atom)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("verify_50_items_atom");
    g.throughput(Throughput::Bytes(atom.len() as u64));
    for (name, depth) in [("scan", Depth::Scan), ("reparse", Depth::Reparse)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                verify::check(
                    DocKind::Feed(Format::Atom),
                    black_box(&atom),
                    Some(50),
                    depth,
                )
            })
        });
    }
    // A spliced document: its fragments checked for the first document holding them
    // (fresh), or by an earlier one of the pass (the envelope and a comparison left).
    let checked = render::assemble(
        &doc,
        Format::Atom,
        &render::parts(&doc, Format::Atom, &mut Fragments::new(0)),
    );
    for (name, fresh) in [("spliced_fresh", true), ("spliced_checked", false)] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    if fresh {
                        render::assemble(
                            &doc,
                            Format::Atom,
                            &render::parts(&doc, Format::Atom, &mut Fragments::new(0)),
                        )
                    } else {
                        Assembled {
                            bytes: checked.bytes.clone(),
                            splice: checked.splice.as_ref().map(|s| Splice {
                                parts: s.parts.clone(),
                                ..*s
                            }),
                        }
                    }
                },
                |a| {
                    feedwerk::render::splice::check_spliced(
                        DocKind::Feed(Format::Atom),
                        &a.bytes,
                        a.splice.as_ref(),
                        Some(50),
                        Depth::Scan,
                    )
                    .unwrap()
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();

    // One publishing pass of DOCS changed documents (each rendered, checked, compressed
    // when wide, staged; then one sync and the renames), into a fresh directory. The
    // documents hold the same items, as tag channels share theirs: rendered and
    // checked for the first, spliced into the others.
    const DOCS: usize = 20;
    let mut g = c.benchmark_group("write_path_50_items_atom");
    g.throughput(Throughput::Elements(DOCS as u64));
    g.sample_size(20);
    for (name, reach) in [("wide", Reach::Wide), ("narrow", Reach::Narrow)] {
        let store = Store::in_memory("bench.example").unwrap();
        let mut round = 0i64;
        g.bench_function(name, |b| {
            b.iter_batched(
                || tempfile::tempdir().unwrap(),
                |dir| {
                    round += 1;
                    let now = common::now() + chrono::Duration::seconds(round);
                    let mut p = Publisher::start(dir.path(), &store, now, Mode::Files);
                    let mut fragments = Fragments::new(usize::MAX);
                    for i in 0..DOCS {
                        let parts = render::parts(&doc, Format::Atom, &mut fragments);
                        let doc = &doc;
                        p.add(Document {
                            path: format!("tags/t{i}.atom"),
                            kind: DocKind::Feed(Format::Atom),
                            content_type: Format::Atom.content_type(),
                            body: Body::Dated(Box::new(move |updated| {
                                render::assemble(&FeedDoc { updated, ..*doc }, Format::Atom, &parts)
                            })),
                            cache_control: "public, max-age=300",
                            items: Some(items.len()),
                            reach,
                        })
                        .unwrap();
                    }
                    let done = p.finish().unwrap();
                    assert_eq!(done.report.written.len(), DOCS);
                    dir
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
