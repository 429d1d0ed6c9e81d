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

use super::dedup::{IndexRows, PgLookup};
use super::pipeline::Pipeline;
use super::PgStore;
use crate::dedupe::Decision;
use crate::model::{DateSource, Item, SourceId};
use crate::store::backend::{Decide, ItemStore};
use crate::store::items::same_in_current_form;
use crate::store::{from_ts, parse_item, ts, HeldItem, StoreError, UpsertReport};

/// `meta` key: the `[store] max_items` the last prune applied (as in SQLite).
const PRUNED_WITH_LIMIT: &str = "prune_max_items";

/// One queued write of an upsert, with everything it needs owned (it runs on the
/// store's runtime).
pub(super) enum Write {
    /// Known items listed again unchanged: one statement for a run of them.
    Seen { ids: Vec<String>, at: i64 },
    /// A known item stored again in this version's form, not a change.
    Restyled { id: String, at: i64, data: String },
    /// A known item that changed: its row, tags and deduplication rows are rewritten.
    Changed(Box<Row>),
    /// A new item, with what deduplication decided for it.
    Inserted(Box<Row>, Option<Supersede>),
    /// The source's current window was stored at `at`.
    Window { source: String, at: i64 },
}

/// A new representative displaces the held one, `rep`, and takes its copies.
pub(super) struct Supersede {
    rep: String,
    reason: String,
}

/// An item's row as an upsert writes it.
pub(super) struct Row {
    id: String,
    source: String,
    guid: Option<String>,
    canonical_url: Option<String>,
    text_hash: String,
    published: i64,
    now: i64,
    published_id: String,
    dup_of: Option<String>,
    dup_reason: Option<String>,
    data: String,
    language: Option<String>,
    title: String,
    text: String,
    tags: Vec<String>,
    index: IndexRows,
}

impl Row {
    fn of(item: &Item, data: String, now: i64) -> Row {
        Row {
            id: item.id.0.clone(),
            source: item.source.to_string(),
            guid: item.guid.clone(),
            canonical_url: item.canonical_url.clone(),
            text_hash: item.fingerprint.text_hash.clone(),
            published: ts(item.published),
            now,
            published_id: String::new(),
            dup_of: None,
            dup_reason: None,
            data,
            language: item.language.clone(),
            title: item.title.clone(),
            text: item.text.clone(),
            tags: item.tags.clone(),
            index: IndexRows::of(item),
        }
    }
}

/// Adds `w` to the queue, folding a run of unchanged items into one write.
fn queue(q: &RefCell<Vec<Write>>, w: Write) {
    let mut q = q.borrow_mut();
    if let (
        Some(Write::Seen { ids, at }),
        Write::Seen {
            ids: more,
            at: when,
        },
    ) = (q.last_mut(), &w)
    {
        if at == when {
            ids.extend(more.iter().cloned());
            return;
        }
    }
    q.push(w);
}

