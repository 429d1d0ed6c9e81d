//! The store side of deduplication: signature and LSH band tables, candidate lookups,
//! clusters (`items.dup_of`), which representatives readers have seen, ID aliases for
//! identity churn, and retractions.
//!
//! It owns the SQL only. Which candidate really is a duplicate, and which copy
//! represents a cluster, is decided in `dedupe`, which reads the store through its own
//! [`Candidates`] trait (implemented here by [`Lookup`]) and hands back a [`Decision`]
//! the store applies; the fingerprint itself is made in `normalise::fingerprint`.

use std::cell::{OnceCell, RefCell};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use super::bandfilter::{BandFilter, BANDS_THROUGH};
use super::bounded::{bounded_ids, by_title_key, by_title_part, EXACT_KEY_LIMIT};
use super::overlay::{Exact, Overlay};
use super::pending::Pending;
use super::{from_ts, parse_item, ts, Store, StoreError};
use crate::dedupe::{Candidates, Decision, Derived, Held, LookupError};
use crate::model::{Item, ItemId, SourceId};
use crate::normalise::fingerprint::{self, MIN_TEXT_FOR_HASH};

/// One cluster for `feedwerk dupes`: the representative and the copies merged into it.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub rep: Item,
    pub published_id: String,
    pub shown: bool,
    pub withdrawn: bool,
    /// Each member with the reason it matched ("exact URL", "text similarity 0.93" …).
    pub members: Vec<(Item, String)>,
}

/// Most members one LSH bucket contributes as candidates (the most recently indexed).
/// A bucket holding more is boilerplate (a shared footer, a template, an empty-ish
/// text) rather than a story: without the cap, every new item with that footer would
/// compare against thousands. A real near-duplicate (Jaccard >= 0.5) shares several of
/// the 32 buckets, so skipping the old tail of one crowded bucket does not lose it;
/// exact copies are also found by URL, GUID, text hash and title.
pub const BUCKET_CAP: usize = 64;

/// Creates the tables, moves a store of schema 1 to the current band layout, and
/// indexes the items held by a store made before the tables existed.
///
/// Schema 1 kept band rows keyed by item ID text in a rowid table with two indexes
/// (three b-tree inserts and ~100 bytes a row, 32 rows an item); schema 2 keys them by
/// a small integer in one WITHOUT ROWID table. The old tables are dropped and rebuilt
/// from the fingerprints stored with each item (no text is fingerprinted again), in
/// one transaction, so a crash leaves either layout complete.
pub(super) fn init(conn: &Connection) -> Result<(), StoreError> {
    let old_layout = conn
        .prepare("SELECT 1 FROM pragma_table_info('dedupe_band') WHERE name = 'item_id'")?
        .exists([])?;
    let needs_index = old_layout || !super::table_exists(conn, "dedupe_sig")?;
    // IMMEDIATE: it may write, and a deferred transaction that reads first fails at
    // once (SQLITE_BUSY_SNAPSHOT) when a running daemon commits in between, where
    // this one waits out the busy timeout.
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    if old_layout {
        tx.execute_batch(
            "DROP TRIGGER IF EXISTS items_delete_dedupe;
             DROP TABLE dedupe_band;
             DROP TABLE dedupe_sig;",
        )?;
    }
    drop_band_sig_index(&tx)?;
    if !needs_index {
        date_signatures(&tx)?;
    }
    tx.execute_batch(include_str!("dedup.sql"))?;
    let mut pending = Pending::default();
    if needs_index {
        index_all(&tx, &mut pending)?;
        flush_bands(&tx, &pending)?;
    } else {
        recover_bands(&tx, &mut pending)?;
    }
    sweep_deleted(&tx)?;
    BandFilter::store_if_missing(&tx)?;
    tx.commit()?;
    Ok(())
}

/// Schema 3: the band table loses its index by signature (a second b-tree written for
/// every band row, only to delete an item's rows, which are now deleted by key), and
/// the delete trigger that used it is replaced by the one in `dedup.sql`.
fn drop_band_sig_index(conn: &Connection) -> Result<(), rusqlite::Error> {
    let has_index = conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'dedupe_band_sig'")?
        .exists([])?;
    if has_index {
        conn.execute_batch(
            "DROP TRIGGER IF EXISTS items_delete_dedupe;
             DROP INDEX dedupe_band_sig;",
        )?;
    }
    Ok(())
}

