//! Running under systemd (issue 7): the unit file, the sd_notify lifecycle, reload and
//! stop, `/healthz` and `/metrics`, logs, crash safety and the operator commands —
//! through the real binary, real signals, a real notify socket and a real SQLite file.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{self, http_get, wait_for, Daemon, Project, Route, TestServer};

use crate::support::LOCAL_DEFUS as LOCAL;

fn partner(id: &str, url: &str) -> String {
    format!(
        "\n[[source]]\nid = \"{id}\"\nkind = \"feed\"\ntitle = \"Partner {id}\"\nurl = \"{url}\"\nhomepage = \"https://{id}.example/\"\npriority = 50\nlanguage = \"en\"\n"
    )
}

/// An RSS 2.0 document with items `(guid, title)`, dated one day apart.
fn rss(items: &[(String, String)]) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel><title>Partner</title><link>https://partner.example/</link><description>d</description>\n",
    );
    for (i, (guid, title)) in items.iter().enumerate() {
        let day = 1 + (i % 28);
        let month = 1 + (i / 28) % 12;
        s.push_str(&format!(
            "<item><guid isPermaLink=\"false\">{guid}</guid><title>{title}</title><link>https://partner.example/news/{guid}</link><description>Body of {title}, a story about urban security number {i}.</description><pubDate>{}</pubDate></item>\n",
            chrono::NaiveDate::from_ymd_opt(2025, month as u32, day as u32)
                .unwrap()
                .and_hms_opt(10, 0, 0)
                .unwrap()
                .and_utc()
                .to_rfc2822()
        ));
    }
    s.push_str("</channel></rss>\n");
    s
}

fn items(n: usize, prefix: &str) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("{prefix}-{i}"), format!("{prefix} story {i}")))
        .collect()
}

fn serve_rss(server: &TestServer, path: &str, items: &[(String, String)]) {
    server.route(
        path,
        Route::ok("application/rss+xml; charset=utf-8", rss(items)),
    );
}

fn feed_json_titles(body: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(body).expect("feed.json parses");
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

// ---- the unit file ----------------------------------------------------------------------

/// `systemd-analyze`, or a visible SKIP (a failure under FEEDWERK_REQUIRE_INTEROP=1).
fn systemd_analyze() -> bool {
    support::require_tool("systemd-analyze", &["--version"])
}

#[test]
fn unit_file_passes_systemd_analyze_verify_and_security_rates_it_at_most_2() {
    if !systemd_analyze() {
        return;
    }
    let shipped = std::fs::read_to_string(support::repo_root().join("dist/feedwerk.service"))
        .expect("dist/feedwerk.service");
    // verify checks that ExecStart's binary exists: point it at the one under test and
    // change nothing else.
    let exec = support::bin();
    let unit = shipped.replace("/usr/bin/feedwerk", exec.to_str().unwrap());
    assert_eq!(
        unit.lines().count(),
        shipped.lines().count(),
        "only ExecStart may differ"
    );
    for (a, b) in unit.lines().zip(shipped.lines()) {
        assert!(a == b || b.starts_with("ExecStart="), "{a} vs {b}");
    }
    for key in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "WatchdogSec=",
        "StateDirectory=feedwerk",
        "CacheDirectory=feedwerk",
        "ConfigurationDirectory=feedwerk",
        "User=feedwerk",
        "Group=feedwerk",
        "StateDirectoryMode=0755",
        "UMask=0022",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "RestrictAddressFamilies=",
        "SystemCallFilter=@system-service",
        "CapabilityBoundingSet=\n",
        "--config /etc/feedwerk/config.toml run",
    ] {
        assert!(shipped.contains(key), "unit lacks {key:?}");
    }

    let dir = tempfile::tempdir().unwrap();
    let unit_path = dir.path().join("feedwerk.service");
    std::fs::write(&unit_path, unit).unwrap();
    // Documentation=man:feedwerk(1) is checked against the man page we generate.
    let man1 = dir.path().join("man/man1");
    std::fs::create_dir_all(&man1).unwrap();
    let page = Command::new(support::bin())
        .arg("manpage")
        .output()
        .unwrap();
    assert!(page.status.success());
    std::fs::write(man1.join("feedwerk.1"), &page.stdout).unwrap();
    let has_man = Command::new("man").arg("--version").output().is_ok();
    let mut verify = Command::new("systemd-analyze");
    verify.arg("verify");
    if has_man {
        verify.env("MANPATH", dir.path().join("man"));
    } else {
        eprintln!("NOTE: man(1) missing; verifying without the Documentation= check");
        verify.arg("--man=no");
    }
    let out = verify.arg(&unit_path).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify complained:\n{text}"
    );

    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&unit_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no overall score in:\n{text}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score in {line:?}"));
    eprintln!("systemd-analyze security: {score}");
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{text}");
    // The README states the score; keep it true.
    let readme = std::fs::read_to_string(support::repo_root().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("rates it {score:.1}")),
        "README must say `rates it {score:.1}`"
    );
}

