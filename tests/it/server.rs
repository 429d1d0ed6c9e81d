//! The HTTP server of `feedwerk run` under hostile and careless clients: request
//! heads that never finish (slowloris) under systemd's default open-file limit,
//! clients that never read, idle keep-alive connections, requests these routes never
//! take, and a one-minute soak of plain and conditional GETs while the daemon
//! publishes. Every load here is bounded in count and time, stops by itself, and
//! talks only to 127.0.0.1.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{http_get, wait_for, Daemon, Project};

use crate::support::LOCAL_DEFUS as LOCAL;

/// Raises this test process's soft open-file limit towards `want`: the clients here
/// hold thousands of sockets. Returns the limit now in force.
fn raise_own_file_limit(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
    lim.rlim_cur
}

/// `feedwerk run` under an open-file limit of `n` (soft and hard), like
/// `ulimit -n 1024` or systemd's default for a unit without `LimitNOFILE`.
fn daemon_with_file_limit(p: &Project, n: u64) -> Daemon {
    let mut cmd = p.command(&["run"]);
    // SAFETY: only setrlimit, which is async-signal-safe, runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Daemon::start_command(cmd)
}

/// The daemon's resident memory in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// The sum of the `/metrics` samples whose series (name and labels) is `series`.
fn metric(d: &Daemon, series: &str) -> f64 {
    let text = d.get("/metrics", &[]).text();
    text.lines()
        .filter_map(|l| l.strip_prefix(series))
        .filter_map(|rest| rest.strip_prefix(' '))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum()
}

fn closed(d: &Daemon, reason: &str) -> f64 {
    metric(
        d,
        &format!("feedwerk_http_connections_closed_total{{reason=\"{reason}\"}}"),
    )
}

/// Waits until the first publish from the posts is served.
fn wait_served(d: &Daemon) {
    wait_for(Duration::from_secs(30), || {
        let r = d.get("/rss.xml", &[]);
        (r.status == 200 && r.text().contains("<item>")).then_some(())
    })
    .unwrap_or_else(|| panic!("/rss.xml never had items\n{}", d.log()));
}

/// The 99th percentile of `samples` (nearest rank).
fn p99(samples: &mut [Duration]) -> Duration {
    samples.sort();
    let rank = (samples.len() * 99).div_ceil(100);
    samples[rank.max(1) - 1]
}

/// `n` GETs of /rss.xml, each on a new connection, as a feed reader does; their
/// latencies. Every answer must be a 200.
fn reader_gets(addr: SocketAddr, n: usize, pause: Duration) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            let start = Instant::now();
            let r = http_get(addr, "/rss.xml", &[]);
            let took = start.elapsed();
            assert_eq!(r.status, 200, "request {i}");
            thread::sleep(pause);
            took
        })
        .collect()
}

