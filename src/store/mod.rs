//! The SQLite store: every item ever seen, its published ID, its cluster, and each
//! source's fetch state. The only persistent state; history lives here, not in RAM.
//!
//! WAL mode with one transaction per source update, so a crash at any moment leaves
//! either the old or the new state of that source, never a mix.

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OptionalExtension};

use crate::model::{AlsoAt, ChannelFilter, DateSource, Item, ItemId, SourceId};

pub mod archive;
mod bandfilter;
mod dedup;
mod reading;
mod title_parts;
use bandfilter::BandFilter;
pub use dedup::{by_bands, by_canonical_url, by_guid, by_text_hash, by_title, held, was_shown};
pub use dedup::{Churn, Cluster, Decision, DedupeEvent, Held, Lookup};
pub use title_parts::by_title_parts;

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

/// 2: LSH bands keyed by integer in a WITHOUT ROWID table (see `dedup::init`).
const SCHEMA_VERSION: i64 = 2;

/// Prepared statements kept per connection. An upsert with deduplication cycles through
/// about 25 distinct statements; rusqlite's default of 16 made the cache evict and
/// re-prepare them on every item.
const STATEMENT_CACHE: usize = 96;
/// SQLite page cache, in KiB (SQLite's default is 2 MiB). Measured on the medium
/// corpus, 16 MiB cost ~13 MiB more peak memory than 4 MiB and no less CPU, and the
/// dedupe bench was no slower at 4 MiB once band rows are flushed in bucket order
/// (`dedup::flush_bands`). Memory mapping is left off: mapped pages count towards the
/// resident size of the process and would grow with the store, which must stay flat.
const PAGE_CACHE_KIB: i64 = 4 * 1024;
/// WAL pages before an automatic checkpoint. SQLite's default (1000) copied the hot
/// index pages back to the main file after every few sources; 8000 (~32 MiB of WAL)
/// checkpoints them once per several times as many writes.
const WAL_AUTOCHECKPOINT: i64 = 8000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("store: corrupt item row {id}: {source}")]
    Corrupt {
        id: String,
        source: serde_json::Error,
    },
    #[error("store: cannot create {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
}

/// A source's fetch state as remembered between runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceState {
    pub id: String,
    pub url: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub last_attempt: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_status: Option<String>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub next_fetch: Option<DateTime<Utc>>,
    pub moved_to: Option<String>,
    pub gone: bool,
    pub fetch_count: i64,
    pub items_held: i64,
}

/// An item held, the representative it was merged into (if any), and why.
pub type HeldItem = (Item, Option<String>, Option<String>);

/// A visible item with what the renderers need besides the item itself.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredItem {
    pub item: Item,
    /// The ID readers saw first (Atom `id`, RSS `guid`); never changes.
    pub published_id: String,
    /// Other copies of the same story.
    pub also_at: Vec<AlsoAt>,
}

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

/// What changed in the store since the last publish: the sources, tags and languages
/// of items added, changed or removed (and of the representatives whose "also
/// published by" list changed). Recorded by triggers, so no code path can forget it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dirty {
    pub sources: HashSet<String>,
    pub tags: HashSet<String>,
    pub languages: HashSet<String>,
}

impl Dirty {
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty() && self.tags.is_empty() && self.languages.is_empty()
    }

    /// Could a channel with `filter` show a changed item? Every changed item marks its
    /// source, language and tags, and a channel shows an item only if it matches all of
    /// the channel's dimensions, so a channel none of whose dimensions was touched cannot
    /// have changed.
    pub fn affects(&self, filter: &ChannelFilter) -> bool {
        if self.is_empty() {
            return false;
        }
        let sources = filter.sources.is_empty()
            || filter
                .sources
                .iter()
                .any(|s| self.sources.contains(s.as_str()));
        let tags = filter.tags.is_empty() || filter.tags.iter().any(|t| self.tags.contains(t));
        let languages = filter.languages.is_empty()
            || filter.languages.iter().any(|want| {
                self.languages.iter().any(|l| {
                    l == want
                        || l.strip_prefix(want.as_str())
                            .is_some_and(|r| r.starts_with('-'))
                })
            });
        sources && tags && languages
    }
}

