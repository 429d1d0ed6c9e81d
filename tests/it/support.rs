//! Helpers shared by the integration tests: a scratch project on disk, the real
//! `feedwerk` binary, a small HTTP server on 127.0.0.1 that tests program route by
//! route (with fault injection), and the switch for interop clients.
//!
//! Interop clients (feedparser, jing, newsboat, sfeed, chromium) are optional on a
//! developer's machine: a missing one prints `SKIP` and the test returns. With
//! `FEEDWERK_REQUIRE_INTEROP=1` (set by `.ci/run`) a missing client fails the test.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// The `feedwerk` binary cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_feedwerk"))
}

/// The repository root (for the shipped `config.toml` and `feeds/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture file under `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(rel)
}

pub fn read_fixture(rel: &str) -> Vec<u8> {
    let p = fixture(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// Is an interop client available? Prints a visible SKIP when it is not, and panics
/// when `FEEDWERK_REQUIRE_INTEROP=1` so CI can never skip silently.
pub fn require_tool(tool: &str, probe: &[&str]) -> bool {
    let ok = Command::new(tool)
        .args(probe)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if ok {
        return true;
    }
    if std::env::var("FEEDWERK_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!("interop client `{tool}` is missing and FEEDWERK_REQUIRE_INTEROP=1");
    }
    eprintln!("SKIP: interop client `{tool}` not installed (set FEEDWERK_REQUIRE_INTEROP=1 to make this a failure)");
    false
}

/// Python with the `feedparser` module, if present.
pub fn python_feedparser() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import feedparser"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        return true;
    }
    if std::env::var("FEEDWERK_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!("python3 with feedparser is missing and FEEDWERK_REQUIRE_INTEROP=1");
    }
    eprintln!("SKIP: python3 feedparser not installed (set FEEDWERK_REQUIRE_INTEROP=1 to make this a failure)");
    false
}

/// The local `defus` source as the shipped config has it (posts under `feeds/defus`),
/// for tests that add partners of their own.
pub const LOCAL_DEFUS: &str = r#"
[[source]]
id = "defus"
kind = "local"
title = "DEFUS"
path = "feeds/defus"
priority = 100
language = "de"
"#;

