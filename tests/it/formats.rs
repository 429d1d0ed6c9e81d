//! The formats and shapes partners really publish beyond what feed-rs reads (Atom 0.3,
//! RSS 0.90 and 1.0 without links, version-less and draft-namespace RSS, Dublin Core,
//! text constructs, DTD entities, a wrong end tag at the end), each a fixture under
//! `tests/fixtures/formats/` named for its quirk, read through `feedwerk doctor` and
//! `feedwerk build`; and the shapes that stay refused (entity attacks, a truncated body).
//!
//! Every fixture has its expected `doctor --json` output beside it
//! (`<fixture>.doctor.json`); `FEEDWERK_UPDATE_GOLDEN=1` re-records them.

use std::path::Path;

use serde_json::Value;

use crate::support::{self, fixture, read_fixture, Project, Route, TestServer};

const DIR: &str = "formats";

/// `feedwerk doctor --json NAME` on a copy of the fixture in a scratch project (so the
/// location is the bare file name), as JSON.
fn doctor(name: &str) -> (Value, crate::support::Run) {
    let p = Project::new();
    p.write(
        name,
        &String::from_utf8(read_fixture(&format!("{DIR}/{name}"))).unwrap(),
    );
    let out = p.run(&["doctor", "--json", name]);
    let v: Value = serde_json::from_str(&out.stdout())
        .unwrap_or_else(|e| panic!("{name}: not JSON ({e}):\n{}", out.all()));
    (v, out)
}

fn fixtures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixture(DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".xml"))
        .collect();
    names.sort();
    names
}

#[test]
fn every_quirk_fixture_gives_its_golden_doctor_json() {
    let update = std::env::var("FEEDWERK_UPDATE_GOLDEN").as_deref() == Ok("1");
    let mut differ = Vec::new();
    for name in fixtures() {
        let (v, _) = doctor(&name);
        let got = serde_json::to_string_pretty(&v).unwrap() + "\n";
        let golden = fixture(DIR).join(format!("{}.doctor.json", name.trim_end_matches(".xml")));
        if update {
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
            panic!(
                "{} is missing: record it with FEEDWERK_UPDATE_GOLDEN=1",
                golden.display()
            )
        });
        if got != want {
            differ.push(format!("{name}:\n--- want\n{want}\n--- got\n{got}"));
        }
    }
    assert!(
        differ.is_empty(),
        "doctor --json differs (FEEDWERK_UPDATE_GOLDEN=1 re-records):\n{}",
        differ.join("\n")
    );
}

