//! Progress on long runs: a person at a terminal sees sources fetched, parsed and stored
//! during `build` (and posts handled during `import`); a pipe, journald and
//! `--log-format json` get not one byte more than before.

use std::time::Duration;

use crate::support::{fixture, strip_ansi, Project, Route, TestServer};

const PARTNER_RSS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Partner</title><link>https://partner.example/</link>
<item><title>Sicherheit in der Stadt</title><link>https://partner.example/a</link>
<guid>https://partner.example/a</guid><pubDate>Mon, 09 Oct 2017 12:00:00 +0000</pubDate>
<description>Ein Bericht über kommunale Prävention.</description></item>
</channel></rss>"#;

/// The seed posts and two partner feeds on a local server: three sources to refresh.
fn three_sources() -> (Project, TestServer) {
    let server = TestServer::start();
    server.route("/a.xml", Route::ok("application/rss+xml", PARTNER_RSS));
    server.route(
        "/b.xml",
        Route::ok(
            "application/rss+xml",
            PARTNER_RSS.replace("partner.example/a", "partner.example/b"),
        ),
    );
    let p = Project::with_seed_posts();
    p.config(&format!(
        r#"
[[source]]
id = "defus"
kind = "local"
path = "feeds/defus"

[[source]]
id = "a"
kind = "feed"
url = "{}"

[[source]]
id = "b"
kind = "feed"
url = "{}"
"#,
        server.url("/a.xml"),
        server.url("/b.xml")
    ));
    (p, server)
}

/// The last frame of the refresh's bar, as drawn when it finished.
const DONE: &str = "fetched 3/3, parsed 3/3, stored 3/3";

#[test]
fn build_at_a_terminal_shows_sources_fetched_parsed_and_stored() {
    let (p, _server) = three_sources();
    let Some(out) = p.run_in_terminal(&["build"], &[]) else {
        return;
    };
    let screen = strip_ansi(&out.stdout());
    assert!(out.0.status.success(), "build failed:\n{screen}");
    assert!(screen.contains("sources ["), "no progress bar:\n{screen}");
    assert!(screen.contains(DONE), "no final progress line:\n{screen}");
    // The report still follows, as without a terminal.
    assert!(screen.contains("a            ok: 1 items"), "{screen}");
}

#[test]
fn build_in_a_pipe_under_journald_or_with_a_json_log_shows_no_progress() {
    let (p, _server) = three_sources();
    let piped = p.run(&["build"]);
    piped.success();
    assert!(!piped.all().contains("sources ["), "{}", piped.all());
    assert!(!piped.all().contains(DONE), "{}", piped.all());

    for (args, env) in [
        (&["build"][..], &[("JOURNAL_STREAM", "8:12345")][..]),
        (&["--log-format", "json", "build"][..], &[][..]),
    ] {
        let Some(out) = p.run_in_terminal(args, env) else {
            return;
        };
        let screen = strip_ansi(&out.stdout());
        assert!(out.0.status.success(), "{args:?} failed:\n{screen}");
        assert!(
            screen.contains("defus"),
            "{args:?}: the report is missing:\n{screen}"
        );
        assert!(
            !screen.contains("sources [") && !screen.contains("stored 3/3"),
            "{args:?} {env:?} drew progress:\n{screen}"
        );
    }
}

#[test]
fn the_daemons_first_cycle_at_a_terminal_shows_the_same_progress() {
    let (p, _server) = three_sources();
    let Some(out) = p.run_in_terminal_within(Some(Duration::from_secs(10)), &["run"], &[]) else {
        return;
    };
    let screen = strip_ansi(&out.stdout());
    assert!(
        screen.contains("serving"),
        "the daemon did not start:\n{screen}"
    );
    assert!(
        screen.contains(DONE),
        "no progress for the first cycle:\n{screen}"
    );
}

#[test]
fn import_at_a_terminal_shows_posts_handled() {
    let p = Project::new();
    p.config(crate::import::LOCAL_ONLY);
    let from = fixture("import/aktuelles.txt");
    let args = [
        "import",
        "--from",
        from.to_str().unwrap(),
        "--into",
        "feeds/defus",
    ];
    let Some(out) = p.run_in_terminal(&args, &[]) else {
        return;
    };
    let screen = strip_ansi(&out.stdout());
    assert!(out.0.status.success(), "import failed:\n{screen}");
    assert!(screen.contains("posts ["), "no progress bar:\n{screen}");
    assert!(screen.contains("6/6 handled"), "{screen}");
    assert!(screen.contains("6 written, 0 already there"), "{screen}");

    // Again in a pipe: everything is already there, and no bar.
    let piped = p.run(&args);
    piped.success();
    assert!(
        piped.stdout().contains("0 written, 6 already there"),
        "{}",
        piped.all()
    );
    assert!(!piped.all().contains("handled"), "{}", piped.all());
}