/// A scratch deployment: a temp dir with `config.toml`, `feeds/`, `public/`, `state/`.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    /// An empty project; write a config with [`Project::config`].
    pub fn new() -> Project {
        Project {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A project with the six DEFUS seed posts copied from the repository's `feeds/defus`.
    pub fn with_seed_posts() -> Project {
        let p = Project::new();
        let from = repo_root().join("feeds/defus");
        let to = p.path().join("feeds/defus");
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(&from).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `config.toml`: a `[site]` for DEFUS, the given extra TOML, and a local
    /// `defus` source unless `extra` defines sources of its own with `defus`.
    pub fn config(&self, extra: &str) -> &Project {
        // Tests that tune `[fetch]` bring their own table.
        let fetch = if extra.contains("[fetch]") {
            ""
        } else {
            "[fetch]\ntimeout = \"5s\"\nconnect_timeout = \"2s\"\n"
        };
        let text = format!(
            r#"[site]
title = "DEFUS – Aktuelles"
description = "Test deployment"
base_url = "https://www.defus.de/aktuelles/"
language = "de"
timezone = "Europe/Berlin"

[publish]
output_dir = "public"
schedule = "0 */15 * * * *"
max_items = 50

[server]
listen = "127.0.0.1:0"

[store]
path = "state/feedwerk.sqlite"

{fetch}
{extra}
"#
        );
        self.write("config.toml", &text);
        self
    }

    /// Sets `key` in the `[publish]` table of `config.toml` to `value` (TOML), replacing
    /// the line it has; `None` removes it.
    pub fn publish_key(&self, key: &str, value: Option<&str>) -> &Project {
        self.table_key("publish", key, value)
    }

    /// [`Project::publish_key`] for the `[server]` table.
    pub fn server_key(&self, key: &str, value: &str) -> &Project {
        self.table_key("server", key, Some(value))
    }

    fn table_key(&self, table: &str, key: &str, value: Option<&str>) -> &Project {
        let header = format!("[{table}]");
        let text = self.read("config.toml");
        let mut out: Vec<String> = Vec::new();
        let mut in_table = false;
        for line in text.lines() {
            if line.starts_with('[') {
                in_table = line == header;
            }
            let is_key = line.split_once('=').is_some_and(|(k, _)| k.trim() == key);
            if in_table && is_key {
                continue;
            }
            out.push(line.to_owned());
            if line == header {
                if let Some(v) = value {
                    out.push(format!("{key} = {v}"));
                }
            }
        }
        self.write("config.toml", &(out.join("\n") + "\n"));
        self
    }

    /// Writes a file relative to the project dir, creating parent dirs.
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        let p = self.path().join(rel);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// Runs `feedwerk --config <dir>/config.toml ARGS` in the project dir.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("run feedwerk");
        Run(out)
    }

    /// Runs like [`Project::run`] and also reports the child's peak resident memory
    /// (KiB), read from `wait4`, for memory-bound assertions.
    // The child is reaped by `wait4` (which std does not expose), not by `Child::wait`.
    #[allow(clippy::zombie_processes)]
    pub fn run_measured(&self, args: &[&str]) -> (Run, u64) {
        use std::process::Stdio;
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn feedwerk");
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let o = thread::spawn(move || {
            let mut b = Vec::new();
            let _ = out.read_to_end(&mut b);
            b
        });
        let e = thread::spawn(move || {
            let mut b = Vec::new();
            let _ = err.read_to_end(&mut b);
            b
        });
        let pid = child.id() as libc::pid_t;
        let mut status = 0;
        // SAFETY: rusage is plain old data; wait4 fills it for our own child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(r, pid, "wait4");
        let status = std::os::unix::process::ExitStatusExt::from_raw(status);
        let output = Output {
            status,
            stdout: o.join().unwrap(),
            stderr: e.join().unwrap(),
        };
        (Run(output), usage.ru_maxrss as u64)
    }

    /// The command, for tests that need to spawn it (daemon) or set env.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.current_dir(self.path())
            .arg("--config")
            .arg(self.path().join("config.toml"))
            .args(args)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("JOURNAL_STREAM")
            .env("FEEDWERK_LOG", "info");
        c
    }
}

impl Project {
    /// [`Project::command`] started through `sh` under `umask`, for tests of file modes
    /// (the umask is per process: the test's own must not change).
    pub fn command_under_umask(&self, umask: &str, args: &[&str]) -> Command {
        let inner = self.command(args);
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
            .arg(inner.get_program())
            .args(inner.get_args())
            .current_dir(self.path());
        for (k, v) in inner.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    }
}

/// A finished `feedwerk` run.
pub struct Run(pub Output);

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn code(&self) -> Option<i32> {
        self.0.status.code()
    }
    /// Panics with both streams when the run failed.
    pub fn success(&self) -> &Run {
        assert!(
            self.0.status.success(),
            "feedwerk failed ({:?})\n--- stdout\n{}\n--- stderr\n{}",
            self.0.status,
            self.stdout(),
            self.stderr()
        );
        self
    }
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout(), self.stderr())
    }
}

/// How the test server answers one path.
#[derive(Clone, Debug)]
pub struct Route {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Answer 304 when `If-None-Match` carries this ETag (also sent as `ETag`).
    pub etag: Option<String>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Send the body one byte per this interval (a "slowloris" partner).
    pub trickle: Option<Duration>,
    /// Read the request and never answer.
    pub hang: bool,
    /// Answer 304 when `If-Modified-Since` equals this (also sent as `Last-Modified`).
    pub last_modified: Option<String>,
    /// Send an endless body (no Content-Length) until the client hangs up.
    pub endless: bool,
    /// Announce the whole body but send only this many bytes, then drop the connection.
    pub reset_after: Option<usize>,
}

