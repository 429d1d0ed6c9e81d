//! The PostgreSQL store's channel, archive and upload areas against the SQLite store's
//! behaviour, through the `Backend` interface the publisher uses: the same sequence of
//! source commits (real fixture items, the real deduplication rules, as
//! `postgres_items.rs` runs them) on both stores, and after each step every answer a
//! publish reads — visible items per channel filter (order, copies, whole items),
//! through a shared `ItemCache` and without one, tag counts, languages, what changed,
//! the representatives marked shown, archive pages and their items — compared, and
//! checked as well. The PostgreSQL database orders text by an ICU collation (not
//! byte order), so an ordering that forgot `COLLATE "C"` shows up as a difference.

use std::collections::BTreeMap;

use feedwerk::dedupe::Deduper;
use feedwerk::model::{ChannelFilter, Item, ItemId, SourceId};
use feedwerk::normalise::fingerprint;
use feedwerk::store::archive::Cursor;
use feedwerk::store::postgres::PgStore;
use feedwerk::store::{
    Backend, ItemCache, RemoteObject, RemoteState, Store, StoreError, StoredItem,
};

use crate::pg_server::PgServer;
use crate::postgres_items::{at, config, feeds, republished_by_agency, AUTHORITY};

/// One source's commit as `refresh/commit.rs` makes it, through the `Backend`.
fn commit(s: &mut dyn Backend, deduper: &Deduper, source: &str, mut items: Vec<Item>, hours: i64) {
    let now = at(hours);
    let id = SourceId(source.into());
    s.remap_churned_ids(&id, &mut items, now).unwrap();
    let present: Vec<ItemId> = items.iter().map(|i| i.id.clone()).collect();
    s.upsert_source_items(&id, items, now, &mut |held, item| {
        deduper.decide(held, item)
    })
    .unwrap();
    s.withdraw_missing(&id, &present, false, now).unwrap();
}

/// Three stories of the agency published in the same second, whose IDs differ where
/// byte order and a language's collation disagree (`B` < `a` < `ä` byte-wise).
fn ties(template: &Item) -> Vec<Item> {
    let stories = [
        ("B", "Haushalt für das kommende Jahr beschlossen", "Der Rat stimmte nach langer Debatte dem Entwurf der Kämmerei zu, die Rücklagen werden teilweise aufgelöst und Investitionen in Schulen vorgezogen."),
        ("a", "Neue Radwege im Norden der Stadt", "Zwischen Bahnhof und Hafen entstehen bis zum Sommer geschützte Spuren für Fahrräder, die Bauarbeiten beginnen an der Brücke über den Kanal."),
        ("ä", "Chorkonzert am Sonntag in der Kirche", "Drei Ensembles aus der Region singen Werke von Bach bis Pärt, der Eintritt ist frei und Spenden gehen an die Orgelsanierung."),
    ];
    stories
        .iter()
        .map(|(key, title, text)| {
            let mut it = template.clone();
            it.source = SourceId("agentur".into());
            it.id = ItemId(format!("agentur:tie-{key}"));
            it.guid = Some(format!("urn:tie:{key}"));
            it.url = Some(
                format!("https://agentur.example/{}", title.len())
                    .parse()
                    .unwrap(),
            );
            it.canonical_url = it.url.as_ref().map(|u| u.to_string());
            it.title = (*title).to_owned();
            it.text = (*text).to_owned();
            it.summary = (*text).to_owned();
            it.fingerprint = fingerprint::fingerprint(text);
            it.tags = vec!["Gleichstand".into(), "Meldung".into()];
            it.language = Some("de-AT".into());
            it
        })
        .collect()
}

/// The channel filters a deployment of these sources publishes (every source, tag and
/// language channel of the current store) and combinations of dimensions.
fn filters(s: &dyn Backend) -> Vec<(String, ChannelFilter)> {
    let mut out = vec![("all".to_owned(), ChannelFilter::default())];
    for src in config().sources {
        out.push((
            format!("sources/{}", src.id),
            ChannelFilter {
                sources: vec![src.id.clone()],
                ..ChannelFilter::default()
            },
        ));
    }
    let tags = s.visible_tag_counts().unwrap();
    for (tag, _) in &tags {
        out.push((
            format!("tags/{tag}"),
            ChannelFilter {
                tags: vec![tag.clone()],
                ..ChannelFilter::default()
            },
        ));
    }
    for lang in s
        .visible_languages()
        .unwrap()
        .into_iter()
        .chain(["de-AT".into(), "d".into()])
    {
        out.push((
            format!("lang/{lang}"),
            ChannelFilter {
                languages: vec![lang],
                ..ChannelFilter::default()
            },
        ));
    }
    let two_tags: Vec<String> = tags.iter().take(2).map(|(t, _)| t.clone()).collect();
    out.push((
        "two tags".into(),
        ChannelFilter {
            tags: two_tags.clone(),
            ..ChannelFilter::default()
        },
    ));
    out.push((
        "source and tag".into(),
        ChannelFilter {
            sources: vec![SourceId("digest".into()), SourceId("agentur".into())],
            tags: two_tags,
            ..ChannelFilter::default()
        },
    ));
    out.push((
        "source and language".into(),
        ChannelFilter {
            sources: vec![SourceId("verband".into()), SourceId("agentur".into())],
            languages: vec!["de".into()],
            ..ChannelFilter::default()
        },
    ));
    out.push((
        "all three".into(),
        ChannelFilter {
            sources: vec![SourceId("agentur".into()), SourceId("src00000".into())],
            tags: vec!["Gleichstand".into(), "Meldung".into()],
            languages: vec!["de".into(), "en".into()],
        },
    ));
    out
}

