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
