//! Deduplication through the real CLI: the seed's twice-listed post, partner copies
//! (exact URL, http/https, tracking parameters, same text under another title, teasers),
//! what must stay separate (language versions, a numbered series), provenance in every
//! output format, stable IDs, identity churn, retractions, and precision/recall on a
//! labelled corpus.

use crate::support::{Project, Route, TestServer};

/// One RSS item for a partner feed built in a test.
struct It<'a> {
    guid: Option<&'a str>,
    link: &'a str,
    title: &'a str,
    /// RFC 822.
    date: &'a str,
    body: &'a str,
}

fn rss(title: &str, items: &[It]) -> String {
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel><title>{title}</title><link>https://partner.example/</link><description>d</description>\n"
    );
    for i in items {
        s.push_str("<item>");
        if let Some(g) = i.guid {
            s.push_str(&format!("<guid isPermaLink=\"false\">{g}</guid>"));
        }
        s.push_str(&format!(
            "<title>{}</title><link>{}</link><pubDate>{}</pubDate><description><![CDATA[{}]]></description></item>\n",
            i.title,
            i.link.replace('&', "&amp;"),
            i.date,
            i.body
        ));
    }
    s.push_str("</channel></rss>\n");
    s
}

fn serve(server: &TestServer, path: &str, body: String) {
    server.route(path, Route::ok("application/rss+xml; charset=utf-8", body));
}

fn feed_source(id: &str, title: &str, url: &str, priority: i32) -> String {
    format!(
        "[[source]]\nid = \"{id}\"\nkind = \"feed\"\ntitle = \"{title}\"\nurl = \"{url}\"\npriority = {priority}\n\n"
    )
}

const LOCAL_DEFUS: &str =
    "[[source]]\nid = \"defus\"\nkind = \"local\"\ntitle = \"DEFUS\"\npath = \"feeds/defus\"\npriority = 100\nlanguage = \"de\"\n\n";

/// The seed post both DEFUS files carry, as a partner would republish it.
const DPT_TEXT: &str = "<p>Im Rahmen des Deutschen Präventionstags trafen sich die Mitglieder von DEFUS zur 14. Mitgliederversammlung. Als Gastgeberin des Deutschen Präventionstags in Hannover begrüßte die niedersächsiche Justizministerin Antje Niewisch-Lennartz die anwesenden Mitglieder und informierte sich über die Aktivitäten von DEFUS und EFUS aus.</p><p>Neben dem Austausch der Mitglieder lag bei diesem Treffen der Fokus auf den Vorbereitungen der großen Konferenz zu urbanen Sicherheitsstrategien in Barcelona im November. Die Generalsekretärin von EFUS, Elizabeth Johnston, berichtete von aktuellen Entwicklungen und Veränderungen bei EFUS.</p><p>EFUS und DEFUS informierten an einem Stand zu den Aktivitäten des europäischen Netzwerks und des deutschen Forums.</p>";

const STORY_A: &str = "<p>Die Stadt Augsburg hat ein neues Konzept für die Sicherheit im öffentlichen Raum vorgestellt. Im Mittelpunkt stehen beleuchtete Wege, ein kommunaler Ordnungsdienst in den Abendstunden und regelmäßige Sprechstunden in den Stadtteilen.</p><p>Die Verwaltung will das Konzept gemeinsam mit den Bürgerinnen und Bürgern weiterentwickeln und lädt im Frühjahr zu drei Werkstattgesprächen ein, bei denen Vorschläge aus der Nachbarschaft gesammelt werden.</p>";

