//! The backbone end to end (issue 2): local posts and partner feeds in, combined RSS,
//! Atom and JSON Feed out — through the `feedwerk` binary, files on disk and HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{self, http_get, Project, Route, TestServer};

/// The titles of the seed page (`feeds/defus`), newest first. The page lists "DEFUS auf
/// dem Deutschen Präventionstag 2017" twice, under two titles and dates; the first
/// five are distinct stories.
const SEED_TITLES: [&str; 5] = [
    "15. DEFUS Mitgliederversammlung in Stuttgart",
    "DEFUS begrüßt 2 neue Mitglieder - Gelsenkirchen und Lippe",
    "Präventive Unterstützung für Integration und Inklusion",
    "Webinarreihe Extremischtische Radikalisierung",
    // The seed lists this post twice; dedupe (issue 5) publishes this copy only.
    "DEFUS auf dem Deutschen Präventionstag 2017",
];
const SEED_DUPLICATE_TITLES: [&str; 2] = [
    "DEFUS auf dem Deutschen Präventionstag 2017",
    "DEFUS auf dem DPT 2017",
];

fn local_source() -> &'static str {
    crate::support::LOCAL_DEFUS
}

fn partner(id: &str, url: &str) -> String {
    format!(
        r#"
[[source]]
id = "{id}"
kind = "feed"
title = "Partner {id}"
url = "{url}"
homepage = "https://{id}.example/"
priority = 50
"#
    )
}

fn json(p: &Project, rel: &str) -> serde_json::Value {
    serde_json::from_str(&p.read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// An RFC 3339 date as UTC seconds, so `Z` and `+00:00` compare equal.
fn utc(d: &serde_json::Value) -> String {
    let text = d.as_str().unwrap_or_else(|| panic!("not a date: {d}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&chrono::Utc)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn titles(feed: &serde_json::Value) -> Vec<String> {
    feed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A port on 127.0.0.1 where nothing listens: a partner that is down.
fn closed_port_url(path: &str) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}{path}")
}

const PARTNER_RSS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0">
<channel>
  <title>Efus news</title>
  <link>https://efus.example/</link>
  <description>European Forum for Urban Security</description>
  <language>en</language>
  <item>
    <title>Efus General Assembly in Barcelona</title>
    <link>https://efus.example/news/general-assembly</link>
    <guid>https://efus.example/news/general-assembly</guid>
    <pubDate>Wed, 15 Nov 2017 10:00:00 +0100</pubDate>
    <description>&lt;p&gt;Mayors and city representatives met in Barcelona to discuss urban security strategies across Europe.&lt;/p&gt;</description>
  </item>
  <item>
    <title>New publication on preventing radicalisation</title>
    <link>https://efus.example/news/publication</link>
    <guid>efus-publication-42</guid>
    <pubDate>Fri, 01 Sep 2017 09:30:00 +0200</pubDate>
    <description>A handbook for local authorities working on the prevention of violent radicalisation.</description>
  </item>
</channel>
</rss>"#;

#[test]
fn shipped_config_builds_offline_and_publishes_the_seed_posts() {
    // The real deployment, with the partners' hosts replaced by a closed local port so
    // the test never leaves the machine: partners are reported, local posts publish.
    let p = Project::with_seed_posts();
    let mut cfg = std::fs::read_to_string(support::repo_root().join("config.toml")).unwrap();
    for url in [
        "https://efus.eu/feed/",
        "https://www.praeventionstag.de/nano.cms/rss",
        "https://www.lpr.niedersachsen.de/rss/aktuelles.xml",
    ] {
        assert!(cfg.contains(url), "shipped config lists {url}");
        cfg = cfg.replace(url, &closed_port_url("/feed"));
    }
    p.write("config.toml", &cfg);
    let run = p.run(&["build"]);
    run.success();
    let out = run.all();
    for id in ["efus", "dpt-i", "lpr"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(id) && l.contains("FAILED")),
            "partner {id} reported as failed:\n{out}"
        );
    }
    for file in ["rss.xml", "atom.xml", "feed.json"] {
        let body = p.read(&format!("public/{file}"));
        for t in SEED_TITLES {
            let escaped_in_xml = t.replace('&', "&amp;");
            assert!(
                body.contains(t) || body.contains(&escaped_in_xml),
                "{file} carries “{t}”"
            );
        }
    }
    // Dates DD.MM.YYYY on the page are midnight in Berlin.
    let feed = json(&p, "public/feed.json");
    let dates: Vec<String> = feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| utc(&i["date_published"]))
        .collect();
    assert_eq!(dates[0], "2017-10-08T22:00:00Z");
    assert!(
        dates.iter().any(|d| d == "2017-04-05T22:00:00Z"),
        "{dates:?}"
    );
    assert!(
        dates.iter().any(|d| d == "2017-08-15T22:00:00Z"),
        "{dates:?}"
    );
}

