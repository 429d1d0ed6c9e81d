//! Published IDs come from the inputs alone (`src/identity.rs`): the same config,
//! posts and partner items give the same IDs from an empty store on another day, and
//! IDs a store already holds (minted by older versions from the first-seen day) stay.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::{read_fixture, Project, Route, TestServer};

/// A project with the seed posts, a partner feed and a page source whose items have no
/// links (keyed by title and date as written).
fn project(server: &TestServer, extra_site: &str) -> Project {
    server.route(
        "/efus.xml",
        Route::ok(
            "application/rss+xml; charset=utf-8",
            read_fixture("publish/partner-efus-english-with-authors.xml"),
        ),
    );
    server.route(
        "/termine/",
        Route::ok("text/html", read_fixture("page/german-dates.html")),
    );
    let p = Project::with_seed_posts();
    p.config(&format!(
        r#"
[[source]]
id = "defus"
kind = "local"
path = "feeds/defus"

[[source]]
id = "efus"
kind = "feed"
url = "{}"

[[source]]
id = "termine"
kind = "page"
url = "{}"
selectors = {{ item = "article.post", title = "h2", date = ".meta" }}
"#,
        server.url("/efus.xml"),
        server.url("/termine/"),
    ));
    if !extra_site.is_empty() {
        let text = p.read("config.toml");
        p.write(
            "config.toml",
            &text.replacen("[site]\n", &format!("[site]\n{extra_site}\n"), 1),
        );
    }
    p
}

fn build_at(p: &Project, now: &str) {
    let out = p
        .command(&["build"])
        .env("FEEDWERK_NOW", now)
        .output()
        .unwrap();
    let run = crate::support::Run(out);
    run.success();
}

/// Every entry ID of every published Atom document, by (document, entry title).
fn ids(out: &Path) -> BTreeMap<(String, String), String> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![out.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|x| x == "atom") || path.ends_with("atom.xml") {
                let feed = feed_rs::parser::parse(&std::fs::read(&path).unwrap()[..]).unwrap();
                let doc = path.strip_prefix(out).unwrap().display().to_string();
                for entry in feed.entries {
                    let title = entry.title.map(|t| t.content).unwrap_or_default();
                    found.insert((doc.clone(), title), entry.id);
                }
            }
        }
    }
    found
}

#[test]
fn ids_survive_a_deleted_store_and_a_build_on_a_later_day() {
    let server = TestServer::start();
    let p = project(&server, "");
    build_at(&p, "2026-01-10T09:00:00Z");
    let before = ids(&p.path().join("public"));
    let sources: std::collections::BTreeSet<&str> = before
        .values()
        .map(|id| id.split(':').nth(2).unwrap().split('/').next().unwrap())
        .collect();
    assert_eq!(
        sources.into_iter().collect::<Vec<_>>(),
        ["defus", "efus", "termine"],
        "{before:#?}"
    );
    assert!(
        before
            .values()
            .all(|id| id.starts_with("tag:www.defus.de,2000-01-01:")),
        "the documented default date: {before:#?}"
    );

    std::fs::remove_dir_all(p.path().join("state")).unwrap();
    build_at(&p, "2027-07-04T18:30:00Z");
    let after = ids(&p.path().join("public"));
    assert_eq!(after, before, "every document, every entry, the same ID");
}

#[test]
fn the_configured_id_date_is_the_date_in_every_id() {
    let server = TestServer::start();
    let p = project(&server, "id_date = 2016-03-01");
    build_at(&p, "2026-01-10T09:00:00Z");
    let found = ids(&p.path().join("public"));
    assert!(!found.is_empty());
    for id in found.values() {
        assert!(id.starts_with("tag:www.defus.de,2016-03-01:"), "{id}");
    }
}

#[test]
fn an_id_date_with_a_time_is_refused_with_its_key() {
    let server = TestServer::start();
    let p = project(&server, "id_date = 2016-03-01T10:00:00");
    let out = p.run(&["check"]);
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert!(out.all().contains("site.id_date"), "{}", out.all());
}

/// A store written by an older version holds IDs dated by the day each item was first
/// seen. Those are what readers have: they are published unchanged, and only items
/// first stored now get IDs by the new rule.
#[test]
fn ids_held_by_an_older_store_are_kept_exactly() {
    let server = TestServer::start();
    let p = project(&server, "");
    build_at(&p, "2026-01-10T09:00:00Z");
    // Make the store what older versions wrote: first-seen dates in the IDs.
    let db = rusqlite::Connection::open(p.path().join("state/feedwerk.sqlite")).unwrap();
    let changed = db
        .execute(
            "UPDATE items SET published_id = replace(published_id, ',2000-01-01:', ',2026-01-10:')",
            [],
        )
        .unwrap();
    assert!(changed > 10);
    drop(db);
    p.write(
        "feeds/defus/2026-02-01-neu.md",
        "+++\ntitle = \"Neu im Februar\"\ndate = 2026-02-01\n+++\n\nEin neuer Beitrag.\n",
    );
    build_at(&p, "2026-02-02T09:00:00Z");
    let found = ids(&p.path().join("public"));
    let combined: Vec<(&String, &String)> = found
        .iter()
        .filter(|((doc, _), _)| doc == "atom.xml")
        .map(|((_, title), id)| (title, id))
        .collect();
    assert!(combined.len() > 10, "{combined:#?}");
    for (title, id) in combined {
        if title == "Neu im Februar" {
            assert_eq!(id, "tag:www.defus.de,2000-01-01:defus/2026-02-01-neu");
        } else {
            assert!(id.contains(",2026-01-10:"), "{title}: {id}");
        }
    }
}
