//! Normalisation through the real CLI: a partner feed served by a `TestServer`,
//! `feedwerk build`, and the normalised fields read back from `public/feed.json` (and,
//! for the sanitiser, from every output the build wrote).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::{read_fixture, Project, Route, TestServer};

/// One partner source named `partner` serving `body` at `/feed`.
struct Partner {
    server: TestServer,
    project: Project,
}

impl Partner {
    fn new(body: Vec<u8>, content_type: &str) -> Partner {
        let server = TestServer::start();
        server.route("/feed", Route::ok(content_type, body));
        Partner {
            server,
            project: Project::new(),
        }
    }

    fn fixture(name: &str) -> Partner {
        let ct = if name.ends_with(".json") {
            "application/feed+json"
        } else {
            "application/xml"
        };
        Partner::new(read_fixture(&format!("normalise/{name}")), ct)
    }

    /// Writes the config: `site_extra` before the source (e.g. `[tags]`), `source_extra`
    /// inside the `[[source]]` table.
    fn config(&self, site_extra: &str, source_extra: &str) -> &Partner {
        self.project.config(&format!(
            "{site_extra}\n\n[[source]]\nid = \"partner\"\nkind = \"feed\"\ntitle = \"Partner\"\nurl = \"{}\"\n{source_extra}\n",
            self.server.url("/feed")
        ));
        self
    }

    /// Runs `feedwerk build` and returns the combined JSON Feed's items by title.
    fn build(&self) -> BTreeMap<String, Value> {
        self.project.run(&["build"]).success();
        items_by_title(&self.project.read("public/feed.json"))
    }
}

fn items_by_title(json: &str) -> BTreeMap<String, Value> {
    let feed: Value = serde_json::from_str(json).expect("feed.json is JSON");
    feed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| (i["title"].as_str().unwrap().to_owned(), i.clone()))
        .collect()
}

fn field<'a>(items: &'a BTreeMap<String, Value>, title: &str, key: &str) -> &'a str {
    let item = items
        .get(title)
        .unwrap_or_else(|| panic!("no item titled {title:?}; have {:?}", items.keys()));
    item[key].as_str().unwrap_or("")
}

#[test]
fn faulty_rfc822_german_and_zone_less_dates_are_read_in_berlin_time() {
    let p = Partner::fixture("rss-dates-faulty-rfc822-german-and-zoneless.xml");
    let items = p.config("", "").build();
    for (title, want) in [
        ("named zone CEST", "2017-10-09T12:30:00Z"),
        ("named zone MESZ", "2017-10-09T12:31:00Z"),
        ("named zone MEZ in winter", "2017-12-11T13:32:00Z"),
        ("named zone EST", "2017-10-09T13:33:00Z"),
        ("named zone PDT", "2017-10-09T12:34:00Z"),
        ("missing seconds", "2017-10-09T12:35:00Z"),
        ("two-digit year", "2017-10-09T12:36:00Z"),
        ("wrong weekday", "2017-10-09T12:37:00Z"),
        ("missing weekday", "2017-10-09T12:38:00Z"),
        ("German RFC 822", "2017-10-09T12:39:00Z"),
        ("German numeric date", "2017-10-08T22:00:00Z"),
        ("German long date", "2017-10-09T12:40:00Z"),
        ("zone-less ISO date", "2017-10-09T12:41:00Z"),
        // 02:30 does not exist that night: read with the pre-gap offset (03:30 CEST).
        ("zone-less in the spring gap", "2017-03-26T01:30:00Z"),
        // 02:30 happens twice that night: the earlier (CEST) instant.
        (
            "zone-less in the autumn hour that happens twice",
            "2017-10-29T00:30:00Z",
        ),
        ("RFC 3339", "2017-10-09T12:42:00Z"),
    ] {
        assert_eq!(field(&items, title, "date_published"), want, "{title}");
    }
}

