//! Publishing for feed readers and partner sites (issue 6): channels and their URLs,
//! standards details, RFC 5005 archives, byte-stable output, WebSub pings, the embed,
//! OPML and HTTP behaviour of `feedwerk run` — all through the real binary.

use std::time::Duration;

use crate::support::{self, Daemon, Project, Route, TestServer};

/// Three local posts (German, tagged) written into the project.
pub(crate) fn write_posts(p: &Project) {
    p.write(
        "feeds/defus/2024-05-02-fachtag-kriminalpraevention.md",
        "+++\ntitle = \"Fachtag Kriminalprävention in Köln\"\ndate = 2024-05-02T10:00:00+02:00\n\
         tags = [\"Kriminalprävention\"]\nauthors = [\"Erika Mustermann\"]\n+++\n\n\
         Der Fachtag brachte Kommunen & Polizei zusammen.\n",
    );
    p.write(
        "feeds/defus/2024-03-14-netzwerktreffen.md",
        "+++\ntitle = \"Netzwerktreffen in Stuttgart\"\ndate = 2024-03-14\n+++\n\n\
         Die Mitglieder trafen sich in Stuttgart.\n",
    );
    p.write(
        "feeds/defus/2024-01-20-jahresbericht.md",
        "+++\ntitle = \"Jahresbericht 2023\"\ndate = 2024-01-20\ntags = [\"Radikalisierung\"]\n+++\n\n\
         Der Jahresbericht ist erschienen.\n",
    );
}

