//! What publishing to object storage remembers, on PostgreSQL: each published
//! document's headers, the objects uploaded to each target, how the last upload to
//! each target ended. The [`UploadStore`] area, with the behaviour of
//! `store/uploads.rs`; deciding what to upload is `upload`'s.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::PgStore;
use crate::store::backend::UploadStore;
use crate::store::{from_ts, ts, PublishedOutput, RemoteObject, RemoteState, StoreError};

/// A count column read back as SQLite's `u32` reads it.
fn count(r: &tokio_postgres::Row, i: usize) -> u32 {
    u32::try_from(r.get::<_, i64>(i)).unwrap_or(u32::MAX)
}

impl UploadStore for PgStore {
    /// `Store::save_output_headers`: one transaction for the lot (the open group's,
    /// else its own); rows that did not change are not rewritten.
    fn save_output_headers(
        &self,
        docs: &[(String, &'static str, &'static str)],
    ) -> Result<(), StoreError> {
        if docs.is_empty() {
            return Ok(());
        }
        let docs = docs.to_vec();
        self.with_write(move |c| async move {
            let paths: Vec<&str> = docs.iter().map(|d| d.0.as_str()).collect();
            let types: Vec<&str> = docs.iter().map(|d| d.1).collect();
            let controls: Vec<&str> = docs.iter().map(|d| d.2).collect();
            // One statement for every document; a path listed twice keeps its last
            // headers, as SQLite's one upsert per document leaves it.
            let stmt = c
                .prepare_cached(
                    "INSERT INTO output_headers (path, content_type, cache_control)
                     SELECT DISTINCT ON (p) p, t, h
                     FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS d(p, t, h, o)
                     ORDER BY p, o DESC
                     ON CONFLICT (path) DO UPDATE SET content_type = EXCLUDED.content_type,
                         cache_control = EXCLUDED.cache_control
                     WHERE output_headers.content_type <> EXCLUDED.content_type
                        OR output_headers.cache_control <> EXCLUDED.cache_control",
                )
                .await?;
            c.execute(&stmt, &[&paths, &types, &controls]).await?;
            Ok(())
        })
    }

    /// Every output with both validators and headers, in path order (byte-wise).
    fn published_outputs(&self) -> Result<Vec<PublishedOutput>, StoreError> {
        self.with_conn(|c| async move {
            let rows = c
                .query(
                    "SELECT o.path, o.content_hash, h.content_type, h.cache_control
                     FROM outputs o JOIN output_headers h ON h.path = o.path
                     ORDER BY o.path COLLATE \"C\"",
                    &[],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| PublishedOutput {
                    path: r.get(0),
                    content_hash: r.get(1),
                    content_type: r.get(2),
                    cache_control: r.get(3),
                })
                .collect())
        })
    }

    fn remote_objects(&self, target: &str) -> Result<HashMap<String, RemoteObject>, StoreError> {
        let target = target.to_owned();
        self.with_conn(|c| async move {
            let rows = c
                .query(
                    "SELECT path, content_hash, content_type, cache_control, etag
                     FROM remote_objects WHERE target = $1",
                    &[&target],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| {
                    let object = RemoteObject {
                        content_hash: r.get(1),
                        content_type: r.get(2),
                        cache_control: r.get(3),
                        etag: r.get(4),
                    };
                    (r.get(0), object)
                })
                .collect())
        })
    }

    fn save_remote_object(
        &self,
        target: &str,
        path: &str,
        object: &RemoteObject,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO remote_objects
               (target, path, content_hash, content_type, cache_control, etag, uploaded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (target, path) DO UPDATE SET content_hash = EXCLUDED.content_hash,
               content_type = EXCLUDED.content_type, cache_control = EXCLUDED.cache_control,
               etag = EXCLUDED.etag, uploaded_at = EXCLUDED.uploaded_at",
            vec![
                Box::new(target.to_owned()),
                Box::new(path.to_owned()),
                Box::new(object.content_hash.clone()),
                Box::new(object.content_type.clone()),
                Box::new(object.cache_control.clone()),
                Box::new(object.etag.clone()),
                Box::new(ts(at)),
            ],
        )
    }

    fn forget_remote_object(&self, target: &str, path: &str) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM remote_objects WHERE target = $1 AND path = $2",
            vec![Box::new(target.to_owned()), Box::new(path.to_owned())],
        )
    }

    fn remote_state(&self, target: &str) -> Result<RemoteState, StoreError> {
        let target = target.to_owned();
        self.with_conn(|c| async move {
            let row = c
                .query_opt(
                    "SELECT last_attempt, last_success, consecutive_failures, last_error,
                            next_attempt, objects, held_deletes
                     FROM remote_state WHERE target = $1",
                    &[&target],
                )
                .await?;
            Ok(row
                .map(|r| RemoteState {
                    last_attempt: r.get::<_, Option<i64>>(0).map(from_ts),
                    last_success: r.get::<_, Option<i64>>(1).map(from_ts),
                    consecutive_failures: count(&r, 2),
                    last_error: r.get(3),
                    next_attempt: r.get::<_, Option<i64>>(4).map(from_ts),
                    objects: count(&r, 5),
                    held_deletes: count(&r, 6),
                })
                .unwrap_or_default())
        })
    }

    fn save_remote_state(&self, target: &str, s: &RemoteState) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO remote_state (target, last_attempt, last_success, consecutive_failures,
                                       last_error, next_attempt, objects, held_deletes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (target) DO UPDATE SET last_attempt = EXCLUDED.last_attempt,
               last_success = EXCLUDED.last_success,
               consecutive_failures = EXCLUDED.consecutive_failures,
               last_error = EXCLUDED.last_error, next_attempt = EXCLUDED.next_attempt,
               objects = EXCLUDED.objects, held_deletes = EXCLUDED.held_deletes",
            vec![
                Box::new(target.to_owned()),
                Box::new(s.last_attempt.map(ts)),
                Box::new(s.last_success.map(ts)),
                Box::new(i64::from(s.consecutive_failures)),
                Box::new(s.last_error.clone()),
                Box::new(s.next_attempt.map(ts)),
                Box::new(i64::from(s.objects)),
                Box::new(i64::from(s.held_deletes)),
            ],
        )
    }
}
