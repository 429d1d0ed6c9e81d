//! What a new item row changes besides itself: the channels the next publish must
//! redo (`publish_dirty`), the publish index (its language's count, the unshown
//! representatives: see `publish_index`) and its tag rows, written by the one code path
//! that inserts items (`items::Writer::insert`), not by AFTER INSERT triggers.
//!
//! Why not triggers: an insert that fires one runs as a multi-write statement that may
//! abort, so SQLite gives it a statement journal and copies every page the insert
//! dirties (a leaf of each of the item's indexes, the publish tables) before writing
//! it. A plain single-row insert checks every constraint before it writes and needs
//! none: the INSERT INTO items of a cold medium build went from 1.46 G to 0.50 G
//! instructions (callgrind). Updates, deletes and tag rows keep their triggers
//! (`schema.sql`, `publish_index.sql`): updates and deletes are rare and have more
//! paths, and a new item's tag rows are written in one statement per upsert.

use std::collections::HashSet;

use rusqlite::{params, Connection};

/// What [`Inserted::item`] reads of a new item row.
pub(super) struct NewRow<'a> {
    pub id: &'a str,
    pub source: &'a str,
    pub language: Option<&'a str>,
    pub tags: &'a [String],
    /// The representative it was inserted as a copy of (`None`: it is visible).
    pub dup_of: Option<&'a str>,
}

/// The bookkeeping of one upsert's new items: what it marked already, and the tag rows
/// still to write.
#[derive(Default)]
pub(super) struct Inserted {
    /// `publish_dirty` keys this upsert wrote (a source's items mark it once).
    marked: HashSet<(&'static str, String)>,
    /// The new items' tags, `[item id, tag]`, written by [`Inserted::finish`] in one
    /// statement per upsert rather than one per item.
    tags: Vec<(String, String)>,
}

impl Inserted {
    /// Accounts for the item `row` just inserted, as the insert triggers did: its
    /// source and language are dirty, so are its representative's source, language and
    /// tags; a visible item counts for its language and is unshown.
    pub(super) fn item(
        &mut self,
        conn: &Connection,
        row: NewRow<'_>,
    ) -> Result<(), rusqlite::Error> {
        let NewRow {
            id,
            source,
            language,
            tags,
            dup_of,
        } = row;
        self.mark(conn, "source", source)?;
        if let Some(lang) = language {
            self.mark(conn, "lang", lang)?;
        }
        match dup_of {
            Some(rep) => {
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO publish_dirty (kind, key)
                     SELECT 'source', source_id FROM items WHERE id = ?1
                     UNION ALL SELECT 'lang', language FROM items
                         WHERE id = ?1 AND language IS NOT NULL
                     UNION ALL SELECT 'tag', tag FROM item_tags WHERE item_id = ?1",
                )?
                .execute([rep])?;
            }
            None => {
                if let Some(lang) = language {
                    conn.prepare_cached(
                        "INSERT INTO visible_language_counts (language, items) VALUES (?1, 1)
                         ON CONFLICT(language) DO UPDATE SET items = items + 1",
                    )?
                    .execute([lang])?;
                }
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO unshown_representatives (item_id) VALUES (?1)",
                )?
                .execute([id])?;
            }
        }
        self.tags
            .extend(tags.iter().map(|t| (id.to_owned(), t.clone())));
        Ok(())
    }

    fn mark(&mut self, conn: &Connection, kind: &'static str, key: &str) -> rusqlite::Result<()> {
        if self.marked.insert((kind, key.to_owned())) {
            conn.prepare_cached("INSERT OR IGNORE INTO publish_dirty (kind, key) VALUES (?1, ?2)")?
                .execute(params![kind, key])?;
        }
        Ok(())
    }

    /// Writes the new items' tag rows, in one statement for the upsert rather than one
    /// per item; their triggers mark and count them. Counted when written, so an item
    /// a later item of the same upsert superseded counts for none of its tags, as it
    /// would had they been written with it and uncounted with it.
    pub(super) fn finish(self, conn: &Connection) -> Result<(), rusqlite::Error> {
        if self.tags.is_empty() {
            return Ok(());
        }
        let rows = serde_json::to_string(&self.tags).expect("strings serialise");
        conn.prepare_cached(
            "INSERT OR IGNORE INTO item_tags (item_id, tag)
             SELECT value ->> 0, value ->> 1 FROM json_each(?1)",
        )?
        .execute([rows])?;
        Ok(())
    }
}