impl Route {
    pub fn ok(content_type: &str, body: impl Into<Vec<u8>>) -> Route {
        Route {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
            etag: None,
            delay: Duration::ZERO,
            trickle: None,
            hang: false,
            last_modified: None,
            endless: false,
            reset_after: None,
        }
    }
    /// A redirect (301, 302, 307, 308) to `location`.
    pub fn redirect(status: u16, location: &str) -> Route {
        Route::status(status).header("Location", location)
    }
    /// Never answers.
    pub fn hang() -> Route {
        Route {
            hang: true,
            ..Route::status(200)
        }
    }
    /// Sends the body one byte per `every`.
    pub fn trickle(mut self, every: Duration) -> Route {
        self.trickle = Some(every);
        self
    }
    /// Compresses the body with gzip and says so in `Content-Encoding`.
    pub fn gzip(mut self) -> Route {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&self.body).unwrap();
        self.body = enc.finish().unwrap();
        self.header("Content-Encoding", "gzip")
    }
    /// Compresses the body with brotli and says so in `Content-Encoding`.
    pub fn brotli(mut self) -> Route {
        let mut out = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
            w.write_all(&self.body).unwrap();
        }
        self.body = out;
        self.header("Content-Encoding", "br")
    }
    /// Compresses the body with zlib ("deflate" in HTTP) and says so.
    pub fn deflate(mut self) -> Route {
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&self.body).unwrap();
        self.body = enc.finish().unwrap();
        self.header("Content-Encoding", "deflate")
    }
    pub fn last_modified(mut self, http_date: &str) -> Route {
        self.last_modified = Some(http_date.into());
        self
    }
    pub fn endless(mut self) -> Route {
        self.endless = true;
        self
    }
    pub fn reset_after(mut self, bytes: usize) -> Route {
        self.reset_after = Some(bytes);
        self
    }
    pub fn status(status: u16) -> Route {
        Route {
            status,
            ..Route::ok("text/plain", format!("status {status}"))
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Route {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn etag(mut self, etag: &str) -> Route {
        self.etag = Some(etag.into());
        self
    }
}

/// One request the server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub status: u16,
    /// The request body (a form a client POSTed, for example).
    pub body: Vec<u8>,
}

/// A programmable HTTP/1.1 server on 127.0.0.1 (one thread per connection,
/// `Connection: close`). Stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    routes: Arc<Mutex<HashMap<String, Route>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    /// Requests being answered now, and the most ever at once.
    load: Arc<(AtomicUsize, AtomicUsize)>,
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::start_on(TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
    }

    /// A server at a fixed loopback address (e.g. `127.77.0.1:8080`), for tests whose
    /// outputs name the partner URLs and must be the same bytes on every run.
    /// Another test process on the machine (a second checkout's suite) may hold the
    /// address for a while: wait for it rather than fail.
    pub fn start_at(addr: &str) -> TestServer {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            match TcpListener::bind(addr) {
                Ok(listener) => return TestServer::start_on(listener),
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse
                        && std::time::Instant::now() < deadline =>
                {
                    thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("bind {addr}: {e}"),
            }
        }
    }

    fn start_on(listener: TcpListener) -> TestServer {
        let addr = listener.local_addr().unwrap();
        let routes: Arc<Mutex<HashMap<String, Route>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let load: Arc<(AtomicUsize, AtomicUsize)> = Arc::default();
        let (r, s, st, l) = (routes.clone(), seen.clone(), stop.clone(), load.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (r, s, st, l) = (r.clone(), s.clone(), st.clone(), l.clone());
                thread::spawn(move || handle(conn, &r, &s, &st, &l));
            }
        });
        TestServer {
            addr,
            routes,
            seen,
            stop,
            load,
        }
    }

    /// The most requests this server was answering at the same moment.
    pub fn max_concurrent(&self) -> usize {
        self.load.1.load(Ordering::SeqCst)
    }

    /// How many requests to `path` were answered with `status`.
    pub fn count(&self, path: &str, status: u16) -> usize {
        self.seen_at(path)
            .iter()
            .filter(|s| s.status == status)
            .count()
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn route(&self, path: &str, route: Route) -> &TestServer {
        self.routes.lock().unwrap().insert(path.into(), route);
        self
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests to one path.
    pub fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn handle(
    conn: TcpStream,
    routes: &Mutex<HashMap<String, Route>>,
    seen: &Mutex<Vec<Seen>>,
    stop: &AtomicBool,
    load: &(AtomicUsize, AtomicUsize),
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("/").to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let mut request_body = Vec::new();
    if let Some(len) = headers
        .get("content-length")
        .and_then(|l| l.parse::<usize>().ok())
    {
        request_body = vec![0; len];
        let _ = reader.read_exact(&mut request_body);
    }
    let path = target.split('?').next().unwrap_or("/").to_owned();
    // A route registered with its query string wins over the bare path.
    let route = {
        let routes = routes.lock().unwrap();
        routes
            .get(&target)
            .or_else(|| routes.get(&path))
            .cloned()
            .unwrap_or_else(|| Route::status(404))
    };
    let not_modified = route.etag.as_ref().is_some_and(|e| {
        headers
            .get("if-none-match")
            .is_some_and(|h| h.contains(e.as_str()))
    }) || route
        .last_modified
        .as_ref()
        .is_some_and(|lm| route.etag.is_none() && headers.get("if-modified-since") == Some(lm));
    struct InFlight<'a>(&'a (AtomicUsize, AtomicUsize));
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.0 .0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let now_in = load.0.fetch_add(1, Ordering::SeqCst) + 1;
    load.1.fetch_max(now_in, Ordering::SeqCst);
    let in_flight = InFlight(load);
    let status = if not_modified { 304 } else { route.status };
    seen.lock().unwrap().push(Seen {
        method: method.clone(),
        path: path.clone(),
        headers: headers.clone(),
        status,
        body: request_body,
    });
    if route.hang {
        while !stop.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(50));
        }
        return;
    }
    thread::sleep(route.delay);
    // Counted until the answer starts: once the client has the whole response it may
    // send its next request before this thread finishes, which is no overlap.
    drop(in_flight);
    let mut out = conn;
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in &route.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(e) = &route.etag {
        head.push_str(&format!("ETag: {e}\r\n"));
    }
    if let Some(lm) = &route.last_modified {
        head.push_str(&format!("Last-Modified: {lm}\r\n"));
    }
    let body: &[u8] = if not_modified || method == "HEAD" {
        &[]
    } else {
        &route.body
    };
    if !not_modified && !route.endless {
        head.push_str(&format!("Content-Length: {}\r\n", route.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    if out.write_all(head.as_bytes()).is_err() {
        return;
    }
    if route.endless {
        let filler = if route.body.is_empty() {
            vec![b' '; 64 * 1024]
        } else {
            route.body.clone()
        };
        while !stop.load(Ordering::SeqCst) && out.write_all(&filler).is_ok() {}
        return;
    }
    if let Some(n) = route.reset_after {
        let _ = out.write_all(&body[..n.min(body.len())]);
        let _ = out.flush();
        let _ = out.shutdown(std::net::Shutdown::Both);
        return;
    }
    match route.trickle {
        Some(every) => {
            for b in body {
                if stop.load(Ordering::SeqCst) || out.write_all(&[*b]).is_err() {
                    return;
                }
                let _ = out.flush();
                thread::sleep(every);
            }
        }
        None => {
            let _ = out.write_all(body);
        }
    }
    let _ = out.flush();
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        308 => "Permanent Redirect",
        404 => "Not Found",
        410 => "Gone",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Waits until `f` returns `Some`, polling every 50 ms, at most `within`.
pub fn wait_for<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > within {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A blocking HTTP GET over a raw socket (the tests need no client crate): returns
/// status, lower-cased headers and body.
pub fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http_request(addr, "GET", path, headers)
}

pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    http_request_with_body(addr, method, path, headers, None)
}

/// [`http_request`] with a request body (sent with its `Content-Length`).
pub fn http_request_with_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> HttpResponse {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    if let Some(b) = body {
        s.write_all(b).unwrap();
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_response(&raw, method == "HEAD")
}

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .get(&k.to_ascii_lowercase())
            .map(String::as_str)
    }
}

fn parse_response(raw: &[u8], head_only: bool) -> HttpResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let mut headers = HashMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let rest = &raw[split + 4..];
    let body = if head_only {
        Vec::new()
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&b[start..start + size]);
        b = &b[start + size + 2..];
    }
    out
}

