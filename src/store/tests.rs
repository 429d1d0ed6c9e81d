//! The store's unit tests: migrations, channel reads, dirty marks, the band index.

use std::path::Path;

use chrono::{TimeZone, Utc};
use rusqlite::{params, Connection};

use super::schema::SCHEMA_VERSION;
use super::*;
use crate::dedupe::{Candidates, Decision};
use crate::model::{ChannelFilter, DateSource, Fingerprint, Item, ItemId, SourceId};

fn item(id: &str, source: &str, tags: &[&str], language: &str) -> Item {
    let t = Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap();
    Item {
        id: ItemId(format!("{source}:{id}")),
        source: SourceId(source.into()),
        guid: Some(id.into()),
        url: None,
        source_link: None,
        canonical_url: Some(format!("//example.org/{id}")),
        title: format!("Title {id}"),
        summary: String::new(),
        content_html: None,
        published: t,
        updated: None,
        date_source: DateSource::Declared,
        authors: Vec::new(),
        tags: tags.iter().map(|s| s.to_string()).collect(),
        language: Some(language.into()),
        first_seen: t,
        text: format!("text of {id}"),
        fingerprint: Fingerprint::default(),
    }
}

fn filter(tags: &[&str], languages: &[&str]) -> ChannelFilter {
    ChannelFilter {
        tags: tags.iter().map(|s| s.to_string()).collect(),
        languages: languages.iter().map(|s| s.to_string()).collect(),
        ..ChannelFilter::default()
    }
}

fn store_with(path: &Path, items: Vec<Item>) -> Store {
    let mut s = Store::open(path, "example.org").unwrap();
    let src = items[0].source.clone();
    s.upsert_source_items(&src, items, Utc::now(), |_, _| Ok(Decision::New))
        .unwrap();
    s
}

#[test]
fn tag_and_language_channels_read_from_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with(
        &dir.path().join("s.sqlite"),
        vec![
            item("1", "a", &["Wetter", "Politik"], "de-AT"),
            item("2", "a", &["Politik"], "en"),
        ],
    );
    assert_eq!(s.visible_tags().unwrap(), vec!["Politik", "Wetter"]);
    assert_eq!(s.visible_languages().unwrap(), vec!["de", "en"]);
    let ids = |f: &ChannelFilter| -> Vec<String> {
        s.visible_items_where(f, 10)
            .unwrap()
            .into_iter()
            .map(|i| i.item.id.0.clone())
            .collect()
    };
    assert_eq!(ids(&filter(&["Wetter"], &[])), vec!["a:1"]);
    assert_eq!(ids(&filter(&["Politik"], &[])).len(), 2);
    assert_eq!(ids(&filter(&[], &["de"])), vec!["a:1"]);
    assert_eq!(ids(&filter(&["Politik"], &["en"])), vec!["a:2"]);
}

#[test]
fn store_made_before_the_tag_index_opens_and_is_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    drop(store_with(&path, vec![item("1", "a", &["Wetter"], "fr")]));
    // Take the store back to what the first schema had.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TRIGGER IF EXISTS items_dirty_insert; DROP TRIGGER items_dirty_update;
         DROP TRIGGER items_dirty_delete; DROP TABLE item_tags; DROP TABLE publish_dirty;
         DROP TRIGGER IF EXISTS publish_index_item_insert; DROP TRIGGER publish_index_item_update;
         DROP TRIGGER publish_index_item_delete; DROP TABLE visible_tag_counts;
         DROP TABLE visible_language_counts; DROP TABLE unshown_representatives;
         ALTER TABLE items DROP COLUMN language;",
    )
    .unwrap();
    drop(conn);
    let s = Store::open(&path, "example.org").unwrap();
    assert_eq!(s.visible_tags().unwrap(), vec!["Wetter"]);
    assert_eq!(s.visible_languages().unwrap(), vec!["fr"]);
    assert_eq!(
        s.visible_items_where(&filter(&["Wetter"], &["fr"]), 5)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn changes_mark_the_channels_they_touch_until_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store_with(
        &dir.path().join("s.sqlite"),
        vec![item("1", "a", &["Wetter"], "de")],
    );
    let d = s.publish_dirty().unwrap();
    assert!(d.sources.contains("a") && d.tags.contains("Wetter") && d.languages.contains("de"));
    s.clear_publish_dirty().unwrap();
    // Seen again unchanged: nothing to publish.
    s.upsert_source_items(
        &SourceId("a".into()),
        vec![item("1", "a", &["Wetter"], "de")],
        Utc::now(),
        |_, _| Ok(Decision::New),
    )
    .unwrap();
    assert!(s.publish_dirty().unwrap().is_empty());
    // A duplicate from another source changes the representative's "also at" list.
    let mut dup = item("9", "b", &["Sport"], "en");
    dup.canonical_url = Some("//example.org/1".into());
    s.upsert_source_items(&SourceId("b".into()), vec![dup], Utc::now(), |_, _| {
        Ok(Decision::Joins {
            rep: ItemId("a:1".into()),
            reason: "exact URL".into(),
        })
    })
    .unwrap();
    let d = s.publish_dirty().unwrap();
    assert!(d.sources.contains("a") && d.sources.contains("b"));
    assert!(d.tags.contains("Wetter") && d.languages.contains("de"));
    assert!(d.affects(&filter(&["Wetter"], &[])));
    assert!(!d.affects(&filter(&["Kultur"], &[])));
    assert!(!d.affects(&filter(&[], &["fr"])));
}

const LONG_TEXT: &str = "die stadt augsburg hat ein neues konzept für die sicherheit im öffentlichen raum vorgestellt im mittelpunkt stehen beleuchtete wege ein kommunaler ordnungsdienst in den abendstunden und regelmäßige sprechstunden in den stadtteilen";