/// A project with three local posts and the Efus partner feed served on 127.0.0.1.
pub(crate) fn project_with_partner(server: &TestServer, extra: &str) -> Project {
    server.route(
        "/efus.xml",
        Route::ok(
            "application/rss+xml; charset=utf-8",
            support::read_fixture("publish/partner-efus-english-with-authors.xml"),
        ),
    );
    let p = Project::new();
    write_posts(&p);
    p.config(&format!(
        r#"{extra}

[tags]
Radikalisierung = ["Radicalisation"]
"Kriminalprävention" = ["Crime prevention"]

[[source]]
id = "defus"
kind = "local"
title = "DEFUS"
path = "feeds/defus"
homepage = "https://www.defus.de/"
language = "de"

[[source]]
id = "efus"
kind = "feed"
title = "Efus"
url = "{}"
homepage = "https://efus.example/"
"#,
        server.url("/efus.xml")
    ));
    p
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[test]
fn every_channel_is_published_in_three_formats_at_stable_urls() {
    let server = TestServer::start();
    let p = project_with_partner(
        &server,
        "[[channel]]\nid = \"praevention\"\ntitle = \"Prävention\"\ntags = [\"Kriminalprävention\"]\nmax_items = 2",
    );
    p.run(&["build"]).success();
    for stem in [
        "sources/defus",
        "sources/efus",
        "tags/kriminalpravention",
        "tags/radikalisierung",
        "lang/de",
        "lang/en",
        "channels/praevention",
    ] {
        for ext in ["rss", "atom", "json"] {
            let path = format!("public/{stem}.{ext}");
            assert!(p.path().join(&path).exists(), "{path} missing");
        }
    }
    for f in [
        "rss.xml",
        "atom.xml",
        "feed.json",
        "index.html",
        "sources.opml",
        "feed.xsl",
        "embed.js",
    ] {
        assert!(p.path().join("public").join(f).exists(), "{f} missing");
    }
    // Combined: all six items; per source: only its own; per tag across sources and
    // languages (the partner's "Crime prevention" maps to the tag); the configured
    // channel honours its filter and its max_items.
    assert_eq!(count(&p.read("public/atom.xml"), "<entry>"), 6);
    assert_eq!(count(&p.read("public/sources/efus.atom"), "<entry>"), 3);
    assert_eq!(
        count(&p.read("public/tags/kriminalpravention.atom"), "<entry>"),
        3
    );
    assert_eq!(
        count(&p.read("public/channels/praevention.atom"), "<entry>"),
        2
    );
    let json: serde_json::Value = serde_json::from_str(&p.read("public/lang/en.json")).unwrap();
    assert_eq!(json["items"].as_array().unwrap().len(), 3);
}

#[test]
fn every_feed_names_its_real_language() {
    let server = TestServer::start();
    let p = project_with_partner(&server, "");
    p.run(&["build"]).success();
    assert!(p
        .read("public/sources/efus.rss")
        .contains("<language>en</language>"));
    assert!(p
        .read("public/sources/efus.atom")
        .contains("xml:lang=\"en\""));
    assert!(p
        .read("public/lang/en.json")
        .contains("\"language\": \"en\""));
    assert!(p
        .read("public/sources/defus.rss")
        .contains("<language>de</language>"));
    assert!(p.read("public/lang/de.atom").contains("xml:lang=\"de\""));
}

#[test]
fn rss_uses_guid_dc_creator_content_encoded_and_rfc822_dates() {
    let server = TestServer::start();
    let p = project_with_partner(&server, "");
    p.run(&["build"]).success();
    let rss = p.read("public/rss.xml");
    assert!(rss.contains(r#"<atom:link href="https://www.defus.de/aktuelles/rss.xml" rel="self" type="application/rss+xml"/>"#));
    // Our IDs are tag: URIs, not links: isPermaLink must say so.
    assert_eq!(count(&rss, "<guid isPermaLink=\"false\">tag:"), 6);
    assert!(rss.contains("<content:encoded><![CDATA[<p>Local and regional authorities"));
    // A name goes to dc:creator; <author> only where an e-mail address is known.
    assert!(rss.contains("<dc:creator>Erika Mustermann</dc:creator>"));
    assert!(rss.contains("<dc:creator>Jane Doe</dc:creator>"));
    assert!(rss.contains("<dc:creator>Efus Press Office</dc:creator>"));
    assert!(rss.contains("<author>press@efus.example (Efus Press Office)</author>"));
    assert_eq!(count(&rss, "<author>"), 1);
    assert!(rss.contains("<pubDate>Tue, 04 Jun 2024 07:00:00 +0000</pubDate>"));
    assert!(rss.contains("<source url=\"http://127.0.0.1:"));
    let atom = p.read("public/atom.xml");
    assert_eq!(
        count(&atom, "<source>"),
        3,
        "partner items carry atom:source"
    );
    assert!(atom.contains("<?xml-stylesheet type=\"text/xsl\" href=\"feed.xsl\"?>"));
    assert!(p
        .read("public/sources/efus.atom")
        .contains("<?xml-stylesheet type=\"text/xsl\" href=\"../feed.xsl\"?>"));
}

#[test]
fn a_cycle_that_changed_nothing_rewrites_nothing_and_readers_keep_getting_304() {
    let server = TestServer::start();
    let p = project_with_partner(&server, "");
    let first = p.run(&["build"]).success().stdout();
    assert!(first.contains("0 unchanged"), "{first}");
    let before = p.read("public/atom.xml");
    let mtime = |rel: &str| {
        std::fs::metadata(p.path().join(rel))
            .unwrap()
            .modified()
            .unwrap()
    };
    let m0 = mtime("public/atom.xml");
    std::thread::sleep(Duration::from_millis(1100));
    let second = p.run(&["build"]).success().stdout();
    assert!(second.contains("(0 written,"), "{second}");
    assert_eq!(p.read("public/atom.xml"), before);
    assert_eq!(mtime("public/atom.xml"), m0);

    let d = Daemon::start(&p);
    let r = d.get("/atom.xml", &[]);
    assert_eq!(r.status, 200);
    let etag = r.header("etag").unwrap().to_owned();
    let lm = r.header("last-modified").unwrap().to_owned();
    drop(d);
    // Another build, a restarted server: the reader's validators still match.
    p.run(&["build"]).success();
    let d = Daemon::start(&p);
    let r = d.get("/atom.xml", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304, "{:?}", r.headers);
    assert!(r.body.is_empty());
    let r = d.get("/atom.xml", &[("If-Modified-Since", &lm)]);
    assert_eq!(r.status, 304);

    // A new post changes the feed: new ETag, and the feed-level date moves.
    p.write(
        "feeds/defus/2024-06-10-neu.md",
        "+++\ntitle = \"Neue Meldung\"\ndate = 2024-06-10\n+++\n\nNeu.\n",
    );
    p.run(&["build"]).success();
    let after = p.read("public/atom.xml");
    assert_ne!(after, before);
    let updated = |s: &str| s.split("<updated>").nth(1).unwrap()[..19].to_owned();
    assert_ne!(updated(&after), updated(&before));
}

#[test]
fn http_conditional_get_head_compression_cors_and_plain_404() {
    let server = TestServer::start();
    let p = project_with_partner(&server, "");
    p.run(&["build"]).success();
    let d = Daemon::start(&p);

    let r = d.get("/rss.xml", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/rss+xml; charset=utf-8")
    );
    assert_eq!(r.header("vary"), Some("Accept-Encoding, Accept"));
    // A browser navigating to the feed gets the same bytes as XML, so it applies the
    // XSLT instead of offering a download; feed readers keep the feed type.
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let b = d.get("/rss.xml", &[("Accept", browser)]);
    assert_eq!(
        b.header("content-type"),
        Some("application/xml; charset=utf-8")
    );
    assert_eq!(b.body, r.body);
    assert_ne!(b.header("etag"), r.header("etag"));
    let reader = "application/rss+xml, application/atom+xml, text/html;q=0.1";
    let fr = d.get("/rss.xml", &[("Accept", reader)]);
    assert_eq!(
        fr.header("content-type"),
        Some("application/rss+xml; charset=utf-8")
    );
    let xsl = d.get("/feed.xsl", &[]);
    assert_eq!(xsl.status, 200);
    assert!(xsl.text().contains("Dies ist ein Newsfeed"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r.header("cache-control").unwrap().contains("max-age="));
    assert!(r.header("last-modified").is_some());
    let plain_len = r.body.len();

    let h = support::http_request(d.addr, "HEAD", "/rss.xml", &[]);
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert_eq!(
        h.header("content-length"),
        Some(plain_len.to_string().as_str())
    );
    assert_eq!(h.header("etag"), r.header("etag"));

    for (accept, coding) in [
        ("gzip", "gzip"),
        ("gzip, br", "br"),
        ("br;q=0, gzip", "gzip"),
    ] {
        let c = d.get("/rss.xml", &[("Accept-Encoding", accept)]);
        assert_eq!(c.header("content-encoding"), Some(coding), "{accept}");
        assert!(c.body.len() < plain_len);
        assert_ne!(
            c.header("etag"),
            r.header("etag"),
            "each encoding has its own ETag"
        );
        let again = d.get(
            "/rss.xml",
            &[
                ("Accept-Encoding", accept),
                ("If-None-Match", c.header("etag").unwrap()),
            ],
        );
        assert_eq!(again.status, 304);
    }
    let gz = d.get("/rss.xml", &[("Accept-Encoding", "gzip")]);
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&gz.body[..]),
        &mut unzipped,
    )
    .unwrap();
    assert_eq!(unzipped, r.body);

    let j = d.get("/feed.json", &[]);
    assert_eq!(
        j.header("content-type"),
        Some("application/feed+json; charset=utf-8")
    );
    assert_eq!(j.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        d.get("/", &[]).header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        d.get("/sources.opml", &[]).header("content-type"),
        Some("text/x-opml; charset=utf-8")
    );

    // No directory listing, no way out of the catalog, a plain 404.
    for path in [
        "/sources/",
        "/sources",
        "/../config.toml",
        "/%2e%2e/config.toml",
        "/sources/../../config.toml",
        "/..%2f..%2fconfig.toml",
        "/state/feedwerk.sqlite",
        "/public/rss.xml",
        "/rss.xml.gz",
    ] {
        let r = d.get(path, &[]);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(r.text(), "404 Not Found\n");
    }
    let post = support::http_request(d.addr, "POST", "/rss.xml", &[("Content-Length", "0")]);
    assert_eq!(post.status, 405);
}

/// `body` decoded from `coding` (`gzip` or `br`).
fn decompress(coding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body), &mut out)
                .expect("valid gzip");
        }
        "br" => {
            brotli::BrotliDecompress(&mut &body[..], &mut out).expect("valid brotli");
        }
        other => panic!("unknown coding {other}"),
    }
    out
}

