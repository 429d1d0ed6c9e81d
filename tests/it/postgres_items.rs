//! The PostgreSQL store's items and deduplication areas against the SQLite store's
//! behaviour: the same sequence of source commits (identity churn, upsert with the real
//! deduplication rules, retractions, as `refresh/commit.rs` makes them) of real
//! normalised items from the fixture feeds, run on both stores on a real server; every
//! answer is compared, and the answers are checked as well.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Duration, TimeZone, Utc};
use feedwerk::config::Config;
use feedwerk::dedupe::Deduper;
use feedwerk::model::{Item, ItemId, SourceId};
use feedwerk::normalise::{self, fingerprint, Context};
use feedwerk::store::postgres::PgStore;
use feedwerk::store::{item_key, DedupStore, ItemStore, MetaStore, Store, StoreError};
use serde_json::Value;

use crate::pg_server::PgServer;
use crate::support::fixture;

pub(crate) const AUTHORITY: &str = "news.example,2024-01-01";

/// The representative marked as shown to readers halfway through the sequence: the
/// first item of the corpus's first source.
const SHOWN: &str = "src00000:1d232e6ab0ef13a1b1e0";

/// The abridged set's three sources and the corpus's ten, with the priorities a
/// deployment gives them (the originals' own site first).
pub(crate) fn config() -> Config {
    let mut text = String::from(
        "[site]\ntitle = \"Parity\"\nbase_url = \"https://news.example/\"\nlanguage = \"de\"\n\
         timezone = \"Europe/Berlin\"\n\n[store]\npath = \"parity.sqlite\"\n\n",
    );
    let mut ids: Vec<String> = ["verband", "digest", "portal"].map(String::from).to_vec();
    ids.extend((0..10).map(|i| format!("src{i:05}")));
    ids.push("agentur".into());
    for id in ids {
        let priority = match id.as_str() {
            "agentur" => 70,
            "verband" => 60,
            _ => 50,
        };
        text.push_str(&format!(
            "[[source]]\nid = \"{id}\"\nkind = \"feed\"\nurl = \"http://127.0.0.1:9/{id}.xml\"\n\
             priority = {priority}\n\n"
        ));
    }
    Config::parse(&text, Path::new("parity/config.toml")).expect("the parity config is valid")
}

/// The fixed clock of the sequence: `hours` after its start.
pub(crate) fn at(hours: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 8, 0, 0).unwrap() + Duration::hours(hours)
}

/// A fixture feed's entries, normalised as a refresh normalises them.
fn feed(cfg: &Config, source: &str, rel: &str, now: DateTime<Utc>) -> Vec<Item> {
    let src = cfg
        .sources
        .iter()
        .find(|s| s.id.as_str() == source)
        .expect("a configured source");
    let bytes = std::fs::read(fixture(rel)).unwrap();
    let decoded = feedwerk::source::decode::decode_xml(&bytes, None, None);
    let url = src.kind.url().cloned();
    let parsed = feedwerk::source::feed::parse(&decoded.text, url.as_ref(), src.timezone, rel)
        .expect("fixture parses");
    let ctx = Context {
        source: src,
        feed_link: parsed.link.as_ref(),
        feed_language: parsed.language.as_deref(),
        tag_map: &cfg.tags,
        now,
        back_catalogue: None,
    };
    let (items, errors) = normalise::normalise_all(&parsed.entries, &ctx);
    assert!(errors.is_empty(), "{rel}: {errors:?}");
    items
}

/// What the areas under test need of a store.
trait Under: ItemStore + DedupStore + MetaStore {}
impl<T: ItemStore + DedupStore + MetaStore> Under for T {}

/// One source's commit as `refresh/commit.rs` makes it: identity churn, the upsert
/// with the real deduplication rules, retractions. Every answer goes into `seen`.
fn commit(
    s: &mut dyn Under,
    deduper: &Deduper,
    seen: &mut Vec<String>,
    source: &str,
    mut items: Vec<Item>,
    now: DateTime<Utc>,
) {
    let id = SourceId(source.into());
    let churn = s.remap_churned_ids(&id, &mut items, now).unwrap();
    let present: Vec<ItemId> = items.iter().map(|i| i.id.clone()).collect();
    let report = s
        .upsert_source_items(&id, items, now, &mut |held, item| {
            deduper.decide(held, item)
        })
        .unwrap();
    let gone = s.withdraw_missing(&id, &present, false, now).unwrap();
    seen.push(format!(
        "{source} at {now}: {churn:?} {report:?} gone {gone:?}"
    ));
}

