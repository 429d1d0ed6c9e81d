//! Which of several `feedwerk run` processes on one database leads (issue 20), and the
//! fence that keeps an ex-leader's writes out.
//!
//! [`Leadership`] campaigns on a connection of its own, never one from the pool (a
//! pool would hand the session, and with it the lock, to other work, or recycle it):
//! it takes the session advisory lock [`LEADER_LOCK`] with `pg_try_advisory_lock`,
//! retrying at an interval while another process holds it. Having it, it bumps the
//! epoch row (`feedwerk_leader`) and leads under that epoch until its connection is
//! lost, a probe fails or is late, or a write finds the epoch moved on; then it gives
//! leadership up (closing the connection, which releases the lock) and campaigns
//! again as a standby.
//!
//! The lock says who *should* lead; the epoch decides whose writes count. Every write
//! transaction of a fenced store ([`Fence`], taken by [`super::PgStore::with_fence`])
//! begins by reading the epoch `FOR SHARE` and is refused ([`StoreError::Fenced`])
//! unless it is the one its leadership was granted. The new leader's bump needs the row
//! exclusively, so it waits for write transactions begun under the old epoch, and none
//! begun after it pass the check: old writes all come before new ones, whatever the
//! clocks say (no clock is used). A transaction of the old epoch still open after
//! [`Timing::lock_wait`] belongs to a paused or cut-off ex-leader: the new leader ends
//! its session, and what it wrote rolls back.
//!
//! How fast loss is noticed follows from `store.takeover` ([`Timing`]): a standby tries
//! the lock every fifth of it; the leader probes as often and gives up when a probe
//! fails or takes longer; TCP keepalives and `tcp_user_timeout` are set on both ends
//! of the leader's connection (the server's side per session), so a server cut off
//! from its leader drops the session, and the lock, within half of it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, SimpleQueryMessage};
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::CancellationToken;

use super::tls::PgTarget;
use crate::store::StoreError;

/// The session advisory lock the leader holds ("feedlead"; the migration lock is
/// another key).
pub const LEADER_LOCK: i64 = 0x6665_6564_6c65_6164;

/// The `application_name` of the leadership connection, so an operator (or a test)
/// can find it in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "feedwerk leader";

/// What this process is now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Not leading: serving, and trying the lock at an interval.
    Standby,
    /// Leading, with writes fenced by `epoch`.
    Leader { epoch: i64 },
}

/// The intervals `store.takeover` implies.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How soon a standby must lead after the leader's connection is gone.
    pub takeover: Duration,
}

impl Timing {
    /// How often a standby tries the lock (and waits before reconnecting).
    pub fn retry(&self) -> Duration {
        self.takeover / 5
    }

    /// How often the leader checks its connection, and how long a check may take.
    pub fn probe(&self) -> Duration {
        self.takeover / 5
    }

    /// How long a new leader waits for write transactions of the old epoch before it
    /// ends their sessions.
    pub fn lock_wait(&self) -> Duration {
        self.takeover / 5
    }

    /// How long unacknowledged data may stay on the leader's connection before either
    /// end drops it (`tcp_user_timeout`; the keepalives add up to the same).
    pub fn drop_after(&self) -> Duration {
        self.takeover / 2
    }
}

/// What a [`Fence`] and its [`Leadership`] share.
#[derive(Default)]
struct Shared {
    /// The epoch this process leads under; 0 while it does not lead.
    current: AtomicI64,
    /// A write found the epoch moved on: the leadership must give up.
    refused: Notify,
}

/// The epoch a store's writes are made under (see the module doc). A fence is for one
/// term: once the process stops leading under that epoch it refuses every write, even
/// if the same process leads again later (under a newer epoch, with a new fence).
#[derive(Clone)]
pub struct Fence {
    epoch: i64,
    shared: Arc<Shared>,
}