fn partner_story(title: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Partner</title><link>https://partner.example/</link>
<description>d</description><language>en</language>
<item><title>{title}</title><link>https://partner.example/1</link><guid>p-1</guid>
<pubDate>Mon, 03 Jun 2024 10:00:00 +0200</pubDate>
<description>{}</description></item>
</channel></rss>"#,
        "The city council adopted the new budget for schools and cycle lanes. ".repeat(8)
    )
}

/// A narrow document (here a source's channel) is published without `.gz`/`.br`; the
/// server compresses it on the first request that accepts an encoding and caches that.
/// Each variant has its own ETag and answers 304s, and when the document changes, the
/// variant of its old bytes is never sent again.
#[test]
fn a_narrow_document_is_compressed_on_request_and_a_changed_one_never_gets_the_old_variant() {
    let server = TestServer::start();
    let route =
        |title: &str, etag: &str| Route::ok("application/rss+xml", partner_story(title)).etag(etag);
    server.route("/p.xml", route("First story", "\"p1\""));
    let p = Project::new();
    p.config(&format!(
        "[[source]]\nid = \"partner\"\nkind = \"feed\"\ntitle = \"Partner\"\nurl = \"{}\"\n",
        server.url("/p.xml")
    ));
    p.publish_key("schedule", Some("\"* * * * * *\""));
    p.run(&["build"]).success();
    let has = |rel: &str| p.path().join("public").join(rel).exists();
    for ext in ["rss", "atom", "json"] {
        let doc = format!("sources/partner.{ext}");
        assert!(has(&doc), "{doc}");
        assert!(
            !has(&format!("{doc}.gz")) && !has(&format!("{doc}.br")),
            "{doc}"
        );
    }
    // Front-door documents keep their precompressed copies.
    assert!(has("rss.xml.gz") && has("rss.xml.br"));

    let d = Daemon::start(&p);
    let path = "/sources/partner.atom";
    let plain = d.get(path, &[]);
    assert_eq!(plain.status, 200);
    assert!(plain.text().contains("First story"));
    assert_eq!(plain.header("content-encoding"), None);
    let etag = plain.header("etag").unwrap().to_owned();
    let mut old_tags = Vec::new();
    for (accept, coding, suffix) in [("br", "br", "-br"), ("gzip", "gzip", "-gz")] {
        // The first request makes the variant, the second is answered from the cache.
        for _ in 0..2 {
            let c = d.get(path, &[("Accept-Encoding", accept)]);
            assert_eq!(c.status, 200);
            assert_eq!(c.header("content-encoding"), Some(coding));
            assert_eq!(c.header("vary"), Some("Accept-Encoding, Accept"));
            assert_eq!(decompress(coding, &c.body), plain.body, "{coding}");
            assert!(c.body.len() < plain.body.len());
            let tag = c.header("etag").unwrap().to_owned();
            assert_eq!(tag, format!("{}{suffix}\"", etag.trim_end_matches('"')));
            let again = d.get(
                path,
                &[("Accept-Encoding", accept), ("If-None-Match", &tag)],
            );
            assert_eq!(again.status, 304, "{coding}");
            assert!(again.body.is_empty());
            assert_eq!(again.header("etag"), Some(tag.as_str()));
            let head = support::http_request(d.addr, "HEAD", path, &[("Accept-Encoding", accept)]);
            assert_eq!(head.status, 200);
            assert_eq!(head.header("content-encoding"), Some(coding));
            assert_eq!(
                head.header("content-length"),
                Some(c.body.len().to_string().as_str())
            );
            old_tags.push(tag);
        }
    }
    // The identity ETag does not match a compressed variant, nor the other way round.
    let cross = d.get(path, &[("Accept-Encoding", "br"), ("If-None-Match", &etag)]);
    assert_eq!(cross.status, 200);

    server.route("/p.xml", route("Second story", "\"p2\""));
    let changed = support::wait_for(Duration::from_secs(30), || {
        let r = d.get(path, &[]);
        r.text().contains("Second story").then_some(r)
    })
    .expect("the daemon republished the changed partner");
    for (accept, coding) in [("br", "br"), ("gzip", "gzip")] {
        for inm in [None, Some(old_tags[0].as_str()), Some(old_tags[2].as_str())] {
            let mut h = vec![("Accept-Encoding", accept)];
            h.extend(inm.map(|t| ("If-None-Match", t)));
            let c = d.get(path, &h);
            assert_eq!(c.status, 200, "{coding} {inm:?}");
            let body = decompress(coding, &c.body);
            assert_eq!(body, changed.body, "{coding}: the variant of the new bytes");
            assert!(!old_tags.contains(&c.header("etag").unwrap().to_owned()));
        }
    }
}

