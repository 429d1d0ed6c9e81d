//! RFC 5005 archive pages: which stored items each page of a channel holds.
//!
//! A page is a run of a channel's items in the order we first saw them (`first_seen`,
//! then ID), so new items always land after the last page and a full page never gains
//! members. A page is stored as the position of its last item; once it has a successor
//! and its final bytes are on disk it is *sealed* and never rendered again, so pruning
//! or merging items later cannot change what an archive URL returns.

use rusqlite::params;

use super::{parse_item, Store, StoreError, StoredItem};
use crate::model::ChannelFilter;

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
        let (a_ts, a_id) = after.map(|c| (c.0, c.1.as_str())).unwrap_or((i64::MIN, ""));
        let (u_ts, u_id) = upto
            .map(|c| (c.0, c.1.as_str()))
            .unwrap_or((i64::MAX, "\u{10FFFF}"));
        let one_source = (filter.sources.len() == 1).then(|| filter.sources[0].as_str());
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, data, published_id, first_seen FROM items
             WHERE dup_of IS NULL AND withdrawn = 0
               AND (first_seen > ?1 OR (first_seen = ?1 AND id > ?2))
               AND (first_seen < ?3 OR (first_seen = ?3 AND id <= ?4))
               AND (?5 IS NULL OR source_id = ?5)
             ORDER BY first_seen, id",
        )?;
        let mut rows = stmt.query(params![a_ts, a_id, u_ts, u_id, one_source])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let data: String = r.get(1)?;
            let item = parse_item(&id, &data)?;
            if filter.matches(&item) {
                out.push((
                    StoredItem {
                        item,
                        published_id: r.get(2)?,
                        also_at: Vec::new(),
                    },
                    Cursor(r.get(3)?, id),
                ));
            }
        }
        drop(rows);
        drop(stmt);
        for (s, _) in &mut out {
            s.also_at = self.also_at(&s.item.id)?;
        }
        Ok(out)
    }
}
