//! Deduplication cost as the store grows: 10k, 100k and 200k items, each run into a
//! fresh SQLite file through the same path a build takes (`Store::upsert_source_items`
//! with `Deduper::decide`), fingerprinting included. A fifth of the items repeat an
//! earlier story (same text under another title and URL, a few words changed, or the
//! same URL with tracking parameters), so candidate lookup and verification run too.
//!
//! Near-linear means: 10× the items costs about 10× the time (the issue allows ~12×).
//! Run with `cargo bench --bench dedupe`.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{criterion_group, BenchmarkId, Criterion};
use feedwerk::config::DedupeConfig;
use feedwerk::dedupe::Deduper;
use feedwerk::model::{DateSource, Item, ItemId, SourceId};
use feedwerk::normalise::{fingerprint, text};
use feedwerk::store::Store;

const SOURCES: usize = 100;
const BATCH: usize = 1000;

const WORDS: [&str; 64] = [
    "stadt",
    "prävention",
    "quartier",
    "polizei",
    "schule",
    "verein",
    "rathaus",
    "bürger",
    "jugend",
    "sicherheit",
    "netzwerk",
    "projekt",
    "beratung",
    "tagung",
    "förderung",
    "kommune",
    "nachbarschaft",
    "studie",
    "konzept",
    "fachkräfte",
    "integration",
    "gewalt",
    "ordnungsamt",
    "konferenz",
    "europa",
    "forum",
    "mitglieder",
    "versammlung",
    "webinar",
    "extremismus",
    "radikalisierung",
    "kriminalität",
    "städte",
    "landkreis",
    "verwaltung",
    "bericht",
    "handreichung",
    "programm",
    "ministerium",
    "justiz",
    "familie",
    "senioren",
    "verkehr",
    "licht",
    "platz",
    "park",
    "bahnhof",
    "innenstadt",
    "abend",
    "woche",
    "jahr",
    "haushalt",
    "mittel",
    "antrag",
    "beschluss",
    "rat",
    "ausschuss",
    "sitzung",
    "partner",
    "austausch",
    "strategie",
    "ziel",
    "ergebnis",
    "zukunft",
];

struct Lcg(u64);
impl Lcg {
    fn next(&mut self, m: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as usize % m
    }
}

