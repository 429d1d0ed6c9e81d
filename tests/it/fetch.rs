//! Partner fetching against the real web's faults, through `feedwerk build` and
//! `feedwerk sources`, with partners played by `support::TestServer` on 127.0.0.1.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{read_fixture, Project, Route, TestServer};

/// An RSS 2.0 document with one item per title (GUIDs derived from `tag` and the index).
fn rss(tag: &str, titles: &[&str]) -> String {
    let items: String = titles
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "<item><title>{t}</title><link>https://{tag}.example/{i}</link><guid>https://{tag}.example/{i}</guid>\
                 <pubDate>Mon, 0{} Nov 2026 10:00:00 +0100</pubDate><description>{t} ({tag})</description></item>",
                i + 2
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\"><channel><title>{tag}</title>\
         <link>https://{tag}.example/</link><description>{tag}</description>{items}</channel></rss>"
    )
}

fn source(id: &str, url: &str) -> String {
    format!("[[source]]\nid = \"{id}\"\nkind = \"feed\"\ntitle = \"{id}\"\nurl = \"{url}\"\n\n")
}

fn project(sources: &str, fetch: &str) -> Project {
    let p = Project::new();
    p.config(&format!("[fetch]\n{fetch}\n\n{sources}"));
    p
}

const FAST: &str = "timeout = \"3s\"\nconnect_timeout = \"1s\"\n";

/// The line of `feedwerk sources` for one source, with its indented detail lines.
fn sources_entry(p: &Project, id: &str) -> String {
    let out = p.run(&["sources"]).success().stdout();
    let mut lines = out
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{id} ")));
    let mut entry = lines.next().unwrap_or_default().to_owned();
    for l in lines.take_while(|l| l.starts_with("  ")) {
        entry.push('\n');
        entry.push_str(l);
    }
    entry
}

fn mtime(p: &Project, rel: &str) -> std::time::SystemTime {
    std::fs::metadata(p.path().join(rel))
        .unwrap()
        .modified()
        .unwrap()
}

#[test]
fn second_build_sends_conditional_requests_and_a_304_cycle_rewrites_nothing() {
    let srv = TestServer::start();
    srv.route(
        "/etag.xml",
        Route::ok("application/rss+xml", rss("etag", &["Erste", "Zweite"])).etag("\"v1\""),
    );
    srv.route(
        "/lm.xml",
        Route::ok("application/rss+xml", rss("lm", &["Dritte"]))
            .last_modified("Mon, 02 Nov 2026 10:00:00 GMT"),
    );
    let p = project(
        &(source("etag", &srv.url("/etag.xml")) + &source("lm", &srv.url("/lm.xml"))),
        FAST,
    );
    let first = p.run(&["build"]);
    first.success();
    assert!(first.stdout().contains("published"), "{}", first.stdout());
    let before = mtime(&p, "public/rss.xml");
    let rss_before = p.read("public/rss.xml");
    std::thread::sleep(Duration::from_millis(1100));

    let second = p.run(&["build"]);
    second.success();
    let etag_reqs = srv.seen_at("/etag.xml");
    assert_eq!(etag_reqs.len(), 2);
    assert_eq!(
        etag_reqs[1]
            .headers
            .get("if-none-match")
            .map(String::as_str),
        Some("\"v1\"")
    );
    let lm_reqs = srv.seen_at("/lm.xml");
    assert_eq!(
        lm_reqs[1]
            .headers
            .get("if-modified-since")
            .map(String::as_str),
        Some("Mon, 02 Nov 2026 10:00:00 GMT")
    );
    assert_eq!(srv.count("/etag.xml", 304), 1);
    assert_eq!(srv.count("/lm.xml", 304), 1);
    assert!(
        second.stdout().contains("not modified"),
        "{}",
        second.stdout()
    );
    assert!(
        second.stdout().contains("nothing changed"),
        "a 304-only cycle renders nothing: {}",
        second.stdout()
    );
    assert_eq!(mtime(&p, "public/rss.xml"), before, "rss.xml was rewritten");
    assert_eq!(p.read("public/rss.xml"), rss_before);
    assert!(sources_entry(&p, "etag").contains("304 not modified"));
}

