//! The Debian package, end to end on this machine: built by `dist/build-deb` (cargo-deb),
//! checked by lintian, installed with `dpkg -i`, its config checked and its unit
//! verified, one publish run as the service user, then removed and purged.
//!
//! Installing a package is system-wide, so this runs only with `FEEDWERK_PACKAGE_TEST=1`
//! (`.ci/run` sets it); elsewhere it prints SKIP. systemd is not PID 1 on the machines
//! this runs on, so `systemctl enable --now` itself cannot be exercised: the test checks
//! what can be — the unit verifies, the package's scripts succeed without a running
//! systemd and still enable the unit (its symlink), and the layout they make lets the
//! service publish where a web server can read, and nobody else read the store.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::repo_root;

const GATE: &str = "FEEDWERK_PACKAGE_TEST";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command; panics with its output unless it succeeds.
fn must(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", text(&out));
    out
}

fn tool(name: &str, probe: &[&str]) {
    let ok = Command::new(name)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "{name} is needed with {GATE}=1 (.ci/run installs it)");
}

/// Every path under the trees a package may touch, except /var/lib (where dpkg keeps
/// its own records and where the operator's data is allowed to stay until purge) and
/// the caches and logs other tools rewrite as they please.
fn snapshot() -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, skip: &[&str], into: &mut BTreeSet<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if skip.iter().any(|s| p == Path::new(s)) {
                continue;
            }
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            into.insert(p.clone());
            if is_dir {
                walk(&p, skip, into);
            }
        }
    }
    let skip = [
        "/var/lib",
        "/var/log",
        "/var/cache/man",
        "/var/cache/apt",
        "/var/cache/debconf",
        "/var/tmp",
    ];
    let mut all = BTreeSet::new();
    for root in ["/etc", "/usr", "/var", "/opt", "/srv"] {
        walk(Path::new(root), &skip, &mut all);
    }
    all
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "feedwerk"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("installed"))
}