/// Everything the store holds, as the two areas answer it.
fn state(s: &mut dyn Under, seen: &mut Vec<String>, label: &str) {
    let items: Vec<String> = s
        .all_items()
        .unwrap()
        .into_iter()
        .map(|(item, dup, why)| format!("{} {:?} {dup:?} {why:?}", item.id, item.title))
        .collect();
    seen.push(format!("{label}: items\n{}", items.join("\n")));
    seen.push(format!("{label}: clusters {:#?}", s.clusters().unwrap()));
    seen.push(format!(
        "{label}: events {:#?}",
        s.dedupe_events(100).unwrap()
    ));
    seen.push(format!(
        "{label}: latest first seen {:?}",
        s.latest_first_seen().unwrap()
    ));
}

/// The abridged set's feeds and the corpus's, each source's items.
pub(crate) fn feeds(cfg: &Config, now: DateTime<Utc>) -> Vec<(String, Vec<Item>)> {
    let mut out = Vec::new();
    for id in ["verband", "digest", "portal"] {
        let rel = format!("dedupe/abridged/{id}.xml");
        out.push((id.to_owned(), feed(cfg, id, &rel, now)));
    }
    for i in 0..10 {
        let id = format!("src{i:05}");
        let rel = format!("dedupe/corpus/feeds/{id}.xml");
        out.push((id.clone(), feed(cfg, &id, &rel, now)));
    }
    out
}

/// `items` as the news agency (source `agentur`) republishes them: the same stories
/// under its own IDs and GUIDs.
pub(crate) fn republished_by_agency(items: &[Item]) -> Vec<Item> {
    items
        .iter()
        .map(|it| {
            let mut it = it.clone();
            it.source = SourceId("agentur".into());
            it.id = ItemId(format!("agentur:{}", it.id.key_in_source().unwrap()));
            it.guid = it.guid.map(|g| format!("agentur-{g}"));
            it
        })
        .collect()
}

/// `items` under new GUIDs and IDs, as a CMS migration re-issues them.
fn churned(items: &[Item]) -> Vec<Item> {
    items
        .iter()
        .map(|it| {
            let mut it = it.clone();
            it.id = ItemId(format!("{}-migrated", it.id));
            it.guid = it.guid.map(|g| format!("{g}?migrated"));
            it
        })
        .collect()
}

/// The fixed sequence both stores run, and every answer along the way. Between its
/// two halves, the caller marks [`SHOWN`] as shown to readers.
fn sequence(s: &mut dyn Under, mark_shown: &mut dyn FnMut(&mut dyn Under)) -> Vec<String> {
    let cfg = config();
    let deduper = feedwerk::refresh::deduper(&cfg);
    let mut seen = Vec::new();
    let first = feeds(&cfg, at(0));
    for (source, items) in &first {
        commit(s, &deduper, &mut seen, source, items.clone(), at(0));
    }
    state(s, &mut seen, "first build");

    // Nothing changed: every item known and unchanged.
    let again = feeds(&cfg, at(1));
    for (source, items) in &again {
        commit(s, &deduper, &mut seen, source, items.clone(), at(1));
    }

    // The digest changes one item's text; the verband drops its two newest items (a
    // retraction) and changes a title.
    let mut digest = again[1].1.clone();
    digest[0]
        .text
        .push_str(" Nachtrag: der Termin wurde verschoben.");
    digest[0].fingerprint = fingerprint::fingerprint(&digest[0].text);
    commit(s, &deduper, &mut seen, "digest", digest, at(2));
    let mut verband = again[0].1.clone();
    verband.sort_by_key(|it| std::cmp::Reverse(it.published));
    let dropped: Vec<Item> = verband.drain(..2).collect();
    verband[0].title = format!("{} (aktualisiert)", verband[0].title);
    commit(s, &deduper, &mut seen, "verband", verband.clone(), at(2));
    state(s, &mut seen, "after a retraction");

    // The retracted items come back.
    verband.extend(dropped);
    commit(s, &deduper, &mut seen, "verband", verband, at(3));

    // A document that lists one new item twice, the second time with another title:
    // the second copy finds the first one stored and changes it.
    let mut twice = again[4].1.clone();
    let mut fresh = twice[0].clone();
    fresh.id = ItemId(format!("{}-listed-twice", fresh.id));
    fresh.guid = fresh.guid.map(|g| format!("{g}-listed-twice"));
    fresh.canonical_url = fresh.canonical_url.map(|u| format!("{u}?twice"));
    let mut retitled = fresh.clone();
    retitled.title = format!("{} (korrigiert)", fresh.title);
    twice.push(fresh);
    twice.push(retitled);
    let src = again[4].0.clone();
    commit(s, &deduper, &mut seen, &src, twice, at(3));

    // A CMS migration re-issues every item of one corpus source under new GUIDs.
    let (src, items) = &again[5];
    commit(s, &deduper, &mut seen, src, churned(items), at(4));
    state(s, &mut seen, "after identity churn");

    // A news agency, ranked above everyone, republishes two stories of src00000: the
    // one readers have seen keeps its representative, the other one passes to it.
    mark_shown(s);
    let agency = republished_by_agency(&first[3].1[..2]);
    assert_eq!(first[3].1[0].id.0, SHOWN);
    commit(s, &deduper, &mut seen, "agentur", agency, at(4));
    state(s, &mut seen, "after the agency");

    // The portal is no longer configured; then retention keeps 8 items a source.
    let configured: Vec<SourceId> = first
        .iter()
        .map(|(id, _)| SourceId(id.clone()))
        .chain([SourceId("agentur".into())])
        .filter(|id| id.as_str() != "portal")
        .collect();
    seen.push(format!(
        "withdrawn unconfigured: {}",
        s.withdraw_unconfigured(&configured).unwrap()
    ));
    state(s, &mut seen, "without the portal");
    seen.push(format!(
        "pruned: {}",
        s.prune(8, Some(Duration::days(3650)), at(5)).unwrap()
    ));
    seen.push(format!(
        "prune limit: {:?}",
        s.meta("prune_max_items").unwrap()
    ));
    state(s, &mut seen, "after pruning");
    s.flush_dedupe_index().unwrap();
    seen
}