/// Parses a feed file with Python feedparser and returns its summary as JSON:
/// `{"bozo": bool, "bozo_exception": str, "version": str, "title": str,
/// "language": str, "entries": [{"id", "title", "link", "published", "author",
/// "source_title"}]}`. `None` when feedparser is not installed (see
/// [`python_feedparser`]).
pub fn feedparser(path: &Path) -> Option<serde_json::Value> {
    if !python_feedparser() {
        return None;
    }
    const SCRIPT: &str = r#"
import json, sys, time, feedparser
d = feedparser.parse(sys.argv[1])
def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", t) if t else None
print(json.dumps({
    "bozo": bool(d.bozo),
    "bozo_exception": str(d.get("bozo_exception", "")),
    "version": d.version,
    "title": d.feed.get("title"),
    "language": d.feed.get("language"),
    "entries": [{
        "id": e.get("id"),
        "title": e.get("title"),
        "link": e.get("link"),
        "published": iso(e.get("published_parsed")),
        "author": e.get("author"),
        "source_title": (e.get("source") or {}).get("title"),
    } for e in d.entries],
}))
"#;
    let out = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(path)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "feedparser script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("feedparser JSON"))
}

/// Validates an Atom document against the RFC 4287 RELAX NG schema with jing.
/// Returns `None` when jing is missing (visible SKIP), else jing's complaints (empty
/// when valid).
pub fn jing_atom(path: &Path) -> Option<String> {
    if !require_tool("jing", &[]) {
        return None;
    }
    let out = Command::new("jing")
        .arg("-c")
        .arg(fixture("atom.rnc"))
        .arg(path)
        .output()
        .expect("run jing");
    let mut complaints = String::from_utf8_lossy(&out.stdout).into_owned();
    complaints.push_str(&String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        complaints.clear();
    }
    Some(complaints)
}

