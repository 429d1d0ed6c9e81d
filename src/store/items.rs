//! Storing a source's items: the upsert (known items keep their first sighting and
//! published ID, new ones are deduplicated and get one), retention (`prune`), and
//! withdrawing the items of sources no longer configured. Items are kept as JSON
//! beside the columns the queries need.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use std::cell::RefCell;

use super::bandfilter::BandFilter;
use super::inserted::{Inserted, NewRow};
use super::overlay::Overlay;
use super::pending::Pending;
use super::{dedup, from_ts, parse_item, ts, Lookup, Scope, Store, StoreError};
use crate::dedupe::{Candidates, Decision, LookupError};
use crate::model::{DateSource, Item, ItemId, SourceId};

/// `meta` key: the `[store] max_items` the last prune applied (see [`Store::prune`]).
const PRUNED_WITH_LIMIT: &str = "prune_max_items";

/// The key `feedwerk dupes --jsonl` and `score-dedup` speak:
/// `<source id>|<the item's original GUID, or its link when it has none>`.
pub fn item_key(item: &Item) -> String {
    let local = item
        .guid
        .clone()
        .or_else(|| item.source_link.clone())
        .or_else(|| item.url.as_ref().map(|u| u.to_string()))
        .unwrap_or_else(|| item.id.to_string());
    format!("{}|{local}", item.source)
}

/// An item held, the representative it was merged into (if any), and why.
pub type HeldItem = (Item, Option<String>, Option<String>);

/// What one source update changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpsertReport {
    pub new: usize,
    pub changed: usize,
    pub unchanged: usize,
    pub duplicates: usize,
    /// Items that had been withdrawn and are listed by their source again.
    pub restored: usize,
    /// Items of this source that are now visible and were added or changed.
    pub touched: Vec<ItemId>,
}

impl Store {
    /// The latest `first_seen` held, in whole seconds (what the column stores).
    pub fn latest_first_seen(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let t: Option<i64> = self
            .conn
            .query_row("SELECT max(first_seen) FROM items", [], |r| r.get(0))?;
        Ok(t.map(from_ts))
    }

    /// The tag URI readers will see for an item, minted once at first sight and stored
    /// (RFC 4151; the rule is [`crate::identity::published_id`]).
    fn mint_published_id(&self, item: &Item) -> String {
        self_mint(&self.authority, item)
    }

