//! The floor of a cold `feedwerk build` (issue 16): only the work the build is required
//! to do, with the same libraries called directly and none of feedwerk's store, pipeline
//! or publisher, so its time is what a redesign could at best reach.
//!
//! Per run, single-threaded, each stage timed on its own:
//!
//! - read: every `*.xml` file of `CORPUS/feeds/` (or `CORPUS`) into memory; with
//!   `--fetch URL_PREFIX` (stage `fetch`) each is fetched with reqwest from
//!   `URL_PREFIX<name>.xml` instead, 32 at a time, as `feedwerk build` fetches;
//! - parse: feed-rs on the bytes (its quick-xml decodes the declared encoding);
//! - normalise: a prebuilt ammonia policy, the text of the sanitised HTML, NFKC only
//!   when the quick check says it is needed, the language (declared, or whatlang over
//!   feedwerk's 18 languages on a 1 KB prefix when there is none or the text's function
//!   words point elsewhere), the link without tracking parameters, a one-permutation
//!   MinHash (128 bins, densified) and its 32 LSH band keys;
//! - dedupe: hash maps of GUIDs, links, text hashes, titles and band keys; a band
//!   candidate is a copy when its estimated Jaccard is at least 0.8;
//! - store: one SQLite transaction of lean rows (the body once, the signature as a
//!   blob), WAL, `synchronous = FULL`: one durable commit;
//! - render: RSS 2.0, Atom 1.0 and JSON Feed for the combined channel and (unless
//!   `--combined-only`) one per source, per tag (≥ 3 items) and per language, the newest
//!   50 each; RFC 5005 archive pages of the combined channel (100 items, RSS and Atom);
//!   `index.html` and `sources.opml`;
//! - compress: gzip 6 and brotli 8 copies of the front-door documents (combined feeds,
//!   index, OPML), as feedwerk's `publish::compress` does;
//! - write: every file to a temp file, one `syncfs`, the renames, one fsync per directory
//!   (feedwerk's crash-safe order, `publish::files::commit`).
//!
//! ```sh
//! cargo build --release --example floor
//! target/release/examples/floor [--combined-only] [--fetch URL_PREFIX] [--threads N] CORPUS OUT_DIR
//! ```
//!
//! Prints one line per stage (`stage <name> <seconds>`) and the counts; `bench/floor`
//! runs it beside `feedwerk build` and the Python peer.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};
use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

const MAX_ITEMS: usize = 50;
const PAGE: usize = 100;
const TAG_MIN: usize = 3;
const BINS: usize = 128;
const BANDS: usize = 32;
const ROWS: usize = BINS / BANDS;
const SITE: &str = "https://bench.example/news/";

/// One normalised item: what dedupe, the store and the renderers need.
struct Item {
    source: u32,
    guid: String,
    link: String,
    title: String,
    date: DateTime<Utc>,
    author: Option<String>,
    tags: Vec<String>,
    lang: Option<String>,
    html: String,
    text_hash: u64,
    sig: [u32; BINS],
}

/// A rendered document: its path under the output directory and its bytes.
struct Doc {
    path: String,
    body: Vec<u8>,
    wide: bool,
}

/// What a run did, for the caller and the test.
#[derive(Debug, Default)]
pub struct Report {
    pub files: usize,
    pub bytes: usize,
    pub entries: usize,
    pub kept: usize,
    pub dups: usize,
    pub documents: usize,
    pub compressed: usize,
    pub stages: Vec<(&'static str, f64)>,
}

fn collect(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let feeds = dir.join("feeds");
    let dir = if feeds.is_dir() {
        feeds
    } else {
        dir.to_owned()
    };
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    out.retain(|p| p.extension().is_some_and(|e| e == "xml"));
    out.sort();
    Ok(out)
}

/// The whole floor run; `combined_only` publishes the combined channel alone.
pub fn run(
    corpus: &Path,
    out: &Path,
    combined_only: bool,
    fetch_from: Option<&str>,
    threads: usize,
) -> anyhow::Result<Report> {
    let mut rep = Report::default();
    let mut clock = Instant::now();
    let mut lap = |rep: &mut Report, name: &'static str| {
        rep.stages.push((name, clock.elapsed().as_secs_f64()));
        clock = Instant::now();
    };