#[test]
fn archives_page_through_the_whole_history_and_full_pages_never_change() {
    let server = TestServer::start();
    let p = project_with_partner(&server, "");
    p.publish_key("max_items", Some("2"))
        .publish_key("archive_page_size", Some("2"));
    p.run(&["build"]).success();
    let d = Daemon::start(&p);

    // Follow prev-archive from the subscription document to the oldest page.
    let sub = d.get("/atom.xml", &[]).text();
    assert_eq!(
        count(&sub, "<entry>"),
        2,
        "the subscription document stays small"
    );
    let mut ids: Vec<String> = entry_ids(&sub);
    let mut next = link(&sub, "prev-archive");
    let mut pages = 0;
    while let Some(url) = next {
        let path = url
            .strip_prefix("https://www.defus.de/aktuelles")
            .unwrap()
            .to_owned();
        let r = d.get(&path, &[]);
        assert_eq!(r.status, 200, "{path}");
        let page = r.text();
        assert!(page.contains("<fh:archive/>"), "{path}");
        assert_eq!(
            link(&page, "current").as_deref(),
            Some("https://www.defus.de/aktuelles/atom.xml")
        );
        let cc = r.header("cache-control").unwrap();
        if link(&page, "next-archive").is_some() {
            assert!(cc.contains("immutable"), "{path}: {cc}");
        }
        ids.extend(entry_ids(&page));
        next = link(&page, "prev-archive");
        pages += 1;
    }
    assert_eq!(pages, 3, "six items, two per page");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "every item is reachable: {ids:?}");
    drop(d);

    // A full page with a successor is sealed: new posts and a rebuild leave it as is.
    let page1 = p.read("public/archive/1.atom");
    let m1 = std::fs::metadata(p.path().join("public/archive/1.atom"))
        .unwrap()
        .modified()
        .unwrap();
    for i in 1..=3 {
        p.write(
            &format!("feeds/defus/2024-07-0{i}-neu.md"),
            &format!("+++\ntitle = \"Neu {i}\"\ndate = 2024-07-0{i}\n+++\n\nNeu.\n"),
        );
    }
    p.run(&["build"]).success();
    assert_eq!(p.read("public/archive/1.atom"), page1);
    assert_eq!(
        std::fs::metadata(p.path().join("public/archive/1.atom"))
            .unwrap()
            .modified()
            .unwrap(),
        m1
    );
    assert!(p.path().join("public/archive/4.atom").exists());
    assert!(p
        .read("public/archive/3.atom")
        .contains("rel=\"next-archive\""));
    assert!(p.read("public/archive/2.rss").contains("<fh:archive"));
}