/// Schema 4: signature rows keep their item's date (see `dedup.sql`), copied once from
/// the items of a store made before; `dedup.sql` then replaces the title index.
fn date_signatures(conn: &Connection) -> Result<(), rusqlite::Error> {
    let dated = conn
        .prepare("SELECT 1 FROM pragma_table_info('dedupe_sig') WHERE name = 'published'")?
        .exists([])?;
    if !dated {
        conn.execute_batch(
            "ALTER TABLE dedupe_sig ADD COLUMN published INTEGER NOT NULL DEFAULT 0;
             UPDATE dedupe_sig SET published =
                 coalesce((SELECT published FROM items WHERE items.id = dedupe_sig.item_id), 0);",
        )?;
    }
    Ok(())
}

/// Puts the band rows of signatures past the watermark back in the pending table (from
/// the stored signatures, so no text is read) and flushes them. A store without the
/// watermark was written when every upsert flushed its own rows: it is complete.
fn recover_bands(conn: &Connection, pending: &mut Pending) -> Result<(), rusqlite::Error> {
    let through: Option<i64> = conn
        .query_row(
            "SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?1",
            [BANDS_THROUGH],
            |r| r.get(0),
        )
        .optional()?;
    let Some(through) = through else {
        return set_watermark(conn);
    };
    let missing: Vec<(i64, Vec<u8>)> = {
        let mut stmt =
            conn.prepare("SELECT n, sig FROM dedupe_sig WHERE n > ?1 AND version = ?2 ORDER BY n")?;
        let rows = stmt.query_map(params![through, fingerprint::VERSION], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    if missing.is_empty() {
        return Ok(());
    }
    tracing::info!(
        signatures = missing.len(),
        "indexing near-duplicate bands the last run left pending"
    );
    for (n, blob) in missing {
        let keys = fingerprint::band_keys(&fingerprint::from_blob(&blob));
        if keys.len() == fingerprint::BANDS {
            pending.add(n, &keys);
        }
    }
    flush_bands(conn, pending)
}

/// Moves the watermark to the newest signature: called when nothing is pending.
fn set_watermark(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) SELECT ?1, coalesce(max(n), 0) FROM dedupe_sig WHERE true
         ON CONFLICT(key) DO UPDATE SET value = excluded.value WHERE value IS NOT excluded.value",
    )?
    .execute([BANDS_THROUGH])?;
    Ok(())
}

