//! Publishing costs follow what changed: a refresh where every partner answers 304
//! renders nothing, and one changed partner re-renders only the channels its items
//! belong to (combined, its own, its tags' and its language's), in `build` and in the
//! daemon, whose catalog keeps serving the untouched documents.

use std::time::Duration;

use crate::support::{http_get, wait_for, Project, Route, TestServer};

fn rss(title: &str, tag: &str, lang: &str, guid: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Partner</title><link>https://partner.example/</link>
<description>d</description><language>{lang}</language>
<item><title>{title}</title><link>https://partner.example/{guid}</link><guid>{guid}</guid>
<pubDate>Mon, 03 Jun 2024 10:00:00 +0200</pubDate><category>{tag}</category>
<description>{body}</description></item>
</channel></rss>"#,
        // Unrelated texts, so deduplication keeps both partners' stories apart.
        body = if guid.starts_with('a') {
            "Der Stadtrat beschloss am Montag den neuen Haushalt für Schulen und Radwege."
        } else {
            "Le festival de musique attire chaque été des milliers de visiteurs au port."
        }
    )
}

/// Partner `a` (tag alpha, English) and partner `b` (tag beta, German), with ETags.
fn two_partners(server: &TestServer, a_title: &str, a_etag: &str) {
    server.route(
        "/a.xml",
        Route::ok("application/rss+xml", rss(a_title, "alpha", "en", "a-1")).etag(a_etag),
    );
    server.route(
        "/b.xml",
        Route::ok(
            "application/rss+xml",
            rss("Beta story", "beta", "de", "b-1"),
        )
        .etag("\"b1\""),
    );
}

/// The two partners, and `alpha` and `beta` in the tag vocabulary: with one item each,
/// they get channels only because they are named there (`publish.tag_min_items`).
fn project(server: &TestServer, extra: &str) -> Project {
    project_with_tags(server, extra, "[tags]\nalpha = []\nbeta = []")
}

fn project_with_tags(server: &TestServer, extra: &str, tags: &str) -> Project {
    let p = Project::new();
    p.config(&format!(
        r#"{extra}
{tags}

[[source]]
id = "a"
kind = "feed"
title = "Partner A"
url = "{}"

[[source]]
id = "b"
kind = "feed"
title = "Partner B"
url = "{}"
"#,
        server.url("/a.xml"),
        server.url("/b.xml")
    ));
    p
}

/// Rendered on every pass, cheap and independent of the items: OPML, the feed
/// stylesheet and the embed script.
const ALWAYS: usize = 3;

/// `(documents, written, unchanged, rendered)` from `build`'s summary line.
fn summary(stdout: &str) -> (usize, usize, usize, usize) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("published "))
        .unwrap_or_else(|| panic!("no summary in:\n{stdout}"));
    let num = |s: &str| -> usize { s.trim().parse().unwrap_or_else(|_| panic!("{line}")) };
    let docs = num(line["published ".len()..].split(' ').next().unwrap());
    let counts: Vec<usize> = line[line.rfind('(').unwrap() + 1..]
        .trim_end_matches(')')
        .split(", ")
        .map(|part| num(part.split(' ').next().unwrap()))
        .collect();
    (docs, counts[0], counts[1], counts[2])
}

/// GET that answers `None` while the daemon is not listening yet.
fn try_get(addr: std::net::SocketAddr, path: &str) -> Option<crate::support::HttpResponse> {
    std::net::TcpStream::connect(addr).ok()?;
    Some(http_get(addr, path, &[]))
}

#[test]
fn build_where_every_partner_answers_304_renders_nothing() {
    let server = TestServer::start();
    two_partners(&server, "Alpha story", "\"a1\"");
    let p = project(&server, "");
    let first = p.run(&["build"]);
    first.success();
    let (docs, written, _, rendered) = summary(&first.stdout());
    assert!(
        docs > 10 && written == docs && rendered == docs,
        "{}",
        first.stdout()
    );
    let rss_before = p.read("public/rss.xml");

    let second = p.run(&["build"]);
    second.success();
    assert_eq!(
        second.stdout().matches("not modified").count(),
        2,
        "{}",
        second.stdout()
    );
    assert!(
        second
            .stdout()
            .contains("nothing changed since the last publish (0 written"),
        "{}",
        second.stdout()
    );
    assert_eq!(p.read("public/rss.xml"), rss_before);
}

