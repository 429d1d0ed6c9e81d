//! What channels read on PostgreSQL: visible items (representatives, not withdrawn) by
//! channel filter, newest first with ties by ID byte-wise, with the other copies of
//! each story; the tag and language counts of visible items; the representatives to
//! mark as shown; what changed since the last publish. The [`ChannelStore`] area, with
//! the behaviour of `store/visible.rs`, `store/publish_index.rs` and the dirty marks of
//! `store/outputs.rs`.
//!
//! The counts, the unshown representatives and the dirty marks are kept by triggers
//! (the "channels" section of `schema_1.sql`, a port of SQLite's), so they follow
//! every code path that changes an item, as in SQLite.
//!
//! A channel costs two round trips, not one per item: its candidates (IDs and
//! positions only, the whole filter in the query, at most `limit`), then the bodies
//! of the ones the pass's [`ItemCache`] does not hold with the copies of those whose
//! copies it does not know. SQLite starts from one dimension and checks the others on
//! the parsed item; here the query checks all of them on the item's columns (written
//! from the same item in the same statement), and `filter.matches` still checks each
//! parsed item: should it refuse one, the next candidates are read, so the answer is
//! SQLite's either way. The archive reads its items through the same two steps
//! (`archive.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Param, PgStore};
use crate::model::{AlsoAt, ChannelFilter, Item, SourceId};
use crate::store::backend::ChannelStore;
use crate::store::visible::also_at_of;
use crate::store::{parse_item, ts, Dirty, ItemCache, StoreError, StoredItem};

/// A statement being built with its owned parameters, numbered as they are bound.
#[derive(Default)]
pub(super) struct Query {
    pub(super) sql: String,
    pub(super) params: Vec<Param>,
}

impl Query {
    /// Adds `p` and returns its placeholder (`$n`).
    pub(super) fn bind(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }

    /// Runs the statement on the store's connection (the open group's, else a pooled
    /// one) and returns its rows.
    pub(super) fn rows(self, store: &PgStore) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        store.with_conn(move |c| async move {
            let stmt = c.prepare_cached(&self.sql).await?;
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = self
                .params
                .iter()
                .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            Ok(c.query(&stmt, &refs).await?)
        })
    }
}

/// The condition "a visible item of `items i` matching `filter`", binding the filter's
/// values to `q`. Only the filter's dimensions appear, so each shape of filter is one
/// statement the server plans for it (tags from `item_tags`, the rest from the item).
pub(super) fn visible_matching(filter: &ChannelFilter, q: &mut Query) -> String {
    let mut w = String::from("i.dup_of IS NULL AND NOT i.withdrawn");
    if !filter.tags.is_empty() {
        let tags = q.bind(Box::new(filter.tags.clone()));
        w.push_str(&format!(
            " AND i.id IN (SELECT t.item_id FROM item_tags t WHERE t.tag = ANY({tags}))"
        ));
    }
    if !filter.sources.is_empty() {
        let sources: Vec<String> = filter.sources.iter().map(SourceId::to_string).collect();
        let sources = q.bind(Box::new(sources));
        w.push_str(&format!(" AND i.source_id = ANY({sources})"));
    }
    if !filter.languages.is_empty() {
        // `ChannelFilter::matches`' rule: the code itself or one of its subtags.
        let langs = q.bind(Box::new(filter.languages.clone()));
        w.push_str(&format!(
            " AND i.language IS NOT NULL AND EXISTS (
                 SELECT 1 FROM unnest({langs}::text[]) AS l(code)
                 WHERE i.language = l.code OR starts_with(i.language, l.code || '-'))"
        ));
    }
    w
}

/// One candidate's item with its other copies, as [`PgStore::resolve`] finds them.
pub(super) type Resolved = (Arc<Item>, Vec<AlsoAt>);

