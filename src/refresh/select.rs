//! Which configured sources a refresh runs, and why each of the others does not: gone
//! (410) until its URL changes, backing off after failures, or not due yet, depending
//! on the [`RefreshMode`]. A source read with other settings than the config's now
//! runs at once (see `reading`). A source not run is reported as skipped with its
//! reason.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::state::report;
use crate::config::Config;
use crate::model::{Source, SourceReport, SourceState, SourceStatus};
use crate::reading;

/// Which sources a refresh fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshMode {
    /// Only sources whose next fetch time has come (the daemon; `build --due-only` for
    /// deployments that run `build` from a timer).
    Due,
    /// Every source except those a partner or our back-off paused (`build`): an operator
    /// asking for a build wants fresh data, but a failing or rate-limiting partner is
    /// still left alone until its pause ends.
    Manual,
    /// Every source now, pauses ignored (`build --force`). A source gone with HTTP 410
    /// still waits for its URL to change in the config.
    Force,
}

/// The sources to run, each with its remembered state, and the reports of the others.
/// `readings`: the reading fingerprint each source's items were made with (see
/// `reading`); a source read with other settings than the config's now runs at once.
pub(super) fn select(
    cfg: &Config,
    states: &HashMap<String, SourceState>,
    readings: &HashMap<String, String>,
    now: DateTime<Utc>,
    mode: RefreshMode,
) -> (Vec<(Source, SourceState)>, Vec<SourceReport>) {
    let mut skipped = Vec::new();
    let mut due = Vec::new();
    for s in &cfg.sources {
        let mut st = states.get(s.id.as_str()).cloned().unwrap_or_default();
        // Read with other settings than the config's now: fetch it now, without
        // validators, so a 304 cannot keep the items as the old settings made them.
        let stale = readings.get(s.id.as_str()) != Some(&reading::fingerprint(s, cfg));
        if stale {
            st.forget_validators();
        }
        // Its schedule waits, but a back-off, a Retry-After or a 410 still holds.
        let paused = st.consecutive_failures > 0 || st.is_gone_at(s.kind.url());
        match skip_reason(s, &st, now, mode).filter(|_| !stale || paused) {
            Some(why) => {
                if st.consecutive_failures > 0 || st.is_gone_at(s.kind.url()) {
                    // Still broken, only not asked this time: keep saying so.
                    tracing::warn!(source = %s.id, "{why}");
                }
                skipped.push(report(s, SourceStatus::Skipped(why)));
            }
            None => due.push((s.clone(), st)),
        }
    }
    (due, skipped)
}

/// Why `s` is not fetched in this refresh, if it is not.
fn skip_reason(
    s: &Source,
    st: &SourceState,
    now: DateTime<Utc>,
    mode: RefreshMode,
) -> Option<String> {
    let url = s.kind.url()?;
    if st.is_gone_at(Some(url)) {
        return Some(format!(
            "{url}: gone (HTTP 410); change the URL in the config to poll again"
        ));
    }
    if !st.is_for(Some(url)) {
        // A new or changed URL: nothing we remember applies, so fetch it now.
        return None;
    }
    let next = st.next_fetch.filter(|n| *n > now)?;
    let when = next.format("%Y-%m-%d %H:%M:%S UTC");
    match mode {
        RefreshMode::Force => None,
        RefreshMode::Manual if st.consecutive_failures == 0 => None,
        RefreshMode::Manual => Some(format!(
            "backing off after {} failure(s) (last: {}); next try {when} (--force fetches now)",
            st.consecutive_failures,
            st.last_status.as_deref().unwrap_or("error")
        )),
        RefreshMode::Due => Some(format!("not due until {when}")),
    }
}
