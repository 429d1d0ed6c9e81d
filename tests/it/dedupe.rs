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

/// Atom entry IDs with their titles, in document order.
fn atom_entries(atom: &str) -> Vec<(String, String)> {
    atom.split("<entry>")
        .skip(1)
        .map(|e| {
            let grab = |tag: &str| {
                let open = format!("<{tag}>");
                let start = e.find(&open).map(|i| i + open.len()).unwrap_or(0);
                let end = e[start..].find(&format!("</{tag}>")).unwrap_or(0);
                e[start..start + end].to_owned()
            };
            (grab("id"), grab("title"))
        })
        .collect()
}

fn two_partners(server: &TestServer) -> String {
    format!(
        "{}{}",
        feed_source("a", "Partner A", &server.url("/a.xml"), 50),
        feed_source("b", "Partner B", &server.url("/b.xml"), 50)
    )
}

#[test]
fn same_text_under_another_title_date_and_url_is_a_near_duplicate() {
    let server = TestServer::start();
    serve(
        &server,
        "/a.xml",
        rss(
            "A",
            &[It {
                guid: Some("a-1"),
                link: "https://a.example/augsburg",
                title: "Augsburg stellt Sicherheitskonzept vor",
                date: "Mon, 03 Jun 2024 09:00:00 +0200",
                body: STORY_A,
            }],
        ),
    );
    let attributed = format!("<p>Augsburg (dpa) –</p>{STORY_A}<p>Mehr in unserem Newsletter.</p>");
    serve(
        &server,
        "/b.xml",
        rss(
            "B",
            &[It {
                guid: Some("b-1"),
                link: "https://b.example/meldungen/4711",
                title: "Mehr Licht und Ordnungsdienst: Augsburgs neuer Plan",
                date: "Wed, 05 Jun 2024 18:30:00 +0200",
                body: &attributed,
            }],
        ),
    );
    let p = Project::new();
    p.config(&two_partners(&server));
    p.run(&["build"]).success();
    assert_eq!(atom_entries(&p.read("public/atom.xml")).len(), 1);
    let dupes = p.run(&["dupes"]).success().stdout();
    assert!(dupes.contains("(text similarity 0."), "{dupes}");
}

