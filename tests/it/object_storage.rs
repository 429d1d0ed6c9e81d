//! Publishing to S3-compatible object storage (`publish.target`) against a real S3
//! server: moto (`moto_server`, PyPI `moto[server]`), started by each test on
//! 127.0.0.1 and stopped by its PID. Missing moto prints `SKIP` (a failure under
//! `FEEDWERK_REQUIRE_INTEROP=1`). Credentials reach the child through the standard
//! `AWS_*` variables only, as they would in production.
//!
//! What is pinned: the first publish uploads every output once, with the headers the
//! server sends and identity bytes; a quiet cycle uploads nothing; a changed partner
//! uploads exactly the documents whose bytes changed (and `build --dry-run` lists
//! them beforehand); deletes run after the uploads and the `max_deletes` guard holds
//! them back; a server that dies mid-upload leaves the old objects serving, and the
//! next cycle finishes the job; anonymous readers get 200 and 304 on the ETag. A
//! standby `feedwerk run` on another machine (its own empty output directory, a real
//! PostgreSQL store shared with the leader) serves the bucket's documents, follows the
//! leader's changes within `store.standby_refresh`, and keeps serving when the bucket
//! goes away.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::support::{
    http_request_with_body, require_tool, wait_for, Daemon, HttpResponse, Project, Route, Run,
    TestServer, LOCAL_DEFUS,
};