#[test]
fn one_changed_partner_rerenders_only_its_channels() {
    let server = TestServer::start();
    two_partners(&server, "Alpha story", "\"a1\"");
    let p = project(&server, "");
    p.run(&["build"]).success();
    let b_before = p.read("public/sources/b.rss");
    let beta_before = p.read("public/tags/beta.rss");

    two_partners(&server, "Alpha story, corrected", "\"a2\"");
    let run = p.run(&["build"]);
    run.success();
    let (docs, written, unchanged, rendered) = summary(&run.stdout());
    // combined (RSS, Atom, JSON, index.html) + sources/a + tags/alpha + lang/en.
    assert_eq!(rendered, 4 + 3 + 3 + 3 + ALWAYS, "{}", run.stdout());
    assert_eq!(written + unchanged, docs);
    assert!(p
        .read("public/sources/a.rss")
        .contains("Alpha story, corrected"));
    assert!(p
        .read("public/tags/alpha.rss")
        .contains("Alpha story, corrected"));
    assert!(p.read("public/rss.xml").contains("Alpha story, corrected"));
    assert_eq!(p.read("public/sources/b.rss"), b_before);
    assert_eq!(p.read("public/tags/beta.rss"), beta_before);
}

#[test]
fn unchanged_channel_with_a_deleted_file_is_rendered_again_in_the_next_publish() {
    let server = TestServer::start();
    two_partners(&server, "Alpha story", "\"a1\"");
    let p = project(&server, "");
    p.run(&["build"]).success();
    std::fs::remove_file(p.path().join("public/sources/b.atom")).unwrap();
    two_partners(&server, "Alpha story, corrected", "\"a2\"");
    let run = p.run(&["build"]);
    run.success();
    // Back, with its story (dated by this publish: the file it was published with is gone).
    assert!(p.read("public/sources/b.atom").contains("Beta story"));
    let (_, written, _, rendered) = summary(&run.stdout());
    // Partner a's channels (13 documents) and sources/b's three.
    assert_eq!(
        (written, rendered),
        (13 + 1, 13 + 3 + ALWAYS),
        "{}",
        run.stdout()
    );
}

#[test]
fn config_change_rerenders_every_channel() {
    let server = TestServer::start();
    two_partners(&server, "Alpha story", "\"a1\"");
    let p = project(&server, "");
    let (docs, ..) = summary(&p.run(&["build"]).success().stdout());
    let text = p
        .read("config.toml")
        .replace("Partner B", "Partner B (renamed)");
    p.write("config.toml", &text);
    let run = p.run(&["build"]);
    let (_, _, _, rendered) = summary(&run.success().stdout());
    assert_eq!(rendered, docs, "{}", run.stdout());
    assert!(p.read("public/rss.xml").contains("Partner B (renamed)"));
}

#[test]
fn daemon_keeps_serving_untouched_documents_after_a_partial_publish() {
    let server = TestServer::start();
    two_partners(&server, "Alpha story", "\"a1\"");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let p = project(&server, "");
    let text = p
        .read("config.toml")
        .replace(
            "schedule = \"0 */15 * * * *\"",
            "schedule = \"* * * * * *\"",
        )
        .replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        );
    p.write("config.toml", &text);
    let child = p.command(&["run"]).spawn().expect("start daemon");
    // Stops the daemon however the test ends.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Kill(child);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let ok = wait_for(Duration::from_secs(30), || {
        let r = try_get(addr, "/sources/b.rss")?;
        (r.status == 200 && r.text().contains("Beta story")).then_some(r)
    });
    let b = ok.expect("daemon serves sources/b.rss");
    let b_etag = b.header("etag").expect("etag").to_owned();

    two_partners(&server, "Alpha story, corrected", "\"a2\"");
    let changed = wait_for(Duration::from_secs(30), || {
        let r = try_get(addr, "/sources/a.rss")?;
        r.text().contains("Alpha story, corrected").then_some(())
    });
    let b_after = http_get(addr, "/sources/b.rss", &[]);
    let beta = http_get(addr, "/tags/beta.atom", &[]);
    let combined = http_get(addr, "/rss.xml", &[]);
    drop(child);
    assert!(changed.is_some(), "the changed partner was republished");
    assert_eq!(b_after.status, 200);
    assert_eq!(b_after.header("etag"), Some(b_etag.as_str()));
    assert_eq!(b_after.body, b.body);
    assert_eq!(beta.status, 200);
    assert!(combined.text().contains("Alpha story, corrected"));
}