#[test]
fn every_seed_post_is_published_with_title_date_and_text() {
    let p = Project::with_seed_posts();
    p.config(local_source());
    p.run(&["build"]).success();
    let feed = json(&p, "public/feed.json");
    let items = feed["items"].as_array().unwrap();
    let got = titles(&feed);
    for t in SEED_TITLES {
        assert!(got.iter().any(|g| g == t), "missing “{t}” in {got:?}");
    }
    // The page's twice-listed post is there at least once (issue 5 makes it exactly once).
    assert!(got
        .iter()
        .any(|g| SEED_DUPLICATE_TITLES.contains(&g.as_str())));
    let stuttgart = &items[0];
    assert_eq!(stuttgart["title"], SEED_TITLES[0]);
    let html = stuttgart["content_html"].as_str().unwrap();
    assert!(html.contains("zweitgrößte Volksfest der Welt – den Stuttgarter Wasen"));
    assert!(html.contains("<p>Auf der anschließenden Mitgliederversammlung"));
    let pufii = items.iter().find(|i| i["title"] == SEED_TITLES[2]).unwrap();
    let html = pufii["content_html"].as_str().unwrap();
    assert!(
        html.contains("<li>Landespräventionsrat Niedersachsen (LPR)</li>"),
        "{html}"
    );
}

#[test]
fn outputs_are_read_cleanly_by_feedparser_jing_and_json_feed_rules() {
    let p = Project::with_seed_posts();
    p.config(local_source());
    p.run(&["build"]).success();

    let problems = support::json_feed_problems(&json(&p, "public/feed.json"));
    assert!(problems.is_empty(), "feed.json: {problems:#?}");

    for file in ["rss.xml", "atom.xml"] {
        let Some(d) = support::feedparser(&p.path().join("public").join(file)) else {
            return;
        };
        assert_eq!(d["bozo"], false, "{file}: {}", d["bozo_exception"]);
        let entries = d["entries"].as_array().unwrap();
        assert!(entries.len() >= 5, "{file}: {} entries", entries.len());
        assert_eq!(entries[0]["title"], SEED_TITLES[0], "{file}");
        assert_eq!(entries[0]["published"], "2017-10-08T22:00:00Z", "{file}");
        assert!(
            entries[0]["link"]
                .as_str()
                .unwrap()
                .starts_with("https://www.defus.de/aktuelles/posts/"),
            "{file}: {}",
            entries[0]["link"]
        );
        assert_eq!(d["language"], "de", "{file}");
    }
    if let Some(complaints) = support::jing_atom(&p.path().join("public/atom.xml")) {
        assert!(complaints.is_empty(), "jing: {complaints}");
    }
}