fn show(items: &[StoredItem]) -> String {
    format!("{items:#?}")
}

fn sorted(set: &std::collections::HashSet<String>) -> Vec<&String> {
    let mut v: Vec<&String> = set.iter().collect();
    v.sort();
    v
}

/// Everything a publish reads from the channel and archive areas, as text, after
/// checking what must hold whatever the backend.
fn observe(s: &dyn Backend, seen: &mut Vec<String>, label: &str) {
    let d = s.publish_dirty().unwrap();
    seen.push(format!(
        "{label}: dirty sources {:?} tags {:?} languages {:?}",
        sorted(&d.sources),
        sorted(&d.tags),
        sorted(&d.languages)
    ));
    let tags = s.visible_tag_counts().unwrap();
    seen.push(format!("{label}: tag counts {tags:?}"));
    seen.push(format!(
        "{label}: languages {:?}",
        s.visible_languages().unwrap()
    ));
    let every = s.visible_items(10_000).unwrap();
    // The counts are those of the visible items (an item counts once per tag).
    let mut recount: BTreeMap<String, usize> = BTreeMap::new();
    for it in &every {
        let mut own = it.item.tags.clone();
        own.sort();
        own.dedup();
        for t in own {
            *recount.entry(t).or_default() += 1;
        }
    }
    let mut counted: Vec<(String, usize)> = recount.into_iter().collect();
    counted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    assert_eq!(tags, counted, "{label}: tag counts are the visible items'");
    // Newest first, ties by ID byte-wise.
    for w in every.windows(2) {
        let key = |s: &StoredItem| (std::cmp::Reverse(s.item.published), s.item.id.0.clone());
        assert!(
            key(&w[0]) < key(&w[1]),
            "{label}: order {:?} {:?}",
            w[0].item.id,
            w[1].item.id
        );
    }
    seen.push(format!("{label}: visible {}", show(&every)));
    seen.push(format!(
        "{label}: newest 7 {}",
        show(&s.visible_items(7).unwrap())
    ));
    // A cache smaller than a channel, so items are evicted while the pass reads.
    let mut cache = ItemCache::new(9);
    for (name, f) in filters(s) {
        let plain = s.visible_items_where(&f, 12).unwrap();
        let cached = s.visible_items_cached(&f, 12, &mut cache).unwrap();
        assert_eq!(plain, cached, "{label}: {name} through the cache");
        for it in &plain {
            assert!(f.matches(&it.item), "{label}: {name} shows {}", it.item.id);
        }
        seen.push(format!("{label}: {name} {}", show(&plain)));
        let cursors = s.archive_cursors(&f, None).unwrap();
        let all = s.archive_items(&f, None, None).unwrap();
        assert_eq!(
            cursors,
            all.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>(),
            "{label}: {name} cursors are the items' positions"
        );
        for w in cursors.windows(2) {
            assert!(
                (w[0].0, w[0].1.as_bytes()) < (w[1].0, w[1].1.as_bytes()),
                "{label}: {name} first-seen order"
            );
        }
        seen.push(format!("{label}: {name} cursors {cursors:?}"));
        // Ranges that start or end between the ties, whose IDs sort differently in
        // byte order and in the database's collation.
        for (i, c) in cursors
            .iter()
            .enumerate()
            .filter(|(_, c)| c.1.contains(":tie-"))
        {
            let positions = |v: Vec<(StoredItem, Cursor)>| -> Vec<Cursor> {
                v.into_iter().map(|(_, c)| c).collect()
            };
            let later = positions(s.archive_items(&f, Some(c), None).unwrap());
            assert_eq!(later, cursors[i + 1..], "{label}: {name} after {c:?}");
            assert_eq!(s.archive_cursors(&f, Some(c)).unwrap(), later);
            let upto = positions(s.archive_items(&f, None, Some(c)).unwrap());
            assert_eq!(upto, cursors[..=i], "{label}: {name} up to {c:?}");
        }
        if let (Some(a), Some(b)) = (cursors.get(2), cursors.get(6)) {
            let mid = s.archive_items(&f, Some(a), Some(b)).unwrap();
            let mid_cached = s
                .archive_items_cached(&f, Some(a), Some(b), &mut cache)
                .unwrap();
            assert_eq!(mid, mid_cached, "{label}: {name} archive through the cache");
            assert_eq!(mid.len(), 4, "{label}: {name} after the 3rd up to the 7th");
            let after = s.archive_items(&f, Some(b), None).unwrap();
            seen.push(format!(
                "{label}: {name} archive {:#?} after {:?}",
                mid,
                after
                    .iter()
                    .map(|(i, c)| (&i.published_id, c))
                    .collect::<Vec<_>>()
            ));
        }
    }
}