// ---- sd_notify lifecycle ---------------------------------------------------------------

/// The test's end of NOTIFY_SOCKET: every datagram, in order.
struct NotifySocket {
    path: PathBuf,
    messages: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        let messages: Arc<Mutex<Vec<String>>> = Arc::default();
        let m = messages.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = sock.recv(&mut buf) {
                m.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        NotifySocket {
            path,
            messages,
            _dir: dir,
        }
    }

    fn all(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    /// Index of the first message at or after `from` that has the line `line`.
    fn wait_line(&self, from: usize, pred: impl Fn(&str) -> bool, what: &str) -> usize {
        wait_for(Duration::from_secs(20), || {
            self.all()
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, m)| m.lines().any(&pred))
                .map(|(i, _)| i)
        })
        .unwrap_or_else(|| panic!("no {what} after message {from}; got {:#?}", self.all()))
    }
}

#[test]
fn notify_socket_sees_ready_watchdog_reloading_ready_stopping_and_a_broken_reload_keeps_serving() {
    let p = Project::with_seed_posts();
    let server = TestServer::start();
    serve_rss(&server, "/a.xml", &items(3, "alpha"));
    p.config(&format!(
        "{LOCAL}{}",
        partner("alpha", &server.url("/a.xml"))
    ));
    let sock = NotifySocket::bind();
    let mut d = Daemon::start_with_env(
        &p,
        &[
            ("NOTIFY_SOCKET", sock.path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );

    let ready = sock.wait_line(0, |l| l == "READY=1", "READY=1");
    let status = sock.all()[ready].clone();
    assert!(
        status.contains(&format!("STATUS=serving http://{}/", d.addr)),
        "{status}"
    );
    assert_eq!(d.get("/feed.json", &[]).status, 200);
    // Pings come from the working loop, at half the watchdog interval.
    let first = sock.wait_line(ready, |l| l == "WATCHDOG=1", "WATCHDOG=1");
    sock.wait_line(first + 1, |l| l == "WATCHDOG=1", "a second WATCHDOG=1");
    // The first cycle runs at once and reports itself in STATUS.
    sock.wait_line(
        ready,
        |l| l.starts_with("STATUS=") && l.contains("last cycle") && l.contains("2 sources ok"),
        "a cycle summary",
    );

    // SIGHUP with a valid, changed config: a new source appears.
    serve_rss(&server, "/b.xml", &items(2, "beta"));
    p.config(&format!(
        "{LOCAL}{}{}",
        partner("alpha", &server.url("/a.xml")),
        partner("beta", &server.url("/b.xml"))
    ));
    let before = sock.all().len();
    d.signal("HUP");
    let reloading = sock.wait_line(before, |l| l == "RELOADING=1", "RELOADING=1");
    let msg = sock.all()[reloading].clone();
    let usec: u64 = msg
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC: {msg}"))
        .parse()
        .expect("MONOTONIC_USEC is a number");
    assert!(usec > 0);
    sock.wait_line(
        reloading + 1,
        |l| l == "READY=1",
        "READY=1 after the reload",
    );
    let titles = wait_for(Duration::from_secs(20), || {
        let t = feed_json_titles(&d.get("/feed.json", &[]).text());
        t.iter().any(|t| t == "beta story 1").then_some(t)
    })
    .unwrap_or_else(|| panic!("the added source never reached feed.json\n{}", d.log()));
    assert!(titles.iter().any(|t| t == "alpha story 0"), "{titles:?}");

    // SIGHUP with a broken config: refused, old config keeps running, STATUS says so.
    p.write(
        "config.toml",
        &p.read("config.toml")
            .replace("max_items = 50", "max_items = \"many\""),
    );
    let before = sock.all().len();
    d.signal("HUP");
    let reloading = sock.wait_line(before, |l| l == "RELOADING=1", "RELOADING=1");
    let ready = sock.wait_line(
        reloading,
        |l| l == "READY=1",
        "READY=1 after a refused reload",
    );
    let status = sock.all()[ready].clone();
    assert!(
        status.contains("config reload refused") && status.contains("publish.max_items"),
        "STATUS must name the refusal and the key: {status}"
    );
    // The log line is read by another thread: give it a moment.
    wait_for(Duration::from_secs(5), || {
        d.log().contains("config reload refused").then_some(())
    })
    .unwrap_or_else(|| panic!("the refusal is not logged:\n{}", d.log()));
    let still = d.get("/feed.json", &[]);
    assert_eq!(still.status, 200);
    assert!(feed_json_titles(&still.text())
        .iter()
        .any(|t| t == "beta story 1"));
    // …and the working loop still goes round.
    let n = sock.all().len();
    sock.wait_line(
        n,
        |l| l == "WATCHDOG=1",
        "WATCHDOG=1 after a refused reload",
    );

    // SIGTERM: STOPPING=1, exit 0 within a few seconds.
    let before = sock.all().len();
    let asked = Instant::now();
    d.signal("TERM");
    let status = d
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("still running 5 s after SIGTERM\n{}", d.log()));
    assert!(status.success(), "exit status {status:?}\n{}", d.log());
    eprintln!("stopped {:?} after SIGTERM", asked.elapsed());
    sock.wait_line(before, |l| l == "STOPPING=1", "STOPPING=1");
}

#[test]
fn sigterm_during_a_hanging_partner_fetch_exits_0_within_seconds() {
    let p = Project::with_seed_posts();
    let server = TestServer::start();
    let mut hang = Route::ok("application/rss+xml", rss(&items(1, "x")));
    hang.hang = true;
    server.route("/hang.xml", hang);
    // A first build publishes the local posts; then the partner hangs.
    serve_rss(&server, "/ok.xml", &items(2, "fine"));
    p.config(&format!(
        "{LOCAL}{}",
        partner("stuck", &server.url("/ok.xml"))
    ));
    p.run(&["build"]).success();
    p.config(&format!(
        "{LOCAL}{}",
        partner("stuck", &server.url("/hang.xml"))
    ))
    .write(
        "config.toml",
        &p.read("config.toml")
            .replace("timeout = \"5s\"", "timeout = \"60s\""),
    );
    let mut d = Daemon::start(&p);
    // Wait until the fetch is in flight.
    wait_for(Duration::from_secs(10), || {
        (!server.seen_at("/hang.xml").is_empty()).then_some(())
    })
    .expect("the partner was asked");
    let asked = Instant::now();
    d.signal("TERM");
    let status = d
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("still running 5 s after SIGTERM\n{}", d.log()));
    assert!(status.success(), "{status:?}\n{}", d.log());
    eprintln!(
        "stopped {:?} after SIGTERM during a hanging fetch",
        asked.elapsed()
    );
    assert!(asked.elapsed() < Duration::from_secs(5));
    // What was published before stays intact.
    let titles = feed_json_titles(&p.read("public/feed.json"));
    assert!(titles.iter().any(|t| t == "fine story 1"), "{titles:?}");
}

