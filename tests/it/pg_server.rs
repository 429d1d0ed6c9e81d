//! A throwaway PostgreSQL server for the tests that need one: `initdb` into a
//! temporary directory, `pg_ctl start` listening on 127.0.0.1 at a free port (and on a
//! Unix socket inside that directory, never the system's), stopped and deleted when the
//! [`PgServer`] is dropped.
//!
//! PostgreSQL is an interop tool like feedparser or jing: a developer without it sees a
//! visible `SKIP`; under `FEEDWERK_REQUIRE_INTEROP=1` (`.ci/run`) it is a failure. The
//! binaries are taken from `PATH`, else from the newest `/usr/lib/postgresql/*/bin`
//! (where Debian's `postgresql` package puts them, off `PATH`).
//!
//! `initdb` and `postgres` refuse to run as root, and CI runs as root: then the server
//! runs as the `postgres` system user the Debian package creates (else `nobody`), and
//! the temporary directory is handed to that user. Other users run it as themselves.

#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A running PostgreSQL cluster owned by one test.
pub struct PgServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// The user the server runs as, when the tests run as root.
    owner: Option<(u32, u32)>,
    /// Server options beyond the defaults (TLS, for [`PgServer::start_with_tls`]).
    extra: String,
}

/// The superuser `initdb` creates; connections from 127.0.0.1 need no password.
pub const SUPERUSER: &str = "feedwerk";

impl PgServer {
    /// Starts a fresh cluster, or returns `None` after a visible SKIP when PostgreSQL is
    /// not installed (a panic under `FEEDWERK_REQUIRE_INTEROP=1`). Panics with the
    /// server's log when it is installed but does not start.
    pub fn start() -> Option<PgServer> {
        PgServer::start_with(None)
    }

    /// [`PgServer::start`] with TLS on (`ssl=on`), presenting the PEM certificate chain
    /// `cert` with its key `key`; plain connections are still accepted.
    pub fn start_with_tls(cert: &str, key: &str) -> Option<PgServer> {
        PgServer::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> Option<PgServer> {
        let Some(bin) = pg_bin_dir() else {
            if std::env::var("FEEDWERK_REQUIRE_INTEROP").as_deref() == Ok("1") {
                panic!("PostgreSQL (initdb, pg_ctl) is missing and FEEDWERK_REQUIRE_INTEROP=1");
            }
            eprintln!("SKIP: PostgreSQL (initdb, pg_ctl) not installed (set FEEDWERK_REQUIRE_INTEROP=1 to make this a failure)");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("feedwerk-pg-")
            .tempdir()
            .expect("temp dir for PostgreSQL");
        let owner = unprivileged_owner();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("hand the PostgreSQL temp dir to its user");
        }
        let mut server = PgServer {
            bin,
            dir,
            port: 0,
            owner,
            extra: String::new(),
        };
        server.init();
        if let Some((cert, key)) = tls {
            server.extra = server.install_tls(cert, key);
        }
        // A port found free can be taken before the server binds it: try a few.
        for _ in 0..3 {
            server.port = free_port();
            if server.try_start() {
                return Some(server);
            }
        }
        panic!("PostgreSQL did not start:\n{}", server.log());
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `postgres://` URL for database `db` as the superuser over TCP.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates an empty database `name` (one per test, or per backend run of a test).
    pub fn create_database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        self.url(name)
    }

    /// Runs `sql` with `psql` in database `db` and returns its unaligned, tuples-only
    /// output; panics with psql's error when it fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self
            .command("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", SUPERUSER, "-d", db, "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql `{sql}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    }

    /// The server log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn init(&self) {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.data())
            .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"])
            // Nothing here outlives the test: no fsync at init or at run time.
            .arg("--no-sync")
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb failed: {}", both(&out));
    }

    /// Writes the server's certificate and key where only its user reads them (the
    /// server refuses a key others can read) and returns the options naming them.
    fn install_tls(&self, cert: &str, key: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let mut options = String::from("-c ssl=on");
        for (name, text, option) in [
            ("server.crt", cert, "ssl_cert_file"),
            ("server.key", key, "ssl_key_file"),
        ] {
            let path = self.dir.path().join(name);
            std::fs::write(&path, text).expect("write the test server's TLS file");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .expect("make the TLS file private");
            if let Some((uid, gid)) = self.owner {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .expect("hand the TLS file to the server's user");
            }
            options.push_str(&format!(" -c {option}={}", path.display()));
        }
        options
    }

    fn try_start(&self) -> bool {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c full_page_writes=off {}",
            self.port,
            self.dir.path().display(),
            self.extra
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .expect("run pg_ctl start");
        out.status.success()
    }

    /// One of the PostgreSQL programs, as the server's user, with its output captured.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.stdin(Stdio::null()).env("LC_ALL", "C");
        if let Some((uid, gid)) = self.owner {
            // The temp dir is 0700 and belongs to that user now: start there, not in a
            // working directory it may not read.
            cmd.uid(uid).gid(gid).current_dir(self.dir.path());
        }
        cmd
    }
}

impl Drop for PgServer {
    /// Stops the server at once (nothing in it is worth a clean shutdown); the temp dir
    /// goes with the [`tempfile::TempDir`].
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The directory holding `initdb` and `pg_ctl`: on `PATH`, else Debian's newest
/// `/usr/lib/postgresql/<version>/bin`.
fn pg_bin_dir() -> Option<PathBuf> {
    let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if has_tools(&d) {
                // A symlink on PATH (as in /usr/local/bin) points into the real bin
                // dir, which also holds `postgres` and `psql` of the same version.
                let real = d.join("initdb").canonicalize().ok()?;
                return real.parent().map(Path::to_path_buf);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has_tools(d))
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d)
}

/// The uid and gid to run PostgreSQL as when the tests run as root: `postgres`, else
/// `nobody`. `None` for any other user (PostgreSQL runs as that user).
fn unprivileged_owner() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    ["postgres", "nobody"]
        .iter()
        .find_map(|name| user_ids(name))
}

/// `name`'s uid and primary gid from the passwd database (`id(1)`, which reads NSS as
/// the system is set up).
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, name]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

fn both(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