fn ts(d: DateTime<Utc>) -> i64 {
    d.timestamp()
}

fn from_ts(t: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(t, 0).single().unwrap_or_default()
}

pub struct Store {
    conn: Connection,
    /// The RFC 4151 tagging entity of published IDs (`<host>,<date>`, see
    /// [`crate::identity::tagging_entity`]).
    authority: String,
    /// Inside [`Store::in_transaction`]: write methods add to that transaction and take
    /// no savepoints of their own.
    grouped: bool,
    /// Which band keys the store may hold (see `bandfilter`); kept for one run.
    bands: RefCell<BandFilter>,
}

/// Where a write method's statements go: into its own savepoint (called alone, it is
/// its own transaction), or straight into the caller's group transaction, whose
/// rollback is then the only undo.
enum Scope<'a> {
    Own(rusqlite::Savepoint<'a>),
    Group(&'a Connection),
}

impl std::ops::Deref for Scope<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            Scope::Own(sp) => sp,
            Scope::Group(conn) => conn,
        }
    }
}

impl Scope<'_> {
    /// The unit a write method of `store` works in; borrows only its connection.
    fn of(conn: &mut Connection, grouped: bool) -> rusqlite::Result<Scope<'_>> {
        Ok(if grouped {
            Scope::Group(conn)
        } else {
            Scope::Own(conn.savepoint()?)
        })
    }

    fn commit(self) -> rusqlite::Result<()> {
        match self {
            Scope::Own(sp) => sp.commit(),
            Scope::Group(_) => Ok(()),
        }
    }
}

impl Drop for Store {
    /// Like a buffered writer: what is still pending is written, and a failure is only
    /// logged (the next open indexes what is missing).
    fn drop(&mut self) {
        if let Err(e) = self.flush_dedupe_index() {
            tracing::warn!(error = %e, "near-duplicate band rows left pending for the next open");
        }
    }
}

impl Store {
    /// The latest `first_seen` held, in whole seconds (what the column stores).
    pub fn latest_first_seen(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let t: Option<i64> = self
            .conn
            .query_row("SELECT max(first_seen) FROM items", [], |r| r.get(0))?;
        Ok(t.map(from_ts))
    }

