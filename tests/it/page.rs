//! Page sources (`kind = "page"`): partner news pages without a feed, read with CSS
//! selectors, fetched from a 127.0.0.1 test server through the real `feedwerk` binary.

use serde_json::Value;

use crate::support::{read_fixture, Project, Route, TestServer};

fn page_source(id: &str, url: &str, selectors: &str, extra: &str) -> String {
    format!(
        r#"
[[source]]
id = "defus"
kind = "local"
path = "feeds/defus"

[[source]]
id = "{id}"
kind = "page"
url = "{url}"
selectors = {selectors}
{extra}
"#
    )
}

/// The items of one source in the published JSON Feed, in feed order.
fn items_of(p: &Project, source: &str) -> Vec<Value> {
    let feed: Value = serde_json::from_str(&p.read("public/feed.json")).unwrap();
    feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["_feedwerk"]["source"] == source)
        .cloned()
        .collect()
}

fn utc(v: &Value) -> String {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn html_route(fixture: &str) -> Route {
    // No charset in the header: the page's own <meta> must decide.
    Route::ok("text/html", read_fixture(&format!("page/{fixture}")))
}

#[test]
fn windows_1252_page_with_meta_charset_keeps_umlauts_and_berlin_dates() {
    let server = TestServer::start();
    server.route(
        "/aktuelles/",
        html_route("windows-1252-umlauts-meta-charset.html"),
    );
    let p = Project::with_seed_posts();
    p.config(&page_source(
        "lpr",
        &server.url("/aktuelles/"),
        r#"{ item = ".newsitem", title = "h3 a", link = "h3 a", date = ".date", summary = ".teaser" }"#,
        r#"date_format = "%d.%m.%Y"
timezone = "Europe/Berlin""#,
    ));
    let out = p.run(&["build"]);
    out.success();
    assert!(
        out.stdout().contains("lpr          ok: 2 items"),
        "{}",
        out.all()
    );
    let items = items_of(&p, "lpr");
    assert_eq!(items.len(), 2, "{items:#?}");
    assert_eq!(
        items[0]["title"],
        "Förderung für Präventionsräte: „Städte für Sicherheit“"
    );
    assert_eq!(
        items[1]["title"],
        "Grüße aus München – Fachtag Straßenkriminalität"
    );
    assert!(
        items[0]["content_html"]
            .as_str()
            .unwrap()
            .contains("5.000 € je Kommune"),
        "{:#?}",
        items[0]
    );
    // 09.10.2017, midnight in Berlin (CEST, +02:00).
    assert_eq!(utc(&items[0]["date_published"]), "2017-10-08T22:00:00Z");
    assert_eq!(utc(&items[1]["date_published"]), "2017-08-15T22:00:00Z");
    assert_eq!(
        items[0]["url"],
        server.url("/aktuelles/foerderung-2017.html")
    );
}

#[test]
fn relative_links_in_items_and_their_text_become_absolute() {
    let server = TestServer::start();
    server.route(
        "/partner/meldungen/index.html",
        html_route("relative-links.html"),
    );
    let p = Project::with_seed_posts();
    p.config(&page_source(
        "partner",
        &server.url("/partner/meldungen/index.html"),
        r#"{ item = "li.meldung", title = "a.titel", date = ".datum", content = ".text" }"#,
        r#"date_format = ["%d.%m.%Y"]"#,
    ));
    p.run(&["build"]).success();
    let items = items_of(&p, "partner");
    let urls: Vec<&str> = items.iter().map(|i| i["url"].as_str().unwrap()).collect();
    assert_eq!(
        urls,
        vec![
            server.url("/partner/meldungen/2017/mitgliederversammlung.html"),
            server.url("/presse/neue-mitglieder.html?id=7"),
            "http://cdn.partner.example/extern/webinar.html".to_owned(),
        ]
    );
    let html = items[0]["content_html"].as_str().unwrap();
    assert!(
        html.contains(&format!(
            "href=\"{}\"",
            server.url("/partner/dokumente/protokoll.pdf")
        )),
        "{html}"
    );
    // Relative to the page the text was written on, not to the item's own link.
    assert!(
        html.contains(&format!(
            "src=\"{}\"",
            server.url("/partner/meldungen/bilder/stuttgart.jpg")
        )),
        "{html}"
    );
}

#[test]
fn german_dates_with_times_and_dst_read_in_the_page_zone() {
    let server = TestServer::start();
    server.route("/termine", html_route("german-dates.html"));
    let p = Project::with_seed_posts();
    p.config(&page_source(
        "termine",
        &server.url("/termine"),
        r#"{ item = "article.post", title = "h2", date = ".meta" }"#,
        r#"date_format = ["%d.%m.%Y %H:%M", "%d.%m.%Y"]
timezone = "Europe/Berlin""#,
    ));
    let out = p.run(&["build"]);
    out.success();
    // "Januar 2017" names no day: reported, and the item is kept (dated when first seen).
    assert!(
        out.stdout().contains("cannot read date `Januar 2017`"),
        "{}",
        out.all()
    );
    let items = items_of(&p, "termine");
    let by_title = |t: &str| {
        items
            .iter()
            .find(|i| i["title"] == t)
            .unwrap_or_else(|| panic!("no item {t}: {items:#?}"))
            .clone()
    };
    assert_eq!(
        utc(&by_title("Herbsttagung")["date_published"]),
        "2017-10-09T12:30:00Z"
    );
    assert_eq!(
        utc(&by_title("Sommerfest")["date_published"]),
        "2017-08-15T22:00:00Z"
    );
    // 02:30 happens twice that night; the earlier (summer-time) instant is taken.
    assert_eq!(
        utc(&by_title("Zeitumstellung")["date_published"]),
        "2017-10-29T00:30:00Z"
    );
    // Month names are German; no format needed, the general date rules read them.
    assert_eq!(
        utc(&by_title("Mitgliederversammlung")["date_published"]),
        "2017-10-08T22:00:00Z"
    );
    assert_eq!(
        utc(&by_title("Fachtag")["date_published"]),
        "2017-10-16T07:30:00Z"
    );
    // A date among other words is still found.
    assert_eq!(
        utc(&by_title("Pressemitteilung")["date_published"]),
        "2017-10-11T22:00:00Z"
    );
    assert_eq!(items.len(), 7);
}

#[test]
fn layout_change_is_a_source_error_and_earlier_items_stay_published() {
    let server = TestServer::start();
    server.route("/aktuelles", html_route("layout-before-redesign.html"));
    let p = Project::with_seed_posts();
    p.config(&page_source(
        "lpr",
        &server.url("/aktuelles"),
        r#"{ item = ".newsitem", title = "h3 a", link = "h3 a", date = ".date", summary = ".teaser" }"#,
        r#"date_format = "%d.%m.%Y""#,
    ));
    p.run(&["build"]).success();
    let before: Vec<String> = items_of(&p, "lpr")
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(before.len(), 2);

    server.route("/aktuelles", html_route("layout-after-redesign.html"));
    let out = p.run(&["build"]);
    out.success();
    assert!(
        out.stdout().contains("FAILED: ")
            && out
                .stdout()
                .contains("selector `.newsitem` matched nothing"),
        "{}",
        out.all()
    );
    let after: Vec<String> = items_of(&p, "lpr")
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(after, before, "items held must stay published");
    let sources = p.run(&["sources"]);
    sources.success();
    assert!(
        sources
            .stdout()
            .contains("selector `.newsitem` matched nothing"),
        "{}",
        sources.all()
    );
}

#[test]
fn page_item_ids_are_stable_when_the_page_changes_around_them() {
    let server = TestServer::start();
    let page = |items: &[(&str, &str, &str)]| {
        let mut html = String::from("<html><body>");
        for (title, link, date) in items {
            html.push_str(&format!(
                "<div class=\"n\"><h3>{title}</h3>{link}<span class=\"d\">{date}</span></div>"
            ));
        }
        html.push_str("</body></html>");
        Route::ok("text/html; charset=utf-8", html)
    };
    server.route(
        "/news",
        page(&[
            ("Mit Link", "<a href=\"/news/1\">mehr</a>", "01.02.2017"),
            ("Ohne Link", "", "02.02.2017"),
        ]),
    );
    let p = Project::with_seed_posts();
    p.config(&page_source(
        "p",
        &server.url("/news"),
        r#"{ item = ".n", title = "h3", link = "a", date = ".d" }"#,
        "",
    ));
    p.run(&["build"]).success();
    let ids = |p: &Project| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = items_of(p, "p")
            .iter()
            .map(|i| {
                (
                    i["title"].as_str().unwrap().to_owned(),
                    i["id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let first = ids(&p);
    assert_eq!(first.len(), 2);
    // A new item on top, the old ones move down and one gets a retouched title: the
    // linked one keeps its ID (from the link), the unlinked one keeps its own (title+date).
    server.route(
        "/news",
        page(&[
            ("Neu", "<a href=\"/news/3\">mehr</a>", "03.03.2017"),
            (
                "Mit Link (aktualisiert)",
                "<a href=\"/news/1\">mehr</a>",
                "01.02.2017",
            ),
            ("Ohne Link", "", "02.02.2017"),
        ]),
    );
    p.run(&["build"]).success();
    let second = ids(&p);
    assert_eq!(second.len(), 3, "{second:?}");
    let id_of =
        |v: &[(String, String)], t: &str| v.iter().find(|(title, _)| title == t).unwrap().1.clone();
    assert_eq!(
        id_of(&second, "Mit Link (aktualisiert)"),
        id_of(&first, "Mit Link")
    );
    assert_eq!(id_of(&second, "Ohne Link"), id_of(&first, "Ohne Link"));
}

#[test]
fn unchanged_page_is_fetched_conditionally() {
    let server = TestServer::start();
    server.route(
        "/aktuelles",
        html_route("layout-before-redesign.html").etag("\"v1\""),
    );
    let p = Project::with_seed_posts();
    p.config(&page_source(
        "lpr",
        &server.url("/aktuelles"),
        r#"{ item = ".newsitem", title = "h3 a", date = ".date" }"#,
        "",
    ));
    p.run(&["build"]).success();
    let out = p.run(&["build"]);
    out.success();
    assert!(
        out.stdout().contains("lpr          not modified"),
        "{}",
        out.all()
    );
    let seen = server.seen_at("/aktuelles");
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[1].headers.get("if-none-match").map(String::as_str),
        Some("\"v1\"")
    );
    assert_eq!(seen[1].status, 304);
    assert_eq!(items_of(&p, "lpr").len(), 2);
}

#[test]
fn check_names_the_source_and_the_bad_selector_or_date_format() {
    let p = Project::with_seed_posts();
    p.config(&page_source(
        "lpr",
        "https://partner.example/aktuelles",
        r#"{ item = ".newsitem", title = "h3 >> a", date = ".date" }"#,
        r#"date_format = ["%d.%m.%Y", "%H:%M", "%Q"]"#,
    ));
    let out = p.run(&["check"]);
    assert_eq!(out.code(), Some(1), "{}", out.all());
    let all = out.all();
    assert!(
        all.contains("`source[1].selectors.title`: source `lpr`: invalid CSS selector `h3 >> a`"),
        "{all}"
    );
    assert!(
        all.contains(
            "`source[1].date_format`: source `lpr`: date format `%H:%M` cannot identify a day"
        ),
        "{all}"
    );
    assert!(
        all.contains("source `lpr`: invalid date format `%Q`"),
        "{all}"
    );
    // A valid page source passes, and check says how it will be read.
    p.config(&page_source(
        "lpr",
        "https://partner.example/aktuelles",
        r#"{ item = ".newsitem", title = "h3 a", date = ".date" }"#,
        r#"date_format = "%d.%m.%Y""#,
    ));
    let out = p.run(&["check"]);
    out.success();
    assert!(
        out.stdout().contains(
            "lpr          page   https://partner.example/aktuelles: items `.newsitem`, title `h3 a`, dates `%d.%m.%Y` in Europe/Berlin"
        ),
        "{}",
        out.all()
    );
}

#[test]
fn page_encoding_comes_from_http_charset_bom_or_meta() {
    let server = TestServer::start();
    let cases = [
        (
            "/meta",
            "text/html",
            "windows-1252-umlauts-meta-charset.html",
            "windows-1252",
            "the document's own declaration",
        ),
        (
            // A server default of UTF-8 is common on legacy pages: bytes that are not
            // UTF-8 cannot be, so the page's own <meta> decides.
            "/meta-over-wrong-server-default",
            "text/html; charset=utf-8",
            "windows-1252-umlauts-meta-charset.html",
            "windows-1252",
            "the document's own declaration",
        ),
        (
            "/http",
            "text/html; charset=windows-1252",
            "windows-1252-no-meta-charset-only-in-http.html",
            "windows-1252",
            "the HTTP Content-Type charset",
        ),
        (
            "/bom",
            "text/html",
            "utf-16le-bom.html",
            "UTF-16LE",
            "byte order mark",
        ),
    ];
    let p = Project::new();
    for (path, ctype, file, _, _) in cases {
        server.route(
            path,
            Route::ok(ctype, read_fixture(&format!("page/{file}"))),
        );
    }
    for (path, _, file, encoding, decided_by) in cases {
        let out = p.run(&[
            "doctor",
            "--json",
            &server.url(path),
            "--selectors",
            "item=.newsitem,title=h3 a,date=.date",
        ]);
        out.success();
        let v: Value = serde_json::from_str(&out.stdout()).unwrap();
        assert_eq!(v["encoding"], encoding, "{file}: {v:#}");
        assert_eq!(v["encoding_decided_by"], decided_by, "{file}");
        assert_eq!(
            v["items"][1]["title"], "Grüße aus München – Fachtag Straßenkriminalität",
            "{file}"
        );
    }
}
