//! The PostgreSQL store (issue 20): connecting (a `deadpool-postgres` pool over
//! `tokio-postgres`), the schema and its migrations, and every area of
//! [`super::Backend`], so a [`PgStore`] is a `Backend` (`Box<dyn Backend>`): here
//! [`MetaStore`], [`SourceStore`], [`OutputStore`] and [`GroupStore`] (over
//! [`PgStore::group`]); `items.rs` and `dedup.rs` the items and deduplication areas;
//! `channels.rs` what channels read (its counts and dirty marks kept by triggers);
//! `archive.rs` the RFC 5005 archive pages; `uploads.rs` what object storage uploads
//! remember. Each is tested against the SQLite store's answers on a real server
//! (`tests/it/postgres.rs`, `postgres_items.rs`, `postgres_channels.rs`).
//!
//! The store's interface is synchronous (the pipeline calls it under a lock, as SQLite
//! works), and `tokio-postgres` is async. So a [`PgStore`] owns a small runtime of its
//! own (one worker thread) that drives its connections; each call hands a future to
//! that runtime and waits for the answer on a channel. That works from any thread,
//! including the daemon's runtime threads, where blocking on a runtime of one's own
//! would panic.
//!
//! Every call runs on the connection [`PgStore::with_conn`] picks (a group's, else a pooled
//! one) and every write through [`PgStore::with_write`] (in a transaction), so each area
//! gets group transactions and, later, the leader's fencing check without its own code.
//!
//! Connections go over TLS as the URL's `sslmode` says ([`tls`]). With several
//! processes on one database, [`leader`] elects the one that writes, and a store given
//! its [`Fence`] ([`PgStore::with_fence`]) refuses writes once that term is over.
//!
//! Left to the next steps (see the issue notes): reaching it from a config (`[store]
//! url` is still refused by the config check).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::types::ToSql;

mod archive;
mod channels;
mod dedup;
mod index_rows;
mod items;
pub mod leader;
pub mod migrate;
mod open;
mod pipeline;
mod tls;
mod uploads;
mod writes;

pub use leader::{Fence, Leadership, Role, Timing};
pub use tls::PgTarget;

pub use open::{inspect, Inspection};

use super::backend::{GroupBody, GroupStore, MetaStore, OutputStore, SourceStore};
use super::{from_ts, ts, OutputState, StoreError, UNPUBLISHED};
/// Every error and log line of this store names its server this way.
pub(crate) use crate::db_url::without_password;
use crate::model::{SourceId, SourceState};

/// Schema migrations, in order: migration `i` brings a database at version `i` to
/// `i + 1`. Applied under an advisory lock, so two processes starting at once on a new
/// database do not both create it.
const MIGRATIONS: &[&str] = &[include_str!("schema_1.sql")];

/// The advisory lock key held while migrating (an arbitrary constant, "feedwerk").
const MIGRATION_LOCK: i64 = 0x6665_6564_7765_726b;

/// Connections the pool keeps at most: the store is used by one writer at a time, a
/// second connection serves a read while a write waits.
const POOL_SIZE: usize = 4;

/// A store in a PostgreSQL database.
pub struct PgStore {
    /// Drives the pool's connections; `None` only while being dropped.
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// While a group runs ([`GroupStore::in_group`](super::backend::GroupStore::in_group)): the one connection its
    /// transaction is open on, which every call of the group must use.
    group: Option<Conn>,
    /// The RFC 4151 tagging entity new items' published IDs are minted under (see
    /// [`PgStore::with_authority`]).
    authority: Option<String>,
    /// The leader's term every write must still be in ([`PgStore::with_fence`]).
    fence: Option<Fence>,
}

/// The connection one store call runs on: the open group's, or one from the pool
/// (returned to it when the last clone is dropped).
pub(crate) type Conn = Arc<Object>;