#[test]
fn partner_feed_is_merged_newest_first_and_items_carry_their_source() {
    let server = TestServer::start();
    server.route("/feed.xml", Route::ok("application/rss+xml", PARTNER_RSS));
    let p = Project::with_seed_posts();
    p.config(&format!(
        "{}{}",
        local_source(),
        partner("efus", &server.url("/feed.xml"))
    ));
    let run = p.run(&["build"]);
    run.success();
    assert!(run.stdout().contains("efus"), "{}", run.stdout());

    let feed = json(&p, "public/feed.json");
    let got = titles(&feed);
    assert_eq!(got[0], "Efus General Assembly in Barcelona", "{got:?}");
    assert_eq!(got[1], SEED_TITLES[0]);
    let pos = |t: &str| got.iter().position(|g| g == t).unwrap();
    assert!(pos("New publication on preventing radicalisation") < pos(SEED_TITLES[1]));
    assert!(pos(SEED_TITLES[1]) < pos(SEED_TITLES[2]));

    // Newest first in every format, and the partner item names its source.
    let atom = p.read("public/atom.xml");
    let first_entry = &atom[atom.find("<entry").unwrap()..atom.find("</entry>").unwrap()];
    assert!(first_entry.contains("Efus General Assembly in Barcelona"));
    assert!(first_entry.contains("<source>"), "{first_entry}");
    assert!(first_entry.contains("https://efus.example/news/general-assembly"));
    let rss = p.read("public/rss.xml");
    assert!(
        rss.find("Efus General Assembly").unwrap() < rss.find(SEED_TITLES[0]).unwrap(),
        "RSS is newest first"
    );
    let partner_item = &feed["items"][0];
    assert_eq!(
        partner_item["url"],
        "https://efus.example/news/general-assembly"
    );
    assert_eq!(utc(&partner_item["date_published"]), "2017-11-15T09:00:00Z");
    assert_eq!(server.seen_at("/feed.xml").len(), 1);
}

#[test]
fn broken_post_and_unreachable_partner_are_named_and_the_rest_publishes() {
    let p = Project::with_seed_posts();
    p.write(
        "feeds/defus/2017-11-01-kaputt.md",
        "+++\ntitle = \"Kaputt\"\ndate = 2017-11-01\ntags = [\"a\"\n+++\n\nText.\n",
    );
    let down = closed_port_url("/rss");
    p.config(&format!("{}{}", local_source(), partner("lpr", &down)));
    let run = p.run(&["build"]);
    run.success();
    let out = run.all();
    assert!(
        out.contains("2017-11-01-kaputt.md:"),
        "the broken post is named with its line:\n{out}"
    );
    assert!(out.contains("lpr") && out.contains(&down), "{out}");
    let got = titles(&json(&p, "public/feed.json"));
    for t in SEED_TITLES {
        assert!(got.iter().any(|g| g == t), "“{t}” still published");
    }
    assert!(!got.iter().any(|g| g == "Kaputt"));

    // `check` reports the same post and fails.
    let check = p.run(&["check"]);
    assert_eq!(check.code(), Some(1), "{}", check.all());
    assert!(
        check.all().contains("2017-11-01-kaputt.md:"),
        "{}",
        check.all()
    );
}

#[test]
fn build_fails_only_when_nothing_can_be_published() {
    let p = Project::with_seed_posts();
    p.config(local_source());
    // A file where the output directory should be: nothing can be written.
    p.write("public", "not a directory");
    let run = p.run(&["build"]);
    assert_ne!(run.code(), Some(0), "{}", run.all());
    assert!(
        run.all().contains("public"),
        "names the output path: {}",
        run.all()
    );
}