    pub fn get_item(&self, id: &ItemId) -> Result<Option<(Item, Option<String>)>, StoreError> {
        let row: Option<(String, String, Option<String>)> = self
            .conn
            .query_row(
                "SELECT data, text, dup_of FROM items WHERE id = ?1",
                [&id.0],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        match row {
            Some((data, text, dup)) => {
                let mut item = parse_item(&id.0, &data)?;
                item.text = text;
                Ok(Some((item, dup)))
            }
            None => Ok(None),
        }
    }

    /// Stores one source's current items in one transaction and marks them as the
    /// source's current window. Known items keep their
    /// `first_seen`, published ID and (if undated) their first-seen date; new items are
    /// checked for duplicates by `decide`, which returns the representative they join.
    pub fn upsert_source_items(
        &mut self,
        source: &SourceId,
        items: Vec<Item>,
        now: DateTime<Utc>,
        mut decide: impl FnMut(&dyn Candidates, &Item) -> Result<Decision, LookupError>,
    ) -> Result<UpsertReport, StoreError> {
        self.overlay.get_mut().begin(&self.conn)?;
        let mark = self.pending.get_mut().mark();
        let overlay_mark = self.overlay.get_mut().mark();
        let result = self.upsert_in_scope(source, items, now, &mut decide);
        if result.is_err() {
            // Its statements were rolled back (or the group's will be): so are its bands
            // and its entries in the overlay.
            self.pending.get_mut().undo_to(mark);
            self.overlay.get_mut().undo_to(overlay_mark);
        }
        let report = result?;
        if !self.grouped {
            // Its own savepoint was the outermost transaction: it committed.
            self.overlay.get_mut().committed();
        }
        self.flush_bands_if_full()?;
        Ok(report)
    }

    fn upsert_in_scope(
        &mut self,
        source: &SourceId,
        items: Vec<Item>,
        now: DateTime<Utc>,
        decide: &mut impl FnMut(&dyn Candidates, &Item) -> Result<Decision, LookupError>,
    ) -> Result<UpsertReport, StoreError> {
        let tx = Scope::of(&mut self.conn, self.grouped)?;
        let w = Writer {
            tx: &tx,
            bands: &self.bands,
            pending: &self.pending,
            overlay: &self.overlay,
            #[cfg(test)]
            check_overlay: self.check_overlay,
            authority: &self.authority,
            now,
            inserted: RefCell::default(),
        };
        let mut report = UpsertReport::default();
        for item in items {
            let existing: Option<HeldRow> = tx
                .prepare_cached(
                    "SELECT data, first_seen, published, dup_of, withdrawn FROM items WHERE id = ?1",
                )?
                .query_row([&item.id.0], |r| {
                    Ok(HeldRow {
                        data: r.get(0)?,
                        first_seen: r.get(1)?,
                        published: r.get(2)?,
                        dup_of: r.get(3)?,
                        withdrawn: r.get(4)?,
                    })
                })
                .optional()?;
            match existing {
                Some(held) => w.update(item, held, &mut report)?,
                None => w.insert(source, item, decide, &mut report)?,
            }
        }
        w.inserted.into_inner().finish(&tx)?;
        tx.prepare_cached(
            "INSERT INTO sources (id, window_at) VALUES (?1, ?2)
             ON CONFLICT(id) DO UPDATE SET window_at = ?2",
        )?
        .execute(params![source.as_str(), ts(now)])?;
        tx.commit()?;
        Ok(report)
    }

    /// Every item held, for `dupes --jsonl`: the item, the item it duplicates, and why.
    pub fn all_items(&self) -> Result<Vec<HeldItem>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, data, dup_of, dup_reason FROM items ORDER BY source_id, first_seen, id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, data, dup, reason) = row?;
            out.push((parse_item(&id, &data)?, dup, reason));
        }
        Ok(out)
    }

    /// Drops the oldest items beyond the retention limits (per source: at most
    /// `max_items`, none older than `max_age`). Returns how many were removed.
    pub fn prune(
        &mut self,
        max_items: usize,
        max_age: Option<chrono::Duration>,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        // A source only grows past the limit by gaining items, and every insert marks
        // its source in `publish_dirty` until a publish has shown it, so only those
        // sources are counted; counting all of them read the whole `items_by_source`
        // index on every refresh (14 % of an all-304 build's instructions at 10,000
        // held, growing with history). A changed limit, or a store that never
        // recorded one, counts every source once.
        // Deletes held items: a run in progress has its overlay turned off.
        self.overlay.get_mut().turn_off();
        let limit = max_items.to_string();
        let every_source = self.meta(PRUNED_WITH_LIMIT)?.as_deref() != Some(limit.as_str());
        let scope = if every_source {
            "SELECT source_id FROM items"
        } else {
            "SELECT source_id FROM items
             WHERE source_id IN (SELECT key FROM publish_dirty WHERE kind = 'source')"
        };
        let tx = self.conn.savepoint()?;
        let mut n = tx.execute(
            // Only sources over the limit are ranked: counting per source reads the
            // `items_by_source` index alone, where ranking every item sorted the whole
            // store on every refresh (0.34 s of an all-304 refresh with 200,000 held).
            &format!(
                "DELETE FROM items WHERE id IN (
                    SELECT id FROM (
                        SELECT id, row_number() OVER (PARTITION BY source_id ORDER BY published DESC, id) AS rn
                        FROM items
                        WHERE source_id IN ({scope} GROUP BY source_id HAVING count(*) > ?1))
                    WHERE rn > ?1)"
            ),
            [max_items as i64],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            [PRUNED_WITH_LIMIT, limit.as_str()],
        )?;
        // The age limit only removes items that have left their source's current window:
        // what a partner (or our own feeds/ directory) still lists is never pruned.
        if let Some(age) = max_age {
            n += tx.execute(
                "DELETE FROM items WHERE published < ?1
                 AND last_seen < coalesce((SELECT window_at FROM sources WHERE sources.id = items.source_id), 0)",
                [ts(now - age)],
            )?;
        }
        dedup::sweep_deleted(&tx)?;
        // Duplicates whose representative is gone become visible again rather than lost.
        // Items are deleted nowhere else, so this looks at every held duplicate only
        // when something was deleted (or on a full pass, which heals older stores).
        if n > 0 || every_source {
            tx.execute(
                "UPDATE items SET dup_of = NULL, dup_reason = NULL
                 WHERE dup_of IS NOT NULL AND dup_of NOT IN (SELECT id FROM items)",
                [],
            )?;
        }
        tx.commit()?;
        Ok(n)
    }

    /// Withdraws the items of sources that are no longer configured, in one transaction,
    /// so removing a `[[source]]` takes its items out of every output. The rows stay:
    /// adding the source back brings back what it still lists, with the same published
    /// IDs. A story that a removed source represented is handed to its next copy.
    /// Returns how many items were withdrawn.
    pub fn withdraw_unconfigured(&mut self, configured: &[SourceId]) -> Result<usize, StoreError> {
        let ids = serde_json::to_string(&configured).expect("ids serialise");
        // Hands stories on to other representatives: likewise.
        self.overlay.get_mut().turn_off();
        let tx = self.conn.savepoint()?;
        let n = tx.execute(
            // The sources holding items are read from the `items_by_source` index by
            // stepping from one source ID to the next (a seek per source, not a scan of
            // every item: SQLite has no skip-scan without statistics), so an all-304
            // refresh costs the same with 10,000 or 200,000 items held. The rows
            // themselves are read only for a source actually removed.
            "WITH RECURSIVE held(source_id) AS (
                SELECT (SELECT min(source_id) FROM items)
                UNION ALL
                SELECT (SELECT min(source_id) FROM items WHERE source_id > held.source_id)
                FROM held WHERE held.source_id IS NOT NULL)
             UPDATE items SET withdrawn = 1
             WHERE withdrawn = 0 AND source_id IN (
                SELECT source_id FROM held
                WHERE source_id IS NOT NULL
                  AND source_id NOT IN (SELECT value FROM json_each(?1)))",
            [&ids],
        )?;
        if n > 0 {
            tx.execute(
                "UPDATE items SET dup_of = NULL, dup_reason = NULL
                 WHERE withdrawn = 0 AND dup_of IN (SELECT id FROM items WHERE withdrawn = 1)",
                [],
            )?;
        }
        tx.commit()?;
        Ok(n)
    }

    /// Mints IDs the same way `upsert` does; exposed for tests.
    pub fn published_id_for(&self, item: &Item) -> String {
        self.mint_published_id(item)
    }
}

