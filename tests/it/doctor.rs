//! `feedwerk doctor`: one feed or page explained — format, encoding and how it was
//! decided, the feed's facts, every item as it would be published, and the problems.

use serde_json::Value;

use crate::support::{read_fixture, Project, Route, TestServer};

fn doctor_json(p: &Project, args: &[&str]) -> (Value, crate::support::Run) {
    let mut all = vec!["doctor", "--json"];
    all.extend_from_slice(args);
    let out = p.run(&all);
    let v: Value = serde_json::from_str(&out.stdout())
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", out.all()));
    (v, out)
}

#[test]
fn json_for_a_feed_whose_charset_is_only_in_http() {
    let server = TestServer::start();
    server.route(
        "/rss",
        Route::ok(
            "application/rss+xml; charset=windows-1252",
            read_fixture("doctor/windows-1252-charset-only-in-http.xml"),
        ),
    );
    let p = Project::new();
    let (v, out) = doctor_json(&p, &[&server.url("/rss")]);
    out.success();
    assert_eq!(v["format"], "rss2");
    assert_eq!(v["encoding"], "windows-1252");
    assert_eq!(v["encoding_decided_by"], "the HTTP Content-Type charset");
    assert_eq!(v["feed"]["title"], "Landespräventionsrat – Meldungen");
    assert_eq!(v["feed"]["link"], "https://partner.example/");
    assert_eq!(v["feed"]["language"], "de");
    assert_eq!(v["feed"]["updated"], "2017-10-09T14:00:00Z");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let first = &items[0];
    assert!(
        first["id"].as_str().unwrap().starts_with("doctor:"),
        "{first}"
    );
    assert_eq!(first["guid"], "lpr-meldung-4711");
    assert_eq!(
        first["title"],
        "Förderung für Präventionsräte „Städte für Sicherheit“"
    );
    // Tracking parameters are not part of what we publish.
    assert_eq!(
        first["link"],
        "https://partner.example/meldungen/foerderung.html"
    );
    // A German RFC 822 date, and a bare German date at Berlin midnight, both in UTC.
    assert_eq!(first["published"], "2017-10-09T12:30:00Z");
    assert_eq!(items[1]["published"], "2017-08-15T22:00:00Z");
    assert_eq!(
        items[1]["link"],
        "https://partner.example/meldungen/gruesse.html"
    );
    assert_eq!(first["language"], "de");
    assert_eq!(
        first["summary"],
        "Die Fördersumme beträgt 5.000 € je Kommune."
    );
    assert!(first["updated"].is_null());
    assert_eq!(v["problems"], serde_json::json!([]), "{v:#}");
}

#[test]
fn text_report_for_a_file_names_format_encoding_items_and_problems() {
    let p = Project::new();
    p.write(
        "partner.xml",
        r#"<?xml version="1.0" encoding="ISO-8859-1"?>
<rss version="2.0"><channel><title>P</title><link>https://partner.example/</link><description>d</description>
<item><title>Datiert</title><link>https://partner.example/a</link><guid>same</guid><pubDate>Mon, 09 Oct 2017 14:30:00 +0200</pubDate></item>
<item><title>Ohne Datum</title><link>https://partner.example/b</link><guid>same</guid></item>
</channel></rss>"#,
    );
    let out = p.run(&["doctor", "partner.xml"]);
    out.success();
    let s = out.stdout();
    assert!(s.contains("format:    rss2"), "{s}");
    // The declaration says ISO-8859-1, but the bytes are UTF-8: the bytes win.
    assert!(
        s.contains("encoding:  UTF-8 — the bytes are valid UTF-8"),
        "{s}"
    );
    assert!(s.contains("items:     2 (1 dated, 1 undated"), "{s}");
    assert!(s.contains("published  2017-10-09T12:30:00Z"), "{s}");
    assert!(s.contains("published  (none: first-seen time)"), "{s}");
    assert!(s.contains("1 of 2 items have no usable date"), "{s}");
    assert!(s.contains("items 1 and 2 share the GUID `same`"), "{s}");
    assert!(
        s.contains(
            "the document declares windows-1252 but was read as UTF-8 (the bytes are valid UTF-8)"
        ),
        "{s}"
    );
}

