//! The store side of deduplication on PostgreSQL: each item's signature, band and
//! title-part rows, the candidate lookups [`crate::dedupe`] makes through its
//! [`Candidates`] trait while an upsert stores new items ([`PgLookup`]), and the
//! [`DedupStore`] area (identity churn, retractions, clusters, the event log).
//!
//! Which candidate is a duplicate is decided in `dedupe`, as for SQLite; this module
//! answers the same lookups with the same bounds and orders as `store/dedup.rs`,
//! `store/bounded.rs` and `store/title_parts.rs`, so both stores make the same
//! decisions. SQLite's in-memory band rows (`pending.rs`) and band bitmap
//! (`bandfilter.rs`) work around its b-tree writes and point queries; here band rows
//! are written with their signature, in its transaction, and one query reads all of
//! an item's buckets. The rows written by this process's open transaction are seen by
//! its lookups because they are on the same connection.
//!
//! Identity (published IDs) is `crate::identity`'s, the upsert is `items.rs`'.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use std::future::Future;

use chrono::{DateTime, Utc};
use deadpool_postgres::ClientWrapper;
use tokio_postgres::types::ToSql;

use super::writes::{flush, Write};
use super::{Conn, PgStore};
use crate::dedupe::{Candidates, Held, LookupError};
use crate::model::{Item, ItemId, SourceId};
use crate::normalise::fingerprint::{self, MIN_TEXT_FOR_HASH};
use crate::store::backend::DedupStore;
use crate::store::dedup::BUCKET_CAP;
use crate::store::{from_ts, parse_item, ts, Churn, Cluster, DedupeEvent, StoreError};

/// Rebuilds the derived deduplication tables (band rows, title parts) from the record
/// tables, and moves the identity sequences past the numbers held: what `feedwerk
/// migrate` calls after copying the SQLite store's rows (signatures, items, events
/// with their numbers) verbatim. Run it in the copying transaction.
pub(crate) async fn rebuild_dedupe_index(c: &ClientWrapper) -> Result<(), StoreError> {
    c.batch_execute(
        "SELECT setval(pg_get_serial_sequence('dedupe_sig', 'n'),
                       coalesce((SELECT max(n) FROM dedupe_sig), 0) + 1, false);
         SELECT setval(pg_get_serial_sequence('items', 'seq'),
                       coalesce((SELECT max(seq) FROM items), 0) + 1, false);
         SELECT setval(pg_get_serial_sequence('dedupe_events', 'seq'),
                       coalesce((SELECT max(seq) FROM dedupe_events), 0) + 1, false);
         DELETE FROM dedupe_band;
         DELETE FROM dedupe_title_part;",
    )
    .await?;
    let mut after = 0i64;
    loop {
        let rows = c
            .query(
                "SELECT n, sig FROM dedupe_sig WHERE n > $1 ORDER BY n LIMIT 1024",
                &[&after],
            )
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.get(0);
        let (mut keys, mut sigs): (Vec<i64>, Vec<i64>) = (Vec::new(), Vec::new());
        for r in &rows {
            let n: i64 = r.get(0);
            let band_keys = fingerprint::band_keys(&fingerprint::from_blob(r.get(1)));
            if band_keys.len() == fingerprint::BANDS {
                sigs.extend(std::iter::repeat_n(n, band_keys.len()));
                keys.extend(band_keys);
            }
        }
        c.execute(
            "INSERT INTO dedupe_band (bucket, sig) SELECT * FROM unnest($1::bigint[], $2::bigint[])
             ON CONFLICT DO NOTHING",
            &[&keys, &sigs],
        )
        .await?;
    }
    let mut after = String::new();
    loop {
        let rows = c
            .query(
                "SELECT id, title FROM items WHERE id COLLATE \"C\" > $1
                 ORDER BY id COLLATE \"C\" LIMIT 1024",
                &[&after],
            )
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.get(0);
        let (mut parts, mut ids): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
        for r in &rows {
            let id: String = r.get(0);
            for part in fingerprint::title_parts(r.get(1)) {
                parts.push(part);
                ids.push(id.clone());
            }
        }
        c.execute(
            "INSERT INTO dedupe_title_part (part, item_id)
             SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
            &[&parts, &ids],
        )
        .await?;
    }
    Ok(())
}

impl PgStore {
    /// [`rebuild_dedupe_index`] in a write of its own (or the open group's).
    pub fn rebuild_dedupe_index(&self) -> Result<(), StoreError> {
        self.with_write(|c| async move { rebuild_dedupe_index(&c).await })
    }
}