#[test]
fn post_id_survives_edits_of_title_and_body() {
    let p = Project::with_seed_posts();
    p.config(local_source());
    p.run(&["build"]).success();
    let before = json(&p, "public/feed.json");
    let file = "feeds/defus/2017-04-06-webinarreihe-extremischtische-radikalisierung.md";
    let text = p.read(file);
    let edited = text
        .replace(
            "Webinarreihe Extremischtische Radikalisierung",
            "Webinarreihe Extremistische Radikalisierung",
        )
        .replace("gemeinsam die Webinarreihe", "gemeinsam eine Webinarreihe");
    assert_ne!(text, edited);
    p.write(file, &edited);
    p.run(&["build"]).success();
    let after = json(&p, "public/feed.json");
    let id_of = |feed: &serde_json::Value, title: &str| -> String {
        feed["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["title"] == title)
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no item “{title}”"))
    };
    assert_eq!(
        id_of(&before, "Webinarreihe Extremischtische Radikalisierung"),
        id_of(&after, "Webinarreihe Extremistische Radikalisierung")
    );
    assert_eq!(titles(&before).len(), titles(&after).len());
}

#[test]
fn drafts_are_held_back_and_front_matter_link_and_time_are_used() {
    let p = Project::with_seed_posts();
    p.write(
        "feeds/defus/2017-12-01-entwurf.md",
        "+++\ntitle = \"Entwurf\"\ndate = 2017-12-01\ndraft = true\n+++\n\nNoch nicht.\n",
    );
    p.write(
        "feeds/defus/2017-12-02-extern.md",
        "+++\ntitle = \"Externer Bericht\"\ndate = 2017-12-02T14:30:00\nlink = \"https://partner.example/bericht\"\ntags = [\"Kriminalprävention\"]\nauthors = [\"Erika Muster\"]\n+++\n\nSiehe den *Bericht*.\n",
    );
    p.config(local_source());
    p.run(&["build"]).success();
    let feed = json(&p, "public/feed.json");
    let got = titles(&feed);
    assert!(!got.iter().any(|t| t == "Entwurf"), "{got:?}");
    let ext = &feed["items"][0];
    assert_eq!(ext["title"], "Externer Bericht");
    assert_eq!(ext["url"], "https://partner.example/bericht");
    // 14:30 in Berlin in December is 13:30 UTC.
    assert_eq!(utc(&ext["date_published"]), "2017-12-02T13:30:00Z");
    assert!(ext["content_html"]
        .as_str()
        .unwrap()
        .contains("<em>Bericht</em>"));
    assert_eq!(ext["authors"][0]["name"], "Erika Muster");
    let rss = p.read("public/rss.xml");
    assert!(
        rss.contains("<dc:creator>Erika Muster</dc:creator>"),
        "{rss}"
    );
}

#[test]
fn local_posts_link_to_their_own_page_which_is_written() {
    let p = Project::with_seed_posts();
    p.config(local_source());
    p.run(&["build"]).success();
    let feed = json(&p, "public/feed.json");
    let url = feed["items"][0]["url"].as_str().unwrap();
    let rel = url
        .strip_prefix("https://www.defus.de/aktuelles/")
        .expect("under base_url");
    let page = p.read(&format!("public/{rel}"));
    assert!(page.contains("15. DEFUS Mitgliederversammlung in Stuttgart"));
    assert!(page.contains("<html"));
}

#[test]
fn items_that_drop_off_a_partner_feed_stay_published() {
    let server = TestServer::start();
    server.route("/feed.xml", Route::ok("application/rss+xml", PARTNER_RSS));
    let p = Project::new();
    p.config(&partner("efus", &server.url("/feed.xml")));
    p.run(&["build"]).success();
    // The partner's window moves on: a new item on top, the oldest scrolls out.
    let newer = PARTNER_RSS
        .replace(
            "<item>\n    <title>New publication",
            "<item>\n    <title>Winter school</title>\n    <link>https://efus.example/news/winter</link>\n    <guid>winter</guid>\n    <pubDate>Mon, 04 Dec 2017 09:00:00 +0100</pubDate>\n    <description>Winter school on urban security.</description>\n  </item>\n  <item>\n    <title>New publication",
        );
    let start = newer.find("<item>\n    <title>New publication").unwrap();
    let end = start + newer[start..].find("</item>").unwrap() + "</item>".len();
    let newer = format!("{}{}", &newer[..start], &newer[end..]);
    assert!(!newer.contains("New publication"));
    server.route("/feed.xml", Route::ok("application/rss+xml", newer));
    p.run(&["build"]).success();
    let got = titles(&json(&p, "public/feed.json"));
    assert_eq!(
        got,
        [
            "Winter school",
            "Efus General Assembly in Barcelona",
            "New publication on preventing radicalisation"
        ]
    );
    // And the SQLite store holds all three.
    let db = rusqlite::Connection::open(p.path().join("state/feedwerk.sqlite")).unwrap();
    let n: i64 = db
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
}

#[test]
fn combined_feed_carries_the_newest_max_items() {
    let p = Project::with_seed_posts();
    p.config(local_source()).publish_key("max_items", Some("2"));
    p.run(&["build"]).success();
    let got = titles(&json(&p, "public/feed.json"));
    // Two posts share 2017-08-16; ties go by ID, so the Präventionstag post is second.
    assert_eq!(got, [SEED_TITLES[0], SEED_TITLES[4]]);
    let rss = p.read("public/rss.xml");
    assert_eq!(rss.matches("<item>").count(), 2);
    let atom = p.read("public/atom.xml");
    assert_eq!(atom.matches("<entry>").count(), 2);
}

#[test]
fn outputs_are_replaced_whole_with_no_temporary_files_left() {
    let p = Project::with_seed_posts();
    p.config(local_source());
    p.run(&["build"]).success();
    p.write(
        "feeds/defus/2018-01-10-neu.md",
        "+++\ntitle = \"Neu\"\ndate = 2018-01-10\n+++\n\nNeuer Text.\n",
    );
    p.run(&["build"]).success();
    fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), out);
            } else {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    let mut files = Vec::new();
    walk(&p.path().join("public"), &mut files);
    let stray: Vec<_> = files
        .iter()
        .filter(|f| f.starts_with('.') || f.contains(".tmp"))
        .collect();
    assert!(stray.is_empty(), "temporary files left: {stray:?}");
    assert_eq!(titles(&json(&p, "public/feed.json"))[0], "Neu");
}