const BUCKET: &str = "feeds";
const PREFIX: &str = "aktuelles/";
/// What the test's AWS credentials are; moto accepts any.
const CREDENTIALS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "feedwerk-test"),
    ("AWS_SECRET_ACCESS_KEY", "feedwerk-test-secret"),
    ("AWS_REGION", "us-east-1"),
];

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A moto S3 server with the bucket `feeds`, readable by anyone (a bucket policy, as
/// the README tells operators to set); killed by its PID when dropped.
struct Moto {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Moto {
    fn start() -> Option<Moto> {
        // `--help` must succeed: a pyenv shim left behind answers, but exits 127.
        let works = Command::new("moto_server")
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !works && !require_tool("moto_server (PyPI moto[server])", &[]) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let out = std::fs::File::create(&log).unwrap();
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let m = Moto {
            child,
            addr,
            log,
            _dir: dir,
        };
        wait_for(Duration::from_secs(60), || TcpStream::connect(addr).ok())
            .unwrap_or_else(|| panic!("moto_server did not listen on {addr}"));
        assert_eq!(
            m.request("PUT", &format!("/{BUCKET}"), &[], None).status,
            200
        );
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::{BUCKET}","arn:aws:s3:::{BUCKET}/*"]}}]}}"#
        );
        let r = m.request(
            "PUT",
            &format!("/{BUCKET}?policy="),
            &[("Content-Type", "application/json")],
            Some(policy.as_bytes()),
        );
        assert!(r.status < 300, "bucket policy: {} {}", r.status, r.text());
        Some(m)
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> HttpResponse {
        http_request_with_body(self.addr, method, path, headers, body)
    }

    /// An anonymous GET of a published path, as a CDN or reader makes it.
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        self.request("GET", &format!("/{BUCKET}/{PREFIX}{path}"), headers, None)
    }

    /// The published paths the bucket holds under the prefix.
    fn paths(&self) -> BTreeSet<String> {
        let r = self.request(
            "GET",
            &format!("/{BUCKET}?list-type=2&max-keys=1000&prefix={PREFIX}"),
            &[],
            None,
        );
        assert_eq!(r.status, 200, "list: {}", r.text());
        let text = r.text();
        text.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split_once("</Key>"))
            .map(|(k, _)| k.strip_prefix(PREFIX).unwrap_or(k).to_owned())
            .collect()
    }

    /// `(method, path)` of every object request moto logged, in order; a bulk delete
    /// (`POST /bucket?delete`, how `object_store` deletes) is `("DELETE", "?delete")`.
    fn requests(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let object = format!("/{BUCKET}/{PREFIX}");
        let bulk_delete = format!("/{BUCKET}?delete");
        text.lines()
            .filter_map(|l| {
                let (_, req) = l.split_once('"')?;
                let (method, rest) = req.split_once(' ')?;
                let (target, _) = rest.split_once(' ')?;
                if method == "POST" && target.starts_with(&bulk_delete) {
                    return Some(("DELETE".to_owned(), "?delete".to_owned()));
                }
                let path = target.strip_prefix(&object)?.to_owned();
                Some((method.to_owned(), path))
            })
            .collect()
    }

    fn puts(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|(m, _)| m == "PUT")
            .map(|(_, p)| p)
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss(title: &str, guid: &str, body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Partner</title><link>https://partner.example/</link>
<description>d</description><language>de</language>
<item><title>{title}</title><link>https://partner.example/{guid}</link><guid>{guid}</guid>
<pubDate>Mon, 03 Jun 2024 10:00:00 +0200</pubDate>
<description>{body}</description></item>
</channel></rss>"#
    )
}

/// Three partners with unrelated stories (so deduplication keeps them apart).
fn partners(server: &TestServer, a_title: &str) {
    let texts = [
        (
            "a",
            "Der Stadtrat beschloss am Montag den neuen Haushalt für Schulen und Radwege.",
        ),
        (
            "b",
            "Le festival de musique attire chaque été des milliers de visiteurs au port.",
        ),
        (
            "c",
            "Die Feuerwehr übte am Wochenende mit drei Löschzügen am alten Hafenbecken.",
        ),
    ];
    for (id, body) in texts {
        let title = if id == "a" {
            a_title.to_owned()
        } else {
            format!("Story {id}")
        };
        server.route(
            &format!("/{id}.xml"),
            Route::ok("application/rss+xml", rss(&title, &format!("{id}-1"), body))
                .etag(&format!("\"{id}-{}\"", title.len())),
        );
    }
}

/// A project with the seed posts, the three partners `sources` of them, and
/// `publish.target` on the bucket at `endpoint`.
fn project(server: &TestServer, endpoint: SocketAddr, sources: &[&str]) -> Project {
    let p = Project::with_seed_posts();
    configure(&p, server, endpoint, sources, None);
    p
}

fn configure(
    p: &Project,
    server: &TestServer,
    endpoint: SocketAddr,
    sources: &[&str],
    max_deletes: Option<usize>,
) {
    let mut extra = format!(
        "[publish.s3]\nendpoint = \"http://{endpoint}\"\nregion = \"us-east-1\"\nallow_http = true\n{LOCAL_DEFUS}"
    );
    for id in sources {
        extra.push_str(&format!(
            "\n[[source]]\nid = \"{id}\"\nkind = \"feed\"\ntitle = \"Partner {id}\"\nurl = \"{}\"\n",
            server.url(&format!("/{id}.xml"))
        ));
    }
    p.config(&extra);
    p.publish_key("target", Some(&format!("\"s3://{BUCKET}/{PREFIX}\"")));
    if let Some(n) = max_deletes {
        p.publish_key("max_deletes", Some(&n.to_string()));
    }
}

/// `feedwerk ARGS` with the test's credentials in the environment.
fn run(p: &Project, args: &[&str]) -> Run {
    let mut c = p.command(args);
    c.envs(CREDENTIALS);
    Run(c.output().expect("run feedwerk"))
}

/// The published files under `public/` (no compressed copies), with their bytes.
fn local_outputs(p: &Project) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let name = path.file_name().unwrap().to_string_lossy();
            if rel.ends_with(".gz") || rel.ends_with(".br") || name.starts_with('.') {
                continue;
            }
            out.insert(rel, std::fs::read(&path).unwrap());
        }
    }
    let root = p.path().join("public");
    let mut out = BTreeMap::new();
    walk(&root, &root, &mut out);
    out
}

fn changed(
    before: &BTreeMap<String, Vec<u8>>,
    after: &BTreeMap<String, Vec<u8>>,
) -> BTreeSet<String> {
    after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect()
}

#[test]
fn first_publish_uploads_every_output_once_with_the_servers_headers_and_a_quiet_cycle_uploads_nothing(
) {
    let Some(moto) = Moto::start() else { return };
    let server = TestServer::start();
    partners(&server, "Story a");
    let p = project(&server, moto.addr, &["a", "b"]);
    // Small archive pages, so that full ones are sealed (`immutable`).
    p.publish_key("archive_page_size", Some("2"));

    let first = run(&p, &["build"]);
    assert_eq!(first.code(), Some(0), "{}", first.all());
    let local = local_outputs(&p);
    assert!(local.contains_key("rss.xml"), "{:?}", local.keys());
    assert!(
        local.keys().any(|k| k.starts_with("posts/defus/")),
        "{:?}",
        local.keys()
    );
    assert_eq!(moto.paths(), local.keys().cloned().collect::<BTreeSet<_>>());
    let puts = moto.puts();
    assert_eq!(
        puts.len(),
        local.len(),
        "each output uploaded once: {puts:?}"
    );
    assert!(
        first.stdout().contains(&format!(
            "uploaded {} objects to s3://{BUCKET}/{PREFIX}",
            local.len()
        )),
        "{}",
        first.stdout()
    );
    // Identity bytes only: exactly the file, no compressed copy beside it.
    for (path, bytes) in &local {
        let g = moto.get(path, &[("Accept-Encoding", "gzip, br")]);
        assert_eq!(g.status, 200, "{path}");
        assert_eq!(&g.body, bytes, "{path}");
        assert_eq!(g.header("content-encoding"), None, "{path}");
    }

    // Anonymous readers: the feed's own headers, and 304 on its ETag.
    let feed = moto.get("rss.xml", &[]);
    assert_eq!(
        feed.header("content-type"),
        Some("application/rss+xml; charset=utf-8")
    );
    assert_eq!(feed.header("cache-control"), Some("public, max-age=300"));
    let etag = feed.header("etag").expect("an ETag").to_owned();
    let again = moto.get("rss.xml", &[("If-None-Match", &etag)]);
    assert_eq!(again.status, 304, "{:?}", again.headers);

    // Nothing changed: nothing uploaded, not even a HEAD per object.
    let requests = moto.requests().len();
    let quiet = run(&p, &["build"]);
    assert_eq!(quiet.code(), Some(0), "{}", quiet.all());
    assert!(
        quiet.stdout().contains("uploaded 0 objects"),
        "{}",
        quiet.stdout()
    );
    assert_eq!(
        moto.requests().len(),
        requests,
        "{:?}",
        &moto.requests()[requests..]
    );

    // A store without records (lost, or new on another machine): each object is
    // looked at (HEAD) and only those whose bytes differ are uploaded again.
    std::fs::remove_dir_all(p.path().join("state")).unwrap();
    let puts = moto.puts().len();
    let fresh = run(&p, &["build"]);
    assert_eq!(fresh.code(), Some(0), "{}", fresh.all());
    let rebuilt = local_outputs(&p);
    let differ = changed(&local, &rebuilt);
    let again: BTreeSet<String> = moto.puts()[puts..].iter().cloned().collect();
    assert_eq!(again, differ, "{}", fresh.stdout());
    assert!(
        fresh
            .stdout()
            .contains(&format!("({} already there,", rebuilt.len() - differ.len())),
        "{}",
        fresh.stdout()
    );
    assert!(rebuilt.len() - differ.len() > 10, "{differ:?}");
    let local = rebuilt;

    // The same Content-Type and Cache-Control as the server sends, for every object.
    let mut cmd = p.command(&["run"]);
    cmd.envs(CREDENTIALS);
    let d = Daemon::start_command(cmd);
    let mut sealed = 0;
    for path in local.keys() {
        let served = d.get(&format!("/{path}"), &[]);
        let stored = moto.get(path, &[]);
        assert_eq!(served.status, 200, "{path}");
        for h in ["content-type", "cache-control"] {
            assert_eq!(stored.header(h), served.header(h), "{h} of {path}");
        }
        if stored
            .header("cache-control")
            .is_some_and(|c| c.contains("immutable"))
        {
            assert!(
                path.contains("archive/"),
                "only sealed archive pages: {path}"
            );
            sealed += 1;
        }
    }
    assert!(sealed > 0, "full archive pages are sealed");
}

#[test]
fn one_changed_partner_uploads_only_the_documents_whose_bytes_changed_and_dry_run_lists_them() {
    let Some(moto) = Moto::start() else { return };
    let server = TestServer::start();
    partners(&server, "Story a");
    let p = project(&server, moto.addr, &["a", "b"]);
    run(&p, &["build"]).success();
    let before = local_outputs(&p);
    let uploads_before = moto.puts().len();

    partners(&server, "Story a, updated with a longer title");
    let dry = run(&p, &["build", "--dry-run"]);
    assert_eq!(dry.code(), Some(0), "{}", dry.all());
    assert_eq!(
        moto.puts().len(),
        uploads_before,
        "a dry run uploads nothing"
    );
    let listed: BTreeSet<String> = dry
        .stdout()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("^ "))
        .map(str::to_owned)
        .collect();
    assert!(
        dry.stdout().contains("delete    0 objects"),
        "{}",
        dry.stdout()
    );

    let r = run(&p, &["build"]);
    assert_eq!(r.code(), Some(0), "{}", r.all());
    let after = local_outputs(&p);
    let changed = changed(&before, &after);
    let uploaded: Vec<String> = moto.puts()[uploads_before..].to_vec();
    let uploaded_set: BTreeSet<String> = uploaded.iter().cloned().collect();
    assert_eq!(
        uploaded.len(),
        uploaded_set.len(),
        "uploaded once each: {uploaded:?}"
    );
    assert_eq!(uploaded_set, changed, "exactly the changed documents go up");
    assert_eq!(
        listed,
        changed,
        "the dry run listed them:\n{}",
        dry.stdout()
    );
    assert!(
        changed.iter().any(|k| k.starts_with("sources/a.")),
        "{changed:?}"
    );
    assert!(
        changed.iter().all(|k| !k.starts_with("sources/b.")),
        "partner b did not change: {changed:?}"
    );
    assert!(moto
        .get("rss.xml", &[])
        .text()
        .contains("updated with a longer title"));
}

#[test]
fn deletes_follow_the_uploads_and_the_max_deletes_guard_holds_them_back() {
    let Some(moto) = Moto::start() else { return };
    let server = TestServer::start();
    partners(&server, "Story a");
    let p = project(&server, moto.addr, &["a", "b", "c"]);
    run(&p, &["build"]).success();
    assert!(moto.paths().contains("sources/c.rss"));

    // Partner c leaves: the combined documents change, its channel goes.
    let seen = moto.requests().len();
    configure(&p, &server, moto.addr, &["a", "b"], None);
    let r = run(&p, &["build"]);
    assert_eq!(r.code(), Some(0), "{}", r.all());
    let cycle = moto.requests()[seen..].to_vec();
    let last_put = cycle
        .iter()
        .rposition(|(m, _)| m == "PUT")
        .expect("uploads");
    let first_delete = cycle
        .iter()
        .position(|(m, _)| m == "DELETE")
        .unwrap_or_else(|| panic!("deletes: {cycle:?}\n{}", r.all()));
    assert!(
        last_put < first_delete,
        "deletes after every upload: {cycle:?}"
    );
    let local: BTreeSet<String> = local_outputs(&p).into_keys().collect();
    assert_eq!(
        moto.paths(),
        local,
        "the bucket mirrors the output directory"
    );
    assert!(!local.iter().any(|k| k.starts_with("sources/c.")));

    // Partner b leaves with max_deletes = 1: more deletes than that are held back.
    configure(&p, &server, moto.addr, &["a"], Some(1));
    let held = run(&p, &["build"]);
    assert_eq!(held.code(), Some(0), "{}", held.all());
    assert!(
        held.stdout().contains("NOT DELETED from s3://"),
        "{}",
        held.stdout()
    );
    assert!(
        moto.paths().contains("sources/b.rss"),
        "held back, still there"
    );
    let sources = run(&p, &["sources"]);
    assert!(
        sources
            .stdout()
            .contains("deletes held back by publish.max_deletes"),
        "{}",
        sources.stdout()
    );
    assert!(
        moto.get("rss.xml", &[]).text().contains("Story a"),
        "the uploads of that cycle went up"
    );

    configure(&p, &server, moto.addr, &["a"], Some(256));
    let done = run(&p, &["build"]);
    assert_eq!(done.code(), Some(0), "{}", done.all());
    let local: BTreeSet<String> = local_outputs(&p).into_keys().collect();
    assert_eq!(moto.paths(), local);
}

/// A TCP proxy in front of moto that forwards `allow` object uploads and then dies as
/// a killed server does: the connection of the next upload is cut and the listener
/// closed. moto behind it keeps what it received, so the recovery can be checked.
struct Cutoff {
    dead: Arc<AtomicBool>,
    accept: Option<thread::JoinHandle<()>>,
    /// The head of every request forwarded.
    heads: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Cutoff {
    fn start(listen: SocketAddr, upstream: SocketAddr, allow: usize) -> Cutoff {
        let listener = TcpListener::bind(listen).expect("bind the proxy");
        listener.set_nonblocking(true).unwrap();
        let dead = Arc::new(AtomicBool::new(false));
        let puts = Arc::new(AtomicUsize::new(0));
        let heads: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let (d, h) = (dead.clone(), heads.clone());
        let accept = thread::spawn(move || {
            while !d.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        let (d, puts, h) = (d.clone(), puts.clone(), h.clone());
                        thread::spawn(move || forward(c, upstream, &d, &puts, &h, allow));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Cutoff {
            dead,
            accept: Some(accept),
            heads,
        }
    }
}

impl Drop for Cutoff {
    fn drop(&mut self) {
        self.dead.store(true, Ordering::SeqCst);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
    }
}

/// Forwards requests one by one (head, then `Content-Length` bytes of body) and the
/// responses as they come, until the proxy dies.
fn forward(
    client: TcpStream,
    upstream: SocketAddr,
    dead: &AtomicBool,
    puts: &AtomicUsize,
    heads: &std::sync::Mutex<Vec<String>>,
    allow: usize,
) {
    let Ok(up) = TcpStream::connect(upstream) else {
        return;
    };
    let (mut up_read, mut client_write) = (up.try_clone().unwrap(), client.try_clone().unwrap());
    thread::spawn(move || {
        let _ = std::io::copy(&mut up_read, &mut client_write);
        let _ = client_write.shutdown(std::net::Shutdown::Both);
    });
    let mut up_write = up;
    let mut reader = BufReader::new(client.try_clone().unwrap());
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let upload = head.starts_with("PUT ")
            && head
                .split_whitespace()
                .nth(1)
                .is_some_and(|p| p.matches('/').count() >= 2);
        if dead.load(Ordering::SeqCst) || (upload && puts.fetch_add(1, Ordering::SeqCst) >= allow) {
            dead.store(true, Ordering::SeqCst);
            let _ = client.shutdown(std::net::Shutdown::Both);
            let _ = up_write.shutdown(std::net::Shutdown::Both);
            return;
        }
        heads.lock().unwrap().push(head.clone());
        let len = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())
                    .flatten()
            })
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if up_write.write_all(head.as_bytes()).is_err() || up_write.write_all(&body).is_err() {
            return;
        }
    }
}

#[test]
fn a_server_dying_mid_upload_leaves_the_old_objects_serving_and_the_next_cycle_finishes() {
    let Some(moto) = Moto::start() else { return };
    let server = TestServer::start();
    partners(&server, "Story a");
    let proxy_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let healthy = Cutoff::start(proxy_addr, moto.addr, usize::MAX);
    let p = project(&server, proxy_addr, &["a", "b", "c"]);
    run(&p, &["build"]).success();
    let before = local_outputs(&p);
    drop(healthy);

    // Partner a changes and partner c leaves; the server dies after one upload.
    partners(&server, "Story a, updated with a longer title");
    configure(&p, &server, proxy_addr, &["a", "b"], None);
    let uploads_before = moto.puts().len();
    let dying = Cutoff::start(proxy_addr, moto.addr, 1);
    let failed = run(&p, &["build"]);
    assert_eq!(
        failed.code(),
        Some(1),
        "a failed upload fails the build:\n{}",
        failed.all()
    );
    assert!(
        failed.stdout().contains("UPLOAD FAILED to s3://"),
        "{}",
        failed.stdout()
    );
    drop(dying);
    let after = local_outputs(&p);
    let changed = changed(&before, &after);
    assert!(changed.len() > 2, "{changed:?}");
    assert_eq!(
        moto.puts().len() - uploads_before,
        1,
        "one upload got through"
    );
    // Every changed object still serves its old bytes but the one that got through;
    // nothing was deleted, so c's channel is still there too.
    let mut new = 0;
    for k in &changed {
        let stored = moto.get(k, &[]);
        if stored.body == after[k] {
            new += 1;
        } else if let Some(old) = before.get(k) {
            assert_eq!(&stored.body, old, "{k}: the old object still serves");
        } else {
            assert_eq!(stored.status, 404, "{k}: new, not uploaded yet");
        }
    }
    assert_eq!(new, 1, "only the object that got through is new");
    assert!(moto.requests().iter().all(|(m, _)| m != "DELETE"));
    assert_eq!(moto.get("sources/c.rss", &[]).status, 200);

    // The failure is data: in `sources`, and the next plain build backs off.
    let sources = run(&p, &["sources"]);
    assert!(sources.stdout().contains("FAILING"), "{}", sources.stdout());
    assert!(
        sources.stdout().contains("last error"),
        "{}",
        sources.stdout()
    );
    let paused = run(&p, &["build"]);
    assert!(
        paused.stdout().contains("paused after failures"),
        "{}",
        paused.stdout()
    );

    // The server is back: the next cycle uploads the rest (not the one already up),
    // then deletes what is no longer published.
    let _back = Cutoff::start(proxy_addr, moto.addr, usize::MAX);
    let recovered = run(&p, &["build", "--force"]);
    assert_eq!(recovered.code(), Some(0), "{}", recovered.all());
    let uploaded: BTreeSet<String> = moto.puts()[uploads_before..].iter().cloned().collect();
    assert_eq!(uploaded, changed);
    assert_eq!(
        moto.puts().len() - uploads_before,
        changed.len(),
        "none twice"
    );
    assert_eq!(moto.paths(), after.keys().cloned().collect::<BTreeSet<_>>());
    assert!(moto
        .get("rss.xml", &[])
        .text()
        .contains("updated with a longer title"));
    let sources = run(&p, &["sources"]);
    assert!(
        !sources.stdout().contains("FAILING"),
        "{}",
        sources.stdout()
    );
}

#[test]
fn a_failing_upload_shows_in_healthz_metrics_and_the_status_line() {
    // No moto needed: the target is a port nobody listens on (a server that is down).
    let server = TestServer::start();
    partners(&server, "Story a");
    let down: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let p = project(&server, down, &["a"]);
    let mut cmd = p.command(&["run"]);
    cmd.envs(CREDENTIALS);
    let d = Daemon::start_command(cmd);
    let health = wait_for(Duration::from_secs(60), || {
        let h = d.get("/healthz", &[]);
        (h.status == 503).then_some(h)
    })
    .unwrap_or_else(|| panic!("healthz never reported the failed upload\n{}", d.log()));
    assert!(health.text().contains("upload"), "{}", health.text());
    let metrics = d.get("/metrics", &[]).text();
    assert!(
        metrics.contains("feedwerk_uploads_total{result=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("feedwerk_upload_consecutive_failures 1"),
        "{metrics}"
    );
    assert!(d.log().contains("UPLOAD FAILED"), "{}", d.log());
    // The local outputs are served all the same.
    assert_eq!(d.get("/rss.xml", &[]).status, 200);
}

#[test]
fn credentials_in_the_config_are_refused_with_where_they_belong() {
    let p = Project::with_seed_posts();
    p.config(&format!(
        "[publish.s3]\nregion = \"eu-central-1\"\naccess_key_id = \"AKIAEXAMPLE\"\nsecret_access_key = \"s3cr3t\"\n{LOCAL_DEFUS}"
    ));
    p.publish_key("target", Some("\"s3://feeds/aktuelles/\""));
    let r = p.run(&["check"]);
    assert_ne!(r.code(), Some(0));
    let out = r.all();
    assert!(out.contains("publish.s3.access_key_id"), "{out}");
    assert!(out.contains("publish.s3.secret_access_key"), "{out}");
    assert!(out.contains("never read from config.toml"), "{out}");
    assert!(out.contains("AWS_ACCESS_KEY_ID"), "{out}");
    assert!(!out.contains("s3cr3t"), "the secret is not echoed: {out}");

    p.config(LOCAL_DEFUS);
    p.publish_key("target", Some("\"gs://feeds/aktuelles/\""));
    let r = p.run(&["check"]);
    assert!(r.all().contains("publish.target"), "{}", r.all());
    assert!(
        r.all().contains("only S3-compatible storage"),
        "{}",
        r.all()
    );
}

#[test]
fn keys_come_from_the_shared_credentials_file_when_the_environment_has_none() {
    let Some(moto) = Moto::start() else { return };
    let server = TestServer::start();
    partners(&server, "Story a");
    let proxy_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let proxy = Cutoff::start(proxy_addr, moto.addr, usize::MAX);
    let p = project(&server, proxy_addr, &["a"]);
    p.write(
        "aws/credentials",
        "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = d\n\n[feeds]\naws_access_key_id = AKIAFROMFILE\naws_secret_access_key = from-file-secret\n",
    );
    let with_profile = |profile: &str, args: &[&str]| {
        let mut c = p.command(args);
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                p.path().join("aws/credentials"),
            )
            .env("AWS_PROFILE", profile)
            .env("AWS_REGION", "us-east-1");
        Run(c.output().unwrap())
    };

    // A profile the file lacks is an error before any request (no fallback to a role).
    let missing = with_profile("nosuch", &["build"]);
    assert_eq!(missing.code(), Some(1), "{}", missing.all());
    assert!(
        missing.stdout().contains("no profile [nosuch]"),
        "{}",
        missing.stdout()
    );
    assert!(proxy.heads.lock().unwrap().is_empty());

    // `--force`: the failure above set a back-off.
    let r = with_profile("feeds", &["build", "--force"]);
    assert_eq!(r.code(), Some(0), "{}", r.all());
    assert!(r.stdout().contains("uploaded "), "{}", r.stdout());
    let heads = proxy.heads.lock().unwrap().clone();
    assert!(!heads.is_empty());
    assert!(
        heads.iter().all(|h| h.contains("Credential=AKIAFROMFILE/")),
        "signed with the file's key: {}",
        heads[0]
    );
    assert!(!r.all().contains("from-file-secret"));
}

/// `feedwerk run` as instance `name` on the PostgreSQL store at `url`, from the
/// project's config with `edit` applied, and the test's credentials.
fn run_on_postgres(p: &Project, url: &str, name: &str, edit: impl Fn(String) -> String) -> Daemon {
    let text = p.read("config.toml").replace(
        "path = \"state/feedwerk.sqlite\"",
        &format!("url = \"{url}\"\ntakeover = \"5s\""),
    );
    let config = p.path().join(format!("{name}.toml"));
    std::fs::write(&config, edit(text)).unwrap();
    let mut cmd = Command::new(crate::support::bin());
    cmd.current_dir(p.path())
        .arg("--config")
        .arg(&config)
        .arg("run")
        .envs(CREDENTIALS)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .env("FEEDWERK_LOG", "info");
    Daemon::start_command(cmd)
}

#[test]
fn a_standby_with_an_empty_output_dir_serves_the_buckets_documents_and_follows_the_leaders_changes()
{
    let Some(pg) = crate::pg_server::PgServer::start() else {
        return;
    };
    let Some(mut moto) = Moto::start() else {
        return;
    };
    let server = TestServer::start();
    partners(&server, "Story a");
    let p = project(&server, moto.addr, &["a", "b"]);
    let url = pg.create_database("standby_bucket");

    let leader = run_on_postgres(&p, &url, "leader", |t| t);
    wait_for(Duration::from_secs(30), || {
        let h = leader.get("/healthz", &[]);
        (h.status == 200 && h.text().starts_with("ok") && moto.get("atom.xml", &[]).status == 200)
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the leader did not publish and upload:\n{}", leader.log()));
    // On another machine: its own (empty) output directory, the bucket re-read every
    // second.
    let standby = run_on_postgres(&p, &url, "standby", |t| {
        t.replace("output_dir = \"public\"", "output_dir = \"standby-public\"")
            .replace(
                "takeover = \"5s\"",
                "takeover = \"5s\"\nstandby_refresh = \"1s\"",
            )
    });
    assert!(standby.get("/healthz", &[]).text().starts_with("standby"));

    let uploaded = moto.paths();
    assert!(
        uploaded.contains("atom.xml") && uploaded.contains("index.html"),
        "{uploaded:?}"
    );
    let served = |path: &str| standby.get(&format!("/{path}"), &[]);
    wait_for(Duration::from_secs(10), || {
        (served("atom.xml").body == moto.get("atom.xml", &[]).body).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the standby does not serve the bucket's atom.xml:\n{}",
            standby.log()
        )
    });
    for path in &uploaded {
        let (ours, theirs) = (served(path), moto.get(path, &[]));
        assert_eq!(ours.status, 200, "{path}");
        assert_eq!(ours.body, theirs.body, "{path}: the bucket's bytes");
        for h in ["content-type", "cache-control"] {
            assert_eq!(ours.header(h), theirs.header(h), "{path}: {h}");
        }
        let etag = ours.header("etag").expect("an ETag").to_owned();
        let again = standby.get(&format!("/{path}"), &[("If-None-Match", &etag)]);
        assert_eq!(again.status, 304, "{path}: If-None-Match {etag}");
    }
    // Nothing of it came from a directory of the standby's own.
    assert!(!p.path().join("standby-public/atom.xml").exists());
    // Quiet rounds list the bucket and fetch no object again (nobody else reads it
    // meanwhile: the leader has no cycle due).
    let gets = || -> Vec<_> {
        moto.requests()
            .into_iter()
            .filter(|(m, _)| m == "GET")
            .collect()
    };
    let lists = || {
        std::fs::read_to_string(&moto.log)
            .unwrap_or_default()
            .matches("list-type=2")
            .count()
    };
    // moto writes a request's log line after it has answered, so the GETs this test
    // just made may still be on their way into the log: count once it has settled,
    // i.e. not moved for a second (one 300 ms look was too short for a loaded CI
    // machine, where this test once counted its own last GET as the standby's).
    let mut got = gets().len();
    let mut still = 0;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(300));
        let now = gets().len();
        still = if now == got { still + 1 } else { 0 };
        got = now;
        if still == 4 {
            break;
        }
    }
    let listed = lists();
    std::thread::sleep(Duration::from_millis(3500));
    assert!(
        lists() >= listed + 2,
        "the standby lists the bucket each round"
    );
    let fetched = &gets()[got..];
    assert!(
        fetched.is_empty(),
        "quiet rounds fetch no object: {fetched:?}"
    );

    // The leader publishes a change (a new partner, through a reload): the standby
    // serves the new bytes within its interval.
    let before = served("atom.xml").body;
    let mut text = p.read("leader.toml");
    text.push_str(&format!(
        "\n[[source]]\nid = \"c\"\nkind = \"feed\"\ntitle = \"Partner c\"\nurl = \"{}\"\n",
        server.url("/c.xml")
    ));
    std::fs::write(p.path().join("leader.toml"), text).unwrap();
    leader.signal("HUP");
    wait_for(Duration::from_secs(30), || {
        let now = moto.get("atom.xml", &[]).body;
        (now != before && String::from_utf8_lossy(&now).contains("Story c")).then_some(())
    })
    .unwrap_or_else(|| panic!("the leader did not upload the change:\n{}", leader.log()));
    let uploaded = std::time::Instant::now();
    wait_for(Duration::from_secs(5), || {
        (served("atom.xml").body == moto.get("atom.xml", &[]).body).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the standby still serves the old atom.xml:\n{}",
            standby.log()
        )
    });
    eprintln!(
        "the standby served the leader's change {:?} after it was uploaded",
        uploaded.elapsed()
    );
    assert!(!p.path().join("standby-public/atom.xml").exists());

    // The bucket goes away: the standby says so and keeps serving what it fetched.
    let last = served("atom.xml").body;
    let _ = moto.child.kill();
    let _ = moto.child.wait();
    wait_for(Duration::from_secs(30), || {
        standby
            .log()
            .contains("cannot read the bucket")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("no warning about the bucket:\n{}", standby.log()));
    let still = served("atom.xml");
    assert_eq!((still.status, still.body), (200, last));
}
