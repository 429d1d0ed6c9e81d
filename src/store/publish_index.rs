//! What publishing needs to know about the visible items as a whole, kept up to date as
//! items change instead of computed from every held item at each publish: how many
//! visible items carry each tag and each language (which tag and language channels
//! exist), and which representatives became visible since the last publish (whose
//! published IDs that publish fixes as shown).
//!
//! Triggers on `items` and `item_tags` (`publish_index.sql`) keep the three tables in
//! the transaction that changes an item, whatever code path changes it; this module
//! creates and fills them once (a migration step of its own, see `schema::migrate`) and
//! reads them. Which items a channel shows is `visible`'s; what changed since the last
//! publish is `outputs`' (`Dirty`).

use chrono::{DateTime, Utc};
use rusqlite::Connection;

use super::{table_exists, ts, Store, StoreError};

/// Creates the publish index in a store that lacks it and fills it from the items held,
/// in one transaction, so a crash cannot leave a created but empty index behind. Runs
/// after the deduplication tables exist (it reads `dedupe_shown`).
pub(super) fn init(conn: &Connection) -> Result<(), rusqlite::Error> {
    if table_exists(conn, "unshown_representatives")? {
        // Tables present: only (re)create any trigger an older build did not have.
        return conn.execute_batch(include_str!("publish_index.sql"));
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let made = conn
        .execute_batch(include_str!("publish_index.sql"))
        .and_then(|()| conn.execute_batch(FILL));
    match made {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// The publish index computed from scratch: what the triggers keep it equal to.
const FILL: &str = "
DELETE FROM visible_tag_counts;
DELETE FROM visible_language_counts;
DELETE FROM unshown_representatives;
INSERT INTO visible_tag_counts (tag, items)
    SELECT t.tag, COUNT(*) FROM item_tags t JOIN items i ON i.id = t.item_id
    WHERE i.dup_of IS NULL AND i.withdrawn = 0 GROUP BY t.tag;
INSERT INTO visible_language_counts (language, items)
    SELECT language, COUNT(*) FROM items
    WHERE dup_of IS NULL AND withdrawn = 0 AND language IS NOT NULL GROUP BY language;
INSERT INTO unshown_representatives (item_id)
    SELECT id FROM items WHERE dup_of IS NULL AND withdrawn = 0
      AND id NOT IN (SELECT item_id FROM dedupe_shown);
";

impl Store {
    /// Each tag of visible items with the number of visible items that carry it (which
    /// tags are worth a channel of their own), in tag order.
    pub fn visible_tag_counts(&self) -> Result<Vec<(String, usize)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT tag, items FROM visible_tag_counts WHERE items > 0 ORDER BY 1",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        rows.map(|r| r.map(|(t, n)| (t, n as usize)).map_err(StoreError::from))
            .collect()
    }

    /// Distinct tags among visible items, in tag order.
    pub fn visible_tags(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .visible_tag_counts()?
            .into_iter()
            .map(|(t, _)| t)
            .collect())
    }

    /// Distinct primary languages among visible items (`de` for `de` and `de-AT`), in
    /// the order of their full codes.
    pub fn visible_languages(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT language FROM visible_language_counts WHERE items > 0 ORDER BY 1",
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

    /// Records that every current representative has now been shown to readers, so
    /// their published IDs are fixed as their clusters' faces (see `dedupe`). Called
    /// after publishing; reads only the items that became visible since the last call,
    /// not every visible item (CROSS JOIN keeps them the outer loop: without statistics
    /// the planner scanned `items` instead). Returns how many were newly marked.
    pub fn mark_representatives_shown(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO dedupe_shown (item_id, first_shown)
             SELECT u.item_id, ?1 FROM unshown_representatives u
             CROSS JOIN items i ON i.id = u.item_id
             WHERE i.dup_of IS NULL AND i.withdrawn = 0",
            [ts(now)],
        )?;
        self.conn
            .execute("DELETE FROM unshown_representatives", [])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::inserted::{Inserted, NewRow};

    /// The index as the triggers keep it, and as computed from scratch.
    fn kept_and_recomputed(s: &Store) -> (String, String) {
        let dump = |sql: &str| -> String {
            let mut stmt = s.conn.prepare(sql).unwrap();
            let rows = stmt
                .query_map([], |r| {
                    Ok(format!(
                        "{}={}",
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1).unwrap_or(0)
                    ))
                })
                .unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join(" ")
        };
        let read = || {
            [
                dump("SELECT tag, items FROM visible_tag_counts ORDER BY 1"),
                dump("SELECT language, items FROM visible_language_counts ORDER BY 1"),
                dump(
                    "SELECT u.item_id, 1 FROM unshown_representatives u JOIN items i ON i.id = u.item_id
                     WHERE i.dup_of IS NULL AND i.withdrawn = 0
                       AND u.item_id NOT IN (SELECT item_id FROM dedupe_shown) ORDER BY 1",
                ),
            ]
            .join(" | ")
        };
        let kept = read();
        s.conn.execute_batch(FILL).unwrap();
        (kept, read())
    }

    /// A new item as `items::Writer::insert` stores one: its row, then what
    /// `inserted` does for it.
    fn item(s: &Store, id: &str, lang: Option<&str>, tags: &[&str]) {
        s.conn
            .execute(
                "INSERT INTO items (id, source_id, published, first_seen, last_seen, published_id,
                                    data, language)
                 VALUES (?1, 'src', 0, 0, 0, ?1, '{}', ?2)",
                rusqlite::params![id, lang],
            )
            .unwrap();
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        let mut new = Inserted::default();
        let row = NewRow {
            id,
            source: "src",
            language: lang,
            tags: &tags,
            dup_of: None,
        };
        new.item(&s.conn, row).unwrap();
        new.finish(&s.conn).unwrap();
    }

    #[test]
    fn the_triggers_keep_the_index_equal_to_a_recount_through_every_kind_of_change() {
        let s = Store::in_memory("example.org").unwrap();
        let check = |step: &str| {
            let (kept, recomputed) = kept_and_recomputed(&s);
            assert_eq!(kept, recomputed, "after {step}");
        };
        item(&s, "a", Some("de"), &["Politik", "Wetter"]);
        item(&s, "b", Some("de-AT"), &["Wetter"]);
        item(&s, "c", Some("en"), &["Sport"]);
        item(&s, "d", None, &[]);
        check("inserts");
        s.conn
            .execute("UPDATE items SET dup_of = 'a' WHERE id = 'b'", [])
            .unwrap();
        check("b joins a");
        s.conn
            .execute("UPDATE items SET dup_of = NULL WHERE id = 'b'", [])
            .unwrap();
        check("b leaves a");
        s.conn
            .execute("UPDATE items SET withdrawn = 1 WHERE id = 'c'", [])
            .unwrap();
        check("c withdrawn");
        s.conn
            .execute(
                "UPDATE items SET withdrawn = 0, language = 'fr' WHERE id = 'c'",
                [],
            )
            .unwrap();
        check("c back, in French");
        s.conn
            .execute("UPDATE items SET language = 'en' WHERE id = 'a'", [])
            .unwrap();
        check("a's language edited");
        s.conn
            .execute(
                "DELETE FROM item_tags WHERE item_id = 'a' AND tag = 'Wetter'",
                [],
            )
            .unwrap();
        s.conn
            .execute(
                "INSERT INTO item_tags (item_id, tag) VALUES ('a', 'Kultur')",
                [],
            )
            .unwrap();
        check("a's tags edited");
        s.conn
            .execute("UPDATE items SET dup_of = 'c' WHERE id = 'd'", [])
            .unwrap();
        s.conn
            .execute("DELETE FROM items WHERE id = 'a'", [])
            .unwrap();
        s.conn
            .execute("DELETE FROM items WHERE id = 'd'", [])
            .unwrap();
        check("deletes of a visible item and of a duplicate");
        assert_eq!(
            s.visible_tag_counts().unwrap(),
            vec![("Sport".to_owned(), 1), ("Wetter".to_owned(), 1)]
        );
        assert_eq!(s.visible_languages().unwrap(), vec!["de", "fr"]);
    }

    #[test]
    fn marking_shown_reads_only_new_representatives_and_misses_none() {
        let s = Store::in_memory("example.org").unwrap();
        item(&s, "a", Some("de"), &[]);
        item(&s, "b", Some("de"), &[]);
        s.conn
            .execute("UPDATE items SET dup_of = 'a' WHERE id = 'b'", [])
            .unwrap();
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(s.mark_representatives_shown(t).unwrap(), 1);
        assert_eq!(s.mark_representatives_shown(t).unwrap(), 0);
        // b becomes a face of its own (a withdrawn): it is marked at the next publish.
        s.conn
            .execute_batch(
                "UPDATE items SET withdrawn = 1 WHERE id = 'a';
                 UPDATE items SET dup_of = NULL WHERE id = 'b';",
            )
            .unwrap();
        assert_eq!(s.mark_representatives_shown(t).unwrap(), 1);
        let shown: Vec<String> = s
            .conn
            .prepare("SELECT item_id FROM dedupe_shown ORDER BY 1")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(shown, vec!["a", "b"]);
    }

    #[test]
    fn a_store_made_before_the_index_gets_it_filled_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        {
            let s = Store::open(&path, "example.org").unwrap();
            item(&s, "a", Some("de"), &["Wetter"]);
            item(&s, "b", Some("en"), &["Wetter", "Sport"]);
            s.conn
                .execute_batch(
                    "DROP TABLE visible_tag_counts; DROP TABLE visible_language_counts;
                     DROP TABLE unshown_representatives;",
                )
                .unwrap();
        }
        let s = Store::open(&path, "example.org").unwrap();
        assert_eq!(
            s.visible_tag_counts().unwrap(),
            vec![("Sport".to_owned(), 1), ("Wetter".to_owned(), 2)]
        );
        assert_eq!(s.visible_languages().unwrap(), vec!["de", "en"]);
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(s.mark_representatives_shown(t).unwrap(), 2);
    }
}
