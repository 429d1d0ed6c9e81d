//! Connection settings, the schema (`schema.sql`) and the migrations of stores made
//! by earlier versions; the deduplication tables are set up by `dedup::init`.

use std::path::Path;

use rusqlite::config::DbConfig;
use rusqlite::Connection;

use super::{dedup, publish_index, table_exists, title_parts, uploads, StoreError};

/// 2: LSH bands keyed by integer in a WITHOUT ROWID table (see `dedup::init`).
/// 3: lean item rows (title and matching text in columns, the text no longer in the
/// JSON; see [`lean_item_rows`]) and a band table without its index by signature
/// (`dedup::init`).
/// 4: the title lookups read indexes kept in their order: signature rows keep their
/// item's date (`dedup::init`), title-part rows are keyed by part and date
/// (`title_parts::init`).
/// 5: item inserts fire no trigger (their publish marks and counts are written by
/// `inserted`, so an insert needs no statement journal), one index by source
/// (`items_by_source`) for the two by source and held, none by language.
pub(super) const SCHEMA_VERSION: i64 = 5;

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
/// checkpoints them once per several times as many writes. A store file opened for
/// writing hands its checkpoints to a thread of their own at the same threshold
/// (`checkpointer`); this one stays for the connections without one.
const WAL_AUTOCHECKPOINT: i64 = super::checkpointer::WAL_SOFT_LIMIT as i64;

/// Sets up a freshly opened connection and brings its schema to [`SCHEMA_VERSION`].
pub(super) fn migrate(conn: &Connection) -> Result<(), StoreError> {
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
    // compared with a partial index's WHERE (items_visible, items_dups), so every
    // candidate lookup by URL, title or representative was compiled again per item.
    // Our plans never depend on parameter values.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let had_items = table_exists(conn, "items")?;
    let had_tags = table_exists(conn, "item_tags")?;
    if had_items {
        add_language_column(conn)?;
        lean_item_rows(conn)?;
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
    title_parts::init(conn)?;
    dedup::init(conn)?;
    uploads::init(conn)?;
    // Issue 16: tag/language counts and unshown representatives kept by triggers.
    publish_index::init(conn)?;
    if version < SCHEMA_VERSION {
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    Ok(())
}

/// Opens the store file read-only without creating anything beside it. With no `-wal`
/// file, no connection has the store open and the main file is complete, so it is
/// opened `immutable` (SQLite then creates no `-shm`/`-wal`). With one, a daemon may be
/// running: open it read-only the normal way, sharing its WAL index.
pub(super) fn open_untouched(path: &Path) -> Result<Connection, rusqlite::Error> {
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

/// Schema 3: an item's matching text moves out of its JSON into a `text` column, and
/// its title is copied into a `title` column, so deduplication reads what it compares
/// without parsing the item (three `json_extract`s of a 4 KB document per candidate),
/// and the JSON every channel parses holds the body once. Published IDs, dates and
/// every other column stay as they are; the rewritten JSON counts as unchanged on the
/// next upsert (see `items::same_in_current_form`). One transaction: a crash leaves
/// the old rows or the new ones. The publish-dirty trigger is dropped first (the
/// schema recreates it), since no channel changes.
fn lean_item_rows(conn: &Connection) -> Result<(), rusqlite::Error> {
    let has_text = conn
        .prepare("SELECT 1 FROM pragma_table_info('items') WHERE name = 'text'")?
        .exists([])?;
    if has_text {
        return Ok(());
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "DROP TRIGGER IF EXISTS items_dirty_update;
         ALTER TABLE items ADD COLUMN title TEXT NOT NULL DEFAULT '';
         ALTER TABLE items ADD COLUMN text TEXT NOT NULL DEFAULT '';
         UPDATE items SET title = coalesce(json_extract(data, '$.title'), ''),
                          text = coalesce(json_extract(data, '$.text'), ''),
                          data = json_remove(data, '$.text');",
    )?;
    tx.commit()
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