    let paths = collect(corpus)?;
    let raw = match fetch_from {
        None => paths
            .iter()
            .map(|p| std::fs::read(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display())))
            .collect::<anyhow::Result<Vec<_>>>()?,
        Some(base) => fetch(base, &paths)?,
    };
    rep.bytes = raw.iter().map(Vec::len).sum();
    rep.files = raw.len();
    lap(
        &mut rep,
        if fetch_from.is_some() {
            "fetch"
        } else {
            "read"
        },
    );

    let parsed = par_map(raw.into_iter().zip(&paths).collect(), threads, |(b, p)| {
        feed_rs::parser::parse(&b[..]).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
    });
    let feeds = parsed.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    rep.entries = feeds.iter().map(|f| f.entries.len()).sum();
    lap(&mut rep, "parse");

    let norm = Normaliser::new();
    let per_feed = par_map(
        feeds.into_iter().enumerate().collect(),
        threads,
        |(si, f)| {
            let feed_lang = f.language.clone();
            f.entries
                .into_iter()
                .map(|e| norm.item(si as u32, e, feed_lang.as_deref()))
                .collect::<Vec<_>>()
        },
    );
    let items: Vec<Item> = per_feed.into_iter().flatten().collect();
    lap(&mut rep, "normalise");

    let dup_of = dedupe(&items);
    rep.dups = dup_of.iter().filter(|d| d.is_some()).count();
    rep.kept = items.len() - rep.dups;
    lap(&mut rep, "dedupe");

    std::fs::create_dir_all(out)?;
    store(&out.join("floor.sqlite"), &items, &dup_of)?;
    lap(&mut rep, "store");

    let mut kept: Vec<&Item> = items
        .iter()
        .zip(&dup_of)
        .filter(|(_, d)| d.is_none())
        .map(|(i, _)| i)
        .collect();
    kept.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| a.guid.cmp(&b.guid)));
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut docs = render_all(&kept, &names, combined_only, threads);
    rep.documents = docs.len();
    lap(&mut rep, "render");

    let mut extra = Vec::new();
    for d in docs.iter().filter(|d| d.wide) {
        extra.push(Doc {
            path: format!("{}.gz", d.path),
            body: gzip(&d.body),
            wide: false,
        });
        extra.push(Doc {
            path: format!("{}.br", d.path),
            body: brotli(&d.body),
            wide: false,
        });
    }
    rep.compressed = extra.len();
    docs.extend(extra);
    lap(&mut rep, "compress");

    write_all(out, &docs)?;
    lap(&mut rep, "write");
    Ok(rep)
}

/// GETs `BASE<name>.xml` for every corpus file, 32 at a time (feedwerk's bench
/// concurrency), with reqwest as feedwerk fetches.
fn fetch(base: &str, paths: &[PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = reqwest::Client::new();
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
        let mut tasks = Vec::with_capacity(paths.len());
        for p in paths {
            let url = format!("{base}{}", p.file_name().unwrap().to_string_lossy());
            let (client, sem) = (client.clone(), sem.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = sem.acquire().await?;
                let resp = client.get(&url).send().await?.error_for_status()?;
                let body = resp.bytes().await?;
                anyhow::Ok(body.to_vec())
            }));
        }
        let mut out = Vec::with_capacity(tasks.len());
        for t in tasks {
            out.push(t.await??);
        }
        Ok(out)
    })
}

/// The per-item work, with everything that can be built once built once.
struct Normaliser {
    policy: ammonia::Builder<'static>,
    detector: whatlang::Detector,
}

impl Normaliser {
    fn new() -> Self {
        Normaliser {
            policy: ammonia::Builder::default(),
            detector: whatlang::Detector::with_allowlist(LANGS.iter().map(|(l, _)| *l).collect()),
        }
    }

    fn item(&self, source: u32, e: feed_rs::model::Entry, feed_lang: Option<&str>) -> Item {
        let body = e
            .content
            .and_then(|c| c.body)
            .or_else(|| e.summary.map(|s| s.content))
            .unwrap_or_default();
        let html = self.policy.clean(&body).to_string();
        let mut text = text_of(&html);
        if is_nfkc_quick(text.chars()) != IsNormalized::Yes {
            text = text.nfkc().collect();
        }
        let title = e.title.map(|t| t.content).unwrap_or_default();
        let lang = self.language(e.language.as_deref().or(feed_lang), &text);
        let link = e
            .links
            .first()
            .map(|l| clean_link(&l.href))
            .unwrap_or_default();
        let matching = text.to_lowercase();
        Item {
            source,
            text_hash: hash_bytes(matching.as_bytes()),
            sig: minhash(&matching),
            guid: e.id,
            link,
            title,
            date: e
                .published
                .or(e.updated)
                .unwrap_or_else(|| Utc.timestamp_opt(0, 0).unwrap()),
            author: e.authors.into_iter().next().and_then(|p| p.name),
            tags: e.categories.into_iter().map(|c| c.term).collect(),
            lang,
            html,
        }
    }