#[test]
fn gzip_deflate_and_brotli_bodies_are_decoded_and_the_client_names_itself() {
    let srv = TestServer::start();
    srv.route(
        "/gz.xml",
        Route::ok("application/rss+xml", rss("gz", &["Gzip-Meldung"])).gzip(),
    );
    srv.route(
        "/br.xml",
        Route::ok("application/rss+xml", rss("br", &["Brotli-Meldung"])).brotli(),
    );
    srv.route(
        "/zz.xml",
        Route::ok("application/rss+xml", rss("zz", &["Deflate-Meldung"])).deflate(),
    );
    let p = project(
        &(source("gz", &srv.url("/gz.xml"))
            + &source("br", &srv.url("/br.xml"))
            + &source("zz", &srv.url("/zz.xml"))),
        FAST,
    );
    p.run(&["build"]).success();
    let out = p.read("public/rss.xml");
    for t in ["Gzip-Meldung", "Brotli-Meldung", "Deflate-Meldung"] {
        assert!(out.contains(t), "{t} missing from rss.xml");
    }
    let req = &srv.seen_at("/gz.xml")[0];
    let ae = req
        .headers
        .get("accept-encoding")
        .cloned()
        .unwrap_or_default();
    for enc in ["gzip", "br", "deflate"] {
        assert!(ae.contains(enc), "Accept-Encoding {ae:?} lacks {enc}");
    }
    let ua = req.headers.get("user-agent").cloned().unwrap_or_default();
    assert!(
        ua.contains(&format!("feedwerk/{}", env!("CARGO_PKG_VERSION")))
            && ua.contains("https://www.defus.de/aktuelles/"),
        "User-Agent {ua:?} must name feedwerk, its version and the site"
    );
}

#[test]
fn trickling_partner_is_cut_at_the_total_timeout() {
    let srv = TestServer::start();
    srv.route(
        "/slow.xml",
        Route::ok("application/rss+xml", rss("slow", &["Langsam"]))
            .trickle(Duration::from_millis(100)),
    );
    let p = project(
        &source("slow", &srv.url("/slow.xml")),
        "timeout = \"2s\"\nconnect_timeout = \"1s\"\n",
    );
    let start = Instant::now();
    p.run(&["build"]).success();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(6), "took {took:?}");
    let e = sources_entry(&p, "slow");
    assert!(e.contains("timeout"), "{e}");
    assert!(e.contains("within 2s"), "{e}");
}

#[test]
fn endless_body_is_cut_at_the_size_limit_while_streaming() {
    let srv = TestServer::start();
    srv.route(
        "/huge.xml",
        Route::ok("application/rss+xml", Vec::new()).endless(),
    );
    let p = project(
        &source("huge", &srv.url("/huge.xml")),
        &format!("{FAST}max_body_bytes = 2000000\n"),
    );
    let (run, rss_kib) = p.run_measured(&["build"]);
    run.success();
    let e = sources_entry(&p, "huge");
    assert!(e.contains("larger than 2000000 bytes"), "{e}");
    assert!(rss_kib < 150 * 1024, "peak RSS {rss_kib} KiB");
}

#[test]
fn gzip_bomb_is_cut_by_decompressed_size() {
    let srv = TestServer::start();
    // 20 MB of zeros in 19 KB of gzip.
    let mut bomb = Route::ok(
        "application/rss+xml",
        read_fixture("fetch/gzip-bomb-20mb-zeros.gz"),
    );
    bomb = bomb.header("Content-Encoding", "gzip");
    srv.route("/bomb.xml", bomb);
    let p = project(
        &source("bomb", &srv.url("/bomb.xml")),
        &format!("{FAST}max_body_bytes = 1000000\n"),
    );
    let (run, rss_kib) = p.run_measured(&["build"]);
    run.success();
    let e = sources_entry(&p, "bomb");
    assert!(e.contains("larger than 1000000 bytes"), "{e}");
    assert!(rss_kib < 150 * 1024, "peak RSS {rss_kib} KiB");
}

#[test]
fn redirect_loops_and_long_chains_are_refused() {
    let srv = TestServer::start();
    srv.route("/loop-a", Route::redirect(302, "/loop-b"));
    srv.route("/loop-b", Route::redirect(302, "/loop-a"));
    for i in 0..7 {
        srv.route(
            &format!("/hop{i}"),
            Route::redirect(307, &format!("/hop{}", i + 1)),
        );
    }
    srv.route(
        "/hop7",
        Route::ok("application/rss+xml", rss("hops", &["Angekommen"])),
    );
    for i in 0..4 {
        srv.route(
            &format!("/short{i}"),
            Route::redirect(302, &format!("/short{}", i + 1)),
        );
    }
    srv.route(
        "/short4",
        Route::ok("application/rss+xml", rss("short", &["Kurzer Weg"])),
    );
    let p = project(
        &(source("loop", &srv.url("/loop-a"))
            + &source("hops", &srv.url("/hop0"))
            + &source("short", &srv.url("/short0"))),
        FAST,
    );
    p.run(&["build"]).success();
    assert!(sources_entry(&p, "loop").contains("redirect loop"));
    let hops = sources_entry(&p, "hops");
    assert!(hops.contains("more than 5 redirects"), "{hops}");
    assert!(p.read("public/rss.xml").contains("Kurzer Weg"));
    // Temporary redirects are not reported as moves.
    assert!(!sources_entry(&p, "short").contains("moved permanently"));
}