fn sqlite(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("parity.sqlite"), AUTHORITY).unwrap()
}

fn postgres(pg: &PgServer, db: &str) -> PgStore {
    PgStore::connect(&pg.create_database(db))
        .unwrap()
        .with_authority(AUTHORITY)
}

/// The stored published IDs, by item ID, read from the table itself.
fn published_ids_sqlite(s: &Store) -> BTreeMap<String, String> {
    let mut stmt = s
        .connection()
        .prepare("SELECT id, published_id FROM items")
        .unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    rows.map(Result::unwrap).collect()
}

fn published_ids_pg(pg: &PgServer, db: &str) -> BTreeMap<String, String> {
    pg.psql(db, "SELECT id || ' ' || published_id FROM items")
        .lines()
        .map(|l| {
            let (id, published) = l.split_once(' ').unwrap();
            (id.to_owned(), published.to_owned())
        })
        .collect()
}

fn find<'a>(seen: &'a [String], prefix: &str) -> &'a str {
    seen.iter()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no answer starting {prefix:?}"))
}

#[test]
fn items_and_deduplication_answer_the_same_on_sqlite_and_postgresql() {
    let Some(pg) = PgServer::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut lite = sqlite(&dir);
    let mut pgs = postgres(&pg, "parity");
    let on_sqlite = sequence(&mut lite, &mut |_| {
        let c = rusqlite::Connection::open(dir.path().join("parity.sqlite")).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        c.execute(
            "INSERT INTO dedupe_shown (item_id, first_shown) VALUES (?1, 0)",
            [SHOWN],
        )
        .unwrap();
    });
    let on_pg = sequence(&mut pgs, &mut |_| {
        pg.psql(
            "parity",
            &format!("INSERT INTO dedupe_shown (item_id, first_shown) VALUES ('{SHOWN}', 0)"),
        );
    });
    for (i, (a, b)) in on_sqlite.iter().zip(&on_pg).enumerate() {
        assert_eq!(a, b, "answer {i} differs (left SQLite, right PostgreSQL)");
    }
    assert_eq!(on_sqlite.len(), on_pg.len());

    // The same published IDs for the same items, each minted by the identity rule.
    let ids = published_ids_sqlite(&lite);
    assert_eq!(ids, published_ids_pg(&pg, "parity"));
    for (item, _, _) in lite.all_items().unwrap() {
        assert_eq!(ids[&item.id.0], pgs.published_id_for(&item), "{}", item.id);
    }

    // And the answers are right, not only equal.
    let labels: Value =
        serde_json::from_slice(&std::fs::read(fixture("dedupe/abridged/labels.json")).unwrap())
            .unwrap();
    // Every labelled copy of the abridged set is merged into its original (held
    // under the originals' source, which ranks first). Read after the sequence: the
    // portal's copies were handed on when it was withdrawn, so only the others count.
    let held: BTreeMap<String, (String, Option<String>)> = pgs
        .all_items()
        .unwrap()
        .into_iter()
        .map(|(item, dup, _)| (item_key(&item), (item.id.0, dup)))
        .collect();
    let mut checked = 0;
    for pair in labels["same"].as_array().unwrap() {
        let (copy, original) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        if !copy.starts_with("digest|") {
            continue;
        }
        let (Some((_, dup)), Some((orig_id, _))) = (held.get(copy), held.get(original)) else {
            continue;
        };
        assert_eq!(
            dup.as_ref(),
            Some(orig_id),
            "{copy} is a copy of {original}"
        );
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} labelled digest copies held");
    let digest_first = find(&on_pg, "digest at 2026-11-20 08:00:00 UTC");
    assert!(digest_first.contains("new: 6"), "{digest_first}");
    // Some stories' representatives arrived after a copy and displaced it (a copy
    // published earlier outranks one of the same priority): the supersede path ran.
    let order: Vec<String> = config().sources.iter().map(|s| s.id.to_string()).collect();
    let rank = |s: &SourceId| order.iter().position(|o| o == s.as_str()).unwrap();
    let agency = find(&on_pg, "after the agency: clusters");
    let clusters = pgs.clusters().unwrap();
    let superseded: Vec<_> = clusters
        .iter()
        .filter(|c| {
            c.members
                .iter()
                .any(|(m, _)| rank(&m.source) < rank(&c.rep.source))
        })
        .collect();
    assert_eq!(superseded.len(), 1, "{agency}");
    assert_eq!(superseded[0].rep.source.as_str(), "agentur");
    let shown = clusters
        .iter()
        .find(|c| c.rep.id.0 == SHOWN)
        .expect("shown cluster");
    assert!(shown.shown);
    assert!(shown
        .members
        .iter()
        .any(|(m, _)| m.source.as_str() == "agentur"));
    // Unchanged on the second pass: nothing new, nothing changed.
    for l in on_pg
        .iter()
        .filter(|l| l.contains(" at 2026-11-20 09:00:00 UTC"))
    {
        assert!(l.contains("new: 0, changed: 0"), "{l}");
    }
    let digest = find(&on_pg, "digest at 2026-11-20 10:00:00 UTC");
    assert!(digest.contains("changed: 1"), "{digest}");
    let verband = find(&on_pg, "verband at 2026-11-20 10:00:00 UTC");
    assert!(
        verband.contains("changed: 1") && verband.matches("ItemId(").count() >= 3,
        "two retracted and one changed: {verband}"
    );
    let back = find(&on_pg, "verband at 2026-11-20 11:00:00 UTC");
    assert!(
        back.contains("restored: 2") && back.contains("gone []"),
        "{back}"
    );
    let twice = find(&on_pg, "src00001 at 2026-11-20 11:00:00 UTC");
    assert!(
        twice.contains("new: 1, changed: 1, unchanged: 12"),
        "{twice}"
    );
    let churn = find(&on_pg, "src00002 at 2026-11-20 12:00:00 UTC");
    assert!(
        churn.contains("remapped: 12") && churn.contains("new: 0"),
        "every migrated item keeps its old ID: {churn}"
    );
    let events = find(&on_pg, "after identity churn: events");
    assert!(
        events.contains("identity-churn") && events.contains("retracted"),
        "{events}"
    );
    let withdrawn = find(&on_pg, "withdrawn unconfigured:");
    assert_eq!(withdrawn, "withdrawn unconfigured: 5");
    let pruned = find(&on_pg, "pruned:");
    assert_ne!(pruned, "pruned: 0");
    assert_eq!(find(&on_pg, "prune limit:"), "prune limit: Some(\"8\")");
    // Items that migrated keep their first published ID: no `-migrated` item is held.
    assert!(!find(&on_pg, "after pruning: items").contains("-migrated"));
}

