//! The `sources` table: each source's fetch state between runs ([`SourceState`]: the
//! validators, how the last attempt ended, when to try next), read and saved here;
//! how an attempt changes it is `refresh`'s business.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::{from_ts, ts, Store, StoreError};
use crate::model::{SourceId, SourceState};

impl Store {
    pub fn source_state(&self, id: &SourceId) -> Result<SourceState, StoreError> {
        let held: i64 = self.conn.query_row(
            "SELECT count(*) FROM items WHERE source_id = ?1 AND withdrawn = 0",
            [id.as_str()],
            |r| r.get(0),
        )?;
        let row = self
            .conn
            .query_row(
                &format!("SELECT {STATE_COLUMNS} FROM sources WHERE id = ?1"),
                [id.as_str()],
                state_from_row,
            )
            .optional()?;
        let mut s = row.unwrap_or_else(|| SourceState {
            id: id.to_string(),
            ..SourceState::default()
        });
        s.items_held = held;
        Ok(s)
    }

    /// Every source's fetch state with the items it holds, in two queries (a refresh of
    /// a thousand sources must not cost two thousand).
    pub fn source_states(&self) -> Result<HashMap<String, SourceState>, StoreError> {
        let mut out = HashMap::new();
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {STATE_COLUMNS} FROM sources"))?;
        let rows = stmt.query_map([], state_from_row)?;
        for row in rows {
            let st = row?;
            out.insert(st.id.clone(), st);
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT source_id, count(*) FROM items WHERE withdrawn = 0 GROUP BY source_id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (id, n) = row?;
            out.entry(id.clone())
                .or_insert_with(|| SourceState {
                    id,
                    ..SourceState::default()
                })
                .items_held = n;
        }
        Ok(out)
    }

    /// Saves many sources' fetch states in one transaction (one fsync per refresh, not
    /// one per source: a cycle of 304s must stay cheap).
    pub fn save_source_states(&mut self, states: &[SourceState]) -> Result<(), StoreError> {
        let tx = self.conn.savepoint()?;
        for s in states {
            save_state(&tx, s)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Saves a source's fetch state (validators, outcome, failures, next fetch).
    pub fn save_source_state(&self, s: &SourceState) -> Result<(), StoreError> {
        save_state(&self.conn, s)
    }
}

fn save_state(conn: &Connection, s: &SourceState) -> Result<(), StoreError> {
    {
        conn.prepare_cached(
            "INSERT INTO sources (id, url, etag, last_modified, last_attempt, last_success, last_status,
                                  last_error, consecutive_failures, next_fetch, moved_to, gone, fetch_count)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT(id) DO UPDATE SET url = ?2, etag = ?3, last_modified = ?4, last_attempt = ?5,
                 last_success = ?6, last_status = ?7, last_error = ?8, consecutive_failures = ?9,
                 next_fetch = ?10, moved_to = ?11, gone = ?12, fetch_count = ?13",
        )?
        .execute(params![
                s.id,
                s.url,
                s.etag,
                s.last_modified,
                s.last_attempt.map(ts),
                s.last_success.map(ts),
                s.last_status,
                s.last_error,
                s.consecutive_failures,
                s.next_fetch.map(ts),
                s.moved_to,
                s.gone,
                s.fetch_count,
            ])?;
        Ok(())
    }
}

/// The `sources` columns [`state_from_row`] reads, in its order.
const STATE_COLUMNS: &str = "id, url, etag, last_modified, last_attempt, last_success, \
     last_status, last_error, consecutive_failures, next_fetch, moved_to, gone, fetch_count";

/// One `sources` row selected with [`STATE_COLUMNS`]; `items_held` is counted apart.
fn state_from_row(r: &rusqlite::Row) -> rusqlite::Result<SourceState> {
    Ok(SourceState {
        id: r.get(0)?,
        url: r.get(1)?,
        etag: r.get(2)?,
        last_modified: r.get(3)?,
        last_attempt: r.get::<_, Option<i64>>(4)?.map(from_ts),
        last_success: r.get::<_, Option<i64>>(5)?.map(from_ts),
        last_status: r.get(6)?,
        last_error: r.get(7)?,
        consecutive_failures: r.get(8)?,
        next_fetch: r.get::<_, Option<i64>>(9)?.map(from_ts),
        moved_to: r.get(10)?,
        gone: r.get(11)?,
        fetch_count: r.get(12)?,
        items_held: 0,
    })
}