    /// Opens (creating if needed) the store at `path` and migrates it.
    pub fn open(path: &Path, authority: &str) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Store::init(conn, authority)
    }

    /// An in-memory store, for tests and `--dry-run`.
    pub fn in_memory(authority: &str) -> Result<Store, StoreError> {
        Store::init(Connection::open_in_memory()?, authority)
    }

    /// A private in-memory copy of the store at `path` (empty if there is none yet),
    /// for `build --dry-run`: a whole refresh can run against it and nothing reaches the
    /// file. The file is opened read-only and never created.
    pub fn snapshot(path: &Path, authority: &str) -> Result<Store, StoreError> {
        let mut mem = Connection::open_in_memory()?;
        if path.exists() {
            let open_err = |source| StoreError::Open {
                path: path.display().to_string(),
                source,
            };
            let file = open_untouched(path).map_err(open_err)?;
            file.busy_timeout(std::time::Duration::from_secs(5))?;
            rusqlite::backup::Backup::new(&file, &mut mem)
                .and_then(|b| b.run_to_completion(256, std::time::Duration::ZERO, None))
                .map_err(open_err)?;
        }
        Store::init(mem, authority)
    }

    fn init(conn: Connection, authority: &str) -> Result<Store, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Without the query planner stability guarantee, SQLite marks a statement for
        // re-preparation whenever it binds a new value to a parameter the planner
        // compared with a partial index's WHERE (items_visible, items_language), so every
        // candidate lookup by URL, title or representative was compiled again per item.
        // Our plans never depend on parameter values.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let had_items = table_exists(&conn, "items")?;
        let had_tags = table_exists(&conn, "item_tags")?;
        if had_items {
            add_language_column(&conn)?;
        }
        // Every statement in it is `IF NOT EXISTS`, so it also adds the tables, indexes
        // and triggers that stores made by earlier builds lack.
        conn.execute_batch(include_str!("schema.sql"))?;
        if had_items && !had_tags {
            conn.execute_batch(
                "INSERT OR IGNORE INTO item_tags (item_id, tag)
                 SELECT items.id, j.value FROM items, json_each(items.data, '$.tags') AS j;",
            )?;
        }
        title_parts::init(&conn)?;
        dedup::init(&conn)?;
        if version < SCHEMA_VERSION {
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        Ok(Store {
            conn,
            authority: authority.to_owned(),
            grouped: false,
            bands: RefCell::default(),
        })
    }

    /// Runs `f` with every store write it makes in one transaction, committed when `f`
    /// succeeds and rolled back when it fails. For a writer that stores many sources in
    /// a row: per-source commits write the hot band and index pages to the WAL once per
    /// source, a group writes them once per group. A crash loses the whole group, never
    /// part of a source.
    ///
    /// Inside, write methods take no savepoints of their own: SQLite copies every page a
    /// savepoint touches to be able to undo it, which cost 15 % of a large first build.
    /// So a write that fails may leave its statements half done, and `f` must return
    /// the error to roll the whole group back (the pipeline then stores each source of
    /// the group on its own).
    pub fn in_transaction<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&mut Store) -> Result<T, E>,
    ) -> Result<T, E> {
        self.conn
            .execute_batch("BEGIN")
            .map_err(|e| E::from(e.into()))?;
        self.grouped = true;
        let result = f(self);
        self.grouped = false;
        match result {
            Ok(v) => {
                if let Err(e) = self.conn.execute_batch("COMMIT") {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    return Err(E::from(e.into()));
                }
                Ok(v)
            }
            Err(e) => {
                // The group's error says what went wrong; a failed rollback adds nothing.
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Writes the near-duplicate band rows still pending (see `dedup::PENDING_CAP`) to
    /// the store. A writer calls it when a run has stored its sources; dropping the
    /// store does it too, and rows a crash left pending are indexed on the next open.
    pub fn flush_dedupe_index(&mut self) -> Result<(), StoreError> {
        self.bands.get_mut().reset();
        if !dedup::bands_pending(&self.conn)? {
            return Ok(());
        }
        let tx = self.conn.savepoint()?;
        dedup::flush_bands(&tx)?;
        tx.commit()?;
        Ok(())
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// `PRAGMA integrity_check`, for the crash tests and `feedwerk check`.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    // ---- sources ------------------------------------------------------------------------

    pub fn source_state(&self, id: &SourceId) -> Result<SourceState, StoreError> {
        let held: i64 = self.conn.query_row(
            "SELECT count(*) FROM items WHERE source_id = ?1 AND withdrawn = 0",
            [id.as_str()],
            |r| r.get(0),
        )?;
        let row = self
            .conn
            .query_row(
                &format!("SELECT {STATE_COLUMNS} FROM sources WHERE id = ?1"),
                [id.as_str()],
                state_from_row,
            )
            .optional()?;
        let mut s = row.unwrap_or_else(|| SourceState {
            id: id.to_string(),
            ..SourceState::default()
        });
        s.items_held = held;
        Ok(s)
    }

    /// Every source's fetch state with the items it holds, in two queries (a refresh of
    /// a thousand sources must not cost two thousand).
    pub fn source_states(
        &self,
    ) -> Result<std::collections::HashMap<String, SourceState>, StoreError> {
        let mut out = std::collections::HashMap::new();
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {STATE_COLUMNS} FROM sources"))?;
        let rows = stmt.query_map([], state_from_row)?;
        for row in rows {
            let st = row?;
            out.insert(st.id.clone(), st);
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT source_id, count(*) FROM items WHERE withdrawn = 0 GROUP BY source_id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (id, n) = row?;
            out.entry(id.clone())
                .or_insert_with(|| SourceState {
                    id,
                    ..SourceState::default()
                })
                .items_held = n;
        }
        Ok(out)
    }

    /// Saves many sources' fetch states in one transaction (one fsync per refresh, not
    /// one per source: a cycle of 304s must stay cheap).
    pub fn save_source_states(&mut self, states: &[SourceState]) -> Result<(), StoreError> {
        let tx = self.conn.savepoint()?;
        for s in states {
            save_state(&tx, s)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Saves a source's fetch state (validators, outcome, failures, next fetch).
    pub fn save_source_state(&self, s: &SourceState) -> Result<(), StoreError> {
        save_state(&self.conn, s)
    }
}

fn save_state(conn: &Connection, s: &SourceState) -> Result<(), StoreError> {
    {
        conn.prepare_cached(
            "INSERT INTO sources (id, url, etag, last_modified, last_attempt, last_success, last_status,
                                  last_error, consecutive_failures, next_fetch, moved_to, gone, fetch_count)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT(id) DO UPDATE SET url = ?2, etag = ?3, last_modified = ?4, last_attempt = ?5,
                 last_success = ?6, last_status = ?7, last_error = ?8, consecutive_failures = ?9,
                 next_fetch = ?10, moved_to = ?11, gone = ?12, fetch_count = ?13",
        )?
        .execute(params![
                s.id,
                s.url,
                s.etag,
                s.last_modified,
                s.last_attempt.map(ts),
                s.last_success.map(ts),
                s.last_status,
                s.last_error,
                s.consecutive_failures,
                s.next_fetch.map(ts),
                s.moved_to,
                s.gone,
                s.fetch_count,
            ])?;
        Ok(())
    }
}

impl Store {
    // ---- items --------------------------------------------------------------------------

    /// The tag URI readers will see for an item, minted once at first sight and stored
    /// (RFC 4151; the rule is [`crate::identity::published_id`]).
    fn mint_published_id(&self, item: &Item) -> String {
        self_mint(&self.authority, item)
    }

    pub fn get_item(&self, id: &ItemId) -> Result<Option<(Item, Option<String>)>, StoreError> {
        let row: Option<(String, Option<String>)> = self
            .conn
            .query_row(
                "SELECT data, dup_of FROM items WHERE id = ?1",
                [&id.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match row {
            Some((data, dup)) => Ok(Some((parse_item(&id.0, &data)?, dup))),
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
        mut decide: impl FnMut(&Lookup<'_>, &Item) -> Result<Decision, rusqlite::Error>,
    ) -> Result<UpsertReport, StoreError> {
        let tx = Scope::of(&mut self.conn, self.grouped)?;
        let bands = &self.bands;
        let mut report = UpsertReport::default();
        for mut item in items {
            let existing: Option<(String, i64, i64, Option<String>, bool)> = tx
                .prepare_cached(
                    "SELECT data, first_seen, published, dup_of, withdrawn FROM items WHERE id = ?1",
                )?
                .query_row([&item.id.0], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .optional()?;
            match existing {
                Some((data, first_seen, published, dup_of, withdrawn)) => {
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
                        tx.prepare_cached(
                            "UPDATE items SET last_seen = ?2, withdrawn = 0 WHERE id = ?1",
                        )?
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
                                 published = ?6, last_seen = ?7, withdrawn = 0, language = ?8
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
                                item.language
                            ])?;
                        index_tags(&tx, &item, false)?;
                        dedup::index_item(&tx, bands, &item, false)?;
                    }
                }
                None => {
                    // Whole seconds, as stored in the `first_seen` column: otherwise the next
                    // refresh sees a different JSON and counts an unchanged item as changed.
                    item.first_seen = from_ts(ts(now));
                    if item.date_source == DateSource::FirstSeen {
                        item.published = from_ts(ts(item.published));
                    }
                    let decision = decide(&Lookup::new(&tx, bands), &item)?;
                    let published_id = self_mint(&self.authority, &item);
                    let json = serde_json::to_string(&item).expect("items serialise");
                    if matches!(decision, Decision::Joins { .. }) {
                        report.duplicates += 1;
                    } else {
                        report.touched.push(item.id.clone());
                    }
                    report.new += 1;
                    tx.prepare_cached(
                        "INSERT INTO items (id, source_id, guid, canonical_url, text_hash, published, first_seen,
                                            last_seen, published_id, dup_of, dup_reason, data, language)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, NULL, NULL, ?9, ?10)",
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
                            item.language
                        ])?;
                    index_tags(&tx, &item, true)?;
                    dedup::apply(&tx, &item.id, &decision)?;
                    dedup::index_item(&tx, bands, &item, true)?;
                }
            }
        }
        dedup::flush_bands_if_full(&tx)?;
        tx.prepare_cached(
            "INSERT INTO sources (id, window_at) VALUES (?1, ?2)
             ON CONFLICT(id) DO UPDATE SET window_at = ?2",
        )?
        .execute(params![source.as_str(), ts(now)])?;
        tx.commit()?;
        Ok(report)
    }

    /// Visible items (representatives, not withdrawn), newest first, ties by ID so the
    /// order — and so the output bytes — are deterministic.
    pub fn visible_items(&self, limit: usize) -> Result<Vec<StoredItem>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, data, published_id FROM items
             WHERE dup_of IS NULL AND withdrawn = 0
             ORDER BY published DESC, id ASC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, data, published_id) = row?;
            out.push(StoredItem {
                item: parse_item(&id, &data)?,
                published_id,
                also_at: Vec::new(),
            });
        }
        drop(stmt);
        for s in &mut out {
            s.also_at = self.also_at(&s.item.id)?;
        }
        Ok(out)
    }

    /// The other copies of a representative's story.
    pub fn also_at(&self, id: &ItemId) -> Result<Vec<AlsoAt>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            // A copy from the representative's own source (a post listed twice) is a
            // mistake to hide, not another place the story appeared.
            "SELECT id, data FROM items WHERE dup_of = ?1 AND withdrawn = 0
               AND source_id != (SELECT source_id FROM items WHERE id = ?1)
             ORDER BY first_seen, id",
        )?;
        let rows = stmt.query_map([&id.0], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out: Vec<AlsoAt> = Vec::new();
        for row in rows {
            let (id, data) = row?;
            let item = parse_item(&id, &data)?;
            out.push(AlsoAt {
                source_title: item.source.to_string(),
                source: item.source,
                title: item.title,
                url: item.url,
            });
        }
        Ok(out)
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
        let tx = self.conn.savepoint()?;
        let mut n = tx.execute(
            // Only sources over the limit are ranked: counting per source reads the
            // `items_source` index alone, where ranking every item sorted the whole
            // store on every refresh (0.34 s of an all-304 refresh with 200,000 held).
            "DELETE FROM items WHERE id IN (
                SELECT id FROM (
                    SELECT id, row_number() OVER (PARTITION BY source_id ORDER BY published DESC, id) AS rn
                    FROM items
                    WHERE source_id IN (SELECT source_id FROM items GROUP BY source_id HAVING count(*) > ?1))
                WHERE rn > ?1)",
            [max_items as i64],
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
        // Duplicates whose representative is gone become visible again rather than lost.
        tx.execute(
            "UPDATE items SET dup_of = NULL, dup_reason = NULL
             WHERE dup_of IS NOT NULL AND dup_of NOT IN (SELECT id FROM items)",
            [],
        )?;
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
        let tx = self.conn.savepoint()?;
        let n = tx.execute(
            // The unconfigured sources are found in the `items_source` index (a covering
            // scan), so the rows themselves are read only for a source actually removed.
            "UPDATE items SET withdrawn = 1
             WHERE withdrawn = 0 AND source_id IN (
                SELECT source_id FROM items
                WHERE source_id NOT IN (SELECT value FROM json_each(?1))
                GROUP BY source_id)",
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

    /// Remembered validators of a published output, so they survive restarts.
    pub fn output_state(&self, path: &str) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT content_hash, last_modified FROM outputs WHERE path = ?1",
                [path],
                |r| Ok((r.get::<_, String>(0)?, from_ts(r.get(1)?))),
            )
            .optional()?)
    }

    pub fn save_output_state(
        &self,
        path: &str,
        hash: &str,
        last_modified: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO outputs (path, content_hash, last_modified) VALUES (?1, ?2, ?3)
             ON CONFLICT(path) DO UPDATE SET content_hash = ?2, last_modified = ?3",
            params![path, hash, ts(last_modified)],
        )?;
        Ok(())
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
            params![key, value],
        )?;
        Ok(())
    }

    /// What changed since the last [`Store::clear_publish_dirty`].
    pub fn publish_dirty(&self) -> Result<Dirty, StoreError> {
        let mut d = Dirty::default();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT kind, key FROM publish_dirty")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let kind: String = r.get(0)?;
            let key: String = r.get(1)?;
            match kind.as_str() {
                "source" => d.sources.insert(key),
                "tag" => d.tags.insert(key),
                _ => d.languages.insert(key),
            };
        }
        Ok(d)
    }

    /// Forgets the recorded changes, once every affected channel has been published.
    pub fn clear_publish_dirty(&self) -> Result<(), StoreError> {
        self.conn.execute("DELETE FROM publish_dirty", [])?;
        Ok(())
    }

    /// Mints IDs the same way `upsert` does; exposed for tests.
    pub fn published_id_for(&self, item: &Item) -> String {
        self.mint_published_id(item)
    }
}

