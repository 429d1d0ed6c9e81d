//! Storing a source's items on PostgreSQL: the upsert (known items keep their first
//! sighting and published ID, new ones are deduplicated by the caller's `decide` and
//! get one), retention (`prune`) and withdrawing the items of sources no longer
//! configured: the [`ItemStore`] area, with the behaviour of `store/items.rs`.
//!
//! The store's interface is synchronous and `decide` runs on the caller's thread, so
//! an upsert is a group (one transaction on one connection) of calls to the store's
//! runtime. To spare a call per item, its writes are queued as owned rows ([`Write`])
//! and run at the next call that needs them: before deduplication looks anything up
//! (it must find the items stored before, as in SQLite) and at the end. A refresh of
//! a source whose items are all known is two calls, whatever their number.
//!
//! Published IDs are minted by `crate::identity`, as for SQLite; the deduplication
//! rows and lookups are `dedup.rs`'; the channel-side derived tables follow the item
//! rows through their triggers (the channels area).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use deadpool_postgres::ClientWrapper;

use super::dedup::PgLookup;
use super::writes::{flush, queue, Row, Supersede, Write};
use super::PgStore;
use crate::dedupe::Decision;
use crate::model::{DateSource, Item, SourceId};
use crate::store::backend::{Decide, ItemStore};
use crate::store::items::same_in_current_form;
use crate::store::{from_ts, parse_item, ts, HeldItem, StoreError, UpsertReport};

/// `meta` key: the `[store] max_items` the last prune applied (as in SQLite).
const PRUNED_WITH_LIMIT: &str = "prune_max_items";

/// The row of an item already held, as an upsert compares it.
struct HeldRow {
    data: String,
    first_seen: i64,
    published: i64,
    dup_of: Option<String>,
    withdrawn: bool,
}

const HELD_ROWS: &str =
    "SELECT id, data, first_seen, published, dup_of, withdrawn FROM items WHERE id = ANY($1)";

async fn held_rows(
    c: &ClientWrapper,
    ids: Vec<String>,
) -> Result<HashMap<String, HeldRow>, StoreError> {
    let stmt = c.prepare_cached(HELD_ROWS).await?;
    let rows = c.query(&stmt, &[&ids]).await?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                HeldRow {
                    data: r.get(1),
                    first_seen: r.get(2),
                    published: r.get(3),
                    dup_of: r.get(4),
                    withdrawn: r.get(5),
                },
            )
        })
        .collect())
}

impl PgStore {
    /// The published ID minted for `item` at first sight (see [`crate::identity`]),
    /// exactly as the SQLite store mints it.
    pub fn published_id_for(&self, item: &Item) -> String {
        crate::identity::published_id(self.authority(), &item.source, &item.id)
    }

    fn authority(&self) -> &str {
        self.authority
            .as_deref()
            .expect("a PostgreSQL store that stores items is made with_authority")
    }

    /// The upsert, on the group's connection (see the module doc).
    fn upsert_in_group(
        &self,
        source: &SourceId,
        items: Vec<Item>,
        now: DateTime<Utc>,
        decide: &mut Decide<'_>,
    ) -> Result<UpsertReport, StoreError> {
        let ids: Vec<String> = items.iter().map(|i| i.id.0.clone()).collect();
        let mut held = self.with_conn(move |c| async move { held_rows(&c, ids).await })?;
        let writes = RefCell::new(Vec::new());
        let at = ts(now);
        let mut report = UpsertReport::default();
        // An ID listed twice finds its first copy stored, as in SQLite.
        let mut stored: HashSet<String> = HashSet::new();
        for mut item in items {
            let existing = if stored.contains(&item.id.0) {
                let pending = std::mem::take(&mut *writes.borrow_mut());
                let ids = vec![item.id.0.clone()];
                self.with_write(move |c| async move {
                    flush(&c, pending).await?;
                    held_rows(&c, ids).await
                })?
                .into_values()
                .next()
            } else {
                held.remove(&item.id.0)
            };
            stored.insert(item.id.0.clone());
            let Some(h) = existing else {
                // A new item: deduplicated by `decide`, stored with its published ID.
                // Whole seconds, as stored in the `first_seen` column: otherwise the
                // next refresh sees a different JSON and counts it as changed.
                item.first_seen = from_ts(at);
                if item.date_source == DateSource::FirstSeen {
                    item.published = from_ts(ts(item.published));
                }
                let decision = decide(&PgLookup::new(self, &writes, &item), &item)?;
                let json = serde_json::to_string(&item).expect("items serialise");
                let mut row = Row::of(&item, json, at);
                row.published_id = self.published_id_for(&item);
                row.source = source.to_string();
                let supersede = match decision {
                    Decision::Joins { rep, reason } => {
                        report.duplicates += 1;
                        row.dup_of = Some(rep.0);
                        row.dup_reason = Some(reason);
                        None
                    }
                    Decision::New => {
                        report.touched.push(item.id.clone());
                        None
                    }
                    Decision::Supersedes { rep, reason } => {
                        report.touched.push(item.id.clone());
                        Some(Supersede { rep: rep.0, reason })
                    }
                };
                report.new += 1;
                queue(&writes, Write::Inserted(Box::new(row), supersede));
                continue;
            };
            // A known item: keeps its first sighting (and, if undated, its first-seen
            // date); rewritten only when it changed.
            if h.withdrawn {
                report.restored += 1;
            }
            item.first_seen = from_ts(h.first_seen);
            if item.date_source == DateSource::FirstSeen {
                item.published = from_ts(h.published);
            }
            let json = serde_json::to_string(&item).expect("items serialise");
            if json == h.data {
                report.unchanged += 1;
                let ids = vec![item.id.0];
                queue(&writes, Write::Seen { ids, at });
            } else if same_in_current_form(&item.id.0, &h.data, &json) {
                report.unchanged += 1;
                let (id, data) = (item.id.0, json);
                queue(&writes, Write::Restyled { id, at, data });
            } else {
                report.changed += 1;
                if h.dup_of.is_none() {
                    report.touched.push(item.id.clone());
                }
                queue(&writes, Write::Changed(Box::new(Row::of(&item, json, at))));
            }
        }
        let source = source.to_string();
        queue(&writes, Write::Window { source, at });
        let pending = writes.into_inner();
        self.with_write(move |c| async move { flush(&c, pending).await })?;
        Ok(report)
    }
}