fn account_exists(db: &str) -> bool {
    Command::new("getent")
        .args([db, "feedwerk"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The lintian tags the README lists as accepted warnings (`- \`tag\`: why`).
fn accepted_warnings() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = readme
        .split("#### Lintian warnings")
        .nth(1)
        .expect("README has a `#### Lintian warnings` section")
        .split("\n#")
        .next()
        .unwrap();
    section
        .lines()
        .filter_map(|l| l.strip_prefix("- `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn deb_package_installs_checks_publishes_and_purges_without_leftovers() {
    if std::env::var(GATE).as_deref() != Ok("1") {
        eprintln!(
            "SKIP: the Debian package test installs system-wide; set {GATE}=1 to run it (.ci/run does)"
        );
        return;
    }
    for (name, probe) in [
        ("dpkg", &["--version"][..]),
        ("lintian", &["--version"][..]),
        ("cargo-deb", &["deb", "--version"][..]),
        ("systemd-analyze", &["--version"][..]),
        ("runuser", &["--version"][..]),
    ] {
        tool(name, probe);
    }
    if installed() {
        eprintln!("NOTE: a feedwerk package is installed; purging it first");
        must(Command::new("dpkg").args(["--purge", "feedwerk"]));
    }

    // Build: the last line cargo-deb prints is the package's path.
    let out = must(Command::new(repo_root().join("dist/build-deb")).current_dir(repo_root()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let deb = PathBuf::from(
        stdout
            .lines()
            .rev()
            .find(|l| l.ends_with(".deb"))
            .unwrap_or_else(|| panic!("no .deb path in:\n{}", text(&out)))
            .trim(),
    );
    assert!(deb.is_file(), "{} missing", deb.display());

    // lintian: no error, and every warning is one the README explains.
    let lint = Command::new("lintian")
        .args(["--fail-on", "error", "--tag-display-limit", "0"])
        .arg(&deb)
        .output()
        .unwrap();
    let report = text(&lint);
    eprintln!("lintian:\n{report}");
    assert!(lint.status.success(), "lintian found errors:\n{report}");
    assert!(!report.lines().any(|l| l.starts_with("E: ")), "{report}");
    let accepted = accepted_warnings();
    for l in report.lines().filter(|l| l.starts_with("W: ")) {
        let tag = l.split_whitespace().nth(2).unwrap_or_default();
        assert!(
            accepted.contains(tag),
            "lintian warning `{tag}` is not listed under README \"Lintian warnings\" with why it stays:\n{l}"
        );
    }

    let before = snapshot();
    // systemd is not PID 1 here: the scripts must notice and neither fail nor start it.
    must(Command::new("dpkg").arg("-i").arg(&deb));

    let version = must(Command::new("/usr/bin/feedwerk").arg("--version"));
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("feedwerk "));
    let conffiles = must(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "feedwerk"]));
    assert!(
        String::from_utf8_lossy(&conffiles.stdout).contains("/etc/feedwerk/config.toml"),
        "the config is not a conffile: {}",
        text(&conffiles)
    );
    for f in [
        "/usr/lib/systemd/system/feedwerk.service",
        "/usr/share/man/man1/feedwerk.1.gz",
        "/usr/share/man/man1/feedwerk-build.1.gz",
        "/usr/share/man/man1/feedwerk-import.1.gz",
        "/usr/share/bash-completion/completions/feedwerk",
        "/usr/share/zsh/vendor-completions/_feedwerk",
        "/usr/share/fish/vendor_completions.d/feedwerk.fish",
        "/usr/share/doc/feedwerk/copyright",
        // Enabled by the postinst even without a running systemd.
        "/etc/systemd/system/multi-user.target.wants/feedwerk.service",
    ] {
        assert!(Path::new(f).symlink_metadata().is_ok(), "{f} not installed");
    }
    assert!(account_exists("passwd"), "no feedwerk user");
    let mode = |p: &str| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("/var/lib/feedwerk"), 0o755);
    assert_eq!(mode("/var/lib/feedwerk/state"), 0o700);
    assert_eq!(mode("/var/lib/feedwerk/feeds"), 0o750);

    // The installed config, as the README tells the operator to check it.
    let check = must(Command::new("/usr/bin/feedwerk").args([
        "check",
        "--config",
        "/etc/feedwerk/config.toml",
    ]));
    let said = text(&check);
    assert!(
        said.contains("/var/lib/feedwerk/feeds/defus: 6 posts"),
        "{said}"
    );
    assert!(
        said.contains("store /var/lib/feedwerk/state/feedwerk.sqlite"),
        "{said}"
    );

    let unit = "/usr/lib/systemd/system/feedwerk.service";
    let mut verify = Command::new("systemd-analyze");
    verify.arg("verify");
    if Command::new("man").arg("--version").output().is_err() {
        eprintln!("NOTE: man(1) missing; verifying without the Documentation= check");
        verify.arg("--man=no");
    }
    let verified = verify.arg(unit).output().unwrap();
    assert!(
        verified.status.success() && text(&verified).trim().is_empty(),
        "systemd-analyze verify {unit}:\n{}",
        text(&verified)
    );

    // One publish as the service user under the unit's umask, local posts only (tests
    // reach no network beyond loopback): the layout lets it write, lets anyone (a web
    // server) read the outputs, and nobody else read the store or the posts.
    let shipped = std::fs::read_to_string("/etc/feedwerk/config.toml").unwrap();
    let mut blocks = shipped.split("\n[[source]]");
    let mut local_only = blocks.next().unwrap().to_owned();
    for b in blocks.filter(|b| b.contains("kind = \"local\"")) {
        local_only.push_str("\n[[source]]");
        local_only.push_str(b);
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, &local_only).unwrap();
    let unit_text = std::fs::read_to_string(unit).unwrap();
    let umask = unit_text
        .lines()
        .find_map(|l| l.strip_prefix("UMask="))
        .expect("the unit sets UMask=");
    must(
        Command::new("runuser")
            .args(["-u", "feedwerk", "--", "sh", "-c"])
            .arg(format!(
                "umask {umask} && exec /usr/bin/feedwerk --config {} build",
                cfg.display()
            )),
    );
    let atom = Path::new("/var/lib/feedwerk/public/atom.xml");
    let meta = std::fs::metadata(atom).expect("build published atom.xml");
    let owner = must(Command::new("id").args(["-u", "feedwerk"]));
    assert_eq!(
        meta.uid().to_string(),
        String::from_utf8_lossy(&owner.stdout).trim()
    );
    let as_nobody = |path: &str| {
        Command::new("runuser")
            .args(["-u", "nobody", "--", "cat", path])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(
        as_nobody("/var/lib/feedwerk/public/atom.xml"),
        "outputs not world-readable"
    );
    assert!(
        !as_nobody("/var/lib/feedwerk/state/feedwerk.sqlite"),
        "the store is readable by others"
    );
    assert!(
        !as_nobody("/var/lib/feedwerk/feeds/defus/2017-10-09-15-defus-mitgliederversammlung-in-stuttgart.md"),
        "the posts are readable by others"
    );
    drop(dir);

    // remove keeps the operator's data and the changed-or-not conffile; purge takes all.
    must(Command::new("dpkg").args(["--remove", "feedwerk"]));
    assert!(!Path::new("/usr/bin/feedwerk").exists());
    assert!(
        Path::new("/var/lib/feedwerk/state/feedwerk.sqlite").exists(),
        "remove deleted the store"
    );
    assert!(
        Path::new("/etc/feedwerk/config.toml").exists(),
        "remove deleted the conffile"
    );
    must(Command::new("dpkg").args(["--purge", "feedwerk"]));
    assert!(!installed());
    assert!(
        !Path::new("/var/lib/feedwerk").exists(),
        "purge left /var/lib/feedwerk"
    );
    assert!(!account_exists("passwd"), "purge left the feedwerk user");
    assert!(!account_exists("group"), "purge left the feedwerk group");
    let after = snapshot();
    let left: Vec<_> = after.difference(&before).collect();
    assert!(left.is_empty(), "left behind by the package: {left:#?}");
}
