//! RFC 5005 archive pages: which stored items each page of a channel holds.
//!
//! A page is a run of a channel's items in the order we first saw them (`first_seen`,
//! then ID), so new items always land after the last page and a full page never gains
//! members. A page is stored as the position of its last item; once it has a successor
//! and its final bytes are on disk it is *sealed* and never rendered again, so pruning
//! or merging items later cannot change what an archive URL returns.

use rusqlite::{params, OptionalExtension};

use std::sync::Arc;

use super::{parse_item, ItemCache, Store, StoreError, StoredItem};
use crate::model::{ChannelFilter, Item};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS archive_pages (
    channel        TEXT NOT NULL,     -- channel key: `all`, `sources/efus`, …
    page           INTEGER NOT NULL,  -- 1 = oldest
    end_first_seen INTEGER NOT NULL,  -- position of the page's last item …
    end_id         TEXT NOT NULL,     -- … (first_seen, id)
    sealed         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, page)
);
CREATE INDEX IF NOT EXISTS items_first_seen ON items(first_seen, id);
-- The pages not sealed yet: normally none or the newest, whatever the archive's length.
CREATE INDEX IF NOT EXISTS archive_pages_unsealed ON archive_pages(channel, page) WHERE sealed = 0;
";

/// A position in first-seen order: `(first_seen as UNIX seconds, item id)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor(pub i64, pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivePage {
    pub page: u32,
    pub end: Cursor,
    pub sealed: bool,
}

/// What publishing needs to know of a channel's stored pages without reading one row
/// per page: how many there are (numbered `1..=count`), whether the newest is sealed,
/// where it ends, and the pages not sealed yet. Everything else is sealed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredPages {
    pub count: u32,
    pub last: Option<ArchivePage>,
    /// Oldest first.
    pub unsealed: Vec<ArchivePage>,
}

impl StoredPages {
    pub fn is_sealed(&self, page: u32) -> bool {
        page <= self.count && !self.unsealed.iter().any(|p| p.page == page)
    }
}

impl Store {
    /// Creates the archive table in stores made before it existed. Idempotent.
    pub fn ensure_archive_schema(&self) -> Result<(), StoreError> {
        self.conn.execute_batch(SCHEMA)?;
        Ok(())
    }