    /// The declaration, unless function words of another language outnumber the
    /// declared one's in the text's first kilobyte: then whatlang decides, as it does
    /// when nothing is declared.
    fn language(&self, declared: Option<&str>, text: &str) -> Option<String> {
        let prefix = &text[..floor_char(text, 1024)];
        let declared = declared.map(|d| d.split(['-', '_']).next().unwrap_or(d).to_lowercase());
        if let Some(d) = &declared {
            let counts = function_words(prefix);
            let own = FUNCTION_WORDS
                .iter()
                .position(|(l, _)| l == d)
                .map_or(0, |i| counts[i]);
            if counts.iter().all(|&c| c <= own.max(2)) {
                return declared;
            }
        }
        let found = self.detector.detect(prefix).filter(|i| i.is_reliable());
        found
            .and_then(|i| LANGS.iter().find(|(l, _)| *l == i.lang()))
            .map(|(_, code)| (*code).to_owned())
            .or(declared)
    }
}

/// feedwerk's languages (`normalise::lang`), with their tags.
const LANGS: [(whatlang::Lang, &str); 18] = {
    use whatlang::Lang::*;
    [
        (Deu, "de"),
        (Eng, "en"),
        (Fra, "fr"),
        (Spa, "es"),
        (Ita, "it"),
        (Nld, "nl"),
        (Pol, "pl"),
        (Por, "pt"),
        (Swe, "sv"),
        (Dan, "da"),
        (Ces, "cs"),
        (Tur, "tr"),
        (Rus, "ru"),
        (Ukr, "uk"),
        (Ell, "el"),
        (Hun, "hu"),
        (Ron, "ro"),
        (Fin, "fi"),
    ]
};

const FUNCTION_WORDS: [(&str, &[&str]); 5] = [
    (
        "de",
        &["der", "die", "und", "das", "nicht", "mit", "den", "ist"],
    ),
    (
        "en",
        &["the", "and", "of", "to", "is", "with", "that", "for"],
    ),
    (
        "fr",
        &["le", "la", "les", "et", "des", "est", "une", "dans"],
    ),
    ("es", &["el", "los", "las", "y", "del", "es", "una", "por"]),
    (
        "nl",
        &["het", "een", "van", "en", "is", "niet", "dat", "voor"],
    ),
];

fn function_words(text: &str) -> [usize; 5] {
    let mut n = [0; 5];
    for w in text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
    {
        for (i, (_, words)) in FUNCTION_WORDS.iter().enumerate() {
            if words.iter().any(|f| f.eq_ignore_ascii_case(w)) {
                n[i] += 1;
            }
        }
    }
    n
}

fn floor_char(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The text of ammonia's output: it is serialised HTML (tags closed, `&`, `<`, `>`
/// and non-breaking spaces escaped), so stripping tags and unescaping those is exact.
fn text_of(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        push_unescaped(&mut out, &rest[..lt]);
        out.push(' ');
        rest = match rest[lt..].find('>') {
            Some(gt) => &rest[lt + gt + 1..],
            None => "",
        };
    }
    push_unescaped(&mut out, rest);
    let mut collapsed = String::with_capacity(out.len());
    for w in out.split_whitespace() {
        if !collapsed.is_empty() {
            collapsed.push(' ');
        }
        collapsed.push_str(w);
    }
    collapsed
}

fn push_unescaped(out: &mut String, s: &str) {
    if !s.contains('&') {
        out.push_str(s);
        return;
    }
    out.push_str(
        &s.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&nbsp;", "\u{a0}")
            .replace("&amp;", "&"),
    );
}

/// Drops the fragment, `utm_*`/`mc_*` and click-id parameters, `www.` and the scheme.
fn clean_link(href: &str) -> String {
    let Ok(mut u) = url::Url::parse(href) else {
        return href.to_owned();
    };
    u.set_fragment(None);
    if u.query().is_some() {
        let kept: Vec<(String, String)> = u
            .query_pairs()
            .filter(|(k, _)| {
                !(k.starts_with("utm_")
                    || k.starts_with("mc_")
                    || ["fbclid", "gclid"].contains(&&**k))
            })
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            u.set_query(None);
        } else {
            u.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    let host = u
        .host_str()
        .unwrap_or("")
        .trim_start_matches("www.")
        .to_owned();
    format!(
        "//{host}{}{}",
        u.path(),
        u.query().map(|q| format!("?{q}")).unwrap_or_default()
    )
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn hash_bytes(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for chunk in b.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = mix(h ^ u64::from_le_bytes(w));
    }
    h
}

/// One-permutation MinHash of word 3-shingles with rotation densification.
fn minhash(text: &str) -> [u32; BINS] {
    let words: Vec<u64> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| hash_bytes(w.as_bytes()))
        .collect();
    let mut bins = [u32::MAX; BINS];
    let mut filled = [false; BINS];
    for s in words.windows(3.min(words.len().max(1))) {
        let h = mix(s.iter().fold(0u64, |a, w| a.rotate_left(21) ^ w));
        let bin = (h >> 57) as usize % BINS;
        let v = h as u32;
        if v <= bins[bin] {
            bins[bin] = v;
            filled[bin] = true;
        }
    }
    if filled.iter().any(|f| *f) {
        for i in 0..BINS {
            let mut j = i;
            let mut step = 0u32;
            while !filled[j] {
                j = (j + 1) % BINS;
                step += 1;
            }
            if j != i {
                bins[i] = bins[j].wrapping_add(step.wrapping_mul(0x9e37_79b9));
            }
        }
    }
    bins
}