/// Opens the store file read-only without creating anything beside it. With no `-wal`
/// file, no connection has the store open and the main file is complete, so it is
/// opened `immutable` (SQLite then creates no `-shm`/`-wal`). With one, a daemon may be
/// running: open it read-only the normal way, sharing its WAL index.
fn open_untouched(path: &Path) -> Result<Connection, rusqlite::Error> {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let uri = std::path::absolute(path)
        .ok()
        .and_then(|abs| url::Url::from_file_path(abs).ok());
    match uri {
        Some(mut uri) if !Path::new(&wal).exists() => {
            uri.set_query(Some("immutable=1"));
            Connection::open_with_flags(uri.as_str(), flags | OpenFlags::SQLITE_OPEN_URI)
        }
        _ => Connection::open_with_flags(path, flags),
    }
}

fn table_exists(conn: &Connection, name: &str) -> Result<bool, rusqlite::Error> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// The `language` column the language channels filter on, added to stores made before
/// it existed and filled in once from the items' JSON.
fn add_language_column(conn: &Connection) -> Result<(), rusqlite::Error> {
    let has_language = conn
        .prepare("SELECT 1 FROM pragma_table_info('items') WHERE name = 'language'")?
        .exists([])?;
    if !has_language {
        conn.execute_batch(
            "ALTER TABLE items ADD COLUMN language TEXT;
             UPDATE items SET language = json_extract(data, '$.language');",
        )?;
    }
    Ok(())
}

