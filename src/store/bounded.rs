//! Bounded key lookups of held items: at most a fixed number of IDs per key, the ones
//! an `ORDER BY … LIMIT` query would return, read without SQLite's sorter. The exact-key
//! lookups (URL, GUID, text hash) of `dedup` read the few rows of a key unsorted; the
//! title lookups of `dedup` and `title_parts` read an index kept in their order.

use rusqlite::Connection;

use crate::model::ItemId;

/// A bounded exact-key lookup: at most `limit` IDs, the first seen (then by ID), the
/// ones `full` (the same lookup with its `ORDER BY first_seen, id LIMIT`) would return.
/// `fast` is that lookup without the `ORDER BY`, selecting each row's ID and
/// `first_seen`, with `LIMIT limit + 1`.
///
/// An `ORDER BY … LIMIT` query sorts into an ephemeral b-tree that SQLite opens, creates
/// and closes on every run, even when no row matches; at five or six lookups per new
/// item that was about 0.55 G of the 4.7 G instructions a cold medium build spent
/// committing (callgrind). Nearly every key has fewer rows than the limit, so `fast`
/// reads them all, unsorted, and they are ordered here; only a key with more rows
/// than the limit runs `full`, so the cut-off stays the same.
pub(super) fn bounded_ids(
    conn: &Connection,
    fast: &str,
    full: &str,
    key: &str,
    limit: usize,
) -> Result<Vec<ItemId>, rusqlite::Error> {
    let mut rows: Vec<(i64, String)> = {
        let mut stmt = conn.prepare_cached(fast)?;
        let rows = stmt.query_map([key], |r| Ok((r.get::<_, i64>(1)?, r.get::<_, String>(0)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    if rows.len() > limit {
        return ids(conn, full, key);
    }
    rows.sort_unstable();
    Ok(rows.into_iter().map(|(_, id)| ItemId(id)).collect())
}

/// Runs one of the ID lookups here (each with its row limit in the SQL text).
fn ids(conn: &Connection, sql: &str, key: &str) -> Result<Vec<ItemId>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([key], |r| r.get::<_, String>(0))?;
    rows.map(|r| r.map(ItemId)).collect()
}

/// Most items an exact-key lookup (URL, GUID, text hash) returns: the first seen.
pub(super) const EXACT_KEY_LIMIT: usize = 20;
/// Most items a title lookup returns: the most recent.
pub(super) const TITLE_LIMIT: usize = 50;

/// Held items whose whole normalised title is `key`, the most recent [`TITLE_LIMIT`]
/// (by date, then ID).
///
/// Generic titles ("Wetter", "Presseschau") gather hundreds of items as a store grows
/// (597 of 200,000 in the bench's growth store). Reading them through an index on the
/// title alone, joined with `items` for the date and sorted, cost a read of every such
/// item row (random pages, most not in SQLite's cache) per lookup: the title lookups
/// were 10 % of a 10,000-item refresh at 200,000 held and grew with history. The
/// signature row keeps its item's date (schema 4), in an index ordered by title, date
/// and ID, so the lookup reads at most [`TITLE_LIMIT`] index entries, in order.
pub(super) fn by_title_key(conn: &Connection, key: &str) -> Result<Vec<ItemId>, rusqlite::Error> {
    ids(
        conn,
        "SELECT item_id FROM dedupe_sig WHERE title_key = ?1
         ORDER BY published DESC, item_id LIMIT 50",
        key,
    )
}

/// Held items with a title part `part` (see `title_parts`), the most recent
/// [`TITLE_LIMIT`], read in order from the part table's key like [`by_title_key`].
pub(super) fn by_title_part(conn: &Connection, part: &str) -> Result<Vec<ItemId>, rusqlite::Error> {
    ids(
        conn,
        "SELECT item_id FROM dedupe_title_part WHERE part = ?1
         ORDER BY published DESC, item_id LIMIT 50",
        part,
    )
}

const _: () = assert!(
    EXACT_KEY_LIMIT == 20 && TITLE_LIMIT == 50,
    "the lookups' SQL spells the limits out"
);
