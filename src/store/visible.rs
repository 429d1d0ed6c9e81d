//! What channels read: visible items (representatives, not withdrawn), newest first
//! and in a deterministic order, by channel filter, with the other copies of each
//! story. Which tags and languages get channels of their own is `publish_index`'s.

use super::{parse_item, Store, StoreError};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::model::{AlsoAt, ChannelFilter, Item, SourceId};

/// A visible item with what the renderers need besides the item itself.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredItem {
    /// Shared: one item is in many channels of a pass (its source's, its tags', its
    /// language's, the combined one), and is parsed once for all of them
    /// ([`ItemCache`]).
    pub item: Arc<Item>,
    /// The ID readers saw first (Atom `id`, RSS `guid`); never changes.
    pub published_id: String,
    /// Other copies of the same story.
    pub also_at: Vec<AlsoAt>,
}

impl Store {
    /// Visible items (representatives, not withdrawn), newest first, ties by ID so the
    /// order — and so the output bytes — are deterministic.
    pub fn visible_items(&self, limit: usize) -> Result<Vec<StoredItem>, StoreError> {
        self.newest_visible(limit, &mut ItemCache::new(0))
    }

    /// [`Store::visible_items`] through `cache` (see [`Store::visible_items_cached`]).
    fn newest_visible(
        &self,
        limit: usize,
        cache: &mut ItemCache,
    ) -> Result<Vec<StoredItem>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, data, published_id FROM items
             WHERE dup_of IS NULL AND withdrawn = 0
             ORDER BY published DESC, id ASC LIMIT ?1",
        )?;
        let mut rows = stmt.query([limit as i64])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let item = match cache.get(&id) {
                Some(item) => item,
                None => {
                    let data: String = r.get(1)?;
                    let item = Arc::new(parse_item(&id, &data)?);
                    cache.insert(id, item)
                }
            };
            out.push(StoredItem {
                item,
                published_id: r.get(2)?,
                also_at: Vec::new(),
            });
        }
        drop(rows);
        drop(stmt);
        self.fill_also_at(&mut out, cache)?;
        Ok(out)
    }

    /// Sets each item's other copies ("also published by"), read in one query for the
    /// items whose copies `cache` does not know yet (rather than one per item); the
    /// copies read now are kept in it for the item's other channels. Reading a copy
    /// means parsing its whole row, and in a medium build every channel of a story's
    /// representative read its copies again (0.47 G instructions for 6 101 parses of
    /// 1 949 copies).
    pub(super) fn fill_also_at(
        &self,
        items: &mut [StoredItem],
        cache: &mut ItemCache,
    ) -> Result<(), StoreError> {
        let mut unknown = Vec::new();
        for (i, s) in items.iter_mut().enumerate() {
            match cache.also_at(&s.item.id.0) {
                Some(known) => s.also_at = known.to_vec(),
                None => unknown.push(i),
            }
        }
        if unknown.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = unknown
            .iter()
            .map(|&i| items[i].item.id.0.as_str())
            .collect();
        let mut copies = self.copies_of(&ids)?;
        for i in unknown {
            let s = &mut items[i];
            let found = copies.remove(s.item.id.0.as_str()).unwrap_or_default();
            cache.set_also_at(&s.item.id.0, &found);
            s.also_at = found;
        }
        Ok(())
    }

    /// The other copies of each of the representatives `ids`, by representative.
    fn copies_of(&self, ids: &[&str]) -> Result<HashMap<String, Vec<AlsoAt>>, StoreError> {
        let mut copies: HashMap<String, Vec<AlsoAt>> = HashMap::new();
        if ids.is_empty() {
            return Ok(copies);
        }
        let mut stmt = self.conn.prepare_cached(
            // A copy from the representative's own source (a post listed twice) is a
            // mistake to hide, not another place the story appeared.
            "SELECT d.dup_of, d.id, d.data FROM items d
             WHERE d.dup_of IN (SELECT value FROM json_each(?1)) AND d.withdrawn = 0
               AND d.source_id != (SELECT r.source_id FROM items r WHERE r.id = d.dup_of)
             ORDER BY d.dup_of, d.first_seen, d.id",
        )?;
        let json = serde_json::to_string(ids).expect("strings serialise");
        let mut rows = stmt.query([json])?;
        while let Some(r) = rows.next()? {
            let rep: String = r.get(0)?;
            let id: String = r.get(1)?;
            let data: String = r.get(2)?;
            copies
                .entry(rep)
                .or_default()
                .push(also_at_of(parse_item(&id, &data)?));
        }
        Ok(copies)
    }

    /// Visible items matching `filter`, newest first, at most `limit`. The query starts
    /// from the most selective indexed filter (tags, then sources, then languages), so a
    /// channel reads its own candidates, not every stored item, and orders them by
    /// their positions alone: an item's row (its JSON) is read only when it is next in
    /// line, so a tag held by thousands of items costs a sort of thousands of small
    /// rows, not of their bodies. Memory stays bounded by `limit`; `filter.matches`
    /// applies the full rule to each candidate.
    pub fn visible_items_where(
        &self,
        filter: &ChannelFilter,
        limit: usize,
    ) -> Result<Vec<StoredItem>, StoreError> {
        self.visible_items_cached(filter, limit, &mut ItemCache::new(0))
    }

    /// [`Store::visible_items_where`], taking the items already parsed from `cache`
    /// and leaving the ones parsed now in it: a publishing pass reads the same items
    /// for many channels.
    pub fn visible_items_cached(
        &self,
        filter: &ChannelFilter,
        limit: usize,
        cache: &mut ItemCache,
    ) -> Result<Vec<StoredItem>, StoreError> {
        if filter.tags.is_empty() && filter.languages.is_empty() && filter.sources.is_empty() {
            return self.newest_visible(limit, cache);
        }
        let json = |v: Vec<&str>| serde_json::to_string(&v).expect("strings serialise");
        let (sql, param) = if !filter.tags.is_empty() {
            (
                // CROSS JOIN keeps item_tags as the outer loop: only the tag's items are read.
                "SELECT DISTINCT i.id, i.published_id, i.published
                 FROM item_tags t CROSS JOIN items i ON i.id = t.item_id
                 WHERE t.tag IN (SELECT value FROM json_each(?1))
                   AND i.dup_of IS NULL AND i.withdrawn = 0
                 ORDER BY i.published DESC, i.id ASC",
                json(filter.tags.iter().map(String::as_str).collect()),
            )
        } else if !filter.sources.is_empty() {
            (
                "SELECT id, published_id, published FROM items
                 WHERE source_id IN (SELECT value FROM json_each(?1))
                   AND dup_of IS NULL AND withdrawn = 0
                 ORDER BY published DESC, id ASC",
                json(filter.sources.iter().map(SourceId::as_str).collect()),
            )
        } else {
            (
                "SELECT id, published_id, published FROM items
                 WHERE dup_of IS NULL AND withdrawn = 0 AND language IS NOT NULL
                   AND EXISTS (SELECT 1 FROM json_each(?1) AS l
                               WHERE items.language = l.value OR items.language LIKE l.value || '-%')
                 ORDER BY published DESC, id ASC",
                json(filter.languages.iter().map(String::as_str).collect()),
            )
        };
        let mut out = Vec::new();
        {
            let mut stmt = self.conn.prepare_cached(sql)?;
            let mut data = self
                .conn
                .prepare_cached("SELECT data FROM items WHERE id = ?1")?;
            let mut rows = stmt.query([param])?;
            while let Some(r) = rows.next()? {
                if out.len() >= limit {
                    break;
                }
                let id: String = r.get(0)?;
                let item = match cache.get(&id) {
                    Some(item) => item,
                    None => {
                        let json: String = data.query_row([&id], |d| d.get(0))?;
                        let item = Arc::new(parse_item(&id, &json)?);
                        cache.insert(id, item)
                    }
                };
                if filter.matches(&item) {
                    out.push(StoredItem {
                        item,
                        published_id: r.get(1)?,
                        also_at: Vec::new(),
                    });
                }
            }
        }
        self.fill_also_at(&mut out, cache)?;
        Ok(out)
    }
}