/// Replaces the indexed copies of an item's tags (its `language` column is written with
/// the row itself, so the update trigger runs once per item, not twice). `fresh`: the
/// item has just been inserted and has no tag rows yet.
fn index_tags(tx: &Connection, item: &Item, fresh: bool) -> Result<(), rusqlite::Error> {
    if !fresh {
        tx.prepare_cached("DELETE FROM item_tags WHERE item_id = ?1")?
            .execute([&item.id.0])?;
    }
    if item.tags.is_empty() {
        return Ok(());
    }
    let mut insert =
        tx.prepare_cached("INSERT OR IGNORE INTO item_tags (item_id, tag) VALUES (?1, ?2)")?;
    for tag in &item.tags {
        insert.execute(params![item.id.0, tag])?;
    }
    Ok(())
}

/// The published ID minted for `item` at first sight (see [`crate::identity`]).
fn self_mint(entity: &str, item: &Item) -> String {
    crate::identity::published_id(entity, &item.source, &item.id)
}

/// Whether stored `data` is the item `json` says, once written the way this version
/// writes items (older versions stored the MinHash signature in it, for one).
fn same_in_current_form(id: &str, data: &str, json: &str) -> bool {
    parse_item(id, data)
        .ok()
        .and_then(|held| serde_json::to_string(&held).ok())
        .is_some_and(|current| current == json)
}