#[test]
fn permanent_redirect_is_followed_and_reported_as_moved() {
    let srv = TestServer::start();
    srv.route("/old.xml", Route::redirect(301, "/new.xml"));
    srv.route("/old2.xml", Route::redirect(308, "/new2.xml"));
    srv.route(
        "/new.xml",
        Route::ok("application/rss+xml", rss("moved", &["Umgezogen"])),
    );
    srv.route(
        "/new2.xml",
        Route::ok("application/rss+xml", rss("moved2", &["Auch umgezogen"])),
    );
    let p = project(
        &(source("moved", &srv.url("/old.xml")) + &source("moved2", &srv.url("/old2.xml"))),
        FAST,
    );
    let run = p.run(&["build"]);
    run.success();
    assert!(p.read("public/rss.xml").contains("Umgezogen"));
    let want = format!("moved permanently to {}", srv.url("/new.xml"));
    assert!(run.all().contains(&want), "{}", run.all());
    assert!(sources_entry(&p, "moved").contains(&want));
    assert!(sources_entry(&p, "moved2")
        .contains(&format!("moved permanently to {}", srv.url("/new2.xml"))));
}

#[test]
fn gone_source_stops_polling_until_its_url_changes() {
    let srv = TestServer::start();
    srv.route("/gone.xml", Route::status(410));
    srv.route(
        "/fresh.xml",
        Route::ok("application/rss+xml", rss("fresh", &["Neu hier"])),
    );
    let p = project(&source("old", &srv.url("/gone.xml")), FAST);
    p.run(&["build"]).success();
    let e = sources_entry(&p, "old");
    assert!(e.contains("410"), "{e}");
    assert!(e.contains("never (gone)"), "{e}");
    p.run(&["build", "--force"]).success();
    assert_eq!(
        srv.seen_at("/gone.xml").len(),
        1,
        "a gone feed is not polled again"
    );
    // The operator updates the URL: polling resumes.
    p.config(&format!(
        "[fetch]\n{FAST}\n{}",
        source("old", &srv.url("/fresh.xml"))
    ));
    p.run(&["build"]).success();
    assert_eq!(srv.seen_at("/fresh.xml").len(), 1);
    assert!(p.read("public/rss.xml").contains("Neu hier"));
    assert!(!sources_entry(&p, "old").contains("gone"));
}

#[test]
fn retry_after_pauses_the_source_for_build_and_force_overrides() {
    let srv = TestServer::start();
    srv.route(
        "/busy.xml",
        Route::status(429).header("Retry-After", "3600"),
    );
    srv.route(
        "/down.xml",
        Route::status(503).header("Retry-After", "Wed, 21 Oct 2099 07:28:00 GMT"),
    );
    let p = project(
        &(source("busy", &srv.url("/busy.xml")) + &source("down", &srv.url("/down.xml"))),
        FAST,
    );
    p.run(&["build"]).success();
    let e = sources_entry(&p, "busy");
    assert!(e.contains("HTTP 429"), "{e}");
    assert!(e.contains("retry after 3600s"), "{e}");
    let second = p.run(&["build"]);
    second.success();
    assert!(
        second.stdout().contains("backing off"),
        "{}",
        second.stdout()
    );
    assert_eq!(srv.seen_at("/busy.xml").len(), 1);
    assert_eq!(srv.seen_at("/down.xml").len(), 1);
    p.run(&["build", "--force"]).success();
    assert_eq!(srv.seen_at("/busy.xml").len(), 2);
}

#[test]
fn failing_partner_keeps_its_items_and_recovers_by_itself() {
    let srv = TestServer::start();
    srv.route(
        "/p.xml",
        Route::ok(
            "application/rss+xml",
            rss("p", &["Alte Meldung", "Noch eine"]),
        ),
    );
    let p = project(&source("partner", &srv.url("/p.xml")), FAST);
    p.run(&["build"]).success();
    assert!(p.read("public/rss.xml").contains("Alte Meldung"));

    srv.route("/p.xml", Route::status(500));
    let run = p.run(&["build"]);
    run.success();
    assert!(run.stdout().contains("FAILED"), "{}", run.stdout());
    let out = p.read("public/rss.xml");
    assert!(out.contains("Alte Meldung") && out.contains("Noch eine"));
    let e = sources_entry(&p, "partner");
    assert!(e.contains("HTTP 500"), "{e}");
    assert!(e.contains("last error ("), "{e}");
    // Consecutive failures count up (forced: the back-off would otherwise wait).
    p.run(&["build", "--force"]).success();
    let line = sources_entry(&p, "partner");
    let fails: Vec<&str> = line.lines().next().unwrap().split_whitespace().collect();
    assert!(fails.contains(&"2"), "{line}");
    // Still published after repeated failures, and the back-off is shown.
    assert!(p.read("public/rss.xml").contains("Alte Meldung"));
    let paused = p.run(&["build"]);
    assert!(paused.stdout().contains("backing off after 2 failure(s)"));

    srv.route(
        "/p.xml",
        Route::ok(
            "application/rss+xml",
            rss("p", &["Alte Meldung", "Neue Meldung"]),
        ),
    );
    p.run(&["build", "--force"]).success();
    let e = sources_entry(&p, "partner");
    assert!(e.contains("200 ok"), "{e}");
    assert!(!e.contains("last error"), "{e}");
    assert!(p.read("public/rss.xml").contains("Neue Meldung"));
}

