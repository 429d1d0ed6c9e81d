//! RFC 5005 archive pages on PostgreSQL: the stored pages of each channel (where each
//! ends, whether it is sealed) and the visible items of a channel in first-seen order
//! between two positions. The [`ArchiveStore`] area, with the behaviour of
//! `store/archive.rs`; what a page holds and when it is sealed is `publish`'s.
//!
//! Positions are `(first_seen, id)` with IDs compared byte-wise (`COLLATE "C"`), as
//! SQLite compares them. Items are read as channels read them (`channels.rs`): the
//! candidates with the whole filter in the query, then the bodies the pass's
//! [`ItemCache`] lacks, and `filter.matches` on each parsed item.

use super::channels::{visible_matching, Query};
use super::PgStore;
use crate::model::ChannelFilter;
use crate::store::archive::{ArchivePage, Cursor, StoredPages};
use crate::store::backend::ArchiveStore;
use crate::store::{ItemCache, StoreError, StoredItem};

const PAGE_COLUMNS: &str = "page, end_first_seen, end_id, sealed";

fn page_of(r: &tokio_postgres::Row) -> ArchivePage {
    ArchivePage {
        page: u32::try_from(r.get::<_, i64>(0)).unwrap_or(u32::MAX),
        end: Cursor(r.get(1), r.get(2)),
        sealed: r.get(3),
    }
}

impl PgStore {
    /// The candidates of `filter` after `after` and up to and including `upto`, in
    /// first-seen order: `(id, published_id, cursor)`.
    fn archive_candidates(
        &self,
        filter: &ChannelFilter,
        after: Option<&Cursor>,
        upto: Option<&Cursor>,
    ) -> Result<Vec<(String, String, Cursor)>, StoreError> {
        let mut q = Query::default();
        let mut w = visible_matching(filter, &mut q);
        if let Some(Cursor(at, id)) = after {
            let (a, i) = (q.bind(Box::new(*at)), q.bind(Box::new(id.clone())));
            w.push_str(&format!(
                " AND (i.first_seen, i.id COLLATE \"C\") > ({a}, {i}::text)"
            ));
        }
        if let Some(Cursor(at, id)) = upto {
            let (a, i) = (q.bind(Box::new(*at)), q.bind(Box::new(id.clone())));
            w.push_str(&format!(
                " AND (i.first_seen, i.id COLLATE \"C\") <= ({a}, {i}::text)"
            ));
        }
        q.sql = format!(
            "SELECT i.id, i.published_id, i.first_seen FROM items i WHERE {w}
             ORDER BY i.first_seen, i.id COLLATE \"C\""
        );
        Ok(q.rows(self)?
            .iter()
            .map(|r| {
                let id: String = r.get(0);
                (id.clone(), r.get(1), Cursor(r.get(2), id))
            })
            .collect())
    }
}

impl ArchiveStore for PgStore {
    /// The archive table and its indexes are part of schema 1: nothing to create.
    fn ensure_archive_schema(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn archive_pages(&self, channel: &str) -> Result<Vec<ArchivePage>, StoreError> {
        let channel = channel.to_owned();
        self.with_conn(|c| async move {
            let rows = c
                .query(
                    &format!(
                        "SELECT {PAGE_COLUMNS} FROM archive_pages WHERE channel = $1 ORDER BY page"
                    ),
                    &[&channel],
                )
                .await?;
            Ok(rows.iter().map(page_of).collect())
        })
    }

    /// `Store::archive_summary`: the newest page and the unsealed ones, two index
    /// lookups whatever the archive's length.
    fn archive_summary(&self, channel: &str) -> Result<StoredPages, StoreError> {
        let channel = channel.to_owned();
        self.with_conn(|c| async move {
            let last = c
                .query_opt(
                    &format!(
                        "SELECT {PAGE_COLUMNS} FROM archive_pages WHERE channel = $1
                         ORDER BY page DESC LIMIT 1"
                    ),
                    &[&channel],
                )
                .await?
                .as_ref()
                .map(page_of);
            let unsealed = c
                .query(
                    &format!(
                        "SELECT {PAGE_COLUMNS} FROM archive_pages
                         WHERE channel = $1 AND NOT sealed ORDER BY page"
                    ),
                    &[&channel],
                )
                .await?
                .iter()
                .map(page_of)
                .collect();
            Ok(StoredPages {
                count: last.as_ref().map_or(0, |p| p.page),
                last,
                unsealed,
            })
        })
    }

    fn archive_page_end(&self, channel: &str, page: u32) -> Result<Option<Cursor>, StoreError> {
        let channel = channel.to_owned();
        self.with_conn(move |c| async move {
            let row = c
                .query_opt(
                    "SELECT end_first_seen, end_id FROM archive_pages
                     WHERE channel = $1 AND page = $2",
                    &[&channel, &i64::from(page)],
                )
                .await?;
            Ok(row.map(|r| Cursor(r.get(0), r.get(1))))
        })
    }

    fn add_archive_page(&self, channel: &str, page: u32, end: &Cursor) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO archive_pages (channel, page, end_first_seen, end_id)
             VALUES ($1, $2, $3, $4)",
            vec![
                Box::new(channel.to_owned()),
                Box::new(i64::from(page)),
                Box::new(end.0),
                Box::new(end.1.clone()),
            ],
        )
    }

    fn seal_archive_page(&self, channel: &str, page: u32) -> Result<(), StoreError> {
        self.execute(
            "UPDATE archive_pages SET sealed = true WHERE channel = $1 AND page = $2",
            vec![Box::new(channel.to_owned()), Box::new(i64::from(page))],
        )
    }

    /// `Store::archive_items_cached`: the items and their copies through `cache`.
    fn archive_items_cached(
        &self,
        filter: &ChannelFilter,
        after: Option<&Cursor>,
        upto: Option<&Cursor>,
        cache: &mut ItemCache,
    ) -> Result<Vec<(StoredItem, Cursor)>, StoreError> {
        let rows = self.archive_candidates(filter, after, upto)?;
        let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let resolved = self.resolve(&ids, cache, true)?;
        let mut out = Vec::with_capacity(rows.len());
        for ((_, published_id, cursor), found) in rows.into_iter().zip(resolved) {
            let Some((item, also_at)) = found else {
                continue;
            };
            if filter.matches(&item) {
                let s = StoredItem {
                    item,
                    published_id,
                    also_at,
                };
                out.push((s, cursor));
            }
        }
        Ok(out)
    }

    /// `Store::archive_cursors`: the positions alone when the channel filters on one
    /// dimension (the query is then the filter); with more, each item is parsed and
    /// checked by `filter.matches`, as SQLite does.
    fn archive_cursors(
        &self,
        filter: &ChannelFilter,
        after: Option<&Cursor>,
    ) -> Result<Vec<Cursor>, StoreError> {
        let dims = filter.dimensions();
        let rows = self.archive_candidates(filter, after, None)?;
        if dims <= 1 {
            return Ok(rows.into_iter().map(|(_, _, cursor)| cursor).collect());
        }
        let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let resolved = self.resolve(&ids, &mut ItemCache::new(0), false)?;
        Ok(rows
            .into_iter()
            .zip(resolved)
            .filter(|(_, found)| found.as_ref().is_some_and(|(i, _)| filter.matches(i)))
            .map(|((_, _, cursor), _)| cursor)
            .collect())
    }
}