/// The archive pages of two channels cut every four items, the older ones sealed.
fn archive_pages(s: &dyn Backend, seen: &mut Vec<String>) {
    for (channel, f) in [
        ("all", ChannelFilter::default()),
        (
            "lang/de",
            ChannelFilter {
                languages: vec!["de".into()],
                ..ChannelFilter::default()
            },
        ),
    ] {
        s.ensure_archive_schema().unwrap();
        let summary = s.archive_summary(channel).unwrap();
        let after = summary.last.as_ref().map(|p| p.end.clone());
        let cursors = s.archive_cursors(&f, after.as_ref()).unwrap();
        for (i, end) in cursors.chunks(4).filter(|c| c.len() == 4).enumerate() {
            let page = summary.count + i as u32 + 1;
            s.add_archive_page(channel, page, &end[3]).unwrap();
            if page > 1 {
                s.seal_archive_page(channel, page - 1).unwrap();
            }
        }
        seen.push(format!(
            "{channel}: pages {:?}",
            s.archive_pages(channel).unwrap()
        ));
        let summary = s.archive_summary(channel).unwrap();
        assert!(summary.count >= 2, "{channel}: {summary:?}");
        assert_eq!(summary.unsealed.len(), 1);
        assert!(summary.is_sealed(1) && !summary.is_sealed(summary.count));
        seen.push(format!("{channel}: summary {summary:?}"));
        let one = s.archive_page_end(channel, 1).unwrap().expect("page 1");
        let two = s.archive_page_end(channel, 2).unwrap().expect("page 2");
        assert_eq!(s.archive_page_end(channel, 999).unwrap(), None);
        let page_two = s.archive_items(&f, Some(&one), Some(&two)).unwrap();
        assert_eq!(page_two.len(), 4);
        seen.push(format!("{channel}: page 2 {page_two:#?}"));
    }
    // A page stored twice is refused, as SQLite's primary key refuses it.
    assert!(s
        .add_archive_page("all", 1, &Cursor(0, "x".into()))
        .is_err());
}

/// What publishing to object storage records, written and read back.
fn uploads(s: &dyn Backend, seen: &mut Vec<String>) {
    let t = at(6);
    for (path, hash) in [
        ("rss.xml", "h1"),
        ("sources/Zeta.atom", "h2"),
        ("sources/alpha.atom", "h3"),
    ] {
        s.save_output_state(path, hash, t).unwrap();
    }
    s.save_output_state("sources/archive/1.atom", "h4", t)
        .unwrap();
    s.save_output_state("sources0.atom", "h5", t).unwrap();
    let in_dir: BTreeMap<_, _> = s.output_states_in("sources").unwrap().into_iter().collect();
    let names: Vec<&String> = in_dir.keys().collect();
    assert_eq!(
        names,
        ["Zeta.atom", "alpha.atom"],
        "only the directory's own files"
    );
    assert_eq!(in_dir["alpha.atom"].hash, "h3");
    seen.push(format!("outputs in sources/ {in_dir:?}"));
    s.save_output_headers(&[]).unwrap();
    s.save_output_headers(&[
        ("rss.xml".into(), "application/rss+xml", "max-age=60"),
        (
            "sources/alpha.atom".into(),
            "application/atom+xml",
            "max-age=60",
        ),
        (
            "sources/Zeta.atom".into(),
            "application/atom+xml",
            "max-age=60",
        ),
        (
            "sources/Zeta.atom".into(),
            "application/atom+xml",
            "max-age=300",
        ),
        (
            "not-published.json".into(),
            "application/feed+json",
            "no-cache",
        ),
    ])
    .unwrap();
    s.save_output_headers(&[("rss.xml".into(), "application/rss+xml", "max-age=60")])
        .unwrap();
    let outputs = s.published_outputs().unwrap();
    assert_eq!(outputs.len(), 3, "{outputs:?}");
    assert_eq!(outputs[0].path, "rss.xml");
    assert_eq!(
        outputs[1].path, "sources/Zeta.atom",
        "byte order: Z before a"
    );
    assert_eq!(outputs[1].cache_control, "max-age=300");
    seen.push(format!("published outputs {outputs:?}"));
    let object = |hash: &str, etag: Option<&str>| RemoteObject {
        content_hash: hash.into(),
        content_type: "application/rss+xml".into(),
        cache_control: "max-age=60".into(),
        etag: etag.map(String::from),
    };
    s.save_remote_object("bucket", "rss.xml", &object("h0", None), t)
        .unwrap();
    s.save_remote_object("bucket", "rss.xml", &object("h1", Some("\"e1\"")), t)
        .unwrap();
    s.save_remote_object("bucket", "gone.xml", &object("h9", None), t)
        .unwrap();
    s.save_remote_object("other", "rss.xml", &object("h1", None), t)
        .unwrap();
    s.forget_remote_object("bucket", "gone.xml").unwrap();
    let objects: BTreeMap<_, _> = s.remote_objects("bucket").unwrap().into_iter().collect();
    assert_eq!(objects.len(), 1);
    assert_eq!(objects["rss.xml"], object("h1", Some("\"e1\"")));
    seen.push(format!("remote objects {objects:?}"));
    assert_eq!(s.remote_state("bucket").unwrap(), RemoteState::default());
    let state = RemoteState {
        last_attempt: Some(t),
        last_success: None,
        consecutive_failures: 3,
        last_error: Some("503 from the target".into()),
        next_attempt: Some(at(7)),
        objects: 12,
        held_deletes: 2,
    };
    s.save_remote_state("bucket", &state).unwrap();
    s.save_remote_state("bucket", &state).unwrap();
    assert_eq!(s.remote_state("bucket").unwrap(), state);
    seen.push(format!(
        "remote state {:?}",
        s.remote_state("bucket").unwrap()
    ));
}