#[test]
fn hanging_source_does_not_delay_the_good_one_beyond_its_deadline() {
    let hang = TestServer::start();
    hang.route("/h.xml", Route::hang());
    let good = TestServer::start();
    good.route(
        "/g.xml",
        Route::ok("application/rss+xml", rss("good", &["Gute Nachricht"])),
    );
    let p = project(
        &(source("hanging", &hang.url("/h.xml")) + &source("good", &good.url("/g.xml"))),
        "timeout = \"2s\"\nconnect_timeout = \"1s\"\ndeadline = \"3s\"\n",
    );
    let start = Instant::now();
    p.run(&["build"]).success();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(p.read("public/rss.xml").contains("Gute Nachricht"));
    assert!(sources_entry(&p, "hanging").contains("timeout"));
}

#[test]
fn one_request_at_a_time_per_host_and_the_run_deadline_holds() {
    let srv = TestServer::start();
    let mut sources = String::new();
    for i in 0..4 {
        srv.route(
            &format!("/s{i}.xml"),
            Route {
                delay: Duration::from_millis(300),
                ..Route::ok("application/rss+xml", rss(&format!("s{i}"), &["x"]))
            },
        );
        sources += &source(&format!("s{i}"), &srv.url(&format!("/s{i}.xml")));
    }
    let p = project(&sources, FAST);
    p.run(&["build"]).success();
    assert_eq!(srv.max_concurrent(), 1, "requests to one host overlapped");
    assert_eq!(srv.seen().len(), 4);

    // Behind hanging sources on the same host, the others wait only until the run's
    // deadline, then are skipped (not failed) and fetched next time; another host's
    // source is published meanwhile.
    let slow = TestServer::start();
    let other = TestServer::start();
    other.route(
        "/ok.xml",
        Route::ok("application/rss+xml", rss("ok", &["Pünktlich"])),
    );
    let mut sources = source("ok", &other.url("/ok.xml"));
    for id in ["a", "b", "c"] {
        slow.route(&format!("/{id}.xml"), Route::hang());
        sources += &source(id, &slow.url(&format!("/{id}.xml")));
    }
    let p = project(
        &sources,
        "timeout = \"1s\"\nconnect_timeout = \"1s\"\ndeadline = \"1500ms\"\n",
    );
    let start = Instant::now();
    let run = p.run(&["build"]);
    run.success();
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
    let out = run.stdout();
    assert_eq!(out.matches("FAILED").count(), 1, "{out}");
    assert!(out.contains("cut off by the run's deadline"), "{out}");
    assert!(out.contains("passed while it waited for its host"), "{out}");
    assert!(p.read("public/rss.xml").contains("Pünktlich"));
}

#[test]
fn encodings_come_out_as_correct_utf8() {
    let srv = TestServer::start();
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "latin1",
            "iso-8859-1-declared.xml",
            "application/rss+xml",
            &["Förderung der Prävention", "Straßenbeleuchtung in Köln"],
        ),
        (
            "latin1http",
            "iso-8859-1-undeclared.xml",
            "application/rss+xml; charset=ISO-8859-1",
            &["Übergänge gestalten", "Jugendschutz größer denken"],
        ),
        (
            "cp1252",
            "windows-1252-mislabelled-iso-8859-1.xml",
            "application/rss+xml; charset=iso-8859-1",
            &["„Sichere Städte“ kostet 5 €", "Bürgerdialog – öffentlich"],
        ),
        (
            "utf8mislabel",
            "utf-8-mislabelled-iso-8859-1.xml",
            // Wrong charset on both levels: the bytes are valid UTF-8, which wins.
            "text/xml; charset=iso-8859-1",
            &["Förderaufruf für Kommunen", "Grüße aus Straßburg"],
        ),
        (
            "utf16le",
            "utf-16le-bom.xml",
            "application/xml",
            &["Gewaltprävention an Schulen", "Fußball ohne Gewalt"],
        ),
        (
            "utf16be",
            "utf-16be-no-bom.xml",
            "application/xml",
            &["Öffentlicher Raum", "Nächte sicher gestalten"],
        ),
    ];
    let mut sources = String::new();
    for (id, file, ct, _) in cases {
        srv.route(
            &format!("/{id}.xml"),
            Route::ok(ct, read_fixture(&format!("fetch/{file}"))),
        );
        sources += &source(id, &srv.url(&format!("/{id}.xml")));
    }
    let p = project(&sources, FAST);
    let run = p.run(&["build"]);
    run.success();
    let out = p.read("public/rss.xml");
    let json = p.read("public/feed.json");
    for (id, _, _, titles) in cases {
        for t in *titles {
            let escaped = t.replace('&', "&amp;");
            assert!(
                out.contains(&escaped) && json.contains(t),
                "{id}: {t:?} not in the output\n{}",
                run.stdout()
            );
        }
    }
    assert!(!out.contains("Ã"), "mojibake in the output");
}

