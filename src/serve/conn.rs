//! The connection loop: accepting from the listening socket, the deadlines every
//! connection lives under, the cap on open connections and which connection gives way
//! when the cap is reached. What a request is answered is [`super`]'s; this module
//! decides only how long a connection may take and when it ends, and counts why.
//!
//! A connection is always in one of three phases:
//! - reading a request head: `header_timeout` from accepting it, or from the first
//!   byte of its next request (slowloris);
//! - answering: no read deadline; a write that makes no progress for `write_timeout`
//!   ends it (a client that does not read);
//! - idle between requests (keep-alive): `idle_timeout`.
//!
//! hyper's own `header_read_timeout` is not used: its clock starts when the previous
//! response is written, so it would cut idle keep-alive connections at the header
//! timeout, and hyper has no write timeout. The deadlines live in [`Guarded`], the
//! socket wrapper hyper reads and writes through.
//!
//! Shedding: when `max_connections` are open, a new connection closes the oldest idle
//! one, else the one that has waited longest for its request head. Connections being
//! answered are never cut; only when every open connection is being answered is the
//! new one refused. The accept loop never waits for room, and running out of file
//! descriptors (`EMFILE`) sheds a connection and retries within milliseconds.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::config::ServerLimits;
use crate::metrics::Telemetry;

/// Why a connection ended: the `reason` label of
/// `feedwerk_http_connections_closed_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum CloseReason {
    /// The client closed it, or the last answer said `Connection: close`.
    Done = 1,
    HeaderTimeout,
    IdleTimeout,
    WriteTimeout,
    /// Closed to make room for a new connection.
    Shed,
    /// Accepted and closed at once: every open connection was being answered.
    Refused,
    /// hyper could not parse the request (it answered `400`).
    BadRequest,
    /// The request head was over `max_header_bytes` or `max_headers` (`431`).
    HeadTooLarge,
    /// A socket error: the client reset the connection, most likely.
    Error,
    Shutdown,
}

impl CloseReason {
    const ALL: [CloseReason; 10] = [
        CloseReason::Done,
        CloseReason::HeaderTimeout,
        CloseReason::IdleTimeout,
        CloseReason::WriteTimeout,
        CloseReason::Shed,
        CloseReason::Refused,
        CloseReason::BadRequest,
        CloseReason::HeadTooLarge,
        CloseReason::Error,
        CloseReason::Shutdown,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            CloseReason::Done => "done",
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::WriteTimeout => "write_timeout",
            CloseReason::Shed => "shed",
            CloseReason::Refused => "refused",
            CloseReason::BadRequest => "bad_request",
            CloseReason::HeadTooLarge => "head_too_large",
            CloseReason::Error => "error",
            CloseReason::Shutdown => "shutdown",
        }
    }

    fn from_u8(v: u8) -> Option<CloseReason> {
        CloseReason::ALL.into_iter().find(|r| *r as u8 == v)
    }
}

/// A connection's phase (see the module doc); `GONE` once it is shed or closed.
const HEAD: u8 = 0;
const ANSWERING: u8 = 1;
const IDLE: u8 = 2;
const GONE: u8 = 3;

/// The order in which waiting connections are shed: idle ones first, then those
/// still sending their head; oldest first within each.
fn shed_class(phase: u8) -> Option<u8> {
    match phase {
        IDLE => Some(0),
        HEAD => Some(1),
        _ => None,
    }
}

/// The limits as the server applies them: the config's, with the connection cap
/// resolved against the open-file limit.
#[derive(Debug, Clone)]
pub(super) struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_uri_bytes: usize,
}

impl Limits {
    pub(super) fn resolve(cfg: &ServerLimits) -> Limits {
        let nofile = open_file_limit();
        let auto = auto_cap(nofile);
        let max_connections = cfg.max_connections.unwrap_or(auto);
        match cfg.max_connections {
            Some(n) if n > auto => tracing::warn!(
                "server.max_connections = {n} is more than the open-file limit ({nofile}) leaves room for ({auto}); accepting will fail with `Too many open files` before the cap sheds (raise LimitNOFILE)"
            ),
            Some(n) => tracing::info!("at most {n} HTTP connections (server.max_connections)"),
            None => tracing::info!(
                "at most {auto} HTTP connections (7/8 of the open-file limit {nofile}; set server.max_connections to change)"
            ),
        }
        Limits {
            header_timeout: cfg.header_timeout,
            idle_timeout: cfg.idle_timeout,
            write_timeout: cfg.write_timeout,
            max_connections,
            max_header_bytes: cfg.max_header_bytes,
            max_headers: cfg.max_headers,
            max_uri_bytes: cfg.max_uri_bytes,
        }
    }

