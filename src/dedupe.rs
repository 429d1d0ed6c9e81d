//! Which stored item a new item duplicates, if any.
//!
//! Exact rules only for now: the same canonical URL anywhere, or the same normalised
//! body text. The first copy seen stays the representative (its ID has been published).

use rusqlite::{Connection, OptionalExtension};

use crate::config::DedupeConfig;
use crate::model::{Item, ItemId};

/// Bodies shorter than this (in normalised characters) are too generic to match on.
const MIN_TEXT_FOR_HASH: usize = 80;

/// Returns the representative `item` joins and why, or `None` for a new story.
pub fn find_duplicate(
    conn: &Connection,
    item: &Item,
    _cfg: &DedupeConfig,
) -> Result<Option<(ItemId, String)>, rusqlite::Error> {
    let lookup =
        |sql: &str, key: &str| -> Result<Option<(String, Option<String>)>, rusqlite::Error> {
            conn.query_row(sql, rusqlite::params![key, item.id.0], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
        };
    if let Some(url) = &item.canonical_url {
        if let Some((id, dup_of)) = lookup(
            "SELECT id, dup_of FROM items WHERE canonical_url = ?1 AND id != ?2 ORDER BY first_seen, id LIMIT 1",
            url,
        )? {
            return Ok(Some((ItemId(dup_of.unwrap_or(id)), "exact URL".into())));
        }
    }
    if item.text.chars().count() >= MIN_TEXT_FOR_HASH {
        if let Some((id, dup_of)) = lookup(
            "SELECT id, dup_of FROM items WHERE text_hash = ?1 AND id != ?2 ORDER BY first_seen, id LIMIT 1",
            &item.fingerprint.text_hash,
        )? {
            return Ok(Some((ItemId(dup_of.unwrap_or(id)), "same text".into())));
        }
    }
    Ok(None)
}
