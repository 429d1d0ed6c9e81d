//! Bounded key lookups of held items: at most a fixed number of IDs per key, the ones
//! an `ORDER BY … LIMIT` query would return, read without SQLite's sorter where the key
//! has few rows. Used by the candidate lookups of `dedup` and `title_parts`.

use rusqlite::Connection;

use crate::model::ItemId;

/// How a bounded key lookup orders its candidates before cutting them off.
#[derive(Debug, Clone, Copy)]
pub(super) enum Keep {
    /// The first seen (then by ID): `ORDER BY first_seen, id`.
    Oldest,
    /// The most recent by date: `ORDER BY published DESC`.
    Newest,
}

/// A bounded key lookup: at most `limit` IDs, the ones `full` (the same lookup with its
/// `ORDER BY … LIMIT`) would return. `fast` is that lookup without the `ORDER BY`,
/// selecting each row's ID and sort key, with `LIMIT limit + 1`.
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
    keep: Keep,
) -> Result<Vec<ItemId>, rusqlite::Error> {
    let mut rows: Vec<(i64, String)> = {
        let mut stmt = conn.prepare_cached(fast)?;
        let rows = stmt.query_map([key], |r| Ok((r.get::<_, i64>(1)?, r.get::<_, String>(0)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    if rows.len() > limit {
        return ids(conn, full, key);
    }
    match keep {
        Keep::Oldest => rows.sort_unstable(),
        Keep::Newest => {
            rows.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        }
    }
    Ok(rows.into_iter().map(|(_, id)| ItemId(id)).collect())
}

/// Runs one of the ID lookups below (each with its row limit in the SQL text).
fn ids(conn: &Connection, sql: &str, key: &str) -> Result<Vec<ItemId>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([key], |r| r.get::<_, String>(0))?;
    rows.map(|r| r.map(ItemId)).collect()
}

/// Most items an exact-key lookup (URL, GUID, text hash) returns: the first seen.
pub(super) const EXACT_KEY_LIMIT: usize = 20;
/// Most items a title lookup returns: the most recent.
pub(super) const TITLE_LIMIT: usize = 50;

/// Held items whose whole normalised title is `key`, the most recent [`TITLE_LIMIT`].
pub(super) fn by_title_key(conn: &Connection, key: &str) -> Result<Vec<ItemId>, rusqlite::Error> {
    bounded_ids(
        conn,
        "SELECT s.item_id, i.published FROM dedupe_sig s JOIN items i ON i.id = s.item_id
         WHERE s.title_key = ?1 LIMIT 51",
        "SELECT s.item_id FROM dedupe_sig s JOIN items i ON i.id = s.item_id
         WHERE s.title_key = ?1 ORDER BY i.published DESC LIMIT 50",
        key,
        TITLE_LIMIT,
        Keep::Newest,
    )
}

const _: () = assert!(
    EXACT_KEY_LIMIT == 20 && TITLE_LIMIT == 50,
    "the lookups' SQL spells the limits out"
);