fn exists(p: &Project, rel: &str) -> bool {
    p.path().join("public").join(rel).exists()
}

/// Every file of one tag channel: three formats and archive page 1 (a tag channel is
/// narrow: no compressed copies, see `publish::Reach`).
fn tag_files(tag: &str) -> Vec<String> {
    let mut out = Vec::new();
    for doc in ["rss", "atom", "json"]
        .map(|ext| format!("tags/{tag}.{ext}"))
        .into_iter()
        .chain(["rss", "atom"].map(|ext| format!("tags/{tag}/archive/1.{ext}")))
    {
        out.push(doc);
    }
    out
}

#[test]
fn rare_tags_get_no_channel_and_the_files_of_a_dropped_tag_channel_are_removed() {
    let server = TestServer::start();
    two_partners(&server, "Alpha story", "\"a1\"");
    // One item per tag; only `beta` is in the vocabulary. Archive pages of one item, so
    // each tag channel also has an archive directory.
    let p = project_with_tags(&server, "", "[tags]\nbeta = []");
    p.publish_key("archive_page_size", Some("1"))
        .publish_key("archives", Some("\"all\""));
    let set_min = |min: Option<usize>| {
        p.publish_key("tag_min_items", min.map(|n| n.to_string()).as_deref());
    };
    set_min(None);
    p.run(&["build"]).success();
    // The default needs three items: `alpha` (one, not named) gets no channel.
    for f in tag_files("beta") {
        assert!(exists(&p, &f), "{f} missing");
    }
    for f in tag_files("alpha") {
        assert!(!exists(&p, &f), "{f} published");
    }
    assert!(!p.read("public/index.html").contains("tags/alpha"));

    set_min(Some(1));
    p.run(&["build"]).success();
    for f in tag_files("alpha") {
        assert!(exists(&p, &f), "{f} missing");
    }

    // Partner a re-tags its story: `alpha` is carried by no item any more.
    server.route(
        "/a.xml",
        Route::ok(
            "application/rss+xml",
            rss("Alpha story, re-tagged", "gamma", "en", "a-1"),
        )
        .etag("\"a2\""),
    );
    let run = p.run(&["build"]);
    run.success();
    assert!(
        run.stdout()
            .contains("removed 5 documents of channels no longer published"),
        "{}",
        run.stdout()
    );
    for f in tag_files("alpha") {
        assert!(!exists(&p, &f), "{f} left behind");
    }
    assert!(
        !exists(&p, "tags/alpha"),
        "empty channel directory left behind"
    );
    for f in tag_files("gamma").iter().chain(&tag_files("beta")) {
        assert!(exists(&p, f), "{f} missing");
    }

    // Back to the default threshold: `gamma` goes, the named `beta` stays.
    set_min(None);
    p.run(&["build"]).success();
    for f in tag_files("gamma") {
        assert!(!exists(&p, &f), "{f} left behind");
    }
    for f in tag_files("beta") {
        assert!(exists(&p, &f), "{f} missing");
    }
}

