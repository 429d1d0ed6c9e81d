//! Several processes on one PostgreSQL store (issue 20): the election
//! (`store::postgres::leader`), the epoch fence on every write, and TLS to the server
//! (`store::postgres::tls`), each on a real server this test starts.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use feedwerk::store::postgres::{Leadership, PgStore, PgTarget, Role, Timing};
use feedwerk::store::{MetaStore, StoreError};

use crate::pg_server::PgServer;

/// Short enough for tests, long enough that a busy test machine does not miss probes.
const TAKEOVER: Duration = Duration::from_secs(5);

fn timing() -> Timing {
    Timing { takeover: TAKEOVER }
}

/// A migrated database `name` on `pg` (the epoch row is in the store's schema).
fn migrated(pg: &PgServer, name: &str) -> String {
    let url = pg.create_database(name);
    PgStore::connect(&url).expect("connect and migrate");
    url
}

fn leadership(url: &str, holder: &str) -> Leadership {
    // The campaign's log (terms begun and given up) shows with a failing test.
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    Leadership::start(&PgTarget::new(url), timing(), holder).expect("start campaigning")
}

/// Waits until exactly one of `ls` leads; its index.
fn one_leader(ls: &[&Leadership], within: Duration) -> usize {
    let until = Instant::now() + within;
    loop {
        let leading: Vec<usize> = (0..ls.len())
            .filter(|&i| matches!(ls[i].role(), Role::Leader { .. }))
            .collect();
        assert!(leading.len() <= 1, "two leaders at once: {leading:?}");
        if let [i] = leading[..] {
            return i;
        }
        assert!(Instant::now() < until, "no leader after {within:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Ends the session holding the leader's advisory lock, as a failover or a cut
/// connection would; returns how many sessions were ended.
fn terminate_leader_session(pg: &PgServer, db: &str) -> String {
    pg.psql(
        db,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks \
         WHERE locktype = 'advisory' AND granted",
    )
}

fn epoch_row(pg: &PgServer, db: &str) -> String {
    pg.psql(db, "SELECT epoch || ' ' || holder FROM feedwerk_leader")
}

#[test]
fn two_leaderships_on_one_database_elect_exactly_one() {
    let Some(pg) = PgServer::start() else { return };
    let url = migrated(&pg, "election");
    let a = leadership(&url, "a");
    let b = leadership(&url, "b");
    let first = one_leader(&[&a, &b], TAKEOVER);
    // Several of the standby's retry intervals: it never leads beside the leader.
    let until = Instant::now() + timing().retry() * 4;
    while Instant::now() < until {
        assert_eq!(one_leader(&[&a, &b], Duration::ZERO), first);
        std::thread::sleep(Duration::from_millis(20));
    }
    let holder = ["a", "b"][first];
    assert_eq!(epoch_row(&pg, "election"), format!("1 {holder}"));
    assert_eq!([&a, &b][first].role(), Role::Leader { epoch: 1 });
    assert_eq!([&a, &b][1 - first].role(), Role::Standby);
    assert!([&a, &b][1 - first].fence().is_none());
}

#[test]
fn the_standby_takes_over_within_takeover_when_the_leaders_connection_is_ended() {
    let Some(pg) = PgServer::start() else { return };
    let url = migrated(&pg, "takeover");
    let a = leadership(&url, "a");
    a.wait_to_lead(TAKEOVER).expect("the only campaigner leads");
    let b = leadership(&url, "b");
    std::thread::sleep(timing().retry() * 2);
    assert_eq!(b.role(), Role::Standby);

    let cut = Instant::now();
    assert_eq!(terminate_leader_session(&pg, "takeover"), "1");
    let fence = b
        .wait_to_lead(TAKEOVER)
        .unwrap_or_else(|| panic!("the standby did not take over within {TAKEOVER:?}"));
    let took = cut.elapsed();
    eprintln!(
        "takeover after the leader's session was ended: {took:?} (store.takeover {TAKEOVER:?})"
    );
    assert_eq!(fence.epoch(), 2);
    assert_eq!(epoch_row(&pg, "takeover"), "2 b");
    // The ex-leader noticed and stands by (it campaigns again, and finds the lock held).
    assert!(
        !matches!(a.role(), Role::Leader { .. }),
        "the ex-leader still says it leads"
    );
    assert!(a.fence().is_none());
}

#[test]
fn a_stale_leaders_write_is_refused_by_the_epoch_and_it_gives_up() {
    let Some(pg) = PgServer::start() else { return };
    let url = migrated(&pg, "stale");
    let a = leadership(&url, "a");
    let fence = a.wait_to_lead(TAKEOVER).expect("leads");
    let store = PgStore::connect(&url).unwrap().with_fence(fence.clone());
    store.set_meta("written_by", "a, epoch 1").unwrap();

    // Another term began while this process was paused and did not notice (its lock
    // connection is fine): the epoch row is all that says so.
    pg.psql(
        "stale",
        "UPDATE feedwerk_leader SET epoch = epoch + 1, holder = 'elsewhere'",
    );
    let err = store.set_meta("written_by", "a, stale").unwrap_err();
    assert!(
        matches!(&err, StoreError::Fenced { held: 1, reason } if reason.contains("epoch 2")),
        "{err}"
    );
    assert!(err.to_string().contains("write refused"), "{err}");
    assert_eq!(
        pg.psql("stale", "SELECT value FROM meta WHERE key = 'written_by'"),
        "a, epoch 1"
    );
    // The refusal made it give up its term; it campaigns again and, alone, leads
    // under a new epoch; the old term's fence stays refused.
    let until = Instant::now() + TAKEOVER;
    while a.fence().is_none_or(|f| f.epoch() == 1) {
        assert!(
            Instant::now() < until,
            "still in the refused term: {:?}",
            a.role()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(a.role(), Role::Leader { epoch: 3 });
    assert!(matches!(
        store.set_meta("written_by", "a, stale again"),
        Err(StoreError::Fenced { held: 1, .. })
    ));
    let fresh = PgStore::connect(&url)
        .unwrap()
        .with_fence(a.fence().unwrap());
    fresh.set_meta("written_by", "a, epoch 3").unwrap();
    assert_eq!(
        fresh.meta("written_by").unwrap().as_deref(),
        Some("a, epoch 3")
    );
}

#[test]
fn a_stale_leaders_group_in_flight_is_ended_and_stores_nothing() {
    let Some(pg) = PgServer::start() else { return };
    let url = migrated(&pg, "group");
    let a = leadership(&url, "a");
    let fence = a.wait_to_lead(TAKEOVER).expect("leads");
    let b = leadership(&url, "b");
    let mut store = PgStore::connect(&url).unwrap().with_fence(fence);

    let mut took = Duration::ZERO;
    let result: Result<(), StoreError> = store.group(|s| {
        s.set_meta("in_group", "a")?;
        // The group holds the epoch row FOR SHARE: the new leader's bump must wait for
        // it, then end its session.
        let cut = Instant::now();
        terminate_leader_session(&pg, "group");
        b.wait_to_lead(TAKEOVER)
            .expect("the standby takes over although the old leader's group is open");
        took = cut.elapsed();
        s.set_meta("in_group_later", "a")?;
        Ok(())
    });
    eprintln!("takeover past an open group of the old term: {took:?}");
    let err = result.unwrap_err();
    assert!(matches!(err, StoreError::Fenced { held: 1, .. }), "{err}");
    assert_eq!(
        pg.psql(
            "group",
            "SELECT count(*) FROM meta WHERE key LIKE 'in_group%'"
        ),
        "0"
    );
    assert_eq!(epoch_row(&pg, "group"), "2 b");
}

/// A test CA and a certificate it signed for `localhost` (not for 127.0.0.1), made
/// with the openssl CLI in `dir`: (CA PEM path, server certificate PEM, server key PEM).
fn test_ca(dir: &Path) -> (std::path::PathBuf, String, String) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl (the openssl CLI is needed for the TLS test)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"],
            &["-subj", "/CN=feedwerk test CA"],
            &["-addext", "basicConstraints=critical,CA:TRUE"],
            &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    (dir.join("ca.crt"), read("server.crt"), read("server.key"))
}

/// Whether the store's pooled connection named `app` is encrypted (`pg_stat_ssl`).
fn encrypted(pg: &PgServer, app: &str) -> String {
    pg.psql(
        "postgres",
        &format!(
            "SELECT string_agg(s.ssl::text, ',') FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.application_name = '{app}'"
        ),
    )
}

#[test]
fn tls_to_the_server_follows_sslmode_and_trusts_the_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca(dir.path());
    let Some(pg) = PgServer::start_with_tls(&cert, &key) else {
        return;
    };
    pg.create_database("tls");
    let port = pg.port();
    let url = |host: &str, mode: &str, app: &str| {
        format!("postgres://feedwerk@{host}:{port}/tls?sslmode={mode}&application_name={app}")
    };

    // verify-full with the private CA, by the name the certificate has.
    let full = PgStore::connect_to(
        &PgTarget::new(&url("localhost", "verify-full", "full")).with_ca_file(&ca),
    )
    .expect("verify-full with the test CA");
    assert_eq!(full.schema_version().unwrap(), 1);
    assert_eq!(encrypted(&pg, "full"), "true");

    // The certificate does not name 127.0.0.1: verify-full refuses, verify-ca does not.
    let err = PgStore::connect_to(
        &PgTarget::new(&url("127.0.0.1", "verify-full", "x")).with_ca_file(&ca),
    )
    .err()
    .expect("verify-full refuses a certificate for another name")
    .to_string();
    assert!(
        err.contains("certificate") || err.contains("Certificate"),
        "{err}"
    );
    let chain = PgStore::connect_to(
        &PgTarget::new(&url("127.0.0.1", "verify-ca", "chain")).with_ca_file(&ca),
    )
    .expect("verify-ca takes the CA's certificate for any name");
    assert_eq!(encrypted(&pg, "chain"), "true");

    // Without the CA, the system's roots do not know the test CA.
    let err = PgStore::connect_to(&PgTarget::new(&url("localhost", "verify-full", "x")))
        .err()
        .expect("an unknown CA is refused")
        .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    // require without a CA encrypts without authenticating (libpq's meaning); disable
    // does not encrypt.
    let require = PgStore::connect(&url("127.0.0.1", "require", "require")).expect("require");
    assert_eq!(encrypted(&pg, "require"), "true");
    let plain = PgStore::connect(&url("127.0.0.1", "disable", "plain")).expect("disable");
    assert_eq!(encrypted(&pg, "plain"), "false");

    // The leader's own connection goes the same way.
    let target = PgTarget::new(&url("localhost", "verify-full", "ignored")).with_ca_file(&ca);
    let leader = Leadership::start(&target, timing(), "tls").unwrap();
    leader.wait_to_lead(TAKEOVER).expect("leads over TLS");
    assert_eq!(
        encrypted(&pg, feedwerk::store::postgres::leader::APPLICATION_NAME),
        "true"
    );
    drop((full, chain, require, plain));
}

/// One `feedwerk run` of several on the test database, in this process (its own
/// runtime thread), stopped by `stop`: the daemon with `Replication::postgres`, as
/// `run` starts it for a `[store] url`, each term's pipeline on the PostgreSQL store.
struct Instance {
    addr: std::net::SocketAddr,
    stop: tokio_util::sync::CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Instance {
    fn start(p: &crate::support::Project, url: &str, name: &str) -> Instance {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let text = p
            .read("config.toml")
            .replace(
                "listen = \"127.0.0.1:0\"",
                &format!("listen = \"127.0.0.1:{port}\""),
            )
            // The tests' own takeover, and a standby re-reading the output directory
            // every second.
            .replace(
                "path = \"state/feedwerk.sqlite\"",
                &format!(
                    "url = \"{url}\"\ntakeover = \"{}s\"\nstandby_refresh = \"1s\"",
                    TAKEOVER.as_secs()
                ),
            );
        let path = p.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let cfg = feedwerk::config::Config::load(&path).expect("instance config");
        assert_eq!(cfg.store.takeover, TAKEOVER);
        // What `feedwerk run` starts for a `[store] url` (with a stop token of the
        // test's instead of SIGTERM).
        let replication = feedwerk::role::Replication::postgres(&cfg, url, name).unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let token = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(feedwerk::daemon::run_replicated(cfg, replication, token))
                .expect("the daemon runs until stopped");
        });
        let addr = ([127, 0, 0, 1], port).into();
        let up = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < up, "instance {name} does not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Instance {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn get(&self, path: &str) -> crate::support::HttpResponse {
        crate::support::http_get(self.addr, path, &[])
    }

    fn health(&self) -> (u16, String) {
        let r = self.get("/healthz");
        (r.status, String::from_utf8_lossy(&r.body).into_owned())
    }

    /// `feedwerk_leader` and `feedwerk_leader_epoch` from `/metrics`.
    fn leader_gauges(&self) -> (i64, i64) {
        let text = String::from_utf8(self.get("/metrics").body).unwrap();
        let gauge = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
        };
        (gauge("feedwerk_leader"), gauge("feedwerk_leader_epoch"))
    }

    fn wait_for(&self, within: Duration, what: &str, ok: impl Fn(&Instance) -> bool) {
        let until = Instant::now() + within;
        while !ok(self) {
            assert!(
                Instant::now() < until,
                "{what} not within {within:?}: {:?}",
                self.health()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn two_daemons_one_leads_the_standby_serves_and_takes_over_when_the_leaders_connection_drops() {
    let Some(pg) = PgServer::start() else { return };
    let url = migrated(&pg, "daemons");
    let p = crate::support::Project::with_seed_posts();
    p.config(crate::support::LOCAL_DEFUS);

    let a = Instance::start(&p, &url, "a");
    a.wait_for(TAKEOVER * 2, "a leading and published", |i| {
        i.health().1.starts_with("ok") && i.leader_gauges() == (1, 1)
    });
    let b = Instance::start(&p, &url, "b");
    b.wait_for(TAKEOVER, "b standing by", |i| i.leader_gauges() == (0, 0));
    // Several of b's retry intervals: it stays a standby, healthy, serving what the
    // leader published to the output directory they share.
    std::thread::sleep(timing().retry() * 3);
    assert_eq!(b.leader_gauges(), (0, 0));
    assert_eq!(a.leader_gauges(), (1, 1));
    let (status, text) = b.health();
    assert_eq!(status, 200, "{text}");
    assert!(text.starts_with("standby"), "{text}");
    let published = std::fs::read(p.path().join("public/atom.xml")).expect("a published atom.xml");
    let from_b = b.get("/atom.xml");
    assert_eq!(from_b.status, 200);
    assert_eq!(from_b.body, published, "b serves the leader's atom.xml");
    assert_eq!(epoch_row(&pg, "daemons"), "1 a");
    // The leader's pipeline ran on the database, not on a file of its own.
    assert_eq!(pg.psql("daemons", "SELECT count(*) FROM items"), "6");
    assert!(!p.path().join("state/feedwerk.sqlite").exists());

    // a's leadership session ends (a failover, a cut connection): b leads and
    // publishes; a stands by.
    std::fs::remove_file(p.path().join("public/atom.xml")).unwrap();
    let cut = Instant::now();
    assert_eq!(terminate_leader_session(&pg, "daemons"), "1");
    b.wait_for(TAKEOVER, "b leading", |i| i.leader_gauges() == (1, 2));
    let took = cut.elapsed();
    b.wait_for(TAKEOVER, "b published", |i| i.health().1.starts_with("ok"));
    let published = cut.elapsed();
    eprintln!("daemon takeover: leading after {took:?}, published after {published:?} (store.takeover {TAKEOVER:?})");
    assert!(
        p.path().join("public/atom.xml").exists(),
        "the new leader wrote atom.xml"
    );
    assert_eq!(b.get("/atom.xml").status, 200);
    a.wait_for(TAKEOVER, "a standing by", |i| {
        i.leader_gauges() == (0, 0) && i.health().1.starts_with("standby")
    });
    assert_eq!(epoch_row(&pg, "daemons"), "2 b");
}

/// `feedwerk run` on `[store] url` with the tests' takeover, as instance `name` of
/// project `p` (its own config file and port, the shared output directory).
fn start_run(p: &crate::support::Project, url: &str, name: &str) -> crate::support::Daemon {
    let text = p.read("config.toml").replace(
        "path = \"state/feedwerk.sqlite\"",
        &format!("url = \"{url}\"\ntakeover = \"{}s\"", TAKEOVER.as_secs()),
    );
    let config = p.path().join(format!("{name}.toml"));
    std::fs::write(&config, text).unwrap();
    let mut cmd = Command::new(crate::support::bin());
    cmd.current_dir(p.path())
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .env("FEEDWERK_LOG", "info");
    crate::support::Daemon::start_command(cmd)
}

fn health_of(d: &crate::support::Daemon) -> (u16, String) {
    let r = d.get("/healthz", &[]);
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

fn leading(d: &crate::support::Daemon) -> bool {
    let text = String::from_utf8(d.get("/metrics", &[]).body).unwrap();
    text.lines().any(|l| l == "feedwerk_leader 1")
}

#[test]
fn sigkill_of_the_leading_feedwerk_run_hands_over_to_the_standby_which_publishes() {
    let Some(pg) = PgServer::start() else { return };
    let url = pg.create_database("processes");
    let p = crate::support::Project::with_seed_posts();
    p.config(crate::support::LOCAL_DEFUS);
    let wait =
        |what: &str, d: &crate::support::Daemon, ok: &dyn Fn(&crate::support::Daemon) -> bool| {
            let until = Instant::now() + TAKEOVER * 3;
            while !ok(d) {
                assert!(
                    Instant::now() < until,
                    "{what}: {:?}\n{}",
                    health_of(d),
                    d.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        };

    let a = start_run(&p, &url, "a");
    let b = start_run(&p, &url, "b");
    // Exactly one leads (whichever won the lock), and it publishes; the other stands by.
    let until = Instant::now() + TAKEOVER * 3;
    let (mut leader, standby) = loop {
        match (leading(&a), leading(&b)) {
            (true, true) => panic!("both lead:\n{}\n{}", a.log(), b.log()),
            (true, false) => break (a, b),
            (false, true) => break (b, a),
            (false, false) => {}
        }
        assert!(
            Instant::now() < until,
            "no leader:\n{}\n{}",
            a.log(),
            b.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    wait("the leader publishes", &leader, &|d| {
        health_of(d).1.starts_with("ok")
    });
    let (status, text) = health_of(&standby);
    assert_eq!(status, 200, "{text}");
    assert!(text.starts_with("standby"), "{text}");
    assert!(!leading(&standby));
    assert_eq!(
        pg.psql("processes", "SELECT epoch FROM feedwerk_leader"),
        "1"
    );
    // Its first cycle stores the six posts in the database and publishes them (one
    // is a near copy of another: five entries).
    wait("the leader's first cycle", &leader, &|_| {
        pg.psql("processes", "SELECT count(*) FROM items") == "6"
            && p.read("public/atom.xml").matches("<entry").count() == 5
    });

    // The leader dies without a word: its connections close with the process.
    std::fs::remove_file(p.path().join("public/atom.xml")).unwrap();
    let killed = Instant::now();
    leader.signal("KILL");
    leader
        .wait_exit(Duration::from_secs(10))
        .expect("the killed leader exits");
    wait("the standby leads", &standby, &|d| leading(d));
    let took = killed.elapsed();
    wait("the new leader publishes", &standby, &|d| {
        health_of(d).1.starts_with("ok") && p.path().join("public/atom.xml").exists()
    });
    let published = killed.elapsed();
    eprintln!(
        "feedwerk run takeover after SIGKILL of the leader: leading after {took:?}, published after {published:?} (store.takeover {TAKEOVER:?})"
    );
    assert!(took < TAKEOVER, "took {took:?}");
    assert_eq!(
        pg.psql("processes", "SELECT epoch FROM feedwerk_leader"),
        "2"
    );
    let served = standby.get("/atom.xml", &[]);
    assert_eq!(served.status, 200);
    assert_eq!(
        served.body,
        std::fs::read(p.path().join("public/atom.xml")).unwrap()
    );
}

#[test]
fn a_paused_leader_that_wakes_after_a_takeover_stands_by_and_writes_nothing() {
    let Some(pg) = PgServer::start() else { return };
    let url = pg.create_database("paused");
    let p = crate::support::Project::with_seed_posts();
    p.config(crate::support::LOCAL_DEFUS);
    let a = start_run(&p, &url, "a");
    let until = Instant::now() + TAKEOVER * 3;
    while !(leading(&a) && health_of(&a).1.starts_with("ok")) {
        assert!(Instant::now() < until, "a does not lead:\n{}", a.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let b = start_run(&p, &url, "b");
    std::thread::sleep(timing().retry() * 2);
    assert!(!leading(&b));

    // a freezes (a paused VM, SIGSTOP); its connections stay up, so only the server
    // ending its leader session lets b in.
    a.signal("STOP");
    assert_eq!(terminate_leader_session(&pg, "paused"), "1");
    let until = Instant::now() + TAKEOVER;
    while !leading(&b) {
        assert!(Instant::now() < until, "b does not take over:\n{}", b.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let row = epoch_row(&pg, "paused");
    assert!(
        row.starts_with("2 ") && row.contains(&format!("pid {}", b.pid())),
        "{row}"
    );

    // a wakes: it finds its term over and stands by; b keeps leading, epoch 2.
    a.signal("CONT");
    let until = Instant::now() + TAKEOVER;
    while !health_of(&a).1.starts_with("standby") {
        assert!(Instant::now() < until, "a does not stand by:\n{}", a.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(timing().retry() * 2);
    assert!(leading(&b) && !leading(&a));
    assert_eq!(epoch_row(&pg, "paused"), row);
    assert!(a.log().contains("leadership given up"), "{}", a.log());
}
