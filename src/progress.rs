//! Progress on a terminal for long runs: sources fetched, parsed and stored during a
//! refresh, posts handled during an import.
//!
//! This module owns *whether* progress is shown and how it is drawn (`indicatif`); the
//! refresh loop and `import` only count through [`Refresh`] and [`Posts`], which do
//! nothing at all when progress is off. It is on only when the binary calls
//! [`init`] with a text log and stderr is a terminal outside journald: under journald, in
//! `--log-format json`, in a pipe or a file, not one byte changes. It is drawn for the
//! first refresh of a process only — `build`'s one refresh, the daemon's first cycle
//! (the slow one, which fills an empty store); later cycles say what they did in their
//! log lines and `STATUS=`.
//!
//! Log lines written while a bar is drawn go through [`LogWriter`], which takes the bar
//! off the screen for the line and draws it again below, so neither garbles the other.

use std::io::{self, IsTerminal as _};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Set once by [`init`]: a person is watching stderr.
static ENABLED: AtomicBool = AtomicBool::new(false);
/// The first refresh of the process has taken its bar.
static REFRESH_SHOWN: AtomicBool = AtomicBool::new(false);
/// The bar on screen, for [`LogWriter`] to lift off around a log line.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Whether progress would be shown: a text log (`json` is for machines), no journald
/// (`JOURNAL_STREAM` set: the journal would keep every frame), stderr a terminal.
pub fn wanted(text_log: bool, journald: bool, stderr_is_terminal: bool) -> bool {
    text_log && !journald && stderr_is_terminal
}

/// Turns progress on for this process when [`wanted`] says so for the real stderr and
/// environment. Called once by the binary, before any refresh or import.
pub fn init(text_log: bool) {
    let on = wanted(
        text_log,
        std::env::var_os("JOURNAL_STREAM").is_some(),
        io::stderr().is_terminal(),
    );
    ENABLED.store(on, Ordering::SeqCst);
}

fn active() -> std::sync::MutexGuard<'static, Option<ProgressBar>> {
    // A panic elsewhere while holding the lock leaves only an `Option` behind.
    ACTIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A bar on stderr, registered for [`LogWriter`]; `None` when progress is off.
fn bar(len: usize, prefix: &'static str, template: &str) -> Option<ProgressBar> {
    if !ENABLED.load(Ordering::SeqCst) {
        return None;
    }
    let style = ProgressStyle::with_template(template)
        .expect("static template")
        .progress_chars("=> ");
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr())
        .with_style(style)
        .with_prefix(prefix);
    *active() = Some(bar.clone());
    Some(bar)
}

/// Leaves the bar's last frame on screen as an ordinary line and unregisters it.
fn finish(bar: &ProgressBar) {
    bar.finish();
    // One bar at a time: a refresh and an import never run in the same process.
    *active() = None;
}

/// Progress of one refresh: of the sources it fetches, how many are fetched (or read),
/// parsed and stored. Finished (its last frame left on screen) when dropped, also when
/// the refresh is abandoned.
pub struct Refresh {
    bar: Option<ProgressBar>,
    total: usize,
    fetched: AtomicUsize,
    parsed: AtomicUsize,
    stored: AtomicUsize,
}

impl Refresh {
    /// A refresh of `sources` sources begins. Draws only for the first refresh of a
    /// process with progress on.
    pub fn begin(sources: usize) -> Refresh {
        let first = ENABLED.load(Ordering::SeqCst) && !REFRESH_SHOWN.swap(true, Ordering::SeqCst);
        let bar = if first && sources > 0 {
            bar(sources, "sources", "{prefix} [{bar:30}] {msg} ({elapsed})")
        } else {
            None
        };
        let r = Refresh {
            bar,
            total: sources,
            fetched: AtomicUsize::new(0),
            parsed: AtomicUsize::new(0),
            stored: AtomicUsize::new(0),
        };
        r.draw();
        r
    }

    /// One source's document arrived (or its directory was read, or its fetch failed).
    pub fn fetched(&self) {
        self.count(&self.fetched, 1);
    }

    /// `n` sources' documents were parsed and normalised.
    pub fn parsed(&self, n: usize) {
        self.count(&self.parsed, n);
    }

    /// One source's result reached the store (its items, or its failure).
    pub fn stored(&self) {
        self.count(&self.stored, 1);
    }

    fn count(&self, counter: &AtomicUsize, n: usize) {
        if self.bar.is_some() {
            counter.fetch_add(n, Ordering::Relaxed);
            self.draw();
        }
    }

    fn draw(&self) {
        let Some(bar) = &self.bar else { return };
        let n = self.total;
        let stored = self.stored.load(Ordering::Relaxed);
        bar.set_message(format!(
            "fetched {}/{n}, parsed {}/{n}, stored {stored}/{n}",
            self.fetched.load(Ordering::Relaxed),
            self.parsed.load(Ordering::Relaxed),
        ));
        bar.set_position(stored as u64);
    }
}

impl Drop for Refresh {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            finish(bar);
        }
    }
}

/// Progress of an import: of the posts read from the document, how many have been taken
/// in hand (written, found already there, or refused). Finished when dropped.
pub struct Posts {
    bar: Option<ProgressBar>,
}

impl Posts {
    /// An import of `posts` posts begins.
    pub fn begin(posts: usize) -> Posts {
        let bar = (posts > 0)
            .then(|| {
                bar(
                    posts,
                    "posts",
                    "{prefix} [{bar:30}] {pos}/{len} handled ({elapsed})",
                )
            })
            .flatten();
        Posts { bar }
    }

    /// One more post is taken in hand.
    pub fn handled(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }
}

impl Drop for Posts {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            finish(bar);
        }
    }
}

/// stderr for the log (`tracing_subscriber::fmt().with_writer(LogWriter)`): each line
/// is written with the bar on screen lifted off and drawn again below it.
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

impl io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let bar = active().clone();
        match bar {
            Some(bar) => bar.suspend(|| io::stderr().write_all(buf))?,
            None => io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_only_for_a_text_log_on_a_terminal_outside_journald() {
        assert!(wanted(true, false, true));
        assert!(!wanted(false, false, true), "--log-format json");
        assert!(!wanted(true, true, true), "JOURNAL_STREAM set");
        assert!(!wanted(true, false, false), "stderr a pipe or file");
    }

    #[test]
    fn counting_without_progress_on_draws_nothing_and_costs_nothing() {
        // The library's own tests never call `init`: progress stays off.
        let r = Refresh::begin(3);
        r.fetched();
        r.parsed(2);
        r.stored();
        assert!(r.bar.is_none());
        assert_eq!(r.fetched.load(Ordering::Relaxed), 0);
        assert!(Posts::begin(2).bar.is_none());
    }
}
