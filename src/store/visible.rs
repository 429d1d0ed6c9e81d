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
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, data, published_id FROM items
             WHERE dup_of IS NULL AND withdrawn = 0
             ORDER BY published DESC, id ASC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, data, published_id) = row?;
            out.push(StoredItem {
                item: Arc::new(parse_item(&id, &data)?),
                published_id,
                also_at: Vec::new(),
            });
        }
        drop(stmt);
        self.fill_also_at(&mut out)?;
        Ok(out)
    }

    /// Sets each item's other copies ("also published by"), read for all of them in one
    /// query rather than one per item.
    pub(super) fn fill_also_at(&self, items: &mut [StoredItem]) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = items.iter().map(|s| s.item.id.0.as_str()).collect();
        let mut stmt = self.conn.prepare_cached(
            // A copy from the representative's own source (a post listed twice) is a
            // mistake to hide, not another place the story appeared.
            "SELECT d.dup_of, d.id, d.data FROM items d
             WHERE d.dup_of IN (SELECT value FROM json_each(?1)) AND d.withdrawn = 0
               AND d.source_id != (SELECT r.source_id FROM items r WHERE r.id = d.dup_of)
             ORDER BY d.dup_of, d.first_seen, d.id",
        )?;
        let json = serde_json::to_string(&ids).expect("strings serialise");
        let mut rows = stmt.query([json])?;
        let mut copies: HashMap<String, Vec<AlsoAt>> = HashMap::new();
        while let Some(r) = rows.next()? {
            let rep: String = r.get(0)?;
            let id: String = r.get(1)?;
            let data: String = r.get(2)?;
            let item = parse_item(&id, &data)?;
            copies.entry(rep).or_default().push(AlsoAt {
                source_title: item.source.to_string(),
                source: item.source,
                title: item.title,
                url: item.url,
            });
        }
        for s in items {
            if let Some(c) = copies.remove(s.item.id.0.as_str()) {
                s.also_at = c;
            }
        }
        Ok(())
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
            return self.visible_items(limit);
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
        self.fill_also_at(&mut out)?;
        Ok(out)
    }
}

/// Items parsed during one publishing pass, by ID, so that an item in many channels
/// (its source's, each of its tags', its language's) is read from the store and parsed
/// from its JSON once, not once per channel: in a publish of a medium build (1 939
/// documents) the channel reads went from 1.34 G to 0.88 G instructions (callgrind).
/// Bounded: at most `capacity` items are held, the oldest going first, so memory does
/// not grow with the store.
pub struct ItemCache {
    items: HashMap<String, Arc<Item>>,
    order: VecDeque<String>,
    capacity: usize,
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

    fn get(&self, id: &str) -> Option<Arc<Item>> {
        self.items.get(id).cloned()
    }

    fn insert(&mut self, id: String, item: Arc<Item>) -> Arc<Item> {
        if self.capacity == 0 {
            return item;
        }
        if self.order.len() >= self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.items.remove(&old);
            }
        }
        self.order.push_back(id.clone());
        self.items.insert(id, item.clone());
        item
    }
}
