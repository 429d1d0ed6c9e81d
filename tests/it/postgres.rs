//! The PostgreSQL store (issue 20), as far as it goes: the test server its tests stand
//! on (`pg_server`: a real server on 127.0.0.1 that a test starts, uses and stops), and
//! `[store] url`, which the config check refuses until the backend is complete.

use std::net::TcpStream;

use crate::pg_server::PgServer;

#[test]
fn test_server_answers_sql_over_tcp_and_is_gone_when_dropped() {
    let Some(pg) = PgServer::start() else { return };
    let url = pg.create_database("harness");
    assert!(
        url.ends_with(&format!("127.0.0.1:{}/harness", pg.port())),
        "{url}"
    );
    pg.psql(
        "harness",
        "CREATE TABLE t (n int); INSERT INTO t VALUES (41), (1)",
    );
    assert_eq!(pg.psql("harness", "SELECT sum(n) FROM t"), "42");
    let port = pg.port();
    drop(pg);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server still listens on {port} after drop"
    );
}

#[test]
fn two_test_servers_run_side_by_side_on_their_own_ports() {
    let Some(a) = PgServer::start() else { return };
    let Some(b) = PgServer::start() else { return };
    assert_ne!(a.port(), b.port());
    a.psql("postgres", "CREATE TABLE only_in_a (n int)");
    assert_eq!(
        b.psql(
            "postgres",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"
        ),
        "0"
    );
}

/// A project whose `[store]` table is `store` (the table's lines, no header).
fn project_with_store(store: &str) -> crate::support::Project {
    let p = crate::support::Project::with_seed_posts();
    p.config(crate::support::LOCAL_DEFUS);
    let text = p.read("config.toml").replace(
        "[store]\npath = \"state/feedwerk.sqlite\"\n",
        &format!("[store]\n{store}\n"),
    );
    p.write("config.toml", &text);
    p
}

/// `check` and `build` on such a project: both refuse, with the same message, and
/// `build` creates no store.
fn refused(p: &crate::support::Project) -> String {
    let check = p.run(&["check"]);
    assert_eq!(check.code(), Some(1), "{}", check.all());
    let build = p.run(&["build"]);
    assert_ne!(build.code(), Some(0), "{}", build.all());
    assert!(!p.path().join("state").exists(), "build made a store");
    check.all()
}

#[test]
fn store_url_is_refused_as_not_yet_supported_naming_the_key_and_line() {
    let p = project_with_store("url = \"postgres://feedwerk@127.0.0.1:5432/feedwerk\"");
    let out = refused(&p);
    assert!(out.contains("`store.url`"), "{out}");
    assert!(out.contains("not yet supported"), "{out}");
    let line = p
        .read("config.toml")
        .lines()
        .position(|l| l.starts_with("url = \"postgres://"))
        .unwrap()
        + 1;
    assert!(out.contains(&format!("line {line}:")), "{out}");
}

#[test]
fn store_url_and_store_path_together_are_refused_as_exclusive() {
    let p = project_with_store(
        "path = \"state/feedwerk.sqlite\"\nurl = \"postgresql://feedwerk@127.0.0.1/feedwerk\"",
    );
    let out = refused(&p);
    assert!(
        out.contains("`store.url` and `store.path` exclude each other"),
        "{out}"
    );
}

#[test]
fn store_url_that_is_not_postgres_is_refused_naming_it() {
    let p = project_with_store("url = \"mysql://feedwerk@127.0.0.1/feedwerk\"");
    let out = refused(&p);
    assert!(
        out.contains("`mysql://feedwerk@127.0.0.1/feedwerk` is not a PostgreSQL URL"),
        "{out}"
    );
}

#[test]
fn store_path_alone_still_means_the_sqlite_file() {
    let p = project_with_store("path = \"db/other.sqlite\"");
    p.run(&["build"]).success();
    assert!(p.path().join("db/other.sqlite").is_file());
}