/// Whether the server has closed `s` (end of stream or reset), without waiting.
fn is_closed(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // An answer the server wrote before closing; read on to the end.
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn five_thousand_unfinished_heads_under_a_1024_file_limit_leave_readers_served_within_50_ms() {
    const SLOW: usize = 5000;
    let header_timeout = Duration::from_secs(2);
    let have = raise_own_file_limit(SLOW as u64 + 1000);
    assert!(
        have >= SLOW as u64 + 200,
        "this test holds {SLOW} sockets, but the open-file hard limit is {have}"
    );
    let p = Project::with_seed_posts();
    p.config(LOCAL).server_key("header_timeout", "\"2s\"");
    let d = daemon_with_file_limit(&p, 1024);
    wait_served(&d);
    assert_eq!(metric(&d, "feedwerk_http_connections_max"), 896.0);

    // Warm up, then the same client's latency with nobody else around, for scale.
    reader_gets(d.addr, 20, Duration::ZERO);
    let mut quiet = reader_gets(d.addr, 200, Duration::from_millis(2));
    let quiet_p99 = p99(&mut quiet);

    // 5,000 connections that send a request line and a header, then nothing, at about
    // 2,500 a second: the server's cap (896) is full after a third of a second.
    let addr = d.addr;
    let opened = Arc::new(AtomicUsize::new(0));
    let attacker = {
        let opened = opened.clone();
        thread::spawn(move || {
            let mut held = Vec::with_capacity(SLOW);
            for _ in 0..SLOW / 50 {
                for _ in 0..50 {
                    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                        .expect("connect a slow client");
                    // A connection shed at once may refuse the write; it is closed
                    // either way.
                    let _ = s.write_all(b"GET /rss.xml HTTP/1.1\r\nHost: 127.0.0.1\r\n");
                    held.push((Instant::now(), s));
                }
                opened.fetch_add(50, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(20));
            }
            held
        })
    };
    wait_for(Duration::from_secs(20), || {
        (opened.load(Ordering::Relaxed) >= 1000).then_some(())
    })
    .expect("the slow clients connect");
    let mut attacked = reader_gets(d.addr, 200, Duration::from_millis(5));
    let during = opened.load(Ordering::Relaxed);
    let mut held = attacker.join().unwrap();
    let attacked_p99 = p99(&mut attacked);
    eprintln!(
        "GET /rss.xml p99 over 200: {:.1} ms with {during}+ unfinished heads arriving, {:.1} ms without (median {:.1} ms / {:.1} ms)",
        attacked_p99.as_secs_f64() * 1e3,
        quiet_p99.as_secs_f64() * 1e3,
        attacked[100].as_secs_f64() * 1e3,
        quiet[100].as_secs_f64() * 1e3,
    );
    assert!(
        during < SLOW,
        "the readers' requests ran while the slow clients kept arriving"
    );
    // The bound is 50 ms. On a machine so loaded that this client alone needs
    // more, the bound scales with it: what is pinned is that the slow clients cost
    // the readers (almost) nothing.
    let bound = Duration::from_millis(50).max(quiet_p99 * 2);
    assert!(
        attacked_p99 < bound,
        "p99 {attacked_p99:?} under attack (quiet: {quiet_p99:?}) is over {bound:?}"
    );

    // Every slow connection is closed within the header timeout (+1 s) of opening:
    // shed to make room for newer ones, or timed out.
    let mut still_open = 0;
    for (at, s) in &mut held {
        let check = *at + header_timeout + Duration::from_secs(1);
        if let Some(wait) = check.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        if !is_closed(s) {
            still_open += 1;
        }
    }
    assert_eq!(
        still_open, 0,
        "slow connections still open past the header timeout + 1 s"
    );
    drop(held);
    let shed = closed(&d, "shed");
    let timed_out = closed(&d, "header_timeout");
    eprintln!("slow connections: {shed} shed, {timed_out} closed at the header timeout");
    assert!(shed + timed_out >= SLOW as f64, "{shed} + {timed_out}");
    assert!(
        shed > 0.0 && timed_out > 0.0,
        "{shed} shed, {timed_out} timed out"
    );
    assert_eq!(metric(&d, "feedwerk_http_accept_errors_total"), 0.0);
    assert!(!d.log().contains("Too many open files"), "{}", d.log());
    assert_eq!(closed(&d, "refused"), 0.0);
}

/// A 1 MB post (its page is 1 MB). A post of more than the 4 MB the kernel may buffer
/// for a loopback socket would take a minute to normalise in a debug build; the
/// readers below ask for the page several times over instead.
fn big_post(p: &Project) -> usize {
    let mut body = String::from("+++\ntitle = \"Großer Bericht\"\ndate = 2020-01-01\n+++\n\n");
    let mut i = 0;
    while body.len() < 1_000_000 {
        body.push_str(&format!(
            "Absatz {i}: Die Kommunen berichten über Präventionsarbeit, Quartiersarbeit und Sicherheit im öffentlichen Raum, Nummer {}.\n\n",
            i * 7919 % 100_003
        ));
        i += 1;
    }
    p.write("feeds/defus/2020-01-01-grosser-bericht.md", &body);
    body.len()
}

/// Connects with a receive buffer of a few KiB, so what the server sends piles up
/// in its own socket buffer, as for a client on a slow link that stops reading.
fn connect_small_window(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    let size: libc::c_int = 4096;
    // SAFETY: setsockopt on a socket we own, with a value of the size given.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
    s
}

#[test]
fn clients_that_never_read_a_large_page_are_cut_at_the_write_timeout_and_share_its_bytes() {
    const READERS: usize = 10;
    let p = Project::with_seed_posts();
    let size = big_post(&p);
    p.config(LOCAL).server_key("write_timeout", "\"2s\"");
    let d = Daemon::start(&p);
    let page = "/posts/defus/2020-01-01-grosser-bericht.html";
    wait_for(Duration::from_secs(60), || {
        (d.get(page, &[]).body.len() > size).then_some(())
    })
    .unwrap_or_else(|| panic!("the large post's page is never served\n{}", d.log()));
    let len = d.get(page, &[]).body.len();
    eprintln!("large page {page}: {len} bytes");

    let before = rss_kib(d.pid());
    // Each asks for the page 8 times in one write (HTTP/1.1 pipelining), then reads
    // nothing: 8 MB to send, more than the kernel takes off the server's hands.
    const ASKS: usize = 8;
    let stuck: Vec<TcpStream> = (0..READERS)
        .map(|_| {
            let mut s = connect_small_window(d.addr);
            let one = format!("GET {page} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
            s.write_all(one.repeat(ASKS).as_bytes()).unwrap();
            s
        })
        .collect();
    // The last reader's answer stalls within milliseconds of its request.
    let sent = Instant::now();
    thread::sleep(Duration::from_millis(1000));
    let during = rss_kib(d.pid());
    let mut first_cut = None;
    let cut = wait_for(Duration::from_secs(10), || {
        let n = closed(&d, "write_timeout");
        if n > 0.0 && first_cut.is_none() {
            first_cut = Some(sent.elapsed());
        }
        (n >= READERS as f64).then(|| sent.elapsed())
    })
    .unwrap_or_else(|| {
        panic!(
            "not every stuck reader was cut: {} of {READERS}\n{}",
            closed(&d, "write_timeout"),
            d.log()
        )
    });
    eprintln!(
        "{READERS} readers that never read {ASKS} answers of {len} bytes: first cut {first_cut:?}, last {cut:?} after the last request; daemon RSS {before} KiB before, {during} KiB while they were stuck"
    );
    assert!(cut < Duration::from_secs(3), "cut after {cut:?}");
    // Each is sent the catalog's own bytes: a copy per answer would be 80 MB.
    let grown = during.saturating_sub(before) * 1024;
    assert!(
        (grown as usize) < len * READERS * ASKS / 8,
        "RSS grew by {grown} bytes for {READERS} stuck readers of {len} bytes"
    );
    // Closed on the server's side: only the connection asking for the metrics is
    // open. (Reading on from the client would take minutes: a window of a few KiB
    // reopened is not announced until it is a segment's worth.)
    wait_for(Duration::from_secs(5), || {
        (metric(&d, "feedwerk_http_connections_open") == 1.0).then_some(())
    })
    .expect("only the connection asking for the metrics is open");
    drop(stuck);
    // Everyone else is still served.
    assert_eq!(d.get("/rss.xml", &[]).status, 200);
}

/// Reads one response on a kept-alive connection: its status and body (by
/// `Content-Length`).
fn read_response(r: &mut BufReader<TcpStream>, head_only: bool) -> std::io::Result<Response> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = HashMap::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = match headers.get("content-length") {
        Some(v) if !head_only && status != 304 => v.parse().map_err(std::io::Error::other)?,
        _ => 0,
    };
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

struct Response {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

#[test]
fn idle_keep_alive_connections_close_at_the_idle_timeout_and_a_slow_head_gets_the_header_timeout() {
    let p = Project::with_seed_posts();
    p.config(LOCAL)
        .server_key("idle_timeout", "\"1s\"")
        .server_key("header_timeout", "\"4s\"");
    let d = Daemon::start(&p);
    wait_served(&d);

    // Two requests on one connection, then silence: closed after the idle timeout.
    let s = TcpStream::connect(d.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    for _ in 0..2 {
        (&s).write_all(b"GET /rss.xml HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut r, false).unwrap().status, 200);
    }
    let idle = Instant::now();
    let mut rest = Vec::new();
    let n = r.read_to_end(&mut rest).unwrap_or(0);
    let after = idle.elapsed();
    eprintln!("idle keep-alive connection closed after {after:?}");
    assert_eq!(n, 0, "nothing more is sent");
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(2),
        "closed after {after:?}, idle timeout 1 s"
    );
    // Counted as the connection's task ends, just after the client sees the close.
    wait_for(Duration::from_secs(5), || {
        (closed(&d, "idle_timeout") >= 1.0).then_some(())
    })
    .expect("the close is counted as idle_timeout");

    // A head sent in two parts 2 s apart: longer than the idle timeout, within the
    // header timeout, so it is answered.
    let s = TcpStream::connect(d.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (&s).write_all(b"GET /rss.xml HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    thread::sleep(Duration::from_secs(2));
    (&s).write_all(b"Accept: */*\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    assert_eq!(read_response(&mut r, false).unwrap().status, 200);

    // One never finished is closed at the header timeout, without an answer.
    let mut s = TcpStream::connect(d.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let start = Instant::now();
    s.write_all(b"GET /rss.xml HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let after = start.elapsed();
    assert!(
        after >= Duration::from_millis(3900) && after < Duration::from_secs(5),
        "closed after {after:?}, header timeout 4 s"
    );
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    // Counted as the connection's task ends, just after the client sees the close.
    wait_for(Duration::from_secs(5), || {
        (closed(&d, "header_timeout") >= 1.0).then_some(())
    })
    .expect("the close is counted as header_timeout");
}

/// Sends `request` as it is and returns everything the server sends back before it
/// closes (at most 10 s).
fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn only_get_and_head_without_a_body_and_within_the_head_and_uri_limits_are_answered() {
    let p = Project::with_seed_posts();
    p.config(LOCAL).server_key("max_uri_bytes", "256");
    let d = Daemon::start(&p);
    wait_served(&d);
    let a = d.addr;
    let close = "Host: 127.0.0.1\r\nConnection: close\r\n";

    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        for path in ["/rss.xml", "/metrics", "/embed"] {
            let r = raw(
                a,
                format!("{method} {path} HTTP/1.1\r\n{close}\r\n").as_bytes(),
            );
            assert!(r.starts_with("HTTP/1.1 405"), "{method} {path}: {r}");
            assert!(r.contains("\r\nallow: GET, HEAD\r\n"), "{r}");
        }
    }
    // A body is refused without being read: the answer comes though the 1 MB
    // announced never does, and the connection is closed after it.
    let start = Instant::now();
    let r = raw(
        a,
        b"GET /rss.xml HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert!(r.contains("\r\nconnection: close\r\n"), "{r}");
    assert!(start.elapsed() < Duration::from_secs(5));
    let r = raw(
        a,
        b"POST /rss.xml HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 405"), "{r}");
    assert!(r.contains("\r\nconnection: close\r\n"), "{r}");

    let long = format!("/rss.xml?{}", "a".repeat(300));
    let r = raw(a, format!("GET {long} HTTP/1.1\r\n{close}\r\n").as_bytes());
    assert!(r.starts_with("HTTP/1.1 414"), "{r}");
    // The head limits (16 KiB, 100 fields by default) are hyper's 431.
    let big = format!(
        "GET /rss.xml HTTP/1.1\r\n{close}Cookie: {}\r\n\r\n",
        "c".repeat(20_000)
    );
    assert!(raw(a, big.as_bytes()).starts_with("HTTP/1.1 431"));
    let many: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let r = raw(
        a,
        format!("GET /rss.xml HTTP/1.1\r\n{close}{many}\r\n").as_bytes(),
    );
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    wait_for(Duration::from_secs(5), || {
        (closed(&d, "head_too_large") == 2.0).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "{} closes counted as head_too_large",
            closed(&d, "head_too_large")
        )
    });

    // What the routes do take still works.
    let r = raw(
        a,
        format!("HEAD /rss.xml HTTP/1.1\r\n{close}\r\n").as_bytes(),
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let r = raw(
        a,
        format!("GET /rss.xml?utm_source=x HTTP/1.1\r\n{close}Content-Length: 0\r\n\r\n")
            .as_bytes(),
    );
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(
        metric(
            &d,
            "feedwerk_http_requests_total{path=\"other\",status=\"405\"}"
        ) >= 16.0
    );
}

/// The ETag the server gives a document's identity bytes.
fn etag_of(body: &[u8]) -> String {
    format!("\"{}\"", &blake3::hash(body).to_hex()[..20])
}

/// A feed reader on one kept-alive connection (reconnecting when the server closes
/// it): plain and conditional GETs of the combined feeds until `until`. Returns
/// (requests, 304s, ETags seen per path, errors).
fn soak_client(
    addr: SocketAddr,
    until: Instant,
    stop: Arc<AtomicBool>,
) -> (
    usize,
    usize,
    HashMap<&'static str, BTreeSet<String>>,
    Vec<String>,
) {
    let paths = ["/rss.xml", "/atom.xml", "/feed.json"];
    let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
    let mut last: HashMap<&str, String> = HashMap::new();
    let mut seen: HashMap<&'static str, BTreeSet<String>> = HashMap::new();
    let (mut requests, mut not_modified) = (0, 0);
    let mut errors = Vec::new();
    let mut i = 0usize;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        let path = paths[i % 3];
        let conditional = (i / 3) % 2 == 1;
        i += 1;
        if conn.is_none() {
            let s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            conn = Some((s.try_clone().unwrap(), BufReader::new(s)));
        }
        let (w, r) = conn.as_mut().unwrap();
        let inm = conditional.then(|| last.get(path).cloned()).flatten();
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        if let Some(tag) = &inm {
            req.push_str(&format!("If-None-Match: {tag}\r\n"));
        }
        req.push_str("\r\n");
        requests += 1;
        let resp = w
            .write_all(req.as_bytes())
            .and_then(|()| read_response(r, false));
        match resp {
            Err(e) => {
                errors.push(format!("{path}: {e}"));
                conn = None;
            }
            Ok(resp) if resp.status == 304 && inm.is_some() => not_modified += 1,
            Ok(resp) if resp.status == 200 => {
                let etag = resp.headers.get("etag").cloned().unwrap_or_default();
                if etag != etag_of(&resp.body) {
                    errors.push(format!(
                        "{path}: body of {} bytes does not match its ETag {etag}",
                        resp.body.len()
                    ));
                }
                seen.entry(path).or_default().insert(etag.clone());
                last.insert(path, etag);
                if resp.headers.get("connection").is_some_and(|c| c == "close") {
                    conn = None;
                }
            }
            Ok(resp) => errors.push(format!("{path}: status {}", resp.status)),
        }
        if errors.len() > 20 {
            stop.store(true, Ordering::Relaxed);
        }
        thread::sleep(Duration::from_millis(1));
    }
    (requests, not_modified, seen, errors)
}

#[test]
fn a_minute_of_plain_and_conditional_gets_while_publishing_every_2_s_has_no_errors_no_torn_documents_and_flat_memory(
) {
    const SECONDS: u64 = 60;
    const CLIENTS: usize = 4;
    let p = Project::with_seed_posts();
    let post = |n: u64| {
        p.write(
            "feeds/defus/2026-01-01-stand.md",
            &format!("+++\ntitle = \"Stand der Dinge\"\ndate = 2026-01-01\n+++\n\nStand {n}: die Lage wird alle zwei Sekunden neu beschrieben.\n"),
        )
    };
    post(0);
    p.config(LOCAL)
        .publish_key("schedule", Some("\"*/2 * * * * *\""));
    let d = Daemon::start(&p);
    wait_served(&d);

    let start = Instant::now();
    let until = start + Duration::from_secs(SECONDS);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (addr, stop) = (d.addr, stop.clone());
            thread::spawn(move || soak_client(addr, until, stop))
        })
        .collect();
    // The daemon publishes a changed post every cycle; memory is sampled each second.
    let mut rss = Vec::new();
    let mut n = 0;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        let second = Instant::now();
        rss.push(rss_kib(d.pid()));
        if rss.len() % 2 == 0 {
            n += 1;
            post(n);
        }
        thread::sleep(Duration::from_secs(1).saturating_sub(second.elapsed()));
    }
    let mut requests = 0;
    let mut not_modified = 0;
    let mut errors = Vec::new();
    let mut versions: HashMap<&str, BTreeSet<String>> = HashMap::new();
    for c in clients {
        let (r, nm, seen, e) = c.join().unwrap();
        requests += r;
        not_modified += nm;
        errors.extend(e);
        for (path, tags) in seen {
            versions.entry(path).or_default().extend(tags);
        }
    }
    let rss_line: Vec<String> = rss.iter().map(|k| format!("{}", k / 1024)).collect();
    eprintln!(
        "soak: {requests} requests ({not_modified} answered 304) in {:?}; versions of /rss.xml seen: {}; RSS MiB per second: {}",
        start.elapsed(),
        versions.get("/rss.xml").map_or(0, BTreeSet::len),
        rss_line.join(" ")
    );
    assert!(errors.is_empty(), "{} errors: {errors:#?}", errors.len());
    assert!(requests > 10_000, "{requests} requests");
    assert!(not_modified > 1000, "{not_modified} conditional hits");
    for path in ["/rss.xml", "/atom.xml", "/feed.json"] {
        let seen = versions.get(path).map_or(0, BTreeSet::len);
        assert!(
            seen >= 10,
            "{path}: only {seen} versions seen in {SECONDS} s"
        );
    }
    // Against the highest sample of seconds 5–15, not one sample: the allocator gives
    // pages back now and then (a CI run saw 147, 115, then 132 MiB flat for 50 s), and
    // a dip at second 10 is not a leak later. A leak still shows as growth past that.
    let warm = *rss[5..=15].iter().max().unwrap();
    let last = *rss.last().unwrap();
    assert!(
        last as f64 <= warm as f64 * 1.10,
        "RSS at most {warm} KiB in seconds 5-15, {last} KiB at {} s",
        rss.len()
    );
}

#[test]
fn a_reload_with_changed_server_limits_says_they_need_a_restart_and_keeps_serving() {
    let p = Project::with_seed_posts();
    p.config(LOCAL);
    let d = Daemon::start(&p);
    wait_served(&d);
    p.server_key("idle_timeout", "\"5s\"");
    d.signal("HUP");
    wait_for(Duration::from_secs(20), || {
        d.log()
            .contains("[server] timeouts or limits changed")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no note of the changed limits\n{}", d.log()));
    assert_eq!(d.get("/rss.xml", &[]).status, 200);
}

#[test]
fn out_of_file_descriptors_the_accept_loop_sheds_and_keeps_serving_readers() {
    // A cap set above what the open-file limit allows: accepting fails with EMFILE
    // before the cap sheds, and the accept loop must make room itself.
    const SLOW: usize = 600;
    raise_own_file_limit(SLOW as u64 + 500);
    let p = Project::with_seed_posts();
    p.config(LOCAL)
        .server_key("max_connections", "1000")
        .server_key("header_timeout", "\"3s\"");
    let d = daemon_with_file_limit(&p, 256);
    wait_served(&d);
    let held: Vec<TcpStream> = (0..SLOW)
        .map(|_| {
            let mut s = TcpStream::connect_timeout(&d.addr, Duration::from_secs(5))
                .expect("connect a slow client");
            let _ = s.write_all(b"GET /rss.xml HTTP/1.1\r\nHost: 127.0.0.1\r\n");
            s
        })
        .collect();
    let mut took = reader_gets(d.addr, 50, Duration::from_millis(5));
    let slowest = *took.iter().max().unwrap();
    eprintln!(
        "out of descriptors: 50 GETs answered, p99 {:?}, slowest {slowest:?}",
        p99(&mut took)
    );
    // The first waits behind the slow clients still queued, one shed per millisecond.
    assert!(slowest < Duration::from_secs(2), "a GET took {slowest:?}");
    assert!(metric(&d, "feedwerk_http_accept_errors_total") > 0.0);
    assert!(closed(&d, "shed") > 0.0);
    assert!(d
        .log()
        .contains("closing the oldest waiting one to make room"));
    drop(held);
}