fn items(v: &Value) -> &Vec<Value> {
    v["items"].as_array().unwrap()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[test]
fn atom03_escaped_content_is_read_with_dates_authors_and_the_feed_title_decoded() {
    let (v, out) = doctor("atom03-escaped-content.xml");
    out.success();
    assert_eq!(v["format"], "atom03");
    assert_eq!(v["feed"]["title"], "Präventionsblog – Einträge");
    assert_eq!(v["feed"]["link"], "https://blog.partner.example/");
    assert_eq!(v["feed"]["updated"], "2017-10-10T08:00:00Z");
    let it = items(&v);
    assert_eq!(it.len(), 2);
    assert_eq!(it[0]["guid"], "tag:blog.partner.example,2017://1.42");
    assert_eq!(it[0]["title"], "Sicherheit im Quartier");
    assert_eq!(
        it[0]["link"],
        "https://blog.partner.example/2017/10/sicherheit-im-quartier.html"
    );
    // `issued` is the publication date, `modified` the update.
    assert_eq!(it[0]["published"], "2017-10-09T12:30:00Z");
    assert_eq!(it[0]["updated"], "2017-10-10T07:45:00Z");
    // The feed's author stands in for an entry without one.
    assert_eq!(
        strings(&it[0]["authors"]),
        ["erika@partner.example (Erika Muster)"]
    );
    assert_eq!(it[1]["title"], "Fragen & Antworten");
    assert_eq!(strings(&it[1]["authors"]), ["Max Beispiel"]);
    // A zone-less `issued` is the source's time zone (Berlin, CEST).
    assert_eq!(it[1]["published"], "2017-09-28T07:00:00Z");
    assert_eq!(v["problems"], serde_json::json!([]), "{v:#}");
}

#[test]
fn atom03_base64_and_inline_xml_content_and_a_base64_feed_title() {
    let (v, out) = doctor("atom03-base64-and-inline-xml-content.xml");
    out.success();
    assert_eq!(v["feed"]["title"], "Stadtrat Überlingen");
    let it = items(&v);
    assert_eq!(it[0]["summary"], "Der Bahnhof wird heller.");
    // Only `created`: that is when it was published.
    assert_eq!(it[0]["published"], "2005-11-01T16:00:00Z");
    assert_eq!(it[1]["summary"], "Jeden Dienstag im Rathaus.");
    // Of multipart/alternative, the HTML part.
    assert_eq!(it[2]["summary"], "Mit Auszeichnung.");
}

#[test]
fn rss_without_version_is_read_as_rss2_and_doctor_says_so() {
    let (v, out) = doctor("rss-no-version.xml");
    out.success();
    assert_eq!(v["format"], "rss2");
    let it = items(&v);
    assert_eq!(it.len(), 1);
    assert_eq!(it[0]["guid"], "musterstadt-2017-118");
    assert_eq!(it[0]["published"], "2017-11-02T09:00:00Z");
    assert_eq!(
        strings(&it[0]["authors"]),
        ["presse@musterstadt.partner.example (Pressestelle)"]
    );
    assert_eq!(strings(&it[0]["tags"]), ["Rathaus"]);
    assert_eq!(
        strings(&v["repairs"]),
        ["the <rss> element has no version attribute; read as RSS 2.0"]
    );
}

#[test]
fn rss2_in_the_userland_default_namespace_is_read() {
    let (v, out) = doctor("rss2-userland-default-namespace.xml");
    out.success();
    let it = items(&v);
    assert_eq!(it.len(), 2);
    assert_eq!(v["feed"]["title"], "Scripting News");
    assert_eq!(it[0]["published"], "2002-09-30T01:56:02Z");
    assert_eq!(strings(&it[0]["tags"]), ["Software"]);
    assert!(v["repairs"][0]
        .as_str()
        .unwrap()
        .contains("http://backend.userland.com/rss2"));
}

#[test]
fn rss090_netscape_rdf_is_read() {
    let (v, out) = doctor("rss090-netscape-rdf.xml");
    out.success();
    assert_eq!(v["format"], "rss090");
    assert_eq!(v["feed"]["title"], "Altstadtverein");
    let titles: Vec<&str> = items(&v)
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        ["Stadtfest am Marktplatz", "Neue Bänke in der Fußgängerzone"]
    );
    assert_eq!(
        items(&v)[1]["link"],
        "https://altstadt.partner.example/baenke.html"
    );
}

#[test]
fn rdf_items_without_link_use_rdf_about_and_dublin_core_fills_title_dates_authors_tags() {
    let (v, out) = doctor("rdf-item-without-link.xml");
    out.success();
    assert_eq!(v["format"], "rss1");
    assert_eq!(v["feed"]["id"], "https://forum.partner.example/rss.rdf");
    // Channel-level dc:date, dc:creator, dc:subject.
    assert_eq!(v["feed"]["updated"], "2017-10-09T13:00:00Z");
    assert_eq!(strings(&v["feed"]["authors"]), ["Redaktion Forum"]);
    assert_eq!(strings(&v["feed"]["categories"]), ["Prävention"]);
    let it = items(&v);
    assert_eq!(it.len(), 3, "no item is dropped: {v:#}");
    // No <link>: rdf:about is both the link and the GUID.
    assert_eq!(it[0]["link"], "https://forum.partner.example/beitrag/17");
    assert_eq!(it[0]["guid"], "https://forum.partner.example/beitrag/17");
    assert_eq!(it[0]["published"], "2017-10-09T12:00:00Z");
    assert_eq!(strings(&it[0]["authors"]), ["Anna Schmidt"]);
    assert_eq!(strings(&it[0]["tags"]), ["Jugendschutz", "Termine"]);
    // Titled only by dc:title; its own <link> wins over rdf:about.
    assert_eq!(it[1]["title"], "Nur mit Dublin-Core-Titel");
    assert_eq!(
        it[1]["link"],
        "https://forum.partner.example/beitrag/16?from=rss"
    );
    assert_eq!(it[1]["guid"], "https://forum.partner.example/beitrag/16");
    assert_eq!(strings(&it[1]["authors"]), ["Redaktion Forum"]);
    // A URN names the item but is no link for readers.
    assert_eq!(it[2]["guid"], "urn:forum-partner:beitrag:15");
    assert!(it[2]["link"].is_null());
}