#[test]
fn teaser_with_the_same_title_joins_the_full_post() {
    let server = TestServer::start();
    serve(
        &server,
        "/a.xml",
        rss(
            "A",
            &[It {
                guid: Some("a-1"),
                link: "https://a.example/augsburg",
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
            &[It {
                guid: Some("b-1"),
                link: "https://b.example/teaser/augsburg",
                title: "Augsburg stellt Sicherheitskonzept vor",
                date: "Mon, 03 Jun 2024 12:00:00 +0200",
                body: "<p>Die Stadt Augsburg hat ein neues Konzept für die Sicherheit im öffentlichen Raum vorgestellt. Im Mittelpunkt stehen beleuchtete Wege …</p>",
            }],
        ),
    );
    let p = Project::new();
    p.config(&two_partners(&server));
    p.run(&["build"]).success();
    let dupes = p.run(&["dupes"]).success().stdout();
    assert!(dupes.contains("teaser contained"), "{dupes}");
    let entries = atom_entries(&p.read("public/atom.xml"));
    assert_eq!(entries.len(), 1, "{entries:?}");
}

#[test]
fn teaser_under_another_title_stays_separate() {
    // Containment alone is not enough: a short text inside a long one under another
    // title may be a quotation.
    let server = TestServer::start();
    serve(
        &server,
        "/a.xml",
        rss(
            "A",
            &[It {
                guid: Some("a-1"),
                link: "https://a.example/augsburg",
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
            &[It {
                guid: Some("b-1"),
                link: "https://b.example/presseschau",
                title: "Presseschau vom 3. Juni",
                date: "Mon, 03 Jun 2024 12:00:00 +0200",
                body: "<p>Die Stadt Augsburg hat ein neues Konzept für die Sicherheit im öffentlichen Raum vorgestellt.</p>",
            }],
        ),
    );
    let p = Project::new();
    p.config(&two_partners(&server));
    p.run(&["build"]).success();
    assert_eq!(atom_entries(&p.read("public/atom.xml")).len(), 2);
}

#[test]
fn identical_title_and_nearly_same_text_on_nearby_dates_is_one_story() {
    let server = TestServer::start();
    let edited = STORY_A
        .replace(
            "im Frühjahr zu drei Werkstattgesprächen ein",
            "im März zu zwei Werkstattgesprächen im Rathaus ein",
        )
        .replace(
            "regelmäßige Sprechstunden in den Stadtteilen",
            "wöchentliche Sprechstunden in allen Stadtbezirken",
        )
        .replace(
            "beleuchtete Wege, ein kommunaler",
            "bessere Beleuchtung, ein städtischer",
        );
    for (path, guid, link, date, body) in [
        (
            "/a.xml",
            "a-1",
            "https://a.example/x",
            "Mon, 03 Jun 2024 09:00:00 +0200",
            STORY_A,
        ),
        (
            "/b.xml",
            "b-1",
            "https://b.example/y",
            "Thu, 06 Jun 2024 09:00:00 +0200",
            edited.as_str(),
        ),
    ] {
        serve(
            &server,
            path,
            rss(
                "X",
                &[It {
                    guid: Some(guid),
                    link,
                    title: "Augsburg stellt Sicherheitskonzept vor",
                    date,
                    body,
                }],
            ),
        );
    }
    let p = Project::new();
    p.config(&two_partners(&server));
    p.run(&["build"]).success();
    let dupes = p.run(&["dupes"]).success().stdout();
    assert!(
        dupes.contains("same title, text similarity") || dupes.contains("(text similarity"),
        "{dupes}"
    );
    assert_eq!(atom_entries(&p.read("public/atom.xml")).len(), 1);
}

#[test]
fn numbered_issues_of_a_newsletter_series_stay_separate() {
    let template = |month: &str, topics: &str| {
        format!(
            "<p>Der DEFUS-Newsletter für den Monat {month} ist erschienen. Er informiert die Mitglieder des Forums über Veranstaltungen, neue Veröffentlichungen und Projekte aus dem europäischen Netzwerk für urbane Sicherheit. Sie können den Newsletter als PDF herunterladen oder sich für den Versand per E-Mail anmelden.</p><p>{topics}</p>"
        )
    };
    let oct = template("Oktober", "Themen: Mitgliederversammlung in Stuttgart.");
    let nov = template("November", "Themen: Konferenz in Barcelona.");
    let server = TestServer::start();
    serve(
        &server,
        "/a.xml",
        rss(
            "A",
            &[
                It {
                    guid: Some("nl-10"),
                    link: "https://a.example/newsletter-10-2017",
                    title: "Newsletter 10/2017",
                    date: "Mon, 02 Oct 2017 09:00:00 +0200",
                    body: &oct,
                },
                It {
                    guid: Some("nl-11"),
                    link: "https://a.example/newsletter-11-2017",
                    title: "Newsletter 11/2017",
                    date: "Thu, 02 Nov 2017 09:00:00 +0100",
                    body: &nov,
                },
            ],
        ),
    );
    let p = Project::new();
    p.config(&feed_source("a", "A", &server.url("/a.xml"), 50));
    p.run(&["build"]).success();
    let titles: Vec<String> = atom_entries(&p.read("public/atom.xml"))
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(titles, ["Newsletter 11/2017", "Newsletter 10/2017"]);
}

#[test]
fn language_versions_of_a_story_stay_separate() {
    let de = "<p>DEFUS und das Institut für angewandte Präventionsforschung organisieren gemeinsam eine Webinarreihe über extremistische Radikalisierung. Die Webinare beleuchten die unterschiedlichen Facetten des Themenkomplexes und richten sich an Fachkräfte der Kommunen.</p>";
    let en = "<p>DEFUS and the Institute for Applied Prevention Research jointly organise a webinar series on extremist radicalisation. The webinars shed light on the different facets of the topic and are aimed at professionals working for local authorities.</p>";
    let server = TestServer::start();
    serve(
        &server,
        "/a.xml",
        rss(
            "A",
            &[
                It {
                    guid: Some("liaise-de"),
                    link: "https://a.example/de/liaise-2",
                    title: "LIAISE 2",
                    date: "Thu, 06 Apr 2017 09:00:00 +0200",
                    body: de,
                },
                It {
                    guid: Some("liaise-en"),
                    link: "https://a.example/en/liaise-2",
                    title: "LIAISE 2",
                    date: "Thu, 06 Apr 2017 09:00:00 +0200",
                    body: en,
                },
            ],
        ),
    );
    let p = Project::new();
    p.config(&feed_source("a", "A", &server.url("/a.xml"), 50));
    p.run(&["build"]).success();
    assert_eq!(atom_entries(&p.read("public/atom.xml")).len(), 2);
    assert!(p.run(&["dupes"]).success().stdout().contains("0 clusters"));
}

/// A distinct, substantial German text for story `n` (shares no 5-word run with others).
fn story(n: usize) -> String {
    const WORDS: [&str; 24] = [
        "Stadt",
        "Prävention",
        "Quartier",
        "Polizei",
        "Schule",
        "Verein",
        "Rathaus",
        "Bürger",
        "Jugend",
        "Sicherheit",
        "Netzwerk",
        "Projekt",
        "Beratung",
        "Tagung",
        "Förderung",
        "Kommune",
        "Nachbarschaft",
        "Studie",
        "Konzept",
        "Fachkräfte",
        "Integration",
        "Gewalt",
        "Ordnungsamt",
        "Konferenz",
    ];
    let mut state = n as u64 * 2_654_435_761 + 7;
    let mut words = vec![format!("Meldung{n}")];
    for _ in 0..60 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        words.push(WORDS[(state >> 33) as usize % WORDS.len()].to_owned());
    }
    format!("<p>{}.</p>", words.join(" "))
}

fn rfc822(day: u32) -> String {
    let d =
        chrono::NaiveDate::from_ymd_opt(2024, 5, 1).unwrap() + chrono::Duration::days(day as i64);
    format!("{} 09:00:00 +0200", d.format("%a, %d %b %Y"))
}

#[test]
fn an_item_deleted_inside_the_feed_window_is_withdrawn_but_one_scrolled_out_stays() {
    let server = TestServer::start();
    let bodies: Vec<String> = (0..5).map(story).collect();
    let guids: Vec<String> = (0..5).map(|i| format!("r-{i}")).collect();
    let links: Vec<String> = (0..5).map(|i| format!("https://a.example/{i}")).collect();
    let titles: Vec<String> = (0..5)
        .map(|i| {
            format!(
                "Meldung Nummer {}",
                ["eins", "zwei", "drei", "vier", "fünf"][i]
            )
        })
        .collect();
    let dates: Vec<String> = (0..5).map(|i| rfc822(10 - i as u32)).collect();
    let feed = |which: &[usize]| {
        let items: Vec<It> = which
            .iter()
            .map(|&i| It {
                guid: Some(&guids[i]),
                link: &links[i],
                title: &titles[i],
                date: &dates[i],
                body: &bodies[i],
            })
            .collect();
        rss("A", &items)
    };
    serve(&server, "/a.xml", feed(&[0, 1, 2, 3, 4]));
    let p = Project::new();
    p.config(&feed_source("a", "A", &server.url("/a.xml"), 50));
    p.run(&["build"]).success();
    assert_eq!(atom_entries(&p.read("public/atom.xml")).len(), 5);
    // Item 2 is deleted (newer than the oldest still listed); item 4, the oldest,
    // scrolls out of the window.
    serve(&server, "/a.xml", feed(&[0, 1, 3]));
    let out = p.run(&["build"]).success().stdout();
    assert!(out.contains("retracted: Meldung Nummer drei"), "{out}");
    let titles_now: Vec<String> = atom_entries(&p.read("public/atom.xml"))
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert!(
        !titles_now.contains(&"Meldung Nummer drei".to_owned()),
        "{titles_now:?}"
    );
    assert!(
        titles_now.contains(&"Meldung Nummer fünf".to_owned()),
        "scrolled out, kept: {titles_now:?}"
    );
    assert_eq!(titles_now.len(), 4);
    let dupes = p.run(&["dupes"]).success().stdout();
    assert!(dupes.contains("retracted"), "{dupes}");
    // The source restores it: it is published again under its old ID.
    serve(&server, "/a.xml", feed(&[0, 1, 2, 3]));
    p.run(&["build"]).success();
    assert_eq!(atom_entries(&p.read("public/atom.xml")).len(), 5);
}

#[test]
fn a_local_post_deleted_from_feeds_is_withdrawn() {
    let p = Project::with_seed_posts();
    p.config(LOCAL_DEFUS);
    p.run(&["build"]).success();
    std::fs::remove_file(
        p.path()
            .join("feeds/defus/2017-04-06-webinarreihe-extremischtische-radikalisierung.md"),
    )
    .unwrap();
    p.run(&["build"]).success();
    let atom = p.read("public/atom.xml");
    assert!(!atom.contains("Webinarreihe"), "{atom}");
    assert_eq!(atom_entries(&atom).len(), 4);
}

#[test]
fn identity_churn_keeps_published_ids_and_is_reported() {
    let server = TestServer::start();
    let bodies: Vec<String> = (10..16).map(story).collect();
    let links: Vec<String> = (0..6)
        .map(|i| format!("https://lpr.example/aktuelles/{i}"))
        .collect();
    let titles: Vec<String> = (0..6)
        .map(|i| format!("Aktuelles Nummer {}", ["A", "B", "C", "D", "E", "F"][i]))
        .collect();
    let dates: Vec<String> = (0..6).map(|i| rfc822(20 - i as u32)).collect();
    let feed = |prefix: &str| {
        let guids: Vec<String> = (0..6).map(|i| format!("{prefix}-{i}")).collect();
        let items: Vec<It> = (0..6)
            .map(|i| It {
                guid: Some(&guids[i]),
                link: &links[i],
                title: &titles[i],
                date: &dates[i],
                body: &bodies[i],
            })
            .collect();
        rss("LPR", &items)
    };
    serve(&server, "/lpr.xml", feed("urn:old-cms"));
    let p = Project::new();
    p.config(&feed_source("lpr", "LPR", &server.url("/lpr.xml"), 50));
    p.run(&["build"]).success();
    let before = atom_entries(&p.read("public/atom.xml"));
    assert_eq!(before.len(), 6);
    // The partner migrates its CMS: every GUID changes, URLs and texts stay.
    serve(&server, "/lpr.xml", feed("https://lpr.example/node"));
    let out = p.run(&["build"]).success().stdout();
    assert!(out.contains("identity churn: 6 of 6"), "{out}");
    assert!(out.contains("(0 new"), "nothing is new: {out}");
    let after = atom_entries(&p.read("public/atom.xml"));
    assert_eq!(before, after, "same entries under the same IDs");
    assert!(p
        .run(&["dupes"])
        .success()
        .stdout()
        .contains("identity-churn"));
    // And the next fetch is quiet.
    let out = p.run(&["build"]).success().stdout();
    assert!(!out.contains("identity churn"), "{out}");
    assert_eq!(atom_entries(&p.read("public/atom.xml")), before);
}

/// Each Atom entry's ID and the story marker (`Meldung<n>`) its content carries.
fn atom_stories(atom: &str) -> Vec<(String, usize)> {
    atom.split("<entry>")
        .skip(1)
        .map(|e| {
            let id_start = e.find("<id>").unwrap() + 4;
            let id = e[id_start..id_start + e[id_start..].find("</id>").unwrap()].to_owned();
            let m = e.find("Meldung").expect("story marker") + "Meldung".len();
            let n: String = e[m..].chars().take_while(char::is_ascii_digit).collect();
            (id, n.parse().unwrap())
        })
        .collect()
}

#[test]
fn fifty_republishes_with_copies_in_changing_order_never_change_an_id_or_repeat_a_story() {
    const STORIES: usize = 8;
    const ROUNDS: usize = 50;
    let server = TestServer::start();
    let partners = [("p1", 50), ("p2", 50), ("p3", 10)];
    let p = Project::new();
    let mut cfg = String::from(LOCAL_DEFUS);
    for (id, prio) in partners {
        cfg.push_str(&feed_source(
            id,
            id,
            &server.url(&format!("/{id}.xml")),
            prio,
        ));
    }
    p.config(&cfg);
    std::fs::create_dir_all(p.path().join("feeds/defus")).unwrap();
    let bodies: Vec<String> = (0..STORIES).map(|n| story(100 + n)).collect();
    let mut rng: u64 = 0x5eed;
    let mut next = move |m: usize| {
        rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (rng >> 33) as usize % m
    };
    // Which partner carries which story, growing over the rounds (copies only arrive).
    let mut carried: Vec<Vec<usize>> = vec![Vec::new(); partners.len()];
    let mut first_id: std::collections::HashMap<usize, String> = Default::default();
    let mut story_of_id: std::collections::HashMap<String, usize> = Default::default();
    for round in 0..ROUNDS {
        // One new copy per round: a random story (among those "released" so far) at a
        // random partner.
        let released = (round / 4 + 1).min(STORIES);
        let (who, what) = (next(partners.len()), next(released));
        if !carried[who].contains(&what) {
            carried[who].push(what);
        }
        // A higher-priority local copy of story 1 arrives late, after it was shown.
        if round == 25 {
            p.write(
                "feeds/defus/2024-05-02-bericht.md",
                &format!(
                    "+++\ntitle = \"Unser Bericht\"\ndate = 2024-05-02\n+++\n\n{}\n",
                    bodies[1].trim_start_matches("<p>").trim_end_matches("</p>")
                ),
            );
        }
        for (k, (id, _)) in partners.iter().enumerate() {
            let mut order = carried[k].clone();
            // Changing order: rotate and sometimes reverse.
            if !order.is_empty() {
                let r = next(order.len());
                order.rotate_left(r);
                if next(2) == 0 {
                    order.reverse();
                }
            }
            let guids: Vec<String> = order.iter().map(|n| format!("{id}-{n}")).collect();
            let links: Vec<String> = order
                .iter()
                .map(|n| format!("https://{id}.example/news/{n}"))
                .collect();
            let titles: Vec<String> = order
                .iter()
                .map(|n| format!("{id} berichtet ({n})"))
                .collect();
            // Dated by story, so a partner's window never loses older copies.
            let dates: Vec<String> = order.iter().map(|n| rfc822(*n as u32)).collect();
            let items: Vec<It> = (0..order.len())
                .map(|i| It {
                    guid: Some(&guids[i]),
                    link: &links[i],
                    title: &titles[i],
                    date: &dates[i],
                    body: &bodies[order[i]],
                })
                .collect();
            serve(&server, &format!("/{id}.xml"), rss(id, &items));
        }
        p.run(&["build"]).success();
        let entries = atom_stories(&p.read("public/atom.xml"));
        let mut seen_now = std::collections::HashSet::new();
        for (id, n) in &entries {
            assert!(
                seen_now.insert(*n),
                "round {round}: story {n} twice: {entries:?}"
            );
            let first = first_id.entry(*n).or_insert_with(|| id.clone());
            assert_eq!(
                first, id,
                "round {round}: story {n} changed its published ID"
            );
            let owner = story_of_id.entry(id.clone()).or_insert(*n);
            assert_eq!(
                *owner, *n,
                "round {round}: ID {id} reused for another story"
            );
        }
        // Nothing shown before disappears (copies are only ever added).
        for n in first_id.keys() {
            assert!(seen_now.contains(n), "round {round}: story {n} vanished");
        }
    }
    assert!(
        first_id.len() >= 6,
        "the run exercised most stories: {first_id:?}"
    );
    // The late local copy joined story 1's cluster as provenance.
    let dupes = p.run(&["dupes"]).success().stdout();
    assert!(dupes.contains("+ defus \"Unser Bericht\""), "{dupes}");
}

/// Precision and recall of `dupes --jsonl` against the labelled corpus in
/// `tests/fixtures/dedupe/corpus` (see its README), scored like `score-dedup`.
#[test]
fn labelled_corpus_meets_precision_and_recall_targets() {
    let root = crate::support::fixture("dedupe/corpus");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("manifest.json")).unwrap()).unwrap();
    let server = TestServer::start();
    let mut cfg = String::new();
    for s in manifest["sources"].as_array().unwrap() {
        let id = s["id"].as_str().unwrap();
        let file = s["file"].as_str().unwrap();
        server.route(
            &format!("/{file}"),
            Route::ok("application/xml", std::fs::read(root.join(file)).unwrap()),
        );
        cfg.push_str(&feed_source(id, id, &server.url(&format!("/{file}")), 50));
    }
    let p = Project::new();
    p.config(&cfg);
    p.run(&["build"]).success();
    let out = p.run(&["dupes", "--jsonl"]).success().stdout();

    // Ground truth: every duplicate points at its story's original.
    let mut truth_story: std::collections::HashMap<String, String> = Default::default();
    let mut truth: Vec<(String, String, String)> = Vec::new();
    for d in manifest["duplicates"].as_array().unwrap() {
        let (k, o, kind) = (
            d[0].as_str().unwrap().to_owned(),
            d[1].as_str().unwrap().to_owned(),
            d[2].as_str().unwrap().to_owned(),
        );
        truth_story.insert(k.clone(), o.clone());
        truth.push((k, o, kind));
    }
    let story = |k: &str| truth_story.get(k).cloned().unwrap_or_else(|| k.to_owned());

    // Predicted clusters: union of dup_of edges.
    let mut parent: std::collections::HashMap<String, String> = Default::default();
    fn find(parent: &mut std::collections::HashMap<String, String>, k: &str) -> String {
        let mut r = k.to_owned();
        while let Some(p) = parent.get(&r).filter(|p| **p != r) {
            r = p.clone();
        }
        r
    }
    let (mut dropped, mut dropped_ok, mut lines) = (0, 0, 0);
    let mut seen = std::collections::HashSet::new();
    for l in out.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let key = v["key"].as_str().unwrap().to_owned();
        lines += 1;
        seen.insert(key.clone());
        if let Some(d) = v["dup_of"].as_str() {
            dropped += 1;
            if story(&key) == story(d) {
                dropped_ok += 1;
            }
            let (a, b) = (find(&mut parent, &key), find(&mut parent, d));
            if a != b {
                parent.insert(a, b);
            }
        }
    }
    let items = manifest["totals"]["items"].as_u64().unwrap() as usize;
    assert_eq!(lines, items, "one line per item held");
    let mut by_kind: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for (k, o, kind) in &truth {
        assert!(
            seen.contains(k) && seen.contains(o),
            "keys match the corpus: {k} / {o}"
        );
        let e = by_kind.entry(kind.clone()).or_default();
        e.1 += 1;
        if find(&mut parent, k) == find(&mut parent, o) {
            e.0 += 1;
        }
    }
    let precision = dropped_ok as f64 / dropped as f64;
    let found: usize = by_kind.values().map(|v| v.0).sum();
    let recall = found as f64 / truth.len() as f64;
    eprintln!("drop precision {precision:.3}, recall {recall:.3}, by kind {by_kind:?}");
    assert!(precision >= 0.99, "drop precision {precision}");
    assert!(recall >= 0.95, "recall {recall}: {by_kind:?}");
    for (kind, (f, of)) in &by_kind {
        assert!(*f as f64 / *of as f64 >= 0.95, "{kind}: {f} of {of}");
    }
}