fn with_text(mut it: Item, text: &str) -> Item {
    it.text = text.to_owned();
    it.fingerprint = crate::normalise::fingerprint::fingerprint(text);
    it
}

fn bands_of(s: &Store, id: &str) -> i64 {
    s.connection()
        .query_row(
            "SELECT count(*) FROM dedupe_band WHERE sig = (SELECT n FROM dedupe_sig WHERE item_id = ?1)",
            [id],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn store_of_schema_1_gets_the_integer_band_table_and_keeps_finding_copies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite");
    let held = with_text(item("1", "a", &[], "de"), LONG_TEXT);
    drop(store_with(&path, vec![held.clone()]));
    // Take the deduplication tables back to schema 1, with the rows it wrote.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TRIGGER items_delete_dedupe; DROP TABLE dedupe_band; DROP TABLE dedupe_sig;
         CREATE TABLE dedupe_sig (item_id TEXT PRIMARY KEY, version INTEGER NOT NULL,
             shingles INTEGER NOT NULL, sig BLOB NOT NULL, title_key TEXT NOT NULL);
         CREATE INDEX dedupe_sig_title ON dedupe_sig(title_key);
         CREATE TABLE dedupe_band (bucket INTEGER NOT NULL, item_id TEXT NOT NULL);
         CREATE INDEX dedupe_band_bucket ON dedupe_band(bucket);
         CREATE INDEX dedupe_band_item ON dedupe_band(item_id);
         CREATE TRIGGER items_delete_dedupe AFTER DELETE ON items BEGIN
             DELETE FROM dedupe_band WHERE item_id = old.id;
             DELETE FROM dedupe_sig WHERE item_id = old.id;
         END;
         PRAGMA user_version = 1;",
    )
    .unwrap();
    let fp = &held.fingerprint;
    conn.execute(
        "INSERT INTO dedupe_sig VALUES ('a:1', ?1, ?2, ?3, 'title 1')",
        params![
            fp.version,
            fp.shingles,
            crate::normalise::fingerprint::to_blob(&fp.minhash)
        ],
    )
    .unwrap();
    for key in crate::normalise::fingerprint::band_keys(&fp.minhash) {
        conn.execute("INSERT INTO dedupe_band VALUES (?1, 'a:1')", [key])
            .unwrap();
    }
    drop(conn);

    let s = Store::open(&path, "example.org").unwrap();
    let version = user_version(s.connection());
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(
        bands_of(&s, "a:1"),
        crate::normalise::fingerprint::BANDS as i64
    );
    // A near copy from another source still finds the held item through its bands.
    let copy = with_text(item("7", "b", &[], "de"), &format!("{LONG_TEXT} ergänzt"));
    let found = by_bands(s.connection(), &copy.fingerprint.minhash).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, ItemId("a:1".into()));
    // Reopening does not index again, and removing the item removes its bands.
    drop(s);
    let mut s = Store::open(&path, "example.org").unwrap();
    assert_eq!(
        bands_of(&s, "a:1"),
        crate::normalise::fingerprint::BANDS as i64
    );
    s.prune(0, None, Utc::now()).unwrap();
    let left: i64 = s
        .connection()
        .query_row("SELECT count(*) FROM dedupe_band", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
}

#[test]
fn prune_keeps_the_newest_items_of_each_source_over_the_limit_only() {
    let mut s = Store::in_memory("example.org").unwrap();
    let dated = |id: &str, src: &str, day: u32| {
        let mut it = item(id, src, &[], "de");
        it.published = Utc.with_ymd_and_hms(2024, 6, day, 12, 0, 0).unwrap();
        it
    };
    let a = vec![dated("1", "a", 1), dated("2", "a", 2), dated("3", "a", 3)];
    s.upsert_source_items(&SourceId("a".into()), a, Utc::now(), |_, _| {
        Ok(Decision::New)
    })
    .unwrap();
    s.upsert_source_items(
        &SourceId("b".into()),
        vec![dated("9", "b", 1)],
        Utc::now(),
        |_, _| Ok(Decision::New),
    )
    .unwrap();
    assert_eq!(s.prune(2, None, Utc::now()).unwrap(), 1);
    let mut left: Vec<String> = s
        .connection()
        .prepare("SELECT id FROM items ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    left.sort();
    assert_eq!(left, ["a:2", "a:3", "b:9"]);
    assert_eq!(s.prune(2, None, Utc::now()).unwrap(), 0);

    // After a publish only the sources that gained items are counted, and one that
    // grew past the limit is still cut back; a changed limit counts every source.
    s.clear_publish_dirty().unwrap();
    s.upsert_source_items(
        &SourceId("a".into()),
        vec![dated("4", "a", 4), dated("5", "a", 5)],
        Utc::now(),
        |_, _| Ok(Decision::New),
    )
    .unwrap();
    assert_eq!(s.prune(2, None, Utc::now()).unwrap(), 2);
    s.clear_publish_dirty().unwrap();
    assert_eq!(s.prune(1, None, Utc::now()).unwrap(), 1);
    let count: i64 = s
        .connection()
        .query_row(
            "SELECT count(*) FROM items WHERE source_id = 'a'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(count, 1);
}

#[test]
fn a_crowded_bucket_yields_only_its_newest_members() {
    let mut s = Store::in_memory("example.org").unwrap();
    // Items with one text share every bucket: boilerplate as crowded as it gets.
    let n = dedup::BUCKET_CAP + 10;
    let items: Vec<Item> = (0..n)
        .map(|i| with_text(item(&format!("{i:03}"), "a", &[], "de"), LONG_TEXT))
        .collect();
    s.upsert_source_items(&SourceId("a".into()), items, Utc::now(), |_, _| {
        Ok(Decision::New)
    })
    .unwrap();
    let probe = with_text(item("x", "b", &[], "de"), LONG_TEXT);
    let mut found: Vec<String> = s
        .band_candidates(&probe.fingerprint.minhash)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id.0)
        .collect();
    found.sort();
    let newest: Vec<String> = (n - dedup::BUCKET_CAP..n)
        .map(|i| format!("a:{i:03}"))
        .collect();
    assert_eq!(found, newest);
}

#[test]
fn band_rows_a_killed_process_left_pending_are_indexed_on_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let s = store_with(&path, vec![with_text(item("1", "a", &[], "de"), LONG_TEXT)]);
    // Committed, but the band rows are still pending in the store's memory.
    assert_eq!(bands_of(&s, "a:1"), 0);
    let probe = with_text(item("x", "b", &[], "de"), LONG_TEXT);
    assert!(by_bands(s.connection(), &probe.fingerprint.minhash)
        .unwrap()
        .is_empty());
    let found = s.band_candidates(&probe.fingerprint.minhash).unwrap();
    assert_eq!(found.len(), 1, "pending rows are candidates already");
    // Gone without a flush, as a killed process would be.
    std::mem::forget(s);
    let s = Store::open(&path, "example.org").unwrap();
    assert_eq!(
        bands_of(&s, "a:1"),
        crate::normalise::fingerprint::BANDS as i64
    );
    let found = by_bands(s.connection(), &probe.fingerprint.minhash).unwrap();
    assert_eq!(found[0].0 .0, "a:1");
    // A store dropped normally flushes: the next open has nothing to recover.
    let mut s = s;
    s.upsert_source_items(
        &SourceId("b".into()),
        vec![with_text(item("2", "b", &[], "de"), LONG_TEXT)],
        Utc::now(),
        |_, _| Ok(Decision::New),
    )
    .unwrap();
    drop(s);
    let s = Store::open(&path, "example.org").unwrap();
    assert_eq!(
        bands_of(&s, "b:2"),
        crate::normalise::fingerprint::BANDS as i64
    );
}