/// Indexes every held item, reading them in ID order a few hundred at a time so memory
/// stays bounded however large the store is.
fn index_all(conn: &Connection, pending: &mut Pending) -> Result<(), StoreError> {
    let mut after = String::new();
    loop {
        let chunk: Vec<(String, String, String)> = {
            let mut stmt = conn.prepare_cached(
                "SELECT id, data, text FROM items WHERE id > ?1 ORDER BY id LIMIT 256",
            )?;
            let rows = stmt.query_map([&after], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let Some((last, _, _)) = chunk.last() else {
            return Ok(());
        };
        after = last.clone();
        for (id, data, text) in chunk {
            let mut item = parse_item(&id, &data)?;
            item.text = text;
            if item.fingerprint.minhash.is_empty() {
                // Stored items leave their signature out (see `Fingerprint::minhash`);
                // it is a function of the text they keep.
                item.fingerprint = fingerprint::fingerprint(&item.text);
            }
            index_item(conn, pending, &item, true, &Derived::default())?;
        }
    }
}

/// (Re-)indexes an item's signature, title key and LSH bands; the band rows go to
/// `pending` (see [`Pending`]), to be written by [`flush_bands`]. `fresh`: the item has
/// just been inserted, so it has no band rows to remove. Returns the signature's number.
pub(super) fn index_item(
    conn: &Connection,
    pending: &mut Pending,
    item: &Item,
    fresh: bool,
    derived: &Derived,
) -> Result<i64, rusqlite::Error> {
    if !fresh {
        let old: Option<(i64, Vec<u8>)> = conn
            .prepare_cached("SELECT n, sig FROM dedupe_sig WHERE item_id = ?1")?
            .query_row([&item.id.0], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((n, blob)) = old {
            let keys = fingerprint::band_keys(&fingerprint::from_blob(&blob));
            if !pending.remove(n, &keys) {
                delete_bands(conn, n, &keys)?;
            }
        }
        // A new number, past the watermark: if the process ends before the new band
        // rows are flushed, the next open finds and indexes them again.
        conn.prepare_cached("DELETE FROM dedupe_sig WHERE item_id = ?1")?
            .execute([&item.id.0])?;
    }
    super::title_parts::index(conn, item, fresh, derived.title_parts(&item.title))?;
    let fp = &item.fingerprint;
    // Not `RETURNING n`: SQLite buffers returned rows in an ephemeral b-tree it opens
    // and closes per statement. `n` is the row's rowid (INTEGER PRIMARY KEY) and the
    // table has no triggers, so the connection's last insert rowid is it.
    conn.prepare_cached(
        "INSERT INTO dedupe_sig (item_id, version, shingles, sig, title_key, published)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        item.id.0,
        fp.version,
        fp.shingles,
        fingerprint::to_blob(&fp.minhash),
        derived.title_key(&item.title),
        ts(item.published)
    ])?;
    let n = conn.last_insert_rowid();
    let keys = fingerprint::band_keys(&fp.minhash);
    if keys.len() == fingerprint::BANDS {
        pending.add(n, &keys);
    }
    Ok(n)
}

/// Deletes signature `n`'s rows from the band table, by primary key: the keys are a
/// function of the stored signature, so the table needs no index by signature.
fn delete_bands(conn: &Connection, n: i64, keys: &[i64]) -> Result<(), rusqlite::Error> {
    let mut del = conn.prepare_cached("DELETE FROM dedupe_band WHERE bucket = ?1 AND sig = ?2")?;
    for &key in keys {
        del.execute(params![key, n])?;
    }
    Ok(())
}

/// Removes the band rows of items deleted since the last sweep. The delete trigger
/// (`dedup.sql`) cannot compute band keys, so it leaves each deleted signature in
/// `dedupe_band_gone`; this deletes their rows by key, in the deleting transaction
/// when the store deletes ([`Store::prune`]) and at every open for other deleters.
pub(super) fn sweep_deleted(conn: &Connection) -> Result<(), rusqlite::Error> {
    let gone: Vec<(i64, Vec<u8>)> = {
        let mut stmt = conn.prepare_cached("SELECT n, sig FROM dedupe_band_gone")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    if gone.is_empty() {
        return Ok(());
    }
    for (n, blob) in &gone {
        delete_bands(
            conn,
            *n,
            &fingerprint::band_keys(&fingerprint::from_blob(blob)),
        )?;
    }
    conn.prepare_cached("DELETE FROM dedupe_band_gone")?
        .execute([])?;
    Ok(())
}

/// Writes `pending`'s rows to the band table in bucket order and moves the watermark;
/// the caller forgets them once its transaction has committed. Rows of signatures
/// deleted meanwhile are dropped.
///
/// Band keys are hashes, so an item's 32 rows land on 32 random leaves of the band
/// table; inserted one item at a time, a batch of items read and dirtied each leaf
/// many times over. Sorted, each leaf is visited once per flush. Until the flush,
/// lookups read `pending` too, so the items of a run find each other.
pub(super) fn flush_bands(conn: &Connection, pending: &Pending) -> Result<(), rusqlite::Error> {
    if let Some(lowest) = pending.lowest() {
        let live: HashSet<i64> = {
            let mut stmt = conn.prepare_cached("SELECT n FROM dedupe_sig WHERE n >= ?1")?;
            let rows = stmt.query_map([lowest], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let rows: Vec<(i64, i64)> = pending
            .sorted_rows()
            .into_iter()
            .filter(|(_, n)| live.contains(n))
            .collect();
        let mut chunks = rows.chunks_exact(FLUSH_CHUNK);
        let mut many = conn.prepare_cached(insert_bands_sql())?;
        for chunk in chunks.by_ref() {
            many.execute(params_from_iter(chunk.iter().flat_map(|&(k, n)| [k, n])))?;
        }
        let mut one =
            conn.prepare_cached("INSERT OR IGNORE INTO dedupe_band (bucket, sig) VALUES (?1, ?2)")?;
        for &(k, n) in chunks.remainder() {
            one.execute(params![k, n])?;
        }
    }
    set_watermark(conn)
}

/// Band rows per statement when flushing: one VDBE run for many rows.
const FLUSH_CHUNK: usize = 256;

/// `INSERT … VALUES (?1, ?2), (?3, ?4), …`: [`FLUSH_CHUNK`] band rows.
fn insert_bands_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let rows: Vec<String> = (0..FLUSH_CHUNK)
            .map(|i| format!("(?{}, ?{})", 2 * i + 1, 2 * i + 2))
            .collect();
        format!(
            "INSERT OR IGNORE INTO dedupe_band (bucket, sig) VALUES {}",
            rows.join(", ")
        )
    })
}

/// Held items with this canonical URL.
pub fn by_canonical_url(conn: &Connection, url: &str) -> Result<Vec<ItemId>, rusqlite::Error> {
    bounded_ids(
        conn,
        "SELECT id, first_seen FROM items WHERE canonical_url = ?1 LIMIT 21",
        "SELECT id FROM items WHERE canonical_url = ?1 ORDER BY first_seen, id LIMIT 20",
        url,
        EXACT_KEY_LIMIT,
    )
}

/// Held items with this GUID (in any source).
pub fn by_guid(conn: &Connection, guid: &str) -> Result<Vec<ItemId>, rusqlite::Error> {
    bounded_ids(
        conn,
        "SELECT id, first_seen FROM items WHERE guid = ?1 LIMIT 21",
        "SELECT id FROM items WHERE guid = ?1 ORDER BY first_seen, id LIMIT 20",
        guid,
        EXACT_KEY_LIMIT,
    )
}

/// Held items whose normalised text hashes the same.
pub fn by_text_hash(conn: &Connection, hash: &str) -> Result<Vec<ItemId>, rusqlite::Error> {
    bounded_ids(
        conn,
        "SELECT id, first_seen FROM items WHERE text_hash = ?1 LIMIT 21",
        "SELECT id FROM items WHERE text_hash = ?1 ORDER BY first_seen, id LIMIT 20",
        hash,
        EXACT_KEY_LIMIT,
    )
}

/// Held items with the same normalised title; generic titles ("Wetter") can have many,
/// so only the most recent few are returned.
pub fn by_title(conn: &Connection, title: &str) -> Result<Vec<ItemId>, rusqlite::Error> {
    let key = fingerprint::title_key(title);
    if key.is_empty() {
        return Ok(Vec::new());
    }
    by_title_key(conn, &key)
}

/// Held items whose band rows are in the band table sharing at least one LSH bucket
/// with `minhash`, with their signatures: one primary-key range read per band, at most
/// [`BUCKET_CAP`] members each, so a lookup never degrades into a scan however crowded
/// a bucket gets. Rows still pending in a [`Store`] are found by
/// [`Store::band_candidates`].
pub fn by_bands(
    conn: &Connection,
    minhash: &[u32],
) -> Result<Vec<(ItemId, Vec<u32>)>, rusqlite::Error> {
    by_band_keys(conn, None, &fingerprint::band_keys(minhash), None)
}

impl Store {
    /// Held items sharing an LSH bucket with `minhash`, in the band table or still
    /// pending, with their signatures (what deduplication's band lookup finds).
    pub fn band_candidates(&self, minhash: &[u32]) -> Result<Vec<(ItemId, Vec<u32>)>, StoreError> {
        let lookup =
            Lookup::new(&self.conn, &self.bands, &self.pending).with_overlay(&self.overlay);
        Ok(lookup.by_bands(minhash)?)
    }
}

/// The store as deduplication reads it while new items are stored: its connection,
/// the band-key bitmap that spares most of [`by_bands`]' queries, the band rows of
/// this process not yet in the band table, and the overlay (see `overlay`), asked
/// before SQLite.
pub struct Lookup<'a> {
    conn: &'a Connection,
    bands: &'a RefCell<BandFilter>,
    pending: &'a RefCell<Pending>,
    overlay: Option<&'a RefCell<Overlay>>,
    /// The item being decided, its title, and what comparing it derives (see
    /// [`Candidates::derived_for`]): its title key and parts serve the title lookups.
    deciding: OnceCell<(ItemId, String, Arc<Derived>)>,
    /// Tests: what the overlay answers is asked of SQLite too and must agree.
    #[cfg(test)]
    checked: bool,
}

impl<'a> Lookup<'a> {
    pub(super) fn new(
        conn: &'a Connection,
        bands: &'a RefCell<BandFilter>,
        pending: &'a RefCell<Pending>,
    ) -> Lookup<'a> {
        Lookup {
            conn,
            bands,
            pending,
            overlay: None,
            deciding: OnceCell::new(),
            #[cfg(test)]
            checked: false,
        }
    }

    pub(super) fn with_overlay(self, overlay: &'a RefCell<Overlay>) -> Lookup<'a> {
        Lookup {
            overlay: Some(overlay),
            ..self
        }
    }

    /// What deciding `id` derived from it, to keep with the item once it is stored.
    pub(super) fn derived_of(self, id: &ItemId) -> Arc<Derived> {
        match self.deciding.into_inner() {
            Some((of, _, d)) if of == *id => d,
            _ => Arc::default(),
        }
    }

    /// What the item being decided derives, if `title` is its title.
    fn deciding(&self, title: &str) -> Option<&Derived> {
        self.deciding
            .get()
            .filter(|(_, t, _)| t == title)
            .map(|(_, _, d)| &**d)
    }

    #[cfg(test)]
    pub(super) fn checked(self, checked: bool) -> Lookup<'a> {
        Lookup { checked, ..self }
    }

    /// The overlay's answer if it has one, else SQLite's. Checked against SQLite's in
    /// tests that ask for it.
    fn either<T: PartialEq + std::fmt::Debug>(
        &self,
        fast: impl FnOnce(&Overlay) -> Option<T>,
        sql: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, LookupError> {
        let known = self.overlay.and_then(|o| fast(&o.borrow()));
        match known {
            Some(v) => {
                #[cfg(test)]
                if self.checked {
                    assert_eq!(
                        v,
                        sql(self.conn).unwrap(),
                        "the overlay disagrees with SQLite"
                    );
                }
                Ok(v)
            }
            None => sql(self.conn).map_err(LookupError::new),
        }
    }
}

impl Candidates for Lookup<'_> {
    fn by_canonical_url(&self, url: &str) -> Result<Vec<ItemId>, LookupError> {
        self.either(
            |o| o.by_exact(Exact::Url, url),
            |c| by_canonical_url(c, url),
        )
    }

    fn by_guid(&self, guid: &str) -> Result<Vec<ItemId>, LookupError> {
        self.either(|o| o.by_exact(Exact::Guid, guid), |c| by_guid(c, guid))
    }

    fn by_text_hash(&self, hash: &str) -> Result<Vec<ItemId>, LookupError> {
        self.either(
            |o| o.by_exact(Exact::TextHash, hash),
            |c| by_text_hash(c, hash),
        )
    }

    fn by_title(&self, title: &str) -> Result<Vec<ItemId>, LookupError> {
        let fresh = Derived::default();
        let key = self.deciding(title).unwrap_or(&fresh).title_key(title);
        if key.is_empty() {
            return Ok(Vec::new());
        }
        self.either(|o| o.by_title_key(key), |c| by_title_key(c, key))
    }

    fn by_title_parts(&self, title: &str) -> Result<Vec<ItemId>, LookupError> {
        let fresh = Derived::default();
        let d = self.deciding(title).unwrap_or(&fresh);
        super::title_parts::by_title_parts_with(
            d.title_key(title),
            d.title_parts(title),
            |part| self.either(|o| o.by_title_part(part), |c| by_title_part(c, part)),
            |key| self.either(|o| o.by_title_key(key), |c| by_title_key(c, key)),
        )
    }

    /// The pending rows' members of each bucket, and the band table's for the keys the
    /// bitmap says it may hold.
    fn by_bands(&self, minhash: &[u32]) -> Result<Vec<(ItemId, Vec<u32>)>, LookupError> {
        let keys = fingerprint::band_keys(minhash);
        let on_disk = self.bands.borrow_mut().narrow(self.conn, &keys);
        let overlay = self.overlay.map(|o| o.borrow());
        let pending = self.pending.borrow();
        let found = on_disk
            .and_then(|on_disk| {
                let found = by_band_keys(
                    self.conn,
                    Some((&pending, &keys)),
                    &on_disk,
                    overlay.as_deref(),
                )?;
                #[cfg(test)]
                if self.checked {
                    let sql = by_band_keys(self.conn, Some((&pending, &keys)), &on_disk, None)?;
                    assert_eq!(found, sql, "the overlay's signatures are not the rows");
                }
                Ok(found)
            })
            .map_err(LookupError::new)?;
        Ok(found)
    }

    fn held(&self, id: &ItemId) -> Result<Option<Held>, LookupError> {
        Ok(self.held_derived(id)?.map(|(h, _)| h))
    }

    /// From the overlay, else from SQLite (and then kept in the overlay).
    fn held_derived(&self, id: &ItemId) -> Result<Option<(Held, Arc<Derived>)>, LookupError> {
        let Some(overlay) = self.overlay else {
            return Ok(held(self.conn, id)
                .map_err(LookupError::new)?
                .map(|h| (h, Arc::default())));
        };
        if let Some(found) = overlay.borrow().held(id) {
            #[cfg(test)]
            if self.checked {
                assert_eq!(
                    Some(&found.0),
                    held(self.conn, id).unwrap().as_ref(),
                    "the overlay's candidate is not the row"
                );
            }
            return Ok(Some(found));
        }
        let Some(h) = held(self.conn, id).map_err(LookupError::new)? else {
            return Ok(None);
        };
        let derived = Arc::new(Derived::default());
        overlay
            .borrow_mut()
            .cache_held(h.clone(), Arc::clone(&derived));
        Ok(Some((h, derived)))
    }

    fn was_shown(&self, id: &ItemId) -> Result<bool, LookupError> {
        was_shown(self.conn, id).map_err(LookupError::new)
    }

    fn derived_for(&self, item: &Item) -> Arc<Derived> {
        let (of, _, d) = self
            .deciding
            .get_or_init(|| (item.id.clone(), item.title.clone(), Arc::default()));
        if *of == item.id {
            Arc::clone(d)
        } else {
            Arc::default()
        }
    }
}

