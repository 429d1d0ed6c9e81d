//! RFC 5005 archives through `build` and the published files: the subscription
//! document and the pages reachable through `prev-archive` hold every item, each page
//! once, in the order items entered the feed, and sealed pages never change.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::support::Project;

const BASE: &str = "https://www.defus.de/aktuelles/";

/// One Atom document as published: entry titles and the RFC 5005 links.
struct Doc {
    titles: Vec<String>,
    prev: Option<String>,
    next: Option<String>,
    bytes: Vec<u8>,
}

fn read_doc(p: &Project, rel: &str) -> Doc {
    let bytes =
        std::fs::read(p.path().join("public").join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let feed = feed_rs::parser::parse(&bytes[..]).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let link = |rel: &str| {
        feed.links
            .iter()
            .find(|l| l.rel.as_deref() == Some(rel))
            .map(|l| {
                l.href
                    .strip_prefix(BASE)
                    .expect("under base_url")
                    .to_owned()
            })
    };
    Doc {
        titles: feed
            .entries
            .iter()
            .map(|e| e.title.as_ref().expect("title").content.clone())
            .collect(),
        prev: link("prev-archive"),
        next: link("next-archive"),
        bytes,
    }
}

/// Walks `atom.xml` and its `prev-archive` chain; returns the subscription document's
/// titles and the pages, newest first, as (path, document).
fn walk(p: &Project) -> (Vec<String>, Vec<(String, Doc)>) {
    let sub = read_doc(p, "atom.xml");
    let mut pages = Vec::new();
    let mut next = sub.prev.clone();
    while let Some(path) = next {
        assert!(
            pages.iter().all(|(seen, _)| *seen != path),
            "prev-archive loops at {path}"
        );
        let doc = read_doc(p, &path);
        assert!(
            p.path()
                .join("public")
                .join(path.replace(".atom", ".rss"))
                .exists(),
            "{path}: no RSS twin"
        );
        next = doc.prev.clone();
        pages.push((path, doc));
    }
    (sub.titles, pages)
}

fn post(p: &Project, n: u32) {
    // Dates go up and down, so the date order of the subscription document differs
    // from the order items entered the feed.
    let day = 1 + (n * 7919) % 700;
    let date = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + chrono::Days::new(day as u64);
    p.write(
        &format!("feeds/defus/{date}-beitrag-{n}.md"),
        &format!("+++\ntitle = \"Beitrag {n}\"\ndate = {date}\n+++\n\nText von Beitrag Nummer {n}, eigens geschrieben.\n"),
    );
}

/// For many combinations of item count, `max_items` and `archive_page_size`, over
/// builds that add items: every post is in the subscription document or in exactly one
/// page of the chain, pages follow the order posts entered the feed, and a page once
/// sealed (linking a successor) keeps its bytes.
#[test]
fn the_archive_chain_holds_every_item_once_in_feed_order_and_sealed_pages_never_change() {
    // (max_items, archive_page_size, posts added per build)
    let cases: [(u32, u32, &[u32]); 7] = [
        (50, 100, &[160]),
        (50, 100, &[30, 30, 100, 41]),
        (2, 2, &[1, 2, 3, 4]),
        (3, 7, &[5, 2, 9, 1]),
        (5, 3, &[4, 0, 6, 13]),
        (10, 1, &[3, 9]),
        (1, 4, &[8, 1, 3, 4]),
    ];
    for (max_items, page_size, steps) in cases {
        let p = Project::new();
        p.config("[[source]]\nid = \"defus\"\nkind = \"local\"\npath = \"feeds/defus\"\n");
        p.publish_key("max_items", Some(&max_items.to_string()))
            .publish_key("archive_page_size", Some(&page_size.to_string()))
            .publish_key("per_source", Some("false"))
            .publish_key("per_tag", Some("false"))
            .publish_key("per_language", Some("false"));
        let mut added_in: HashMap<String, usize> = HashMap::new();
        let mut written = 0;
        let mut sealed: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for (build, add) in steps.iter().enumerate() {
            for _ in 0..*add {
                written += 1;
                post(&p, written);
                added_in.insert(format!("Beitrag {written}"), build);
            }
            p.run(&["build"]).success();
            let case = format!(
                "max_items {max_items}, page size {page_size}, steps {steps:?}, after build {}",
                build + 1
            );
            let (sub, pages) = walk(&p);
            assert!(sub.len() <= max_items as usize, "{case}");
            // Every post is held somewhere; no page repeats another's item.
            let mut in_pages: BTreeSet<&str> = BTreeSet::new();
            for (path, doc) in &pages {
                for t in &doc.titles {
                    assert!(in_pages.insert(t), "{case}: {t} in two pages ({path})");
                }
            }
            for title in added_in.keys() {
                assert!(
                    sub.contains(title) || in_pages.contains(title.as_str()),
                    "{case}: {title} is in no document ({} pages)",
                    pages.len()
                );
            }
            // Full pages hold exactly a page; the chain's pages are numbered 1..=n.
            let n = pages.len();
            for (i, (path, doc)) in pages.iter().enumerate() {
                assert_eq!(path, &format!("archive/{}.atom", n - i), "{case}");
                if doc.next.is_some() {
                    assert_eq!(doc.titles.len(), page_size as usize, "{case}: {path}");
                }
            }
            // Oldest page first, the builds that brought the posts never go back.
            let mut latest_before = 0;
            for (path, doc) in pages.iter().rev() {
                let builds: Vec<usize> = doc.titles.iter().map(|t| added_in[t]).collect();
                if let Some(min) = builds.iter().min() {
                    assert!(
                        *min >= latest_before,
                        "{case}: {path} holds a post older than the page before it"
                    );
                    latest_before = *builds.iter().max().unwrap();
                }
            }
            // A page published with a successor never changes.
            for (path, bytes) in &sealed {
                let now = std::fs::read(p.path().join("public").join(path)).unwrap();
                assert!(now == *bytes, "{case}: sealed {path} changed");
            }
            for (path, doc) in pages {
                if doc.next.is_some() {
                    sealed.entry(path).or_insert(doc.bytes);
                }
            }
        }
    }
}
