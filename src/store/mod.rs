//! The SQLite store: every item ever seen, its published ID, its cluster, and each
//! source's fetch state. The only persistent state; history lives here, not in RAM.
//!
//! WAL mode with one transaction per source update, so a crash at any moment leaves
//! either the old or the new state of that source, never a mix.
//! Modules, each owning one part of the schema's use:
//!
//! - `schema`: connection settings, the schema and its migrations;
//! - `checkpointer`: WAL checkpoints of a store file, on a thread of their own;
//! - `sources`: the `sources` table, each source's fetch state ([`SourceState`]);
//! - `items`: storing a source's items (upsert, published IDs, retention, withdrawals);
//! - `visible`: what channels read: visible items by filter;
//! - `publish_index`: tag and language counts of visible items and the representatives
//!   not yet marked shown, kept by triggers so a publish need not scan every item;
//! - `outputs`: what publishing remembers: changes not yet published ([`Dirty`]) and
//!   the validators of each published file;
//! - `dedup`, `bandfilter`, `title_parts`: the store side of deduplication
//!   (signatures, LSH bands, title parts, clusters, churn, retractions);
//! - `pending`: the band rows this process made and has not written to the band
//!   table yet, as an in-memory index (SQLite stays the record and the index of
//!   history; memory holds what a run adds);
//! - `overlay`: the rest of the dedupe index of what a run adds (keys, held candidates
//!   with their shingles, signatures), consulted before SQLite and answering for it
//!   when nothing was held before the run;
//! - `uploads`: what publishing to object storage remembers (headers of each output,
//!   objects uploaded per target, how the last upload went);
//! - `reading`: the reading fingerprint each source was last read with;
//! - [`archive`]: RFC 5005 archive pages;
//! - [`postgres`]: the PostgreSQL store, a [`Backend`] of every area;
//! - `backend`: [`Backend`], the interface the rest of the program reaches the store
//!   through, implemented here by [`Store`] (and by the PostgreSQL store of issue 20).

use std::cell::RefCell;
use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use crate::model::Item;

pub mod archive;
mod backend;
mod bandfilter;
mod bounded;
mod checkpointer;
mod dedup;
mod inserted;
mod items;
mod outputs;
mod overlay;
mod pending;
pub mod postgres;
mod publish_index;
mod reading;
mod schema;
mod sources;
mod title_parts;
mod uploads;
mod visible;
pub use backend::{
    ArchiveStore, Backend, ChannelStore, Decide, DedupStore, GroupBody, GroupStore, ItemStore,
    MetaStore, OutputStore, SourceStore, UploadStore,
};
use bandfilter::BandFilter;
pub use dedup::{by_bands, by_canonical_url, by_guid, by_text_hash, by_title, held, was_shown};
pub use dedup::{Churn, Cluster, DedupeEvent, Lookup};
pub use items::{item_key, HeldItem, UpsertReport};
pub use outputs::{Dirty, OutputState};
use overlay::Overlay;
use pending::Pending;
pub use title_parts::by_title_parts;
pub use uploads::{PublishedOutput, RemoteObject, RemoteState};
pub use visible::{ItemCache, StoredItem};

/// The meta key holding the config fingerprint of the last publish.
pub const PUBLISHED_CONFIG: &str = "published_config";
/// The meta key that is "1" while the store holds changes not yet published. Kept in
/// the store, not in a process: a `build` must publish what a running daemon (or an
/// interrupted earlier run) stored but did not publish yet.
pub const UNPUBLISHED: &str = "unpublished_changes";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A near-duplicate lookup made by `dedupe` through [`Lookup`] failed.
    #[error("store: {0}")]
    Lookup(#[from] crate::dedupe::LookupError),
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
    /// A `[store] url` that tokio-postgres cannot read (password masked).
    #[error("store {url}: {source}")]
    PgUrl {
        url: String,
        source: tokio_postgres::Error,
    },
    /// These two print their causes (tokio-postgres's own text is only its kind: "db
    /// error") and so, like `PgServer`, do not name them as `source`: a chain printer
    /// would repeat them (see the `From`s below).
    #[error("store: PostgreSQL: {}", with_causes(.0))]
    Postgres(tokio_postgres::Error),
    #[error("store: PostgreSQL connection: {}", with_causes(.0))]
    PgConnect(deadpool_postgres::PoolError),
    #[error("store: PostgreSQL pool: {0}")]
    PgPool(String),
    #[error("store: cannot start the PostgreSQL store's runtime: {0}")]
    PgRuntime(std::io::Error),
    #[error("store: the PostgreSQL store's runtime stopped before answering")]
    PgGone,
    #[error("store: the PostgreSQL database has schema version {version}, newer than this feedwerk knows ({known}): upgrade feedwerk")]
    PgNewerSchema { version: i64, known: i64 },
    #[error("store: a PostgreSQL store group was opened inside another group")]
    PgNestedGroup,
    /// A write of a leader whose term is over (`postgres::leader`): nothing of it was
    /// stored.
    #[error("store: write refused, leadership epoch {held} is over: {reason}")]
    Fenced { held: i64, reason: String },
    #[error("store: PostgreSQL TLS: {0}")]
    PgTls(String),
    /// Opening or using the PostgreSQL store at `url` (password masked) failed.
    /// Not the error's `source`: its text (with its causes) is in this message, and a
    /// chain printer (anyhow's `{:#}`) would repeat it.
    #[error("PostgreSQL store {url}: {error}")]
    PgServer { url: String, error: Box<StoreError> },
    /// `build --dry-run` needs a private copy of the store, which only SQLite has.
    #[error("build --dry-run is not supported with the PostgreSQL store {url}: it refreshes a private copy of the store, and a shared database has none (a build inside a transaction rolled back at the end would hold locks the running leader's writes wait for); run `build --dry-run` against a SQLite store")]
    DryRunOnPostgres { url: String },
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        StoreError::Postgres(e)
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> StoreError {
        StoreError::PgConnect(e)
    }
}