fn story_text(n: usize) -> String {
    let mut r = Lcg(n as u64 * 0x9e37_79b9 + 1);
    let len = 60 + r.next(140);
    (0..len)
        .map(|_| WORDS[r.next(WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

fn make_item(i: usize, now: DateTime<Utc>) -> Item {
    let mut r = Lcg(i as u64 ^ 0xfeed);
    let source = format!("src{:03}", i % SOURCES);
    // A fifth of the items repeat an earlier story.
    let (story, url_story, edit) = if i >= 1000 && r.next(5) == 0 {
        let earlier = r.next(i);
        match r.next(3) {
            0 => (earlier, i, true), // near: another title and URL, a word changed
            1 => (earlier, earlier, false), // the same URL with tracking parameters
            _ => (earlier, i, false), // the same text under another URL
        }
    } else {
        (i, i, false)
    };
    let mut body = story_text(story);
    if edit {
        body = format!("{body} ergänzt");
    }
    let matching = text::for_matching(&body);
    let url = format!(
        "https://news{}.example/a/{url_story}?utm_source=x",
        url_story % 7
    );
    Item {
        id: ItemId(format!("{source}:{i}")),
        source: SourceId(source),
        guid: Some(format!("g{i}")),
        url: url::Url::parse(&url).ok(),
        source_link: Some(url.clone()),
        canonical_url: url::Url::parse(&url)
            .ok()
            .map(|u| feedwerk::normalise::url::canonical(&u)),
        title: (0..4)
            .map(|_| WORDS[r.next(WORDS.len())])
            .collect::<Vec<_>>()
            .join(" "),
        summary: String::new(),
        content_html: None,
        published: now - chrono::Duration::minutes(i as i64),
        updated: None,
        date_source: DateSource::Declared,
        authors: Vec::new(),
        tags: Vec::new(),
        language: Some("de".into()),
        first_seen: now,
        fingerprint: fingerprint::fingerprint(&matching),
        text: matching,
    }
}

fn deduper() -> Deduper {
    let priorities: HashMap<SourceId, i32> = (0..SOURCES)
        .map(|s| (SourceId(format!("src{s:03}")), 50))
        .collect();
    Deduper::new(DedupeConfig::default(), priorities)
}

fn bench_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

fn run(n: usize) -> usize {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(&dir.path().join("bench.sqlite"), "bench.example").unwrap();
    fill(&mut store, n)
}

/// Stores items `0..n` in batches of [`BATCH`], as a build stores its sources; returns
/// how many were duplicates.
fn fill(store: &mut Store, n: usize) -> usize {
    let deduper = deduper();
    let now = bench_now();
    let mut dups = 0;
    for start in (0..n).step_by(BATCH) {
        // One batch per source fetch, as a build stores them.
        let items: Vec<Item> = (start..(start + BATCH).min(n))
            .map(|i| make_item(i, now))
            .collect();
        let source = items[0].source.clone();
        let rep = store
            .upsert_source_items(&source, items, now, |c, it| deduper.decide(c, it))
            .unwrap();
        dups += rep.duplicates;
    }
    store.flush_dedupe_index().unwrap();
    dups
}

/// The refresh commit of one source bringing [`COMMIT_ITEMS`] new items (a fifth of
/// them repeating held stories) to a store already holding `held` items: what one
/// changed partner costs a cycle. Each iteration stores them in a group transaction
/// and rolls it back, so every iteration sees the same store.
fn commit_once(store: &mut Store, deduper: &Deduper, held: usize) -> usize {
    let now = bench_now();
    let items: Vec<Item> = (held..held + COMMIT_ITEMS)
        .map(|i| make_item(i, now))
        .collect();
    let source = items[0].source.clone();
    let r: Result<usize, Rollback> = store.in_transaction(|s| {
        let rep = s
            .upsert_source_items(&source, items, now, |c, it| deduper.decide(c, it))
            .map_err(|_| Rollback)?;
        assert_eq!(rep.new, COMMIT_ITEMS);
        Err(Rollback)
    });
    r.unwrap_err();
    COMMIT_ITEMS
}

/// Items a changed source brings in the commit bench.
const COMMIT_ITEMS: usize = 100;

/// Ends a bench transaction without keeping it.
#[derive(Debug)]
struct Rollback;

impl From<feedwerk::store::StoreError> for Rollback {
    fn from(_: feedwerk::store::StoreError) -> Rollback {
        Rollback
    }
}

fn bench_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("commit");
    g.sample_size(20);
    for held in [10_000, 50_000] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(&dir.path().join("bench.sqlite"), "bench.example").unwrap();
        fill(&mut store, held);
        let deduper = deduper();
        g.throughput(criterion::Throughput::Elements(COMMIT_ITEMS as u64));
        g.bench_function(format!("{COMMIT_ITEMS}-new-items-into-{held}-held"), |b| {
            b.iter(|| commit_once(&mut store, &deduper, held))
        });
    }
    g.finish();
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("dedupe");
    g.sample_size(10);
    g.warm_up_time(std::time::Duration::from_millis(1));
    for n in [10_000, 100_000, 200_000] {
        g.throughput(criterion::Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| run(n))
        });
    }
    g.finish();
}

criterion_group!(benches, bench, bench_commit);

/// `DEDUPE_ONCE=N cargo bench --bench dedupe`: one run of N items and nothing else,
/// for instruction counts (`valgrind --tool=callgrind target/release/deps/dedupe-*`),
/// which criterion's repeated samples would multiply. `COMMIT_ONCE=HELD`: fills a
/// store with HELD items, then runs the commit bench's step 10 times (compare the
/// instructions of `commit_once` under callgrind).
fn main() {
    if let Some(held) = std::env::var("COMMIT_ONCE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(&dir.path().join("bench.sqlite"), "bench.example").unwrap();
        fill(&mut store, held);
        let deduper = deduper();
        let n: usize = (0..10)
            .map(|_| commit_once(&mut store, &deduper, held))
            .sum();
        println!("{n} items committed (and rolled back) into {held} held");
        return;
    }
    if let Some(n) = std::env::var("DEDUPE_ONCE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        println!("{} duplicates among {n} items", run(n));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