/// A group that rolls back leaves nothing on either store: the next upsert of the same
/// items finds them new.
#[test]
fn a_rolled_back_group_of_upserts_leaves_nothing_on_postgresql_as_on_sqlite() {
    let Some(pg) = PgServer::start() else { return };
    let cfg = config();
    let deduper = feedwerk::refresh::deduper(&cfg);
    let items = feeds(&cfg, at(0));
    let dir = tempfile::tempdir().unwrap();
    let mut lite = sqlite(&dir);
    let mut pgs = postgres(&pg, "rollback");

    let upsert_all = |s: &mut dyn Under| -> Result<usize, StoreError> {
        let mut n = 0;
        for (source, its) in &items[..3] {
            let r = s.upsert_source_items(
                &SourceId(source.clone()),
                its.clone(),
                at(0),
                &mut |held, item| deduper.decide(held, item),
            )?;
            n += r.new;
        }
        Ok(n)
    };
    let lite_rolled: Result<(), StoreError> = lite.in_transaction(|s| {
        assert_eq!(upsert_all(s)?, 23);
        Err(StoreError::PgGone)
    });
    let pg_rolled: Result<(), StoreError> = pgs.group(|s| {
        assert_eq!(upsert_all(s)?, 23);
        Err(StoreError::PgGone)
    });
    assert!(matches!(lite_rolled, Err(StoreError::PgGone)));
    assert!(matches!(pg_rolled, Err(StoreError::PgGone)));
    for s in [&mut lite as &mut dyn Under, &mut pgs] {
        assert!(s.all_items().unwrap().is_empty());
        assert!(s.clusters().unwrap().is_empty());
        assert_eq!(s.latest_first_seen().unwrap(), None);
    }
    assert_eq!(pg.psql("rollback", "SELECT count(*) FROM dedupe_band"), "0");
    assert_eq!(pg.psql("rollback", "SELECT count(*) FROM dedupe_sig"), "0");

    // Committed, the same items are new and the same clusters form on both.
    let lite_n = lite.in_transaction(|s| upsert_all(s)).unwrap();
    let pg_n = pgs.group(|s| upsert_all(s)).unwrap();
    assert_eq!((lite_n, pg_n), (23, 23));
    let (a, b) = (lite.clusters().unwrap(), pgs.clusters().unwrap());
    assert!(!a.is_empty());
    assert_eq!(a, b);
    assert_ne!(pg.psql("rollback", "SELECT count(*) FROM dedupe_band"), "0");
}