/// Replaces the indexed copies of a changed item's tags (its `language` column is
/// written with the row itself, so the update trigger runs once per item, not twice).
/// A new item's are written with the other new items' (`inserted`).
fn index_tags(tx: &Connection, item: &Item) -> Result<(), rusqlite::Error> {
    tx.prepare_cached("DELETE FROM item_tags WHERE item_id = ?1")?
        .execute([&item.id.0])?;
    if item.tags.is_empty() {
        return Ok(());
    }
    // One statement run for all of an item's tags, not one per tag (the triggers still
    // see each row, in the item's order).
    let tags = serde_json::to_string(&item.tags).expect("strings serialise");
    tx.prepare_cached(
        "INSERT OR IGNORE INTO item_tags (item_id, tag) SELECT ?1, value FROM json_each(?2)",
    )?
    .execute(params![item.id.0, tags])?;
    Ok(())
}

/// The published ID minted for `item` at first sight (see [`crate::identity`]).
fn self_mint(entity: &str, item: &Item) -> String {
    crate::identity::published_id(entity, &item.source, &item.id)
}

/// Whether stored `data` is the item `json` says, once written the way this version
/// writes items (older versions stored the MinHash signature in it, for one).
pub(super) fn same_in_current_form(id: &str, data: &str, json: &str) -> bool {
    parse_item(id, data)
        .ok()
        .and_then(|held| serde_json::to_string(&held).ok())
        .is_some_and(|current| current == json)
}

/// The row of an item already held, as an upsert compares it.
struct HeldRow {
    data: String,
    first_seen: i64,
    published: i64,
    dup_of: Option<String>,
    withdrawn: bool,
}

/// One upsert's statements: where they go, the band bitmap, and what IDs are minted
/// under.
struct Writer<'a> {
    tx: &'a Connection,
    bands: &'a RefCell<BandFilter>,
    pending: &'a RefCell<Pending>,
    overlay: &'a RefCell<Overlay>,
    #[cfg(test)]
    check_overlay: bool,
    authority: &'a str,
    now: DateTime<Utc>,
    /// What the new items change besides their rows (see `inserted`).
    inserted: RefCell<Inserted>,
}