#[test]
fn dublin_core_and_dcmi_terms_on_rss2_items_and_channel() {
    let (v, out) = doctor("rss2-dublin-core-and-dcterms.xml");
    out.success();
    assert_eq!(
        v["feed"]["updated"], "2017-10-09T14:00:00Z",
        "channel dc:date"
    );
    assert_eq!(strings(&v["feed"]["authors"]), ["Pressestelle Landesrat"]);
    let it = items(&v);
    assert_eq!(it.len(), 3);
    assert_eq!(it[0]["title"], "Förderprogramm verlängert", "dc:title");
    assert_eq!(it[0]["published"], "2017-10-09T09:00:00Z", "dcterms:issued");
    assert_eq!(it[0]["updated"], "2017-10-09T13:30:00Z", "dcterms:modified");
    assert_eq!(strings(&it[0]["tags"]), ["Förderung"]);
    assert_eq!(
        it[1]["published"], "2017-10-05T08:00:00Z",
        "dcterms:created"
    );
    assert_eq!(strings(&it[1]["authors"]), ["Jan Weber"]);
    assert_eq!(
        it[2]["published"], "2017-09-29T22:00:00Z",
        "dc:date, Berlin"
    );
}

#[test]
fn atom_feed_title_of_type_xhtml_and_html_titles_are_plain_text() {
    let (v, out) = doctor("atom-xhtml-and-html-feed-title.xml");
    out.success();
    assert_eq!(v["feed"]["title"], "Netzwerk Sichere Stadt");
    assert_eq!(items(&v)[0]["title"], "Tagung Sichere Stadt 2017");
    assert_eq!(items(&v)[1]["title"], "Bericht Quartiersarbeit");
    assert_eq!(
        strings(&items(&v)[0]["tags"]),
        ["Tagung"],
        "dc:subject on Atom"
    );
}

#[test]
fn channel_title_with_undeclared_html_entities_is_normalised_like_item_titles() {
    let (v, out) = doctor("rss-undeclared-html-entities-in-channel-title.xml");
    out.success();
    assert_eq!(v["feed"]["title"], "Café Kiez – Nachrichten");
    assert_eq!(items(&v)[0]["title"], "Sommerfest im Hof");
    assert!(
        v["repairs"][0].as_str().unwrap().contains("&nbsp; ×3"),
        "{v:#}"
    );
}

#[test]
fn internal_dtd_entities_are_expanded_and_said() {
    let (v, out) = doctor("rss-internal-dtd-entities.xml");
    out.success();
    assert_eq!(
        v["feed"]["title"],
        "Präventionsverein Nordstadt e. V. – Termine"
    );
    assert_eq!(v["feed"]["link"], "https://nordstadt.partner.example/");
    assert_eq!(
        items(&v)[0]["link"],
        "https://nordstadt.partner.example/termine/mv-2017.html"
    );
    assert_eq!(
        strings(&v["repairs"]),
        ["expanded the DTD's internal entities: &copy;, &home; ×3, &verein; ×4"]
    );
}

#[test]
fn entity_attacks_stay_refused_with_the_reason() {
    for (name, why) in [
        ("dtd-billion-laughs-refused.xml", "billion laughs"),
        (
            "dtd-external-entity-refused.xml",
            "external entity `secret`",
        ),
        ("dtd-quadratic-blowup-refused.xml", "expansion bomb"),
    ] {
        let (v, out) = doctor(name);
        assert_eq!(out.code(), Some(1), "{name}: {}", out.all());
        assert_eq!(v["readable"], false, "{name}");
        let problem = v["problems"][0].as_str().unwrap();
        assert!(
            problem.contains("declares entities we refuse") && problem.contains(why),
            "{name}: {problem}"
        );
        assert!(items(&v).is_empty());
    }
}

#[test]
fn a_mismatched_end_tag_at_the_very_end_is_repaired_and_said() {
    let (v, out) = doctor("rss-mismatched-end-tag-at-end.xml");
    out.success();
    assert_eq!(items(&v).len(), 2);
    assert!(
        v["repairs"][0]
            .as_str()
            .unwrap()
            .contains("</chanel> as </channel>, </RSS> as </rss>"),
        "{v:#}"
    );
}

#[test]
fn a_truncated_body_is_not_repaired() {
    let (v, out) = doctor("rss-truncated-after-an-item.xml");
    assert_eq!(out.code(), Some(1), "{}", out.all());
    assert_eq!(v["readable"], false);
    assert!(items(&v).is_empty());
}