fn parse_item(id: &str, data: &str) -> Result<Item, StoreError> {
    serde_json::from_str(data).map_err(|source| StoreError::Corrupt {
        id: id.to_owned(),
        source,
    })
}

impl Store {
    /// Visible items matching `filter`, newest first, at most `limit`. Streams rows and
    /// stops early, so memory stays bounded by `limit`, not by history. The query starts
    /// from the most selective indexed filter (tags, then sources, then languages), so a
    /// channel reads its own candidates, not every stored item; `filter.matches` then
    /// applies the full rule to each candidate.
    pub fn visible_items_where(
        &self,
        filter: &crate::model::ChannelFilter,
        limit: usize,
    ) -> Result<Vec<StoredItem>, StoreError> {
        if filter.tags.is_empty() && filter.languages.is_empty() && filter.sources.is_empty() {
            return self.visible_items(limit);
        }
        let json = |v: Vec<&str>| serde_json::to_string(&v).expect("strings serialise");
        let (sql, param) = if !filter.tags.is_empty() {
            (
                // CROSS JOIN keeps item_tags as the outer loop: only the tag's items are read.
                "SELECT DISTINCT i.id, i.data, i.published_id, i.published
                 FROM item_tags t CROSS JOIN items i ON i.id = t.item_id
                 WHERE t.tag IN (SELECT value FROM json_each(?1))
                   AND i.dup_of IS NULL AND i.withdrawn = 0
                 ORDER BY i.published DESC, i.id ASC",
                json(filter.tags.iter().map(String::as_str).collect()),
            )
        } else if !filter.sources.is_empty() {
            (
                "SELECT id, data, published_id, published FROM items
                 WHERE source_id IN (SELECT value FROM json_each(?1))
                   AND dup_of IS NULL AND withdrawn = 0
                 ORDER BY published DESC, id ASC",
                json(filter.sources.iter().map(SourceId::as_str).collect()),
            )
        } else {
            (
                "SELECT id, data, published_id, published FROM items
                 WHERE dup_of IS NULL AND withdrawn = 0 AND language IS NOT NULL
                   AND EXISTS (SELECT 1 FROM json_each(?1) AS l
                               WHERE items.language = l.value OR items.language LIKE l.value || '-%')
                 ORDER BY published DESC, id ASC",
                json(filter.languages.iter().map(String::as_str).collect()),
            )
        };
        let mut out = Vec::new();
        {
            let mut stmt = self.conn.prepare_cached(sql)?;
            let mut rows = stmt.query([param])?;
            while let Some(r) = rows.next()? {
                if out.len() >= limit {
                    break;
                }
                let id: String = r.get(0)?;
                let data: String = r.get(1)?;
                let item = parse_item(&id, &data)?;
                if filter.matches(&item) {
                    out.push(StoredItem {
                        item,
                        published_id: r.get(2)?,
                        also_at: Vec::new(),
                    });
                }
            }
        }
        for s in &mut out {
            s.also_at = self.also_at(&s.item.id)?;
        }
        Ok(out)
    }