/// The members of the `on_disk` buckets in the band table and of the `pending` ones
/// in memory, at most [`BUCKET_CAP`] of each (the newest), with their signatures (from
/// the overlay when it has them).
fn by_band_keys(
    conn: &Connection,
    pending: Option<(&Pending, &[i64])>,
    on_disk: &[i64],
    overlay: Option<&Overlay>,
) -> Result<Vec<(ItemId, Vec<u32>)>, rusqlite::Error> {
    let mut found: Vec<i64> = Vec::new();
    if let Some((pending, keys)) = pending {
        for &key in keys {
            pending.members(key, BUCKET_CAP, &mut found);
        }
    }
    if !on_disk.is_empty() {
        let mut members = conn.prepare_cached(BUCKET_MEMBERS)?;
        for &key in on_disk {
            let rows = members.query_map([key], |r| r.get::<_, i64>(0))?;
            for n in rows {
                found.push(n?);
            }
        }
    }
    if found.is_empty() {
        return Ok(Vec::new());
    }
    found.sort_unstable();
    found.dedup();
    let mut out = Vec::with_capacity(found.len());
    for n in found {
        if let Some((id, version, sig)) = overlay.and_then(|o| o.sig(n)) {
            if *version == fingerprint::VERSION {
                out.push((id.clone(), sig.clone()));
            }
            continue;
        }
        let row = conn
            .prepare_cached("SELECT item_id, sig, version FROM dedupe_sig WHERE n = ?1")?
            .query_row([n], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, u32>(2)?,
                ))
            })
            .optional()?;
        if let Some((id, blob, version)) = row {
            if version == fingerprint::VERSION {
                out.push((ItemId(id), fingerprint::from_blob(&blob)));
            }
        }
    }
    Ok(out)
}