    /// hyper's HTTP/1 settings for these limits.
    fn http1(&self) -> hyper::server::conn::http1::Builder {
        let mut b = hyper::server::conn::http1::Builder::new();
        // Our own deadlines (see the module doc); hyper's would also cut idle
        // keep-alive connections at the header timeout.
        b.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(None)
            .max_header_size(self.max_header_bytes)
            // The read buffer bounds what one connection can make us hold: a head
            // fits in it, and no request we accept has a body.
            .max_buf_size(self.max_header_bytes.max(8192));
        if self.max_headers != 100 {
            // hyper keeps 100 headers on the stack; another count allocates per
            // request, so it is only set when asked for.
            b.max_headers(self.max_headers);
        }
        b
    }
}

/// The soft `RLIMIT_NOFILE`: what this process may have open.
fn open_file_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    lim.rlim_cur
}

/// The default cap: 7/8 of the open-file limit, leaving the rest for the store,
/// published files being written or read, and partner fetches.
fn auto_cap(nofile: u64) -> usize {
    let n = nofile.min(1 << 24) as usize;
    (n - n / 8).max(16)
}

/// What one connection shares with the registry and its service: its phase, where
/// it sits in the shedding order, and how it ended.
pub(super) struct Slot {
    registry: Arc<Registry>,
    phase: AtomicU8,
    /// Its key in [`Registry::waiting`] while it is idle or reading a head.
    key: AtomicU64,
    /// The body of the answer in flight has been handed to hyper whole.
    answered: AtomicBool,
    /// Set by whoever decides to end the connection, before it ends.
    reason: AtomicU8,
    shed: Notify,
}

impl Slot {
    /// hyper has read a request head: the connection is being answered.
    pub(super) fn answering(self: &Arc<Slot>) {
        self.answered.store(false, Ordering::Relaxed);
        self.registry.enter(self, ANSWERING);
    }

    /// The answer's body is done (hyper dropped it after taking its last frame).
    pub(super) fn answered(&self) {
        self.answered.store(true, Ordering::Relaxed);
    }

    fn phase(&self) -> u8 {
        self.phase.load(Ordering::Relaxed)
    }

    fn close_reason(&self, r: CloseReason) {
        self.reason.store(r as u8, Ordering::Relaxed);
    }
}

/// Every open connection of the server (all threads): the count, and the waiting
/// ones in shedding order.
pub(super) struct Registry {
    cap: usize,
    open: AtomicUsize,
    next_key: AtomicU64,
    /// (shed class, key) → connection. Keys grow, so the first entry is the one to
    /// shed.
    waiting: Mutex<BTreeMap<(u8, u64), Arc<Slot>>>,
    telemetry: Arc<Telemetry>,
}

impl Registry {
    pub(super) fn new(cap: usize, telemetry: Arc<Telemetry>) -> Arc<Registry> {
        telemetry.connection_cap(cap);
        Arc::new(Registry {
            cap,
            open: AtomicUsize::new(0),
            next_key: AtomicU64::new(0),
            waiting: Mutex::new(BTreeMap::new()),
            telemetry,
        })
    }

    fn waiting(&self) -> MutexGuard<'_, BTreeMap<(u8, u64), Arc<Slot>>> {
        // Plain data: a panic elsewhere cannot leave it half-changed.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection, reading its first head.
    fn open(self: &Arc<Registry>) -> Arc<Slot> {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.telemetry.connection_opened();
        let slot = Arc::new(Slot {
            registry: self.clone(),
            phase: AtomicU8::new(HEAD),
            key: AtomicU64::new(self.next_key.fetch_add(1, Ordering::Relaxed)),
            answered: AtomicBool::new(false),
            reason: AtomicU8::new(0),
            shed: Notify::new(),
        });
        let class = shed_class(HEAD).expect("a head is waiting");
        let key = slot.key.load(Ordering::Relaxed);
        self.waiting().insert((class, key), slot.clone());
        slot
    }

    /// A connection accepted only to be closed: there is no room for it.
    fn refused(&self) {
        self.telemetry.connection_opened();
        self.telemetry
            .connection_closed(CloseReason::Refused.label());
    }

    fn enter(&self, slot: &Arc<Slot>, to: u8) {
        let mut w = self.waiting();
        self.move_to(&mut w, slot, to);
    }

