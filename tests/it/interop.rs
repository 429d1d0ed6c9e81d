//! Real clients read what `feedwerk` publishes: Python feedparser, jing with the RFC 4287
//! RELAX NG schema, a JSON Feed 1.1 schema (python jsonschema), sfeed, newsboat fetching
//! from `feedwerk run`, and headless Chromium for the news page, the embed on a partner
//! page and a feed shown through the XSLT. Each client goes through
//! `support::require_tool`: missing means SKIP, unless `FEEDWERK_REQUIRE_INTEROP=1`.
//!
//! Covered: every format of the combined channel and of one per-source (partner)
//! channel, plus an archive page.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::publish::project_with_partner;
use crate::support::{self, Daemon, Project, Route, TestServer};

/// The documents every client reads: combined and per-source, RSS and Atom.
const XML_FEEDS: [&str; 4] = [
    "rss.xml",
    "atom.xml",
    "sources/efus.rss",
    "sources/efus.atom",
];
const JSON_FEEDS: [&str; 2] = ["feed.json", "sources/efus.json"];

fn built() -> (TestServer, Project) {
    let server = TestServer::start();
    let p = project_with_partner(&server, "");
    // Every channel's archive, so the per-source pages are checked too.
    p.publish_key("archive_page_size", Some("2"))
        .publish_key("archives", Some("\"all\""));
    p.run(&["build"]).success();
    (server, p)
}

fn expected_count(path: &str) -> usize {
    if path.starts_with("sources/efus") {
        3
    } else {
        6
    }
}

#[test]
fn feedparser_reads_combined_and_per_source_feeds_without_bozo() {
    let (_server, p) = built();
    for path in XML_FEEDS {
        let Some(d) = support::feedparser(&p.path().join("public").join(path)) else {
            return;
        };
        assert_eq!(d["bozo"], false, "{path}: {}", d["bozo_exception"]);
        let want_version = if path.ends_with("atom") || path == "atom.xml" {
            "atom10"
        } else {
            "rss20"
        };
        assert_eq!(d["version"], want_version, "{path}");
        let entries = d["entries"].as_array().unwrap();
        assert_eq!(entries.len(), expected_count(path), "{path}");
        let lang = if path.starts_with("sources/efus") {
            "en"
        } else {
            "de"
        };
        assert_eq!(d["language"], lang, "{path}");
        let nice = entries
            .iter()
            .find(|e| e["title"] == "Efus General Assembly in Nice")
            .unwrap_or_else(|| panic!("{path}: partner item missing"));
        assert_eq!(
            nice["link"], "https://efus.example/news/general-assembly-nice",
            "{path}"
        );
        assert_eq!(nice["published"], "2024-06-04T07:00:00Z", "{path}");
        assert!(
            nice["id"]
                .as_str()
                .unwrap()
                .starts_with("tag:www.defus.de,"),
            "{path}"
        );
        assert!(
            nice["author"]
                .as_str()
                .unwrap()
                .contains("Efus Press Office"),
            "{path}: {}",
            nice["author"]
        );
        if path.ends_with("atom") || path == "atom.xml" {
            assert_eq!(nice["source_title"], "Efus", "{path}: atom:source");
        }
        let local = entries
            .iter()
            .find(|e| e["title"] == "Fachtag Kriminalprävention in Köln");
        if !path.starts_with("sources/efus") {
            let local = local.unwrap_or_else(|| panic!("{path}: local post missing"));
            assert_eq!(local["published"], "2024-05-02T08:00:00Z");
            assert_eq!(local["author"], "Erika Mustermann");
        }
    }
    let Some(d) = support::feedparser(&p.path().join("public/archive/1.atom")) else {
        return;
    };
    assert_eq!(d["bozo"], false, "archive page: {}", d["bozo_exception"]);
}

#[test]
fn atom_documents_are_valid_against_the_rfc4287_schema() {
    let (_server, p) = built();
    for path in [
        "atom.xml",
        "sources/efus.atom",
        "archive/1.atom",
        "sources/efus/archive/1.atom",
    ] {
        let file = p.path().join("public").join(path);
        let Some(complaints) = support::jing_atom(&file) else {
            return;
        };
        assert!(complaints.is_empty(), "{path}:\n{complaints}");
        // The schema's two Schematron rules, which jing does not run.
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains("</title><id>") && text.contains("<author><name>"),
            "{path}"
        );
        for entry in text.split("<entry>").skip(1) {
            assert!(
                entry.contains("rel=\"alternate\"") || entry.contains("<content"),
                "{path}: entry without alternate link or content"
            );
        }
    }
}

