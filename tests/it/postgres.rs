//! The PostgreSQL store (issue 20): the test server its tests stand on (`pg_server`: a
//! real server on 127.0.0.1 that a test starts, uses and stops), and the `[store] url`
//! settings the config check refuses. The commands on a PostgreSQL store are
//! `postgres_cli`'s.

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
fn store_url_that_is_not_postgres_is_refused_without_its_password() {
    let p = project_with_store("url = \"mysql://feedwerk:hunter2@127.0.0.1/feedwerk\"");
    let out = refused(&p);
    assert!(
        out.contains("`mysql://feedwerk:***@127.0.0.1/feedwerk` is not a PostgreSQL URL"),
        "{out}"
    );
    assert!(!out.contains("hunter2"), "{out}");
    let line = p
        .read("config.toml")
        .lines()
        .position(|l| l.starts_with("url = \"mysql://"))
        .unwrap()
        + 1;
    assert!(out.contains(&format!("line {line}: `store.url`")), "{out}");
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

// --- The PostgreSQL store's areas built so far, against the SQLite store's behaviour.

use chrono::{DateTime, TimeZone, Utc};
use feedwerk::model::{SourceId, SourceState};
use feedwerk::store::postgres::PgStore;
use feedwerk::store::{MetaStore, OutputStore, SourceStore, Store, StoreError};

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).unwrap()
}

/// What a store answers to one fixed sequence of meta, source and output calls, as
/// text to compare between backends.
fn observe(s: &mut (impl MetaStore + SourceStore + OutputStore)) -> Vec<String> {
    let mut seen = Vec::new();
    seen.push(format!("meta before: {:?}", s.meta("k").unwrap()));
    s.set_meta("k", "one").unwrap();
    s.set_meta("k", "two").unwrap();
    s.note_unpublished_changes().unwrap();
    seen.push(format!("meta after: {:?}", s.meta("k").unwrap()));
    seen.push(format!(
        "unpublished: {:?}",
        s.meta("unpublished_changes").unwrap()
    ));

    let fresh = s.source_state(&SourceId("never-seen".into())).unwrap();
    seen.push(format!("fresh: {fresh:?}"));
    let a = SourceState {
        id: "a".into(),
        url: Some("http://127.0.0.1:9/a.xml".into()),
        etag: Some("\"v1\"".into()),
        last_modified: Some("Wed, 02 Dec 2026 05:00:00 GMT".into()),
        last_attempt: Some(at(1_790_000_000)),
        last_success: Some(at(1_789_999_000)),
        last_status: Some("200".into()),
        last_error: None,
        consecutive_failures: 0,
        next_fetch: Some(at(1_790_000_900)),
        moved_to: None,
        gone: false,
        fetch_count: 3,
        items_held: 0,
    };
    let b = SourceState {
        id: "b".into(),
        last_error: Some("connection refused".into()),
        consecutive_failures: 4,
        moved_to: Some("http://127.0.0.1:9/new.xml".into()),
        gone: true,
        ..SourceState::default()
    };
    s.save_source_states(&[a.clone(), b]).unwrap();
    // Saving again replaces, never duplicates.
    let a2 = SourceState {
        fetch_count: 4,
        etag: Some("\"v2\"".into()),
        ..a
    };
    s.save_source_states(&[a2]).unwrap();
    seen.push(format!(
        "a: {:?}",
        s.source_state(&SourceId("a".into())).unwrap()
    ));
    let mut all: Vec<_> = s.source_states().unwrap().into_iter().collect();
    all.sort_by(|x, y| x.0.cmp(&y.0));
    seen.push(format!("all: {all:?}"));

    s.set_reading_fingerprint("a", "f1").unwrap();
    s.set_reading_fingerprint("a", "f2").unwrap();
    s.set_reading_fingerprint("b", "f3").unwrap();
    let mut fp: Vec<_> = s.reading_fingerprints().unwrap().into_iter().collect();
    fp.sort();
    seen.push(format!("fingerprints: {fp:?}"));

    seen.push(format!(
        "no output: {:?}",
        s.output_state("feed.xml").unwrap()
    ));
    s.save_output_state("feed.xml", "h1", at(1_790_000_000))
        .unwrap();
    s.save_output_state("feed.xml", "h2", at(1_790_000_060))
        .unwrap();
    s.save_output_state("atom.xml", "h3", at(1_790_000_120))
        .unwrap();
    seen.push(format!("output: {:?}", s.output_state("feed.xml").unwrap()));
    let mut dates: Vec<_> = s.output_dates().unwrap().into_iter().collect();
    dates.sort();
    seen.push(format!("dates: {dates:?}"));
    seen
}