/// Held items with this key, the first seen 20 (SQLite's `EXACT_KEY_LIMIT`, by
/// `first_seen` then ID in byte order).
const BY_CANONICAL_URL: &str = "SELECT id FROM items WHERE canonical_url = $1
     ORDER BY first_seen, id COLLATE \"C\" LIMIT 20";
const BY_GUID: &str = "SELECT id FROM items WHERE guid = $1
     ORDER BY first_seen, id COLLATE \"C\" LIMIT 20";
const BY_TEXT_HASH: &str = "SELECT id FROM items WHERE text_hash = $1
     ORDER BY first_seen, id COLLATE \"C\" LIMIT 20";
/// Held items whose whole normalised title is the key, the most recent 50 (SQLite's
/// `TITLE_LIMIT`; ties by ID, as SQLite orders them when they all fit).
const BY_TITLE_KEY: &str = "SELECT s.item_id FROM dedupe_sig s JOIN items i ON i.id = s.item_id
     WHERE s.title_key = $1 ORDER BY i.published DESC, s.item_id COLLATE \"C\" LIMIT 50";
/// Held items with this title part, the most recent 50.
const BY_TITLE_PART: &str =
    "SELECT p.item_id FROM dedupe_title_part p JOIN items i ON i.id = p.item_id
     WHERE p.part = $1 ORDER BY i.published DESC, p.item_id COLLATE \"C\" LIMIT 50";
/// The newest [`BUCKET_CAP`] members of each bucket, with their signatures, by number.
const BY_BANDS: &str = "SELECT s.item_id, s.sig, s.version FROM dedupe_sig s
     WHERE s.n IN (
         SELECT b.sig FROM unnest($1::bigint[]) k
         CROSS JOIN LATERAL (
             SELECT sig FROM dedupe_band WHERE bucket = k ORDER BY sig DESC LIMIT 64) b)
     ORDER BY s.n";
const _: () = assert!(BUCKET_CAP == 64, "BY_BANDS spells the cap out");

/// A bounded key lookup: one of the `BY_*` queries above and its key.
type Keyed = (&'static str, String);

/// Runs key lookups in one pipeline: each statement is prepared first (from the
/// connection's cache after the first time), then every query is sent before the first
/// answer is read, so a dozen lookups cost about one round trip.
async fn keyed(c: &ClientWrapper, wanted: &[Keyed]) -> Result<Vec<Vec<ItemId>>, StoreError> {
    let mut stmts = Vec::with_capacity(wanted.len());
    for (sql, _) in wanted {
        stmts.push(c.prepare_cached(sql).await?);
    }
    let params: Vec<[&(dyn ToSql + Sync); 1]> = wanted
        .iter()
        .map(|(_, key)| [key as &(dyn ToSql + Sync)])
        .collect();
    let queries = stmts
        .iter()
        .zip(&params)
        .map(|(stmt, params)| c.query(stmt, params));
    let answers = futures_util::future::try_join_all(queries).await?;
    Ok(answers
        .iter()
        .map(|rows| rows.iter().map(|r| ItemId(r.get(0))).collect())
        .collect())
}

/// The lookups of `store::title_parts::by_title_parts`, in its order.
fn title_part_lookups(title: &str) -> Vec<Keyed> {
    let whole = fingerprint::title_key(title);
    let parts = fingerprint::title_parts(title);
    let mut out = Vec::new();
    if whole.split(' ').count() >= 2 {
        out.push((BY_TITLE_PART, whole));
    }
    for part in parts {
        out.push((BY_TITLE_PART, part.clone()));
        out.push((BY_TITLE_KEY, part));
    }
    out
}

async fn by_bands(c: &ClientWrapper, keys: &[i64]) -> Result<Vec<(ItemId, Vec<u32>)>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let stmt = c.prepare_cached(BY_BANDS).await?;
    let rows = c.query(&stmt, &[&keys]).await?;
    Ok(rows
        .iter()
        .filter(|r| r.get::<_, i64>(2) == i64::from(fingerprint::VERSION))
        .map(|r| {
            (
                ItemId(r.get(0)),
                fingerprint::from_blob(r.get::<_, &[u8]>(1)),
            )
        })
        .collect())
}