    fn move_to(&self, w: &mut BTreeMap<(u8, u64), Arc<Slot>>, slot: &Arc<Slot>, to: u8) {
        let from = slot.phase();
        if from == GONE {
            return;
        }
        if let Some(class) = shed_class(from) {
            w.remove(&(class, slot.key.load(Ordering::Relaxed)));
        }
        slot.phase.store(to, Ordering::Relaxed);
        if let Some(class) = shed_class(to) {
            let key = self.next_key.fetch_add(1, Ordering::Relaxed);
            slot.key.store(key, Ordering::Relaxed);
            w.insert((class, key), slot.clone());
        }
    }

    /// Closes the connection first in the shedding order; `false` if every open
    /// connection is being answered.
    fn shed_one(&self) -> bool {
        let victim = {
            let mut w = self.waiting();
            let Some((_, slot)) = w.pop_first() else {
                return false;
            };
            slot.phase.store(GONE, Ordering::Relaxed);
            slot
        };
        victim.close_reason(CloseReason::Shed);
        // A permit is kept if its task is not waiting right now.
        victim.shed.notify_one();
        true
    }

    fn closed(&self, slot: &Slot, reason: CloseReason) {
        {
            let mut w = self.waiting();
            if let Some(class) = shed_class(slot.phase()) {
                w.remove(&(class, slot.key.load(Ordering::Relaxed)));
            }
            slot.phase.store(GONE, Ordering::Relaxed);
        }
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.telemetry.connection_closed(reason.label());
    }
}

/// The socket as hyper sees it: reads and writes pass through, under the deadline
/// of the connection's phase.
pub(super) struct Guarded {
    io: TcpStream,
    slot: Arc<Slot>,
    header_timeout: Duration,
    idle_timeout: Duration,
    write_timeout: Duration,
    /// The end of the head or idle phase.
    read_deadline: Pin<Box<Sleep>>,
    /// The end of a write's wait for the client to read; armed when a write stalls.
    write_deadline: Pin<Box<Sleep>>,
    write_stalled: bool,
    /// Bytes written since the last completed flush: the answer is still going out.
    unflushed: bool,
}

impl Guarded {
    fn new(io: TcpStream, slot: Arc<Slot>, limits: &Limits) -> Guarded {
        let now = Instant::now();
        Guarded {
            io,
            slot,
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            write_timeout: limits.write_timeout,
            read_deadline: Box::pin(tokio::time::sleep_until(now + limits.header_timeout)),
            write_deadline: Box::pin(tokio::time::sleep_until(now + limits.write_timeout)),
            write_stalled: false,
            unflushed: false,
        }
    }

    fn enter(&mut self, phase: u8, timeout: Duration) {
        self.slot.registry.enter(&self.slot, phase);
        self.read_deadline.as_mut().reset(Instant::now() + timeout);
    }

    /// Once the answer in flight is out whole (its body done, every byte flushed),
    /// the connection is idle: its idle deadline starts, polled here so that it
    /// wakes the connection's task even if hyper is already waiting to read.
    fn answer_sent(&mut self, cx: &mut Context<'_>) {
        if self.slot.phase() == ANSWERING
            && self.slot.answered.load(Ordering::Relaxed)
            && !self.unflushed
        {
            self.enter(IDLE, self.idle_timeout);
            let _ = self.read_deadline.as_mut().poll(cx);
        }
    }

