//! Golden builds: `build` with a fixed clock (`FEEDWERK_NOW`) on the shipped deployment
//! and on a multi-partner fixture project, every published file compared byte for byte
//! with the files committed under `tests/golden/<name>/expected/`.
//!
//! These pin the outputs before code moves: a refactor that changes one of these files
//! is not a refactor. A deliberate change of behaviour re-records them with
//! `FEEDWERK_UPDATE_GOLDEN=1 cargo test --test it golden`, and the commit says why.
//!
//! Partners are served from fixed loopback addresses (`127.77.0.x`, nothing else uses
//! them), so the URLs the outputs name (OPML, `atom:source`) are the same on every run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::{fixture, repo_root, Project, Route, TestServer};

/// The multi-partner tests serve their partners at one fixed address (the outputs name
/// it), so they take turns.
pub(crate) static PARTNER_ADDRESS: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(crate) fn golden(name: &str) -> PathBuf {
    repo_root().join("tests/golden").join(name)
}

fn updating() -> bool {
    std::env::var("FEEDWERK_UPDATE_GOLDEN").as_deref() == Ok("1")
}

/// Every file below `dir`, by its `/`-separated path relative to `dir`.
pub(crate) fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                let rel = rel.to_string_lossy().replace('\\', "/");
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

pub(crate) fn copy_tree(from: &Path, to: &Path) {
    for (rel, bytes) in files_under(from) {
        let p = to.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

/// The first line where two texts differ, for a readable failure.
fn first_difference(expected: &[u8], actual: &[u8]) -> String {
    let (e, a) = (
        String::from_utf8_lossy(expected),
        String::from_utf8_lossy(actual),
    );
    for (n, (el, al)) in e.lines().zip(a.lines()).enumerate() {
        if el != al {
            return format!("line {}:\n  expected: {el}\n  actual:   {al}", n + 1);
        }
    }
    format!(
        "{} bytes expected, {} bytes written (one is a prefix of the other)",
        expected.len(),
        actual.len()
    )
}

/// Compares the published tree with `expected` (or records it when updating).
pub(crate) fn assert_same_tree(published: &Path, expected: &Path) {
    let actual = files_under(published);
    assert!(
        !actual.is_empty(),
        "nothing published under {}",
        published.display()
    );
    if updating() {
        let _ = std::fs::remove_dir_all(expected);
        copy_tree(published, expected);
        eprintln!(
            "golden: recorded {} files in {}",
            actual.len(),
            expected.display()
        );
        return;
    }
    let wanted = files_under(expected);
    let mut problems = Vec::new();
    for name in wanted.keys().filter(|k| !actual.contains_key(*k)) {
        problems.push(format!("missing: {name}"));
    }
    for name in actual.keys().filter(|k| !wanted.contains_key(*k)) {
        problems.push(format!("not in the golden files: {name}"));
    }
    for (name, bytes) in &actual {
        if let Some(want) = wanted.get(name) {
            if want != bytes {
                problems.push(format!(
                    "differs: {name}: {}",
                    first_difference(want, bytes)
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "published files differ from {} ({} problems; FEEDWERK_UPDATE_GOLDEN=1 re-records \
         them, for a deliberate change only):\n{}",
        expected.display(),
        problems.len(),
        problems.join("\n")
    );
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("xml") => "application/rss+xml; charset=utf-8",
        Some("atom") => "application/atom+xml; charset=utf-8",
        Some("json") => "application/feed+json; charset=utf-8",
        _ => "text/html; charset=utf-8",
    }
}

/// Serves every file of `dir` at `/<name>`, each with an ETag (so unchanged partners
/// answer 304 on the next build, as real ones do).
pub(crate) fn serve_partners(server: &TestServer, dir: &Path) {
    for (name, body) in files_under(dir) {
        let etag = format!("\"{}\"", &blake3::hash(&body).to_hex()[..16]);
        server.route(
            &format!("/{name}"),
            Route::ok(content_type(&name), body).etag(&etag),
        );
    }
}

pub(crate) fn build_at(p: &Project, now: &str) -> String {
    let out = p
        .command(&["build"])
        .env("FEEDWERK_NOW", now)
        .output()
        .expect("run feedwerk build");
    let run = crate::support::Run(out);
    run.success();
    run.all()
}

/// The shipped `config.toml` and `feeds/defus`, offline: every partner URL points at a
/// loopback port where nothing listens. The local posts must still publish.
#[test]
fn golden_shipped_config_offline_build() {
    let p = Project::with_seed_posts();
    let shipped = std::fs::read_to_string(repo_root().join("config.toml")).unwrap();
    let mut config = String::new();
    for line in shipped.lines() {
        match line.strip_prefix("url = \"https://") {
            Some(rest) => {
                let path = rest
                    .split_once('/')
                    .map_or("", |(_, p)| p)
                    .trim_end_matches('"');
                config.push_str(&format!("url = \"http://127.77.0.9:9/{path}\"\n"));
            }
            None => config.push_str(&format!("{line}\n")),
        }
    }
    assert_eq!(
        config.matches("127.77.0.9").count(),
        3,
        "three partners redirected"
    );
    p.write("config.toml", &config);
    let log = build_at(&p, "2026-11-30T09:00:00Z");
    assert!(log.contains("efus"), "{log}");
    assert_same_tree(&p.path().join("public"), &golden("shipped/expected"));
}

/// A local source, RSS, Atom, JSON Feed and page partners, cross-posts, tags mapped
/// across languages, a channel and archive pages; then a second build a day later in
/// which one partner adds and edits items, one adds a page item, a local post is added,
/// and the others answer 304.
#[test]
fn golden_multi_partner_two_builds() {
    let _turn = PARTNER_ADDRESS.lock().unwrap_or_else(|e| e.into_inner());
    let root = golden("multi-partner");
    let (p, server) = multi_partner_project();

    serve_partners(&server, &root.join("steps/1/partners"));
    build_at(&p, "2018-03-01T08:00:00Z");
    assert_same_tree(&p.path().join("public"), &root.join("expected/1"));

    serve_partners(&server, &root.join("steps/2/partners"));
    copy_tree(&root.join("steps/2/project"), p.path());
    build_at(&p, "2018-03-02T08:00:00Z");
    assert_same_tree(&p.path().join("public"), &root.join("expected/2"));
}

/// The second multi-partner build over the store the first one left as schema 2 wrote
/// it (`tests/fixtures/store/multi-partner-1.schema-2.sql`, the `.dump` of that store
/// made by the version before lean item rows), with the first build's outputs in
/// place: opening migrates the store, and the build publishes exactly the bytes it
/// publishes over a store of today's schema — every published ID, date, cluster and
/// provenance kept, and the migrated items still found as duplicates.
#[test]
fn golden_multi_partner_second_build_over_a_schema_2_store() {
    second_build_over_an_older_store("store/multi-partner-1.schema-2.sql");
}

/// The same over the store as schema 3 wrote it (the version before the title lookups'
/// dated indexes and the stored band bitmap).
#[test]
fn golden_multi_partner_second_build_over_a_schema_3_store() {
    second_build_over_an_older_store("store/multi-partner-1.schema-3.sql");
}

/// The same over the store as schema 4 wrote it (the version whose item inserts fired
/// the publish-index triggers, with two indexes by source and one by language).
#[test]
fn golden_multi_partner_second_build_over_a_schema_4_store() {
    second_build_over_an_older_store("store/multi-partner-1.schema-4.sql");
}

fn second_build_over_an_older_store(dump: &str) {
    let _turn = PARTNER_ADDRESS.lock().unwrap_or_else(|e| e.into_inner());
    let root = golden("multi-partner");
    let (p, server) = multi_partner_project();
    copy_tree(&root.join("expected/1"), &p.path().join("public"));
    let store = p.path().join("state/feedwerk.sqlite");
    std::fs::create_dir_all(store.parent().unwrap()).unwrap();
    let dump = std::fs::read_to_string(fixture(dump)).unwrap();
    let published_ids = |conn: &rusqlite::Connection| -> Vec<(String, String)> {
        let mut stmt = conn
            .prepare("SELECT id, published_id FROM items ORDER BY id")
            .unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    };
    let (before, old_version) = {
        let conn = rusqlite::Connection::open(&store).unwrap();
        conn.execute_batch(&dump).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        (published_ids(&conn), v)
    };
    assert_eq!(before.len(), 17);

    serve_partners(&server, &root.join("steps/2/partners"));
    copy_tree(&root.join("steps/2/project"), p.path());
    build_at(&p, "2018-03-02T08:00:00Z");
    assert_same_tree(&p.path().join("public"), &root.join("expected/2"));

    let conn = rusqlite::Connection::open(&store).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert!(
        version >= 4 && version > old_version,
        "migrated from {old_version}, user_version {version}"
    );
    let after = published_ids(&conn);
    assert!(
        before.iter().all(|b| after.contains(b)),
        "every item held keeps its published ID"
    );
}

/// The multi-partner golden project in a new directory, its config pointing at a partner
/// server on the address its golden files name (no partner file served yet).
pub(crate) fn multi_partner_project() -> (Project, TestServer) {
    let root = golden("multi-partner");
    let p = Project::new();
    let server = TestServer::start_at("127.77.0.1:8080");
    let base = format!("http://{}", server.addr);
    copy_tree(&root.join("project"), p.path());
    let config = p.read("config.toml").replace("{PARTNERS}", &base);
    p.write("config.toml", &config);
    (p, server)
}