    /// The pages of `channel`, oldest first.
    pub fn archive_pages(&self, channel: &str) -> Result<Vec<ArchivePage>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT page, end_first_seen, end_id, sealed FROM archive_pages
             WHERE channel = ?1 ORDER BY page",
        )?;
        let rows = stmt.query_map([channel], |r| {
            Ok(ArchivePage {
                page: r.get(0)?,
                end: Cursor(r.get(1)?, r.get(2)?),
                sealed: r.get::<_, i64>(3)? != 0,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The stored pages of `channel` as [`StoredPages`]: two index lookups (the newest
    /// page, the unsealed ones), so a channel with thousands of sealed pages costs what
    /// one with a single page does.
    pub fn archive_summary(&self, channel: &str) -> Result<StoredPages, StoreError> {
        let page = |r: &rusqlite::Row| -> rusqlite::Result<ArchivePage> {
            Ok(ArchivePage {
                page: r.get(0)?,
                end: Cursor(r.get(1)?, r.get(2)?),
                sealed: r.get::<_, i64>(3)? != 0,
            })
        };
        let last = self
            .conn
            .prepare_cached(
                "SELECT page, end_first_seen, end_id, sealed FROM archive_pages
                 WHERE channel = ?1 ORDER BY page DESC LIMIT 1",
            )?
            .query_row([channel], page)
            .optional()?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT page, end_first_seen, end_id, sealed FROM archive_pages
             WHERE channel = ?1 AND sealed = 0 ORDER BY page",
        )?;
        let unsealed = stmt.query_map([channel], page)?.collect::<Result<_, _>>()?;
        Ok(StoredPages {
            count: last.as_ref().map_or(0, |p| p.page),
            last,
            unsealed,
        })
    }

    /// Where page `page` of `channel` ends, if it is stored.
    pub fn archive_page_end(&self, channel: &str, page: u32) -> Result<Option<Cursor>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT end_first_seen, end_id FROM archive_pages WHERE channel = ?1 AND page = ?2",
            )?
            .query_row(params![channel, page], |r| Ok(Cursor(r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    pub fn add_archive_page(
        &self,
        channel: &str,
        page: u32,
        end: &Cursor,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO archive_pages (channel, page, end_first_seen, end_id) VALUES (?1, ?2, ?3, ?4)",
            params![channel, page, end.0, end.1],
        )?;
        Ok(())
    }

    pub fn seal_archive_page(&self, channel: &str, page: u32) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE archive_pages SET sealed = 1 WHERE channel = ?1 AND page = ?2",
            params![channel, page],
        )?;
        Ok(())
    }

    /// Visible items matching `filter` after `after` and up to and including `upto`,
    /// in first-seen order, each with its position.
    pub fn archive_items(
        &self,
        filter: &ChannelFilter,
        after: Option<&Cursor>,
        upto: Option<&Cursor>,
    ) -> Result<Vec<(StoredItem, Cursor)>, StoreError> {
        self.archive_items_cached(filter, after, upto, &mut ItemCache::new(0))
    }

    /// [`Store::archive_items`], taking the items (and their other copies) already
    /// parsed in this pass from `cache` and leaving the ones parsed now in it: the
    /// combined archive holds every visible item, and each is in other channels of
    /// the pass too.
    pub fn archive_items_cached(
        &self,
        filter: &ChannelFilter,
        after: Option<&Cursor>,
        upto: Option<&Cursor>,
        cache: &mut ItemCache,
    ) -> Result<Vec<(StoredItem, Cursor)>, StoreError> {
        let mut items = Vec::new();
        let mut cursors = Vec::new();
        self.archive_rows(
            filter,
            after,
            upto,
            |item, published_id, cursor| {
                items.push(StoredItem {
                    item: item.expect("parsed when asked for items"),
                    published_id,
                    also_at: Vec::new(),
                });
                cursors.push(cursor);
            },
            Some(cache),
        )?;
        self.fill_also_at(&mut items, cache)?;
        Ok(items.into_iter().zip(cursors).collect())
    }

    /// The positions of the visible items matching `filter` after `after`, in
    /// first-seen order: what cutting pages needs, without reading the items themselves
    /// when the channel filters on one dimension only (the query then is the filter).
    pub fn archive_cursors(
        &self,
        filter: &ChannelFilter,
        after: Option<&Cursor>,
    ) -> Result<Vec<Cursor>, StoreError> {
        let dims = filter.dimensions();
        let mut out = Vec::new();
        self.archive_rows(
            filter,
            after,
            None,
            |_, _, cursor| out.push(cursor),
            (dims > 1).then_some(&mut ItemCache::new(0)),
        )?;
        Ok(out)
    }

    /// Streams the candidate rows of `filter` between the cursors to `row`, parsing
    /// (and checking with `filter.matches`) only when given a cache to parse through.
    fn archive_rows(
        &self,
        filter: &ChannelFilter,
        after: Option<&Cursor>,
        upto: Option<&Cursor>,
        mut row: impl FnMut(Option<Arc<Item>>, String, Cursor),
        cache: Option<&mut ItemCache>,
    ) -> Result<(), StoreError> {
        let (a_ts, a_id) = after.map(|c| (c.0, c.1.as_str())).unwrap_or((i64::MIN, ""));
        let (u_ts, u_id) = upto
            .map(|c| (c.0, c.1.as_str()))
            .unwrap_or((i64::MAX, "\u{10FFFF}"));
        let (sql, keys) = archive_query(filter);
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut rows = stmt.query(params![a_ts, a_id, u_ts, u_id, keys])?;
        let Some(cache) = cache else {
            while let Some(r) = rows.next()? {
                row(None, r.get(2)?, Cursor(r.get(3)?, r.get(0)?));
            }
            return Ok(());
        };
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let cursor = Cursor(r.get(3)?, id);
            let item = match cache.get(&cursor.1) {
                Some(item) => item,
                None => {
                    let data: String = r.get(1)?;
                    let item = Arc::new(parse_item(&cursor.1, &data)?);
                    cache.insert(cursor.1.clone(), item)
                }
            };
            if filter.matches(&item) {
                row(Some(item), r.get(2)?, cursor);
            }
        }
        Ok(())
    }
}

/// The query behind [`Store::archive_rows`] for `filter`, with its key list. Ranges are
/// row values so they are index ranges on `items_first_seen`; a channel's candidates come
/// from its most selective index (see the plan test below).
fn archive_query(filter: &ChannelFilter) -> (&'static str, Option<String>) {
    // Candidates come from the most selective indexed filter (tags, sources,
    // languages), so a channel reads its own items, not every stored one;
    // `filter.matches` applies the full rule.
    let json = |v: Vec<&str>| serde_json::to_string(&v).expect("strings serialise");
    if !filter.tags.is_empty() {
        (
            "SELECT DISTINCT i.id, i.data, i.published_id, i.first_seen
             FROM item_tags t CROSS JOIN items i ON i.id = t.item_id
             WHERE t.tag IN (SELECT value FROM json_each(?5))
               AND i.dup_of IS NULL AND i.withdrawn = 0
               AND (i.first_seen, i.id) > (?1, ?2) AND (i.first_seen, i.id) <= (?3, ?4)
             ORDER BY i.first_seen, i.id",
            Some(json(filter.tags.iter().map(String::as_str).collect())),
        )
    } else if !filter.sources.is_empty() {
        (
            "SELECT id, data, published_id, first_seen FROM items
             WHERE dup_of IS NULL AND withdrawn = 0
               AND (first_seen, id) > (?1, ?2) AND (first_seen, id) <= (?3, ?4)
               AND source_id IN (SELECT value FROM json_each(?5))
             ORDER BY first_seen, id",
            Some(json(filter.sources.iter().map(|s| s.as_str()).collect())),
        )
    } else if !filter.languages.is_empty() {
        (
            "SELECT id, data, published_id, first_seen FROM items
             WHERE dup_of IS NULL AND withdrawn = 0
               AND (first_seen, id) > (?1, ?2) AND (first_seen, id) <= (?3, ?4)
               AND +language IS NOT NULL
               AND EXISTS (SELECT 1 FROM json_each(?5) AS l
                           WHERE items.language = l.value OR items.language LIKE l.value || '-%')
             ORDER BY first_seen, id",
            Some(json(filter.languages.iter().map(String::as_str).collect())),
        )
    } else {
        (
            "SELECT id, data, published_id, first_seen FROM items
             WHERE dup_of IS NULL AND withdrawn = 0
               AND (first_seen, id) > (?1, ?2) AND (first_seen, id) <= (?3, ?4)
               AND ?5 IS NULL
             ORDER BY first_seen, id",
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every channel's archive query reads its own index range: a plan through the
    /// `dup_of` index or a full scan made archive publishing quadratic in a large store
    /// (every archive page of every per-source channel walked all visible items).
    #[test]
    fn archive_queries_read_an_index_range_not_every_item() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite"), "example.org").unwrap();
        store.ensure_archive_schema().unwrap();
        let filters = [
            ChannelFilter::default(),
            ChannelFilter {
                sources: vec![crate::model::SourceId("efus".into())],
                ..ChannelFilter::default()
            },
            ChannelFilter {
                languages: vec!["de".into()],
                ..ChannelFilter::default()
            },
            ChannelFilter {
                tags: vec!["praevention".into()],
                ..ChannelFilter::default()
            },
        ];
        for f in &filters {
            let (sql, _) = archive_query(f);
            let plan: Vec<String> = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(params![0, "", 1, "", Option::<String>::None], |r| {
                    r.get::<_, String>(3)
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let plan = plan.join(" | ");
            assert!(!plan.contains("items_dup"), "{f:?}: {plan}");
            assert!(!plan.contains("SCAN items"), "{f:?}: {plan}");
            assert!(plan.contains("SEARCH"), "{f:?}: {plan}");
        }
    }
}