    /// Passes a write's result on; a write that waits past `write_timeout` for the
    /// client to make room fails instead.
    fn write_progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.write_stalled = false;
            return r;
        }
        if !self.write_stalled {
            self.write_stalled = true;
            let at = Instant::now() + self.write_timeout;
            self.write_deadline.as_mut().reset(at);
        }
        if self.write_deadline.as_mut().poll(cx).is_ready() {
            self.slot.close_reason(CloseReason::WriteTimeout);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for server.write_timeout",
            )));
        }
        Poll::Pending
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.answer_sent(cx);
        let phase = this.slot.phase();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if phase == IDLE && buf.filled().len() > before {
                    this.enter(HEAD, this.header_timeout);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if phase == HEAD || phase == IDLE => {
                if this.read_deadline.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                if phase == IDLE {
                    this.slot.close_reason(CloseReason::IdleTimeout);
                    // End of stream between requests: hyper closes quietly.
                    return Poll::Ready(Ok(()));
                }
                this.slot.close_reason(CloseReason::HeaderTimeout);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "request head not complete within server.header_timeout",
                )))
            }
            other => other,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.unflushed = true;
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        this.write_progress(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.unflushed = true;
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.write_progress(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_flush(cx);
        if matches!(r, Poll::Ready(Ok(()))) {
            this.unflushed = false;
            this.answer_sent(cx);
        }
        this.write_progress(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Why hyper ended a connection, when no deadline or shedding said so first.
fn classify(r: &Result<(), hyper::Error>) -> CloseReason {
    match r {
        Ok(()) => CloseReason::Done,
        Err(e) if e.is_parse_too_large() => CloseReason::HeadTooLarge,
        Err(e) if e.is_parse() || e.is_parse_status() => CloseReason::BadRequest,
        // The client went away mid-request.
        Err(e) if e.is_incomplete_message() => CloseReason::Done,
        Err(_) => CloseReason::Error,
    }
}

/// Accepts connections until `shutdown`, then waits until this thread's open
/// connections have finished their request in flight and closed.
pub(super) async fn accept(
    listener: tokio::net::TcpListener,
    service: super::Connection,
    registry: Arc<Registry>,
    limits: Arc<Limits>,
    shutdown: CancellationToken,
) {
    let http1 = limits.http1();
    // Each connection task holds a receiver; all dropped = all connections closed.
    let (open_tx, open_rx) = tokio::sync::watch::channel(());
    let mut last_complaint: Option<Instant> = None;
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                ) => continue,
                Err(e) => {
                    // Out of file descriptors, most likely (EMFILE, ENFILE): the
                    // connection waits in the kernel's queue. Free a descriptor and
                    // try again at once, rather than stall everyone behind it.
                    registry.telemetry.accept_failed();
                    if last_complaint.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::error!(error = %e, "cannot accept a connection; closing the oldest waiting one to make room");
                        last_complaint = Some(Instant::now());
                    }
                    // A shed connection closes in its own task, maybe on another
                    // thread: give it a moment before shedding the next.
                    let pause = if registry.shed_one() { 1 } else { 10 };
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        if registry.open.load(Ordering::Relaxed) >= registry.cap && !registry.shed_one() {
            // Every open connection is being answered; they end within their
            // write timeout.
            registry.refused();
            continue;
        }
        let slot = registry.open();
        // Responses are written whole; Nagle would only delay the last segment.
        let _ = stream.set_nodelay(true);
        let io = Guarded::new(stream, slot.clone(), &limits);
        let service = service.on(slot.clone());
        let served = http1.serve_connection(hyper_util::rt::TokioIo::new(io), service);
        let shutdown = shutdown.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            tokio::pin!(served);
            let reason = tokio::select! {
                r = served.as_mut() => classify(&r),
                _ = slot.shed.notified() => CloseReason::Shed,
                _ = shutdown.cancelled() => {
                    served.as_mut().graceful_shutdown();
                    let _ = served.await;
                    CloseReason::Shutdown
                }
            };
            // A deadline or shedding, when one ended it, is the reason.
            let reason =
                CloseReason::from_u8(slot.reason.load(Ordering::Relaxed)).unwrap_or(reason);
            slot.registry.closed(&slot, reason);
            drop(open);
        });
    }
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
}

/// The listening socket, with an accept queue of `backlog` (std and tokio ask for
/// 128 and 1024; a burst of connections beyond the queue has its SYNs dropped, and
/// those clients retry only after a second).
pub fn bind(addr: std::net::SocketAddr, backlog: u32) -> io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_an_eighth_of_the_descriptors() {
        assert_eq!(auto_cap(1024), 896);
        assert_eq!(auto_cap(8192), 7168);
        assert_eq!(auto_cap(10), 16, "never below 16");
    }

    #[test]
    fn idle_connections_are_shed_before_heads_and_oldest_first_and_answering_never() {
        let r = Registry::new(3, Arc::default());
        let head_old = r.open();
        let idle_old = r.open();
        let answering = r.open();
        let idle_new = r.open();
        for s in [&idle_old, &answering, &idle_new] {
            s.answering();
        }
        r.enter(&idle_old, IDLE);
        r.enter(&idle_new, IDLE);
        let mut order = Vec::new();
        loop {
            // Its own statement: the lock is released before `shed_one` takes it.
            let next = r.waiting().first_key_value().map(|(_, s)| s.clone());
            let Some(next) = next else { break };
            assert!(r.shed_one());
            assert_eq!(next.phase(), GONE);
            assert_eq!(next.reason.load(Ordering::Relaxed), CloseReason::Shed as u8);
            order.push(Arc::as_ptr(&next));
        }
        assert_eq!(
            order,
            [&idle_old, &idle_new, &head_old].map(Arc::as_ptr),
            "oldest idle, newer idle, then the head"
        );
        assert_eq!(answering.phase(), ANSWERING);
        assert!(!r.shed_one(), "a connection being answered is never shed");
        r.enter(&head_old, HEAD);
        assert_eq!(head_old.phase(), GONE, "a shed connection stays gone");
    }
}
