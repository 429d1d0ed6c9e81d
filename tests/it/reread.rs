//! A source whose reading settings changed is read again on the next `build`, although
//! the partner answers `304` to the validators we hold (`src/reading.rs`): one test per
//! setting, each checking the published items and what was sent to the partner.

use serde_json::Value;

use crate::support::{Project, Route, TestServer};

const PATH: &str = "/partner";

/// A partner feed or page behind an ETag: it answers `304` whenever we send it back.
fn serve(server: &TestServer, content_type: &str, body: impl Into<Vec<u8>>) {
    server.route(PATH, Route::ok(content_type, body).etag("\"v1\""));
}

/// Writes the config: one partner source `p` of `kind` with the TOML lines `source`
/// in its table (a `[source.tags]` table may end them), then the top-level `tail`.
fn configure(p: &Project, server: &TestServer, kind: &str, source: &str, tail: &str) {
    p.config(&format!(
        "[[source]]\nid = \"p\"\nkind = \"{kind}\"\nurl = \"{}\"\n{source}\n\n{tail}\n",
        server.url(PATH)
    ));
}

/// The published JSON Feed's items, by title.
fn items(p: &Project) -> std::collections::BTreeMap<String, Value> {
    let feed: Value = serde_json::from_str(&p.read("public/feed.json")).unwrap();
    feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["title"].as_str().unwrap().to_owned(), i.clone()))
        .collect()
}

/// Builds with `before`, then with `after` (each a pair of source lines and top-level
/// TOML); returns the items published after each build. Checks the protocol: the build
/// after the change sent no validators and got the document, and a third build with
/// nothing changed sends them again and gets `304`.
type Items = std::collections::BTreeMap<String, Value>;
fn reread(
    server: &TestServer,
    kind: &str,
    before: (&str, &str),
    after: (&str, &str),
) -> (Items, Items) {
    let p = Project::new();
    configure(&p, server, kind, before.0, before.1);
    p.run(&["build"]).success();
    let first = items(&p);
    // Unchanged settings: the partner's 304 is believed.
    p.run(&["build"]).success();
    assert_eq!(server.count(PATH, 304), 1, "{:?}", server.seen());

    configure(&p, server, kind, after.0, after.1);
    let out = p.run(&["build"]);
    out.success();
    let seen = server.seen_at(PATH);
    let last = seen.last().unwrap();
    assert!(
        !last.headers.contains_key("if-none-match"),
        "validators sent after the settings changed: {last:?}"
    );
    assert_eq!(last.status, 200, "{}", out.all());
    let second = items(&p);

    p.run(&["build"]).success();
    let seen = server.seen_at(PATH);
    assert_eq!(seen.last().unwrap().status, 304, "validators back in use");
    (first, second)
}

fn rss(items: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rss version=\"2.0\"><channel><title>Partner</title>\
         <link>https://partner.example/</link><description>d</description>{items}</channel></rss>"
    )
}

fn rss_item(title: &str, extra: &str) -> String {
    format!(
        "<item><title>{title}</title><link>https://partner.example/{}</link>\
         <guid>https://partner.example/{}</guid><pubDate>Mon, 09 Oct 2017 12:00:00 +0000</pubDate>{extra}</item>",
        title.len(),
        title.len()
    )
}

const PAGE: &str = r#"<!DOCTYPE html><html lang="de"><head><meta charset="utf-8"><title>Aktuelles</title></head><body>
<div class="news"><h3><a href="/a.html">Fachtag Prävention</a></h3><span class="date">09/10/2017 14:30</span><p class="teaser">Der Fachtag brachte Kommunen und Polizei zusammen.</p></div>
<div class="news"><h3><a href="/b.html">Netzwerktreffen</a></h3><span class="date">14/03/2017 09:00</span><p class="teaser">Die Mitglieder trafen sich in Stuttgart.</p></div>
</body></html>"#;

const SELECTORS: &str =
    r#"selectors = { item = ".news", title = "h3 a", link = "h3 a", date = ".date" }"#;

#[test]
fn changed_page_selectors_reread_the_page() {
    let server = TestServer::start();
    serve(&server, "text/html; charset=utf-8", PAGE);
    let with_summary = r#"selectors = { item = ".news", title = "h3 a", link = "h3 a", date = ".date", summary = ".teaser" }"#;
    let fmt = "date_format = \"%d/%m/%Y %H:%M\"";
    let (before, after) = reread(
        &server,
        "page",
        (&format!("{SELECTORS}\n{fmt}"), ""),
        (&format!("{with_summary}\n{fmt}"), ""),
    );
    let before = &before["Netzwerktreffen"];
    let after = &after["Netzwerktreffen"];
    assert_ne!(
        before["summary"].as_str(),
        Some("Die Mitglieder trafen sich in Stuttgart.")
    );
    assert_eq!(
        after["summary"].as_str(),
        Some("Die Mitglieder trafen sich in Stuttgart.")
    );
    assert_eq!(before["id"], after["id"], "the same item, read better");
}

/// A selector that no longer matches is reported at once, not hidden behind a 304.
#[test]
fn a_changed_selector_that_matches_nothing_is_reported_on_the_next_build() {
    let server = TestServer::start();
    serve(&server, "text/html; charset=utf-8", PAGE);
    let p = Project::new();
    configure(&p, &server, "page", SELECTORS, "");
    p.run(&["build"]).success();
    configure(
        &p,
        &server,
        "page",
        r#"selectors = { item = ".newsitem", title = "h3 a" }"#,
        "",
    );
    let out = p.run(&["build"]);
    assert!(
        out.all().contains("selector `.newsitem` matched nothing"),
        "{}",
        out.all()
    );
    assert_eq!(items(&p).len(), 2, "the items held stay published");
}