/// The fixed sequence both stores run, and every answer along the way. `check` is
/// called after each step (the PostgreSQL run compares the trigger-kept index with a
/// recount there).
fn sequence(s: &mut dyn Backend, check: &mut dyn FnMut(&str)) -> Vec<String> {
    let cfg = config();
    let deduper = feedwerk::refresh::deduper(&cfg);
    let mut seen = Vec::new();
    let first = feeds(&cfg, at(0));
    for (source, items) in &first {
        commit(s, &deduper, source, items.clone(), 0);
    }
    commit(s, &deduper, "agentur", ties(&first[0].1[0]), 0);
    check("first build");
    observe(s, &mut seen, "first build");
    let d = s.publish_dirty().unwrap();
    assert!(d.sources.contains("agentur") && d.tags.contains("Gleichstand"));
    assert!(d.languages.contains("de-AT"));
    s.clear_publish_dirty().unwrap();
    assert!(s.publish_dirty().unwrap().is_empty());

    // Nothing changed: nothing is dirty.
    let again = feeds(&cfg, at(1));
    for (source, items) in &again {
        commit(s, &deduper, source, items.clone(), 1);
    }
    check("unchanged");
    assert!(
        s.publish_dirty().unwrap().is_empty(),
        "an unchanged refresh marks nothing"
    );

    // The digest changes one item's text; the verband drops its two newest items.
    let mut digest = again[1].1.clone();
    digest[0]
        .text
        .push_str(" Nachtrag: der Termin wurde verschoben.");
    digest[0].fingerprint = fingerprint::fingerprint(&digest[0].text);
    commit(s, &deduper, "digest", digest, 2);
    let mut verband = again[0].1.clone();
    verband.sort_by_key(|it| std::cmp::Reverse(it.published));
    let dropped: Vec<Item> = verband.drain(..2).collect();
    commit(s, &deduper, "verband", verband.clone(), 2);
    check("a change and a retraction");
    observe(s, &mut seen, "a change and a retraction");
    let d = s.publish_dirty().unwrap();
    assert!(
        d.sources.contains("digest") && d.sources.contains("verband"),
        "{d:?}"
    );
    s.clear_publish_dirty().unwrap();

    // The retracted items come back; the agency, ranked above everyone, republishes
    // two stories of src00000 (no representative has been shown yet, so it takes
    // both over) and retracts one of its tagged stories.
    verband.extend(dropped);
    commit(s, &deduper, "verband", verband, 3);
    let agency = republished_by_agency(&first[3].1[..2]);
    let mut listed = agency;
    listed.extend(
        ties(&first[0].1[0])
            .into_iter()
            .filter(|t| !t.id.0.ends_with("-a")),
    );
    let present: Vec<ItemId> = listed.iter().map(|i| i.id.clone()).collect();
    commit(s, &deduper, "agentur", listed, 3);
    let agentur = SourceId("agentur".into());
    let gone = s.withdraw_missing(&agentur, &present, true, at(3)).unwrap();
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(gone[0].0 .0, "agentur:tie-a");
    check("the agency");
    observe(s, &mut seen, "the agency");
    let d = s.publish_dirty().unwrap();
    assert!(
        d.tags.contains("Gleichstand") && d.sources.contains("src00000"),
        "{d:?}"
    );
    let marked = s.mark_representatives_shown(at(3)).unwrap();
    assert_eq!(marked, s.visible_items(10_000).unwrap().len());
    assert_eq!(s.mark_representatives_shown(at(3)).unwrap(), 0);
    seen.push(format!("marked shown {marked}"));
    s.clear_publish_dirty().unwrap();

    // The portal is no longer configured; retention keeps 6 items a source.
    let configured: Vec<SourceId> = first
        .iter()
        .map(|(id, _)| SourceId(id.clone()))
        .chain([SourceId("agentur".into())])
        .filter(|id| id.as_str() != "portal")
        .collect();
    s.withdraw_unconfigured(&configured).unwrap();
    let d = s.publish_dirty().unwrap();
    assert!(d.sources.contains("portal"), "{d:?}");
    s.prune(6, None, at(5)).unwrap();
    check("withdrawn and pruned");
    observe(s, &mut seen, "withdrawn and pruned");
    seen.push(format!(
        "marked shown {}",
        s.mark_representatives_shown(at(5)).unwrap()
    ));
    archive_pages(s, &mut seen);
    uploads(s, &mut seen);
    s.clear_publish_dirty().unwrap();

    // A group that fails leaves nothing: not the items, not their marks, not the
    // archive page, the upload records or the shown marks.
    let before = snapshot(s);
    let rolled: Result<(), StoreError> = s.in_transaction(|s| {
        let mut items = ties(&first[0].1[0]);
        for (i, it) in items.iter_mut().enumerate() {
            it.id = ItemId(format!("{}-rolled", it.id));
            it.guid = Some(format!("urn:rolled:{i}"));
            it.tags = vec!["Verworfen".into()];
        }
        commit(s, &deduper, "agentur", items, 6);
        assert!(s
            .visible_tag_counts()?
            .iter()
            .any(|(t, _)| t == "Verworfen"));
        assert!(!s.publish_dirty()?.is_empty());
        s.mark_representatives_shown(at(6))?;
        s.add_archive_page("all", 99, &Cursor(1, "z".into()))?;
        s.forget_remote_object("bucket", "rss.xml")?;
        s.save_output_headers(&[("rss.xml".into(), "text/plain", "no-store")])?;
        Err(StoreError::PgGone)
    });
    assert!(matches!(rolled, Err(StoreError::PgGone)), "{rolled:?}");
    assert_eq!(snapshot(s), before, "a rolled-back group left something");
    check("rolled back");

    // The same group committed keeps everything.
    s.in_transaction(|s| -> Result<(), StoreError> {
        commit(s, &deduper, "agentur", ties(&first[0].1[0]), 6);
        s.add_archive_page("all", 99, &Cursor(1, "z".into()))?;
        Ok(())
    })
    .unwrap();
    check("committed group");
    seen.push(format!("after a committed group: {}", snapshot(s)));
    seen
}

