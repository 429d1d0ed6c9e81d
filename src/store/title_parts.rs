//! Held items by the parts of their titles (`fingerprint::title_parts`), so that a copy
//! retitled with a subtitle or a prefix ("Frankfurt: Sicherheit im Bahnhofsviertel")
//! finds the original ("Sicherheit im Bahnhofsviertel") and the other way round, in
//! whichever order they arrive. Only titles with a separator have rows. What makes two
//! such items one story is decided by `dedupe`; this module only finds candidates.

use rusqlite::{params, Connection};

use crate::model::{Item, ItemId};
use crate::normalise::fingerprint;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS dedupe_title_part (
    part    TEXT NOT NULL,
    item_id TEXT NOT NULL,
    PRIMARY KEY (part, item_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS dedupe_title_part_item ON dedupe_title_part(item_id);
CREATE TRIGGER IF NOT EXISTS items_delete_title_parts AFTER DELETE ON items BEGIN
    DELETE FROM dedupe_title_part WHERE item_id = old.id;
END;
";

/// Creates the table; a store made before it gets its held items' parts once.
pub(super) fn init(conn: &Connection) -> Result<(), rusqlite::Error> {
    let fresh = !super::table_exists(conn, "dedupe_title_part")?;
    conn.execute_batch(SCHEMA)?;
    if fresh {
        // IMMEDIATE: it may write, and a deferred transaction that reads first fails at
        // once (SQLITE_BUSY_SNAPSHOT) when a running daemon commits in between, where
        // this one waits out the busy timeout.
        let tx =
            rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
        let rows: Vec<(String, String)> = tx
            .prepare("SELECT id, coalesce(json_extract(data, '$.title'), '') FROM items")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (id, title) in rows {
            insert(&tx, &id, &title)?;
        }
        tx.commit()?;
    }
    Ok(())
}

/// (Re-)indexes `item`'s title parts. `fresh`: just inserted, no rows to replace.
pub(super) fn index(conn: &Connection, item: &Item, fresh: bool) -> Result<(), rusqlite::Error> {
    if !fresh {
        conn.prepare_cached("DELETE FROM dedupe_title_part WHERE item_id = ?1")?
            .execute([&item.id.0])?;
    }
    insert(conn, &item.id.0, &item.title)
}

fn insert(conn: &Connection, id: &str, title: &str) -> Result<(), rusqlite::Error> {
    let parts = fingerprint::title_parts(title);
    if parts.is_empty() {
        return Ok(());
    }
    let mut ins = conn.prepare_cached(
        "INSERT OR IGNORE INTO dedupe_title_part (part, item_id) VALUES (?1, ?2)",
    )?;
    for part in parts {
        ins.execute(params![part, id])?;
    }
    Ok(())
}

/// Held items whose title relates to `title` through a part: one of `title`'s parts is
/// their whole title or one of their parts, or `title` is one of their parts. At most
/// 50 per key (the most recent), so a rubric shared by many items stays cheap.
pub fn by_title_parts(conn: &Connection, title: &str) -> Result<Vec<ItemId>, rusqlite::Error> {
    let whole = fingerprint::title_key(title);
    let parts = fingerprint::title_parts(title);
    let mut out = Vec::new();
    let by_part = |part: &str| {
        super::bounded::bounded_ids(
            conn,
            "SELECT p.item_id, i.published FROM dedupe_title_part p JOIN items i ON i.id = p.item_id
             WHERE p.part = ?1 LIMIT 51",
            "SELECT p.item_id FROM dedupe_title_part p JOIN items i ON i.id = p.item_id
             WHERE p.part = ?1 ORDER BY i.published DESC LIMIT 50",
            part,
            super::bounded::TITLE_LIMIT,
            super::bounded::Keep::Newest,
        )
    };
    if whole.split(' ').count() >= 2 {
        out.extend(by_part(&whole)?);
    }
    for part in &parts {
        out.extend(by_part(part)?);
        out.extend(super::bounded::by_title_key(conn, part)?);
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