#[test]
fn doctor_lists_an_entry_normalisation_drops_with_the_reason() {
    let (v, out) = doctor("rss-item-without-title-text-or-link.xml");
    out.success();
    let entries: Vec<u64> = items(&v)
        .iter()
        .map(|i| i["entry"].as_u64().unwrap())
        .collect();
    assert_eq!(entries, [1, 3]);
    let dropped = v["dropped"].as_array().unwrap();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0]["entry"], 2);
    assert_eq!(dropped[0]["guid"], "cms-entwurf-0");
    assert_eq!(
        dropped[0]["reason"],
        "item has neither a title nor any text nor a link"
    );
    // The text report shows it in its place.
    let p = Project::new();
    p.write(
        "f.xml",
        &String::from_utf8(read_fixture(&format!(
            "{DIR}/rss-item-without-title-text-or-link.xml"
        )))
        .unwrap(),
    );
    let text = p.run(&["doctor", "f.xml"]).success().stdout();
    assert!(text.contains("1 more read but dropped"), "{text}");
    assert!(
        text.contains("2. (no title)\n      dropped    item has neither a title"),
        "{text}"
    );
}

/// The readable fixtures, one partner source each, served over HTTP.
fn merged_project(server: &TestServer) -> (Project, Vec<(String, String)>) {
    let mut sources = String::new();
    let mut ids = Vec::new();
    for name in fixtures().into_iter().filter(|n| {
        !n.contains("refused") && !n.contains("truncated") && !n.contains("without-title")
    }) {
        let id: String = name
            .trim_end_matches(".xml")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        server.route(
            &format!("/{name}"),
            Route::ok(
                "application/xml; charset=utf-8",
                read_fixture(&format!("{DIR}/{name}")),
            ),
        );
        sources.push_str(&format!(
            "[[source]]\nid = \"{id}\"\nkind = \"feed\"\ntitle = \"{id}\"\nurl = \"{}\"\n\n",
            server.url(&format!("/{name}"))
        ));
        ids.push((id, name));
    }
    let p = Project::new();
    p.config(&sources);
    (p, ids)
}

#[test]
fn a_build_that_merges_every_shape_publishes_them_and_the_interop_clients_read_it() {
    let server = TestServer::start();
    let (p, ids) = merged_project(&server);
    p.run(&["build"]).success();
    // Each source's items, as doctor counted them, are published on its channel.
    let mut total = 0;
    for (id, name) in &ids {
        let (v, _) = doctor(name);
        let want = items(&v).len();
        let json: Value =
            serde_json::from_str(&p.read(&format!("public/sources/{id}.json"))).unwrap();
        let got = json["items"].as_array().unwrap().len();
        assert_eq!(got, want, "{id}");
        let want_titles: Vec<&str> = items(&v)
            .iter()
            .map(|i| i["title"].as_str().unwrap())
            .collect();
        for t in want_titles {
            assert!(
                json["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["title"] == t),
                "{id}: {t} missing"
            );
        }
        total += want;
    }
    let combined: Value = serde_json::from_str(&p.read("public/feed.json")).unwrap();
    assert_eq!(combined["items"].as_array().unwrap().len(), total);
    let problems = support::json_feed_problems(&combined);
    assert!(problems.is_empty(), "{problems:?}");

    let public = p.path().join("public");
    let xml_docs = ["rss.xml", "atom.xml"];
    for doc in xml_docs {
        check_with_feedparser(&public.join(doc), total);
        check_with_sfeed(&public.join(doc), total);
    }
    for (id, _) in &ids {
        check_with_feedparser(&public.join(format!("sources/{id}.atom")), usize::MAX);
    }
    if let Some(complaints) = support::jing_atom(&public.join("atom.xml")) {
        assert!(complaints.is_empty(), "atom.xml:\n{complaints}");
    }
}

fn check_with_feedparser(path: &Path, want: usize) {
    let Some(d) = support::feedparser(path) else {
        return;
    };
    assert_eq!(
        d["bozo"],
        false,
        "{}: {}",
        path.display(),
        d["bozo_exception"]
    );
    let entries = d["entries"].as_array().unwrap();
    if want != usize::MAX {
        assert_eq!(entries.len(), want, "{}", path.display());
    }
    for e in entries {
        let title = e["title"].as_str().unwrap_or_default();
        // Plain text: no markup and no entity reference left for a reader to see.
        let entity = title.split('&').skip(1).any(|rest| {
            rest.split_once(';').is_some_and(|(name, _)| {
                !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '#')
            })
        });
        assert!(
            !title.is_empty() && !entity && !title.contains('<'),
            "{}: title {title:?}",
            path.display()
        );
    }
}

fn check_with_sfeed(path: &Path, want: usize) {
    if !support::require_tool("sfeed", &[]) {
        return;
    }
    let input = std::fs::File::open(path).unwrap();
    let out = std::process::Command::new("sfeed")
        .stdin(input)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", path.display());
    let tsv = String::from_utf8(out.stdout).unwrap();
    assert_eq!(tsv.lines().count(), want, "{}:\n{tsv}", path.display());
}