/// What the rollback must leave as it was.
fn snapshot(s: &dyn Backend) -> String {
    let objects: BTreeMap<_, _> = s.remote_objects("bucket").unwrap().into_iter().collect();
    let d = s.publish_dirty().unwrap();
    format!(
        "{} | {:?} | {:?} | {:?} {:?} {:?} | {:?} | {:?} | {:?} | {:?}",
        show(&s.visible_items(10_000).unwrap()),
        s.visible_tag_counts().unwrap(),
        s.visible_languages().unwrap(),
        sorted(&d.sources),
        sorted(&d.tags),
        sorted(&d.languages),
        s.archive_pages("all").unwrap(),
        objects,
        s.published_outputs().unwrap(),
        s.clusters().unwrap(),
    )
}

/// A database that orders text by ICU's root collation, where `a` < `ä` < `B`.
fn icu_database(pg: &PgServer, name: &str) -> String {
    pg.psql(
        "postgres",
        &format!(
            "CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'
             LOCALE_PROVIDER icu ICU_LOCALE 'und' LOCALE 'C'"
        ),
    );
    assert_eq!(
        pg.psql(
            name,
            "SELECT string_agg(x, ' ' ORDER BY x) FROM unnest(ARRAY['B', 'a', 'ä']) x"
        ),
        "a ä B",
        "the database's own order is not byte order"
    );
    pg.url(name)
}

