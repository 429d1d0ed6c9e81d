//! `config.toml` is parsed into typed settings; every mistake is refused with the key
//! and its line, through `feedwerk check` and before any other command does work.

use crate::support::Project;

/// The shipped config with one substitution applied; returns `check`'s output.
fn check_with(from: &str, to: &str) -> (Option<i32>, String) {
    let shipped = std::fs::read_to_string(crate::support::repo_root().join("config.toml")).unwrap();
    assert!(shipped.contains(from), "shipped config contains {from:?}");
    let p = Project::with_seed_posts();
    p.write("config.toml", &shipped.replacen(from, to, 1));
    let run = p.run(&["check"]);
    (run.code(), run.all())
}

fn line_of(needle: &str) -> usize {
    let shipped = std::fs::read_to_string(crate::support::repo_root().join("config.toml")).unwrap();
    shipped
        .lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap()
}

#[test]
fn shipped_config_and_posts_check_clean() {
    let p = Project::with_seed_posts();
    p.write(
        "config.toml",
        &std::fs::read_to_string(crate::support::repo_root().join("config.toml")).unwrap(),
    );
    let run = p.run(&["check"]);
    assert_eq!(run.code(), Some(0), "{}", run.all());
    assert!(run.stdout().contains("4 sources"), "{}", run.stdout());
}

#[test]
fn wrong_type_names_key_and_line() {
    let (code, out) = check_with("max_items = 50", "max_items = \"fifty\"");
    assert_eq!(code, Some(1), "{out}");
    let line = line_of("max_items = 50");
    assert!(out.contains(&format!("line {line}")), "{out}");
    assert!(out.contains("publish.max_items"), "{out}");
}

#[test]
fn unknown_key_names_key_and_line() {
    let (code, out) = check_with("description = ", "descripton = ");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("site.descripton"), "{out}");
    assert!(
        out.contains(&format!("line {}", line_of("description = "))),
        "{out}"
    );
}

#[test]
fn bad_cron_expression_names_key_and_line() {
    let (code, out) = check_with("schedule = \"0 0 * * * *\"", "schedule = \"every hour\"");
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("schedule") && out.contains("every hour"),
        "{out}"
    );
    assert!(
        out.contains(&format!("line {}", line_of("schedule = \"0 0 * * * *\""))),
        "{out}"
    );
}

#[test]
fn bad_url_names_key_and_line() {
    let (code, out) = check_with("url = \"https://efus.eu/feed/\"", "url = \"not a url\"");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(".url") && out.contains("not a url"), "{out}");
    assert!(
        out.contains(&format!(
            "line {}",
            line_of("url = \"https://efus.eu/feed/\"")
        )),
        "{out}"
    );
}

#[test]
fn duplicate_source_id_names_key_and_line() {
    let (code, out) = check_with("id = \"lpr\"", "id = \"efus\"");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("duplicate source id `efus`"), "{out}");
    assert!(
        out.contains(&format!("line {}", line_of("id = \"lpr\""))),
        "{out}"
    );
}

#[test]
fn a_bad_config_stops_build_before_anything_is_written() {
    let p = Project::with_seed_posts();
    p.config(
        "[[source]]\nid = \"defus\"\nkind = \"local\"\npath = \"feeds/defus\"\nprioirty = 1\n",
    );
    let run = p.run(&["build"]);
    assert_ne!(run.code(), Some(0));
    assert!(run.all().contains("prioirty"), "{}", run.all());
    assert!(!p.path().join("public").exists());
}

#[test]
fn config_flag_chooses_another_file() {
    let p = Project::with_seed_posts();
    p.write(
        "elsewhere/site.toml",
        "[site]\ntitle = \"Anderswo\"\nbase_url = \"https://anderswo.example/\"\n\n[publish]\noutput_dir = \"out\"\n\n[store]\npath = \"db.sqlite\"\n\n[[source]]\nid = \"defus\"\nkind = \"local\"\npath = \"../feeds/defus\"\n",
    );
    let out = std::process::Command::new(crate::support::bin())
        .current_dir(p.path())
        .args(["--config", "elsewhere/site.toml", "build"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Relative paths in the config are relative to the config file.
    let atom = p.read("elsewhere/out/atom.xml");
    assert!(atom.contains("<title>Anderswo</title>"), "{atom}");
    assert!(p.path().join("elsewhere/db.sqlite").exists());
}

/// Pins every check of every section in one file: the problems, their keys and lines,
/// and their order (file order, section by section), recorded from the single
/// `Config::from_raw` before it was split into one constructor per section.
#[test]
fn every_section_wrong_at_once_reports_each_problem_with_key_and_line_in_file_order() {
    let fixtures = crate::support::repo_root().join("tests/fixtures/config");
    let p = Project::new();
    p.write(
        "config.toml",
        &std::fs::read_to_string(fixtures.join("every-section-wrong.toml")).unwrap(),
    );
    let run = p.run(&["check"]);
    assert_eq!(run.code(), Some(1), "{}", run.all());
    let out = run.all();
    let got: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("  line "))
        .collect();
    let want = std::fs::read_to_string(fixtures.join("every-section-wrong.problems")).unwrap();
    let want: Vec<&str> = want.lines().collect();
    assert_eq!(got.len(), want.len(), "{out}");
    for (g, w) in got.iter().zip(&want) {
        let w = w.strip_prefix("line ").unwrap();
        assert!(
            g.starts_with(w),
            "expected `line {w}`, got `line {g}`\n{out}"
        );
    }
}
