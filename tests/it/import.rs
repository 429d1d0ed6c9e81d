//! `feedwerk import`: feeds, pages and plain-text listings become local posts that
//! `check` and `build` read back; nothing is ever overwritten.

use std::path::Path;

use serde_json::Value;

use crate::support::{fixture, read_fixture, Project, Route, TestServer};

/// One local source reading `feeds/defus`, nothing else.
pub(crate) const LOCAL_ONLY: &str = r#"
[[source]]
id = "defus"
kind = "local"
path = "feeds/defus"
"#;

fn md_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".md"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The seed page as a person reads it: (date, title) per news item.
const SEED: [(&str, &str); 6] = [
    (
        "2017-10-08T22:00:00Z",
        "15. DEFUS Mitgliederversammlung in Stuttgart",
    ),
    (
        "2017-08-15T22:00:00Z",
        "DEFUS begrüßt 2 neue Mitglieder - Gelsenkirchen und Lippe",
    ),
    (
        "2017-08-15T22:00:00Z",
        "DEFUS auf dem Deutschen Präventionstag 2017",
    ),
    (
        "2017-04-16T22:00:00Z",
        "Präventive Unterstützung für Integration und Inklusion",
    ),
    (
        "2017-04-05T22:00:00Z",
        "Webinarreihe Extremischtische Radikalisierung",
    ),
    ("2016-08-19T22:00:00Z", "DEFUS auf dem DPT 2017"),
];