/// `publish.archives`: by default only the combined feed keeps archive pages (every
/// item is in it once); `"all"` adds every channel's, and going back removes the
/// per-channel pages while their subscription documents stay.
#[test]
fn only_the_combined_feed_keeps_archive_pages_unless_every_channel_is_asked_for() {
    let server = TestServer::start();
    let p = project_with_partner(&server, "");
    p.publish_key("archive_page_size", Some("2"));
    let set = |archives: &str| {
        p.publish_key("archives", Some(&format!("\"{archives}\"")));
    };
    let has = |rel: &str| p.path().join("public").join(rel).exists();
    p.run(&["build"]).success();
    assert!(has("archive/1.atom") && !has("archive/1.rss.br"));
    assert!(has("sources/efus.atom"));
    assert!(
        !has("sources/efus/archive"),
        "no per-source archive by default"
    );
    assert!(!p.read("public/sources/efus.atom").contains("prev-archive"));
    assert!(p.read("public/atom.xml").contains("prev-archive"));

    set("all");
    p.run(&["build"]).success();
    assert!(has("sources/efus/archive/1.atom") && !has("sources/efus/archive/1.atom.gz"));
    assert!(p.read("public/sources/efus.atom").contains("prev-archive"));

    set("combined");
    let out = p.run(&["build"]).success().stdout();
    assert!(!has("sources/efus/archive"), "{out}");
    assert!(has("sources/efus.atom") && has("archive/1.atom"));
    assert!(!p.read("public/sources/efus.atom").contains("prev-archive"));

    set("none");
    p.run(&["build"]).success();
    assert!(!p.read("public/atom.xml").contains("prev-archive"));
    assert!(!has("archive"), "the combined archive is removed too");
    set("some");
    let bad = p.run(&["check"]);
    assert_ne!(bad.code(), Some(0));
    assert!(bad.all().contains("archives"), "{}", bad.all());
}