#[test]
fn a_changed_date_format_rereads_the_page() {
    let server = TestServer::start();
    serve(&server, "text/html; charset=utf-8", PAGE);
    // `09/10/2017` is refused without a format (day or month first is a guess): the
    // items are dated when first seen, then by the format.
    let (before, after) = reread(
        &server,
        "page",
        (SELECTORS, ""),
        (
            &format!("{SELECTORS}\ndate_format = \"%d/%m/%Y %H:%M\""),
            "",
        ),
    );
    assert!(!before["Fachtag Prävention"]["date_published"]
        .as_str()
        .unwrap()
        .starts_with("2017"));
    assert_eq!(
        after["Fachtag Prävention"]["date_published"].as_str(),
        Some("2017-10-09T12:30:00Z")
    );
}

#[test]
fn a_changed_timezone_rereads_the_page() {
    let server = TestServer::start();
    serve(&server, "text/html; charset=utf-8", PAGE);
    let fmt = format!("{SELECTORS}\ndate_format = \"%d/%m/%Y %H:%M\"");
    let (before, after) = reread(
        &server,
        "page",
        (&format!("{fmt}\ntimezone = \"Europe/Berlin\""), ""),
        (&format!("{fmt}\ntimezone = \"Europe/London\""), ""),
    );
    let utc = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc)
            .to_rfc3339()
    };
    assert_eq!(
        utc(&before["Fachtag Prävention"]["date_published"]),
        "2017-10-09T12:30:00+00:00"
    );
    assert_eq!(
        utc(&after["Fachtag Prävention"]["date_published"]),
        "2017-10-09T13:30:00+00:00"
    );
}

/// Windows-1250 bytes (Polish) without any label: forcing the wrong encoding and then
/// the right one shows the right letters on the next build.
#[test]
fn a_changed_encoding_rereads_the_feed() {
    let server = TestServer::start();
    let text = rss(&rss_item("Konferencja w Łodzi: bezpieczeństwo miast", ""))
        .replace(" encoding=\"utf-8\"", "");
    let (bytes, _, bad) = encoding_rs::WINDOWS_1250.encode(&text);
    assert!(!bad);
    serve(&server, "application/rss+xml", bytes.into_owned());
    let (before, after) = reread(
        &server,
        "feed",
        ("encoding = \"windows-1252\"", ""),
        ("encoding = \"windows-1250\"", ""),
    );
    assert!(
        !before.contains_key("Konferencja w Łodzi: bezpieczeństwo miast"),
        "{before:?}"
    );
    assert!(
        after.contains_key("Konferencja w Łodzi: bezpieczeństwo miast"),
        "{after:?}"
    );
}

/// Items too short to detect a language take the source's.
#[test]
fn a_changed_language_rereads_the_feed() {
    let server = TestServer::start();
    serve(
        &server,
        "application/rss+xml",
        rss(&rss_item("Termine", "<description>Mai 2017</description>")),
    );
    let (before, after) = reread(
        &server,
        "feed",
        ("language = \"de\"", ""),
        ("language = \"fr\"", ""),
    );
    assert_eq!(before["Termine"]["language"], "de");
    assert_eq!(after["Termine"]["language"], "fr");
}

#[test]
fn changed_source_tags_reread_the_feed() {
    let server = TestServer::start();
    serve(
        &server,
        "application/rss+xml",
        rss(&rss_item(
            "Crime prevention in Europe",
            "<category>Prevención</category>",
        )),
    );
    let (before, after) = reread(
        &server,
        "feed",
        ("", ""),
        ("[source.tags]\n\"Prävention\" = [\"Prevención\"]", ""),
    );
    let tags = |v: &Value| v["tags"].clone();
    assert_eq!(
        tags(&before["Crime prevention in Europe"]),
        serde_json::json!(["Prevención"])
    );
    assert_eq!(
        tags(&after["Crime prevention in Europe"]),
        serde_json::json!(["Prävention"])
    );
}

#[test]
fn changed_site_tags_reread_the_feed() {
    let server = TestServer::start();
    serve(
        &server,
        "application/rss+xml",
        rss(&rss_item(
            "Crime prevention in Europe",
            "<category>Crime prevention</category>",
        )),
    );
    let (before, after) = reread(
        &server,
        "feed",
        ("", ""),
        (
            "",
            "[tags]\n\"Kriminalprävention\" = [\"Crime prevention\"]",
        ),
    );
    assert_eq!(
        before["Crime prevention in Europe"]["tags"],
        serde_json::json!(["Crime prevention"])
    );
    assert_eq!(
        after["Crime prevention in Europe"]["tags"],
        serde_json::json!(["Kriminalprävention"])
    );
}

#[test]
fn changed_iframe_hosts_reread_the_feed() {
    let server = TestServer::start();
    let content = "<content:encoded><![CDATA[<p>Der Vortrag als Video:</p>\
        <iframe src=\"https://www.youtube-nocookie.com/embed/abc123\"></iframe>]]></content:encoded>";
    serve(
        &server,
        "application/rss+xml",
        rss(&rss_item("Vortrag als Video", content)).replace(
            "<rss version=\"2.0\">",
            "<rss version=\"2.0\" xmlns:content=\"http://purl.org/rss/1.0/modules/content/\">",
        ),
    );
    let (before, after) = reread(
        &server,
        "feed",
        ("", ""),
        ("allow_iframe_hosts = [\"www.youtube-nocookie.com\"]", ""),
    );
    let html = |v: &Items| {
        v["Vortrag als Video"]["content_html"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(!html(&before).contains("<iframe"), "{}", html(&before));
    assert!(
        html(&after).contains("https://www.youtube-nocookie.com/embed/abc123"),
        "{}",
        html(&after)
    );
}