#[test]
fn a_globally_unique_guid_in_another_source_is_the_same_item_but_a_counter_is_not() {
    let server = TestServer::start();
    serve(
        &server,
        "/a.xml",
        rss(
            "A",
            &[
                It {
                    guid: Some("tag:a.example,2024:augsburg-konzept"),
                    link: "https://a.example/augsburg",
                    title: "Augsburg stellt Sicherheitskonzept vor",
                    date: "Mon, 03 Jun 2024 09:00:00 +0200",
                    body: STORY_A,
                },
                It {
                    guid: Some("1"),
                    link: "https://a.example/handreichung",
                    title: "Handreichung Gewaltprävention",
                    date: "Mon, 03 Jun 2024 08:00:00 +0200",
                    body: STORY_B,
                },
            ],
        ),
    );
    serve(
        &server,
        "/b.xml",
        rss(
            "B",
            &[
                It {
                    guid: Some("tag:a.example,2024:augsburg-konzept"),
                    link: "https://b.example/weitergeleitet/augsburg",
                    title: "Weitergeleitet: Sicherheit in Augsburg",
                    date: "Mon, 03 Jun 2024 10:00:00 +0200",
                    body: "<p>Eine Meldung unseres Partners.</p>",
                },
                It {
                    guid: Some("1"),
                    link: "https://b.example/1",
                    title: "Jahresbericht",
                    date: "Mon, 03 Jun 2024 08:00:00 +0200",
                    body: &story(3),
                },
            ],
        ),
    );
    let p = Project::new();
    p.config(&two_partners(&server));
    p.run(&["build"]).success();
    let jsonl = p.run(&["dupes", "--jsonl"]).success().stdout();
    assert!(
        jsonl.contains(r#"{"dup_of":"a|tag:a.example,2024:augsburg-konzept","key":"b|tag:a.example,2024:augsburg-konzept"}"#),
        "{jsonl}"
    );
    assert!(jsonl.contains(r#"{"dup_of":null,"key":"b|1"}"#), "{jsonl}");
    assert!(p.run(&["dupes"]).success().stdout().contains("(same GUID)"));
}