/// A body of `words` words drawn from a fixed vocabulary by a generator seeded with
/// `seed`: texts with different seeds share too few shingles to be near-duplicates.
fn text(seed: u64, words: usize) -> String {
    const VOCABULARY: [&str; 48] = [
        "Stadtrat",
        "Haushalt",
        "Schule",
        "Radweg",
        "Brücke",
        "Hafen",
        "Markt",
        "Bahnhof",
        "Verein",
        "Theater",
        "Museum",
        "Bibliothek",
        "Kita",
        "Feuerwehr",
        "Polizei",
        "Gericht",
        "Wahl",
        "Steuer",
        "Miete",
        "Energie",
        "Wasser",
        "Wald",
        "Fluss",
        "Wetter",
        "Sturm",
        "Konzert",
        "Festival",
        "Ausstellung",
        "Sitzung",
        "Antrag",
        "Beschluss",
        "Bürger",
        "Straße",
        "Platz",
        "Park",
        "Garten",
        "Turm",
        "Kirche",
        "Rathaus",
        "Kreis",
        "Land",
        "Bund",
        "Gemeinde",
        "Dorf",
        "Viertel",
        "Ufer",
        "Insel",
        "Berg",
    ];
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..words)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            VOCABULARY[(x >> 33) as usize % VOCABULARY.len()]
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One item of [`feed`]: GUID (also its link's path), title, tags, body seed.
struct Entry<'a>(&'a str, &'a str, &'a [&'a str], u64);

/// An RSS 2.0 feed in `lang` whose items are dated a day apart, the first oldest.
fn feed(lang: &str, items: &[Entry]) -> String {
    let mut out = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Partner</title><link>https://partner.example/</link>
<description>d</description><language>{lang}</language>"#
    );
    for (day, Entry(guid, title, tags, seed)) in items.iter().enumerate() {
        let tags: String = tags
            .iter()
            .map(|t| format!("<category>{t}</category>"))
            .collect();
        out.push_str(&format!(
            "<item><title>{title}</title><link>https://partner.example/{guid}</link>\
             <guid>{guid}</guid><pubDate>{:02} Jun 2024 10:00:00 +0200</pubDate>{tags}\
             <description>{}</description></item>\n",
            day + 1,
            text(*seed, 60)
        ));
    }
    out + "</channel></rss>"
}

/// Every file under `public/` with its bytes and modification time.
fn published_files(
    p: &Project,
) -> std::collections::BTreeMap<String, (Vec<u8>, std::time::SystemTime)> {
    let root = p.path().join("public");
    let mut out = std::collections::BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
            out.insert(rel, (std::fs::read(&path).unwrap(), modified));
        }
    }
    out
}

#[test]
fn one_changed_partner_rewrites_only_its_channels_and_leaves_sealed_archive_pages_alone() {
    let server = TestServer::start();
    let change_a = serve_partners(&server);
    let p = project(&server, "");
    // Eight items in pages of two: pages 1-3 of the combined archive are sealed at once.
    p.publish_key("archive_page_size", Some("2"))
        .publish_key("max_items", Some("2"));
    p.run(&["build"]).success();
    let before = published_files(&p);
    let sealed: Vec<&str> = ["archive/1.rss", "archive/2.atom", "archive/3.rss"].to_vec();
    for page in &sealed {
        assert!(before.contains_key(*page), "{page} not published");
    }

    // Partner a corrects its newest story, which sits on sealed page 2 (pages follow
    // first sight, then ID) and in the subscription documents.
    change_a(&server, "Alpha four, corrected");
    let run = p.run(&["build"]);
    run.success();
    let after = published_files(&p);
    let (docs, written, unchanged, rendered) = summary(&run.stdout());
    assert_eq!(written + unchanged, docs, "{}", run.stdout());
    // Combined (three formats, index.html, the last page's two formats) and a's own
    // channels: sources/a, tags/alpha, lang/de. Sealed pages are kept, not rendered.
    assert_eq!(rendered, 4 + 2 + 3 + 3 + 3 + ALWAYS, "{}", run.stdout());
    let rewritten: Vec<&String> = after
        .iter()
        .filter(|(path, now)| before.get(*path).is_none_or(|was| was != *now))
        .map(|(path, _)| path)
        .collect();
    assert!(!rewritten.is_empty(), "nothing rewritten");
    let own = |path: &str| {
        let doc = path.trim_end_matches(".gz").trim_end_matches(".br");
        ["rss.xml", "atom.xml", "feed.json", "index.html"].contains(&doc)
            || doc.starts_with("sources/a.")
            || doc.starts_with("tags/alpha.")
            || doc.starts_with("lang/de.")
    };
    for path in &rewritten {
        assert!(
            own(path),
            "{path} rewritten, but partner a's change is not in it"
        );
    }
    assert!(p
        .read("public/sources/a.rss")
        .contains("Alpha four, corrected"));
    assert!(p.read("public/rss.xml").contains("Alpha four, corrected"));
    assert!(!p.read("public/archive/2.rss").contains("corrected"));
    for page in &sealed {
        assert_eq!(before[*page], after[*page], "sealed {page} touched");
    }
}

