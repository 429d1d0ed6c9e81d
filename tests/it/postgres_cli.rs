//! The commands on a PostgreSQL store (`[store] url`), through the `feedwerk` binary
//! on a real server (`pg_server`): the golden builds publish the same bytes as on
//! SQLite; `migrate` moves a SQLite store built by the golden build without changing a
//! published ID, and the next build on PostgreSQL publishes what it publishes on
//! SQLite; `migrate` refuses a target that holds data; `check` and `sources` read the
//! database; an unreachable server is named without its password.

use crate::golden::{
    assert_same_tree, build_at, copy_tree, golden, multi_partner_project, serve_partners,
    PARTNER_ADDRESS,
};
use crate::pg_server::PgServer;
use crate::support::{Project, TestServer};

/// `url` with a password added (the test server trusts 127.0.0.1, so it is ignored
/// there, but every message must hide it).
fn with_password(url: &str) -> String {
    url.replacen("postgres://postgres@", "postgres://postgres:hunter2@", 1)
}

/// `url` as messages show it.
fn masked(url: &str) -> String {
    url.replacen("postgres://postgres@", "postgres://postgres:***@", 1)
}

/// Points `p`'s config at the database `url` instead of the SQLite file.
fn use_postgres(p: &Project, url: &str) {
    let config = p.read("config.toml");
    let sqlite = "[store]\npath = \"state/feedwerk.sqlite\"\n";
    assert!(config.contains(sqlite), "{config}");
    p.write(
        "config.toml",
        &config.replacen(sqlite, &format!("[store]\nurl = \"{url}\"\n"), 1),
    );
}

/// The multi-partner golden project, its partners served as in step 1.
fn multi_partner() -> (Project, TestServer) {
    let root = golden("multi-partner");
    let (p, server) = multi_partner_project();
    serve_partners(&server, &root.join("steps/1/partners"));
    (p, server)
}

/// The golden multi-partner step 2: partners and project files of the second build.
fn step_2(p: &Project, server: &TestServer) {
    let root = golden("multi-partner");
    serve_partners(server, &root.join("steps/2/partners"));
    copy_tree(&root.join("steps/2/project"), p.path());
}

/// `id published_id` of every item, in ID order, from the database.
fn pg_published_ids(pg: &PgServer, db: &str) -> Vec<String> {
    let out = pg.psql(
        db,
        "SELECT id || ' ' || published_id FROM items ORDER BY id COLLATE \"C\"",
    );
    out.lines().map(str::to_owned).collect()
}