/// The publish index as the triggers keep it, and recounted from the items.
fn kept_and_recounted(pg: &PgServer, db: &str) -> (String, String) {
    let kept = [
        "SELECT string_agg(tag || '=' || items, ' ' ORDER BY tag COLLATE \"C\") FROM visible_tag_counts",
        "SELECT string_agg(language || '=' || items, ' ' ORDER BY language COLLATE \"C\")
         FROM visible_language_counts",
        "SELECT string_agg(u.item_id, ' ' ORDER BY u.item_id COLLATE \"C\")
         FROM unshown_representatives u JOIN items i ON i.id = u.item_id
         WHERE i.dup_of IS NULL AND NOT i.withdrawn
           AND u.item_id NOT IN (SELECT item_id FROM dedupe_shown)",
    ];
    let recounted = [
        "SELECT string_agg(tag || '=' || n, ' ' ORDER BY tag COLLATE \"C\") FROM (
             SELECT t.tag, count(*) AS n FROM item_tags t JOIN items i ON i.id = t.item_id
             WHERE i.dup_of IS NULL AND NOT i.withdrawn GROUP BY t.tag) c",
        "SELECT string_agg(language || '=' || n, ' ' ORDER BY language COLLATE \"C\") FROM (
             SELECT language, count(*) AS n FROM items
             WHERE dup_of IS NULL AND NOT withdrawn AND language IS NOT NULL
             GROUP BY language) c",
        "SELECT string_agg(id, ' ' ORDER BY id COLLATE \"C\") FROM items
         WHERE dup_of IS NULL AND NOT withdrawn
           AND id NOT IN (SELECT item_id FROM dedupe_shown)",
    ];
    let read = |qs: [&str; 3]| qs.map(|q| pg.psql(db, q)).join(" | ");
    (read(kept), read(recounted))
}

#[test]
fn channels_archives_and_uploads_answer_the_same_on_sqlite_and_postgresql() {
    let Some(pg) = PgServer::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut lite = Store::open(&dir.path().join("channels.sqlite"), AUTHORITY).unwrap();
    let url = icu_database(&pg, "channels");
    let pgs = PgStore::connect(&url).unwrap().with_authority(AUTHORITY);
    let mut pgs: Box<dyn Backend> = Box::new(pgs);
    let on_sqlite = sequence(&mut lite, &mut |_| {});
    let mut checks = 0;
    let on_pg = sequence(pgs.as_mut(), &mut |step| {
        let (kept, recounted) = kept_and_recounted(&pg, "channels");
        assert_eq!(kept, recounted, "the publish index after {step}");
        checks += 1;
    });
    assert_eq!(checks, 7);
    for (i, (a, b)) in on_sqlite.iter().zip(&on_pg).enumerate() {
        assert_eq!(a, b, "answer {i} differs (left SQLite, right PostgreSQL)");
    }
    assert_eq!(on_sqlite.len(), on_pg.len());

    // The ties are shown in byte order of their IDs on both, not the database's.
    let ties = on_pg
        .iter()
        .find(|l| l.starts_with("first build: tags/Gleichstand "))
        .expect("the ties' tag channel");
    let (b, a, umlaut) = (
        ties.find("agentur:tie-B").unwrap(),
        ties.find("agentur:tie-a").unwrap(),
        ties.find("agentur:tie-ä").unwrap(),
    );
    assert!(b < a && a < umlaut, "{ties}");
    // Copies are listed under their representatives somewhere in the first build.
    assert!(on_pg
        .iter()
        .any(|l| l.starts_with("first build: all ") && l.contains("source_title")));
}

/// A row whose language column says `de` while its item says `en` is a candidate of
/// the `de` channel and refused by `filter.matches` on both stores, and the channel
/// is still filled to its limit from the next candidates (PostgreSQL reads a further
/// batch for the refused one).
#[test]
fn a_candidate_refused_by_the_filter_is_replaced_by_the_next_on_both_stores() {
    let Some(pg) = PgServer::start() else { return };
    let cfg = config();
    let deduper = feedwerk::refresh::deduper(&cfg);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("refused.sqlite");
    let mut lite = Store::open(&path, AUTHORITY).unwrap();
    let mut pgs = PgStore::connect(&pg.create_database("refused"))
        .unwrap()
        .with_authority(AUTHORITY);
    let first = feeds(&cfg, at(0));
    let de = ChannelFilter {
        languages: vec!["de".into()],
        ..ChannelFilter::default()
    };
    let mut answers = Vec::new();
    for s in [&mut lite as &mut dyn Backend, &mut pgs] {
        for (source, items) in &first {
            commit(s, &deduper, source, items.clone(), 0);
        }
    }
    // The newest English item, its column made German.
    let english = lite
        .visible_items(10_000)
        .unwrap()
        .into_iter()
        .find(|s| s.item.language.as_deref() == Some("en"))
        .expect("an English item")
        .item;
    let key = |i: &Item| (std::cmp::Reverse(i.published), i.id.0.clone());
    let english_key = key(&english);
    let english = english.id.0.clone();
    let c = rusqlite::Connection::open(&path).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    c.execute("UPDATE items SET language = 'de' WHERE id = ?1", [&english])
        .unwrap();
    pg.psql(
        "refused",
        &format!("UPDATE items SET language = 'de' WHERE id = '{english}'"),
    );
    for s in [&lite as &dyn Backend, &pgs] {
        let all_de = s.visible_items_where(&de, 10_000).unwrap();
        assert!(all_de.iter().all(|i| i.item.id.0 != english));
        // A limit reached only by reading past the refused candidate: the German
        // items newer than it, and one more.
        let newer = all_de.iter().filter(|i| key(&i.item) < english_key).count();
        let limit = newer + 1;
        assert!(limit < all_de.len(), "{newer} of {}", all_de.len());
        let newest = s.visible_items_where(&de, limit).unwrap();
        assert_eq!(newest, all_de[..limit]);
        answers.push(format!("{newest:?}"));
        let cursors = s.archive_cursors(&de, None).unwrap();
        answers.push(format!("{cursors:?}"));
    }
    assert_eq!(
        answers[0], answers[2],
        "visible: left SQLite, right PostgreSQL"
    );
    // One dimension: the positions are the query's, refused candidate included, on
    // both stores (neither parses the items for them).
    assert_eq!(
        answers[1], answers[3],
        "cursors: left SQLite, right PostgreSQL"
    );
    assert!(answers[3].contains(&english));
}