impl Fence {
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// Whether this process still leads under the fence's epoch, as far as it knows.
    pub(super) fn check_local(&self) -> Result<(), StoreError> {
        let current = self.shared.current.load(Ordering::SeqCst);
        if current == self.epoch {
            return Ok(());
        }
        Err(StoreError::Fenced {
            held: self.epoch,
            reason: if current == 0 {
                "this process no longer leads (its leader connection was lost)".into()
            } else {
                format!("this process leads again, under epoch {current}")
            },
        })
    }

    /// Opens a write transaction on `c` that holds the epoch row `FOR SHARE` (one round
    /// trip), or refuses it: by the local check first, then by the database's epoch.
    pub(super) async fn begin(&self, c: &Client) -> Result<(), StoreError> {
        self.check_local()?;
        let answer = c
            .simple_query("BEGIN; SELECT epoch FROM feedwerk_leader FOR SHARE")
            .await?;
        let db = answer.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse::<i64>().ok()),
            _ => None,
        });
        if db == Some(self.epoch) {
            return Ok(());
        }
        // Nothing was written yet; a failed rollback leaves a broken connection, which
        // the pool drops.
        let _ = c.batch_execute("ROLLBACK").await;
        Err(self.refuse(db))
    }

    /// The error for a write the database's epoch `db` refused; tells the leadership
    /// to give up, if it still leads under this fence's epoch.
    fn refuse(&self, db: Option<i64>) -> StoreError {
        if self.shared.current.load(Ordering::SeqCst) == self.epoch {
            self.shared.refused.notify_one();
        }
        StoreError::Fenced {
            held: self.epoch,
            reason: match db {
                Some(e) => format!("the database is at epoch {e}: another feedwerk has taken over"),
                None => "the database has no leadership row (feedwerk_leader)".into(),
            },
        }
    }

    /// `e`, or the fence's refusal when the process stopped leading meanwhile (a write
    /// whose session the new leader ended fails with a connection error; this says why).
    pub(super) fn explain(&self, e: StoreError) -> StoreError {
        match self.check_local() {
            Err(fenced) if !matches!(e, StoreError::Fenced { .. }) => fenced,
            _ => e,
        }
    }
}

/// This process's part in the election (see the module doc); campaigns from
/// [`Leadership::start`] until dropped. Dropping it gives leadership up.
pub struct Leadership {
    /// Drives the campaign; `None` only while being dropped.
    runtime: Option<tokio::runtime::Runtime>,
    shared: Arc<Shared>,
    role: watch::Receiver<Role>,
    stop: CancellationToken,
}