#[test]
fn json_feeds_are_valid_json_feed_1_1() {
    let (_server, p) = built();
    let python_jsonschema = Command::new("python3")
        .args(["-c", "import jsonschema"])
        .status()
        .is_ok_and(|s| s.success());
    for path in JSON_FEEDS {
        let file = p.path().join("public").join(path);
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let problems = support::json_feed_problems(&doc);
        assert!(problems.is_empty(), "{path}: {problems:?}");
        assert_eq!(doc["items"].as_array().unwrap().len(), expected_count(path));
        if !python_jsonschema {
            if std::env::var("FEEDWERK_REQUIRE_INTEROP").as_deref() == Ok("1") {
                panic!("python3 jsonschema is missing and FEEDWERK_REQUIRE_INTEROP=1");
            }
            eprintln!("SKIP: python3 jsonschema not installed");
            continue;
        }
        let out = Command::new("python3")
            .args([
                "-c",
                "import json, sys, jsonschema\n\
                 s = json.load(open(sys.argv[1])); d = json.load(open(sys.argv[2]))\n\
                 errs = list(jsonschema.Draft7Validator(s).iter_errors(d))\n\
                 [print('/'.join(map(str, e.path)), e.message) for e in errs]\n\
                 sys.exit(1 if errs else 0)",
            ])
            .arg(support::fixture("publish/jsonfeed-1.1.schema.json"))
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn sfeed_parses_every_item_of_rss_and_atom() {
    let (_server, p) = built();
    for path in XML_FEEDS {
        if !support::require_tool("sfeed", &[]) {
            return;
        }
        let input = std::fs::File::open(p.path().join("public").join(path)).unwrap();
        let out = Command::new("sfeed").stdin(input).output().unwrap();
        assert!(out.status.success(), "{path}");
        let tsv = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = tsv.lines().collect();
        assert_eq!(lines.len(), expected_count(path), "{path}:\n{tsv}");
        let nice = lines
            .iter()
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .find(|f| f[1] == "Efus General Assembly in Nice")
            .unwrap_or_else(|| panic!("{path}: {tsv}"));
        assert_eq!(
            nice[0], "1717484400",
            "{path}: UNIX time of 2024-06-04T07:00:00Z"
        );
        assert_eq!(
            nice[2], "https://efus.example/news/general-assembly-nice",
            "{path}"
        );
        assert!(
            nice[5].starts_with("tag:www.defus.de,"),
            "{path}: id {}",
            nice[5]
        );
    }
}

/// `newsboat -x reload` with its own urls file, cache and config in `dir`.
fn newsboat_reload(dir: &Path, url: &str) -> std::process::Output {
    std::fs::write(dir.join("urls"), format!("{url}\n")).unwrap();
    std::fs::write(
        dir.join("config"),
        format!(
            "reload-threads 1\ndownload-retries 1\ndownload-timeout 20\nuse-proxy no\nerror-log \"{}\"\n",
            dir.join("error.log").display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("home")).unwrap();
    Command::new("timeout")
        .arg("120")
        .arg("newsboat")
        .arg("-u")
        .arg(dir.join("urls"))
        .arg("-c")
        .arg(dir.join("cache.db"))
        .arg("-C")
        .arg(dir.join("config"))
        .args(["-x", "reload"])
        .env("HOME", dir.join("home"))
        .env("XDG_CONFIG_HOME", dir.join("home/.config"))
        .env("XDG_DATA_HOME", dir.join("home/.local/share"))
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .output()
        .unwrap()
}

#[test]
fn newsboat_reloads_the_served_feeds_and_lists_all_items() {
    if !support::require_tool("newsboat", &["--version"]) {
        return;
    }
    let (_server, p) = built();
    let d = Daemon::start(&p);
    // One cache per feed: newsboat keys items by GUID across all feeds of a cache, so
    // the same story in the combined and the per-source feed would be listed once.
    for path in XML_FEEDS {
        let tmp = tempfile::tempdir().unwrap();
        let url = format!("http://{}/{path}", d.addr);
        let out = newsboat_reload(tmp.path(), &url);
        assert!(
            out.status.success(),
            "newsboat: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let errors = std::fs::read_to_string(tmp.path().join("error.log")).unwrap_or_default();
        assert!(
            errors.trim().is_empty(),
            "{path}: newsboat logged errors:\n{errors}"
        );
        let db = rusqlite::Connection::open(tmp.path().join("cache.db")).unwrap();
        let titles: Vec<String> = db
            .prepare("SELECT title FROM rss_item WHERE feedurl = ?1 ORDER BY title")
            .unwrap()
            .query_map([&url], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(titles.len(), expected_count(path), "{path}: {titles:?}");
        assert!(
            titles.iter().any(|t| t == "Efus General Assembly in Nice"),
            "{path}: {titles:?}"
        );
        let feed_title: String = db
            .query_row(
                "SELECT title FROM rss_feed WHERE rssurl = ?1",
                [&url],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            feed_title.starts_with("DEFUS – Aktuelles"),
            "{path}: {feed_title}"
        );
        // A second reload keeps every item (and adds none twice).
        let again = newsboat_reload(tmp.path(), &url);
        assert!(again.status.success());
        let n: i64 = db
            .query_row("SELECT count(*) FROM rss_item", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n as usize, expected_count(path), "{path} after reload");
    }
}

/// Where screenshots go: a stable directory under the target dir, to look at after a run.
fn shots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("interop-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn chromium(profile: &Path, args: &[&str], url: &str) -> std::process::Output {
    Command::new("timeout")
        .arg("120")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium")
}

#[test]
fn chromium_shows_the_news_page_the_embed_on_a_partner_page_and_a_feed_through_xslt() {
    if !support::require_tool("chromium", &["--version"]) {
        return;
    }
    let (_server, p) = built();
    let d = Daemon::start(&p);
    let profile = tempfile::tempdir().unwrap();
    let shots = shots_dir();
    let base = format!("http://{}", d.addr);

    // The news page.
    let dom = chromium(profile.path(), &["--dump-dom"], &format!("{base}/"));
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("Fachtag Kriminalprävention in Köln"),
        "{dom:.400}"
    );
    let shot = shots.join("index.png");
    chromium(
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=412,1400",
        ],
        &format!("{base}/"),
    );
    assert!(
        shot.metadata().is_ok_and(|m| m.len() > 10_000),
        "no screenshot {}",
        shot.display()
    );

    // A feed opened in the browser: rendered through feed.xsl.
    let dom = chromium(
        profile.path(),
        &["--dump-dom"],
        &format!("{base}/sources/efus.atom"),
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("Dies ist ein Newsfeed"),
        "XSLT not applied: {dom:.600}"
    );
    assert!(dom.contains("Efus General Assembly in Nice"));
    let dom = chromium(profile.path(), &["--dump-dom"], &format!("{base}/rss.xml"));
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("Dies ist ein Newsfeed"),
        "XSLT not applied: {dom:.600}"
    );
    assert!(
        dom.contains("04.06.2024 · Efus Press Office"),
        "German date, creator: {dom}"
    );
    let shot = shots.join("feed-xslt.png");
    chromium(
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=900,1100",
        ],
        &format!("{base}/rss.xml"),
    );
    assert!(shot.metadata().is_ok_and(|m| m.len() > 10_000));

    // A partner page on another origin: the iframe and the script embed.
    let partner = TestServer::start();
    partner.route(
        "/partner.html",
        Route::ok(
            "text/html; charset=utf-8",
            format!(
                "<!DOCTYPE html><html lang=\"de\"><head><meta charset=\"utf-8\"><title>Partner</title>\
                 <style>body{{font-family:serif;margin:2rem}} .col{{width:40%;float:left;margin-right:5%}}</style></head>\
                 <body><h1>Partnerseite</h1>\
                 <div class=\"col\"><h2>Als iframe</h2><iframe src=\"{base}/embed?n=3\" title=\"DEFUS\" style=\"border:1px solid #ccc;width:100%;height:18rem\"></iframe></div>\
                 <div class=\"col\"><h2>Per Skript</h2><div id=\"defus-news\">lädt …</div></div>\
                 <script src=\"{base}/embed.js\" data-target=\"defus-news\" data-n=\"4\" data-channel=\"sources/efus\"></script>\
                 </body></html>"
            ),
        ),
    );
    let page = partner.url("/partner.html");
    let dom = chromium(
        profile.path(),
        &["--dump-dom", "--virtual-time-budget=10000"],
        &page,
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    // The script fetched the JSON Feed across origins (CORS) and built the list.
    assert!(
        dom.contains("class=\"feedwerk-embed\""),
        "script embed missing: {dom}"
    );
    assert!(dom.contains("Webinar: safer public spaces"), "{dom}");
    assert!(!dom.contains("lädt …"));
    let shot = shots.join("partner-embed.png");
    chromium(
        profile.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1100,700",
            "--virtual-time-budget=10000",
        ],
        &page,
    );
    assert!(shot.metadata().is_ok_and(|m| m.len() > 10_000));
    assert!(!d.log().contains("ERROR"), "daemon errors:\n{}", d.log());
    eprintln!("screenshots in {}", shots.display());
}
