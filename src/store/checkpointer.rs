//! WAL checkpoints on a thread of their own, so the writer never waits for one.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold: the
//! writing thread copies the WAL's pages back into the store file and waits for two
//! `fsync`s (the WAL, then the file). On a cold build of 300 large sources that was 31
//! checkpoints, about 2 s of the commit thread's CPU and 4.4 s of its wall time in
//! `fsync`, on the thread every stored item waits for. Here the writer's WAL hook only
//! wakes a second connection, which runs a PASSIVE checkpoint: it takes no lock the
//! writer needs, so the writer goes on appending while the pages are copied.
//!
//! A passive checkpoint copies only the frames committed when it began; SQLite starts
//! the WAL over from its beginning (so the file stops growing) at the first write after
//! one that copied every frame. A writer that never pauses could outrun that, so past
//! [`WAL_HARD_LIMIT`] pages the writer checkpoints inline as before, copying what the
//! background pass has not (usually little). Durability is SQLite's own either way:
//! the same checkpoint, with the same syncs, on another connection.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use rusqlite::wal::CheckpointMode;
use rusqlite::Connection;

/// WAL pages past which a checkpoint is started in the background (the old automatic
/// threshold: ~32 MiB of WAL; a smaller one copies hot index pages back more often).
pub(super) const WAL_SOFT_LIMIT: i32 = 8000;
/// WAL pages past which the writer checkpoints inline (~128 MiB of WAL).
pub(super) const WAL_HARD_LIMIT: i32 = 4 * WAL_SOFT_LIMIT;

#[derive(Default)]
struct State {
    /// The writer committed past the soft limit since the last pass began.
    wanted: bool,
    stop: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The checkpoint thread of one store file; stopped (and its connection closed) when
/// dropped, so the writer's connection is the last one and removes the WAL on close.
pub(super) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a second connection to `path` for checkpoints and hands the WAL of the
    /// writer `conn` to it. Without one (the thread or the connection cannot be had),
    /// the writer keeps SQLite's automatic checkpoints: slower, never wrong.
    pub(super) fn start(path: &Path, conn: &mut Connection) -> Option<Checkpointer> {
        Checkpointer::with_limits(path, conn, WAL_SOFT_LIMIT, WAL_HARD_LIMIT)
    }

    fn with_limits(
        path: &Path,
        conn: &mut Connection,
        soft: i32,
        hard: i32,
    ) -> Option<Checkpointer> {
        let other = Connection::open(path)
            .map_err(|e| stay_inline(&e, "no checkpoint connection"))
            .ok()?;
        // The checkpoint's own syncs are those of `synchronous = NORMAL`: the WAL
        // before copying, the store file after.
        other
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| stay_inline(&e, "checkpoint connection not set up"))
            .ok()?;
        let shared = Arc::new(Shared::default());
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || run(&other, &worker))
            .map_err(|e| stay_inline(&e, "no checkpoint thread"))
            .ok()?;
        let hooked = Arc::clone(&shared);
        let installed = conn.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages| {
            if pages >= hard {
                // BUSY while the background pass runs: the next commit tries again.
                let _ = wal.checkpoint();
            } else if pages >= soft {
                hooked.lock().wanted = true;
                hooked.wake.notify_one();
            }
            Ok(())
        }));
        let checkpointer = Checkpointer {
            shared,
            thread: Some(thread),
        };
        installed
            .map_err(|e| stay_inline(&e, "WAL hook not installed"))
            .ok()?;
        Some(checkpointer)
    }
}

/// Logs why a store keeps SQLite's automatic checkpoints.
fn stay_inline(e: &dyn std::fmt::Display, why: &str) {
    tracing::debug!(error = %e, "{why}; checkpoints stay inline");
}

/// Waits for the writer's call and checkpoints, until told to stop.
fn run(conn: &Connection, shared: &Shared) {
    loop {
        {
            let mut state = shared.lock();
            while !state.wanted && !state.stop {
                state = shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if state.stop {
                return;
            }
            state.wanted = false;
        }
        // BUSY: the writer's inline checkpoint holds the checkpoint lock; the WAL is
        // being copied either way. Any other failure leaves the frames in the WAL,
        // where readers find them and the next pass (or the writer) copies them.
        match conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
            Ok(_) => {}
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {}
            Err(e) => tracing::warn!(error = %e, "background WAL checkpoint failed"),
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn size(path: &Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }

    /// Commits `pages` pages of ~4 KB blobs in one transaction.
    fn commit(conn: &Connection, pages: usize) {
        conn.execute_batch("BEGIN").unwrap();
        for _ in 0..pages {
            conn.execute("INSERT INTO t VALUES (randomblob(4000))", [])
                .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
    }

    /// Past the soft limit, the WAL reaches the store file with the writer idle and
    /// below the hard limit, so by the background thread alone; a long burst of commits
    /// keeps the WAL far below what it writes (it starts over); the last connection to
    /// close removes it, and the store is whole.
    #[test]
    fn copies_the_wal_off_the_writer_and_keeps_it_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.sqlite");
        let wal = dir.path().join("store.sqlite-wal");
        let mut conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE t (b BLOB)").unwrap();
        let (soft, hard) = (40, 400);
        let page = 4096 + 24;
        let checkpointer = Checkpointer::with_limits(&path, &mut conn, soft, hard).unwrap();
        let before = size(&path);
        commit(&conn, 50);
        assert!(size(&wal) < hard as u64 * page);
        let deadline = Instant::now() + Duration::from_secs(20);
        while size(&path) <= before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            size(&path) > before,
            "no page reached the store file from the background"
        );

        let commits = 300;
        let mut largest_wal = 0;
        for _ in 0..commits {
            commit(&conn, 20);
            largest_wal = largest_wal.max(size(&wal));
        }
        let written = (commits * 20) as u64 * page;
        assert!(
            largest_wal < written / 2,
            "the WAL grew to {largest_wal} bytes of the {written} written: it never started over"
        );
        drop(checkpointer);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 50 + commits as i64 * 20);
        drop(conn);
        assert!(!wal.exists(), "the WAL outlived the last connection");
        let check = Connection::open(&path).unwrap();
        let ok: String = check
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }
}
