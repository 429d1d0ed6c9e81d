//! Abridged copies (rule 8 of `src/dedupe.rs`) measured on the labelled set in
//! `tests/fixtures/dedupe/abridged/` (see its README): partners republishing the first
//! paragraphs of a post, sometimes with a sentence of their own, under a title with a
//! subtitle or prefix added or dropped, and teasers — one story each — beside
//! different-but-related stories (follow-ups, announcements, the same theme) that must
//! stay apart. Through `build` and `dupes --jsonl`.

use std::collections::HashMap;

use serde_json::Value;

use crate::support::{fixture, Project, Route, TestServer};

/// (precision of the merges made, recall of the labelled copies, related pairs merged)
fn score() -> (f64, f64, Vec<String>) {
    let root = fixture("dedupe/abridged");
    let labels: Value =
        serde_json::from_slice(&std::fs::read(root.join("labels.json")).unwrap()).unwrap();
    let server = TestServer::start();
    let mut cfg = String::new();
    for s in labels["sources"].as_array().unwrap() {
        let id = s.as_str().unwrap();
        server.route(
            &format!("/{id}.xml"),
            Route::ok(
                "application/rss+xml",
                std::fs::read(root.join(format!("{id}.xml"))).unwrap(),
            ),
        );
        // The originals' source ranks first, as a partner's own site would.
        let priority = if id == "verband" { 60 } else { 50 };
        cfg.push_str(&format!(
            "[[source]]\nid = \"{id}\"\nkind = \"feed\"\nurl = \"{}\"\npriority = {priority}\n\n",
            server.url(&format!("/{id}.xml"))
        ));
    }
    let p = Project::new();
    p.config(&cfg);
    p.run(&["build"]).success();
    let out = p.run(&["dupes", "--jsonl"]).success().stdout();

    let story: HashMap<String, String> = labels["same"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l[0].as_str().unwrap().to_owned(),
                l[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let story_of = |k: &str| story.get(k).cloned().unwrap_or_else(|| k.to_owned());
    let mut cluster: HashMap<String, String> = HashMap::new();
    let (mut merged, mut merged_right) = (0, 0);
    for line in out.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let key = v["key"].as_str().unwrap().to_owned();
        let rep = v["dup_of"].as_str().unwrap_or(&key).to_owned();
        if v["dup_of"].is_string() {
            merged += 1;
            if story_of(&key) == story_of(&rep) {
                merged_right += 1;
            }
        }
        cluster.insert(key, rep);
    }
    let same = |a: &str, b: &str| {
        let (ca, cb) = (cluster.get(a), cluster.get(b));
        assert!(
            ca.is_some() && cb.is_some(),
            "labelled keys are held: {a} / {b}"
        );
        ca == cb
    };
    let pairs = labels["same"].as_array().unwrap();
    let found = pairs
        .iter()
        .filter(|l| same(l[0].as_str().unwrap(), l[1].as_str().unwrap()))
        .count();
    let wrongly: Vec<String> = labels["apart"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| same(l[0].as_str().unwrap(), l[1].as_str().unwrap()))
        .map(|l| format!("{} ~ {} ({})", l[0], l[1], l[2]))
        .collect();
    let precision = if merged == 0 {
        1.0
    } else {
        merged_right as f64 / merged as f64
    };
    (precision, found as f64 / pairs.len() as f64, wrongly)
}

#[test]
fn abridged_retitled_copies_and_teasers_are_one_story_related_stories_stay_apart() {
    let (precision, recall, wrongly) = score();
    eprintln!("abridged set: precision {precision:.3}, recall {recall:.3}");
    assert!(wrongly.is_empty(), "related stories merged: {wrongly:#?}");
    assert_eq!(precision, 1.0, "every merge is a labelled copy");
    assert_eq!(recall, 1.0, "every labelled copy is merged");
}
