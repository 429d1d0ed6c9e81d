//! What channels read: visible items (representatives, not withdrawn), newest first
//! and in a deterministic order, by channel filter, with the other copies of each
//! story; and the tags and languages that get channels of their own.

use super::{parse_item, Store, StoreError};
use crate::model::{AlsoAt, ChannelFilter, Item, ItemId, SourceId};

/// A visible item with what the renderers need besides the item itself.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredItem {
    pub item: Item,
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
                item: parse_item(&id, &data)?,
                published_id,
                also_at: Vec::new(),
            });
        }
        drop(stmt);
        for s in &mut out {
            s.also_at = self.also_at(&s.item.id)?;
        }
        Ok(out)
    }

    /// The other copies of a representative's story.
    pub fn also_at(&self, id: &ItemId) -> Result<Vec<AlsoAt>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            // A copy from the representative's own source (a post listed twice) is a
            // mistake to hide, not another place the story appeared.
            "SELECT id, data FROM items WHERE dup_of = ?1 AND withdrawn = 0
               AND source_id != (SELECT source_id FROM items WHERE id = ?1)
             ORDER BY first_seen, id",
        )?;
        let rows = stmt.query_map([&id.0], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out: Vec<AlsoAt> = Vec::new();
        for row in rows {
            let (id, data) = row?;
            let item = parse_item(&id, &data)?;
            out.push(AlsoAt {
                source_title: item.source.to_string(),
                source: item.source,
                title: item.title,
                url: item.url,
            });
        }
        Ok(out)
    }

    /// Visible items matching `filter`, newest first, at most `limit`. Streams rows and
    /// stops early, so memory stays bounded by `limit`, not by history. The query starts
    /// from the most selective indexed filter (tags, then sources, then languages), so a
    /// channel reads its own candidates, not every stored item; `filter.matches` then
    /// applies the full rule to each candidate.
    pub fn visible_items_where(
        &self,
        filter: &ChannelFilter,
        limit: usize,
    ) -> Result<Vec<StoredItem>, StoreError> {
        if filter.tags.is_empty() && filter.languages.is_empty() && filter.sources.is_empty() {
            return self.visible_items(limit);
        }
        let json = |v: Vec<&str>| serde_json::to_string(&v).expect("strings serialise");
        let (sql, param) = if !filter.tags.is_empty() {
            (
                // CROSS JOIN keeps item_tags as the outer loop: only the tag's items are read.
                "SELECT DISTINCT i.id, i.data, i.published_id, i.published
                 FROM item_tags t CROSS JOIN items i ON i.id = t.item_id
                 WHERE t.tag IN (SELECT value FROM json_each(?1))
                   AND i.dup_of IS NULL AND i.withdrawn = 0
                 ORDER BY i.published DESC, i.id ASC",
                json(filter.tags.iter().map(String::as_str).collect()),
            )
        } else if !filter.sources.is_empty() {
            (
                "SELECT id, data, published_id, published FROM items
                 WHERE source_id IN (SELECT value FROM json_each(?1))
                   AND dup_of IS NULL AND withdrawn = 0
                 ORDER BY published DESC, id ASC",
                json(filter.sources.iter().map(SourceId::as_str).collect()),
            )
        } else {
            (
                "SELECT id, data, published_id, published FROM items
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
            let mut rows = stmt.query([param])?;
            while let Some(r) = rows.next()? {
                if out.len() >= limit {
                    break;
                }
                let id: String = r.get(0)?;
                let data: String = r.get(1)?;
                let item = parse_item(&id, &data)?;
                if filter.matches(&item) {
                    out.push(StoredItem {
                        item,
                        published_id: r.get(2)?,
                        also_at: Vec::new(),
                    });
                }
            }
        }
        for s in &mut out {
            s.also_at = self.also_at(&s.item.id)?;
        }
        Ok(out)
    }

    /// Distinct tags among visible items (from the tag index, no JSON parsing).
    pub fn visible_tags(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT t.tag FROM item_tags t JOIN items i ON i.id = t.item_id
             WHERE i.dup_of IS NULL AND i.withdrawn = 0 ORDER BY 1",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Each tag of visible items with the number of visible items that carry it (which
    /// tags are worth a channel of their own).
    pub fn visible_tag_counts(&self) -> Result<Vec<(String, usize)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT t.tag, COUNT(*) FROM item_tags t JOIN items i ON i.id = t.item_id
             WHERE i.dup_of IS NULL AND i.withdrawn = 0 GROUP BY t.tag ORDER BY 1",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        rows.map(|r| r.map(|(t, n)| (t, n as usize)).map_err(StoreError::from))
            .collect()
    }

    /// Distinct primary languages among visible items.
    pub fn visible_languages(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT language FROM items
             WHERE dup_of IS NULL AND withdrawn = 0 AND language IS NOT NULL ORDER BY 1",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut langs: Vec<String> = Vec::new();
        for l in rows {
            let l = l?;
            let primary = l.split('-').next().unwrap_or(&l).to_owned();
            if !langs.contains(&primary) {
                langs.push(primary);
            }
        }
        Ok(langs)
    }
}