fn band_keys(sig: &[u32; BINS]) -> impl Iterator<Item = u64> + '_ {
    (0..BANDS).map(move |b| {
        let rows = &sig[b * ROWS..(b + 1) * ROWS];
        mix(rows
            .iter()
            .fold(b as u64, |a, r| a.rotate_left(17) ^ u64::from(*r)))
    })
}

/// First seen wins: an item is a copy of a kept one with the same GUID, link, text,
/// or (same title or a shared band) an estimated Jaccard of at least 0.8.
fn dedupe(items: &[Item]) -> Vec<Option<u32>> {
    let mut by_guid: HashMap<&str, u32> = HashMap::with_capacity(items.len());
    let mut by_link: HashMap<&str, u32> = HashMap::with_capacity(items.len());
    let mut by_text: HashMap<u64, u32> = HashMap::with_capacity(items.len());
    let mut by_title: HashMap<u64, Vec<u32>> = HashMap::with_capacity(items.len());
    let mut by_band: HashMap<u64, Vec<u32>> = HashMap::with_capacity(items.len() * BANDS);
    let similar = |a: &Item, b: &Item| {
        a.sig.iter().zip(&b.sig).filter(|(x, y)| x == y).count() * 10 >= BINS * 8
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let title_key = hash_bytes(it.title.to_lowercase().as_bytes());
        let mut dup = by_guid
            .get(it.guid.as_str())
            .or_else(|| {
                by_link
                    .get(it.link.as_str())
                    .filter(|_| !it.link.is_empty())
            })
            .or_else(|| by_text.get(&it.text_hash))
            .copied();
        if dup.is_none() {
            dup = by_title
                .get(&title_key)
                .into_iter()
                .flatten()
                .chain(band_keys(&it.sig).flat_map(|k| by_band.get(&k).into_iter().flatten()))
                .copied()
                .find(|&c| similar(it, &items[c as usize]));
        }
        if dup.is_none() {
            let id = i as u32;
            by_guid.insert(&it.guid, id);
            if !it.link.is_empty() {
                by_link.insert(&it.link, id);
            }
            by_text.insert(it.text_hash, id);
            by_title.entry(title_key).or_default().push(id);
            for k in band_keys(&it.sig) {
                by_band.entry(k).or_default().push(id);
            }
        }
        out.push(dup);
    }
    out
}

/// Lean rows in one transaction: the body once, the signature as a blob, copies as a
/// reference to their original.
fn store(path: &Path, items: &[Item], dup_of: &[Option<u32>]) -> rusqlite::Result<()> {
    let _ = std::fs::remove_file(path);
    let mut db = rusqlite::Connection::open(path)?;
    db.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE items (id INTEGER PRIMARY KEY, source INTEGER NOT NULL, guid TEXT NOT NULL,
           link TEXT NOT NULL, title TEXT NOT NULL, date INTEGER NOT NULL, lang TEXT,
           tags TEXT NOT NULL, author TEXT, body TEXT, sig BLOB, dup_of INTEGER);
         CREATE INDEX items_guid ON items (source, guid);",
    )?;
    let tx = db.transaction()?;
    {
        let mut ins = tx.prepare(
            "INSERT INTO items (id, source, guid, link, title, date, lang, tags, author, body, sig, dup_of)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        let mut sig = Vec::with_capacity(BINS * 4);
        for (i, (it, dup)) in items.iter().zip(dup_of).enumerate() {
            sig.clear();
            sig.extend(it.sig.iter().flat_map(|v| v.to_le_bytes()));
            let kept = dup.is_none();
            ins.execute(rusqlite::params![
                i as i64,
                it.source,
                it.guid,
                it.link,
                it.title,
                it.date.timestamp(),
                it.lang,
                it.tags.join("\u{1f}"),
                it.author,
                kept.then_some(it.html.as_str()),
                kept.then_some(&sig[..]),
                dup,
            ])?;
        }
    }
    tx.commit()
}

/// A channel: its path stem, title and items (newest first).
struct Chan<'a> {
    stem: String,
    title: String,
    items: Vec<&'a Item>,
}