#[test]
fn seed_listing_becomes_six_posts_whose_titles_dates_and_bodies_match_the_page() {
    let p = Project::new();
    p.config(LOCAL_ONLY);
    std::fs::create_dir_all(p.path().join("feeds/defus")).unwrap();
    let from = fixture("import/aktuelles.txt");
    let out = p.run(&[
        "import",
        "--from",
        from.to_str().unwrap(),
        "--into",
        "feeds/defus",
    ]);
    out.success();
    assert!(
        out.stdout()
            .contains("6 written, 0 already there, 0 problems"),
        "{}",
        out.all()
    );
    // The same names, titles, dates and bodies as the posts shipped in feeds/defus,
    // which were written by hand from the same page.
    let shipped = crate::support::repo_root().join("feeds/defus");
    let written = md_files(&p.path().join("feeds/defus"));
    assert_eq!(written, md_files(&shipped));
    for name in &written {
        let ours = p.read(&format!("feeds/defus/{name}"));
        let theirs = std::fs::read_to_string(shipped.join(name)).unwrap();
        assert_eq!(squash(&ours), squash(&theirs), "{name}");
    }

    // Read back by the real pipeline: every item with its date and every paragraph of
    // the page in its text.
    let check = p.run(&["check"]);
    check.success();
    assert!(
        check.stdout().contains("6 posts (0 drafts), 0 errors"),
        "{}",
        check.all()
    );
    p.run(&["build"]).success();
    let feed: Value = serde_json::from_str(&p.read("public/feed.json")).unwrap();
    let items = feed["items"].as_array().unwrap();
    // The page tells one story twice (2016 and 2017, same text): deduplication shows it
    // once. Every item shown is one of the page's, with the page's date.
    assert_eq!(items.len(), 5, "{feed:#}");
    for item in items {
        let (date, title) = SEED
            .iter()
            .find(|(_, t)| item["title"] == *t)
            .unwrap_or_else(|| panic!("unexpected item {item:#}"));
        let got = chrono::DateTime::parse_from_rfc3339(item["date_published"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        assert_eq!(got, *date, "{title}");
    }
    let page = String::from_utf8(read_fixture("import/aktuelles.txt")).unwrap();
    let all_text: String = items
        .iter()
        .map(|i| squash(&html_text(i["content_html"].as_str().unwrap_or(""))))
        .collect::<Vec<_>>()
        .join("\n");
    for para in page.lines().map(str::trim).filter(|l| l.len() > 60) {
        let para = squash(para.trim_start_matches('•'));
        assert!(all_text.contains(&para), "paragraph missing: {para}");
    }
}

/// Tags dropped and entities decoded, enough to compare text.
fn html_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

#[test]
fn text_listing_served_over_http_imports_like_the_file() {
    let server = TestServer::start();
    server.route(
        "/aktuelles.txt",
        Route::ok(
            "text/plain; charset=utf-8",
            read_fixture("import/aktuelles.txt"),
        ),
    );
    let p = Project::new();
    p.config(LOCAL_ONLY);
    let out = p.run(&[
        "import",
        "--from",
        &server.url("/aktuelles.txt"),
        "--into",
        "feeds/defus",
    ]);
    out.success();
    assert!(out.stdout().contains("6 written"), "{}", out.all());
    assert_eq!(
        md_files(&p.path().join("feeds/defus")),
        md_files(&crate::support::repo_root().join("feeds/defus"))
    );
}

#[test]
fn importing_twice_writes_nothing_new_and_never_overwrites() {
    let p = Project::new();
    p.config(LOCAL_ONLY);
    let from = fixture("import/aktuelles.txt");
    let args = [
        "import",
        "--from",
        from.to_str().unwrap(),
        "--into",
        "feeds/defus",
    ];
    p.run(&args).success();
    // An editor fixes a post by hand; a second import must not touch it.
    let name = "feeds/defus/2016-08-20-defus-auf-dem-dpt-2017.md";
    let edited = p.read(name).replace("Hannover", "Hannover (korrigiert)");
    p.write(name, &edited);
    let before: Vec<(String, String)> = md_files(&p.path().join("feeds/defus"))
        .into_iter()
        .map(|n| {
            let t = p.read(&format!("feeds/defus/{n}"));
            (n, t)
        })
        .collect();
    let out = p.run(&args);
    out.success();
    assert!(
        out.stdout().contains("0 written, 6 already there"),
        "{}",
        out.all()
    );
    let after: Vec<(String, String)> = md_files(&p.path().join("feeds/defus"))
        .into_iter()
        .map(|n| {
            let t = p.read(&format!("feeds/defus/{n}"));
            (n, t)
        })
        .collect();
    assert_eq!(before, after);
    assert!(p.read(name).contains("(korrigiert)"));
}

const RSS: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel>
<title>Partner</title><link>https://partner.example/</link><description>d</description>
<item>
  <title>Fachtag &amp; Austausch</title>
  <link>/news/fachtag.html</link>
  <guid isPermaLink="false">fachtag-2017</guid>
  <pubDate>Mon, 09 Oct 2017 14:30:00 +0200</pubDate>
  <category>Prävention</category>
  <description><![CDATA[<p>Ein <strong>wichtiger</strong> Tag mit <a href="/programm.pdf">Programm</a>.</p><ul><li>Eins</li><li>Zwei</li></ul>]]></description>
</item>
<item>
  <title>Ohne Datum</title>
  <link>https://partner.example/news/ohne-datum.html</link>
  <description>Text</description>
</item>
</channel></rss>"#;

#[test]
fn feed_items_become_markdown_posts_with_front_matter() {
    let server = TestServer::start();
    server.route("/feed.xml", Route::ok("application/rss+xml", RSS));
    let p = Project::new();
    p.config(LOCAL_ONLY);
    let out = p.run(&[
        "import",
        "--from",
        &server.url("/feed.xml"),
        "--into",
        "feeds/defus",
        "--keep-links",
    ]);
    // The undated item is reported, not imported with a made-up date.
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert!(
        out.stdout().contains("\"Ohne Datum\" has no date"),
        "{}",
        out.all()
    );
    assert!(out.stdout().contains("1 written"), "{}", out.all());
    let text = p.read("feeds/defus/2017-10-09-fachtag-austausch.md");
    assert!(
        text.starts_with(
            "+++\ntitle = \"Fachtag & Austausch\"\ndate = 2017-10-09T14:30:00+02:00\n"
        ),
        "{text}"
    );
    assert!(text.contains("tags = [\"Prävention\"]"), "{text}");
    assert!(
        text.contains("link = \"https://partner.example/news/fachtag.html\""),
        "{text}"
    );
    assert!(
        text.contains(
            "Ein **wichtiger** Tag mit [Programm](https://partner.example/programm.pdf)."
        ),
        "{text}"
    );
    assert!(text.contains("Eins"), "{text}");
    p.run(&["check"]).success();

    // The partner retitles the item: with --keep-links its original URL still marks it
    // as imported, so no second post appears.
    server.route(
        "/feed.xml",
        Route::ok(
            "application/rss+xml",
            RSS.replace(
                "Fachtag &amp; Austausch",
                "Fachtag &amp; Austausch (aktualisiert)",
            ),
        ),
    );
    let out = p.run(&[
        "import",
        "--from",
        &server.url("/feed.xml"),
        "--into",
        "feeds/defus",
        "--keep-links",
    ]);
    assert!(
        out.stdout().contains("0 written, 1 already there"),
        "{}",
        out.all()
    );
    assert!(
        out.stdout()
            .contains("a post with link https://partner.example/news/fachtag.html exists"),
        "{}",
        out.all()
    );
}

fn lpr_page_source(url: &str) -> String {
    format!(
        r#"{LOCAL_ONLY}
[[source]]
id = "lpr"
kind = "page"
url = "{url}"
selectors = {{ item = ".newsitem", title = "h3 a", link = "h3 a", date = ".date", summary = ".teaser" }}
date_format = "%d.%m.%Y"
"#
    )
}

#[test]
fn page_with_selectors_and_configured_source_import_alike() {
    let server = TestServer::start();
    server.route(
        "/aktuelles/",
        Route::ok(
            "text/html",
            read_fixture("page/windows-1252-umlauts-meta-charset.html"),
        ),
    );
    let p = Project::new();
    p.config(&lpr_page_source(&server.url("/aktuelles/")));
    let out = p.run(&[
        "import",
        "--from",
        &server.url("/aktuelles/"),
        "--into",
        "feeds/lpr-cli",
        "--selectors",
        "item=.newsitem,title=h3 a,link=h3 a,date=.date,summary=.teaser",
        "--date-format",
        "%d.%m.%Y",
    ]);
    out.success();
    // No local source reads feeds/lpr-cli: the operator is told how to publish it.
    assert!(
        out.stderr().contains("note: no local source in")
            && out.stderr().contains("path = \"feeds/lpr-cli\""),
        "{}",
        out.all()
    );
    let cli = md_files(&p.path().join("feeds/lpr-cli"));
    assert_eq!(
        cli,
        vec![
            "2017-08-16-gruesse-aus-muenchen-fachtag-strassenkriminalitaet.md",
            "2017-10-09-foerderung-fuer-praeventionsraete-staedte-fuer-sicherheit.md",
        ]
    );
    let post = p.read(&format!("feeds/lpr-cli/{}", cli[1]));
    assert!(
        post.contains("title = \"Förderung für Präventionsräte: „Städte für Sicherheit“\""),
        "{post}"
    );
    assert!(post.contains("date = 2017-10-09\n"), "{post}");
    assert!(post.contains("5.000 € je Kommune"), "{post}");

    p.run(&["import", "--source", "lpr", "--into", "feeds/lpr-config"])
        .success();
    let cfg = md_files(&p.path().join("feeds/lpr-config"));
    assert_eq!(cfg, cli);
    for n in &cfg {
        assert_eq!(
            p.read(&format!("feeds/lpr-config/{n}")),
            p.read(&format!("feeds/lpr-cli/{n}"))
        );
    }
}

#[test]
fn html_page_without_selectors_is_refused_with_a_hint() {
    let server = TestServer::start();
    server.route(
        "/aktuelles",
        Route::ok(
            "text/html; charset=utf-8",
            r#"<!DOCTYPE html><html><head><link rel="alternate" type="application/rss+xml" href="/rss"></head><body><p>x</p></body></html>"#,
        ),
    );
    let p = Project::new();
    p.config(LOCAL_ONLY);
    let out = p.run(&[
        "import",
        "--from",
        &server.url("/aktuelles"),
        "--into",
        "feeds/x",
    ]);
    assert_eq!(out.code(), Some(2), "{}", out.all());
    assert!(out.stderr().contains("give `--selectors`"), "{}", out.all());
    assert!(
        out.stderr()
            .contains(&format!("announces a feed: {}", server.url("/rss"))),
        "{}",
        out.all()
    );
    assert!(md_files(&p.path().join("feeds/x")).is_empty());
}

#[test]
fn saved_page_file_with_base_url_keeps_absolute_links() {
    let p = Project::new();
    p.config(LOCAL_ONLY);
    let from = fixture("page/relative-links.html");
    let args = [
        "import",
        "--from",
        from.to_str().unwrap(),
        "--into",
        "feeds/archiv",
        "--selectors",
        "{ item = \"li.meldung\", title = \"a.titel\", date = \".datum\", content = \".text\" }",
        "--keep-links",
    ];
    // Without a base the relative links cannot be resolved, and none is guessed.
    let mut without = args.to_vec();
    without[4] = "feeds/ohne-basis";
    let out = p.run(&without);
    assert!(out.stdout().contains("3 written"), "{}", out.all());
    let post = p.read("feeds/ohne-basis/2017-10-09-mitgliederversammlung-in-stuttgart.md");
    assert!(!post.contains("link ="), "{post}");

    let mut with = args.to_vec();
    with.extend([
        "--base-url",
        "https://partner.example/partner/meldungen/index.html",
    ]);
    p.run(&with).success();
    let post = p.read("feeds/archiv/2017-10-09-mitgliederversammlung-in-stuttgart.md");
    assert!(
        post.contains(
            "link = \"https://partner.example/partner/meldungen/2017/mitgliederversammlung.html\""
        ),
        "{post}"
    );
    assert!(
        post.contains("[Protokoll](https://partner.example/partner/dokumente/protokoll.pdf)"),
        "{post}"
    );
}

#[test]
fn imported_posts_are_as_readable_as_the_umask_allows() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new();
    p.config(LOCAL_ONLY);
    let from = fixture("import/aktuelles.txt");
    let args = [
        "import",
        "--from",
        from.to_str().unwrap(),
        "--into",
        "feeds/defus",
    ];
    let out = p.command_under_umask("022", &args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = p.path().join("feeds/defus");
    let names = md_files(&dir);
    assert_eq!(names.len(), 6);
    // Posts are for people to edit and for others to read, like any file they write.
    for name in names {
        let mode = std::fs::metadata(dir.join(&name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o644, "{name} is {mode:o}");
    }
}