/// A sealed archive page is served from its files, not held in the daemon's memory:
/// the same bytes, validators and headers as any published document, 304s without
/// reading it, and a file changed behind the daemon's back never goes out under the
/// published validators.
#[test]
fn sealed_archive_pages_are_served_from_their_files_with_validators_and_304s() {
    let server = TestServer::start();
    let p = project_with_partner(&server, "");
    p.publish_key("max_items", Some("2"))
        .publish_key("archive_page_size", Some("2"));
    p.run(&["build"]).success();
    let file = |rel: &str| std::fs::read(p.path().join("public").join(rel)).unwrap();
    let etag_of = |b: &[u8]| format!("\"{}\"", &blake3::hash(b).to_hex()[..20]);
    let with_suffix = |etag: &str, s: &str| format!("{}{s}\"", etag.trim_end_matches('"'));

    let d = Daemon::start(&p);
    let page = file("archive/1.atom");
    let r = d.get("/archive/1.atom", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, page);
    let etag = etag_of(&page);
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(
        r.header("content-type"),
        Some("application/atom+xml; charset=utf-8")
    );
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(r.header("vary"), Some("Accept-Encoding, Accept"));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        r.header("content-length"),
        Some(page.len().to_string().as_str())
    );
    let lm = r.header("last-modified").unwrap().to_owned();
    // The same headers as a document held in memory (the newest page is not sealed).
    let names = |r: &support::HttpResponse| {
        let mut n: Vec<String> = r.headers.keys().filter(|k| *k != "date").cloned().collect();
        n.sort();
        n
    };
    let newest = d.get("/archive/3.atom", &[]);
    assert_eq!(newest.status, 200);
    assert!(newest
        .header("cache-control")
        .unwrap()
        .contains("max-age=300"));
    assert_eq!(names(&r), names(&newest));

    // Archive pages are narrow: no compressed files, the server compresses on request.
    assert!(!p.path().join("public/archive/1.atom.gz").exists());
    assert!(!p.path().join("public/archive/1.atom.br").exists());
    for (accept, coding, ext) in [("gzip", "gzip", "gz"), ("gzip, br", "br", "br")] {
        let c = d.get("/archive/1.atom", &[("Accept-Encoding", accept)]);
        assert_eq!(c.status, 200);
        assert_eq!(c.header("content-encoding"), Some(coding));
        assert_eq!(decompress(coding, &c.body), page);
        let tag = with_suffix(&etag, &format!("-{ext}"));
        assert_eq!(c.header("etag"), Some(tag.as_str()));
        let again = d.get(
            "/archive/1.atom",
            &[("Accept-Encoding", accept), ("If-None-Match", &tag)],
        );
        assert_eq!(again.status, 304);
        assert!(again.body.is_empty());
    }

    let h = support::http_request(d.addr, "HEAD", "/archive/1.atom", &[]);
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert_eq!(
        h.header("content-length"),
        Some(page.len().to_string().as_str())
    );
    assert_eq!(h.header("etag"), Some(etag.as_str()));

    let r = d.get("/archive/1.atom", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304, "{:?}", r.headers);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(
        d.get("/archive/1.atom", &[("If-Modified-Since", &lm)])
            .status,
        304
    );
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let b = d.get("/archive/1.atom", &[("Accept", browser)]);
    assert_eq!(
        b.header("content-type"),
        Some("application/xml; charset=utf-8")
    );
    assert_eq!(b.body, page);
    assert_eq!(b.header("etag"), Some(with_suffix(&etag, "-x").as_str()));
    drop(d);

    // A restarted daemon finds the page sealed on disk: same validators.
    let d = Daemon::start(&p);
    let r = d.get("/archive/1.atom", &[]);
    assert_eq!(r.body, page);
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("last-modified"), Some(lm.as_str()));
    assert_eq!(d.get("/archive/1.rss", &[]).body, file("archive/1.rss"));

    // Someone edits the file behind the daemon's back: what goes out is the file as it
    // is now, with an ETag of those bytes, never the published validators. (A client
    // still holding the published page gets its 304: that is answered from the catalog
    // without reading the file.)
    let edited = String::from_utf8(page.clone())
        .unwrap()
        .replace("</feed>", "<!-- edited --></feed>");
    p.write("public/archive/1.atom", &edited);
    let r = d.get("/archive/1.atom", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), edited);
    assert_eq!(r.header("etag"), Some(etag_of(edited.as_bytes()).as_str()));
    support::wait_for(Duration::from_secs(10), || {
        d.log().contains("changed on disk").then_some(())
    })
    .unwrap_or_else(|| panic!("the edit is not logged:\n{}", d.log()));
}