/// `rebuild_dedupe_index` (what `feedwerk migrate` runs after copying the record
/// tables) makes the band and title-part rows the upserts made, so the next items
/// are deduplicated as before.
#[test]
fn the_rebuilt_deduplication_index_equals_the_one_upserts_wrote() {
    let Some(pg) = PgServer::start() else { return };
    let cfg = config();
    let deduper = feedwerk::refresh::deduper(&cfg);
    let mut pgs = postgres(&pg, "rebuild");
    let all = feeds(&cfg, at(0));
    let mut seen = Vec::new();
    for (source, items) in &all[..8] {
        commit(&mut pgs, &deduper, &mut seen, source, items.clone(), at(0));
    }
    let rows = |pg: &PgServer| {
        (
            pg.psql(
                "rebuild",
                "SELECT count(*), sum(bucket), sum(sig) FROM dedupe_band",
            ),
            pg.psql(
                "rebuild",
                "SELECT string_agg(part || '/' || item_id, ',' ORDER BY part, item_id)
                 FROM dedupe_title_part",
            ),
        )
    };
    let written = rows(&pg);
    assert_ne!(written.0, "0||", "the upserts wrote band rows");
    assert!(written.1.contains('/'), "the upserts wrote title parts");
    pg.psql(
        "rebuild",
        "DELETE FROM dedupe_band; DELETE FROM dedupe_title_part",
    );
    pgs.rebuild_dedupe_index().unwrap();
    assert_eq!(rows(&pg), written);

    // The rest deduplicated on the rebuilt index gives the clusters SQLite gives.
    let dir = tempfile::tempdir().unwrap();
    let mut lite = sqlite(&dir);
    let mut lite_seen = Vec::new();
    for (source, items) in &all[..8] {
        commit(
            &mut lite,
            &deduper,
            &mut lite_seen,
            source,
            items.clone(),
            at(0),
        );
    }
    for (source, items) in &all[8..] {
        commit(
            &mut lite,
            &deduper,
            &mut lite_seen,
            source,
            items.clone(),
            at(1),
        );
        commit(&mut pgs, &deduper, &mut seen, source, items.clone(), at(1));
    }
    assert_eq!(lite_seen, seen);
    assert_eq!(lite.clusters().unwrap(), pgs.clusters().unwrap());
    // New signatures are numbered past the rebuilt ones.
    let (max, count) = (
        pg.psql("rebuild", "SELECT max(n) FROM dedupe_sig"),
        pg.psql("rebuild", "SELECT count(*) FROM dedupe_sig"),
    );
    assert_eq!(max, count, "numbers are dense: none reused, none skipped");
}