/// Checks a JSON Feed 1.1 document's required structure (jsonfeed.org/version/1.1):
/// version URL, title, items with string ids, content, RFC 3339 dates, absolute URLs.
/// Returns every violation found.
pub fn json_feed_problems(doc: &serde_json::Value) -> Vec<String> {
    let mut p = Vec::new();
    if doc["version"] != "https://jsonfeed.org/version/1.1" {
        p.push(format!("version is {}", doc["version"]));
    }
    if !doc["title"].is_string() {
        p.push("title missing".into());
    }
    for key in ["home_page_url", "feed_url"] {
        if let Some(u) = doc[key].as_str() {
            if url::Url::parse(u).is_err() {
                p.push(format!("{key} is not an absolute URL: {u}"));
            }
        }
    }
    let Some(items) = doc["items"].as_array() else {
        p.push("items is not an array".into());
        return p;
    };
    for (i, it) in items.iter().enumerate() {
        if !it["id"].is_string() {
            p.push(format!("items[{i}].id is not a string"));
        }
        if !it["content_html"].is_string() && !it["content_text"].is_string() {
            p.push(format!(
                "items[{i}] has neither content_html nor content_text"
            ));
        }
        for key in ["date_published", "date_modified"] {
            if let Some(d) = it[key].as_str() {
                if chrono::DateTime::parse_from_rfc3339(d).is_err() {
                    p.push(format!("items[{i}].{key} is not RFC 3339: {d}"));
                }
            }
        }
        for key in ["url", "external_url"] {
            if let Some(u) = it[key].as_str() {
                if url::Url::parse(u).is_err() {
                    p.push(format!("items[{i}].{key} is not absolute: {u}"));
                }
            }
        }
        if let Some(authors) = it.get("authors") {
            if !authors.is_array() {
                p.push(format!("items[{i}].authors is not an array"));
            }
        }
        if let Some(obj) = it.as_object() {
            for k in obj.keys() {
                const KNOWN: [&str; 14] = [
                    "id",
                    "url",
                    "external_url",
                    "title",
                    "content_html",
                    "content_text",
                    "summary",
                    "image",
                    "banner_image",
                    "date_published",
                    "date_modified",
                    "authors",
                    "tags",
                    "language",
                ];
                if !KNOWN.contains(&k.as_str()) && !k.starts_with('_') && k != "attachments" {
                    p.push(format!(
                        "items[{i}] has unknown key `{k}` (extensions start with _)"
                    ));
                }
            }
        }
    }
    p
}