fn sqlite_published_ids(p: &Project) -> Vec<String> {
    let conn = rusqlite::Connection::open(p.path().join("state/feedwerk.sqlite")).unwrap();
    let mut stmt = conn
        .prepare("SELECT id || ' ' || published_id FROM items ORDER BY id")
        .unwrap();
    let rows = stmt.query_map([], |r| r.get(0)).unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

/// `migrate` with the URL from `$FEEDWERK_MIGRATE_TO`, as an operator would keep the
/// password off the command line.
fn migrate(p: &Project, url: &str) -> crate::support::Run {
    let out = p
        .command(&["migrate", "--from", "state/feedwerk.sqlite"])
        .env("FEEDWERK_MIGRATE_TO", url)
        .output()
        .expect("run feedwerk migrate");
    crate::support::Run(out)
}

#[test]
fn golden_multi_partner_two_builds_on_postgres_publish_the_sqlite_bytes() {
    let Some(pg) = PgServer::start() else { return };
    let _turn = PARTNER_ADDRESS.lock().unwrap_or_else(|e| e.into_inner());
    let root = golden("multi-partner");
    let (p, server) = multi_partner();
    use_postgres(&p, &pg.create_database("golden"));
    build_at(&p, "2018-03-01T08:00:00Z");
    assert_same_tree(&p.path().join("public"), &root.join("expected/1"));
    assert!(
        !p.path().join("state/feedwerk.sqlite").exists(),
        "a PostgreSQL build made a SQLite file"
    );
    step_2(&p, &server);
    build_at(&p, "2018-03-02T08:00:00Z");
    assert_same_tree(&p.path().join("public"), &root.join("expected/2"));
}

#[test]
fn migrate_keeps_every_published_id_and_the_next_build_publishes_what_sqlite_would() {
    let Some(pg) = PgServer::start() else { return };
    let _turn = PARTNER_ADDRESS.lock().unwrap_or_else(|e| e.into_inner());
    let root = golden("multi-partner");
    let (p, server) = multi_partner();
    build_at(&p, "2018-03-01T08:00:00Z");
    let before = sqlite_published_ids(&p);
    assert_eq!(before.len(), 17);

    let url = pg.create_database("moved");
    let run = migrate(&p, &with_password(&url));
    run.success();
    let out = run.all();
    assert!(out.contains(&masked(&url)), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
    assert!(out.contains("items                  17"), "{out}");
    assert_eq!(pg_published_ids(&pg, "moved"), before);
    // Items keep SQLite's rowid order as `seq` (the order ties are returned in), and
    // every copied table holds as many rows as in SQLite.
    let sqlite = rusqlite::Connection::open(p.path().join("state/feedwerk.sqlite")).unwrap();
    let sqlite_rows = |sql: &str| -> Vec<String> {
        let mut stmt = sqlite.prepare(sql).unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    };
    assert_eq!(
        pg.psql("moved", "SELECT id || ' ' || seq FROM items ORDER BY seq")
            .lines()
            .collect::<Vec<_>>(),
        sqlite_rows("SELECT id || ' ' || rowid FROM items ORDER BY rowid")
    );
    for table in [
        "sources",
        "outputs",
        "item_tags",
        "dedupe_sig",
        "dedupe_shown",
        "output_headers",
    ] {
        let count = format!("SELECT CAST(count(*) AS TEXT) FROM {table}");
        assert_eq!(pg.psql("moved", &count), sqlite_rows(&count)[0], "{table}");
    }
    // The derived tables were rebuilt from the copied signatures and titles.
    let bands: i64 = pg
        .psql("moved", "SELECT count(*) FROM dedupe_band")
        .parse()
        .unwrap();
    let sigs: i64 = pg
        .psql("moved", "SELECT count(*) FROM dedupe_sig")
        .parse()
        .unwrap();
    assert!(
        sigs > 0 && bands >= sigs,
        "{sigs} signatures, {bands} band rows"
    );

    use_postgres(&p, &with_password(&url));
    step_2(&p, &server);
    build_at(&p, "2018-03-02T08:00:00Z");
    assert_same_tree(&p.path().join("public"), &root.join("expected/2"));
    let after = pg_published_ids(&pg, "moved");
    assert!(
        before.iter().all(|b| after.contains(b)),
        "every item keeps its published ID:\nbefore {before:#?}\nafter {after:#?}"
    );
}

#[test]
fn migrate_refuses_a_target_that_holds_data_and_copies_nothing() {
    let Some(pg) = PgServer::start() else { return };
    let p = Project::with_seed_posts();
    p.config(crate::support::LOCAL_DEFUS);
    p.run(&["build"]).success();
    let url = pg.create_database("taken");
    migrate(&p, &url).success();
    let held = pg.psql("taken", "SELECT count(*) FROM items");
    assert_ne!(held, "0");

    let again = migrate(&p, &with_password(&url));
    assert_ne!(again.code(), Some(0), "{}", again.all());
    let err = again.stderr();
    assert!(err.contains("already holds rows"), "{err}");
    assert!(err.contains(&masked(&url)), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert_eq!(pg.psql("taken", "SELECT count(*) FROM items"), held);
}

#[test]
fn a_value_migrate_cannot_copy_rolls_back_everything_and_a_second_run_succeeds() {
    let Some(pg) = PgServer::start() else { return };
    let p = Project::with_seed_posts();
    p.config(crate::support::LOCAL_DEFUS);
    p.run(&["build"]).success();
    // `outputs` is copied after `items`: its bad row comes once items are in.
    let sqlite = rusqlite::Connection::open(p.path().join("state/feedwerk.sqlite")).unwrap();
    let path: String = sqlite
        .query_row("SELECT path FROM outputs ORDER BY path LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    let date: i64 = sqlite
        .query_row(
            "SELECT last_modified FROM outputs WHERE path = ?1",
            [&path],
            |r| r.get(0),
        )
        .unwrap();
    sqlite
        .execute(
            "UPDATE outputs SET last_modified = 'soon' WHERE path = ?1",
            [&path],
        )
        .unwrap();
    let url = pg.create_database("halfway");
    let run = migrate(&p, &url);
    assert_ne!(run.code(), Some(0), "{}", run.all());
    assert!(
        run.stderr().contains(
            "table outputs, column last_modified: text where the PostgreSQL column is BIGINT"
        ),
        "{}",
        run.all()
    );
    assert_eq!(pg.psql("halfway", "SELECT count(*) FROM items"), "0");

    sqlite
        .execute(
            "UPDATE outputs SET last_modified = ?1 WHERE path = ?2",
            rusqlite::params![date, &path],
        )
        .unwrap();
    drop(sqlite);
    migrate(&p, &url).success();
    assert_ne!(pg.psql("halfway", "SELECT count(*) FROM items"), "0");
}

#[test]
fn migrate_from_a_missing_file_names_it() {
    let Some(pg) = PgServer::start() else { return };
    let p = Project::with_seed_posts();
    let run = migrate(&p, &pg.create_database("nothing"));
    assert_ne!(run.code(), Some(0));
    assert!(
        run.stderr()
            .contains("state/feedwerk.sqlite: no SQLite store there"),
        "{}",
        run.all()
    );
}

#[test]
fn check_and_sources_read_the_postgres_store() {
    let Some(pg) = PgServer::start() else { return };
    let p = Project::with_seed_posts();
    p.config(crate::support::LOCAL_DEFUS);
    let url = with_password(&pg.create_database("checked"));
    use_postgres(&p, &url);

    let fresh = p.run(&["check"]);
    assert_eq!(fresh.code(), Some(0), "{}", fresh.all());
    assert!(
        fresh.stdout().contains(&format!(
            "store {}: reachable, no feedwerk store yet",
            masked(&url)
        )),
        "{}",
        fresh.all()
    );
    // `check` wrote nothing: the database still has no tables.
    assert_eq!(
        pg.psql(
            "checked",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0"
    );

    p.run(&["build"]).success();
    let held = pg.psql("checked", "SELECT count(*) FROM items WHERE NOT withdrawn");
    let check = p.run(&["check"]);
    assert_eq!(check.code(), Some(0), "{}", check.all());
    assert!(
        check.stdout().contains(&format!(
            "store {}: ok, PostgreSQL schema version 1, {held} items held",
            masked(&url)
        )),
        "{}",
        check.all()
    );
    assert!(!check.all().contains("hunter2"), "{}", check.all());

    let sources = p.run(&["sources"]);
    sources.success();
    let line = sources
        .stdout()
        .lines()
        .find(|l| l.starts_with("defus"))
        .map(str::to_owned)
        .unwrap_or_default();
    let items: Vec<&str> = line.split_whitespace().collect();
    assert!(items.contains(&held.as_str()), "{}", sources.all());
    assert!(line.contains("local"), "{line}");
}

#[test]
fn an_unreachable_store_url_is_named_without_its_password() {
    let p = Project::with_seed_posts();
    p.config(crate::support::LOCAL_DEFUS);
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://feedwerk:hunter2@127.0.0.1:{port}/feedwerk");
    let shown = format!("postgres://feedwerk:***@127.0.0.1:{port}/feedwerk");
    use_postgres(&p, &url);
    for cmd in [&["build"][..], &["sources"], &["check"]] {
        let run = p.run(cmd);
        assert_ne!(run.code(), Some(0), "{cmd:?}: {}", run.all());
        let out = run.all();
        assert!(out.contains(&shown), "{cmd:?}: {out}");
        assert!(!out.contains("hunter2"), "{cmd:?}: {out}");
        assert!(out.contains("Connection refused"), "{cmd:?}: {out}");
    }
    assert!(!p.path().join("state").exists(), "a SQLite store was made");
}

#[test]
fn dry_run_on_postgres_is_refused_and_writes_nothing() {
    let Some(pg) = PgServer::start() else { return };
    let p = Project::with_seed_posts();
    p.config(crate::support::LOCAL_DEFUS);
    let url = pg.create_database("dry");
    use_postgres(&p, &url);
    let run = p.run(&["build", "--dry-run"]);
    assert_ne!(run.code(), Some(0), "{}", run.all());
    assert!(
        run.stderr()
            .contains("build --dry-run is not supported with the PostgreSQL store"),
        "{}",
        run.all()
    );
    assert_eq!(
        pg.psql(
            "dry",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0"
    );
    assert!(!p.path().join("public").exists());
}