fn render_all(kept: &[&Item], names: &[String], combined_only: bool, threads: usize) -> Vec<Doc> {
    let mut chans = vec![Chan {
        stem: String::new(),
        title: "feedwerk bench".into(),
        items: kept.iter().take(MAX_ITEMS).copied().collect(),
    }];
    if !combined_only {
        let mut by_source: Vec<Vec<&Item>> = vec![Vec::new(); names.len()];
        let mut by_tag: BTreeMap<String, (String, Vec<&Item>)> = BTreeMap::new();
        let mut by_lang: BTreeMap<String, Vec<&Item>> = BTreeMap::new();
        for it in kept {
            by_source[it.source as usize].push(it);
            for t in &it.tags {
                let s = slug::slugify(t);
                if !s.is_empty() {
                    by_tag
                        .entry(s)
                        .or_insert_with(|| (t.clone(), Vec::new()))
                        .1
                        .push(it);
                }
            }
            if let Some(l) = &it.lang {
                by_lang.entry(l.clone()).or_default().push(it);
            }
        }
        for (name, items) in names.iter().zip(by_source) {
            chans.push(Chan {
                stem: format!("sources/{name}"),
                title: format!("feedwerk bench – {name}"),
                items,
            });
        }
        for (slug, (tag, items)) in by_tag.into_iter().filter(|(_, (_, v))| v.len() >= TAG_MIN) {
            chans.push(Chan {
                stem: format!("tags/{slug}"),
                title: format!("feedwerk bench – {tag}"),
                items,
            });
        }
        for (lang, items) in by_lang {
            chans.push(Chan {
                stem: format!("lang/{lang}"),
                title: format!("feedwerk bench – {lang}"),
                items,
            });
        }
    }
    let mut docs: Vec<Doc> = par_map(chans.iter().enumerate().collect(), threads, |(n, ch)| {
        channel_docs(n, ch)
    })
    .into_iter()
    .flatten()
    .collect();
    // RFC 5005 archive pages of the combined channel: oldest items on page 1.
    let oldest_first: Vec<&Item> = kept.iter().rev().copied().collect();
    let pages: Vec<&[&Item]> = oldest_first.chunks(PAGE).collect();
    for (i, page) in pages.iter().enumerate() {
        let n = i + 1;
        let newest: Vec<&Item> = page.iter().rev().copied().collect();
        let mut links = vec![("current", format!("{SITE}atom.xml"))];
        if n > 1 {
            links.push(("prev-archive", format!("{SITE}archive/{}.atom", n - 1)));
        }
        if n < pages.len() {
            links.push(("next-archive", format!("{SITE}archive/{}.atom", n + 1)));
        }
        let title = format!("feedwerk bench – archive {n}");
        docs.push(Doc {
            body: rss(&title, &newest, &links),
            path: format!("archive/{n}.rss"),
            wide: false,
        });
        docs.push(Doc {
            body: atom(&title, &newest, &links),
            path: format!("archive/{n}.atom"),
            wide: false,
        });
    }
    docs.push(Doc {
        body: index_html(&chans[0].items),
        path: "index.html".into(),
        wide: true,
    });
    docs.push(Doc {
        body: opml(names),
        path: "sources.opml".into(),
        wide: true,
    });
    docs
}

/// The three subscription documents of channel `n` (0 is the combined channel).
fn channel_docs(n: usize, ch: &Chan) -> Vec<Doc> {
    let mut docs = Vec::with_capacity(3);
    let items = &ch.items[..ch.items.len().min(MAX_ITEMS)];
    let base = if ch.stem.is_empty() {
        String::new()
    } else {
        format!("{}.", ch.stem)
    };
    let (rss_p, atom_p, json_p) = if n == 0 {
        (
            "rss.xml".to_owned(),
            "atom.xml".to_owned(),
            "feed.json".to_owned(),
        )
    } else {
        (
            format!("{base}rss"),
            format!("{base}atom"),
            format!("{base}json"),
        )
    };
    let links = vec![("self", format!("{SITE}{atom_p}"))];
    docs.push(Doc {
        body: rss(&ch.title, items, &links),
        path: rss_p,
        wide: n == 0,
    });
    docs.push(Doc {
        body: atom(&ch.title, items, &links),
        path: atom_p,
        wide: n == 0,
    });
    docs.push(Doc {
        body: json_feed(&ch.title, items),
        path: json_p,
        wide: n == 0,
    });
    docs
}

/// `f` over `input` on `threads` scoped threads, in contiguous chunks, order kept.
fn par_map<T: Send, R: Send>(input: Vec<T>, threads: usize, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    if threads <= 1 || input.len() < 2 {
        return input.into_iter().map(f).collect();
    }
    let chunk = input.len().div_ceil(threads);
    let mut chunks: Vec<Vec<T>> = Vec::new();
    let mut it = input.into_iter().peekable();
    while it.peek().is_some() {
        chunks.push(it.by_ref().take(chunk).collect());
    }
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|c| s.spawn(move || c.into_iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    })
}