#[test]
fn hostile_xml_is_refused_with_bounded_memory() {
    let srv = TestServer::start();
    srv.route(
        "/lol.xml",
        Route::ok(
            "application/rss+xml",
            read_fixture("fetch/billion-laughs.xml"),
        ),
    );
    let deep = format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>deep</title><item><title>t</title><guid>d</guid><description>{}{}</description></item></channel></rss>",
        "<div>".repeat(100_000),
        "</div>".repeat(100_000)
    );
    srv.route("/deep.xml", Route::ok("application/rss+xml", deep));
    srv.route(
        "/ok.xml",
        Route::ok("application/rss+xml", rss("ok", &["Harmlos"])),
    );
    let p = project(
        &(source("lol", &srv.url("/lol.xml"))
            + &source("deep", &srv.url("/deep.xml"))
            + &source("ok", &srv.url("/ok.xml"))),
        FAST,
    );
    let (run, rss_kib) = p.run_measured(&["build"]);
    run.success();
    assert!(sources_entry(&p, "lol").contains("declares entities"));
    assert!(sources_entry(&p, "deep").contains("nested deeper than"));
    let out = p.read("public/rss.xml");
    assert!(out.contains("Harmlos"));
    assert!(!out.contains("lollol"));
    assert!(rss_kib < 150 * 1024, "peak RSS {rss_kib} KiB");
}

#[test]
fn html_page_with_status_200_is_a_clear_error() {
    let srv = TestServer::start();
    srv.route(
        "/wartung",
        Route::ok(
            "text/html; charset=utf-8",
            read_fixture("fetch/html-error-page-200.html"),
        ),
    );
    let p = project(&source("html", &srv.url("/wartung")), FAST);
    p.run(&["build"]).success();
    let e = sources_entry(&p, "html");
    assert!(e.contains("got an HTML page, not a feed"), "{e}");
    assert!(
        e.contains(&srv.url("/wartung")),
        "the error names the URL: {e}"
    );
}