impl Drop for Leadership {
    fn drop(&mut self) {
        // Writes stop at once; the campaign's connection closes with its runtime.
        self.shared.current.store(0, Ordering::SeqCst);
        self.stop.cancel();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Leadership {
    /// Starts campaigning on `target`'s database (which must be migrated: the epoch
    /// row is the store's schema), as `holder` (a name for logs and the epoch row).
    /// Fails only on a URL or CA file that cannot be used; an unreachable server is
    /// retried, as a standby.
    pub fn start(
        target: &PgTarget,
        timing: Timing,
        holder: &str,
    ) -> Result<Leadership, StoreError> {
        let (config, tls) = target.resolve()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("feedwerk-leader")
            .enable_all()
            .build()
            .map_err(StoreError::PgRuntime)?;
        let shared = Arc::new(Shared::default());
        let (tx, rx) = watch::channel(Role::Standby);
        let stop = CancellationToken::new();
        let campaign = Campaign {
            config,
            tls,
            shown: target.shown(),
            timing,
            holder: holder.to_owned(),
            shared: shared.clone(),
            role: tx,
            stop: stop.clone(),
        };
        runtime.spawn(campaign.run());
        Ok(Leadership {
            runtime: Some(runtime),
            shared,
            role: rx,
            stop,
        })
    }

    pub fn role(&self) -> Role {
        *self.role.borrow()
    }

    /// Changes of [`Leadership::role`], to wait on.
    pub fn watch(&self) -> watch::Receiver<Role> {
        self.role.clone()
    }

    /// The fence of the current term, while leading.
    pub fn fence(&self) -> Option<Fence> {
        match self.shared.current.load(Ordering::SeqCst) {
            0 => None,
            epoch => Some(Fence {
                epoch,
                shared: self.shared.clone(),
            }),
        }
    }

    /// Blocks until this process leads (its fence) or `timeout` passes (`None`).
    pub fn wait_to_lead(&self, timeout: Duration) -> Option<Fence> {
        let until = std::time::Instant::now() + timeout;
        loop {
            if let Some(f) = self.fence() {
                return Some(f);
            }
            if std::time::Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Why a term ended.
enum TermEnd {
    Stopped,
    ConnectionLost,
    Probe(String),
    Refused,
    Superseded(i64),
}

impl std::fmt::Display for TermEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TermEnd::Stopped => write!(f, "stopped"),
            TermEnd::ConnectionLost => write!(f, "its connection was lost"),
            TermEnd::Probe(e) => write!(f, "its connection check failed: {e}"),
            TermEnd::Refused => write!(f, "a write found a newer epoch"),
            TermEnd::Superseded(e) => write!(f, "the database is at epoch {e}"),
        }
    }
}

/// The campaign task's state.
struct Campaign {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    /// The URL, password masked, for logs.
    shown: String,
    timing: Timing,
    holder: String,
    shared: Arc<Shared>,
    role: watch::Sender<Role>,
    stop: CancellationToken,
}

impl Campaign {
    async fn run(self) {
        while !self.stop.is_cancelled() {
            let mut session = match Session::open(&self).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(store = %self.shown, "leadership: cannot connect: {e}; retrying");
                    self.pause().await;
                    continue;
                }
            };
            let Some(epoch) = session.win(&self).await else {
                continue;
            };
            self.shared.current.store(epoch, Ordering::SeqCst);
            self.role.send_replace(Role::Leader { epoch });
            tracing::info!(epoch, "leadership: this process leads");
            let end = session.hold(&self, epoch).await;
            // Writes stop before anything else: the next one is refused locally.
            self.shared.current.store(0, Ordering::SeqCst);
            self.role.send_replace(Role::Standby);
            match end {
                TermEnd::Stopped => return,
                end => tracing::warn!(epoch, "leadership given up: {end}; standing by"),
            }
            // Closing the connection releases the lock; the standbys, which try it
            // every retry interval, get the first chance at it: an ex-leader whose
            // connection failed is the least likely to keep the next one.
            drop(session);
            self.pause().await;
            self.pause().await;
        }
    }

    /// Waits one retry interval (or until stopped).
    async fn pause(&self) {
        tokio::select! {
            _ = self.stop.cancelled() => {}
            _ = tokio::time::sleep(self.timing.retry()) => {}
        }
    }
}

/// The campaign's own connection and the task driving it.
struct Session {
    client: Client,
    /// Ends when the connection does.
    driver: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // Closes the socket now, not when the server next writes.
        self.driver.abort();
    }
}

/// At least a second, in whole seconds, for the server's keepalive settings.
fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

impl Session {
    async fn open(cx: &Campaign) -> Result<Session, StoreError> {
        let t = cx.timing;
        let mut config = cx.config.clone();
        config
            .application_name(APPLICATION_NAME)
            .connect_timeout(t.drop_after())
            .keepalives(true)
            // The kernel takes whole seconds, at least one.
            .keepalives_idle(Duration::from_secs(secs(t.probe())))
            .keepalives_interval(Duration::from_secs(secs(t.probe() / 2)))
            .keepalives_retries(3)
            .tcp_user_timeout(t.drop_after());
        let (client, connection) = config.connect(cx.tls.clone()).await?;
        let driver = tokio::spawn(async move {
            // The error is the connection's end; the campaign sees that by the task
            // ending.
            let _ = connection.await;
        });
        // The server's end of this session, for a leader cut off from it: it must drop
        // the session (and the lock) rather than keep it for hours.
        let settings = format!(
            "SET tcp_keepalives_idle = {}; SET tcp_keepalives_interval = {}; \
             SET tcp_keepalives_count = 3; SET tcp_user_timeout = {}; \
             SET lock_timeout = {}; SET statement_timeout = {}",
            secs(t.probe()),
            secs(t.probe() / 2),
            t.drop_after().as_millis(),
            t.lock_wait().as_millis().max(1),
            t.drop_after().as_millis().max(1),
        );
        let session = Session { client, driver };
        session.client.batch_execute(&settings).await?;
        Ok(session)
    }