#[test]
fn a_changed_item_is_indexed_again_under_its_new_text() {
    let mut s = Store::in_memory("example.org").unwrap();
    let src = SourceId("a".into());
    let first = with_text(item("1", "a", &["Wetter"], "de"), LONG_TEXT);
    s.upsert_source_items(&src, vec![first], Utc::now(), |_, _| Ok(Decision::New))
        .unwrap();
    let other = "ganz anderer text über die förderung von vereinen im landkreis und die neue beratungsstelle am bahnhof der innenstadt";
    let changed = with_text(item("1", "a", &["Sport"], "fr"), other);
    let rep = s
        .upsert_source_items(&src, vec![changed.clone()], Utc::now(), |_, _| {
            Ok(Decision::New)
        })
        .unwrap();
    assert_eq!(rep.changed, 1);
    s.flush_dedupe_index().unwrap();
    assert_eq!(
        bands_of(&s, "a:1"),
        crate::normalise::fingerprint::BANDS as i64
    );
    let old = with_text(item("2", "b", &[], "de"), LONG_TEXT);
    assert!(by_bands(s.connection(), &old.fingerprint.minhash)
        .unwrap()
        .is_empty());
    assert_eq!(
        by_bands(s.connection(), &changed.fingerprint.minhash)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(s.visible_tags().unwrap(), vec!["Sport"]);
    assert_eq!(s.visible_languages().unwrap(), vec!["fr"]);
}

#[test]
fn the_band_bitmap_lets_every_held_item_be_found_built_grown_or_dropped() {
    let mut s = Store::in_memory("example.org").unwrap();
    let deduper = crate::dedupe::Deduper::new(Default::default(), Default::default());
    // Unrelated texts: no two items share a shingle, so each finds only itself.
    let text = |i: usize| {
        let words = (0..60).map(|w| format!("w{}", (i * 7_919 + w * 104_729) % 1_000_003));
        words.collect::<Vec<_>>().join(" ")
    };
    let items: Vec<Item> = (0..300)
        .map(|i| with_text(item(&format!("i{i}"), "a", &[], "de"), &text(i)))
        .collect();
    let probes = items.clone();
    s.upsert_source_items(&SourceId("a".into()), items, Utc::now(), |c, it| {
        deduper.decide(c, it)
    })
    .unwrap();
    // An empty store built it at the first lookup; the run's own rows are looked up
    // in memory, so it learns nothing from them.
    let bits = s.bands.borrow().bits();
    assert_eq!(bits, Some(bandfilter::MIN_BITS));
    let finds_itself = |s: &Store, p: &Item| {
        let found = Lookup::new(s.connection(), &s.bands, &s.pending)
            .by_bands(&p.fingerprint.minhash)
            .unwrap();
        found.iter().any(|(id, _)| *id == p.id)
    };
    for p in &probes {
        assert!(
            finds_itself(&s, p),
            "{} (pending rows, bitmap built)",
            p.id.0
        );
    }
    s.flush_dedupe_index().unwrap();
    assert_eq!(s.bands.borrow().bits(), None, "dropped at the end of a run");
    for p in &probes[..3] {
        assert!(finds_itself(&s, p), "{} (band table, no bitmap)", p.id.0);
    }
    // 96 keys looked up against 9,600 rows: cheaper than scanning them.
    assert_eq!(s.bands.borrow().bits(), None);
    for p in &probes[3..] {
        assert!(finds_itself(&s, p), "{} (band table)", p.id.0);
    }
    assert!(
        s.bands.borrow().bits().is_some(),
        "built once lookups add up"
    );
}

#[test]
fn items_are_stored_without_their_signature_and_older_rows_are_not_changes() {
    let mut s = Store::in_memory("example.org").unwrap();
    let held = with_text(item("1", "a", &["t"], "de"), LONG_TEXT);
    let src = SourceId("a".into());
    s.upsert_source_items(&src, vec![held.clone()], Utc::now(), |_, _| {
        Ok(Decision::New)
    })
    .unwrap();
    let data = |s: &Store| -> String {
        s.connection()
            .query_row("SELECT data FROM items WHERE id = 'a:1'", [], |r| r.get(0))
            .unwrap()
    };
    assert!(!data(&s).contains("minhash"), "kept once, in dedupe_sig");
    let found = s.band_candidates(&held.fingerprint.minhash).unwrap();
    assert_eq!(found.len(), 1);

    // A row as versions before this one wrote it: the signature in the JSON.
    let mut old: serde_json::Value = serde_json::from_str(&data(&s)).unwrap();
    old["fingerprint"]["minhash"] = serde_json::json!(held.fingerprint.minhash);
    s.connection()
        .execute(
            "UPDATE items SET data = ?1 WHERE id = 'a:1'",
            [old.to_string()],
        )
        .unwrap();
    let report = s
        .upsert_source_items(&src, vec![held.clone()], Utc::now(), |_, _| {
            Ok(Decision::New)
        })
        .unwrap();
    assert_eq!((report.unchanged, report.changed), (1, 0));
    assert!(report.touched.is_empty(), "nothing to publish again");
    assert!(!data(&s).contains("minhash"), "rewritten in today's form");

    // A real change is still one.
    let mut edited = held.clone();
    edited.title = "Another title".into();
    let report = s
        .upsert_source_items(&src, vec![edited], Utc::now(), |_, _| Ok(Decision::New))
        .unwrap();
    assert_eq!(report.changed, 1);
}

#[test]
fn candidate_lookups_are_compiled_once_not_per_item() {
    let mut s = Store::in_memory("example.org").unwrap();
    let deduper = crate::dedupe::Deduper::new(Default::default(), Default::default());
    // A store holding an item before the run: its lookups are SQLite's (on an empty
    // one the overlay answers them).
    s.upsert_source_items(
        &SourceId("b".into()),
        vec![item("0", "b", &[], "de")],
        Utc::now(),
        |_, _| Ok(Decision::New),
    )
    .unwrap();
    s.flush_dedupe_index().unwrap();
    for round in 0..3 {
        let items: Vec<Item> = (0..20)
            .map(|i| {
                let text = format!("{LONG_TEXT} {round} {i}");
                with_text(item(&format!("{round}-{i}"), "a", &["t"], "de"), &text)
            })
            .collect();
        s.upsert_source_items(&SourceId("a".into()), items, Utc::now(), |c, it| {
            deduper.decide(c, it)
        })
        .unwrap();
    }
    assert_eq!(s.visible_items(10).unwrap().len(), 10);
    // The statements as `dedup` and `fill_also_at` cache them: same text, same statement.
    // (The other copies of a page of items are read in one statement run.)
    for (sql, min_runs) in [
        (
            "SELECT id, first_seen FROM items WHERE canonical_url = ?1 LIMIT 21",
            10,
        ),
        (
            "SELECT d.dup_of, d.id, d.data FROM items d
             WHERE d.dup_of IN (SELECT value FROM json_each(?1)) AND d.withdrawn = 0
               AND d.source_id != (SELECT r.source_id FROM items r WHERE r.id = d.dup_of)
             ORDER BY d.dup_of, d.first_seen, d.id",
            1,
        ),
    ] {
        let st = s.connection().prepare_cached(sql).unwrap();
        let runs = st.get_status(rusqlite::StatementStatus::Run);
        assert!(runs >= min_runs, "{runs} runs of {sql}");
        assert_eq!(
            st.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "{sql}"
        );
    }
}

/// The URL, GUID and text-hash lookups read a key's rows unsorted and order them in
/// Rust; past the limit they fall back to the sorted SQL, so the same items are
/// returned either way: the first seen, then by ID.
#[test]
fn key_lookups_return_the_first_seen_items_below_and_above_the_limit() {
    let mut s = Store::in_memory("example.org").unwrap();
    let start = Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap();
    // Stored newest first, so an unsorted read would not be in order by accident.
    for n in (0..25).rev() {
        let mut it = item(&format!("{n:02}"), "a", &[], "de");
        it.canonical_url = Some(
            if n < 5 {
                "https://e.org/few"
            } else {
                "https://e.org/many"
            }
            .into(),
        );
        s.upsert_source_items(
            &SourceId("a".into()),
            vec![it],
            start + chrono::Duration::minutes(n),
            |_, _| Ok(Decision::New),
        )
        .unwrap();
    }
    let ids = |s: &Store, url: &str| -> Vec<String> {
        by_canonical_url(s.connection(), url)
            .unwrap()
            .into_iter()
            .map(|i| i.0)
            .collect()
    };
    let expect =
        |r: std::ops::Range<i64>| -> Vec<String> { r.map(|n| format!("a:{n:02}")).collect() };
    assert_eq!(ids(&s, "https://e.org/few"), expect(0..5));
    assert_eq!(ids(&s, "https://e.org/many"), expect(5..25));
    let mut one = item("late", "a", &[], "de");
    one.canonical_url = Some("https://e.org/many".into());
    s.upsert_source_items(
        &SourceId("a".into()),
        vec![one],
        start + chrono::Duration::hours(2),
        |_, _| Ok(Decision::New),
    )
    .unwrap();
    assert_eq!(
        ids(&s, "https://e.org/many"),
        expect(5..25),
        "21 rows: the 20 first seen"
    );
}

#[test]
fn sources_stored_in_one_transaction_commit_or_roll_back_together() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(&dir.path().join("s.sqlite"), "example.org").unwrap();
    let upsert = |s: &mut Store, id: &str, src: &str| {
        s.upsert_source_items(
            &SourceId(src.into()),
            vec![item(id, src, &[], "de")],
            Utc::now(),
            |_, _| Ok(Decision::New),
        )
    };
    let failed: Result<(), StoreError> = s.in_transaction(|s| {
        upsert(s, "1", "a")?;
        upsert(s, "2", "b")?;
        Err(StoreError::Sql(rusqlite::Error::InvalidQuery))
    });
    assert!(failed.is_err());
    assert!(s.visible_items(10).unwrap().is_empty());
    s.in_transaction(|s| -> Result<(), StoreError> {
        upsert(s, "1", "a")?;
        upsert(s, "2", "b")?;
        Ok(())
    })
    .unwrap();
    assert_eq!(s.visible_items(10).unwrap().len(), 2);
}