#[test]
fn sources_table_has_every_column() {
    let srv = TestServer::start();
    srv.route(
        "/t.xml",
        Route::ok("application/rss+xml", rss("t", &["Eins", "Zwei", "Drei"])),
    );
    let p = project(&source("tab", &srv.url("/t.xml")), FAST);
    p.run(&["build"]).success();
    let out = p.run(&["sources"]).success().stdout();
    let header = out.lines().next().unwrap();
    for col in [
        "SOURCE",
        "KIND",
        "LAST SUCCESS",
        "LAST STATUS",
        "FAILS",
        "ITEMS",
        "NEXT FETCH",
        "URL",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let row = sources_entry(&p, "tab");
    assert!(row.contains("feed"), "{row}");
    assert!(row.contains("200 ok"), "{row}");
    assert!(row.contains(" 3 "), "items held: {row}");
    assert!(row.contains(&srv.url("/t.xml")), "{row}");
    assert!(row.contains("UTC"), "{row}");
}

/// The issue's acceptance run: good partners beside every fault at once, each bad one on
/// its own server (its own host), one `build`.
#[test]
fn fault_mix_publishes_every_good_source_names_each_fault_and_then_uses_304s() {
    let mut servers = Vec::new();
    let mut sources = String::new();
    let mut add = |id: &str, route: Route| {
        let s = TestServer::start();
        s.route("/feed", route);
        sources += &source(id, &s.url("/feed"));
        servers.push((id.to_owned(), s));
    };
    let xml = "application/rss+xml";
    add(
        "good1",
        Route::ok(xml, rss("good1", &["Gute Eins"])).etag("\"g1\""),
    );
    add(
        "good2",
        Route::ok(xml, rss("good2", &["Gute Zwei"]))
            .last_modified("Mon, 02 Nov 2026 10:00:00 GMT")
            .gzip(),
    );
    add(
        "good3",
        Route::ok(
            "application/rss+xml; charset=iso-8859-1",
            read_fixture("fetch/iso-8859-1-declared.xml"),
        )
        .etag("\"g3\""),
    );
    add("hanging", Route::hang());
    add(
        "trickling",
        Route::ok(xml, rss("t", &["Langsam"])).trickle(Duration::from_millis(200)),
    );
    add("e500", Route::status(500));
    add("e404", Route::status(404));
    add("e410", Route::status(410));
    add("e429", Route::status(429).header("Retry-After", "120"));
    add("loop", Route::redirect(301, "/feed"));
    add("huge", Route::ok(xml, Vec::new()).endless());
    add(
        "bomb",
        Route::ok(xml, read_fixture("fetch/gzip-bomb-20mb-zeros.gz"))
            .header("Content-Encoding", "gzip"),
    );
    add(
        "malformed",
        Route::ok(xml, read_fixture("fetch/malformed-truncated.xml")),
    );
    add(
        "html",
        Route::ok("text/html", read_fixture("fetch/html-error-page-200.html")),
    );
    // Latin-1 bytes, no declaration, served as UTF-8: the label is provably wrong.
    add(
        "charset",
        Route::ok(
            "application/rss+xml; charset=utf-8",
            read_fixture("fetch/iso-8859-1-undeclared.xml"),
        )
        .etag("\"c1\""),
    );
    let p = project(
        &sources,
        "timeout = \"2s\"\nconnect_timeout = \"1s\"\ndeadline = \"3s\"\nmax_body_bytes = 1000000\n",
    );
    let start = Instant::now();
    let (run, rss_kib) = p.run_measured(&["build"]);
    let took = start.elapsed();
    run.success();
    assert!(took < Duration::from_secs(6), "run took {took:?}");
    assert!(rss_kib < 150 * 1024, "peak RSS {rss_kib} KiB");

    let out = p.read("public/rss.xml");
    for t in [
        "Gute Eins",
        "Gute Zwei",
        "Förderung der Prävention",
        "Übergänge gestalten",
    ] {
        assert!(out.contains(t), "{t} missing\n{}", run.stdout());
    }
    let expect = [
        ("hanging", "timeout"),
        ("trickling", "timeout"),
        ("e500", "HTTP 500"),
        ("e404", "HTTP 404"),
        ("e410", "gone"),
        ("e429", "retry after 120s"),
        ("loop", "redirect loop"),
        ("huge", "larger than 1000000 bytes"),
        ("bomb", "larger than 1000000 bytes"),
        ("malformed", "not a feed"),
        ("html", "got an HTML page"),
    ];
    for (id, want) in expect {
        let e = sources_entry(&p, id);
        assert!(e.contains(want), "{id}: want {want:?} in\n{e}");
    }

    // Second run against the unchanged server: conditional requests, answered 304.
    let second = p.run(&["build"]);
    second.success();
    for (id, s) in &servers {
        if ["good1", "good2", "good3", "charset"].contains(&id.as_str()) {
            assert_eq!(s.count("/feed", 304), 1, "{id} was not asked conditionally");
        }
    }
    assert!(
        second.stdout().contains("nothing changed"),
        "{}",
        second.stdout()
    );

    // A good partner starts failing: its earlier items stay published.
    let good1 = &servers[0].1;
    good1.route("/feed", Route::status(503));
    p.run(&["build", "--force"]).success();
    assert!(p.read("public/rss.xml").contains("Gute Eins"));
    assert!(sources_entry(&p, "good1").contains("HTTP 503"));
}

/// Sources are stored in groups, without a savepoint each; a write that fails inside a
/// group rolls the group back, and then every source is stored on its own, so one
/// source the store refuses never takes the others down with it.
#[test]
fn a_store_write_failing_for_one_source_leaves_every_other_source_stored() {
    // `n` items, distinct per source, dated a minute apart.
    fn feed(tag: &str, n: usize) -> String {
        let items: String = (0..n)
            .map(|i| {
                format!(
                    "<item><title>{tag} Meldung {i}</title><link>https://{tag}.example/{i}</link>\
                     <pubDate>Mon, 02 Nov 2026 {:02}:{:02}:00 +0100</pubDate>\
                     <description>Meldung {i} von {tag} über {} Dinge</description></item>",
                    i / 60,
                    i % 60,
                    i * 7
                )
            })
            .collect();
        format!(
            "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>{tag}</title>\
             <link>https://{tag}.example/</link><description>{tag}</description>{items}</channel></rss>"
        )
    }
    let server = TestServer::start();
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
    for n in names {
        server.route(
            &format!("/{n}.xml"),
            Route::ok("application/rss+xml", feed(n, 1)),
        );
    }
    let sources: String = names
        .iter()
        .map(|n| source(n, &server.url(&format!("/{n}.xml"))))
        .collect();
    let p = project(&sources, FAST);
    p.run(&["build"]).success();
    let db = rusqlite::Connection::open(p.path().join("state/feedwerk.sqlite")).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse_c BEFORE INSERT ON items WHEN NEW.source_id = 'c'
         BEGIN SELECT RAISE(ABORT, 'injected fault'); END;",
    )
    .unwrap();
    // Enough items that the store is still writing one source when others arrive.
    for n in names {
        server.route(
            &format!("/{n}.xml"),
            Route::ok("application/rss+xml", feed(n, 300)),
        );
    }
    let out = p.run(&["build"]).all();
    assert!(out.contains("injected fault"), "{out}");
    let held = |src: &str| -> i64 {
        db.query_row(
            "SELECT count(*) FROM items WHERE source_id = ?1",
            [src],
            |r| r.get(0),
        )
        .unwrap()
    };
    for n in names {
        let want = if n == "c" { 1 } else { 300 };
        assert_eq!(held(n), want, "items held for {n}\n{out}");
    }
}