/// How a copy of a story is listed under its representative ("also published by").
pub(super) fn also_at_of(copy: Item) -> AlsoAt {
    AlsoAt {
        source_title: copy.source.to_string(),
        source: copy.source,
        title: copy.title,
        url: copy.url,
    }
}

/// Items parsed during one publishing pass, by ID, with their other copies once read,
/// so that an item in many channels (its source's, each of its tags', its language's,
/// its archive page) is read from the store and parsed from its JSON once, not once per
/// channel: in a publish of a medium build (1 939 documents) the channel reads went
/// from 1.34 G to 0.88 G instructions (callgrind). Bounded: at most `capacity` items
/// are held, the oldest going first, so memory does not grow with the store. One pass
/// reads one state of the store (publishing changes no item), so what is held stays
/// true for the pass; a cache is never kept from one pass to the next.
pub struct ItemCache {
    items: HashMap<String, Held>,
    order: VecDeque<String>,
    capacity: usize,
}

struct Held {
    item: Arc<Item>,
    /// The item's other copies, once a channel read them.
    also_at: Option<Vec<AlsoAt>>,
}

impl ItemCache {
    /// A cache holding at most `capacity` items (0: none, every item is parsed).
    pub fn new(capacity: usize) -> Self {
        ItemCache {
            items: HashMap::with_capacity(capacity.min(4096)),
            order: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
        }
    }

    pub(super) fn get(&self, id: &str) -> Option<Arc<Item>> {
        self.items.get(id).map(|h| h.item.clone())
    }

    pub(super) fn insert(&mut self, id: String, item: Arc<Item>) -> Arc<Item> {
        if self.capacity == 0 {
            return item;
        }
        if self.order.len() >= self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.items.remove(&old);
            }
        }
        self.order.push_back(id.clone());
        self.items.insert(
            id,
            Held {
                item: item.clone(),
                also_at: None,
            },
        );
        item
    }

    /// The other copies of a held item, once a channel read them.
    pub(super) fn also_at(&self, id: &str) -> Option<&[AlsoAt]> {
        self.items.get(id)?.also_at.as_deref()
    }

    /// Notes the copies of an item the cache holds (of any other: nothing).
    pub(super) fn set_also_at(&mut self, id: &str, also_at: &[AlsoAt]) {
        if let Some(h) = self.items.get_mut(id) {
            h.also_at = Some(also_at.to_vec());
        }
    }
}