#[test]
fn meta_source_states_and_outputs_answer_on_postgres_exactly_as_on_sqlite() {
    let Some(pg) = PgServer::start() else { return };
    let mut postgres = PgStore::connect(&pg.create_database("parity")).unwrap();
    let mut sqlite = Store::in_memory("x.example").unwrap();
    let on_sqlite = observe(&mut sqlite);
    assert_eq!(observe(&mut postgres), on_sqlite);
    // And the shared answers are the right ones, not merely equal.
    let text = on_sqlite.join("\n");
    for expected in [
        "meta before: None",
        "meta after: Some(\"two\")",
        "unpublished: Some(\"1\")",
        "etag: Some(\"\\\"v2\\\"\")",
        "fetch_count: 4",
        "consecutive_failures: 4",
        "fingerprints: [(\"a\", \"f2\"), (\"b\", \"f3\")]",
        "output: Some((\"h2\", 2026-09-21T14:14:20Z))",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
}

#[test]
fn items_held_count_only_items_not_withdrawn_on_both_backends() {
    let Some(pg) = PgServer::start() else { return };
    let postgres = PgStore::connect(&pg.create_database("held")).unwrap();
    let sqlite = Store::in_memory("x.example").unwrap();
    for (id, withdrawn) in [("i1", 0), ("i2", 0), ("i3", 1)] {
        let values =
            format!("('{id}', 'a', 0, 0, 0, 'tag:x.example,2026:{id}', {withdrawn}, '{{}}')");
        let insert = "INSERT INTO items (id, source_id, published, first_seen, last_seen, \
                      published_id, withdrawn, data) VALUES ";
        sqlite
            .connection()
            .execute_batch(&format!("{insert}{values}"))
            .unwrap();
        let pg_values = values
            .replace(", 0, '{}')", ", false, '{}')")
            .replace(", 1, '{}')", ", true, '{}')");
        pg.psql("held", &format!("{insert}{pg_values}"));
    }
    for s in [&sqlite as &dyn SourceStore, &postgres] {
        assert_eq!(s.source_state(&SourceId("a".into())).unwrap().items_held, 2);
        let all = s.source_states().unwrap();
        assert_eq!(all["a"].items_held, 2);
        assert_eq!(all["a"].id, "a");
    }
}

#[test]
fn connecting_migrates_once_and_a_second_connect_keeps_the_data() {
    let Some(pg) = PgServer::start() else { return };
    let url = pg.create_database("migrate");
    let first = PgStore::connect(&url).unwrap();
    assert_eq!(first.schema_version().unwrap(), 1);
    first.set_meta("kept", "yes").unwrap();
    drop(first);
    let again = PgStore::connect(&url).unwrap();
    assert_eq!(again.schema_version().unwrap(), 1);
    assert_eq!(again.meta("kept").unwrap().as_deref(), Some("yes"));
    assert_eq!(
        pg.psql("migrate", "SELECT count(*) FROM feedwerk_schema"),
        "1"
    );
}

#[test]
fn processes_starting_at_once_on_a_new_database_migrate_it_once() {
    let Some(pg) = PgServer::start() else { return };
    let url = pg.create_database("race");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgStore::connect(&url).map(|s| s.schema_version()))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap().unwrap(), 1);
    }
}

#[test]
fn a_database_of_a_newer_schema_is_refused_naming_both_versions() {
    let Some(pg) = PgServer::start() else { return };
    let url = pg.create_database("newer");
    drop(PgStore::connect(&url).unwrap());
    pg.psql("newer", "UPDATE feedwerk_schema SET version = 99");
    let e = PgStore::connect(&url)
        .err()
        .expect("a newer schema is refused");
    assert!(
        matches!(
            e,
            StoreError::PgNewerSchema {
                version: 99,
                known: 1
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("upgrade feedwerk"), "{e}");
}

#[test]
fn an_unreadable_url_is_an_error_that_does_not_show_the_password() {
    let e = PgStore::connect("postgres://feedwerk:s3cret@127.0.0.1:notaport/db")
        .err()
        .expect("a bad port is refused");
    let text = e.to_string();
    assert!(!text.contains("s3cret"), "{text}");
    assert!(
        text.contains("postgres://feedwerk:***@127.0.0.1:notaport/db"),
        "{text}"
    );
}

#[test]
fn a_server_that_is_not_there_is_a_connection_error_not_a_hang() {
    // A port nothing listens on (taken, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let e = PgStore::connect(&format!("postgres://feedwerk@127.0.0.1:{port}/db"))
        .err()
        .expect("no server, no store");
    assert!(matches!(e, StoreError::PgConnect(_)), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn a_group_commits_together_its_reads_see_its_writes_and_a_failed_group_leaves_nothing() {
    let Some(pg) = PgServer::start() else { return };
    let url = pg.create_database("group");
    let mut store = PgStore::connect(&url).unwrap();
    let done: Result<(), StoreError> = store.group(|s| {
        s.set_meta("a", "1")?;
        s.set_meta("b", "2")?;
        // Inside the group, its own writes are read back on its connection...
        assert_eq!(s.meta("a")?.as_deref(), Some("1"));
        // ...and no other session sees them before the commit.
        assert_eq!(
            pg.psql("group", "SELECT count(*) FROM meta WHERE key IN ('a', 'b')"),
            "0"
        );
        Ok(())
    });
    done.unwrap();
    assert_eq!(
        pg.psql(
            "group",
            "SELECT string_agg(value, ',' ORDER BY key) FROM meta WHERE key IN ('a', 'b')"
        ),
        "1,2"
    );

    let failed: Result<(), StoreError> = store.group(|s| {
        s.set_meta("a", "changed")?;
        s.set_meta("c", "3")?;
        Err(StoreError::PgGone)
    });
    assert!(matches!(failed, Err(StoreError::PgGone)));
    assert_eq!(store.meta("a").unwrap().as_deref(), Some("1"));
    assert_eq!(store.meta("c").unwrap(), None);

    // Groups do not nest; the outer one still commits what it wrote.
    let nested: Result<(), StoreError> = store.group(|s| {
        s.set_meta("d", "4")?;
        let inner: Result<(), StoreError> = s.group(|_| Ok(()));
        assert!(matches!(inner, Err(StoreError::PgNestedGroup)), "{inner:?}");
        Ok(())
    });
    nested.unwrap();
    assert_eq!(store.meta("d").unwrap().as_deref(), Some("4"));
}