// ---- health and metrics -----------------------------------------------------------------

/// Every sample line of a Prometheus text exposition, checked line by line with the
/// `prometheus-parse` line grammar (it skips what it cannot read, so a skipped line is
/// a failure here), then parsed as a whole.
fn parse_prometheus(text: &str) -> prometheus_parse::Scrape {
    for line in text.lines() {
        let info = prometheus_parse::LineInfo::parse(line);
        assert!(
            !matches!(info, prometheus_parse::LineInfo::Ignored) || line.starts_with('#'),
            "unparseable metrics line: {line:?}"
        );
    }
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("scrape")
}

fn sample<'a>(
    scrape: &'a prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a prometheus_parse::Sample> {
    scrape.samples.iter().find(|s| {
        s.metric == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(k).is_some_and(|x| x == *v))
    })
}

fn value(s: &prometheus_parse::Sample) -> f64 {
    match &s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => *v,
        other => panic!("not a scalar: {other:?}"),
    }
}

/// The reference parsers from the Prometheus project's Python client, for the classic
/// text format and OpenMetrics. `None` (visible SKIP) when the module is missing.
fn python_prometheus_parse(text: &str, openmetrics: bool) -> Option<Vec<String>> {
    let have = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        if std::env::var("FEEDWERK_REQUIRE_INTEROP").as_deref() == Ok("1") {
            panic!("python3 prometheus_client is missing and FEEDWERK_REQUIRE_INTEROP=1");
        }
        eprintln!("SKIP: python3 prometheus_client not installed (pip install prometheus-client)");
        return None;
    }
    let module = if openmetrics {
        "from prometheus_client.openmetrics.parser import text_string_to_metric_families"
    } else {
        "from prometheus_client.parser import text_string_to_metric_families"
    };
    let script = format!(
        "import sys\n{module}\nfor f in text_string_to_metric_families(sys.stdin.read()):\n    for s in f.samples:\n        print(f.type, s.name, sorted(s.labels.items()), s.value)\n"
    );
    let mut child = Command::new("python3")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect(),
    )
}