impl Writer<'_> {
    /// A known item: keeps its first sighting (and, if undated, its first-seen date);
    /// rewritten only when it changed.
    fn update(
        &self,
        mut item: Item,
        held: HeldRow,
        report: &mut UpsertReport,
    ) -> Result<(), StoreError> {
        let (tx, now) = (self.tx, self.now);
        let HeldRow {
            data,
            first_seen,
            published,
            dup_of,
            withdrawn,
        } = held;
        if withdrawn {
            report.restored += 1;
        }
        item.first_seen = from_ts(first_seen);
        if item.date_source == DateSource::FirstSeen {
            item.published = from_ts(published);
        }
        let json = serde_json::to_string(&item).expect("items serialise");
        if json == data {
            report.unchanged += 1;
            tx.prepare_cached("UPDATE items SET last_seen = ?2, withdrawn = 0 WHERE id = ?1")?
                .execute(params![item.id.0, ts(now)])?;
        } else if same_in_current_form(&item.id.0, &data, &json) {
            // Written by an older version (with fields since left out): the
            // same item, stored again in today's form, not a change.
            report.unchanged += 1;
            tx.prepare_cached(
                "UPDATE items SET data = ?3, last_seen = ?2, withdrawn = 0 WHERE id = ?1",
            )?
            .execute(params![item.id.0, ts(now), json])?;
        } else {
            report.changed += 1;
            if dup_of.is_none() {
                report.touched.push(item.id.clone());
            }
            tx.prepare_cached(
                "UPDATE items SET data = ?2, guid = ?3, canonical_url = ?4, text_hash = ?5,
                     published = ?6, last_seen = ?7, withdrawn = 0, language = ?8,
                     title = ?9, text = ?10
                 WHERE id = ?1",
            )?
            .execute(params![
                item.id.0,
                json,
                item.guid,
                item.canonical_url,
                item.fingerprint.text_hash,
                ts(item.published),
                ts(now),
                item.language,
                item.title,
                item.text
            ])?;
            index_tags(tx, &item)?;
            let n = dedup::index_item(
                tx,
                &mut self.pending.borrow_mut(),
                &item,
                false,
                &Default::default(),
            )?;
            self.overlay.borrow_mut().updated(&item, n);
        }
        Ok(())
    }

    /// A new item: deduplicated by `decide`, stored with its published ID.
    fn insert(
        &self,
        source: &SourceId,
        mut item: Item,
        decide: &mut impl FnMut(&dyn Candidates, &Item) -> Result<Decision, LookupError>,
        report: &mut UpsertReport,
    ) -> Result<(), StoreError> {
        let (tx, bands, now) = (self.tx, self.bands, self.now);
        // Whole seconds, as stored in the `first_seen` column: otherwise the next
        // refresh sees a different JSON and counts an unchanged item as changed.
        item.first_seen = from_ts(ts(now));
        if item.date_source == DateSource::FirstSeen {
            item.published = from_ts(ts(item.published));
        }
        let lookup = Lookup::new(tx, bands, self.pending).with_overlay(self.overlay);
        #[cfg(test)]
        let lookup = lookup.checked(self.check_overlay);
        let decision = decide(&lookup, &item)?;
        let derived = lookup.derived_of(&item.id);
        let published_id = self_mint(self.authority, &item);
        let json = serde_json::to_string(&item).expect("items serialise");
        // A copy is inserted into its cluster at once: one statement and one trigger
        // run, not an insert and then an update.
        let (dup_of, dup_reason) = match &decision {
            Decision::Joins { rep, reason } => {
                report.duplicates += 1;
                (Some(rep.0.as_str()), Some(reason.as_str()))
            }
            Decision::New | Decision::Supersedes { .. } => {
                report.touched.push(item.id.clone());
                (None, None)
            }
        };
        report.new += 1;
        tx.prepare_cached(
            "INSERT INTO items (id, source_id, guid, canonical_url, text_hash, published, first_seen,
                                last_seen, published_id, dup_of, dup_reason, data, language,
                                title, text)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?13, ?14, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            item.id.0,
            source.as_str(),
            item.guid,
            item.canonical_url,
            item.fingerprint.text_hash,
            ts(item.published),
            ts(now),
            published_id,
            json,
            item.language,
            item.title,
            item.text,
            dup_of,
            dup_reason
        ])?;
        let row = NewRow {
            id: &item.id.0,
            source: source.as_str(),
            language: item.language.as_deref(),
            tags: &item.tags,
            dup_of,
        };
        self.inserted.borrow_mut().item(tx, row)?;
        dedup::apply(tx, &item.id, &decision)?;
        let n = dedup::index_item(tx, &mut self.pending.borrow_mut(), &item, true, &derived)?;
        self.overlay
            .borrow_mut()
            .inserted(&item, &decision, n, derived);
        Ok(())
    }
}