fn rss(title: &str, items: &[&Item], links: &[(&str, String)]) -> Vec<u8> {
    use rss::extension::atom::{AtomExtension, Link};
    let items: Vec<rss::Item> = items
        .iter()
        .map(|it| rss::Item {
            title: Some(it.title.clone()),
            link: Some(format!("https:{}", it.link)),
            description: Some(it.html.clone()),
            author: it.author.clone(),
            categories: it
                .tags
                .iter()
                .map(|t| rss::Category {
                    name: t.clone(),
                    domain: None,
                })
                .collect(),
            guid: Some(rss::Guid {
                value: it.guid.clone(),
                permalink: false,
            }),
            pub_date: Some(it.date.to_rfc2822()),
            ..Default::default()
        })
        .collect();
    let ch = rss::Channel {
        title: title.to_owned(),
        link: SITE.to_owned(),
        description: title.to_owned(),
        language: Some("de".into()),
        items,
        atom_ext: Some(AtomExtension {
            links: links
                .iter()
                .map(|(rel, href)| Link {
                    rel: (*rel).into(),
                    href: href.clone(),
                    ..Default::default()
                })
                .collect(),
        }),
        ..Default::default()
    };
    ch.write_to(Vec::with_capacity(64 * 1024))
        .expect("in-memory")
}