    /// Tries the lock every retry interval until it is had (then bumps the epoch and
    /// returns it), or the connection is lost or the campaign stopped (`None`).
    async fn win(&mut self, cx: &Campaign) -> Option<i64> {
        loop {
            let tried = tokio::time::timeout(
                cx.timing.drop_after(),
                self.client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK]),
            )
            .await;
            match tried {
                Ok(Ok(row)) if row.get::<_, bool>(0) => {
                    return match self.bump(cx).await {
                        Ok(epoch) => Some(epoch),
                        Err(e) => {
                            tracing::warn!(
                                "leadership: had the lock but cannot bump the epoch: {e}"
                            );
                            None
                        }
                    };
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!("leadership: trying the lock failed: {e}");
                    return None;
                }
                Err(_) => return None,
            }
            tokio::select! {
                _ = cx.stop.cancelled() => return None,
                _ = &mut self.driver => return None,
                _ = tokio::time::sleep(cx.timing.retry()) => {}
            }
        }
    }

    /// Starts a term: the epoch row moves on, once every write transaction of the old
    /// epoch has ended; those still open after the session's `lock_timeout` are ended
    /// by terminating their sessions (see the module doc).
    async fn bump(&self, cx: &Campaign) -> Result<i64, StoreError> {
        let mut attempts = 0;
        loop {
            let bumped = self
                .client
                .query_one(
                    "UPDATE feedwerk_leader SET epoch = epoch + 1, holder = $1,
                         since = extract(epoch FROM now())::bigint
                     RETURNING epoch",
                    &[&cx.holder],
                )
                .await;
            match bumped {
                Ok(row) => return Ok(row.get(0)),
                Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) && attempts < 5 => {
                    attempts += 1;
                    let ended = self
                        .client
                        .query(
                            "SELECT pid, pg_terminate_backend(pid) FROM pg_locks
                             WHERE relation = 'feedwerk_leader'::regclass
                               AND mode = 'RowShareLock' AND granted
                               AND pid <> pg_backend_pid()",
                            &[],
                        )
                        .await?;
                    let pids: Vec<i32> = ended.iter().map(|r| r.get(0)).collect();
                    tracing::warn!(
                        ?pids,
                        "leadership: writes of the previous epoch still open after {:?}; ended their sessions",
                        cx.timing.lock_wait()
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Leads under `epoch` until the term ends; says why.
    async fn hold(&mut self, cx: &Campaign, epoch: i64) -> TermEnd {
        loop {
            tokio::select! {
                _ = cx.stop.cancelled() => return TermEnd::Stopped,
                _ = &mut self.driver => return TermEnd::ConnectionLost,
                _ = cx.shared.refused.notified() => return TermEnd::Refused,
                _ = tokio::time::sleep(cx.timing.probe()) => {}
            }
            let probe = tokio::time::timeout(
                cx.timing.probe(),
                self.client
                    .query_one("SELECT epoch FROM feedwerk_leader", &[]),
            )
            .await;
            match probe {
                Ok(Ok(row)) if row.get::<_, i64>(0) == epoch => {}
                Ok(Ok(row)) => return TermEnd::Superseded(row.get(0)),
                Ok(Err(e)) => return TermEnd::Probe(e.to_string()),
                Err(_) => {
                    return TermEnd::Probe(format!("no answer within {:?}", cx.timing.probe()))
                }
            }
        }
    }
}