#[test]
fn metrics_parse_as_prometheus_text_and_count_sources_publishes_and_requests() {
    let p = Project::with_seed_posts();
    let server = TestServer::start();
    serve_rss(&server, "/ok.xml", &items(4, "ok"));
    p.config(&format!(
        "{LOCAL}{}{}",
        partner("good", &server.url("/ok.xml")),
        partner("down", &server.url("/missing.xml"))
    ));
    let d = Daemon::start(&p);
    // Wait for the first cycle (the second publish; the first is from the store).
    wait_for(Duration::from_secs(20), || {
        d.get("/metrics", &[])
            .text()
            .contains("feedwerk_publishes_total{result=\"ok\"} 2")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no cycle recorded\n{}", d.log()));
    assert_eq!(d.get("/rss.xml", &[]).status, 200);
    assert_eq!(d.get("/no/such/path", &[]).status, 404);

    let resp = d.get("/metrics", &[]);
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        resp.headers
    );
    let text = resp.text();
    let scrape = parse_prometheus(&text);
    let got = |name: &str, labels: &[(&str, &str)]| {
        sample(&scrape, name, labels)
            .map(value)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    assert_eq!(
        got(
            "feedwerk_source_fetches_total",
            &[("source", "good"), ("result", "updated")]
        ),
        1.0
    );
    assert_eq!(
        got(
            "feedwerk_source_fetches_total",
            &[("source", "down"), ("result", "failed")]
        ),
        1.0
    );
    assert_eq!(got("feedwerk_source_items", &[("source", "good")]), 4.0);
    assert_eq!(got("feedwerk_source_items", &[("source", "down")]), 0.0);
    assert_eq!(
        got(
            "feedwerk_source_last_success_timestamp_seconds",
            &[("source", "down")]
        ),
        0.0
    );
    let last = got(
        "feedwerk_source_last_success_timestamp_seconds",
        &[("source", "good")],
    );
    let now = chrono::Utc::now().timestamp() as f64;
    assert!((now - last).abs() < 120.0, "last success {last}, now {now}");
    assert!(got("feedwerk_items_published", &[]) >= 9.0);
    assert_eq!(
        got(
            "feedwerk_http_requests_total",
            &[("path", "/rss.xml"), ("status", "200")]
        ),
        1.0
    );
    assert!(
        got(
            "feedwerk_http_requests_total",
            &[("path", "other"), ("status", "404")]
        ) >= 1.0
    );
    assert!(got("feedwerk_publishes_total", &[("result", "ok")]) >= 2.0);
    let hist = sample(
        &scrape,
        "feedwerk_source_fetch_duration_seconds",
        &[("source", "good")],
    )
    .unwrap_or_else(|| panic!("no fetch histogram\n{text}"));
    let prometheus_parse::Value::Histogram(buckets) = &hist.value else {
        panic!("fetch duration is not a histogram: {hist:?}");
    };
    assert!(buckets
        .iter()
        .any(|b| b.less_than.is_infinite() && b.count == 1.0));
    assert!(text.contains("feedwerk_publish_duration_seconds_bucket{le="));

    if let Some(lines) = python_prometheus_parse(&text, false) {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("histogram feedwerk_source_fetch_duration_seconds_bucket")),
            "{lines:#?}"
        );
        assert!(lines
            .iter()
            .any(|l| l.starts_with("counter feedwerk_http_requests_total")));
    }
    // OpenMetrics on request, strictly parsed.
    let om = http_get(
        d.addr,
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
    );
    assert!(om
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(om.text().ends_with("# EOF\n"));
    python_prometheus_parse(&om.text(), true);
}

#[test]
fn healthz_is_200_when_publishing_works_and_503_with_the_reason_when_it_fails() {
    let p = Project::with_seed_posts();
    p.config(LOCAL);
    // A cycle every second.
    p.write(
        "config.toml",
        &p.read("config.toml").replace(
            "schedule = \"0 */15 * * * *\"",
            "schedule = \"* * * * * *\"",
        ),
    );
    let d = Daemon::start(&p);
    let h = d.get("/healthz", &[]);
    assert_eq!(h.status, 200, "{}", h.text());
    assert!(h.text().starts_with("ok"), "{}", h.text());

    // Break the output directory: `sources` becomes a file, so the per-source feeds
    // cannot be written.
    let sources = p.path().join("public/sources");
    std::fs::remove_dir_all(&sources).unwrap();
    std::fs::write(&sources, "in the way").unwrap();
    let bad = wait_for(Duration::from_secs(15), || {
        let r = d.get("/healthz", &[]);
        (r.status == 503).then_some(r)
    })
    .unwrap_or_else(|| panic!("healthz never turned 503\n{}", d.log()));
    assert!(
        bad.text().contains("last publish failed") && bad.text().contains("sources"),
        "{}",
        bad.text()
    );
    // The last good outputs stay served.
    assert_eq!(d.get("/feed.json", &[]).status, 200);

    std::fs::remove_file(&sources).unwrap();
    wait_for(Duration::from_secs(15), || {
        (d.get("/healthz", &[]).status == 200).then_some(())
    })
    .unwrap_or_else(|| panic!("healthz never recovered\n{}", d.log()));
}

// ---- logs ---------------------------------------------------------------------------------

#[test]
fn logs_drop_timestamps_under_journald_and_are_json_with_log_format_json() {
    let p = Project::with_seed_posts();
    p.config(&format!(
        "{LOCAL}{}",
        partner("down", "http://127.0.0.1:9/feed.xml")
    ));
    let warn_line = |out: &support::Run| -> String {
        out.stderr()
            .lines()
            .find(|l| l.contains("WARN") || l.contains("\"WARN\""))
            .unwrap_or_else(|| panic!("no warning logged:\n{}", out.stderr()))
            .to_owned()
    };
    let plain = p.run(&["build"]);
    let line = warn_line(&plain);
    assert!(
        line.starts_with(|c: char| c.is_ascii_digit()),
        "a timestamp outside journald: {line}"
    );
    let journal = p
        .command(&["build"])
        .env("JOURNAL_STREAM", "8:12345")
        .output()
        .unwrap();
    let line = warn_line(&support::Run(journal));
    assert!(
        line.trim_start().starts_with("WARN"),
        "no timestamp under journald: {line}"
    );
    let json = p
        .command(&["--log-format", "json", "build"])
        .output()
        .unwrap();
    let json = support::Run(json);
    for l in json.stderr().lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
    }
    assert!(json.stderr().contains("\"level\":\"WARN\""));
}