/// Runs queued writes in order, on the connection (and transaction) of the call, as
/// one pipeline of statements.
pub(super) async fn flush(c: &ClientWrapper, writes: Vec<Write>) -> Result<(), StoreError> {
    if writes.is_empty() {
        return Ok(());
    }
    let mut p = Pipeline::default();
    for w in writes {
        match w {
            Write::Seen { ids, at } => {
                p.push(
                    c,
                    "UPDATE items SET last_seen = $2, withdrawn = false WHERE id = ANY($1)",
                    vec![Box::new(ids), Box::new(at)],
                )
                .await?;
            }
            Write::Restyled { id, at, data } => {
                p.push(
                    c,
                    "UPDATE items SET data = $3, last_seen = $2, withdrawn = false WHERE id = $1",
                    vec![Box::new(id), Box::new(at), Box::new(data)],
                )
                .await?;
            }
            Write::Changed(row) => {
                let Row {
                    id,
                    guid,
                    canonical_url,
                    text_hash,
                    published,
                    now,
                    data,
                    language,
                    title,
                    text,
                    tags,
                    index,
                    ..
                } = *row;
                p.push(
                    c,
                    "UPDATE items SET data = $2, guid = $3, canonical_url = $4, text_hash = $5,
                         published = $6, last_seen = $7, withdrawn = false, language = $8,
                         title = $9, text = $10
                     WHERE id = $1",
                    vec![
                        Box::new(id.clone()),
                        Box::new(data),
                        Box::new(guid),
                        Box::new(canonical_url),
                        Box::new(text_hash),
                        Box::new(published),
                        Box::new(now),
                        Box::new(language),
                        Box::new(title),
                        Box::new(text),
                    ],
                )
                .await?;
                index_tags(c, &mut p, &id, tags, false).await?;
                index.write(c, &mut p, false).await?;
            }
            Write::Inserted(row, supersede) => push_insert(c, &mut p, *row, supersede).await?,
            Write::Window { source, at } => {
                p.push(
                    c,
                    "INSERT INTO sources (id, window_at) VALUES ($1, $2)
                     ON CONFLICT (id) DO UPDATE SET window_at = EXCLUDED.window_at",
                    vec![Box::new(source), Box::new(at)],
                )
                .await?;
            }
        }
    }
    p.run(c).await
}

/// Adds the statements storing a new item (and, if it supersedes a representative,
/// handing it that cluster) to `p`.
async fn push_insert(
    c: &ClientWrapper,
    p: &mut Pipeline,
    row: Row,
    supersede: Option<Supersede>,
) -> Result<(), StoreError> {
    let Row {
        id,
        source,
        guid,
        canonical_url,
        text_hash,
        published,
        now,
        published_id,
        dup_of,
        dup_reason,
        data,
        language,
        title,
        text,
        tags,
        index,
    } = row;
    p.push(
        c,
        "INSERT INTO items (id, source_id, guid, canonical_url, text_hash, published,
             first_seen, last_seen, published_id, dup_of, dup_reason, data,
             language, title, text)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11, $12, $13, $14)",
        vec![
            Box::new(id.clone()),
            Box::new(source),
            Box::new(guid),
            Box::new(canonical_url),
            Box::new(text_hash),
            Box::new(published),
            Box::new(now),
            Box::new(published_id),
            Box::new(dup_of),
            Box::new(dup_reason),
            Box::new(data),
            Box::new(language),
            Box::new(title),
            Box::new(text),
        ],
    )
    .await?;
    index_tags(c, p, &id, tags, true).await?;
    if let Some(Supersede { rep, reason }) = supersede {
        p.push(
            c,
            "UPDATE items SET dup_of = $2 WHERE dup_of = $1",
            vec![Box::new(rep.clone()), Box::new(id.clone())],
        )
        .await?;
        p.push(
            c,
            "UPDATE items SET dup_of = $2, dup_reason = $3 WHERE id = $1",
            vec![Box::new(rep), Box::new(id.clone()), Box::new(reason)],
        )
        .await?;
    }
    index.write(c, p, true).await?;
    Ok(())
}

/// Replaces the rows of an item's tags, in the item's order. `fresh`: just inserted.
async fn index_tags(
    c: &ClientWrapper,
    p: &mut Pipeline,
    id: &str,
    tags: Vec<String>,
    fresh: bool,
) -> Result<(), StoreError> {
    if !fresh {
        p.push(
            c,
            "DELETE FROM item_tags WHERE item_id = $1",
            vec![Box::new(id.to_owned())],
        )
        .await?;
    }
    if tags.is_empty() {
        return Ok(());
    }
    p.push(
        c,
        "INSERT INTO item_tags (item_id, tag)
         SELECT $1, t FROM unnest($2::text[]) WITH ORDINALITY AS u(t, o) ORDER BY o
         ON CONFLICT DO NOTHING",
        vec![Box::new(id.to_owned()), Box::new(tags)],
    )
    .await
}

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