#[test]
fn a_source_timezone_override_applies_to_zone_less_dates_only() {
    let p = Partner::fixture("rss-dates-faulty-rfc822-german-and-zoneless.xml");
    let items = p.config("", "timezone = \"America/New_York\"").build();
    assert_eq!(
        field(&items, "zone-less ISO date", "date_published"),
        "2017-10-09T18:41:00Z"
    );
    assert_eq!(
        field(&items, "German numeric date", "date_published"),
        "2017-10-09T04:00:00Z"
    );
    assert_eq!(
        field(&items, "named zone CEST", "date_published"),
        "2017-10-09T12:30:00Z"
    );
}

#[test]
fn atom_xml_base_xhtml_and_html_content_titles_and_languages() {
    let p = Partner::fixture("atom-xml-base-xhtml-and-html-content.xml");
    let items = p.config("", "").build();

    let one = "An XHTML title & more";
    assert_eq!(
        field(&items, one, "url"),
        "https://partner.example/base/entries/one.html"
    );
    let html = field(&items, one, "content_html");
    assert!(
        html.contains(r#"href="https://partner.example/base/entries/related.html""#),
        "entry xml:base resolves content links: {html}"
    );
    assert!(
        html.contains(r#"src="https://partner.example/images/photo.jpg""#),
        "{html}"
    );
    assert!(html.contains(r#"rel="noopener noreferrer""#), "{html}");
    assert_eq!(field(&items, one, "date_published"), "2017-10-09T10:00:00Z");
    assert_eq!(field(&items, one, "date_modified"), "2017-10-10T09:00:00Z");
    assert_eq!(field(&items, one, "language"), "en-GB", "feed xml:lang");

    // Atom `type="html"`: tags dropped, `&amp;amp;` in the bytes reads "&".
    let two = "An HTML title & a double escape";
    let html = field(&items, two, "content_html");
    assert!(
        html.contains(r#"href="https://partner.example/base/relative/page""#),
        "feed-level xml:base wins over the item link: {html}"
    );
    // Only `updated`: it is the publication date, and not repeated as modified.
    assert_eq!(field(&items, two, "date_published"), "2017-10-08T10:00:00Z");
    assert_eq!(field(&items, two, "date_modified"), "");

    let three = "Un titre en texte brut";
    assert_eq!(field(&items, three, "language"), "fr", "entry xml:lang");
    assert_eq!(
        field(&items, three, "date_modified"),
        "",
        "updated == published"
    );
    assert_eq!(field(&items, three, "summary"), "Résumé court.");
}

#[test]
fn rss_relative_urls_resolve_against_the_item_link_then_the_feed_link() {
    let p = Partner::fixture("rss-relative-links-item-link-then-feed-link.xml");
    let items = p.config("", "").build();

    let one = "Relative content against the item link";
    assert_eq!(
        field(&items, one, "url"),
        "https://partner.example/news/2017/item.html?id=7",
        "tracking parameters are dropped from published links"
    );
    let html = field(&items, one, "content_html");
    for want in [
        r#"href="https://partner.example/news/2017/other.html""#,
        r#"href="https://partner.example/top""#,
        r#"src="https://partner.example/news/2017/pic.png""#,
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
    assert_eq!(field(&items, one, "language"), "de-DE", "<language> de-DE");

    let two = "No link: content against the feed link";
    assert_eq!(field(&items, two, "url"), "");
    let html = field(&items, two, "content_html");
    assert!(
        html.contains(r#"src="https://partner.example/home/pic.png""#),
        "{html}"
    );
    assert!(
        html.contains(r#"href="https://partner.example/about""#),
        "{html}"
    );

    let three = "Relative item link";
    assert_eq!(
        field(&items, three, "url"),
        "https://partner.example/news/3/",
        "relative item links resolve against the feed's link"
    );
    assert_eq!(
        field(&items, three, "content_html"),
        "Plain text &amp; no markup"
    );
}

#[test]
fn json_feed_titles_urls_tags_through_site_and_source_vocabularies() {
    let p = Partner::fixture("jsonfeed-relative-urls-and-tags.json");
    let items = p
        .config(
            "[tags]\nRadikalisierung = [\"Radicalisation\"]\n\"Kriminalprävention\" = [\"Prévention de la criminalité\", \"Prävention\"]\n",
            "[source.tags]\nLokales = [\"Local\"]\n\"Prävention\" = [\"Crime Prevention Local\"]\n",
        )
        .build();
    let t = "JSON & Feed item";
    assert_eq!(
        field(&items, t, "url"),
        "https://partner.example/json/posts/1"
    );
    let html = field(&items, t, "content_html");
    assert!(!html.contains("script"), "{html}");
    assert!(
        html.contains(r#"href="https://partner.example/json/autre""#),
        "{html}"
    );
    let tags: Vec<&str> = items[t]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(tags, ["Kriminalprävention", "Lokales", "Radikalisierung"]);
    assert_eq!(field(&items, t, "language"), "fr-FR");
    assert_eq!(field(&items, t, "date_published"), "2017-10-09T12:30:00Z");
    assert_eq!(field(&items, t, "date_modified"), "2017-10-10T06:00:00Z");

    let two = "Second JSON item";
    assert_eq!(
        field(&items, two, "summary"),
        "Texte brut seulement, sans balises."
    );
}

#[test]
fn a_per_source_category_can_map_onto_a_site_alias() {
    let p = Partner::fixture("rss-categories-per-source-mapping.xml");
    let items = p
        .config(
            "[tags]\n\"Kriminalprävention\" = [\"Crime prevention\"]\n",
            "[source.tags]\n\"Crime prevention\" = [\"Prevención\"]\n",
        )
        .build();
    let tags = &items["Categories"]["tags"];
    assert_eq!(
        tags,
        &serde_json::json!(["Kriminalprävention", "Unmapped & kept"])
    );
}

#[test]
fn bare_ampersands_control_characters_escapes_and_missing_summaries() {
    let p = Partner::fixture("rss-bare-ampersand-control-chars-double-escapes.xml");
    let items = p.config("", "").build();
    let titles: Vec<&String> = items.keys().collect();
    for want in [
        "AT&T und Fragen & Antworten",
        "Grüße & mehr – doppelt escaped",
        "Whitespace collapsed and controls gone",
        "Non-breaking spaces read as spaces",
    ] {
        assert!(items.contains_key(want), "{want:?} not in {titles:?}");
    }
    let long = &items["Whitespace collapsed and controls gone"];
    let summary = long["summary"].as_str().unwrap();
    assert!(summary.chars().count() <= 301, "{summary}");
    assert!(summary.ends_with('…'), "{summary}");
    let before_ellipsis = summary.trim_end_matches('…');
    assert!(
        long["content_html"]
            .as_str()
            .unwrap()
            .contains(&format!("{before_ellipsis} ")),
        "summary is cut at a word boundary: {summary}"
    );
    for f in ["rss.xml", "atom.xml", "feed.json", "index.html"] {
        let out = p.project.read(&format!("public/{f}"));
        assert!(
            !out.chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')),
            "control character in {f}"
        );
    }
}

#[test]
fn a_mislabelled_encoding_is_fixed_by_the_source_override() {
    let p = Partner::fixture("windows-1252-bytes-labelled-utf-8.xml");
    let items = p.config("", "encoding = \"windows-1252\"").build();
    assert!(
        items.contains_key("Förderung für Prävention – „Quartiere“"),
        "{:?}",
        items.keys()
    );
}

#[test]
fn iframes_survive_only_from_hosts_the_source_allows() {
    let body = br#"<?xml version="1.0"?><rss version="2.0"><channel><title>V</title><link>https://partner.example/</link><description>v</description>
<item><title>Video</title><link>https://partner.example/v/1</link><pubDate>Mon, 09 Oct 2017 10:00:00 +0000</pubDate>
<description><![CDATA[<p>Watch:</p><iframe src="https://www.youtube-nocookie.com/embed/abc" width="560" height="315" allowfullscreen onload="alert(1)" srcdoc="<script>alert(1)</script>"></iframe><iframe src="//www.youtube-nocookie.com/embed/def"></iframe><iframe src="https://evil.example/embed"></iframe><iframe src="http://www.youtube-nocookie.com/embed/plain-http"></iframe>]]></description></item>
</channel></rss>"#;
    let p = Partner::new(body.to_vec(), "application/rss+xml");
    let items = p
        .config("", "allow_iframe_hosts = [\"www.youtube-nocookie.com\"]")
        .build();
    let html = field(&items, "Video", "content_html");
    assert!(
        html.contains(r#"src="https://www.youtube-nocookie.com/embed/abc""#),
        "{html}"
    );
    assert!(
        html.contains(r#"src="https://www.youtube-nocookie.com/embed/def""#),
        "protocol-relative embeds read as https: {html}"
    );
    assert!(html.contains("sandbox="), "{html}");
    assert!(!html.contains("evil.example"), "{html}");
    assert!(!html.contains("plain-http"), "{html}");
    assert!(!html.contains("onload"), "{html}");
    assert!(!html.contains("srcdoc"), "{html}");

    let p2 = Partner::new(body.to_vec(), "application/rss+xml");
    let items = p2.config("", "").build();
    let html = field(&items, "Video", "content_html");
    assert!(!html.contains("iframe"), "no exception, no iframe: {html}");
}

#[test]
fn an_invalid_iframe_host_is_a_config_error_naming_the_key() {
    let p = Partner::new(Vec::new(), "application/xml");
    p.config(
        "",
        "allow_iframe_hosts = [\"https://www.youtube.com/embed\"]",
    );
    let run = p.project.run(&["check"]);
    assert_ne!(run.code(), Some(0));
    assert!(
        run.all().contains("source[0].allow_iframe_hosts"),
        "{}",
        run.all()
    );
}

/// An RSS feed of `items` (title, pubDate or none).
fn rss(items: &[(&str, Option<&str>)]) -> Vec<u8> {
    let mut s = String::from(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>P</title><link>https://partner.example/</link><description>d</description>\n",
    );
    for (i, (title, date)) in items.iter().enumerate() {
        s.push_str(&format!(
            "<item><title>{title}</title><link>https://partner.example/{}</link><description>Body of {title}, number {i}.</description>{}</item>\n",
            title.replace(' ', "-"),
            date.map(|d| format!("<pubDate>{d}</pubDate>")).unwrap_or_default()
        ));
    }
    s.push_str("</channel></rss>\n");
    s.into_bytes()
}

fn date(items: &BTreeMap<String, Value>, title: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(field(items, title, "date_published"))
        .unwrap()
        .to_utc()
}

#[test]
fn undated_back_catalogue_of_a_new_source_goes_below_its_dated_items() {
    let started = chrono::Utc::now() - chrono::Duration::seconds(2);
    let p = Partner::new(
        rss(&[
            ("undated newest", None),
            ("dated", Some("Mon, 09 Oct 2017 10:00:00 +0000")),
            ("undated middle", None),
            ("dated older", Some("Sun, 08 Oct 2017 10:00:00 +0000")),
            ("undated oldest", None),
            ("far future", Some("Fri, 01 Jan 2100 10:00:00 +0000")),
        ]),
        "application/rss+xml",
    );
    let items = p.config("", "").build();
    let oldest_dated = date(&items, "dated older");
    let a = date(&items, "undated newest");
    let b = date(&items, "undated middle");
    let c = date(&items, "undated oldest");
    assert!(a < oldest_dated && b < a && c < b, "{a} {b} {c}");
    // More than a day ahead: dated by first sight, not pinned on top until 2100.
    let future = date(&items, "far future");
    assert!(
        future >= started && future <= chrono::Utc::now(),
        "{future}"
    );

    // Later fetches: a new undated item is news now; the old ones keep their place.
    p.server.route(
        "/feed",
        Route::ok(
            "application/rss+xml",
            rss(&[
                ("undated new arrival", None),
                ("undated newest", None),
                ("dated", Some("Mon, 09 Oct 2017 10:00:00 +0000")),
                ("undated middle", None),
            ]),
        ),
    );
    let again = p.build();
    assert!(date(&again, "undated new arrival") >= started);
    assert_eq!(date(&again, "undated newest"), a);
    assert_eq!(date(&again, "undated middle"), b);
}

#[test]
fn a_new_source_without_any_dates_does_not_flood_the_combined_feed() {
    let p = Partner::new(
        rss(&[
            ("old news", Some("Mon, 09 Oct 2017 10:00:00 +0000")),
            ("older news", Some("Sun, 08 Oct 2017 10:00:00 +0000")),
        ]),
        "application/rss+xml",
    );
    p.config("", "").build();
    let undated = TestServer::start();
    undated.route(
        "/feed",
        Route::ok(
            "application/rss+xml",
            rss(&[("archive one", None), ("archive two", None)]),
        ),
    );
    p.config(
        &format!(
            "[[source]]\nid = \"newcomer\"\nkind = \"feed\"\nurl = \"{}\"\n",
            undated.url("/feed")
        ),
        "",
    );
    let items = p.build();
    let floor = date(&items, "older news");
    assert!(date(&items, "archive one") < floor);
    assert!(date(&items, "archive two") < date(&items, "archive one"));
}

#[test]
fn the_dpt_i_style_feed_with_undeclared_language_is_detected() {
    let body = r#"<?xml version="1.0"?><rss version="2.0"><channel><title>P</title><link>https://partner.example/</link><description>d</description>
<item><title>Kommunale Kriminalprävention</title><link>https://partner.example/1</link><pubDate>Mon, 09 Oct 2017 10:00:00 +0000</pubDate>
<description>Die Stadt und ihre Bürgerinnen und Bürger arbeiten gemeinsam an der Prävention von Kriminalität in den Quartieren und Nachbarschaften.</description></item>
<item><title>Urban security in Europe</title><link>https://partner.example/2</link><pubDate>Mon, 09 Oct 2017 09:00:00 +0000</pubDate>
<description>Cities across Europe are working together with their residents on the prevention of crime in their neighbourhoods and districts.</description></item>
</channel></rss>"#;
    let p = Partner::new(body.as_bytes().to_vec(), "application/rss+xml");
    let items = p.config("", "").build();
    assert_eq!(
        field(&items, "Kommunale Kriminalprävention", "language"),
        "de"
    );
    assert_eq!(field(&items, "Urban security in Europe", "language"), "en");
}

// ---- the sanitiser against known XSS vectors, through every output ----------------------

fn xss_vectors() -> Vec<String> {
    String::from_utf8(read_fixture("normalise/xss-vectors.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            l.replace("\\n", "\n")
                .replace("\\t", "\t")
                .replace("\\0", "\0")
                .replace("\\x01", "\u{1}")
                .replace("\\x0e", "\u{e}")
        })
        .collect()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Elements that must never appear in content we publish.
const FORBIDDEN_ELEMENTS: &[&str] = &[
    "script",
    "style",
    "iframe",
    "object",
    "embed",
    "applet",
    "form",
    "input",
    "button",
    "textarea",
    "select",
    "base",
    "meta",
    "link",
    "svg",
    "math",
    "frame",
    "frameset",
    "template",
    "isindex",
    "bgsound",
    "layer",
    "marquee",
    "video",
    "audio",
    "source",
    "noscript",
    "xmp",
    "plaintext",
    "details",
    "animate",
    "set",
    "foreignobject",
];

/// Is `value`, as a browser would read it, a URL with a scheme other than http(s)/mailto?
fn unsafe_url(value: &str) -> bool {
    let squeezed: String = value
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect::<String>()
        .to_ascii_lowercase();
    match squeezed.split_once(':') {
        Some((scheme, _)) if !scheme.contains(['/', '?', '#']) => {
            !matches!(scheme, "http" | "https" | "mailto")
        }
        _ => false,
    }
}

/// Problems in one HTML string (`document`: a whole page of ours, whose own `<head>`
/// elements are allowed but checked).
fn html_problems(html: &str, document: bool, what: &str) -> Vec<String> {
    let parsed = if document {
        scraper::Html::parse_document(html)
    } else {
        scraper::Html::parse_fragment(html)
    };
    let mut out = Vec::new();
    for node in parsed.tree.nodes() {
        let Some(el) = node.value().as_element() else {
            continue;
        };
        let name = el.name().to_ascii_lowercase();
        let own_head = document
            && match name.as_str() {
                "meta" => el.attr("http-equiv").is_none(),
                "link" => el.attr("rel") == Some("alternate"),
                "style" => node
                    .ancestors()
                    .any(|a| a.value().as_element().is_some_and(|e| e.name() == "head")),
                _ => false,
            };
        if FORBIDDEN_ELEMENTS.contains(&name.as_str()) && !own_head {
            out.push(format!("{what}: <{name}> in {html:.300}"));
        }
        for (attr, value) in el.attrs() {
            let attr = attr.to_ascii_lowercase();
            let bad = attr.starts_with("on")
                || matches!(
                    attr.as_str(),
                    "style"
                        | "srcdoc"
                        | "formaction"
                        | "background"
                        | "dynsrc"
                        | "lowsrc"
                        | "srcset"
                        | "xlink:href"
                        | "action"
                        | "data"
                        | "poster"
                        | "to"
                )
                || (matches!(attr.as_str(), "href" | "src" | "cite") && unsafe_url(value))
                || (attr == "class" && !document)
                || (attr == "id" && !document);
            if bad {
                out.push(format!("{what}: <{name} {attr}={value:?}>"));
            }
        }
        if name == "a" && el.attr("href").is_some_and(|h| h.starts_with("http")) {
            let rel = el.attr("rel").unwrap_or("");
            let has_rel = rel.contains("noopener") && rel.contains("noreferrer");
            if !document && !has_rel {
                out.push(format!("{what}: link without rel=noopener noreferrer"));
            }
        }
        if name == "style" {
            let css = node
                .children()
                .filter_map(|c| c.value().as_text().map(|t| t.to_string()))
                .collect::<String>()
                .to_ascii_lowercase();
            if css.contains("expression") || css.contains("javascript") || css.contains("@import") {
                out.push(format!("{what}: dangerous CSS"));
            }
        }
    }
    out
}

/// Problems in a plain-text field that readers may render as HTML (titles, tags).
fn text_problems(text: &str, what: &str) -> Vec<String> {
    let b = text.as_bytes();
    let tag_like = b.windows(2).any(|w| {
        w[0] == b'<' && (w[1].is_ascii_alphabetic() || matches!(w[1], b'/' | b'!' | b'?'))
    });
    if tag_like || unsafe_url(text) && text.trim_start().to_ascii_lowercase().starts_with("java") {
        vec![format!("{what}: markup in plain text {text:?}")]
    } else {
        Vec::new()
    }
}

fn feed_problems(bytes: &[u8], what: &str) -> Vec<String> {
    let feed = feed_rs::parser::parse(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut out = Vec::new();
    for e in &feed.entries {
        if let Some(t) = &e.title {
            out.extend(text_problems(&t.content, &format!("{what} title")));
        }
        if let Some(s) = &e.summary {
            out.extend(html_problems(&s.content, false, &format!("{what} summary")));
        }
        if let Some(c) = e.content.as_ref().and_then(|c| c.body.as_ref()) {
            out.extend(html_problems(c, false, &format!("{what} content")));
        }
        for l in &e.links {
            if unsafe_url(&l.href) {
                out.push(format!("{what}: link {}", l.href));
            }
        }
        for c in &e.categories {
            out.extend(text_problems(&c.term, &format!("{what} category")));
        }
    }
    out
}

fn json_problems(text: &str, what: &str) -> Vec<String> {
    let feed: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut out = Vec::new();
    for item in feed["items"].as_array().unwrap() {
        for key in ["content_html", "summary", "content_text"] {
            if let Some(h) = item[key].as_str() {
                out.extend(html_problems(h, false, &format!("{what} {key}")));
            }
        }
        out.extend(text_problems(
            item["title"].as_str().unwrap_or(""),
            &format!("{what} title"),
        ));
        if let Some(u) = item["url"].as_str() {
            if unsafe_url(u) {
                out.push(format!("{what}: url {u}"));
            }
        }
        for t in item["tags"].as_array().into_iter().flatten() {
            out.extend(text_problems(
                t.as_str().unwrap_or(""),
                &format!("{what} tag"),
            ));
        }
    }
    out
}

#[test]
fn no_known_xss_vector_survives_into_any_output() {
    let vectors = xss_vectors();
    assert!(vectors.len() >= 100, "{}", vectors.len());

    let mut rss = String::from(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>XSS RSS</title><link>https://rss.example/</link><description>d</description>\n",
    );
    let mut atom = String::from(
        "<?xml version=\"1.0\"?><feed xmlns=\"http://www.w3.org/2005/Atom\"><title>XSS Atom</title><id>urn:xss</id><updated>2017-10-09T10:00:00Z</updated><link href=\"https://atom.example/\"/>\n",
    );
    for (i, v) in vectors.iter().enumerate() {
        let e = xml_escape(v);
        rss.push_str(&format!(
            "<item><title>{e}</title><link>https://rss.example/{i}</link><guid>rss-{i}</guid><category>{e}</category><pubDate>Mon, 09 Oct 2017 10:{:02}:{:02} +0000</pubDate><description>{e}</description></item>\n",
            i / 60,
            i % 60
        ));
        atom.push_str(&format!(
            "<entry><title type=\"html\">{e}</title><id>urn:xss:{i}</id><link href=\"https://atom.example/{i}\"/><updated>2017-10-09T11:{:02}:{:02}Z</updated><summary type=\"html\">{e}</summary><content type=\"html\">{e}</content></entry>\n",
            i / 60,
            i % 60
        ));
    }
    // Unsafe item links, in both formats.
    rss.push_str("<item><title>bad link</title><link>javascript:alert(1)</link><description>x</description></item>\n");
    atom.push_str("<entry><title>bad link</title><id>urn:xss:link</id><link href=\"javascript:alert(1)\"/><updated>2017-10-09T12:00:00Z</updated></entry>\n");
    rss.push_str("</channel></rss>\n");
    atom.push_str("</feed>\n");

    let server = TestServer::start();
    server.route("/rss", Route::ok("application/rss+xml", rss.into_bytes()));
    server.route(
        "/atom",
        Route::ok("application/atom+xml", atom.into_bytes()),
    );
    let project = Project::new();
    project.write(
        "config.toml",
        &format!(
            r#"[site]
title = "XSS"
base_url = "https://www.defus.de/aktuelles/"

[publish]
max_items = 1000

[[source]]
id = "rss"
kind = "feed"
url = "{}"
allow_iframe_hosts = ["www.youtube-nocookie.com"]

[[source]]
id = "atom"
kind = "feed"
url = "{}"
"#,
            server.url("/rss"),
            server.url("/atom")
        ),
    );
    project.run(&["build"]).success();

    let mut problems = Vec::new();
    let mut checked = 0;
    let mut stack = vec![project.path().join("public")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.to_string_lossy().into_owned();
            let what = name.rsplit("public/").next().unwrap().to_owned();
            let bytes = std::fs::read(&path).unwrap();
            if name.ends_with(".gz") || name.ends_with(".br") {
                continue;
            } else if name.ends_with(".xml") || name.ends_with(".rss") || name.ends_with(".atom") {
                problems.extend(feed_problems(&bytes, &what));
            } else if name.ends_with(".json") {
                problems.extend(json_problems(&String::from_utf8(bytes).unwrap(), &what));
            } else if name.ends_with(".html") {
                problems.extend(html_problems(
                    &String::from_utf8(bytes).unwrap(),
                    true,
                    &what,
                ));
            } else if name.ends_with(".js") {
                // Our own script: item data must reach it only as JSON, never as code.
                let text = String::from_utf8(bytes).unwrap();
                assert!(!text.contains("alert("), "{what} carries item text as code");
            } else {
                continue;
            }
            checked += 1;
        }
    }
    assert!(checked >= 4, "checked only {checked} outputs");
    let combined: Value = serde_json::from_str(&project.read("public/feed.json")).unwrap();
    let published = combined["items"].as_array().unwrap().len();
    assert!(
        published >= 2 * vectors.len(),
        "every vector made an item in both formats: {published} of {}",
        2 * vectors.len()
    );
    assert!(
        problems.is_empty(),
        "{} problems in {checked} outputs:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