const HELD: &str = "SELECT id, source_id, coalesce(dup_of, id), title, text, language,
            published, first_seen, canonical_url, text_hash, guid
     FROM items WHERE id = ANY($1)";

/// What deduplication needs to know about these held items (those still held).
async fn held(c: &ClientWrapper, ids: &[&str]) -> Result<Vec<Held>, StoreError> {
    let stmt = c.prepare_cached(HELD).await?;
    let rows = c.query(&stmt, &[&ids]).await?;
    Ok(rows
        .iter()
        .map(|r| Held {
            id: ItemId(r.get(0)),
            source: SourceId(r.get(1)),
            rep: ItemId(r.get(2)),
            title: r.get(3),
            text: r.get(4),
            language: r.get(5),
            published: from_ts(r.get(6)),
            first_seen: from_ts(r.get(7)),
            canonical_url: r.get(8),
            text_hash: r.get(9),
            guid: r.get(10),
        })
        .collect())
}

async fn was_shown(c: &ClientWrapper, id: &str) -> Result<bool, StoreError> {
    let stmt = c
        .prepare_cached("SELECT 1 FROM dedupe_shown WHERE item_id = $1")
        .await?;
    Ok(c.query_opt(&stmt, &[&id]).await?.is_some())
}

/// What the lookups for one new item have read: the answers are the store's until the
/// item is stored (nothing is written while `decide` runs).
#[derive(Default)]
struct Answers {
    keyed: HashMap<Keyed, Vec<ItemId>>,
    bands: HashMap<Vec<i64>, Vec<(ItemId, Vec<u32>)>>,
    held: HashMap<ItemId, Option<Held>>,
}

/// The store as deduplication reads it while an upsert stores one new item.
///
/// Its first lookup runs the upsert's queued writes (so the items stored before this
/// one are found, as in SQLite) and then, in the same call to the store's runtime and
/// one pipeline, every key lookup the item's own keys imply (URL, GUID, text hash,
/// title, title parts, bands) and the held rows of the key candidates: the lookups
/// `dedupe` makes for it are then answered from memory. Anything else it asks
/// (another key, a band candidate's row, whether a representative was shown) is one
/// more call.
pub(super) struct PgLookup<'a> {
    store: &'a PgStore,
    queue: &'a RefCell<Vec<Write>>,
    item: &'a Item,
    answers: RefCell<Option<Answers>>,
}

impl<'a> PgLookup<'a> {
    pub(super) fn new(
        store: &'a PgStore,
        queue: &'a RefCell<Vec<Write>>,
        item: &'a Item,
    ) -> PgLookup<'a> {
        PgLookup {
            store,
            queue,
            item,
            answers: RefCell::new(None),
        }
    }

    /// Runs the queued writes and then `f`, in one call to the store's runtime.
    fn ask<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Conn) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let writes = std::mem::take(&mut *self.queue.borrow_mut());
        if writes.is_empty() {
            return self.store.with_conn(f);
        }
        self.store.with_write(move |c| async move {
            flush(&c, writes).await?;
            f(c).await
        })
    }

    /// The answers read so far, reading the item's own lookups first.
    fn answers(&self) -> Result<std::cell::RefMut<'_, Answers>, StoreError> {
        if self.answers.borrow().is_none() {
            let item = self.item;
            let mut wanted: Vec<Keyed> = Vec::new();
            if let Some(u) = &item.canonical_url {
                wanted.push((BY_CANONICAL_URL, u.clone()));
            }
            if let Some(g) = &item.guid {
                wanted.push((BY_GUID, g.clone()));
            }
            wanted.push((BY_TEXT_HASH, item.fingerprint.text_hash.clone()));
            let title = fingerprint::title_key(&item.title);
            if !title.is_empty() {
                wanted.push((BY_TITLE_KEY, title));
            }
            wanted.extend(title_part_lookups(&item.title));
            wanted.sort();
            wanted.dedup();
            let keys = fingerprint::band_keys(&item.fingerprint.minhash);
            let own = item.id.0.clone();
            let (found, bands, rows) = self.ask(move |c| async move {
                let (found, bands) =
                    futures_util::future::try_join(keyed(&c, &wanted), by_bands(&c, &keys)).await?;
                let mut ids: Vec<&str> = found.iter().flatten().map(|i| i.0.as_str()).collect();
                ids.retain(|i| *i != own);
                ids.sort_unstable();
                ids.dedup();
                let rows = held(&c, &ids).await?;
                let asked: Vec<ItemId> = ids.iter().map(|i| ItemId((*i).to_owned())).collect();
                let found: HashMap<Keyed, Vec<ItemId>> = wanted.into_iter().zip(found).collect();
                Ok((found, (keys, bands), (asked, rows)))
            })?;
            let mut answers = Answers {
                keyed: found,
                ..Answers::default()
            };
            answers.bands.insert(bands.0, bands.1);
            let (asked, rows) = rows;
            for id in asked {
                answers.held.insert(id, None);
            }
            for h in rows {
                answers.held.insert(h.id.clone(), Some(h));
            }
            *self.answers.borrow_mut() = Some(answers);
        }
        Ok(std::cell::RefMut::map(self.answers.borrow_mut(), |a| {
            a.as_mut().expect("just read")
        }))
    }

    /// The answers to `wanted`, in order, reading those not yet read in one call.
    fn keyed(&self, wanted: Vec<Keyed>) -> Result<Vec<ItemId>, LookupError> {
        let mut answers = self.answers().map_err(LookupError::new)?;
        let missing: Vec<Keyed> = wanted
            .iter()
            .filter(|k| !answers.keyed.contains_key(*k))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let found = self
                .ask(move |c| async move {
                    let found = keyed(&c, &missing).await?;
                    Ok(missing.into_iter().zip(found).collect::<Vec<_>>())
                })
                .map_err(LookupError::new)?;
            answers.keyed.extend(found);
        }
        Ok(wanted
            .iter()
            .flat_map(|k| answers.keyed[k].iter().cloned())
            .collect())
    }
}