/// `e` and its causes, `: `-separated. tokio-postgres's errors say only their kind
/// ("db error", "error performing TLS handshake"); the server's message or the
/// certificate problem is their cause.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_text = c.to_string();
        // A wrapper may already show its cause (deadpool does).
        if !text.contains(&c_text) {
            text.push_str(": ");
            text.push_str(&c_text);
        }
        cause = c.source();
    }
    text
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
    /// Which band keys the band table may hold (see `bandfilter`); kept for one run.
    bands: RefCell<BandFilter>,
    /// Band rows of signatures stored by this process, not yet in the band table.
    pending: RefCell<Pending>,
    /// The dedupe index of the items this run stored (see `overlay`); kept for one run.
    overlay: RefCell<Overlay>,
    /// Checkpoints this store file's WAL off the writing thread (see `checkpointer`);
    /// `None` in memory, where there is no WAL.
    checkpointer: Option<checkpointer::Checkpointer>,
    /// Tests: every lookup the overlay answers is asked of SQLite too, and must agree.
    #[cfg(test)]
    check_overlay: bool,
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
        // Before the writer's connection (the first field) closes: the last connection
        // to close checkpoints the WAL and removes it.
        self.checkpointer.take();
    }
}

impl Store {
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
        let mut store = Store::init(conn, authority)?;
        store.checkpointer = checkpointer::Checkpointer::start(path, &mut store.conn);
        Ok(store)
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
            let file = schema::open_untouched(path).map_err(open_err)?;
            file.busy_timeout(std::time::Duration::from_secs(5))?;
            rusqlite::backup::Backup::new(&file, &mut mem)
                .and_then(|b| b.run_to_completion(256, std::time::Duration::ZERO, None))
                .map_err(open_err)?;
        }
        Store::init(mem, authority)
    }

    fn init(conn: Connection, authority: &str) -> Result<Store, StoreError> {
        schema::migrate(&conn)?;
        Ok(Store {
            conn,
            authority: authority.to_owned(),
            grouped: false,
            bands: RefCell::default(),
            pending: RefCell::default(),
            overlay: RefCell::default(),
            checkpointer: None,
            #[cfg(test)]
            check_overlay: false,
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
        let mark = self.pending.get_mut().mark();
        let overlay_mark = self.overlay.get_mut().mark();
        let result = f(self);
        self.grouped = false;
        match result {
            Ok(v) => {
                if let Err(e) = self.conn.execute_batch("COMMIT") {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    self.pending.get_mut().undo_to(mark);
                    self.overlay.get_mut().undo_to(overlay_mark);
                    return Err(E::from(e.into()));
                }
                self.overlay.get_mut().committed();
                self.flush_bands_if_full().map_err(E::from)?;
                Ok(v)
            }
            Err(e) => {
                // The group's error says what went wrong; a failed rollback adds nothing.
                let _ = self.conn.execute_batch("ROLLBACK");
                self.pending.get_mut().undo_to(mark);
                self.overlay.get_mut().undo_to(overlay_mark);
                Err(e)
            }
        }
    }

    /// Writes the pending band rows once [`pending::PENDING_CAP`] of them have
    /// gathered. Only between transactions: rows written inside one that then rolls
    /// back would be gone from memory and from the table.
    fn flush_bands_if_full(&mut self) -> Result<(), StoreError> {
        if self.grouped || !self.pending.get_mut().is_full() {
            return Ok(());
        }
        self.write_pending_bands()
    }

    /// Writes the pending band rows in their own transaction, then forgets them. The
    /// bitmap, if taken up, learns their keys (they are in the band table now) and is
    /// written with them (see `bandfilter`).
    fn write_pending_bands(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.savepoint()?;
        dedup::flush_bands(&tx, self.pending.get_mut())?;
        self.bands.get_mut().persist(&tx)?;
        tx.commit()?;
        *self.pending.get_mut() = Pending::default();
        Ok(())
    }

    /// Writes the near-duplicate band rows still pending (see [`pending`]) to the
    /// store. A writer calls it when a run has stored its sources; dropping the store
    /// does it too, and rows a crash left pending are indexed on the next open.
    pub fn flush_dedupe_index(&mut self) -> Result<(), StoreError> {
        let written = if self.pending.get_mut().len() == 0 {
            Ok(())
        } else {
            // With the bitmap still warm, so it is stored with the rows.
            self.write_pending_bands()
        };
        // The bitmap is for one run: the next reads it again and catches up with the
        // rows another process wrote meanwhile. So is the overlay.
        self.bands.get_mut().reset();
        self.overlay.get_mut().reset();
        written
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

    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Notes that the outputs no longer show what the store holds (see [`UNPUBLISHED`]).
    pub fn note_unpublished_changes(&self) -> Result<(), StoreError> {
        self.set_meta(UNPUBLISHED, "1")
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
            params![key, value],
        )?;
        Ok(())
    }
}

/// An item row's JSON, read back; a row that does not parse names its item. The JSON
/// leaves out the matching text (`Item::text`, empty here): the rows that need it read
/// the `text` column.
fn parse_item(id: &str, data: &str) -> Result<Item, StoreError> {
    serde_json::from_str(data).map_err(|source| StoreError::Corrupt {
        id: id.to_owned(),
        source,
    })
}

fn table_exists(conn: &Connection, name: &str) -> Result<bool, rusqlite::Error> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

#[cfg(test)]
mod tests;