const STORY_B: &str = "<p>Der Landespräventionsrat veröffentlicht eine Handreichung zur Gewaltprävention an Schulen. Sie beschreibt Programme für Grundschulen und weiterführende Schulen, nennt Ansprechpartner in den Landkreisen und erklärt, wie Schulen Fördermittel für Projekte beantragen können.</p><p>Die Handreichung steht kostenlos zum Herunterladen bereit und wird auf Wunsch auch gedruckt an Schulen verschickt.</p>";

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[test]
fn seed_post_listed_twice_appears_once_in_every_format() {
    let p = Project::with_seed_posts();
    p.config(LOCAL_DEFUS);
    p.run(&["build"]).success();
    let atom = p.read("public/atom.xml");
    let rss = p.read("public/rss.xml");
    let json = p.read("public/feed.json");
    let html = p.read("public/index.html");
    // The representative is the 2017-08-16 file: same source, same first sight, and a
    // re-post is the corrected version (the 2016 date predates the 2017 event it reports).
    let kept = "DEFUS auf dem Deutschen Präventionstag 2017";
    let dropped = "DEFUS auf dem DPT 2017";
    for (name, doc) in [
        ("atom", &atom),
        ("rss", &rss),
        ("json", &json),
        ("html", &html),
    ] {
        assert_eq!(count(doc, kept), 1, "{name}: the story once\n{doc}");
        assert_eq!(count(doc, dropped), 0, "{name}: the copy never");
    }
    assert_eq!(count(&atom, "<entry>"), 5);
    assert_eq!(count(&rss, "<item>"), 5);
    assert_eq!(count(&html, "<article"), 5);
    let feed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(feed["items"].as_array().unwrap().len(), 5);
    assert!(atom.contains("defus/2017-08-16-defus-auf-dem-deutschen-praeventionstag-2017"));
}

#[test]
fn check_reports_the_seed_duplicate_by_file_name() {
    let p = Project::with_seed_posts();
    p.config(LOCAL_DEFUS);
    let out = p.run(&["check"]);
    let text = out.stdout();
    assert!(
        text.contains("duplicate: 2016-08-20-defus-auf-dem-dpt-2017.md repeats 2017-08-16-defus-auf-dem-deutschen-praeventionstag-2017.md (same text)"),
        "{}",
        out.all()
    );
    assert_eq!(count(&text, "duplicate:"), 1, "{text}");
}

#[test]
fn dupes_lists_clusters_with_reasons_and_jsonl_keys() {
    let p = Project::with_seed_posts();
    p.config(LOCAL_DEFUS);
    p.run(&["build"]).success();
    let text = p.run(&["dupes"]).success().stdout();
    assert!(text.contains("1 clusters, 1 copies"), "{text}");
    assert!(
        text.contains("+ defus \"DEFUS auf dem DPT 2017\" (same text)"),
        "{text}"
    );
    let jsonl = p.run(&["dupes", "--jsonl"]).success().stdout();
    let lines: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6, "one line per item held");
    let base = "defus|https://www.defus.de/aktuelles/posts/defus/";
    let dup = lines
        .iter()
        .find(|l| l["key"] == format!("{base}2016-08-20-defus-auf-dem-dpt-2017.html"))
        .unwrap();
    assert_eq!(
        dup["dup_of"],
        format!("{base}2017-08-16-defus-auf-dem-deutschen-praeventionstag-2017.html")
    );
    assert_eq!(lines.iter().filter(|l| l["dup_of"].is_null()).count(), 5);
}

#[test]
fn partner_copy_under_another_title_is_provenance_in_every_format() {
    let server = TestServer::start();
    serve(
        &server,
        "/efus.xml",
        rss(
            "Efus",
            &[It {
                guid: Some("efus-1"),
                link: "https://efus.example/news/dpt-2017",
                title: "Efus beim Präventionstag in Hannover",
                date: "Thu, 17 Aug 2017 10:00:00 +0200",
                body: DPT_TEXT,
            }],
        ),
    );
    let p = Project::with_seed_posts();
    p.config(&format!(
        "{LOCAL_DEFUS}{}",
        feed_source(
            "efus",
            "Efus – European Forum",
            &server.url("/efus.xml"),
            50
        )
    ));
    p.run(&["build"]).success();
    let atom = p.read("public/atom.xml");
    assert_eq!(count(&atom, "<entry>"), 5, "{atom}");
    assert!(
        !atom.contains("<title>Efus beim"),
        "the copy is not an entry"
    );
    assert!(
        atom.contains(r#"rel="related""#)
            && atom.contains("https://efus.example/news/dpt-2017")
            && atom.contains("Efus – European Forum: Efus beim Präventionstag in Hannover"),
        "{atom}"
    );
    let json: serde_json::Value = serde_json::from_str(&p.read("public/feed.json")).unwrap();
    let item = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["title"] == "DEFUS auf dem Deutschen Präventionstag 2017")
        .unwrap();
    let also = &item["_feedwerk"]["also_at"];
    assert!(
        also.as_array()
            .unwrap()
            .iter()
            .any(|a| a["source"] == "efus"
                && a["url"] == "https://efus.example/news/dpt-2017"
                && a["title"] == "Efus beim Präventionstag in Hannover"),
        "{item}"
    );
    let rss = p.read("public/rss.xml");
    assert!(rss.contains("Auch erschienen bei:"), "{rss}");
    assert!(rss.contains("https://efus.example/news/dpt-2017"));
    let html = p.read("public/index.html");
    assert!(
        html.contains("Auch erschienen bei: <a href=\"https://efus.example/news/dpt-2017\">Efus – European Forum</a>"),
        "{html}"
    );
    let dupes = p.run(&["dupes"]).success().stdout();
    assert!(
        dupes.contains("+ efus \"Efus beim Präventionstag in Hannover\" (same text)")
            || dupes.contains("+ efus \"Efus beim Präventionstag in Hannover\" (text similarity"),
        "{dupes}"
    );
}