#[test]
fn a_store_write_that_fails_is_a_store_error_not_a_parse_error_and_backs_off() {
    let server = TestServer::start();
    server.route(
        "/ok.xml",
        Route::ok("application/rss+xml", rss("ok", &["Eins"])),
    );
    server.route(
        "/refused.xml",
        Route::ok("application/rss+xml", rss("refused", &["Zwei"])),
    );
    let sources =
        source("ok", &server.url("/ok.xml")) + &source("refused", &server.url("/refused.xml"));
    let p = project(&sources, FAST);
    // Opening the store creates it; then it refuses one source's items. The partner's
    // document is fine: the failure is ours.
    p.run(&["sources"]).success();
    let db = rusqlite::Connection::open(p.path().join("state/feedwerk.sqlite")).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse BEFORE INSERT ON items WHEN NEW.source_id = 'refused'
         BEGIN SELECT RAISE(ABORT, 'injected fault'); END;",
    )
    .unwrap();
    let out = p.run(&["build"]).all();
    assert!(out.contains("injected fault"), "{out}");
    assert!(p.read("public/feed.json").contains("Eins"), "{out}");
    let entry = sources_entry(&p, "refused");
    assert!(entry.contains("store error"), "{entry}");
    assert!(!entry.contains("parse error"), "{entry}");
    assert!(entry.contains("injected fault"), "{entry}");
    assert!(sources_entry(&p, "ok").contains("200 ok"));

    // Counted as a failure: a manual build leaves it alone until its back-off ends,
    // saying why; --force stores it once the store takes it again.
    db.execute_batch("DROP TRIGGER refuse;").unwrap();
    let out = p.run(&["build"]).all();
    assert!(
        out.contains("backing off after 1 failure(s) (last: store error)"),
        "{out}"
    );
    p.run(&["build", "--force"]).success();
    assert!(sources_entry(&p, "refused").contains("200 ok"));
    assert!(p.read("public/feed.json").contains("Zwei"));
}

/// A TLS server on 127.0.0.1 presenting `tests/fixtures/fetch/self-signed-localhost.*`, a
/// certificate for 127.0.0.1 that no system trusts. Counts the handshakes begun and
/// completed; a completed one is answered with a feed.
fn self_signed_https_server() -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    https_server("fetch/self-signed-localhost")
}

/// A TLS server on 127.0.0.1 presenting the certificate and key of the fixtures
/// `<stem>.cert.pem` and `<stem>.key.pem`; otherwise as [`self_signed_https_server`].
fn https_server(stem: &str) -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(&read_fixture(&format!("{stem}.cert.pem")))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(&read_fixture(&format!("{stem}.key.pem"))).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (begun, completed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (b, c) = (begun.clone(), completed.clone());
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(mut tcp) = tcp else { continue };
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
            let mut conn = rustls::ServerConnection::new(config.clone()).unwrap();
            b.fetch_add(1, Ordering::SeqCst);
            while conn.is_handshaking() {
                if conn.complete_io(&mut tcp).is_err() {
                    break;
                }
            }
            if conn.is_handshaking() {
                continue;
            }
            c.fetch_add(1, Ordering::SeqCst);
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut head = [0u8; 4096];
            let _ = tls.read(&mut head);
            let body = rss("tls", &["Geheim über TLS"]);
            let _ = write!(
                tls,
                "HTTP/1.1 200 OK\r\ncontent-type: application/rss+xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.flush();
        }
    });
    (port, begun, completed)
}