impl Candidates for PgLookup<'_> {
    fn by_canonical_url(&self, url: &str) -> Result<Vec<ItemId>, LookupError> {
        self.keyed(vec![(BY_CANONICAL_URL, url.to_owned())])
    }

    fn by_guid(&self, guid: &str) -> Result<Vec<ItemId>, LookupError> {
        self.keyed(vec![(BY_GUID, guid.to_owned())])
    }

    fn by_text_hash(&self, hash: &str) -> Result<Vec<ItemId>, LookupError> {
        self.keyed(vec![(BY_TEXT_HASH, hash.to_owned())])
    }

    fn by_title(&self, title: &str) -> Result<Vec<ItemId>, LookupError> {
        let key = fingerprint::title_key(title);
        if key.is_empty() {
            return Ok(Vec::new());
        }
        self.keyed(vec![(BY_TITLE_KEY, key)])
    }

    fn by_title_parts(&self, title: &str) -> Result<Vec<ItemId>, LookupError> {
        self.keyed(title_part_lookups(title))
    }

    fn by_bands(&self, minhash: &[u32]) -> Result<Vec<(ItemId, Vec<u32>)>, LookupError> {
        let keys = fingerprint::band_keys(minhash);
        let mut answers = self.answers().map_err(LookupError::new)?;
        if let Some(found) = answers.bands.get(&keys) {
            return Ok(found.clone());
        }
        let asked = keys.clone();
        let found = self
            .ask(move |c| async move { by_bands(&c, &asked).await })
            .map_err(LookupError::new)?;
        answers.bands.insert(keys, found.clone());
        Ok(found)
    }

    fn held(&self, id: &ItemId) -> Result<Option<Held>, LookupError> {
        let mut answers = self.answers().map_err(LookupError::new)?;
        if let Some(h) = answers.held.get(id) {
            return Ok(h.clone());
        }
        let asked = id.0.clone();
        let found = self
            .ask(move |c| async move { held(&c, &[asked.as_str()]).await })
            .map_err(LookupError::new)?
            .pop();
        answers.held.insert(id.clone(), found.clone());
        Ok(found)
    }

    fn was_shown(&self, id: &ItemId) -> Result<bool, LookupError> {
        let id = id.0.clone();
        self.ask(move |c| async move { was_shown(&c, &id).await })
            .map_err(LookupError::new)
    }
}

/// An item of a fetch as identity churn compares it (what `remap_churned_ids` reads
/// of it, owned, to run on the store's runtime).
struct Arriving {
    id: String,
    canonical_url: Option<String>,
    title_key: String,
    text_hash: String,
    long_text: bool,
}