#[test]
fn page_preview_with_selectors_shows_what_a_page_source_would_extract() {
    let server = TestServer::start();
    server.route(
        "/aktuelles/",
        Route::ok(
            "text/html",
            read_fixture("page/windows-1252-umlauts-meta-charset.html"),
        ),
    );
    let p = Project::new();
    let (v, out) = doctor_json(
        &p,
        &[
            &server.url("/aktuelles/"),
            "--selectors",
            "item=.newsitem,title=h3 a,link=h3 a,date=.date,summary=.teaser",
            "--date-format",
            "%d.%m.%Y",
        ],
    );
    out.success();
    assert_eq!(v["format"], "page");
    assert_eq!(v["encoding"], "windows-1252");
    assert_eq!(v["encoding_decided_by"], "the document's own declaration");
    assert_eq!(v["feed"]["title"], "Präventionsrat – Aktuelles");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[0]["title"],
        "Förderung für Präventionsräte: „Städte für Sicherheit“"
    );
    assert_eq!(
        items[0]["link"],
        server.url("/aktuelles/foerderung-2017.html")
    );
    assert_eq!(items[0]["published"], "2017-10-08T22:00:00Z");
    assert!(items[0]["guid"].is_null());

    // A selector that matches nothing is said plainly, with exit status 1.
    let out = p.run(&[
        "doctor",
        &server.url("/aktuelles/"),
        "--selectors",
        "item=.news-teaser,title=h2",
    ]);
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert!(
        out.stdout()
            .contains("selector `.news-teaser` matched nothing"),
        "{}",
        out.all()
    );
}

#[test]
fn html_page_without_selectors_is_explained_and_its_feed_pointed_at() {
    let server = TestServer::start();
    server.route(
        "/",
        Route::ok(
            "text/html; charset=utf-8",
            r#"<!DOCTYPE html><html><head><link rel="alternate" type="application/atom+xml" href="/atom.xml"></head><body>Hallo</body></html>"#,
        ),
    );
    let p = Project::new();
    let out = p.run(&["doctor", &server.url("/")]);
    assert_eq!(out.code(), Some(1), "{}", out.all());
    let s = out.stdout();
    assert!(s.contains("format:    html"), "{s}");
    assert!(s.contains("give `--selectors`"), "{s}");
    assert!(
        s.contains(&format!("announces a feed: {}", server.url("/atom.xml"))),
        "{s}"
    );
}

#[test]
fn broken_feed_is_unreadable_with_the_parser_error() {
    let p = Project::new();
    p.write(
        "broken.xml",
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>T</title><item><title>A</ti",
    );
    let (v, out) = doctor_json(&p, &["broken.xml"]);
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert_eq!(v["readable"], false);
    assert_eq!(v["encoding"], "UTF-8");
    let problems = v["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().unwrap().contains("broken.xml: not a feed")),
        "{v:#}"
    );
}

#[test]
fn configured_source_by_id_shows_the_ids_build_stores() {
    let server = TestServer::start();
    server.route(
        "/aktuelles",
        Route::ok(
            "text/html",
            read_fixture("page/layout-before-redesign.html"),
        ),
    );
    let p = Project::with_seed_posts();
    p.config(&format!(
        r#"
[[source]]
id = "defus"
kind = "local"
path = "feeds/defus"

[[source]]
id = "lpr"
kind = "page"
url = "{}"
selectors = {{ item = ".newsitem", title = "h3 a", link = "h3 a", date = ".date" }}
date_format = "%d.%m.%Y"
"#,
        server.url("/aktuelles")
    ));
    let (v, out) = doctor_json(&p, &["lpr"]);
    out.success();
    let mut doctor_ids: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    doctor_ids.sort();
    assert!(
        doctor_ids.iter().all(|i| i.starts_with("lpr:")),
        "{doctor_ids:?}"
    );

    // The store holds the items `build` read under exactly the IDs doctor showed.
    p.run(&["build"]).success();
    let db = rusqlite::Connection::open(p.path().join("state/feedwerk.sqlite")).unwrap();
    let mut stmt = db
        .prepare("SELECT id FROM items WHERE source_id = 'lpr' ORDER BY id")
        .unwrap();
    let stored: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(stored, doctor_ids);
}

#[test]
fn unreachable_feed_is_one_json_object_too() {
    let server = TestServer::start();
    server.route("/gone", Route::status(404));
    let p = Project::new();
    let (v, out) = doctor_json(&p, &[&server.url("/gone")]);
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert_eq!(v["readable"], false);
    assert!(
        v["problems"][0].as_str().unwrap().contains("HTTP 404"),
        "{v:#}"
    );
    let out = p.run(&["doctor", &server.url("/gone")]);
    assert_eq!(out.code(), Some(1));
    assert!(out.stderr().contains("HTTP 404"), "{}", out.all());
}
