//! Held items by the parts of their titles (`fingerprint::title_parts`), so that a copy
//! retitled with a subtitle or a prefix ("Frankfurt: Sicherheit im Bahnhofsviertel")
//! finds the original ("Sicherheit im Bahnhofsviertel") and the other way round, in
//! whichever order they arrive. Only titles with a separator have rows. What makes two
//! such items one story is decided by `dedupe`; this module only finds candidates.

use rusqlite::{params, Connection};

use crate::model::{Item, ItemId};
use crate::normalise::fingerprint;

/// Rows are keyed by part, then the item's date (newest first), then the item, so the
/// most recent items with a part are the first rows of its key (schema 4; see
/// `bounded::by_title_part`).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS dedupe_title_part (
    part      TEXT NOT NULL,
    published INTEGER NOT NULL,
    item_id   TEXT NOT NULL,
    PRIMARY KEY (part, published DESC, item_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedupe_title_part_item ON dedupe_title_part(item_id);
CREATE TRIGGER IF NOT EXISTS items_delete_title_parts AFTER DELETE ON items BEGIN
    DELETE FROM dedupe_title_part WHERE item_id = old.id;
END;
";

/// Creates the table; a store made before it gets its held items' parts once, and a
/// store of schema 3 or older (rows keyed by part and item only) has its rows rekeyed
/// with their items' dates.
pub(super) fn init(conn: &Connection) -> Result<(), rusqlite::Error> {
    let exists = super::table_exists(conn, "dedupe_title_part")?;
    let dated = conn
        .prepare("SELECT 1 FROM pragma_table_info('dedupe_title_part') WHERE name = 'published'")?
        .exists([])?;
    if exists && dated {
        return conn.execute_batch(SCHEMA);
    }
    // IMMEDIATE: it may write, and a deferred transaction that reads first fails at
    // once (SQLITE_BUSY_SNAPSHOT) when a running daemon commits in between, where
    // this one waits out the busy timeout. One transaction: a crash leaves the old
    // table or the new one.
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    if exists {
        // The trigger names the table: dropped with it, and made again by SCHEMA.
        tx.execute_batch(
            "DROP TRIGGER IF EXISTS items_delete_title_parts;
             ALTER TABLE dedupe_title_part RENAME TO dedupe_title_part_v3;
             DROP INDEX IF EXISTS dedupe_title_part_item;",
        )?;
        tx.execute_batch(SCHEMA)?;
        tx.execute_batch(
            "INSERT OR IGNORE INTO dedupe_title_part (part, published, item_id)
                 SELECT p.part, i.published, p.item_id
                 FROM dedupe_title_part_v3 p JOIN items i ON i.id = p.item_id;
             DROP TABLE dedupe_title_part_v3;",
        )?;
    } else {
        tx.execute_batch(SCHEMA)?;
        let rows: Vec<(String, String, i64)> = tx
            .prepare(
                "SELECT id, coalesce(json_extract(data, '$.title'), ''), published FROM items",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        for (id, title, published) in rows {
            insert(&tx, &id, &title, published)?;
        }
    }
    tx.commit()
}

/// (Re-)indexes `item`'s title parts. `fresh`: just inserted, no rows to replace.
/// `parts`: the item's title parts.
pub(super) fn index(
    conn: &Connection,
    item: &Item,
    fresh: bool,
    parts: &[String],
) -> Result<(), rusqlite::Error> {
    if !fresh {
        conn.prepare_cached("DELETE FROM dedupe_title_part WHERE item_id = ?1")?
            .execute([&item.id.0])?;
    }
    insert_parts(conn, &item.id.0, parts, item.published.timestamp())
}

fn insert(conn: &Connection, id: &str, title: &str, published: i64) -> Result<(), rusqlite::Error> {
    insert_parts(conn, id, &fingerprint::title_parts(title), published)
}

fn insert_parts(
    conn: &Connection,
    id: &str,
    parts: &[String],
    published: i64,
) -> Result<(), rusqlite::Error> {
    if parts.is_empty() {
        return Ok(());
    }
    let mut ins = conn.prepare_cached(
        "INSERT OR IGNORE INTO dedupe_title_part (part, published, item_id) VALUES (?1, ?2, ?3)",
    )?;
    for part in parts {
        ins.execute(params![part, published, id])?;
    }
    Ok(())
}

/// Held items whose title relates to `title` through a part: one of `title`'s parts is
/// their whole title or one of their parts, or `title` is one of their parts. At most
/// 50 per key (the most recent), so a rubric shared by many items stays cheap.
pub fn by_title_parts(conn: &Connection, title: &str) -> Result<Vec<ItemId>, rusqlite::Error> {
    by_title_parts_with(
        &fingerprint::title_key(title),
        &fingerprint::title_parts(title),
        |part| super::bounded::by_title_part(conn, part),
        |key| super::bounded::by_title_key(conn, key),
    )
}

/// [`by_title_parts`] of a title with this key (`whole`) and these `parts`, its two
/// lookups given: by part, and by whole title key.
pub(super) fn by_title_parts_with<E>(
    whole: &str,
    parts: &[String],
    by_part: impl Fn(&str) -> Result<Vec<ItemId>, E>,
    by_key: impl Fn(&str) -> Result<Vec<ItemId>, E>,
) -> Result<Vec<ItemId>, E> {
    let mut out = Vec::new();
    if whole.split(' ').count() >= 2 {
        out.extend(by_part(whole)?);
    }
    for part in parts {
        out.extend(by_part(part)?);
        out.extend(by_key(part)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use crate::dedupe::Decision;
    use crate::model::{DateSource, Fingerprint, Item, ItemId, SourceId};
    use crate::store::Store;

    fn item(id: &str, title: &str) -> Item {
        let t = Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap();
        Item {
            id: ItemId(format!("a:{id}")),
            source: SourceId("a".into()),
            guid: Some(id.into()),
            url: None,
            source_link: None,
            canonical_url: None,
            title: title.into(),
            summary: String::new(),
            content_html: None,
            published: t,
            updated: None,
            date_source: DateSource::Declared,
            authors: Vec::new(),
            tags: Vec::new(),
            language: None,
            first_seen: t,
            text: format!("text of {id}"),
            fingerprint: Fingerprint::default(),
        }
    }

    /// A store made before the title-part index gets its held items' parts when opened,
    /// so an original held there is found by a retitled copy arriving later.
    #[test]
    fn a_store_without_the_index_gets_its_held_titles_indexed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        {
            let mut s = Store::open(&path, "example.org").unwrap();
            let items = vec![item("1", "Frankfurt: Sicherheit im Bahnhofsviertel")];
            s.upsert_source_items(&SourceId("a".into()), items, Utc::now(), |_, _| {
                Ok(Decision::New)
            })
            .unwrap();
            s.conn
                .execute_batch(
                    "DROP TRIGGER items_delete_title_parts; DROP TABLE dedupe_title_part;",
                )
                .unwrap();
        }
        let s = Store::open(&path, "example.org").unwrap();
        let found = super::by_title_parts(&s.conn, "Sicherheit im Bahnhofsviertel").unwrap();
        assert_eq!(found, vec![ItemId("a:1".into())]);
        // Deleting the item takes its parts along.
        s.conn.execute("DELETE FROM items", []).unwrap();
        let found = super::by_title_parts(&s.conn, "Sicherheit im Bahnhofsviertel").unwrap();
        assert!(found.is_empty());
    }
}