/// An item row as the migration tests compare it before and after opening an old
/// store: ID, published ID, `dup_of`, and one more column the test names.
type ItemRow<T> = (String, String, Option<String>, T);

fn item_rows<T: rusqlite::types::FromSql>(conn: &Connection, column: &str) -> Vec<ItemRow<T>> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT id, published_id, dup_of, {column} FROM items ORDER BY id"
        ))
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

/// A store of schema 2 as that version wrote it (the `.dump` of a real one, from the
/// multi-partner golden build): opening it moves each item's matching text out of its
/// JSON into the `text` column and drops the band table's index by signature, and
/// keeps every item, published ID, cluster and band row; deduplication then reads
/// what it compares from the columns and finds the held items by their bands.
#[test]
fn store_of_schema_2_gets_lean_item_rows_and_keeps_every_published_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.sqlite");
    let dump = include_str!("../../tests/fixtures/store/multi-partner-1.schema-2.sql");
    type Row = ItemRow<String>;
    let rows = |conn: &Connection| -> Vec<Row> { item_rows(conn, "data") };
    let (before, bands_before): (Vec<Row>, i64) = {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(dump).unwrap();
        let n = conn
            .query_row("SELECT count(*) FROM dedupe_band", [], |r| r.get(0))
            .unwrap();
        (rows(&conn), n)
    };
    assert_eq!(before.len(), 17);
    assert!(
        before.iter().any(|r| r.2.is_some()),
        "the fixture has a cluster"
    );

    let mut s = Store::open(&path, "example.org").unwrap();
    let version = user_version(s.connection());
    assert_eq!(version, SCHEMA_VERSION);
    let after = rows(s.connection());
    assert_eq!(after.len(), before.len());
    let held_items: Vec<Item> = after
        .iter()
        .map(|r| s.get_item(&ItemId(r.0.clone())).unwrap().unwrap().0)
        .collect();
    for ((old, new), item) in before.iter().zip(&after).zip(&held_items) {
        assert_eq!((&old.0, &old.1, &old.2), (&new.0, &new.1, &new.2));
        let old_json: serde_json::Value = serde_json::from_str(&old.3).unwrap();
        assert!(
            !new.3.contains("\"text\":"),
            "{}: text left in the JSON",
            new.0
        );
        assert_eq!(item.text, old_json["text"].as_str().unwrap(), "{}", new.0);
        let h = dedup::held(s.connection(), &item.id).unwrap().unwrap();
        assert_eq!(
            (h.title.as_str(), h.text.as_str()),
            (item.title.as_str(), item.text.as_str())
        );
    }
    let bands: i64 = s
        .connection()
        .query_row("SELECT count(*) FROM dedupe_band", [], |r| r.get(0))
        .unwrap();
    assert_eq!(bands, bands_before);
    let index_left: i64 = s
        .connection()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'dedupe_band_sig'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(index_left, 0);
    // Each held item with a substantial text is its own band candidate.
    for item in held_items.iter().filter(|i| i.fingerprint.shingles >= 8) {
        let minhash = crate::normalise::fingerprint::fingerprint(&item.text).minhash;
        let found = s.band_candidates(&minhash).unwrap();
        assert!(found.iter().any(|(id, _)| *id == item.id), "{}", item.id.0);
    }
    // Listed again as they are, the items are unchanged: nothing to publish again.
    let by_source = held_items.iter().fold(
        std::collections::BTreeMap::<SourceId, Vec<Item>>::new(),
        |mut m, i| {
            m.entry(i.source.clone()).or_default().push(i.clone());
            m
        },
    );
    for (source, items) in by_source {
        let mut items = items;
        for i in &mut items {
            i.fingerprint = crate::normalise::fingerprint::fingerprint(&i.text);
        }
        let report = s
            .upsert_source_items(&source, items, Utc::now(), |_, _| Ok(Decision::New))
            .unwrap();
        assert_eq!((report.changed, report.new), (0, 0), "{source}");
    }
    // Deleting items removes their band rows, by key.
    s.prune(0, None, Utc::now()).unwrap();
    let left: i64 = s
        .connection()
        .query_row("SELECT count(*) FROM dedupe_band", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
}