/// The parity config with publishing settings that give every area work: every tag a
/// channel, every channel archive pages of five items.
fn publishing_config(dir: &std::path::Path) -> feedwerk::config::Config {
    let mut text = String::from(
        "[site]\ntitle = \"Parity\"\nbase_url = \"https://news.example/\"\nlanguage = \"de\"\n\
         timezone = \"Europe/Berlin\"\nid_date = 2024-01-01\n\n\
         [publish]\noutput_dir = \"public\"\nmax_items = 10\narchive_page_size = 5\n\
         archives = \"all\"\ntag_min_items = 1\n\n[store]\npath = \"store.sqlite\"\n\n",
    );
    for src in config().sources {
        text.push_str(&format!(
            "[[source]]\nid = \"{}\"\nkind = \"feed\"\nurl = \"http://127.0.0.1:9/{}.xml\"\n\
             priority = {}\n\n",
            src.id, src.id, src.priority
        ));
    }
    feedwerk::config::Config::parse(&text, &dir.join("config.toml")).expect("valid config")
}

/// Every file under `dir`, by path relative to it.
fn files(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Three publishes (a first build, one after a change and a retraction, one after
/// nothing changed) by the real publisher write the same files from both stores, and
/// report the same documents written: the channel, archive and upload areas as a
/// publish uses them.
#[test]
fn the_publisher_writes_the_same_files_from_sqlite_and_postgresql() {
    use feedwerk::publish::{self, Mode};
    let Some(pg) = PgServer::start() else { return };
    let (lite_dir, pg_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut lite = Store::open(&lite_dir.path().join("store.sqlite"), AUTHORITY).unwrap();
    let mut pgs = PgStore::connect(&icu_database(&pg, "publish"))
        .unwrap()
        .with_authority(AUTHORITY);
    let mut reports = Vec::new();
    for (s, dir) in [
        (&mut lite as &mut dyn Backend, lite_dir.path()),
        (&mut pgs, pg_dir.path()),
    ] {
        let cfg = publishing_config(dir);
        let deduper = feedwerk::refresh::deduper(&cfg);
        let first = feeds(&cfg, at(0));
        for (source, items) in &first {
            commit(s, &deduper, source, items.clone(), 0);
        }
        commit(s, &deduper, "agentur", ties(&first[0].1[0]), 0);
        let mut seen = Vec::new();
        let (_, r) = publish::run(&cfg, s, at(1), Mode::Files, None).unwrap();
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert!(
            r.written.iter().any(|p| p.contains("archive/")),
            "{:?}",
            r.written
        );
        seen.push(format!("first {:?} {}", r.written, r.rendered));
        let mut digest = first[1].1.clone();
        digest[0]
            .text
            .push_str(" Nachtrag: der Termin wurde verschoben.");
        digest[0].fingerprint = fingerprint::fingerprint(&digest[0].text);
        commit(s, &deduper, "digest", digest, 2);
        let mut verband = first[0].1.clone();
        verband.sort_by_key(|it| std::cmp::Reverse(it.published));
        verband.drain(..2);
        commit(s, &deduper, "verband", verband, 2);
        let (_, r) = publish::run(&cfg, s, at(3), Mode::Files, None).unwrap();
        assert!(!r.written.is_empty() && r.failed.is_empty());
        seen.push(format!("changed {:?} {}", r.written, r.rendered));
        let (_, r) = publish::run(&cfg, s, at(4), Mode::Files, None).unwrap();
        assert!(r.written.is_empty(), "nothing changed: {:?}", r.written);
        seen.push(format!("unchanged {:?} {}", r.written, r.rendered));
        seen.push(format!("outputs {:?}", s.published_outputs().unwrap()));
        reports.push((seen, files(&dir.join("public"))));
    }
    let (on_sqlite, lite_files) = &reports[0];
    let (on_pg, pg_files) = &reports[1];
    assert_eq!(on_sqlite, on_pg, "left SQLite, right PostgreSQL");
    assert!(lite_files.len() > 100, "{} files", lite_files.len());
    assert_eq!(
        lite_files.keys().collect::<Vec<_>>(),
        pg_files.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in lite_files {
        assert!(
            pg_files[path] == *bytes,
            "{path} differs:\n{}\n---\n{}",
            String::from_utf8_lossy(bytes),
            String::from_utf8_lossy(&pg_files[path])
        );
    }
}

/// Each query a channel or an archive page makes on a large store reads an index
/// range, not every item: the store's own statements, as the server planned them
/// (`auto_explain` logs each plan), over 30 000 items with statistics.
#[test]
fn channel_and_archive_queries_read_index_ranges_on_a_large_store() {
    let Some(pg) = PgServer::start() else { return };
    let cfg = config();
    let deduper = feedwerk::refresh::deduper(&cfg);
    let url = pg.create_database("plans");
    let mut pgs = PgStore::connect(&url).unwrap().with_authority(AUTHORITY);
    for (source, items) in &feeds(&cfg, at(0)) {
        commit(&mut pgs, &deduper, source, items.clone(), 0);
    }
    // 30 000 more items of 40 sources, one in ten a duplicate, one in a hundred
    // withdrawn; two tags of a hundred each, languages de and en.
    pg.psql(
        "plans",
        "INSERT INTO items (id, source_id, published, first_seen, last_seen, published_id,
                            dup_of, withdrawn, data, language)
         SELECT b.id, b.src, 1700000000 + g, 1700000000 + g / 3, 1700000000 + g,
                'tag:bulk:' || g,
                CASE WHEN g % 10 = 0 THEN 'bulk' || ((g - 1) % 40) || ':' || (g - 1) END,
                g % 100 = 0,
                jsonb_set(jsonb_set(jsonb_set(jsonb_set(t.d, '{id}', to_jsonb(b.id)),
                    '{source}', to_jsonb(b.src)), '{language}', to_jsonb(b.lang)),
                    '{tags}', jsonb_build_array(b.tag))::text,
                b.lang
         FROM (SELECT g, 'bulk' || (g % 40) || ':' || g AS id, 'bulk' || (g % 40) AS src,
                      CASE WHEN g % 2 = 0 THEN 'de' ELSE 'en' END AS lang,
                      'tag' || (g % 100) AS tag
               FROM generate_series(1, 30000) g) b,
              (SELECT data::jsonb AS d FROM items ORDER BY id LIMIT 1) t;
         INSERT INTO item_tags (item_id, tag)
         SELECT 'bulk' || (g % 40) || ':' || g, 'tag' || (g % 100) FROM generate_series(1, 30000) g;
         ANALYZE;",
    );
    let explained = format!(
        "{url}?options=-c%20session_preload_libraries%3Dauto_explain%20\
         -c%20auto_explain.log_min_duration%3D0"
    );
    let s: Box<dyn Backend> = Box::new(PgStore::connect(&explained).unwrap());
    let before = pg.log().len();
    let source = |id: &str| ChannelFilter {
        sources: vec![SourceId(id.into())],
        ..ChannelFilter::default()
    };
    let tag = ChannelFilter {
        tags: vec!["tag7".into()],
        ..ChannelFilter::default()
    };
    let lang = ChannelFilter {
        languages: vec!["de".into()],
        ..ChannelFilter::default()
    };
    let both = ChannelFilter {
        sources: vec![SourceId("bulk7".into())],
        tags: vec!["tag7".into()],
        ..ChannelFilter::default()
    };
    let filters = [ChannelFilter::default(), source("bulk3"), tag, lang, both];
    let mut cache = ItemCache::new(100);
    for f in &filters {
        assert!(!s
            .visible_items_cached(f, 50, &mut cache)
            .unwrap()
            .is_empty());
        let last = s.archive_cursors(f, None).unwrap();
        assert!(last.len() > 40, "{f:?}");
        let (from, to) = (&last[last.len() - 30], &last[last.len() - 20]);
        assert_eq!(
            s.archive_items_cached(f, Some(from), Some(to), &mut cache)
                .unwrap()
                .len(),
            10
        );
        s.archive_cursors(f, Some(to)).unwrap();
    }
    let log = pg.log()[before..].to_owned();
    let plans: Vec<&str> = log
        .split("Query Text:")
        .skip(1)
        .filter(|p| p.contains("FROM items"))
        .collect();
    assert!(plans.len() >= 20, "{} plans logged:\n{log}", plans.len());
    for p in plans {
        // The whole archive of a channel (`archive_cursors` from its start) reads
        // every candidate: the plan of that one may scan.
        let whole = p.contains("first_seen FROM items i") && !p.contains("> ($");
        if !whole {
            assert!(!p.contains("Seq Scan on items"), "{p}");
        }
    }
}
