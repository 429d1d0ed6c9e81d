//! What publishing to object storage remembers (see [`crate::upload`]): the headers
//! each published document is served with (`output_headers`, written by the publisher
//! beside the validators in `outputs`), every object uploaded to a target with the hash
//! of its bytes and the ETag the target answered (`remote_objects`), and how the last
//! upload to each target ended (`remote_state`). Deciding what to upload is `upload`'s.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::{from_ts, ts, Store, StoreError};

/// Created on every open (`IF NOT EXISTS`): additive, so stores made before it gain it.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS output_headers (
    path          TEXT PRIMARY KEY,
    content_type  TEXT NOT NULL,
    cache_control TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS remote_objects (
    target        TEXT NOT NULL,
    path          TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    cache_control TEXT NOT NULL,
    etag          TEXT,
    uploaded_at   INTEGER NOT NULL,
    PRIMARY KEY (target, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS remote_state (
    target               TEXT PRIMARY KEY,
    last_attempt         INTEGER,
    last_success         INTEGER,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_error           TEXT,
    next_attempt         INTEGER,
    objects              INTEGER NOT NULL DEFAULT 0,
    held_deletes         INTEGER NOT NULL DEFAULT 0
);
";

pub(super) fn init(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.execute_batch(SCHEMA)
}

/// One published document as the upload sees it: the bytes' hash (from `outputs`) and
/// the headers the publisher gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedOutput {
    pub path: String,
    pub content_hash: String,
    pub content_type: String,
    pub cache_control: String,
}

/// What was last uploaded for one path of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteObject {
    pub content_hash: String,
    pub content_type: String,
    pub cache_control: String,
    pub etag: Option<String>,
}

/// How uploading to a target has gone: shown by `feedwerk sources`, used for back-off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteState {
    pub last_attempt: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    /// No upload before this time (back-off after failures).
    pub next_attempt: Option<DateTime<Utc>>,
    /// Objects recorded as uploaded after the last attempt.
    pub objects: u32,
    /// Deletes the `max_deletes` guard held back in the last attempt.
    pub held_deletes: u32,
}

impl Store {
    /// Remembers the headers of documents as the publisher made them; rows that did not
    /// change are not rewritten.
    pub fn save_output_headers(
        &self,
        docs: &[(String, &'static str, &'static str)],
    ) -> Result<(), StoreError> {
        if docs.is_empty() {
            return Ok(());
        }
        // One transaction for the lot, unless the caller already holds one.
        let tx = if self.conn.is_autocommit() {
            Some(self.conn.unchecked_transaction()?)
        } else {
            None
        };
        {
            let mut stmt = self.conn.prepare_cached(
                "INSERT INTO output_headers (path, content_type, cache_control) VALUES (?1, ?2, ?3)
                 ON CONFLICT(path) DO UPDATE SET content_type = ?2, cache_control = ?3
                 WHERE content_type <> ?2 OR cache_control <> ?3",
            )?;
            for (path, content_type, cache_control) in docs {
                stmt.execute(params![path, content_type, cache_control])?;
            }
        }
        if let Some(tx) = tx {
            tx.commit()?;
        }
        Ok(())
    }

    /// Every output with both validators and headers recorded, by path. Whether its
    /// file is still there is the caller's question.
    pub fn published_outputs(&self) -> Result<Vec<PublishedOutput>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT o.path, o.content_hash, h.content_type, h.cache_control
             FROM outputs o JOIN output_headers h ON h.path = o.path ORDER BY o.path",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(PublishedOutput {
                path: r.get(0)?,
                content_hash: r.get(1)?,
                content_type: r.get(2)?,
                cache_control: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// What was uploaded to `target`, by path.
    pub fn remote_objects(
        &self,
        target: &str,
    ) -> Result<HashMap<String, RemoteObject>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT path, content_hash, content_type, cache_control, etag
             FROM remote_objects WHERE target = ?1",
        )?;
        let rows = stmt.query_map([target], |r| {
            Ok((
                r.get::<_, String>(0)?,
                RemoteObject {
                    content_hash: r.get(1)?,
                    content_type: r.get(2)?,
                    cache_control: r.get(3)?,
                    etag: r.get(4)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records one object as uploaded (or found already there) at `at`.
    pub fn save_remote_object(
        &self,
        target: &str,
        path: &str,
        object: &RemoteObject,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO remote_objects
                   (target, path, content_hash, content_type, cache_control, etag, uploaded_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(target, path) DO UPDATE SET content_hash = ?3, content_type = ?4,
                   cache_control = ?5, etag = ?6, uploaded_at = ?7",
            )?
            .execute(params![
                target,
                path,
                object.content_hash,
                object.content_type,
                object.cache_control,
                object.etag,
                ts(at)
            ])?;
        Ok(())
    }

    /// Forgets an object deleted from `target`.
    pub fn forget_remote_object(&self, target: &str, path: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM remote_objects WHERE target = ?1 AND path = ?2")?
            .execute([target, path])?;
        Ok(())
    }

    pub fn remote_state(&self, target: &str) -> Result<RemoteState, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_attempt, last_success, consecutive_failures, last_error,
                        next_attempt, objects, held_deletes
                 FROM remote_state WHERE target = ?1",
                [target],
                |r| {
                    Ok(RemoteState {
                        last_attempt: r.get::<_, Option<i64>>(0)?.map(from_ts),
                        last_success: r.get::<_, Option<i64>>(1)?.map(from_ts),
                        consecutive_failures: r.get(2)?,
                        last_error: r.get(3)?,
                        next_attempt: r.get::<_, Option<i64>>(4)?.map(from_ts),
                        objects: r.get(5)?,
                        held_deletes: r.get(6)?,
                    })
                },
            )
            .optional()?
            .unwrap_or_default())
    }

    pub fn save_remote_state(&self, target: &str, s: &RemoteState) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO remote_state (target, last_attempt, last_success, consecutive_failures,
                                       last_error, next_attempt, objects, held_deletes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(target) DO UPDATE SET last_attempt = ?2, last_success = ?3,
               consecutive_failures = ?4, last_error = ?5, next_attempt = ?6, objects = ?7,
               held_deletes = ?8",
            params![
                target,
                s.last_attempt.map(ts),
                s.last_success.map(ts),
                s.consecutive_failures,
                s.last_error,
                s.next_attempt.map(ts),
                s.objects,
                s.held_deletes
            ],
        )?;
        Ok(())
    }
}