/// `https:` partners are verified against the system's root certificates, also when an
/// `http:` URL redirects there (the verifying client is built at the first `https:` hop,
/// not at start-up): a certificate nobody trusts is refused with a message that says so,
/// and nothing from that server is published.
#[test]
fn an_https_partner_with_an_untrusted_certificate_is_refused() {
    let (port, begun, completed) = self_signed_https_server();
    let srv = TestServer::start();
    let https = format!("https://127.0.0.1:{port}/feed.xml");
    srv.route("/to-https", Route::redirect(302, &https));
    srv.route(
        "/plain.xml",
        Route::ok("application/rss+xml", rss("plain", &["Unverschlüsselt"])),
    );
    let p = project(
        &(source("direct", &https)
            + &source("redirected", &srv.url("/to-https"))
            + &source("plain", &srv.url("/plain.xml"))),
        FAST,
    );
    p.run(&["build"]).success();
    for id in ["direct", "redirected"] {
        let e = sources_entry(&p, id);
        assert!(e.contains("connect error"), "{e}");
        assert!(e.to_lowercase().contains("certificate"), "{e}");
    }
    assert!(begun.load(Ordering::SeqCst) >= 2);
    assert_eq!(completed.load(Ordering::SeqCst), 0);
    let rss_out = p.read("public/rss.xml");
    assert!(rss_out.contains("Unverschlüsselt"));
    assert!(!rss_out.contains("Geheim über TLS"));
}

/// The roots an `https:` partner is verified against are the system's, which
/// `SSL_CERT_FILE` / `SSL_CERT_DIR` name where an operator keeps a private CA: a
/// partner whose certificate that CA signed is fetched and published, directly and
/// behind an `http:` redirect (`tests/fixtures/fetch/test-ca.cert.pem` signed
/// `localhost-signed-by-test-ca.cert.pem` for 127.0.0.1).
#[test]
fn an_https_partner_signed_by_the_configured_ca_is_verified_and_published() {
    let (port, _begun, completed) = https_server("fetch/localhost-signed-by-test-ca");
    let srv = TestServer::start();
    let https = format!("https://127.0.0.1:{port}/feed.xml");
    srv.route("/to-https", Route::redirect(302, &https));
    let p = project(
        &(source("direct", &https) + &source("redirected", &srv.url("/to-https"))),
        FAST,
    );
    let no_dir = p.path().join("no-cert-dir");
    let out = p
        .command(&["build"])
        .env(
            "SSL_CERT_FILE",
            crate::support::fixture("fetch/test-ca.cert.pem"),
        )
        .env("SSL_CERT_DIR", &no_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for id in ["direct", "redirected"] {
        let e = sources_entry(&p, id);
        assert!(e.contains("200 ok"), "{e}");
    }
    assert!(completed.load(Ordering::SeqCst) >= 2);
    assert!(p.read("public/rss.xml").contains("Geheim über TLS"));
}

/// A run whose partners are all `http:` never loads the system's root certificates:
/// with none to be found (`SSL_CERT_FILE` and `SSL_CERT_DIR` naming nothing) it builds
/// and publishes as usual. An `https:` partner added to the same configuration fails on
/// its own with the reason, and the `http:` one is still published.
#[test]
fn an_all_http_run_does_not_load_the_root_certificates() {
    let srv = TestServer::start();
    srv.route(
        "/plain.xml",
        Route::ok("application/rss+xml", rss("plain", &["Unverschlüsselt"])),
    );
    let run = |p: &Project| {
        let missing = p.path().join("no-such-roots");
        let out = p
            .command(&["build"])
            .env("SSL_CERT_FILE", missing.join("ca.pem"))
            .env("SSL_CERT_DIR", &missing)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let plain = source("plain", &srv.url("/plain.xml"));
    let p = project(&plain, FAST);
    run(&p);
    assert!(sources_entry(&p, "plain").contains("200 ok"));
    assert!(p.read("public/rss.xml").contains("Unverschlüsselt"));

    let (port, begun, _completed) = https_server("fetch/localhost-signed-by-test-ca");
    let with_https = plain + &source("secure", &format!("https://127.0.0.1:{port}/feed.xml"));
    let p = project(&with_https, FAST);
    run(&p);
    let e = sources_entry(&p, "secure");
    assert!(e.contains("cannot set up TLS"), "{e}");
    assert!(e.contains("No CA certificates"), "{e}");
    assert_eq!(
        begun.load(Ordering::SeqCst),
        0,
        "no connection without roots"
    );
    assert!(p.read("public/rss.xml").contains("Unverschlüsselt"));
}