/// `feedwerk run` in the background; killed on drop.
struct Daemon {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `feedwerk run` and waits until it logs the address it listens on.
fn start_daemon(p: &Project) -> Daemon {
    let mut child = p
        .command(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn feedwerk run");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("addr=").nth(1) {
                let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("daemon logs its listen address")
        .parse()
        .expect("a socket address");
    Daemon { child, addr }
}

#[test]
fn run_serves_the_outputs_with_validators_and_answers_304() {
    let p = Project::with_seed_posts();
    p.config(local_source());
    let d = start_daemon(&p);
    let feed = support::wait_for(Duration::from_secs(20), || {
        let r = http_get(d.addr, "/atom.xml", &[]);
        (r.status == 200 && r.text().contains(SEED_TITLES[0])).then_some(r)
    })
    .expect("atom.xml served with the seed posts");
    assert_eq!(
        feed.header("content-type"),
        Some("application/atom+xml; charset=utf-8")
    );
    let etag = feed.header("etag").expect("ETag").to_owned();
    let last_modified = feed
        .header("last-modified")
        .expect("Last-Modified")
        .to_owned();

    let again = http_get(d.addr, "/atom.xml", &[("If-None-Match", &etag)]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let since = http_get(
        d.addr,
        "/atom.xml",
        &[("If-Modified-Since", &last_modified)],
    );
    assert_eq!(since.status, 304);

    let rss = http_get(d.addr, "/rss.xml", &[]);
    assert_eq!(rss.status, 200);
    assert_eq!(
        rss.header("content-type"),
        Some("application/rss+xml; charset=utf-8")
    );
    let json = http_get(d.addr, "/feed.json", &[]);
    assert_eq!(json.status, 200);
    assert!(json
        .header("content-type")
        .unwrap()
        .contains("json; charset=utf-8"));
    assert_eq!(http_get(d.addr, "/nope.xml", &[]).status, 404);
}

#[test]
fn help_is_available_on_every_command() {
    let p = Project::new();
    for cmd in ["build", "run", "check", "sources"] {
        let out = p.command(&[cmd, "--help"]).output().unwrap();
        assert!(out.status.success(), "{cmd} --help");
        assert!(!out.stdout.is_empty());
    }
}