/// The store's publish index (tag and language counts of visible items, kept by
/// triggers) against the same counts made from scratch, and every visible item marked
/// shown after a publish.
fn assert_index_matches_a_recount(p: &Project, step: &str) {
    let db = rusqlite::Connection::open_with_flags(
        p.path().join("state/feedwerk.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let rows = |sql: &str| -> Vec<(String, i64)> {
        db.prepare(sql)
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let visible = "i.dup_of IS NULL AND i.withdrawn = 0";
    let tags = rows(&format!(
        "SELECT t.tag, COUNT(*) FROM item_tags t JOIN items i ON i.id = t.item_id
         WHERE {visible} GROUP BY t.tag ORDER BY 1"
    ));
    assert_eq!(
        rows("SELECT tag, items FROM visible_tag_counts ORDER BY 1"),
        tags,
        "tag counts after {step}"
    );
    assert_eq!(
        rows("SELECT language, items FROM visible_language_counts ORDER BY 1"),
        rows(&format!(
            "SELECT i.language, COUNT(*) FROM items i
             WHERE {visible} AND i.language IS NOT NULL GROUP BY 1 ORDER BY 1"
        )),
        "language counts after {step}"
    );
    let unshown = rows(&format!(
        "SELECT i.id, 0 FROM items i
         WHERE {visible} AND i.id NOT IN (SELECT item_id FROM dedupe_shown)"
    ));
    assert!(
        unshown.is_empty(),
        "after {step}: not marked shown: {unshown:?}"
    );
    // With `tag_min_items = 1`, the tag channels published are the counted tags.
    let mut published: Vec<String> = std::fs::read_dir(p.path().join("public/tags"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rss").map(str::to_owned)
        })
        .collect();
    published.sort();
    let mut counted: Vec<String> = tags.iter().map(|(t, _)| t.to_lowercase()).collect();
    counted.dedup();
    assert_eq!(published, counted, "tag channels after {step}");
}

#[test]
fn tag_counts_and_shown_marks_stay_right_as_items_are_added_edited_deduplicated_and_withdrawn() {
    let server = TestServer::start();
    let serve = |path: &str, etag: &str, body: String| {
        server.route(path, Route::ok("application/rss+xml", body).etag(etag));
    };
    serve(
        "/a.xml",
        "\"a1\"",
        feed(
            "de",
            &[
                Entry("a-1", "Alpha one", &["alpha"], 1),
                Entry("a-2", "Alpha two", &["beta", "gamma"], 2),
            ],
        ),
    );
    serve(
        "/b.xml",
        "\"b1\"",
        feed("en", &[Entry("b-1", "Beta one", &["beta"], 11)]),
    );
    let p = project_with_tags(&server, "", "");
    p.publish_key("tag_min_items", Some("1"));
    p.run(&["build"]).success();
    assert_index_matches_a_recount(&p, "the first build");

    // Edited: a-1 re-tagged and retitled; a-2 loses a tag.
    serve(
        "/a.xml",
        "\"a2\"",
        feed(
            "de",
            &[
                Entry("a-1", "Alpha one, re-tagged", &["delta"], 1),
                Entry("a-2", "Alpha two", &["beta"], 2),
            ],
        ),
    );
    p.run(&["build"]).success();
    assert_index_matches_a_recount(&p, "edits");

    // Added, and deduplicated: b-2 is a-2's story under b's GUID (same link and text),
    // so it joins a-2's cluster and its tags count for no visible item.
    let copy = feed(
        "en",
        &[
            Entry("b-1", "Beta one", &["beta"], 11),
            Entry("a-2", "Alpha two", &["epsilon"], 2),
            Entry("b-3", "Beta three", &["zeta"], 13),
        ],
    )
    .replace("<guid>a-2</guid>", "<guid>b-2</guid>");
    serve("/b.xml", "\"b2\"", copy);
    p.run(&["build"]).success();
    let db = rusqlite::Connection::open(p.path().join("state/feedwerk.sqlite")).unwrap();
    let dups: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM items WHERE dup_of IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    drop(db);
    assert_eq!(dups, 1, "b-2 is a copy of a-2");
    assert!(
        !exists(&p, "tags/epsilon.rss"),
        "a duplicate's tag got a channel"
    );
    assert_index_matches_a_recount(&p, "an added item and a duplicate");

    // Withdrawn: partner b leaves the config; its items leave every output.
    let text = p.read("config.toml");
    let cut = text
        .find("[[source]]\nid = \"b\"")
        .expect("source b in the config");
    p.write("config.toml", &text[..cut]);
    p.run(&["build"]).success();
    assert!(
        !exists(&p, "tags/zeta.rss"),
        "a withdrawn item's tag kept its channel"
    );
    assert_index_matches_a_recount(&p, "a withdrawn partner");
}

/// Two partners of four German items each, in archive pages of two, and a
/// `[[channel]]` of partner b's (which keeps an archive too): after the first build the
/// combined archive has sealed pages 1-3 and the open page 4, `channels/beta` sealed
/// page 1 and the open page 2. Returns the project and how to make partner a's newest
/// story change.
fn archived_partners(server: &TestServer) -> (Project, impl Fn(&TestServer, &str)) {
    let change_a = serve_partners(server);
    let p = project(
        server,
        "[[channel]]\nid = \"beta\"\ntitle = \"Beta\"\nsources = [\"b\"]\nmax_items = 2\n",
    );
    p.publish_key("archive_page_size", Some("2"))
        .publish_key("max_items", Some("2"));
    (p, change_a)
}

/// Serves partners a and b, four German items each (the texts are German, so `lang/de`
/// is partner a's channel too). Returns how to make partner a's newest story change.
fn serve_partners(server: &TestServer) -> impl Fn(&TestServer, &str) {
    let a_items = |newest: &str| {
        feed(
            "de",
            &[
                Entry("a-1", "Alpha one", &["alpha"], 1),
                Entry("a-2", "Alpha two", &["alpha"], 2),
                Entry("a-3", "Alpha three", &["alpha"], 3),
                Entry("a-4", newest, &["alpha"], 4),
            ],
        )
    };
    let b_items = feed(
        "de",
        &[
            Entry("b-1", "Beta one", &["beta"], 11),
            Entry("b-2", "Beta two", &["beta"], 12),
            Entry("b-3", "Beta three", &["beta"], 13),
            Entry("b-4", "Beta four", &["beta"], 14),
        ],
    );
    server.route(
        "/a.xml",
        Route::ok("application/rss+xml", a_items("Alpha four")).etag("\"a1\""),
    );
    server.route(
        "/b.xml",
        Route::ok("application/rss+xml", b_items).etag("\"b1\""),
    );
    move |server: &TestServer, newest: &str| {
        server.route(
            "/a.xml",
            Route::ok("application/rss+xml", a_items(newest)).etag("\"a2\""),
        );
    }
}

/// The sealed pages of the combined archive and of `channels/beta` (see
/// [`archived_partners`]).
const SEALED: [&str; 8] = [
    "archive/1.rss",
    "archive/1.atom",
    "archive/2.rss",
    "archive/2.atom",
    "archive/3.rss",
    "archive/3.atom",
    "channels/beta/archive/1.rss",
    "channels/beta/archive/1.atom",
];

/// The store's sealed flags and remembered validators of the archive pages.
fn sealed_pages(p: &Project) -> (Vec<String>, Vec<String>) {
    let db = rusqlite::Connection::open(p.path().join("state/feedwerk.sqlite")).unwrap();
    let list = |sql: &str| -> Vec<String> {
        db.prepare(sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    (
        list("SELECT channel || ':' || page FROM archive_pages WHERE sealed = 1 ORDER BY 1"),
        list("SELECT path FROM outputs WHERE path LIKE '%archive/%' ORDER BY 1"),
    )
}

/// A publish after one change costs what the change needs, not what the archive
/// holds: a sealed page is kept from its file alone, with no validators of its own
/// read (here they are gone from the store), both in a channel that changed (the
/// combined one) and in one that did not (`channels/beta`), and is still counted
/// among the documents published.
#[test]
fn sealed_archive_pages_are_kept_from_their_files_without_their_stored_validators() {
    let server = TestServer::start();
    let (p, change_a) = archived_partners(&server);
    let first = p.run(&["build"]);
    let (docs, ..) = summary(&first.success().stdout());
    let (sealed, _) = sealed_pages(&p);
    assert_eq!(sealed, ["all:1", "all:2", "all:3", "channels/beta:1"]);
    for page in SEALED {
        assert!(exists(&p, page), "{page} not published");
    }
    let before = published_files(&p);
    let db = rusqlite::Connection::open(p.path().join("state/feedwerk.sqlite")).unwrap();
    let forgotten = db
        .execute(
            "DELETE FROM outputs WHERE path IN (SELECT value FROM json_each(?1))",
            [serde_json::to_string(&SEALED).unwrap()],
        )
        .unwrap();
    assert_eq!(forgotten, SEALED.len());
    drop(db);

    change_a(&server, "Alpha four, corrected");
    let run = p.run(&["build"]);
    let (docs_now, written, unchanged, rendered) = summary(&run.success().stdout());
    assert_eq!(docs_now, docs, "{}", run.stdout());
    assert_eq!(written + unchanged, docs, "{}", run.stdout());
    // Combined (three formats, index.html, the open page's two formats) and a's own
    // channels: sources/a, tags/alpha, lang/de. No sealed page, and nothing of
    // channels/beta, is rendered.
    assert_eq!(rendered, 4 + 2 + 3 + 3 + 3 + ALWAYS, "{}", run.stdout());
    let after = published_files(&p);
    for page in SEALED {
        assert!(before[page] == after[page], "sealed {page} touched");
    }
    for doc in ["channels/beta.rss", "channels/beta/archive/2.rss"] {
        assert!(
            before[doc] == after[doc],
            "{doc} of an unchanged channel touched"
        );
    }
    assert!(p.read("public/rss.xml").contains("Alpha four, corrected"));
    // Sealed pages stay sealed; their validators are not needed, so not written again.
    let (sealed_now, validators) = sealed_pages(&p);
    assert_eq!(sealed_now, sealed);
    assert!(
        validators.iter().all(|v| !SEALED.contains(&v.as_str())),
        "{validators:?}"
    );
}

/// A sealed page whose file is gone (removed by hand) comes back in the next publish
/// with the same items, in a channel that changed and in one that did not; the other
/// pages are left alone.
#[test]
fn a_sealed_archive_page_removed_by_hand_is_rendered_again_and_nothing_else_of_the_archive_is_written(
) {
    let server = TestServer::start();
    let (p, change_a) = archived_partners(&server);
    let first = p.run(&["build"]);
    let (docs, ..) = summary(&first.success().stdout());
    let before = published_files(&p);
    // A combined page without partner a's newest story (which the change below edits,
    // so a page holding it would come back with the correction in both formats).
    let combined = ["archive/1.rss", "archive/2.rss", "archive/3.rss"]
        .into_iter()
        .find(|page| !String::from_utf8_lossy(&before[*page].0).contains("Alpha four<"))
        .unwrap();
    let removed = [combined, "channels/beta/archive/1.atom"];
    for page in removed {
        std::fs::remove_file(p.path().join("public").join(page)).unwrap();
    }

    change_a(&server, "Alpha four, corrected");
    let run = p.run(&["build"]);
    let (docs_now, written, ..) = summary(&run.success().stdout());
    assert_eq!(docs_now, docs, "{}", run.stdout());
    let after = published_files(&p);
    let titles = |bytes: &[u8]| -> Vec<String> {
        let text = String::from_utf8_lossy(bytes);
        ["Alpha", "Beta"]
            .iter()
            .flat_map(|who| ["one", "two", "three", "four"].map(|n| format!("{who} {n}")))
            // The same item, as partner a's change left it.
            .filter(|t| {
                text.contains(&format!("{t}<")) || text.contains(&format!("{t}, corrected<"))
            })
            .collect()
    };
    for page in removed {
        let (was, _) = &before[page];
        let (now, _) = after.get(page).unwrap_or_else(|| panic!("{page} not back"));
        assert_eq!(titles(was).len(), 2, "{page}: not the page of two expected");
        assert_eq!(
            titles(now),
            titles(was),
            "{page} came back with other items"
        );
    }
    for page in SEALED.iter().filter(|p| !removed.contains(p)) {
        assert!(before[*page] == after[*page], "sealed {page} touched");
    }
    // The two pages back, and what partner a's change rewrote.
    assert!(written > removed.len(), "{}", run.stdout());
    let (sealed, _) = sealed_pages(&p);
    assert_eq!(sealed, ["all:1", "all:2", "all:3", "channels/beta:1"]);
}