    /// Distinct tags among visible items (from the tag index, no JSON parsing).
    pub fn visible_tags(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT t.tag FROM item_tags t JOIN items i ON i.id = t.item_id
             WHERE i.dup_of IS NULL AND i.withdrawn = 0 ORDER BY 1",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Each tag of visible items with the number of visible items that carry it (which
    /// tags are worth a channel of their own).
    pub fn visible_tag_counts(&self) -> Result<Vec<(String, usize)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT t.tag, COUNT(*) FROM item_tags t JOIN items i ON i.id = t.item_id
             WHERE i.dup_of IS NULL AND i.withdrawn = 0 GROUP BY t.tag ORDER BY 1",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        rows.map(|r| r.map(|(t, n)| (t, n as usize)).map_err(StoreError::from))
            .collect()
    }

    /// Distinct primary languages among visible items.
    pub fn visible_languages(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT language FROM items
             WHERE dup_of IS NULL AND withdrawn = 0 AND language IS NOT NULL ORDER BY 1",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut langs: Vec<String> = Vec::new();
        for l in rows {
            let l = l?;
            let primary = l.split('-').next().unwrap_or(&l).to_owned();
            if !langs.contains(&primary) {
                langs.push(primary);
            }
        }
        Ok(langs)
    }
}

/// The `sources` columns [`state_from_row`] reads, in its order.
const STATE_COLUMNS: &str = "id, url, etag, last_modified, last_attempt, last_success, \
     last_status, last_error, consecutive_failures, next_fetch, moved_to, gone, fetch_count";