// ---- operator commands --------------------------------------------------------------------

/// Every file under `dir` with its bytes, for "nothing was written" checks.
fn snapshot(dir: &Path) -> HashMap<PathBuf, Vec<u8>> {
    let mut out = HashMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    out
}

#[test]
fn build_dry_run_lists_additions_changes_and_withdrawals_and_writes_nothing() {
    let p = Project::with_seed_posts();
    let server = TestServer::start();
    let mut list = items(3, "news");
    serve_rss(&server, "/a.xml", &list);
    serve_rss(&server, "/b.xml", &items(1, "gone"));
    p.config(&format!(
        "{LOCAL}{}{}",
        partner("alpha", &server.url("/a.xml")),
        partner("beta", &server.url("/b.xml"))
    ));
    // On a fresh deployment it creates neither store nor outputs.
    let fresh = p.run(&["build", "--dry-run"]).success().stdout();
    assert!(fresh.contains("dry run: nothing was written"), "{fresh}");
    assert!(
        !p.path().join("state").exists(),
        "dry run created the store"
    );
    assert!(!p.path().join("public").exists(), "dry run wrote outputs");

    p.run(&["build"]).success();
    // The partner adds a story and edits one; beta is removed from the config.
    list.push(("news-3".into(), "news story 3".into()));
    list[0].1 = "news story 0, corrected".into();
    serve_rss(&server, "/a.xml", &list);
    p.config(&format!(
        "{LOCAL}{}",
        partner("alpha", &server.url("/a.xml"))
    ));
    let before = snapshot(p.path());
    let out = p.run(&["build", "--dry-run"]).success().stdout();
    assert_eq!(snapshot(p.path()), before, "dry run changed files:\n{out}");
    assert!(out.contains("add       1 items"), "{out}");
    assert!(out.contains("+ [alpha] news story 3"), "{out}");
    assert!(out.contains("change    1 items"), "{out}");
    assert!(out.contains("~ [alpha] news story 0, corrected"), "{out}");
    assert!(out.contains("withdraw  1 items"), "{out}");
    assert!(out.contains("- [beta] gone story 0"), "{out}");
    assert!(out.contains("feed.json"), "{out}");

    // The real build then does exactly that.
    p.run(&["build"]).success();
    let titles = feed_json_titles(&p.read("public/feed.json"));
    assert!(titles.iter().any(|t| t == "news story 3"));
    assert!(titles.iter().any(|t| t == "news story 0, corrected"));
    assert!(!titles.iter().any(|t| t == "gone story 0"), "{titles:?}");
    let again = p.run(&["build", "--dry-run"]).success().stdout();
    assert!(
        again.contains("add       0 items") && again.contains("rewrite   0 of"),
        "{again}"
    );
}

#[test]
fn version_completions_and_man_page_come_from_the_cli_definition() {
    let p = Project::new();
    let v = p.run(&["--version"]).success().stdout();
    assert_eq!(v.trim(), format!("feedwerk {}", env!("CARGO_PKG_VERSION")));

    let bash = p.run(&["completions", "bash"]).success().stdout();
    assert!(bash.contains("dry-run") && bash.contains("completions"));
    let script = p.path().join("feedwerk.bash");
    std::fs::write(&script, &bash).unwrap();
    let loaded = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p feedwerk",
            script.display()
        ))
        .output()
        .unwrap();
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = p.run(&["completions", shell]).success().stdout();
        assert!(out.contains("sources"), "{shell}");
    }

    let man = p.run(&["manpage"]).success().stdout();
    assert!(
        man.starts_with(".ie") || man.contains(".TH feedwerk 1"),
        "{man}"
    );
    for sub in ["run", "build", "check", "sources", "completions", "manpage"] {
        assert!(man.contains(sub), "man page lacks {sub}");
    }
    assert!(man.contains("log\\-format"), "{man}");
    // One page per command, for `man feedwerk-build`.
    let dir = p.path().join("share/man/man1");
    p.run(&["manpage", "--dir", dir.to_str().unwrap()])
        .success();
    let build = std::fs::read_to_string(dir.join("feedwerk-build.1")).expect("feedwerk-build.1");
    assert!(build.contains("dry\\-run"), "{build}");
    assert!(dir.join("feedwerk.1").exists() && dir.join("feedwerk-run.1").exists());
}