/// The newest [`BUCKET_CAP`] members of one bucket in the band table.
const BUCKET_MEMBERS: &str =
    "SELECT sig FROM dedupe_band WHERE bucket = ?1 ORDER BY sig DESC LIMIT 64";
const _: () = assert!(BUCKET_CAP == 64, "BUCKET_MEMBERS spells the cap out");

/// What deduplication needs to know about one held item.
pub fn held(conn: &Connection, id: &ItemId) -> Result<Option<Held>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT source_id, coalesce(dup_of, id), title, text, language,
                published, first_seen, canonical_url, text_hash, guid
         FROM items WHERE id = ?1",
    )?;
    stmt.query_row([&id.0], |r| {
        Ok(Held {
            id: id.clone(),
            source: SourceId(r.get(0)?),
            rep: ItemId(r.get(1)?),
            title: r.get(2)?,
            text: r.get(3)?,
            language: r.get(4)?,
            published: from_ts(r.get(5)?),
            first_seen: from_ts(r.get(6)?),
            canonical_url: r.get(7)?,
            text_hash: r.get(8)?,
            guid: r.get(9)?,
        })
    })
    .optional()
}

/// Has this representative's published ID been shown to readers?
pub fn was_shown(conn: &Connection, id: &ItemId) -> Result<bool, rusqlite::Error> {
    conn.prepare_cached("SELECT 1 FROM dedupe_shown WHERE item_id = ?1")?
        .exists([&id.0])
}