#[test]
fn scheme_tracking_parameters_and_guid_differences_are_one_story() {
    let server = TestServer::start();
    serve(
        &server,
        "/a.xml",
        rss(
            "A",
            &[It {
                guid: Some("a-1"),
                link: "https://www.news.example/2024/augsburg-sicherheit",
                title: "Augsburg stellt Sicherheitskonzept vor",
                date: "Mon, 03 Jun 2024 09:00:00 +0200",
                body: STORY_A,
            }],
        ),
    );
    serve(
        &server,
        "/b.xml",
        rss(
            "B",
            &[
                It {
                    guid: Some("b-7"),
                    link: "http://news.example/2024/augsburg-sicherheit/?utm_source=rss&fbclid=xyz",
                    title: "Neues Sicherheitskonzept in Augsburg",
                    date: "Mon, 03 Jun 2024 11:00:00 +0200",
                    body: "<p>Kurzmeldung.</p>",
                },
                It {
                    guid: Some("b-8"),
                    link: "https://b.example/handreichung",
                    title: "Handreichung Gewaltprävention",
                    date: "Tue, 04 Jun 2024 11:00:00 +0200",
                    body: STORY_B,
                },
            ],
        ),
    );
    let p = Project::new();
    p.config(&format!(
        "{}{}",
        feed_source("a", "A", &server.url("/a.xml"), 50),
        feed_source("b", "B", &server.url("/b.xml"), 50)
    ));
    p.run(&["build"]).success();
    let jsonl = p.run(&["dupes", "--jsonl"]).success().stdout();
    assert!(
        jsonl.contains(r#"{"dup_of":"a|a-1","key":"b|b-7"}"#),
        "{jsonl}"
    );
    assert!(
        jsonl.contains(r#"{"dup_of":null,"key":"b|b-8"}"#),
        "{jsonl}"
    );
    let dupes = p.run(&["dupes"]).success().stdout();
    assert!(dupes.contains("(exact URL)"), "{dupes}");
    assert_eq!(count(&p.read("public/atom.xml"), "<entry>"), 2);
}

#[test]
fn same_guid_twice_in_one_feed_is_one_item() {
    let server = TestServer::start();
    let item = |title| It {
        guid: Some("same-guid"),
        link: "https://a.example/x",
        title,
        date: "Mon, 03 Jun 2024 09:00:00 +0200",
        body: STORY_A,
    };
    serve(
        &server,
        "/a.xml",
        rss("A", &[item("Erste Fassung"), item("Zweite Fassung")]),
    );
    let p = Project::new();
    p.config(&feed_source("a", "A", &server.url("/a.xml"), 50));
    let out = p.run(&["build"]).success().stdout();
    assert!(out.contains("repeat the GUID"), "{out}");
    let atom = p.read("public/atom.xml");
    assert_eq!(count(&atom, "<entry>"), 1);
    assert!(atom.contains("Erste Fassung"), "the first listing wins");
}