impl PgStore {
    /// The items `ids` (taken from `cache`, else read and parsed and left in it) and,
    /// when `copies`, each one's other copies (from `cache` once known, else read),
    /// in one round trip for everything the cache lacks. `None` for an ID no longer
    /// held.
    pub(super) fn resolve(
        &self,
        ids: &[String],
        cache: &mut ItemCache,
        copies: bool,
    ) -> Result<Vec<Option<Resolved>>, StoreError> {
        // What the cache holds is taken now: inserting the parsed ones below may evict it.
        let mut have: HashMap<&str, Arc<Item>> = HashMap::new();
        let mut known: HashMap<&str, Vec<AlsoAt>> = HashMap::new();
        let (mut need_data, mut need_copies) = (Vec::new(), Vec::new());
        for id in ids {
            match cache.get(id) {
                Some(item) => {
                    have.insert(id, item);
                }
                None => need_data.push(id.clone()),
            }
            if copies {
                match cache.also_at(id) {
                    Some(a) => {
                        known.insert(id, a.to_vec());
                    }
                    None => need_copies.push(id.clone()),
                }
            }
        }
        let (bodies, copy_rows) = self.with_conn(move |c| async move {
            let bodies = if need_data.is_empty() {
                Vec::new()
            } else {
                let stmt = c
                    .prepare_cached("SELECT id, data FROM items WHERE id = ANY($1)")
                    .await?;
                c.query(&stmt, &[&need_data]).await?
            };
            let copies = if need_copies.is_empty() {
                Vec::new()
            } else {
                // A copy from the representative's own source (a post listed twice) is
                // a mistake to hide, not another place the story appeared.
                let stmt = c
                    .prepare_cached(
                        "SELECT d.dup_of, d.id, d.data FROM items d
                         WHERE d.dup_of = ANY($1) AND NOT d.withdrawn
                           AND d.source_id <> (SELECT r.source_id FROM items r WHERE r.id = d.dup_of)
                         ORDER BY d.dup_of COLLATE \"C\", d.first_seen, d.id COLLATE \"C\"",
                    )
                    .await?;
                c.query(&stmt, &[&need_copies]).await?
            };
            Ok((bodies, copies))
        })?;
        let mut data: HashMap<String, String> =
            bodies.iter().map(|r| (r.get(0), r.get(1))).collect();
        let mut found: HashMap<String, Vec<AlsoAt>> = HashMap::new();
        for r in &copy_rows {
            let id: String = r.get(1);
            let body: String = r.get(2);
            found
                .entry(r.get(0))
                .or_default()
                .push(also_at_of(parse_item(&id, &body)?));
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let item = match have.get(id.as_str()) {
                Some(item) => item.clone(),
                None => match data.remove(id) {
                    Some(body) => cache.insert(id.clone(), Arc::new(parse_item(id, &body)?)),
                    None => {
                        out.push(None);
                        continue;
                    }
                },
            };
            let also_at = if !copies {
                Vec::new()
            } else if let Some(k) = known.get(id.as_str()) {
                k.clone()
            } else {
                let f = found.remove(id).unwrap_or_default();
                cache.set_also_at(id, &f);
                f
            };
            out.push(Some((item, also_at)));
        }
        Ok(out)
    }

    /// At most `limit` candidates of `filter` newest first after `after` (a position
    /// `(published, id)` of the previous batch): `(id, published_id, published)`.
    fn visible_candidates(
        &self,
        filter: &ChannelFilter,
        limit: usize,
        after: Option<(i64, String)>,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let mut q = Query::default();
        let mut w = visible_matching(filter, &mut q);
        if let Some((published, id)) = after {
            let (p, i) = (q.bind(Box::new(published)), q.bind(Box::new(id)));
            w.push_str(&format!(
                " AND (i.published < {p} OR (i.published = {p} AND i.id COLLATE \"C\" > {i}))"
            ));
        }
        let limit = q.bind(Box::new(i64::try_from(limit).unwrap_or(i64::MAX)));
        q.sql = format!(
            "SELECT i.id, i.published_id, i.published FROM items i WHERE {w}
             ORDER BY i.published DESC, i.id COLLATE \"C\" LIMIT {limit}"
        );
        Ok(q.rows(self)?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }
}

impl ChannelStore for PgStore {
    /// `Store::visible_items`: the newest visible items, ties by ID.
    fn visible_items(&self, limit: usize) -> Result<Vec<StoredItem>, StoreError> {
        self.visible_items_cached(&ChannelFilter::default(), limit, &mut ItemCache::new(0))
    }