/// `feedwerk run` in a project, killed (by its own PID) when dropped. Its stderr is
/// collected; the listening address is read from the "serving" log line.
pub struct Daemon {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

/// Removes ANSI colour sequences from log text.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Daemon {
    /// Starts `feedwerk run` (the config should listen on `127.0.0.1:0`) and waits until
    /// it serves, at most 60 s.
    pub fn start(project: &Project) -> Daemon {
        Daemon::start_with_env(project, &[])
    }

    /// [`Daemon::start`] with extra environment variables (`NOTIFY_SOCKET`, …).
    pub fn start_with_env(project: &Project, env: &[(&str, &str)]) -> Daemon {
        let mut cmd = project.command(&["run"]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Daemon::start_command(cmd)
    }

    /// Starts `cmd` (a [`Project::command`] for `run`, set up as the test needs) and
    /// waits until it serves, at most 60 s.
    pub fn start_command(mut cmd: Command) -> Daemon {
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn feedwerk run");
        let stderr = child.stderr.take().unwrap();
        let log: Arc<Mutex<String>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let l = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let plain = strip_ansi(&line);
                if plain.contains("serving") {
                    if let Some(a) = plain
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("addr="))
                        .and_then(|a| a.parse::<SocketAddr>().ok())
                    {
                        let _ = tx.send(a);
                    }
                }
                l.lock().unwrap().push_str(&plain);
                l.lock().unwrap().push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "feedwerk run did not start serving:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Daemon { child, addr, log }
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        http_get(self.addr, path, headers)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal with kill(1) (`"HUP"`, `"TERM"`, `"KILL"`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill(1)")
            .success();
        assert!(ok, "kill -{sig} {} failed", self.pid());
    }

    /// Waits for the process to exit, at most `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        wait_for(within, || self.child.try_wait().ok().flatten())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Project {
    /// Runs `feedwerk --config <dir>/config.toml ARGS` with stdout and stderr on a
    /// pseudo-terminal (through `script(1)`, as a person at a terminal would see it) and
    /// returns everything the terminal received, escape sequences included. `None` with
    /// a visible SKIP when `script` is missing (a failure under FEEDWERK_REQUIRE_INTEROP=1).
    pub fn run_in_terminal(&self, args: &[&str], env: &[(&str, &str)]) -> Option<Run> {
        self.run_in_terminal_within(None, args, env)
    }

    /// [`Project::run_in_terminal`], sent SIGTERM after `limit` (for `run`, the daemon).
    pub fn run_in_terminal_within(
        &self,
        limit: Option<Duration>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Option<Run> {
        if !require_tool("script", &["--version"]) {
            return None;
        }
        let inner = self.command(args);
        let quote =
            |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
        let line = std::iter::once(inner.get_program())
            .chain(inner.get_args())
            .map(quote)
            .collect::<Vec<_>>()
            .join(" ");
        let line = match limit {
            Some(d) => format!("timeout -s TERM {} {line}", d.as_secs()),
            None => line,
        };
        let mut c = Command::new("script");
        // -q: no "Script started" lines; -e: the command's exit status; -f: flush as it comes.
        c.args(["-q", "-e", "-f", "-c", &line, "/dev/null"])
            .current_dir(self.path())
            .stdin(std::process::Stdio::null());
        for (k, v) in inner.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        for (k, v) in env {
            c.env(k, v);
        }
        Some(Run(c.output().expect("run script(1)")))
    }
}