/// One `sources` row selected with [`STATE_COLUMNS`]; `items_held` is counted apart.
fn state_from_row(r: &rusqlite::Row) -> rusqlite::Result<SourceState> {
    Ok(SourceState {
        id: r.get(0)?,
        url: r.get(1)?,
        etag: r.get(2)?,
        last_modified: r.get(3)?,
        last_attempt: r.get::<_, Option<i64>>(4)?.map(from_ts),
        last_success: r.get::<_, Option<i64>>(5)?.map(from_ts),
        last_status: r.get(6)?,
        last_error: r.get(7)?,
        consecutive_failures: r.get(8)?,
        next_fetch: r.get::<_, Option<i64>>(9)?.map(from_ts),
        moved_to: r.get(10)?,
        gone: r.get(11)?,
        fetch_count: r.get(12)?,
        items_held: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DateSource, Fingerprint};

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
                .map(|i| i.item.id.0)
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
            "DROP TRIGGER items_dirty_insert; DROP TRIGGER items_dirty_update;
             DROP TRIGGER items_dirty_delete; DROP TABLE item_tags; DROP TABLE publish_dirty;
             DROP INDEX items_language; ALTER TABLE items DROP COLUMN language;",
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
        let version: i64 = s
            .connection()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
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
        let mut found: Vec<String> = by_bands(s.connection(), &probe.fingerprint.minhash)
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
        // Committed, but the band rows are still in the connection's pending table.
        assert_eq!(bands_of(&s, "a:1"), 0);
        let probe = with_text(item("x", "b", &[], "de"), LONG_TEXT);
        let found = by_bands(s.connection(), &probe.fingerprint.minhash).unwrap();
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
        // An empty store built it at the first lookup; 9,600 keys made it grow once.
        let bits = s.bands.borrow().bits();
        assert_eq!(bits, Some(2 * bandfilter::MIN_BITS));
        let finds_itself = |s: &Store, p: &Item| {
            let found = Lookup::new(s.connection(), &s.bands)
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
        let found = by_bands(s.connection(), &held.fingerprint.minhash).unwrap();
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
        // The statements as `dedup` and `also_at` cache them: same text, same statement.
        for sql in [
            "SELECT id FROM items WHERE canonical_url = ?1 ORDER BY first_seen, id LIMIT 20",
            "SELECT id, data FROM items WHERE dup_of = ?1 AND withdrawn = 0
               AND source_id != (SELECT source_id FROM items WHERE id = ?1)
             ORDER BY first_seen, id",
        ] {
            let st = s.connection().prepare_cached(sql).unwrap();
            let runs = st.get_status(rusqlite::StatementStatus::Run);
            assert!(runs >= 10, "{runs} runs of {sql}");
            assert_eq!(
                st.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{sql}"
            );
        }
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
}