fn atom(title: &str, items: &[&Item], links: &[(&str, String)]) -> Vec<u8> {
    use atom_syndication as a;
    let updated = items
        .first()
        .map_or_else(|| Utc.timestamp_opt(0, 0).unwrap(), |i| i.date);
    let entries: Vec<a::Entry> = items
        .iter()
        .map(|it| a::Entry {
            title: a::Text::plain(it.title.clone()),
            id: it.guid.clone(),
            updated: it.date.fixed_offset(),
            published: Some(it.date.fixed_offset()),
            authors: it
                .author
                .iter()
                .map(|n| a::Person {
                    name: n.clone(),
                    ..Default::default()
                })
                .collect(),
            categories: it
                .tags
                .iter()
                .map(|t| a::Category {
                    term: t.clone(),
                    ..Default::default()
                })
                .collect(),
            links: vec![a::Link {
                href: format!("https:{}", it.link),
                rel: "alternate".into(),
                ..Default::default()
            }],
            content: Some(a::Content {
                value: Some(it.html.clone()),
                content_type: Some("html".into()),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let feed = a::Feed {
        title: a::Text::plain(title.to_owned()),
        id: format!("{SITE}{}", slug::slugify(title)),
        updated: updated.fixed_offset(),
        links: links
            .iter()
            .map(|(rel, href)| a::Link {
                href: href.clone(),
                rel: (*rel).into(),
                ..Default::default()
            })
            .collect(),
        entries,
        ..Default::default()
    };
    feed.write_to(Vec::with_capacity(64 * 1024))
        .expect("in-memory")
}

fn json_feed(title: &str, items: &[&Item]) -> Vec<u8> {
    let items: Vec<serde_json::Value> = items
        .iter()
        .map(|it| {
            serde_json::json!({
                "id": it.guid, "url": format!("https:{}", it.link), "title": it.title,
                "content_html": it.html, "date_published": it.date.to_rfc3339(),
                "tags": it.tags, "language": it.lang,
                "authors": it.author.iter().map(|n| serde_json::json!({"name": n})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let doc = serde_json::json!({
        "version": "https://jsonfeed.org/version/1.1", "title": title, "home_page_url": SITE,
        "items": items,
    });
    serde_json::to_vec(&doc).expect("in-memory")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn index_html(items: &[&Item]) -> Vec<u8> {
    let mut s = String::from("<!DOCTYPE html><html lang=\"de\"><head><meta charset=\"utf-8\"><title>Nachrichten</title></head><body><main>");
    for it in items {
        s.push_str(&format!(
            "<article><h2><a href=\"https:{}\">{}</a></h2><time>{}</time>{}</article>",
            esc(&it.link),
            esc(&it.title),
            it.date.to_rfc3339(),
            it.html
        ));
    }
    s.push_str("</main></body></html>");
    s.into_bytes()
}

fn opml(names: &[String]) -> Vec<u8> {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><opml version=\"2.0\"><head><title>Quellen</title></head><body>");
    for n in names {
        s.push_str(&format!(
            "<outline type=\"rss\" text=\"{0}\" xmlUrl=\"{SITE}sources/{0}.rss\"/>",
            esc(n)
        ));
    }
    s.push_str("</body></opml>");
    s.into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::new(6),
    );
    enc.write_all(data).expect("in-memory");
    enc.finish().expect("in-memory")
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let lgwin = (usize::BITS - data.len().max(1).leading_zeros()).clamp(17, 22) as i32;
    let params = brotli::enc::BrotliEncoderParams {
        quality: 8,
        lgwin,
        size_hint: data.len(),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(data.len() / 4 + 64);
    brotli::BrotliCompress(&mut &data[..], &mut out, &params).expect("in-memory");
    out
}

/// feedwerk's crash-safe order (`publish::files::commit`) with the fewest syncs: every
/// document to a temp file beside its place, one `syncfs` for all of them, then the
/// renames, then one fsync per directory so the renames are durable too.
fn write_all(out: &Path, docs: &[Doc]) -> std::io::Result<()> {
    let mut staged = Vec::with_capacity(docs.len());
    let mut dirs: Vec<PathBuf> = Vec::new();
    for d in docs {
        let dest = out.join(&d.path);
        let dir = dest.parent().expect("under out").to_owned();
        if !dirs.contains(&dir) {
            std::fs::create_dir_all(&dir)?;
            dirs.push(dir.clone());
        }
        let tmp = dir.join(format!(
            ".{}.tmp",
            dest.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&tmp, &d.body)?;
        staged.push((tmp, dest));
    }
    let f = std::fs::File::open(out)?;
    // SAFETY: syncfs on a file descriptor we own and keep open for the call.
    if unsafe { libc::syncfs(std::os::unix::io::AsRawFd::as_raw_fd(&f)) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    for (tmp, dest) in &staged {
        std::fs::rename(tmp, dest)?;
    }
    for dir in &dirs {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let combined_only = args.iter().any(|a| a == "--combined-only");
    args.retain(|a| a != "--combined-only");
    let threads = match args.iter().position(|a| a == "--threads") {
        Some(i) => match args
            .drain(i..(i + 2).min(args.len()))
            .nth(1)
            .and_then(|n| n.parse().ok())
        {
            Some(n) => n,
            None => {
                eprintln!("floor: --threads needs a number");
                return std::process::ExitCode::from(2);
            }
        },
        None => 1,
    };
    let fetch_from = args
        .iter()
        .position(|a| a == "--fetch")
        .map(|i| args.drain(i..i + 2).nth(1));
    let fetch_from = match fetch_from {
        Some(Some(base)) => Some(base),
        Some(None) => {
            eprintln!("floor: --fetch needs a URL prefix");
            return std::process::ExitCode::from(2);
        }
        None => None,
    };
    let [corpus, out] = &args[..] else {
        eprintln!(
            "usage: floor [--combined-only] [--fetch URL_PREFIX] [--threads N] CORPUS OUT_DIR"
        );
        return std::process::ExitCode::from(2);
    };
    let start = Instant::now();
    match run(
        Path::new(corpus),
        Path::new(out),
        combined_only,
        fetch_from.as_deref(),
        threads,
    ) {
        Ok(r) => {
            for (name, s) in &r.stages {
                println!("stage {name} {s:.4}");
            }
            println!("total {:.4}", start.elapsed().as_secs_f64());
            println!(
                "files {} bytes {} entries {} kept {} dups {} documents {} compressed {}",
                r.files, r.bytes, r.entries, r.kept, r.dups, r.documents, r.compressed
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("floor: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/floor");

    fn parsed(path: &Path) -> feed_rs::model::Feed {
        let bytes = std::fs::read(path).unwrap();
        feed_rs::parser::parse(&bytes[..]).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files(&p, out);
            } else {
                out.push(p);
            }
        }
    }

    /// The fixture (gen-corpus, 4 sources × 12 items: RSS 2.0, RDF, Atom, one
    /// ISO-8859-1 file; 4 copies by tracking parameters, scheme and near-identical text)
    /// goes through every stage: every entry stored, exactly the labelled copies
    /// dropped, every document parses, the compressed copies hold the same bytes.
    #[test]
    fn floor_does_the_whole_work_on_the_fixture_corpus() {
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(Path::new(FIXTURE).join("manifest.json")).unwrap(),
        )
        .unwrap();
        let total = manifest["totals"]["items"].as_u64().unwrap() as usize;
        let labelled = manifest["totals"]["duplicates"].as_u64().unwrap() as usize;
        let out = tempfile::tempdir().unwrap();
        let rep = run(Path::new(FIXTURE), out.path(), false, None, 1).unwrap();
        assert_eq!((rep.files, rep.entries), (4, total));
        assert_eq!(rep.dups, labelled, "{rep:?}");
        assert_eq!(rep.kept, total - labelled);

        let db = rusqlite::Connection::open(out.path().join("floor.sqlite")).unwrap();
        let (rows, bodies): (i64, i64) = db
            .query_row("SELECT count(*), count(body) FROM items", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((rows as usize, bodies as usize), (total, rep.kept));

        let combined = parsed(&out.path().join("rss.xml"));
        assert_eq!(combined.entries.len(), rep.kept.min(MAX_ITEMS));
        assert!(combined
            .entries
            .iter()
            .all(|e| e.content.is_some() || e.summary.is_some()));
        assert_eq!(
            parsed(&out.path().join("atom.xml")).entries.len(),
            rep.kept.min(MAX_ITEMS)
        );
        assert_eq!(
            parsed(&out.path().join("feed.json")).entries.len(),
            rep.kept.min(MAX_ITEMS)
        );

        let mut all = Vec::new();
        files(out.path(), &mut all);
        let (mut archived, mut feeds, mut sources) = (0, 0, 0);
        for p in &all {
            let name = p.to_string_lossy().into_owned();
            let ext = p.extension().unwrap().to_string_lossy().into_owned();
            match ext.as_str() {
                "rss" | "atom" | "json" | "xml" => {
                    let f = parsed(p);
                    feeds += 1;
                    if name.contains("/archive/") && ext == "atom" {
                        archived += f.entries.len();
                    }
                    if name.contains("/sources/") {
                        sources += 1;
                    }
                }
                "gz" | "br" => {
                    let original = std::fs::read(p.with_extension("")).unwrap();
                    let mut copy = Vec::new();
                    let raw = std::fs::read(p).unwrap();
                    if ext == "gz" {
                        flate2::read::GzDecoder::new(&raw[..])
                            .read_to_end(&mut copy)
                            .unwrap();
                    } else {
                        brotli::Decompressor::new(&raw[..], 4096)
                            .read_to_end(&mut copy)
                            .unwrap();
                    }
                    assert_eq!(copy, original, "{name}");
                }
                _ => {}
            }
        }
        assert_eq!(archived, rep.kept, "every kept item is on one archive page");
        assert_eq!(sources, 4 * 3);
        assert!(feeds >= 3 + 12 + 2, "{feeds} feeds");
        assert!(!all.iter().any(|p| p.to_string_lossy().ends_with(".tmp")));
    }

    #[test]
    fn combined_only_writes_the_combined_channel_and_its_archive() {
        let out = tempfile::tempdir().unwrap();
        let rep = run(Path::new(FIXTURE), out.path(), true, None, 1).unwrap();
        assert!(!out.path().join("sources").exists() && !out.path().join("tags").exists());
        let pages = rep.kept.div_ceil(PAGE);
        assert_eq!(rep.documents, 3 + 2 * pages + 2);
        assert_eq!(rep.compressed, 2 * 5);
    }

    /// `--fetch`: the same files over HTTP (a one-request-per-connection server on
    /// 127.0.0.1) give the same run as reading them.
    #[test]
    fn fetching_the_files_gives_the_same_run_as_reading_them() {
        use std::io::BufRead;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        let feeds = Path::new(FIXTURE).join("feeds");
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let mut conn = conn.unwrap();
                let mut line = String::new();
                std::io::BufReader::new(&conn).read_line(&mut line).unwrap();
                let name = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap()
                    .trim_start_matches('/')
                    .to_owned();
                let body = std::fs::read(feeds.join(name)).unwrap();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                conn.write_all(head.as_bytes()).unwrap();
                conn.write_all(&body).unwrap();
            }
        });
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let read = run(Path::new(FIXTURE), a.path(), true, None, 1).unwrap();
        let fetched = run(Path::new(FIXTURE), b.path(), true, Some(&base), 1).unwrap();
        assert_eq!(fetched.stages[0].0, "fetch");
        assert_eq!(
            (
                fetched.bytes,
                fetched.entries,
                fetched.kept,
                fetched.documents
            ),
            (read.bytes, read.entries, read.kept, read.documents)
        );
        assert_eq!(
            std::fs::read(a.path().join("rss.xml")).unwrap(),
            std::fs::read(b.path().join("rss.xml")).unwrap()
        );
    }

    /// `--threads 2` splits parse, normalise and render and keeps the outputs as they are.
    #[test]
    fn two_threads_write_the_same_documents() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let one = run(Path::new(FIXTURE), a.path(), false, None, 1).unwrap();
        let two = run(Path::new(FIXTURE), b.path(), false, None, 2).unwrap();
        assert_eq!((one.kept, one.documents), (two.kept, two.documents));
        for doc in [
            "rss.xml",
            "atom.xml",
            "feed.json",
            "archive/1.atom",
            "sources/src00003.rss",
        ] {
            assert_eq!(
                std::fs::read(a.path().join(doc)).unwrap(),
                std::fs::read(b.path().join(doc)).unwrap(),
                "{doc}"
            );
        }
    }

    #[test]
    fn text_of_sanitised_html_unescapes_what_ammonia_escapes() {
        let html = ammonia::Builder::default()
            .clean("<p>A &amp; B</p><script>x</script><b>1 &lt; 2</b>")
            .to_string();
        assert_eq!(text_of(&html), "A & B 1 < 2");
    }
}
