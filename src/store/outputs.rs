//! What publishing remembers in the store: which sources, tags and languages changed
//! since the last publish ([`Dirty`], recorded by triggers) and the validators of each
//! published file, so they survive restarts.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{from_ts, ts, Store, StoreError};
use crate::model::ChannelFilter;

/// The validators of a published output: the hash of its bytes (its ETag) and when
/// they last changed (its Last-Modified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputState {
    pub hash: String,
    pub last_modified: DateTime<Utc>,
}

/// What changed in the store since the last publish: the sources, tags and languages
/// of items added, changed or removed (and of the representatives whose "also
/// published by" list changed). Recorded by triggers, so no code path can forget it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dirty {
    pub sources: HashSet<String>,
    pub tags: HashSet<String>,
    pub languages: HashSet<String>,
}

impl Dirty {
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty() && self.tags.is_empty() && self.languages.is_empty()
    }

    /// Could a channel with `filter` show a changed item? Every changed item marks its
    /// source, language and tags, and a channel shows an item only if it matches all of
    /// the channel's dimensions, so a channel none of whose dimensions was touched cannot
    /// have changed.
    pub fn affects(&self, filter: &ChannelFilter) -> bool {
        if self.is_empty() {
            return false;
        }
        let sources = filter.sources.is_empty()
            || filter
                .sources
                .iter()
                .any(|s| self.sources.contains(s.as_str()));
        let tags = filter.tags.is_empty() || filter.tags.iter().any(|t| self.tags.contains(t));
        let languages = filter.languages.is_empty()
            || filter.languages.iter().any(|want| {
                self.languages.iter().any(|l| {
                    l == want
                        || l.strip_prefix(want.as_str())
                            .is_some_and(|r| r.starts_with('-'))
                })
            });
        sources && tags && languages
    }
}

/// Records an output's validators (see [`Store::save_output_state`]).
const SAVE_OUTPUT_STATE: &str =
    "INSERT INTO outputs (path, content_hash, last_modified) VALUES (?1, ?2, ?3)
     ON CONFLICT(path) DO UPDATE SET content_hash = ?2, last_modified = ?3";

impl Store {
    /// Remembered validators of a published output, so they survive restarts.
    pub fn output_state(&self, path: &str) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT content_hash, last_modified FROM outputs WHERE path = ?1",
                [path],
                |r| Ok((r.get::<_, String>(0)?, from_ts(r.get(1)?))),
            )
            .optional()?)
    }

    /// When each output the store remembers was last published, by path.
    pub fn output_dates(&self) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT path, last_modified FROM outputs")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, from_ts(r.get(1)?))))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The validators of the outputs directly in directory `dir` (relative to the output
    /// directory, without a trailing `/`; not those in its subdirectories), by file
    /// name: one query for a directory of channel documents instead of one per
    /// document. An index range of `outputs`' key, so what it reads follows the
    /// directory, not every output ever published (a growing archive lives in its own
    /// directory and is not read for `sources/`).
    pub fn output_states_in(&self, dir: &str) -> Result<HashMap<String, OutputState>, StoreError> {
        debug_assert!(!dir.is_empty() && !dir.ends_with('/'));
        let mut stmt = self.conn.prepare_cached(
            "SELECT substr(path, ?3), content_hash, last_modified FROM outputs
             WHERE path > ?1 AND path < ?2 AND instr(substr(path, ?3), '/') = 0",
        )?;
        // Every path under `dir/` sorts between `dir/` and `dir0` ('0' follows '/').
        let (low, high) = (format!("{dir}/"), format!("{dir}0"));
        let name_at = low.chars().count() as i64 + 1; // substr counts characters
        let rows = stmt.query_map(params![low, high, name_at], |r| {
            Ok((
                r.get::<_, String>(0)?,
                OutputState {
                    hash: r.get(1)?,
                    last_modified: from_ts(r.get(2)?),
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn save_output_state(
        &self,
        path: &str,
        hash: &str,
        last_modified: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(SAVE_OUTPUT_STATE)?
            .execute(params![path, hash, ts(last_modified)])?;
        Ok(())
    }

    /// [`Store::save_output_state`] for each `(path, hash)`, in one transaction (unless
    /// the caller already holds one): a commit each cost a cold medium build's publish
    /// 1 953 WAL appends and their locks after the last rename.
    pub fn save_output_states(
        &self,
        states: &[(String, String)],
        last_modified: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        let tx = if self.conn.is_autocommit() {
            Some(self.conn.unchecked_transaction()?)
        } else {
            None
        };
        {
            let mut stmt = self.conn.prepare_cached(SAVE_OUTPUT_STATE)?;
            let at = ts(last_modified);
            for (path, hash) in states {
                stmt.execute(params![path, hash, at])?;
            }
        }
        if let Some(tx) = tx {
            tx.commit()?;
        }
        Ok(())
    }

    /// What changed since the last [`Store::clear_publish_dirty`].
    pub fn publish_dirty(&self) -> Result<Dirty, StoreError> {
        let mut d = Dirty::default();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT kind, key FROM publish_dirty")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let kind: String = r.get(0)?;
            let key: String = r.get(1)?;
            match kind.as_str() {
                "source" => d.sources.insert(key),
                "tag" => d.tags.insert(key),
                _ => d.languages.insert(key),
            };
        }
        Ok(d)
    }

    /// Forgets the recorded changes, once every affected channel has been published.
    pub fn clear_publish_dirty(&self) -> Result<(), StoreError> {
        self.conn.execute("DELETE FROM publish_dirty", [])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_of_output_states_is_saved_in_one_go_and_replaces_the_old_ones() {
        let store = Store::in_memory("x.example").unwrap();
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let t1 = t0 + chrono::Duration::hours(1);
        store.save_output_state("rss.xml", "old", t0).unwrap();
        let states = vec![
            ("rss.xml".to_owned(), "new".to_owned()),
            ("tags/x.rss".to_owned(), "tag".to_owned()),
        ];
        store.save_output_states(&states, t1).unwrap();
        assert_eq!(
            store.output_state("rss.xml").unwrap(),
            Some(("new".into(), t1))
        );
        assert_eq!(
            store.output_state("tags/x.rss").unwrap(),
            Some(("tag".into(), t1))
        );
        assert!(store.conn.is_autocommit(), "its transaction is closed");
        store.save_output_states(&[], t1).unwrap();
    }
}