    fn visible_items_where(
        &self,
        filter: &ChannelFilter,
        limit: usize,
    ) -> Result<Vec<StoredItem>, StoreError> {
        self.visible_items_cached(filter, limit, &mut ItemCache::new(0))
    }

    /// `Store::visible_items_cached` (see the module doc for the two round trips).
    fn visible_items_cached(
        &self,
        filter: &ChannelFilter,
        limit: usize,
        cache: &mut ItemCache,
    ) -> Result<Vec<StoredItem>, StoreError> {
        let mut out = Vec::new();
        let mut after = None;
        while out.len() < limit {
            let want = limit - out.len();
            let rows = self.visible_candidates(filter, want, after)?;
            let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
            let resolved = self.resolve(&ids, cache, true)?;
            for ((_, published_id, _), found) in rows.iter().zip(resolved) {
                let Some((item, also_at)) = found else {
                    continue;
                };
                if filter.matches(&item) {
                    out.push(StoredItem {
                        item,
                        published_id: published_id.clone(),
                        also_at,
                    });
                }
            }
            if rows.len() < want {
                break;
            }
            after = rows
                .last()
                .map(|(id, _, published)| (*published, id.clone()));
        }
        Ok(out)
    }

    /// `Store::visible_tag_counts`: from the count the triggers keep, in tag order.
    fn visible_tag_counts(&self) -> Result<Vec<(String, usize)>, StoreError> {
        self.with_conn(|c| async move {
            let rows = c
                .query(
                    "SELECT tag, items FROM visible_tag_counts WHERE items > 0
                     ORDER BY tag COLLATE \"C\"",
                    &[],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| {
                    let n: i64 = r.get(1);
                    (r.get(0), usize::try_from(n).unwrap_or(0))
                })
                .collect())
        })
    }

    /// `Store::visible_languages`: primary languages in the order of their full codes.
    fn visible_languages(&self) -> Result<Vec<String>, StoreError> {
        let codes: Vec<String> = self.with_conn(|c| async move {
            let rows = c
                .query(
                    "SELECT language FROM visible_language_counts WHERE items > 0
                     ORDER BY language COLLATE \"C\"",
                    &[],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })?;
        let mut langs: Vec<String> = Vec::new();
        for l in codes {
            let primary = l.split('-').next().unwrap_or(&l).to_owned();
            if !langs.contains(&primary) {
                langs.push(primary);
            }
        }
        Ok(langs)
    }

    /// `Store::mark_representatives_shown`: reads only the items that became visible
    /// since the last call; returns how many were newly marked.
    fn mark_representatives_shown(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let at = ts(now);
        self.with_write(move |c| async move {
            let n = c
                .execute(
                    "INSERT INTO dedupe_shown (item_id, first_shown)
                     SELECT u.item_id, $1 FROM unshown_representatives u
                     JOIN items i ON i.id = u.item_id
                     WHERE i.dup_of IS NULL AND NOT i.withdrawn
                     ON CONFLICT DO NOTHING",
                    &[&at],
                )
                .await?;
            c.execute("DELETE FROM unshown_representatives", &[])
                .await?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    fn publish_dirty(&self) -> Result<Dirty, StoreError> {
        self.with_conn(|c| async move {
            let mut d = Dirty::default();
            for r in c.query("SELECT kind, key FROM publish_dirty", &[]).await? {
                let kind: String = r.get(0);
                let key: String = r.get(1);
                match kind.as_str() {
                    "source" => d.sources.insert(key),
                    "tag" => d.tags.insert(key),
                    _ => d.languages.insert(key),
                };
            }
            Ok(d)
        })
    }

    fn clear_publish_dirty(&self) -> Result<(), StoreError> {
        self.execute("DELETE FROM publish_dirty", Vec::new())
    }
}
