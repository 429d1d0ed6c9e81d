//! How the end of one attempt changes a source's fetch state and what its report says:
//! a failure ([`Failure`]: fetch, parse or store), a 304, or a stored copy. Each outcome
//! is a short sequence of [`SourceState`] transitions plus the next check from
//! `schedule`; the SQL that keeps the state is the store's.

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::fetch::{FetchError, Fetched, Validators};
use crate::model::{Source, SourceReport, SourceState, SourceStatus};
use crate::schedule::{self, Outcome, Politeness};
use crate::store::StoreError;

/// Why one attempt at a source failed; the items it holds stay published either way.
pub(super) enum Failure {
    /// The partner could not be fetched (network, HTTP status, limits).
    Fetch(FetchError),
    /// The document arrived but could not be read.
    Parse(String),
    /// The copy was read but the store could not take it: our fault, not the
    /// partner's, and told apart in `feedwerk sources` as "store error".
    Store(StoreError),
}

impl Failure {
    /// The short status, the full message, the partner's `Retry-After`, and whether
    /// the partner said the source is gone for good (410).
    fn describe(&self) -> (String, String, Option<std::time::Duration>, bool) {
        match self {
            Failure::Fetch(e) => (
                e.short(),
                e.to_string(),
                e.retry_after(),
                matches!(e, FetchError::Gone { .. }),
            ),
            Failure::Parse(m) => ("parse error".to_owned(), m.clone(), None, false),
            Failure::Store(e) => ("store error".to_owned(), e.to_string(), None, false),
        }
    }
}

/// A report of `status` for the source `s`, with nothing else to say yet.
pub(super) fn report(s: &Source, status: SourceStatus) -> SourceReport {
    SourceReport {
        id: s.id.clone(),
        status,
        problems: Vec::new(),
        moved_to: None,
        elapsed: std::time::Duration::ZERO,
    }
}

/// One attempt at a source: what every outcome needs to record it.
#[derive(Clone, Copy)]
pub(super) struct Attempt<'a> {
    pub cfg: &'a Config,
    pub source: &'a Source,
    pub now: DateTime<Utc>,
}

impl Attempt<'_> {
    /// When the source is next due after this attempt ended with `outcome`.
    fn next_fetch(&self, outcome: Outcome) -> DateTime<Utc> {
        let (cfg, s) = (self.cfg, self.source);
        let cron = s.schedule.as_ref().unwrap_or(&cfg.publish.schedule);
        let p = Politeness {
            backoff_cap: cfg.fetch.backoff_cap,
            ..Politeness::default()
        };
        let tz = cfg.site.timezone;
        schedule::next_fetch(cron, tz, s.id.as_str(), self.now, outcome, &p).at
    }

    /// Records a failed attempt: the items held stay published; the failure, its time
    /// and count go into the state; the next try backs off.
    pub fn failed(&self, mut st: SourceState, err: Failure) -> (SourceReport, Option<SourceState>) {
        let s = self.source;
        let (short, message, retry_after, gone) = err.describe();
        st.checked_now(&s.id, self.now);
        st.tried_at(s.kind.url());
        st.with_error(short, message.clone(), gone);
        let retry = Outcome::Failure {
            consecutive: st.consecutive_failures,
            retry_after,
        };
        st.schedule_next_check((!gone).then(|| self.next_fetch(retry)));
        tracing::warn!(
            source = %s.id,
            error = %message,
            failures = st.consecutive_failures,
            next = ?st.next_fetch,
            "source failed; its items stay published"
        );
        let mut rep = report(s, SourceStatus::Failed(message));
        if st.items_held > 0 {
            rep.problems.push(format!(
                "keeping the {} items held from the last good copy",
                st.items_held
            ));
        }
        (rep, Some(st))
    }

    /// Records a 304: the partner confirmed our copy, so nothing is parsed, written or
    /// rendered again.
    pub fn not_modified(
        &self,
        mut st: SourceState,
        validators: Validators,
        moved_permanently: Option<url::Url>,
        max_age: Option<std::time::Duration>,
    ) -> (SourceReport, Option<SourceState>) {
        let s = self.source;
        let mut rep = report(s, SourceStatus::NotModified);
        st.checked_now(&s.id, self.now);
        st.reset_error_counter(self.now);
        st.not_modified(
            validators.etag,
            validators.last_modified,
            moved_permanently.as_ref(),
        );
        note_moved(s, &st, &mut rep);
        st.schedule_next_check(Some(
            self.next_fetch(Outcome::Success { ttl: None, max_age }),
        ));
        (rep, Some(st))
    }

    /// Records a copy stored: `count` items, read from the partner's response `fetched`
    /// (`None` for a local directory), whose feed asked for `ttl_minutes` between
    /// fetches.
    pub fn stored(
        &self,
        mut st: SourceState,
        count: usize,
        ttl_minutes: Option<u32>,
        fetched: Option<Box<Fetched>>,
        rep: &mut SourceReport,
    ) -> SourceState {
        let s = self.source;
        st.checked_now(&s.id, self.now);
        st.reset_error_counter(self.now);
        let ttl = ttl_minutes.map(|m| std::time::Duration::from_secs(u64::from(m) * 60));
        let max_age = match fetched {
            Some(f) => {
                st.stored(s.kind.url(), "200 ok".into());
                st.with_validators(
                    f.validators.etag,
                    f.validators.last_modified,
                    f.moved_permanently.as_ref(),
                );
                note_moved(s, &st, rep);
                f.max_age
            }
            None => {
                st.stored(s.kind.url(), format!("read {count} posts"));
                None
            }
        };
        st.schedule_next_check(Some(self.next_fetch(Outcome::Success { ttl, max_age })));
        st
    }
}

/// A permanent redirect the partner still answers with: the operator should update
/// the config, so it is logged and reported on every cycle until then.
fn note_moved(s: &Source, st: &SourceState, rep: &mut SourceReport) {
    if let Some(m) = &st.moved_to {
        tracing::warn!(source = %s.id, "moved permanently to {m}; update the config");
        rep.moved_to = Some(m.clone());
    }
}