impl DedupStore for PgStore {
    /// Nothing waits: band rows are written with their signatures.
    fn flush_dedupe_index(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// `Store::remap_churned_ids`, the same rules: an alias first, then a held, not
    /// withdrawn item of the source missing from this fetch with the same canonical
    /// URL and title or text, or the same non-trivial text. Candidates are taken in the
    /// order SQLite reads them (the order items were first stored).
    fn remap_churned_ids(
        &mut self,
        source: &SourceId,
        items: &mut [Item],
        now: DateTime<Utc>,
    ) -> Result<Churn, StoreError> {
        let source = source.to_string();
        let mut arriving: Vec<Arriving> = items
            .iter()
            .map(|it| Arriving {
                id: it.id.0.clone(),
                canonical_url: it.canonical_url.clone(),
                title_key: fingerprint::title_key(&it.title),
                text_hash: it.fingerprint.text_hash.clone(),
                long_text: it.text.len() >= MIN_TEXT_FOR_HASH,
            })
            .collect();
        let (churn, ids) = self.with_write(move |c| async move {
            // An ID known as an alias is the item it was mapped to.
            let ids: Vec<&str> = arriving.iter().map(|a| a.id.as_str()).collect();
            let aliases: HashMap<String, String> = c
                .query(
                    "SELECT alias, item_id FROM item_alias WHERE alias = ANY($1)",
                    &[&ids],
                )
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            for a in &mut arriving {
                if let Some(to) = aliases.get(&a.id) {
                    a.id = to.clone();
                }
            }
            let ids: Vec<&str> = arriving.iter().map(|a| a.id.as_str()).collect();
            let known: HashSet<String> = c
                .query("SELECT id FROM items WHERE id = ANY($1)", &[&ids])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let batch: HashSet<&str> = ids.iter().copied().collect();
            // Same URL alone is not enough: some sources link every item to one page.
            let by_url = c
                .prepare_cached(
                    "SELECT id, text_hash, title FROM items
                     WHERE source_id = $1 AND canonical_url = $2 AND NOT withdrawn ORDER BY seq",
                )
                .await?;
            let by_text = c
                .prepare_cached(
                    "SELECT id FROM items
                     WHERE source_id = $1 AND text_hash = $2 AND NOT withdrawn ORDER BY seq",
                )
                .await?;
            let mut churn = Churn::default();
            let mut taken: HashSet<String> = HashSet::new();
            let mut remaps: Vec<(String, String)> = Vec::new();
            let mut ids: Vec<String> = arriving.iter().map(|a| a.id.clone()).collect();
            for (at, it) in arriving.iter().enumerate() {
                if known.contains(&it.id) {
                    continue;
                }
                churn.new_ids += 1;
                let mut cands: Vec<String> = Vec::new();
                if let Some(u) = &it.canonical_url {
                    for r in c.query(&by_url, &[&source, u]).await? {
                        let hash: Option<String> = r.get(1);
                        let held_title: String = r.get(2);
                        if hash.as_deref() == Some(it.text_hash.as_str())
                            || fingerprint::title_key(&held_title) == it.title_key
                        {
                            cands.push(r.get(0));
                        }
                    }
                }
                if cands.is_empty() && it.long_text {
                    for r in c.query(&by_text, &[&source, &it.text_hash]).await? {
                        cands.push(r.get(0));
                    }
                }
                if let Some(old) = cands
                    .into_iter()
                    .find(|c| !batch.contains(c.as_str()) && !taken.contains(c))
                {
                    taken.insert(old.clone());
                    remaps.push((it.id.clone(), old.clone()));
                    ids[at] = old;
                }
            }
            churn.remapped = remaps.len();
            let alias = c
                .prepare_cached(
                    "INSERT INTO item_alias (alias, item_id) VALUES ($1, $2)
                     ON CONFLICT (alias) DO UPDATE SET item_id = EXCLUDED.item_id",
                )
                .await?;
            for (from, to) in &remaps {
                c.execute(&alias, &[from, to]).await?;
            }
            if churn.is_event() {
                c.execute(
                    "INSERT INTO dedupe_events (at, source_id, kind, detail)
                     VALUES ($1, $2, 'identity-churn', $3)",
                    &[&ts(now), &source, &churn.to_string()],
                )
                .await?;
            }
            Ok((churn, ids))
        })?;
        for (it, id) in items.iter_mut().zip(ids) {
            it.id = ItemId(id);
        }
        Ok(churn)
    }

    /// `Store::withdraw_missing`: the items missing from the source's document that
    /// are newer than the oldest it still lists (every missing one for a whole set),
    /// in the order they were first stored.
    fn withdraw_missing(
        &mut self,
        source: &SourceId,
        present: &[ItemId],
        whole_set: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<(ItemId, String)>, StoreError> {
        let source = source.to_string();
        let present: HashSet<String> = present.iter().map(|i| i.0.clone()).collect();
        self.with_write(move |c| async move {
            let rows: Vec<(String, i64, String)> = c
                .query(
                    "SELECT id, published, title FROM items
                     WHERE source_id = $1 AND NOT withdrawn ORDER BY seq",
                    &[&source],
                )
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            let floor = rows
                .iter()
                .filter(|(id, _, _)| present.contains(id))
                .map(|(_, p, _)| *p)
                .min();
            let Some(floor) = floor else {
                // An empty document says nothing about which items were deleted.
                return Ok(Vec::new());
            };
            let gone: Vec<(String, String)> = rows
                .into_iter()
                .filter(|(id, published, _)| {
                    !(present.contains(id) || (!whole_set && *published <= floor))
                })
                .map(|(id, _, title)| (id, title))
                .collect();
            if gone.is_empty() {
                return Ok(Vec::new());
            }
            let ids: Vec<&str> = gone.iter().map(|(id, _)| id.as_str()).collect();
            let details: Vec<String> = gone
                .iter()
                .map(|(id, title)| format!("{id}: {title}"))
                .collect();
            c.execute(
                "UPDATE items SET withdrawn = true WHERE id = ANY($1)",
                &[&ids],
            )
            .await?;
            // One row per item, numbered in the items' order (WITH ORDINALITY keeps it).
            c.execute(
                "INSERT INTO dedupe_events (at, source_id, kind, detail)
                 SELECT $1, $2, 'retracted', d FROM unnest($3::text[]) WITH ORDINALITY AS u(d, o)
                 ORDER BY o",
                &[&ts(now), &source, &details],
            )
            .await?;
            Ok(gone
                .into_iter()
                .map(|(id, title)| (ItemId(id), title))
                .collect())
        })
    }

    /// `Store::clusters`: every cluster with more than one member, representatives
    /// newest first, members in the order they were first seen.
    fn clusters(&self) -> Result<Vec<Cluster>, StoreError> {
        self.with_conn(|c| async move {
            let mut members: HashMap<String, Vec<(Item, String)>> = HashMap::new();
            let rows = c
                .query(
                    "SELECT id, data, dup_of, coalesce(dup_reason, '') FROM items
                     WHERE dup_of IS NOT NULL ORDER BY first_seen, id COLLATE \"C\"",
                    &[],
                )
                .await?;
            for r in &rows {
                let (id, data, rep, why): (String, String, String, String) =
                    (r.get(0), r.get(1), r.get(2), r.get(3));
                members
                    .entry(rep)
                    .or_default()
                    .push((parse_item(&id, &data)?, why));
            }
            let reps: Vec<&str> = members.keys().map(String::as_str).collect();
            let rows = c
                .query(
                    "SELECT i.id, i.data, i.published_id, i.withdrawn,
                            EXISTS (SELECT 1 FROM dedupe_shown s WHERE s.item_id = i.id)
                     FROM items i WHERE i.id = ANY($1)",
                    &[&reps],
                )
                .await?;
            let mut out = Vec::new();
            for r in &rows {
                let id: String = r.get(0);
                let data: String = r.get(1);
                let Some(ms) = members.remove(&id) else {
                    continue;
                };
                out.push(Cluster {
                    rep: parse_item(&id, &data)?,
                    published_id: r.get(2),
                    shown: r.get(4),
                    withdrawn: r.get(3),
                    members: ms,
                });
            }
            out.sort_by(|a, b| {
                b.rep
                    .published
                    .cmp(&a.rep.published)
                    .then_with(|| a.rep.id.cmp(&b.rep.id))
            });
            Ok(out)
        })
    }

    /// `Store::dedupe_events`: the most recent first (in one second, the last
    /// written first).
    fn dedupe_events(&self, limit: usize) -> Result<Vec<DedupeEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_conn(move |c| async move {
            let rows = c
                .query(
                    "SELECT at, source_id, kind, detail FROM dedupe_events
                     ORDER BY at DESC, seq DESC LIMIT $1",
                    &[&limit],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| DedupeEvent {
                    at: from_ts(r.get(0)),
                    source: r.get(1),
                    kind: r.get(2),
                    detail: r.get(3),
                })
                .collect())
        })
    }
}