impl Drop for PgStore {
    /// Shuts the runtime down without waiting: dropping a runtime inside another
    /// runtime's thread would panic, and nothing is pending between calls.
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db`, the
    /// libpq keywords tokio-postgres reads) and migrates it to the current schema.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        PgStore::connect_to(&PgTarget::new(url))
    }

    /// [`PgStore::connect`] to `target`, over TLS as its `sslmode` and CA file say
    /// (see [`tls`]).
    pub fn connect_to(target: &PgTarget) -> Result<PgStore, StoreError> {
        let (config, tls) = target.resolve()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("feedwerk-postgres")
            .enable_all()
            .build()
            .map_err(StoreError::PgRuntime)?;
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::PgPool(e.to_string()))?;
        let store = PgStore {
            runtime: Some(runtime),
            pool,
            group: None,
            authority: None,
            fence: None,
        };
        store.run(|pool| async move { migrate(&pool).await })?;
        Ok(store)
    }

    /// The store, minting the published IDs of new items under `authority` (the
    /// tagging entity `<host>,<date>`, as [`super::Store::open`] takes it). Items can only
    /// be stored once it is set.
    pub fn with_authority(mut self, authority: &str) -> PgStore {
        self.authority = Some(authority.to_owned());
        self
    }

    /// The store, writing only within the leader's term `fence`: each write transaction
    /// checks the epoch first and is refused ([`StoreError::Fenced`]) once the term is
    /// over (see [`leader`]). Without a fence (one process, `migrate`, the tests of
    /// other areas) writes are not checked.
    pub fn with_fence(mut self, fence: Fence) -> PgStore {
        self.fence = Some(fence);
        self
    }

    /// The schema version the database is at.
    pub fn schema_version(&self) -> Result<usize, StoreError> {
        self.with_conn(|c| async move { Ok(current_version(&c).await? as usize) })
    }

    /// Runs the future `f` makes from the pool on the store's runtime and waits for
    /// its answer.
    fn run<T, F>(&self, f: impl FnOnce(Pool) -> F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let job = f(self.pool.clone());
        let rt = self
            .runtime
            .as_ref()
            .expect("the runtime lives as long as the store");
        rt.spawn(async move {
            // The caller waits on `rx`; if it is gone there is no one to tell.
            let _ = tx.send(job.await);
        });
        rx.recv().map_err(|_| StoreError::PgGone)?
    }

    /// Runs `f` on the connection this call must use (the open group's, else a pooled
    /// one) on the store's runtime, and waits for its answer. Every read goes through
    /// here, so a read inside a group sees the group's own writes.
    pub(crate) fn with_conn<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Conn) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let group = self.group.clone();
        self.run(move |pool| async move {
            let c = match group {
                Some(c) => c,
                None => Arc::new(pool.get().await?),
            };
            f(c).await
        })
    }

    /// Runs the writes `f` makes as one transaction: inside a group, on the group's
    /// connection and transaction; outside one, in a transaction of its own, committed
    /// when `f` succeeds and rolled back when it fails. Every write goes through here
    /// (or through a group), which is where a write can be refused as a whole.
    pub(crate) fn with_write<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Conn) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let fence = self.fence.clone();
        if self.group.is_some() {
            // The group's transaction checked the epoch when it began; a term that
            // ended since is known here without asking.
            if let Some(term) = &fence {
                term.check_local()?;
            }
            return self.with_conn(f);
        }
        let written = self.with_conn(move |c| async move {
            begin(&c, fence.as_ref()).await?;
            match f(c.clone()).await {
                Ok(v) => {
                    c.batch_execute("COMMIT").await?;
                    Ok(v)
                }
                Err(e) => {
                    // The body's error says what went wrong; a failed rollback adds
                    // nothing (the connection is then broken and the pool drops it).
                    let _ = c.batch_execute("ROLLBACK").await;
                    Err(e)
                }
            }
        });
        self.explained(written)
    }

    /// `result`, its error explained by the fence (see [`Fence::explain`]).
    fn explained<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match &self.fence {
            Some(f) => result.map_err(|e| f.explain(e)),
            None => result,
        }
    }

    /// Runs one write statement (see [`PgStore::with_write`]). The parameters are
    /// owned because the statement runs on the store's own runtime, not the caller's
    /// stack.
    fn execute(&self, sql: &'static str, params: Vec<Param>) -> Result<(), StoreError> {
        self.with_write(move |c| async move {
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            c.execute(sql, &refs).await?;
            Ok(())
        })
    }
}

impl PgStore {
    /// Runs `f` with every store call it makes in one transaction on one pooled
    /// connection ([`PgStore::with_conn`] routes them there); committed when `f`
    /// succeeds, rolled back when it fails (its error is returned): what
    /// [`GroupStore::in_group`] runs. Groups do not nest (neither do SQLite's).
    pub fn group<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&mut PgStore) -> Result<T, E>,
    ) -> Result<T, E> {
        if self.group.is_some() {
            return Err(E::from(StoreError::PgNestedGroup));
        }
        let fence = self.fence.clone();
        let c: Conn = self
            .run(|pool| async move {
                let c = pool.get().await?;
                begin(&c, fence.as_ref()).await?;
                Ok(Arc::new(c))
            })
            .map_err(E::from)?;
        self.group = Some(c.clone());
        // Cleared even if `f` panics, so the store is not left routing calls to a
        // connection whose transaction nobody will finish.
        struct Ungroup<'a>(&'a mut PgStore);
        impl Drop for Ungroup<'_> {
            fn drop(&mut self) {
                self.0.group = None;
            }
        }
        let result = {
            let guard = Ungroup(self);
            f(&mut *guard.0)
        };
        let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = self.run(move |_| async move {
            c.batch_execute(end).await?;
            Ok(())
        });
        match (result, self.explained(ended)) {
            (Ok(v), Ok(())) => Ok(v),
            // The commit failed: nothing was stored.
            (Ok(_), Err(e)) => Err(E::from(e)),
            // The body's error, whatever the rollback said.
            (Err(e), _) => Err(e),
        }
    }
}

/// Why a group's body asked for a rollback: only to carry that through
/// [`PgStore::group`], which rolls back on any `Err`.
struct Rollback(Option<StoreError>);

impl From<StoreError> for Rollback {
    fn from(e: StoreError) -> Self {
        Rollback(Some(e))
    }
}

impl GroupStore for PgStore {
    /// [`PgStore::group`] for the `Backend` interface: the body's calls share one
    /// connection's transaction, committed when it returns `true`.
    fn in_group(&mut self, body: &mut GroupBody<'_>) -> Result<(), StoreError> {
        let done = self.group(|s| if body(s) { Ok(()) } else { Err(Rollback(None)) });
        match done {
            Ok(()) | Err(Rollback(None)) => Ok(()),
            Err(Rollback(Some(e))) => Err(e),
        }
    }
}

/// Opens a write transaction on `c`: fenced (the epoch checked, see [`Fence::begin`])
/// when the store has a fence.
async fn begin(c: &tokio_postgres::Client, fence: Option<&Fence>) -> Result<(), StoreError> {
    match fence {
        Some(f) => f.begin(c).await,
        None => Ok(c.batch_execute("BEGIN").await?),
    }
}

/// An owned statement parameter (see [`PgStore::execute`]).
type Param = Box<dyn ToSql + Sync + Send>;

async fn current_version(c: &tokio_postgres::Client) -> Result<i64, StoreError> {
    let exists: bool = c
        .query_one("SELECT to_regclass('feedwerk_schema') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(c.query_one("SELECT version FROM feedwerk_schema", &[])
        .await?
        .get(0))
}

/// Brings the database to the newest schema, each migration in its own transaction
/// with the version it reaches, under an advisory lock.
async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut c = pool.get().await?;
    let tx = c.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    // Not `IF NOT EXISTS`: on an existing table the server answers with a NOTICE,
    // which tokio-postgres logs at INFO on every connect of every command.
    let exists: bool = tx
        .query_one("SELECT to_regclass('feedwerk_schema') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        tx.batch_execute("CREATE TABLE feedwerk_schema (version BIGINT NOT NULL)")
            .await?;
    }
    let version = match tx
        .query_opt("SELECT version FROM feedwerk_schema", &[])
        .await?
    {
        Some(row) => row.get::<_, i64>(0),
        None => {
            tx.execute("INSERT INTO feedwerk_schema (version) VALUES (0)", &[])
                .await?;
            0
        }
    };
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::PgNewerSchema { version, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "UPDATE feedwerk_schema SET version = $1",
            &[&(i as i64 + 1)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

impl MetaStore for PgStore {
    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.with_conn(|c| async move {
            let row = c
                .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            vec![Box::new(key.to_owned()), Box::new(value.to_owned())],
        )
    }

    fn note_unpublished_changes(&self) -> Result<(), StoreError> {
        self.set_meta(UNPUBLISHED, "1")
    }
}

/// The `sources` columns [`state_from_row`] reads, in its order.
const STATE_COLUMNS: &str = "id, url, etag, last_modified, last_attempt, last_success, \
     last_status, last_error, consecutive_failures, next_fetch, moved_to, gone, fetch_count";

fn state_from_row(r: &tokio_postgres::Row) -> SourceState {
    SourceState {
        id: r.get(0),
        url: r.get(1),
        etag: r.get(2),
        last_modified: r.get(3),
        last_attempt: r.get::<_, Option<i64>>(4).map(from_ts),
        last_success: r.get::<_, Option<i64>>(5).map(from_ts),
        last_status: r.get(6),
        last_error: r.get(7),
        consecutive_failures: u32::try_from(r.get::<_, i64>(8)).unwrap_or(u32::MAX),
        next_fetch: r.get::<_, Option<i64>>(9).map(from_ts),
        moved_to: r.get(10),
        gone: r.get(11),
        fetch_count: r.get(12),
        items_held: 0,
    }
}

impl SourceStore for PgStore {
    fn source_state(&self, id: &SourceId) -> Result<SourceState, StoreError> {
        let id = id.to_string();
        self.with_conn(|c| async move {
            let held: i64 = c
                .query_one(
                    "SELECT count(*) FROM items WHERE source_id = $1 AND NOT withdrawn",
                    &[&id],
                )
                .await?
                .get(0);
            let row = c
                .query_opt(
                    &format!("SELECT {STATE_COLUMNS} FROM sources WHERE id = $1"),
                    &[&id],
                )
                .await?;
            let mut s = row
                .as_ref()
                .map(state_from_row)
                .unwrap_or_else(|| SourceState {
                    id,
                    ..SourceState::default()
                });
            s.items_held = held;
            Ok(s)
        })
    }

    fn source_states(&self) -> Result<HashMap<String, SourceState>, StoreError> {
        self.with_conn(|c| async move {
            let mut out = HashMap::new();
            for row in c
                .query(&format!("SELECT {STATE_COLUMNS} FROM sources"), &[])
                .await?
            {
                let st = state_from_row(&row);
                out.insert(st.id.clone(), st);
            }
            let held = c
                .query(
                    "SELECT source_id, count(*) FROM items WHERE NOT withdrawn GROUP BY source_id",
                    &[],
                )
                .await?;
            for row in held {
                let id: String = row.get(0);
                out.entry(id.clone())
                    .or_insert_with(|| SourceState {
                        id,
                        ..SourceState::default()
                    })
                    .items_held = row.get(1);
            }
            Ok(out)
        })
    }

    fn save_source_states(&mut self, states: &[SourceState]) -> Result<(), StoreError> {
        let states = states.to_vec();
        self.with_write(|c| async move {
            let stmt = c
                .prepare(
                    "INSERT INTO sources (id, url, etag, last_modified, last_attempt, last_success,
                         last_status, last_error, consecutive_failures, next_fetch, moved_to, gone,
                         fetch_count)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                     ON CONFLICT (id) DO UPDATE SET url = $2, etag = $3, last_modified = $4,
                         last_attempt = $5, last_success = $6, last_status = $7, last_error = $8,
                         consecutive_failures = $9, next_fetch = $10, moved_to = $11, gone = $12,
                         fetch_count = $13",
                )
                .await?;
            for s in &states {
                c.execute(
                    &stmt,
                    &[
                        &s.id,
                        &s.url,
                        &s.etag,
                        &s.last_modified,
                        &s.last_attempt.map(ts),
                        &s.last_success.map(ts),
                        &s.last_status,
                        &s.last_error,
                        &i64::from(s.consecutive_failures),
                        &s.next_fetch.map(ts),
                        &s.moved_to,
                        &s.gone,
                        &s.fetch_count,
                    ],
                )
                .await?;
            }
            Ok(())
        })
    }

    fn reading_fingerprints(&self) -> Result<HashMap<String, String>, StoreError> {
        self.with_conn(|c| async move {
            let rows = c
                .query("SELECT source_id, fingerprint FROM source_reading", &[])
                .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn set_reading_fingerprint(&self, source: &str, fingerprint: &str) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO source_reading (source_id, fingerprint) VALUES ($1, $2)
             ON CONFLICT (source_id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint",
            vec![
                Box::new(source.to_owned()),
                Box::new(fingerprint.to_owned()),
            ],
        )
    }
}

impl OutputStore for PgStore {
    fn output_state(&self, path: &str) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
        let path = path.to_owned();
        self.with_conn(|c| async move {
            let row = c
                .query_opt(
                    "SELECT content_hash, last_modified FROM outputs WHERE path = $1",
                    &[&path],
                )
                .await?;
            Ok(row.map(|r| (r.get(0), from_ts(r.get(1)))))
        })
    }

    fn output_dates(&self) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
        self.with_conn(|c| async move {
            let rows = c
                .query("SELECT path, last_modified FROM outputs", &[])
                .await?;
            Ok(rows.iter().map(|r| (r.get(0), from_ts(r.get(1)))).collect())
        })
    }

    /// `Store::output_states_in`: one query over a byte-wise index range of the
    /// paths under `dir/` (a publish after one change must not read every archive
    /// page's row, nor make a round trip per document).
    fn output_states_in(&self, dir: &str) -> Result<HashMap<String, OutputState>, StoreError> {
        debug_assert!(!dir.is_empty() && !dir.ends_with('/'));
        // Every path under `dir/` sorts between `dir/` and `dir0` ('0' follows '/').
        let (low, high) = (format!("{dir}/"), format!("{dir}0"));
        let name_at = low.chars().count() as i32 + 1; // substr counts characters
        self.with_conn(move |c| async move {
            let rows = c
                .query(
                    "SELECT substr(path, $3), content_hash, last_modified FROM outputs
                     WHERE path COLLATE \"C\" > $1 AND path COLLATE \"C\" < $2
                       AND strpos(substr(path, $3), '/') = 0",
                    &[&low, &high, &name_at],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| {
                    let state = OutputState {
                        hash: r.get(1),
                        last_modified: from_ts(r.get(2)),
                    };
                    (r.get(0), state)
                })
                .collect())
        })
    }

    fn save_output_state(
        &self,
        path: &str,
        hash: &str,
        last_modified: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO outputs (path, content_hash, last_modified) VALUES ($1, $2, $3)
             ON CONFLICT (path) DO UPDATE SET content_hash = EXCLUDED.content_hash,
                 last_modified = EXCLUDED.last_modified",
            vec![
                Box::new(path.to_owned()),
                Box::new(hash.to_owned()),
                Box::new(ts(last_modified)),
            ],
        )
    }
}