fn entry_ids(atom: &str) -> Vec<String> {
    atom.split("<entry>")
        .skip(1)
        .map(|e| {
            e.split("<id>")
                .nth(1)
                .unwrap()
                .split("</id>")
                .next()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn link(atom: &str, rel: &str) -> Option<String> {
    atom.split("<link ").skip(1).find_map(|l| {
        let l = l.split("/>").next().unwrap();
        l.contains(&format!("rel=\"{rel}\"")).then(|| {
            l.split("href=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .to_owned()
        })
    })
}

#[test]
fn websub_hub_is_pinged_only_after_a_publish_that_changed_a_feed() {
    let server = TestServer::start();
    let hub = TestServer::start();
    hub.route("/hub", Route::status(204));
    let p = project_with_partner(&server, "");
    let cfg = p.read("config.toml").replace(
        "max_items = 50\n",
        &format!("max_items = 50\nwebsub_hub = \"{}\"\n", hub.url("/hub")),
    );
    p.write("config.toml", &cfg);
    p.run(&["build"]).success();
    let rss = p.read("public/rss.xml");
    assert!(rss.contains(&format!(
        "<atom:link href=\"{}\" rel=\"hub\"/>",
        hub.url("/hub")
    )));
    assert!(p
        .read("public/atom.xml")
        .contains(&format!("<link href=\"{}\" rel=\"hub\"/>", hub.url("/hub"))));
    assert!(p.read("public/feed.json").contains("\"type\": \"WebSub\""));

    let pings = hub.seen_at("/hub");
    let bodies: Vec<String> = pings
        .iter()
        .map(|s| String::from_utf8_lossy(&s.body).into_owned())
        .collect();
    assert!(pings.iter().all(|s| s.method == "POST"
        && s.headers.get("content-type").map(String::as_str)
            == Some("application/x-www-form-urlencoded")));
    assert!(
        bodies.contains(
            &"hub.mode=publish&hub.url=https%3A%2F%2Fwww.defus.de%2Faktuelles%2Fatom.xml"
                .to_owned()
        ),
        "{bodies:?}"
    );
    assert!(bodies.contains(
        &"hub.mode=publish&hub.url=https%3A%2F%2Fwww.defus.de%2Faktuelles%2Fsources%2Fefus.rss"
            .to_owned()
    ));
    assert!(
        bodies.iter().all(|b| !b.contains("archive")),
        "archive pages are not topics"
    );

    // Nothing changed: no ping.
    p.run(&["build"]).success();
    assert_eq!(hub.seen_at("/hub").len(), pings.len());

    // One new local post: the combined, the per-source and the language feeds change.
    p.write(
        "feeds/defus/2024-06-10-neu.md",
        "+++\ntitle = \"Neu\"\ndate = 2024-06-10\n+++\n\nNeu.\n",
    );
    p.run(&["build"]).success();
    let new: Vec<String> = hub.seen_at("/hub")[pings.len()..]
        .iter()
        .map(|s| String::from_utf8_lossy(&s.body).into_owned())
        .collect();
    assert!(
        new.iter().any(|b| b.ends_with("sources%2Fdefus.atom")),
        "{new:?}"
    );
    assert!(new.iter().all(|b| !b.contains("sources%2Fefus")), "{new:?}");
}

#[test]
fn embed_lists_the_latest_items_and_validates_its_parameters() {
    let server = TestServer::start();
    let p = project_with_partner(&server, "");
    p.run(&["build"]).success();
    let d = Daemon::start(&p);
    let r = d.get("/embed?n=3", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));
    assert!(r.header("x-frame-options").is_none(), "must be frameable");
    let html = r.text();
    assert_eq!(count(&html, "<li>"), 3);
    assert!(html.contains("<base target=\"_blank\">"));
    assert!(!html.contains("<script"));
    assert!(!has_inline_handler(&html), "no inline event handlers");
    let again = d.get(
        "/embed?n=3",
        &[("If-None-Match", r.header("etag").unwrap())],
    );
    assert_eq!(again.status, 304);

    let efus = d.get("/embed?channel=sources%2Fefus&n=50", &[]).text();
    assert_eq!(count(&efus, "<li>"), 3);
    assert!(efus.contains("Efus General Assembly in Nice"));
    assert!(!efus.contains("Jahresbericht"));
    assert_eq!(
        count(&d.get("/embed", &[]).text(), "<li>"),
        5,
        "five by default"
    );

    for bad in [
        "/embed?n=0",
        "/embed?n=51",
        "/embed?n=x",
        "/embed?channel=nope",
        "/embed?channel=../config",
        "/embed?n=1&n=2",
    ] {
        let r = d.get(bad, &[]);
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.text().starts_with("400 Bad Request: "), "{bad}");
    }

    let js = d.get("/embed.js", &[]);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    let js = js.text();
    assert!(
        !js.contains("innerHTML") && !js.contains("insertAdjacentHTML") && !js.contains("eval(")
    );
    assert!(js.contains("textContent"));
    assert!(
        js.contains("\"Europe/Berlin\""),
        "the site's zone is filled in"
    );
}

#[test]
fn opml_lists_every_source_with_feed_and_site() {
    let server = TestServer::start();
    let p = project_with_partner(&server, "");
    p.run(&["build"]).success();
    let opml = p.read("public/sources.opml");
    assert!(opml.contains("<opml version=\"2.0\">"));
    assert!(opml.contains(&format!(
        "<outline type=\"rss\" text=\"Efus\" title=\"Efus\" xmlUrl=\"{}\" htmlUrl=\"https://efus.example/\"/>",
        server.url("/efus.xml")
    )));
    assert!(opml.contains(
        "<outline type=\"rss\" text=\"DEFUS\" title=\"DEFUS\" xmlUrl=\"https://www.defus.de/aktuelles/sources/defus.atom\" htmlUrl=\"https://www.defus.de/\" language=\"de\"/>"
    ));
}

#[test]
fn news_page_is_german_and_announces_every_format() {
    let server = TestServer::start();
    let p = project_with_partner(&server, "");
    p.run(&["build"]).success();
    let html = p.read("public/index.html");
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"de\">"));
    assert!(html.contains("name=\"viewport\""));
    for (t, href) in [
        (
            "application/rss+xml",
            "https://www.defus.de/aktuelles/rss.xml",
        ),
        (
            "application/atom+xml",
            "https://www.defus.de/aktuelles/atom.xml",
        ),
        (
            "application/feed+json",
            "https://www.defus.de/aktuelles/feed.json",
        ),
    ] {
        assert!(
            html.contains(&format!("<link rel=\"alternate\" type=\"{t}\"")) && html.contains(href),
            "{t}"
        );
    }
    assert!(html.contains("Abonnieren"));
    assert!(html.contains("<main>"));
    assert!(
        html.contains("lang=\"en\""),
        "English items are marked as such"
    );
}

/// ` onclick=`, ` onerror=` …: an attribute that runs script.
fn has_inline_handler(html: &str) -> bool {
    html.match_indices(" on").any(|(i, _)| {
        let rest = &html[i + 3..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        !name.is_empty() && rest[name.len()..].starts_with('=')
    })
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn published_files_are_as_readable_as_the_umask_allows() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new();
    write_posts(&p);
    p.config(crate::import::LOCAL_ONLY);
    // A web server reading the output directory as another user (group) sees what the
    // operator's umask allows, not tempfile's owner-only 0600.
    for (umask, want) in [("022", 0o644), ("027", 0o640)] {
        let _ = std::fs::remove_dir_all(p.path().join("public"));
        let _ = std::fs::remove_dir_all(p.path().join("state"));
        let out = p
            .command_under_umask(umask, &["build"])
            .output()
            .expect("run feedwerk under sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let files = files_under(&p.path().join("public"));
        assert!(
            files.iter().any(|f| f.ends_with("atom.xml.gz")),
            "{files:?}"
        );
        for f in files {
            let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, want, "umask {umask}: {} is {mode:o}", f.display());
        }
    }
}