/// Applies a decision for a new item that has just been inserted (a copy that joins a
/// cluster is inserted into it, so only a new representative has more to do).
pub(super) fn apply(conn: &Connection, item: &ItemId, d: &Decision) -> Result<(), rusqlite::Error> {
    match d {
        Decision::New | Decision::Joins { .. } => {}
        Decision::Supersedes { rep, reason } => {
            conn.prepare_cached("UPDATE items SET dup_of = ?2 WHERE dup_of = ?1")?
                .execute(params![rep.0, item.0])?;
            conn.prepare_cached("UPDATE items SET dup_of = ?2, dup_reason = ?3 WHERE id = ?1")?
                .execute(params![rep.0, item.0, reason])?;
        }
    }
    Ok(())
}

impl Store {
    /// Identity churn: maps items whose GUID changed (a CMS migration) back to the items
    /// already held, so they are updated instead of published again.
    ///
    /// An item is remapped when its ID is known as an alias, or when it is new and a held,
    /// not withdrawn item of the same source that is missing from this fetch has the same
    /// canonical URL and the same title or text, or the same (non-trivial) text. Returns how many were remapped and
    /// how many items were new before remapping.
    pub fn remap_churned_ids(
        &mut self,
        source: &SourceId,
        items: &mut [Item],
        now: DateTime<Utc>,
    ) -> Result<Churn, StoreError> {
        self.overlay.get_mut().begin(&self.conn)?;
        // When nothing was held before the run, the overlay knows which IDs are held,
        // that there are no aliases, and which sources have items (only those can have
        // a churned item).
        let overlay = self.overlay.get_mut();
        let tx = super::Scope::of(&mut self.conn, self.grouped)?;
        let mut churn = Churn::default();
        if !overlay.no_aliases() {
            let mut alias = tx.prepare_cached("SELECT item_id FROM item_alias WHERE alias = ?1")?;
            for it in items.iter_mut() {
                if let Some(to) = alias
                    .query_row([&it.id.0], |r| r.get::<_, String>(0))
                    .optional()?
                {
                    it.id = ItemId(to);
                }
            }
        }
        let batch: HashSet<String> = items.iter().map(|i| i.id.0.clone()).collect();
        let mut known = tx.prepare_cached("SELECT 1 FROM items WHERE id = ?1")?;
        // Same URL alone is not enough: some sources link every item to one page.
        let mut by_url = tx.prepare_cached(
            "SELECT id, text_hash, title FROM items
             WHERE source_id = ?1 AND canonical_url = ?2 AND withdrawn = 0",
        )?;
        let mut by_text = tx.prepare_cached(
            "SELECT id FROM items WHERE source_id = ?1 AND text_hash = ?2 AND withdrawn = 0",
        )?;
        let mut taken: HashSet<String> = HashSet::new();
        let mut remaps: Vec<(String, String)> = Vec::new();
        let source_held = overlay.holds_source(source) != Some(false);
        for it in items.iter_mut() {
            let is_known = match overlay.holds(&it.id) {
                Some(held) => held,
                None => known.exists([&it.id.0])?,
            };
            if is_known {
                continue;
            }
            churn.new_ids += 1;
            let mut cands: Vec<String> = Vec::new();
            if !source_held {
                continue;
            }
            if let Some(u) = &it.canonical_url {
                let rows = by_url.query_map(params![source.as_str(), u], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })?;
                let title = fingerprint::title_key(&it.title);
                for row in rows {
                    let (id, hash, held_title) = row?;
                    if hash.as_deref() == Some(it.fingerprint.text_hash.as_str())
                        || fingerprint::title_key(&held_title) == title
                    {
                        cands.push(id);
                    }
                }
            }
            if cands.is_empty() && it.text.len() >= MIN_TEXT_FOR_HASH {
                let rows = by_text
                    .query_map(params![source.as_str(), it.fingerprint.text_hash], |r| {
                        r.get(0)
                    })?;
                cands.extend(rows.collect::<Result<Vec<String>, _>>()?);
            }
            if let Some(old) = cands
                .into_iter()
                .find(|c| !batch.contains(c) && !taken.contains(c))
            {
                taken.insert(old.clone());
                remaps.push((it.id.0.clone(), old.clone()));
                it.id = ItemId(old);
            }
        }
        drop((known, by_url, by_text));
        churn.remapped = remaps.len();
        if !remaps.is_empty() {
            overlay.aliased();
        }
        for (alias, to) in &remaps {
            tx.execute(
                "INSERT INTO item_alias (alias, item_id) VALUES (?1, ?2)
                 ON CONFLICT(alias) DO UPDATE SET item_id = ?2",
                params![alias, to],
            )?;
        }
        if churn.is_event() {
            tx.execute(
                "INSERT INTO dedupe_events (at, source_id, kind, detail) VALUES (?1, ?2, 'identity-churn', ?3)",
                params![ts(now), source.as_str(), churn.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(churn)
    }

    /// Retractions: withdraws the source's items that are missing from its current
    /// document although they are newer than the oldest item it still lists (they were
    /// deleted, not scrolled out). For a local directory every missing post is withdrawn.
    /// An item that comes back is un-withdrawn by the next upsert.
    pub fn withdraw_missing(
        &mut self,
        source: &SourceId,
        present: &[ItemId],
        whole_set: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<(ItemId, String)>, StoreError> {
        let present: HashSet<&str> = present.iter().map(|i| i.0.as_str()).collect();
        let tx = super::Scope::of(&mut self.conn, self.grouped)?;
        let rows: Vec<(String, i64, String)> = {
            let mut stmt = tx.prepare_cached(
                // In the order they were stored (the PostgreSQL store's `seq`), which
                // the retractions are reported in.
                "SELECT id, published, title FROM items
                 WHERE source_id = ?1 AND withdrawn = 0 ORDER BY rowid",
            )?;
            let r = stmt.query_map([source.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            r.collect::<Result<_, _>>()?
        };
        let floor = rows
            .iter()
            .filter(|(id, _, _)| present.contains(id.as_str()))
            .map(|(_, p, _)| *p)
            .min();
        let Some(floor) = floor else {
            // An empty document says nothing about which items were deleted.
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (id, published, title) in rows {
            if present.contains(id.as_str()) || (!whole_set && published <= floor) {
                continue;
            }
            // Cached: a source replacing its whole window withdraws every held item it
            // listed, and compiling both statements again per item was most of it.
            tx.prepare_cached("UPDATE items SET withdrawn = 1 WHERE id = ?1")?
                .execute([&id])?;
            tx.prepare_cached(
                "INSERT INTO dedupe_events (at, source_id, kind, detail) VALUES (?1, ?2, 'retracted', ?3)",
            )?
            .execute(params![ts(now), source.as_str(), format!("{id}: {title}")])?;
            out.push((ItemId(id), title));
        }
        tx.commit()?;
        Ok(out)
    }

    /// Every cluster with more than one member, representatives newest first.
    pub fn clusters(&self) -> Result<Vec<Cluster>, StoreError> {
        let mut members: HashMap<String, Vec<(Item, String)>> = HashMap::new();
        {
            let mut stmt = self.conn.prepare(
                "SELECT id, data, dup_of, coalesce(dup_reason, '') FROM items
                 WHERE dup_of IS NOT NULL ORDER BY first_seen, id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?;
            for row in rows {
                let (id, data, rep, why) = row?;
                members
                    .entry(rep)
                    .or_default()
                    .push((parse_item(&id, &data)?, why));
            }
        }
        let mut out = Vec::new();
        for (rep, ms) in members {
            let row: Option<(String, String, bool)> = self
                .conn
                .query_row(
                    "SELECT data, published_id, withdrawn FROM items WHERE id = ?1",
                    [&rep],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let Some((data, published_id, withdrawn)) = row else {
                continue;
            };
            out.push(Cluster {
                rep: parse_item(&rep, &data)?,
                published_id,
                shown: was_shown(&self.conn, &ItemId(rep.clone()))?,
                withdrawn,
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
    }

    /// Recent deduplication events (identity churn, retractions), newest first.
    pub fn dedupe_events(&self, limit: usize) -> Result<Vec<DedupeEvent>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT at, source_id, kind, detail FROM dedupe_events ORDER BY at DESC, rowid DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok(DedupeEvent {
                at: from_ts(r.get(0)?),
                source: r.get(1)?,
                kind: r.get(2)?,
                detail: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Something deduplication noticed that an operator should know.
#[derive(Debug, Clone, PartialEq)]
pub struct DedupeEvent {
    pub at: DateTime<Utc>,
    pub source: String,
    /// `identity-churn` or `retracted`.
    pub kind: String,
    pub detail: String,
}

/// What [`Store::remap_churned_ids`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Churn {
    /// Items whose ID was not held before remapping.
    pub new_ids: usize,
    /// Of those, items matched to a held item under its old ID.
    pub remapped: usize,
}

impl Churn {
    /// "Most of a source's IDs changed at once": worth telling the operator.
    pub fn is_event(&self) -> bool {
        self.remapped >= 2 && self.remapped * 2 >= self.new_ids
    }
}

impl std::fmt::Display for Churn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "identity churn: {} of {} new GUIDs belong to items already held (same URL or text); kept their published IDs",
            self.remapped, self.new_ids
        )
    }
}