impl ItemStore for PgStore {
    fn latest_first_seen(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with_conn(|c| async move {
            let t: Option<i64> = c
                .query_one("SELECT max(first_seen) FROM items", &[])
                .await?
                .get(0);
            Ok(t.map(from_ts))
        })
    }

    /// `Store::upsert_source_items`: one source's current items in one transaction
    /// (the open group's, else a group of its own).
    fn upsert_source_items(
        &mut self,
        source: &SourceId,
        items: Vec<Item>,
        now: DateTime<Utc>,
        decide: &mut Decide<'_>,
    ) -> Result<UpsertReport, StoreError> {
        if self.group.is_some() {
            return self.upsert_in_group(source, items, now, decide);
        }
        self.group(|s| s.upsert_in_group(source, items, now, decide))
    }

    /// Every item held, for `dupes --jsonl`, in SQLite's order (byte order of IDs).
    fn all_items(&self) -> Result<Vec<HeldItem>, StoreError> {
        self.with_conn(|c| async move {
            let rows = c
                .query(
                    "SELECT id, data, dup_of, dup_reason FROM items
                     ORDER BY source_id COLLATE \"C\", first_seen, id COLLATE \"C\"",
                    &[],
                )
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let id: String = r.get(0);
                let data: String = r.get(1);
                out.push((parse_item(&id, &data)?, r.get(2), r.get(3)));
            }
            Ok(out)
        })
    }

    /// `Store::prune`: per source at most `max_items` (the newest), none older than
    /// `max_age` that has left its source's window. Every source over the limit is
    /// counted (from the `items_source` index): SQLite narrows that to the sources
    /// marked in `publish_dirty`, which only ever leaves out sources that cannot be
    /// over it.
    fn prune(
        &mut self,
        max_items: usize,
        max_age: Option<chrono::Duration>,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let limit = max_items.to_string();
        let max = i64::try_from(max_items).unwrap_or(i64::MAX);
        let oldest = max_age.map(|age| ts(now - age));
        self.with_write(move |c| async move {
            let recorded: Option<String> = c
                .query_opt("SELECT value FROM meta WHERE key = $1", &[&PRUNED_WITH_LIMIT])
                .await?
                .map(|r| r.get(0));
            let every_source = recorded.as_deref() != Some(limit.as_str());
            let mut n = c
                .execute(
                    "DELETE FROM items WHERE id IN (
                        SELECT id FROM (
                            SELECT id, row_number() OVER (
                                PARTITION BY source_id ORDER BY published DESC, id COLLATE \"C\") AS rn
                            FROM items
                            WHERE source_id IN (
                                SELECT source_id FROM items GROUP BY source_id HAVING count(*) > $1)
                        ) ranked
                        WHERE rn > $1)",
                    &[&max],
                )
                .await?;
            c.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&PRUNED_WITH_LIMIT, &limit],
            )
            .await?;
            // The age limit only removes items that have left their source's current
            // window: what a partner still lists is never pruned.
            if let Some(oldest) = oldest {
                n += c
                    .execute(
                        "DELETE FROM items WHERE published < $1
                         AND last_seen < coalesce(
                             (SELECT window_at FROM sources WHERE sources.id = items.source_id), 0)",
                        &[&oldest],
                    )
                    .await?;
            }
            // Duplicates whose representative is gone become visible again.
            if n > 0 || every_source {
                c.execute(
                    "UPDATE items SET dup_of = NULL, dup_reason = NULL
                     WHERE dup_of IS NOT NULL
                       AND NOT EXISTS (SELECT 1 FROM items r WHERE r.id = items.dup_of)",
                    &[],
                )
                .await?;
            }
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    /// `Store::withdraw_unconfigured`: withdraws the items of sources not in
    /// `configured` (the rows stay, so adding the source back restores them with their
    /// published IDs), and hands the stories they represented to their next copies.
    fn withdraw_unconfigured(&mut self, configured: &[SourceId]) -> Result<usize, StoreError> {
        let configured: Vec<String> = configured.iter().map(|s| s.to_string()).collect();
        self.with_write(move |c| async move {
            let n = c
                .execute(
                    "UPDATE items SET withdrawn = true
                     WHERE NOT withdrawn AND NOT (source_id = ANY($1))",
                    &[&configured],
                )
                .await?;
            if n > 0 {
                c.execute(
                    "UPDATE items SET dup_of = NULL, dup_reason = NULL
                     WHERE NOT withdrawn
                       AND dup_of IN (SELECT id FROM items WHERE withdrawn)",
                    &[],
                )
                .await?;
            }
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }
}