// ---- crash safety -------------------------------------------------------------------------

/// Item links in an output, whatever its format.
fn links_in(path: &Path) -> BTreeSet<String> {
    let bytes = std::fs::read(path).unwrap();
    if path.extension().is_some_and(|e| e == "json") {
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
        return v["items"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no items", path.display()))
            .iter()
            .filter_map(|i| i["url"].as_str().map(str::to_owned))
            .collect();
    }
    let feed = feed_rs::parser::parse(&bytes[..])
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
    feed.entries
        .iter()
        .filter_map(|e| e.links.first().map(|l| l.href.clone()))
        .collect()
}

#[test]
fn sigkill_at_random_moments_over_50_cycles_leaves_a_consistent_store_and_valid_outputs() {
    let p = Project::with_seed_posts();
    let server = TestServer::start();
    let mut list = items(5, "crash");
    serve_rss(&server, "/c.xml", &list);
    p.config(&format!(
        "{LOCAL}{}",
        partner("partner", &server.url("/c.xml"))
    ));
    // Keep every item in the combined feed so "published once" means "published still".
    p.write(
        "config.toml",
        &p.read("config.toml")
            .replace(
                "max_items = 50",
                "max_items = 500\nper_tag = false\nper_language = false",
            )
            .replace(
                "schedule = \"0 */15 * * * *\"",
                "schedule = \"* * * * * *\"",
            ),
    );
    let seed: u64 = std::env::var("FEEDWERK_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp_subsec_nanos() as u64);
    eprintln!("crash test seed {seed} (set FEEDWERK_CRASH_SEED to replay)");
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    // One undisturbed build tells how long a cycle takes here.
    let t = Instant::now();
    p.run(&["build"]).success();
    let cycle = t.elapsed();
    eprintln!("one undisturbed build: {cycle:?}");
    let outputs = ["public/rss.xml", "public/atom.xml", "public/feed.json"];
    let mut published: HashMap<&str, BTreeSet<String>> = HashMap::new();
    let started = Instant::now();
    let (mut killed_run, mut killed_build) = (0, 0);
    for round in 0..50 {
        // The partner publishes a story each round and edits an older one now and then.
        list.push((
            format!("crash-{}", list.len()),
            format!("crash story {round}"),
        ));
        if round % 5 == 0 {
            let i = rng.random_range(0..list.len());
            list[i].1 = format!("{} (edited {round})", list[i].1);
        }
        serve_rss(&server, "/c.xml", &list);

        let mut child = if round % 2 == 0 {
            p.command(&["run"])
        } else {
            p.command(&["build"])
        }
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
        // Anywhere from before the store opens to after the last file is renamed.
        let ms = cycle.as_millis() as u64 * 5 / 4;
        std::thread::sleep(Duration::from_millis(rng.random_range(0..=ms.max(20))));
        if child.try_wait().unwrap().is_none() {
            if round % 2 == 0 {
                killed_run += 1
            } else {
                killed_build += 1
            }
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();

        // The store: consistent (opening it recovers the WAL, as the next start would).
        let db = p.path().join("state/feedwerk.sqlite");
        if db.exists() {
            let conn = rusqlite::Connection::open(&db).unwrap();
            let check: String = conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(check, "ok", "round {round}: integrity_check");
            let mode: String = conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
        }
        // Every output parses; nothing it once published is missing from it.
        for o in outputs {
            let path = p.path().join(o);
            if !path.exists() {
                assert!(
                    published.get(o).is_none_or(|s| s.is_empty()),
                    "round {round}: {o} vanished"
                );
                continue;
            }
            let links = links_in(&path);
            let had = published.entry(o).or_default();
            let lost: Vec<&String> = had.difference(&links).collect();
            assert!(
                lost.is_empty(),
                "round {round}: {o} lost {lost:?} after a SIGKILL"
            );
            had.extend(links);
        }
        for f in snapshot(&p.path().join("public")).keys() {
            let name = f.file_name().unwrap().to_string_lossy();
            if name.starts_with('.') || name.ends_with(".gz") || name.ends_with(".br") {
                continue;
            }
            if name.ends_with(".xml")
                || name.ends_with(".atom")
                || name.ends_with(".rss")
                || name.ends_with(".json")
            {
                links_in(f);
            }
        }
    }
    eprintln!(
        "50 rounds in {:?}; SIGKILLed {killed_run} daemons and {killed_build} of 25 builds before they finished; {} items published",
        started.elapsed(),
        published["public/feed.json"].len()
    );
    assert!(
        killed_run + killed_build >= 10,
        "too few kills landed mid-cycle"
    );
    // A clean build afterwards still works and has every story.
    p.run(&["build"]).success();
    let titles = feed_json_titles(&p.read("public/feed.json"));
    assert!(titles.iter().any(|t| t == "crash story 49"), "{titles:?}");
    // Temporary files of killed writers (aged past the daemon's 60 s grace) are swept
    // when the daemon starts.
    let temps = |p: &Project| -> Vec<PathBuf> {
        snapshot(&p.path().join("public"))
            .into_keys()
            .filter(|f| {
                f.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".feedwerk-")
            })
            .collect()
    };
    let mut left = temps(&p);
    if left.is_empty() {
        // No kill landed inside a write this time: make one leftover by hand.
        let f = p.path().join("public/.feedwerk-leftover");
        std::fs::write(&f, "half a feed").unwrap();
        left.push(f);
    }
    eprintln!("{} temporary files left by the kills", left.len());
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    for f in &left {
        std::fs::File::options()
            .write(true)
            .open(f)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let d = Daemon::start(&p);
    assert!(temps(&p).is_empty(), "left: {:?}\n{}", temps(&p), d.log());
}

#[test]
fn sighup_applies_a_removed_source_and_a_new_schedule_and_says_a_new_listen_address_needs_a_restart(
) {
    let p = Project::with_seed_posts();
    let server = TestServer::start();
    serve_rss(&server, "/a.xml", &items(2, "alpha"));
    serve_rss(&server, "/b.xml", &items(2, "beta"));
    let config = |sources: &str, schedule: &str, listen: &str| {
        p.config(sources);
        p.write(
            "config.toml",
            &p.read("config.toml")
                .replace("\"0 */15 * * * *\"", schedule)
                .replace("\"127.0.0.1:0\"", listen),
        );
    };
    let both = format!(
        "{LOCAL}{}{}",
        partner("alpha", &server.url("/a.xml")),
        partner("beta", &server.url("/b.xml"))
    );
    // Once a year: only the start-up cycle runs.
    config(&both, "\"0 0 0 1 1 *\"", "\"127.0.0.1:0\"");
    let sock = NotifySocket::bind();
    let d = Daemon::start_with_env(&p, &[("NOTIFY_SOCKET", sock.path.to_str().unwrap())]);
    sock.wait_line(0, |l| l.contains("3 sources ok"), "the first cycle");
    let titles = feed_json_titles(&d.get("/feed.json", &[]).text());
    assert!(titles.iter().any(|t| t == "beta story 1"), "{titles:?}");

    // beta removed, a cycle every second, another address.
    let alpha_only = format!("{LOCAL}{}", partner("alpha", &server.url("/a.xml")));
    config(&alpha_only, "\"* * * * * *\"", "\"127.0.0.1:1\"");
    let before = sock.all().len();
    d.signal("HUP");
    let ready = sock.wait_line(before, |l| l == "READY=1", "READY=1 after the reload");
    let status = sock.all()[ready].clone();
    assert!(
        status.contains("server.listen changed to 127.0.0.1:1: takes effect after a restart"),
        "{status}"
    );
    // beta's items leave the outputs; alpha's and the local posts stay.
    let titles = wait_for(Duration::from_secs(10), || {
        let t = feed_json_titles(&d.get("/feed.json", &[]).text());
        (!t.iter().any(|t| t.starts_with("beta"))).then_some(t)
    })
    .unwrap_or_else(|| panic!("beta still published after its removal\n{}", d.log()));
    assert!(titles.iter().any(|t| t == "alpha story 1"), "{titles:?}");
    assert!(titles.len() >= 7, "{titles:?}");
    // The new schedule runs: several cycles within a few seconds, each with 2 sources.
    let cycles_after = |from: usize| {
        sock.all()[from..]
            .iter()
            .filter(|m| m.contains("last cycle") && m.contains("2 sources ok"))
            .count()
    };
    wait_for(Duration::from_secs(30), || {
        (cycles_after(ready) >= 3).then_some(())
    })
    .unwrap_or_else(|| panic!("no per-second cycles after the reload: {:#?}", sock.all()));
    // Metrics forget the removed source.
    let metrics = d.get("/metrics", &[]).text();
    assert!(!metrics.contains("source=\"beta\""), "{metrics}");
    assert!(metrics.contains("source=\"alpha\""));
    // Still serving on the old address.
    assert_eq!(d.get("/healthz", &[]).status, 200);
}

#[test]
fn check_runs_an_integrity_check_on_the_store_without_touching_it() {
    let p = Project::with_seed_posts();
    p.config(LOCAL);
    let fresh = p.run(&["check"]).success().stdout();
    assert!(fresh.contains("not created yet"), "{fresh}");
    p.run(&["build"]).success();
    let before = snapshot(&p.path().join("state"));
    let ok = p.run(&["check"]).success().stdout();
    assert!(ok.contains("feedwerk.sqlite: ok, 6 items held"), "{ok}");
    assert_eq!(
        snapshot(&p.path().join("state")),
        before,
        "check wrote to the store"
    );

    // Damage every page but the header page: check says so and fails.
    let db = p.path().join("state/feedwerk.sqlite");
    let mut bytes = std::fs::read(&db).unwrap();
    let page = 4096;
    assert!(bytes.len() > 3 * page);
    for chunk in bytes[page..].chunks_mut(page) {
        for b in &mut chunk[8..200] {
            *b = 0x5a;
        }
    }
    std::fs::write(&db, &bytes).unwrap();
    let bad = p.run(&["check"]);
    assert_eq!(bad.code(), Some(1), "{}", bad.all());
    assert!(
        bad.stdout().contains("DAMAGED") || bad.stdout().contains("cannot be read"),
        "{}",
        bad.all()
    );
}

#[test]
fn run_on_a_taken_port_exits_non_zero_naming_the_address_and_the_key() {
    let p = Project::with_seed_posts();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    p.config(LOCAL);
    p.write(
        "config.toml",
        &p.read("config.toml")
            .replace("\"127.0.0.1:0\"", &format!("\"{addr}\"")),
    );
    let sock = NotifySocket::bind();
    let out = p
        .command(&["run"])
        .env("NOTIFY_SOCKET", &sock.path)
        .output()
        .unwrap();
    let run = support::Run(out);
    assert_ne!(run.code(), Some(0), "{}", run.all());
    assert!(
        run.stderr().contains(&format!("cannot listen on {addr}"))
            && run.stderr().contains("server.listen"),
        "{}",
        run.stderr()
    );
    // systemd must not be told it is ready.
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !sock.all().iter().any(|m| m.contains("READY=1")),
        "{:?}",
        sock.all()
    );
}

/// The README's install guide: the shipped config with the paths its snippet sets
/// (under a stand-in for `/var/lib/feedwerk`) validates, and `build --dry-run` works
/// on it without creating the store.
#[test]
fn install_guide_config_snippet_applied_to_the_shipped_config_checks_ok() {
    let readme = std::fs::read_to_string(support::repo_root().join("README.md")).unwrap();
    let install = &readme[readme.find("## Install").expect("Install section")..];
    let snippet = install
        .split("```toml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a toml block in Install");
    let p = Project::new();
    let state = p.path().join("var/lib/feedwerk");
    std::fs::create_dir_all(state.join("feeds")).unwrap();
    let from = support::repo_root().join("feeds/defus");
    std::fs::create_dir_all(state.join("feeds/defus")).unwrap();
    for e in std::fs::read_dir(&from).unwrap().flatten() {
        std::fs::copy(e.path(), state.join("feeds/defus").join(e.file_name())).unwrap();
    }
    let snippet: toml::Table = snippet
        .replace("/var/lib/feedwerk", state.to_str().unwrap())
        .parse()
        .expect("the snippet is TOML");
    let mut cfg: toml::Table = std::fs::read_to_string(support::repo_root().join("config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    for table in ["publish", "store"] {
        for (k, v) in snippet[table].as_table().unwrap() {
            cfg[table]
                .as_table_mut()
                .unwrap()
                .insert(k.clone(), v.clone());
        }
    }
    let local = &snippet["source"].as_array().unwrap()[0];
    for s in cfg["source"].as_array_mut().unwrap() {
        if s["id"] == local["id"] {
            s.as_table_mut()
                .unwrap()
                .insert("path".into(), local["path"].clone());
        }
    }
    // Partners must not be contacted from a test: point them at a closed local port.
    for s in cfg["source"].as_array_mut().unwrap() {
        if s.get("url").is_some() {
            s.as_table_mut()
                .unwrap()
                .insert("url".into(), "http://127.0.0.1:9/feed.xml".into());
        }
    }
    // /etc/feedwerk/config.toml lives elsewhere than the state: paths must not depend on it.
    let etc = p.path().join("etc/feedwerk");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("config.toml"), toml::to_string(&cfg).unwrap()).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(support::bin())
            .arg("--config")
            .arg(etc.join("config.toml"))
            .args(args)
            .current_dir(p.path())
            .output()
            .unwrap();
        support::Run(out)
    };
    let check = run(&["check"]);
    check.success();
    assert!(check.stdout().contains("6 posts"), "{}", check.all());
    let dry = run(&["build", "--dry-run"]);
    dry.success();
    assert!(!state.join("state/feedwerk.sqlite").exists());
    run(&["build"]).success();
    assert!(state.join("public/feed.json").exists());
    assert!(state.join("state/feedwerk.sqlite").exists());
}