#[test]
fn a_publishing_pass_parses_an_item_once_for_all_its_channels() {
    let dir = tempfile::tempdir().unwrap();
    let s = store_with(
        &dir.path().join("s.sqlite"),
        vec![
            item("1", "a", &["Wetter", "Politik"], "de"),
            item("2", "a", &["Politik"], "en"),
        ],
    );
    let mut cache = ItemCache::new(10);
    let wetter = s
        .visible_items_cached(&filter(&["Wetter"], &[]), 10, &mut cache)
        .unwrap();
    let politik = s
        .visible_items_cached(&filter(&["Politik"], &[]), 10, &mut cache)
        .unwrap();
    assert_eq!(politik.len(), 2);
    let one = politik.iter().find(|i| i.item.id.0 == "a:1").unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&wetter[0].item, &one.item),
        "the second channel reuses the item parsed for the first"
    );
    // The same items as read without a cache, and a cache of one holds one.
    assert_eq!(
        politik,
        s.visible_items_where(&filter(&["Politik"], &[]), 10)
            .unwrap()
    );
    // A cache of one keeps the last item parsed (a:2, after a:1) and no other.
    let mut small = ItemCache::new(1);
    let both = s
        .visible_items_cached(&filter(&["Politik"], &[]), 10, &mut small)
        .unwrap();
    let en = s
        .visible_items_cached(&filter(&[], &["en"]), 10, &mut small)
        .unwrap();
    assert_eq!(both[1].item.id.0, "a:2");
    assert!(std::sync::Arc::ptr_eq(&both[1].item, &en[0].item));
    let de = s
        .visible_items_cached(&filter(&["Wetter"], &[]), 10, &mut small)
        .unwrap();
    assert_eq!(de[0].item.id.0, "a:1");
    assert!(!std::sync::Arc::ptr_eq(&both[0].item, &de[0].item));
}

