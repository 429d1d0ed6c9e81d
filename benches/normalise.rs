//! Normalisation cost per item: URLs, sanitising, text, language, fingerprint; and the
//! sub-steps on their own (the same fixture items), so a regression in one shows.

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use feedwerk::model::{ParsedFeed, TextKind};
use feedwerk::normalise::{self, fingerprint, html, text, Context};

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

/// The HTML bodies normalising reads: each entry's content, else its summary.
fn bodies(parsed: &ParsedFeed) -> Vec<String> {
    parsed
        .entries
        .iter()
        .filter_map(|e| e.content.as_ref().or(e.summary.as_ref()))
        .filter(|t| t.kind == TextKind::Html)
        .map(|t| t.body.clone())
        .collect()
}

/// Each sub-step over every body of one fixture (all four together: the sub-steps do
/// not depend on the feed format, and one group per step keeps the report short).
fn steps(c: &mut Criterion) {
    let cfg = common::config();
    let src = common::source(&cfg);
    let base = url::Url::parse("https://partner.example/news/item").unwrap();
    let raw: Vec<String> = common::fixtures()
        .iter()
        .flat_map(|(_, bytes)| bodies(&common::parse(bytes, src)))
        .collect();
    let sanitised: Vec<String> = raw
        .iter()
        .map(|h| html::sanitise(h, Some(&base), &[]))
        .collect();
    let texts: Vec<String> = sanitised.iter().map(|h| text::to_text(h)).collect();
    let matching: Vec<String> = texts.iter().map(|t| text::for_matching(t)).collect();
    let mut g = c.benchmark_group("normalise-step");
    g.throughput(Throughput::Elements(raw.len() as u64));
    g.bench_function("sanitise", |b| {
        b.iter(|| {
            for h in &raw {
                black_box(html::sanitise(black_box(h), Some(&base), &[]));
            }
        })
    });
    let hosts = vec!["www.youtube-nocookie.com".to_owned()];
    g.bench_function("sanitise-iframe-hosts", |b| {
        b.iter(|| {
            for h in &raw {
                black_box(html::sanitise(black_box(h), Some(&base), &hosts));
            }
        })
    });
    // The text of sanitised HTML without sanitising (summaries), where that is exact.
    g.bench_function("sanitised_text", |b| {
        b.iter(|| {
            for h in &raw {
                black_box(html::sanitised_text(black_box(h), Some(&base)));
            }
        })
    });
    g.bench_function("to_text", |b| {
        b.iter(|| {
            for h in &sanitised {
                black_box(text::to_text(black_box(h)));
            }
        })
    });
    g.bench_function("for_matching", |b| {
        b.iter(|| {
            for t in &texts {
                black_box(text::for_matching(black_box(t)));
            }
        })
    });
    // The text that needs NFKC: typographic ellipses and ligatures, as partners send.
    let not_nfkc: Vec<String> = texts.iter().map(|t| format!("{t} … ﬁnal")).collect();
    g.bench_function("for_matching-nfkc", |b| {
        b.iter(|| {
            for t in &not_nfkc {
                black_box(text::for_matching(black_box(t)));
            }
        })
    });
    g.bench_function("shingles", |b| {
        b.iter(|| {
            for t in &matching {
                black_box(fingerprint::shingles(black_box(t)));
            }
        })
    });
    // The language rule on the texts the fixtures declare (or not): a declaration the
    // function words leave standing, one they may overrule (detection runs), none.
    for (name, declared) in [
        ("language-declared-de", Some("de")),
        ("language-declared-en", Some("en")),
        ("language-undeclared", None),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                for t in &texts {
                    black_box(normalise::lang::choose(None, declared, black_box(t), None));
                }
            })
        });
    }
    g.bench_function("fingerprint", |b| {
        b.iter(|| {
            for t in &matching {
                black_box(fingerprint::fingerprint(black_box(t)));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, normalise, steps);
criterion_main!(benches);