/// A generic title ("Wetter") gathers many items: a title lookup returns the most
/// recent 50 (by date, then ID) whichever order they were stored in, by whole title and
/// by title part, and reads them from an index kept in that order, without a sort or
/// the item rows.
#[test]
fn title_lookups_return_the_newest_of_a_crowded_title_in_index_order() {
    let mut s = Store::in_memory("example.org").unwrap();
    let start = Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap();
    // Dates in a scrambled order, with ties, so neither storage order nor IDs give
    // the answer by accident.
    let day = |n: i64| (n * 37) % 30;
    for n in 0..60i64 {
        let mut it = item(&format!("{n:02}"), "a", &[], "de");
        it.title = format!("Wetter: Sonne und Regen {}", ["", "heute"][n as usize % 2]);
        it.title = it.title.trim_end().to_owned();
        it.published = start + chrono::Duration::days(day(n));
        s.upsert_source_items(&SourceId("a".into()), vec![it], Utc::now(), |_, _| {
            Ok(Decision::New)
        })
        .unwrap();
    }
    let mut expect: Vec<(i64, String)> =
        (0..60i64).map(|n| (day(n), format!("a:{n:02}"))).collect();
    expect.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let newest: Vec<String> = expect.into_iter().take(50).map(|(_, id)| id).collect();
    let ids = |v: Vec<ItemId>| -> Vec<String> { v.into_iter().map(|i| i.0).collect() };
    // The even items' title has the part "sonne und regen", the odd ones' the part
    // "sonne und regen heute" ("Wetter" alone is one word: not a part).
    let by_part = ids(bounded::by_title_part(s.connection(), "sonne und regen").unwrap());
    let even: Vec<String> = newest
        .iter()
        .filter(|id| id[2..].parse::<i64>().unwrap() % 2 == 0)
        .cloned()
        .collect();
    assert_eq!(by_part.len(), 30, "{by_part:?}");
    assert!(by_part.starts_with(&even), "{by_part:?}");
    let whole = ids(by_title(s.connection(), "Wetter: Sonne und Regen").unwrap());
    assert_eq!(whole.len(), 30);
    for (sql, index) in [
        (
            "SELECT item_id FROM dedupe_sig WHERE title_key = ?1
         ORDER BY published DESC, item_id LIMIT 50",
            "dedupe_sig_title_recent",
        ),
        (
            "SELECT item_id FROM dedupe_title_part WHERE part = ?1
         ORDER BY published DESC, item_id LIMIT 50",
            "PRIMARY KEY",
        ),
    ] {
        let plan: Vec<String> = s
            .connection()
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(["wetter"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join(" / ");
        assert!(plan.contains(index), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
    // Sixty items under one part: the 50 newest, in order.
    let mut s2 = Store::in_memory("example.org").unwrap();
    for n in 0..60i64 {
        let mut it = item(&format!("{n:02}"), "a", &[], "de");
        it.title = format!("Meldung {n}: Wetter am Morgen");
        it.published = start + chrono::Duration::days(day(n));
        s2.upsert_source_items(&SourceId("a".into()), vec![it], Utc::now(), |_, _| {
            Ok(Decision::New)
        })
        .unwrap();
    }
    assert_eq!(
        ids(bounded::by_title_part(s2.connection(), "wetter am morgen").unwrap()),
        newest
    );
    let mut s3 = Store::in_memory("example.org").unwrap();
    for n in 0..60i64 {
        let mut it = item(&format!("{n:02}"), "a", &[], "de");
        it.title = "Wetter".into();
        it.published = start + chrono::Duration::days(day(n));
        s3.upsert_source_items(&SourceId("a".into()), vec![it], Utc::now(), |_, _| {
            Ok(Decision::New)
        })
        .unwrap();
    }
    assert_eq!(ids(by_title(s3.connection(), "Wetter").unwrap()), newest);
    // A changed date moves the item in the index.
    let mut moved = item("00", "a", &[], "de");
    moved.title = "Wetter".into();
    moved.published = start + chrono::Duration::days(100);
    moved.text = "a new text".into();
    s3.upsert_source_items(&SourceId("a".into()), vec![moved], Utc::now(), |_, _| {
        Ok(Decision::New)
    })
    .unwrap();
    assert_eq!(
        ids(by_title(s3.connection(), "Wetter").unwrap())[0],
        "a:00",
        "the changed item is now the newest"
    );
}

/// The schema version a store file says it has.
fn user_version(conn: &Connection) -> i64 {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

/// A new SQLite file at `path` holding `dump` (a store's `.dump` as an older version
/// wrote it), checked to be of schema `version` before any code of today opens it.
fn restore_dump(path: &std::path::Path, dump: &str, version: i64) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(dump).unwrap();
    let v = user_version(&conn);
    assert_eq!(v, version, "the fixture's schema");
    conn
}

/// A store of schema 3 as that version wrote it (the `.dump` of the multi-partner golden
/// build's store): opening it dates the signature rows and rekeys the title-part rows
/// by date, and keeps every item, published ID, cluster, signature and part; each held
/// item is then found by its own title and title parts.
#[test]
fn store_of_schema_3_gets_dated_title_indexes_and_keeps_every_published_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.sqlite");
    let dump = include_str!("../../tests/fixtures/store/multi-partner-1.schema-3.sql");
    type Row = ItemRow<i64>;
    let rows = |conn: &Connection| -> Vec<Row> { item_rows(conn, "published") };
    let count =
        |conn: &Connection, sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    let parts_sql = "SELECT count(*) FROM dedupe_title_part";
    let sigs_sql = "SELECT count(*) FROM dedupe_sig";
    let (before, parts_before, sigs_before) = {
        let conn = restore_dump(&path, dump, 3);
        (rows(&conn), count(&conn, parts_sql), count(&conn, sigs_sql))
    };
    assert_eq!(before.len(), 17);
    assert!(parts_before > 0, "the fixture has titles with parts");

    let s = Store::open(&path, "example.org").unwrap();
    let conn = s.connection();
    let version = user_version(conn);
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(rows(conn), before, "items, published IDs and clusters kept");
    assert_eq!(count(conn, parts_sql), parts_before);
    assert_eq!(count(conn, sigs_sql), sigs_before);
    assert_eq!(
        count(
            conn,
            "SELECT count(*) FROM dedupe_sig s JOIN items i ON i.id = s.item_id
             WHERE s.published = i.published"
        ),
        sigs_before,
        "every signature row carries its item's date"
    );
    assert_eq!(
        count(
            conn,
            "SELECT count(*) FROM dedupe_title_part p JOIN items i ON i.id = p.item_id
             WHERE p.published = i.published"
        ),
        parts_before
    );
    assert_eq!(
        count(
            conn,
            "SELECT count(*) FROM sqlite_master WHERE name IN ('dedupe_sig_title', 'dedupe_title_part_v3')"
        ),
        0,
        "the old index and table are gone"
    );
    for (id, ..) in &before {
        let item = s.get_item(&ItemId(id.clone())).unwrap().unwrap().0;
        if !crate::normalise::fingerprint::title_key(&item.title).is_empty() {
            assert!(
                by_title(conn, &item.title).unwrap().contains(&item.id),
                "{id}: by title"
            );
        }
        for part in crate::normalise::fingerprint::title_parts(&item.title) {
            assert!(
                bounded::by_title_part(conn, &part)
                    .unwrap()
                    .contains(&item.id),
                "{id}: by part {part}"
            );
        }
    }
    // Deleting items takes their parts along (the trigger was made again).
    drop(s);
    let mut s = Store::open(&path, "example.org").unwrap();
    s.prune(0, None, Utc::now()).unwrap();
    assert_eq!(count(s.connection(), parts_sql), 0);
}

/// The band bitmap is kept in the store with the band rows it covers: a later run that
/// needs it reads it instead of scanning the band table, adds the keys of items stored
/// meanwhile by runs that never took it up, and so still finds every held item. A
/// store without one (made before it was kept) gets it built once, when opened.
#[test]
fn the_band_bitmap_is_kept_in_the_store_and_caught_up_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqlite");
    let text = |i: usize| {
        let words = (0..60).map(|w| format!("w{}", (i * 7_919 + w * 104_729) % 1_000_003));
        words.collect::<Vec<_>>().join(" ")
    };
    let items = |range: std::ops::Range<usize>| -> Vec<Item> {
        range
            .map(|i| with_text(item(&format!("i{i}"), "a", &[], "de"), &text(i)))
            .collect()
    };
    let deduper = crate::dedupe::Deduper::new(Default::default(), Default::default());
    let mut s = Store::open(&path, "example.org").unwrap();
    s.upsert_source_items(&SourceId("a".into()), items(0..200), Utc::now(), |c, it| {
        deduper.decide(c, it)
    })
    .unwrap();
    assert_eq!(
        s.bands.borrow().origin(),
        Some(bandfilter::Origin::Stored),
        "made when the store was created"
    );
    drop(s);
    // A run adding two items never takes the bitmap up: it stays as stored.
    let mut s = Store::open(&path, "example.org").unwrap();
    s.upsert_source_items(
        &SourceId("a".into()),
        items(200..202),
        Utc::now(),
        |_, _| Ok(Decision::New),
    )
    .unwrap();
    assert_eq!(s.bands.borrow().bits(), None);
    drop(s);
    let stored: String = Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT value FROM meta WHERE key = 'dedupe_band_filter'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(stored.ends_with(" 200"), "covers the first 200: {stored}");
    // A run looking up many keys reads it from the store and catches up.
    let s = Store::open(&path, "example.org").unwrap();
    let probes = items(0..202);
    let lookup = || Lookup::new(s.connection(), &s.bands, &s.pending);
    for p in &probes {
        let found = lookup().by_bands(&p.fingerprint.minhash).unwrap();
        assert!(found.iter().any(|(id, _)| *id == p.id), "{}", p.id.0);
    }
    assert_eq!(s.bands.borrow().origin(), Some(bandfilter::Origin::Stored));
    for p in &probes {
        for key in crate::normalise::fingerprint::band_keys(&p.fingerprint.minhash) {
            assert_eq!(s.bands.borrow().may_hold(key), Some(true), "{}", p.id.0);
        }
    }
}

#[test]
fn archive_pages_and_channels_of_one_pass_share_parsed_items_and_their_copies() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = store_with(
        &dir.path().join("s.sqlite"),
        vec![
            item("1", "a", &["Wetter"], "de"),
            item("2", "a", &["Politik"], "de"),
        ],
    );
    let mut dup = item("9", "b", &["Sport"], "en");
    dup.canonical_url = Some("//example.org/1".into());
    s.upsert_source_items(&SourceId("b".into()), vec![dup], Utc::now(), |_, _| {
        Ok(Decision::Joins {
            rep: ItemId("a:1".into()),
            reason: "exact URL".into(),
        })
    })
    .unwrap();
    s.ensure_archive_schema().unwrap();
    let all = ChannelFilter::default();
    let mut cache = ItemCache::new(10);
    let page = s
        .archive_items_cached(&all, None, None, &mut cache)
        .unwrap();
    assert_eq!(page, s.archive_items(&all, None, None).unwrap());
    let rep = &page.iter().find(|(i, _)| i.item.id.0 == "a:1").unwrap().0;
    assert_eq!(rep.also_at.len(), 1, "{page:?}");
    // The copy is withdrawn behind the pass's back: a channel read through the cache
    // still has what the archive read (the item and its copies were read once), one
    // read without it sees the store as it is now.
    s.connection()
        .execute("UPDATE items SET withdrawn = 1 WHERE id = 'b:9'", [])
        .unwrap();
    let wetter = s
        .visible_items_cached(&filter(&["Wetter"], &[]), 10, &mut cache)
        .unwrap();
    assert!(std::sync::Arc::ptr_eq(&wetter[0].item, &rep.item));
    assert_eq!(wetter[0].also_at, rep.also_at);
    let newest = s.visible_items_cached(&all, 10, &mut cache).unwrap();
    assert!(newest
        .iter()
        .any(|i| std::sync::Arc::ptr_eq(&i.item, &rep.item)));
    let uncached = s
        .visible_items_where(&filter(&["Wetter"], &[]), 10)
        .unwrap();
    assert!(uncached[0].also_at.is_empty());
}

/// A store of schema 4 as that version wrote it (the `.dump` of the multi-partner golden
/// build's store): opening it drops the item insert triggers and the indexes schema 5
/// replaces, and keeps every item, published ID and cluster and the publish index;
/// items stored then keep the publish index equal to a recount.
#[test]
fn store_of_schema_4_loses_its_insert_triggers_and_keeps_every_item_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.sqlite");
    let dump = include_str!("../../tests/fixtures/store/multi-partner-1.schema-4.sql");
    type Row = ItemRow<i64>;
    let rows = |conn: &Connection| -> Vec<Row> { item_rows(conn, "published") };
    let text = |conn: &Connection, sql: &str| -> String {
        let mut stmt = conn.prepare(sql).unwrap();
        let all = stmt
            .query_map([], |r| {
                Ok(format!(
                    "{}={}",
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?
                ))
            })
            .unwrap();
        all.map(Result::unwrap).collect::<Vec<_>>().join(" ")
    };
    let tag_counts = "SELECT tag, items FROM visible_tag_counts ORDER BY 1";
    let lang_counts = "SELECT language, items FROM visible_language_counts ORDER BY 1";
    let (before, tags_before, langs_before) = {
        let conn = restore_dump(&path, dump, 4);
        (
            rows(&conn),
            text(&conn, tag_counts),
            text(&conn, lang_counts),
        )
    };
    assert_eq!(before.len(), 17);
    assert!(!tags_before.is_empty() && !langs_before.is_empty());

    let mut s = Store::open(&path, "example.org").unwrap();
    let conn = s.connection();
    let version = user_version(conn);
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(rows(conn), before, "items, published IDs and clusters kept");
    assert_eq!(text(conn, tag_counts), tags_before);
    assert_eq!(text(conn, lang_counts), langs_before);
    let gone: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('items_dirty_insert',
                 'publish_index_item_insert', 'items_source', 'items_held', 'items_language')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(gone, 0, "the insert triggers and replaced indexes are gone");

    // New items, one a copy of another, counted as a recount counts them.
    let a = item("n1", "neu", &["Wetter", "Neu"], "de");
    let b = item("n2", "neu", &["Neu"], "de-AT");
    let rep = a.id.clone();
    s.upsert_source_items(&a.source.clone(), vec![a, b], Utc::now(), |_, it| {
        Ok(if it.id == rep {
            Decision::New
        } else {
            Decision::Joins {
                rep: rep.clone(),
                reason: "test".into(),
            }
        })
    })
    .unwrap();
    let conn = s.connection();
    let kept = (text(conn, tag_counts), text(conn, lang_counts));
    conn.execute_batch(
        "DELETE FROM visible_tag_counts; DELETE FROM visible_language_counts;
         INSERT INTO visible_tag_counts (tag, items)
             SELECT t.tag, COUNT(*) FROM item_tags t JOIN items i ON i.id = t.item_id
             WHERE i.dup_of IS NULL AND i.withdrawn = 0 GROUP BY t.tag;
         INSERT INTO visible_language_counts (language, items)
             SELECT language, COUNT(*) FROM items
             WHERE dup_of IS NULL AND withdrawn = 0 AND language IS NOT NULL GROUP BY language;",
    )
    .unwrap();
    assert_eq!(kept, (text(conn, tag_counts), text(conn, lang_counts)));
    let dirty = s.publish_dirty().unwrap();
    assert!(dirty.sources.contains("neu") && dirty.tags.contains("Neu"));
    assert!(dirty.languages.contains("de") && dirty.languages.contains("de-AT"));
}
