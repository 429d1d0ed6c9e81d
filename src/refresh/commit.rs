//! The commit step, the only refresh code that writes the store: one prepared source
//! (its items: identity churn, upsert with deduplication, retractions) or a group of
//! them in one transaction, and what that makes of the source's report and fetch state.
//! The SQL is the store's; which copy of a story is shown is `dedupe`'s.

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::prepare::{Delivery, Prepared, Ready};
use super::state::{report, Attempt, Failure};
use crate::config::Config;
use crate::dedupe::{self, Deduper};
use crate::model::{Item, ItemId, Source, SourceKind, SourceReport, SourceState, SourceStatus};
use crate::reading;
use crate::store::{Backend, StoreError};

/// A source's report and its new fetch state (`None`: keep the old one).
pub(super) type Committed = (SourceReport, Option<SourceState>);

/// Why a transaction of source writes was rolled back.
#[derive(Debug, thiserror::Error)]
enum Abort {
    /// A write of a group failed (the report says which and why).
    #[error("{} was not stored: {:?}", .0.id, .0.status)]
    Write(Box<SourceReport>),
    /// A source stored on its own failed: its report and fetch state stand.
    #[error("{} was not stored: {:?}", .0.0.id, .0.0.status)]
    Failed(Box<Committed>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What committing needs besides the store: the config (for the next check), the
/// deduplication rules, and the refresh's time.
pub(super) struct Commit<'a> {
    pub cfg: &'a Config,
    pub deduper: &'a Deduper,
    pub now: DateTime<Utc>,
}

/// Notes that the outputs no longer show what the store holds.
pub(super) fn note_changed(store: &dyn Backend) {
    if let Err(e) = store.note_unpublished_changes() {
        tracing::error!(error = %e, "cannot note a change for the next publish");
    }
}

impl Commit<'_> {
    fn attempt<'s>(&'s self, s: &'s Source) -> Attempt<'s> {
        Attempt {
            cfg: self.cfg,
            source: s,
            now: self.now,
        }
    }

    /// Stores several sources' prepared documents in one transaction: the hot band and
    /// index pages are written once per group, not once per source. Inside the group
    /// no source has a savepoint of its own (see [`Store::in_transaction`]), so when any
    /// write fails the group is rolled back and each source is stored again in its own
    /// transaction, from a copy of its items: the failing source is reported and the
    /// others are stored. When a source's own commit fails, it keeps its old fetch
    /// state, so the next cycle fetches it again.
    pub fn group(
        &self,
        store: &mut dyn Backend,
        group: Vec<Delivery>,
    ) -> Vec<(Committed, Instant)> {
        let mut done = Vec::with_capacity(group.len());
        let mut writes = Vec::with_capacity(group.len());
        for d in group {
            match d.prepared {
                Prepared::Ready(ready) => {
                    writes.push((d.source, d.state, ready, d.begun_at, d.permit));
                }
                // Nothing to write but the fetch state, which is saved with the others.
                other => {
                    let c = self.commit(store, &d.source, d.state, other);
                    done.push((c.unwrap_or_else(|f| *f), d.begun_at));
                }
            }
        }
        if writes.len() > 1 {
            let copies: Vec<Box<Ready>> = writes.iter().map(|w| w.2.clone()).collect();
            let mut readies = writes.iter_mut().zip(copies).map(|(w, copy)| {
                let ready = std::mem::replace(&mut w.2, copy);
                (&w.0, w.1.clone(), ready, w.3)
            });
            let together = store.in_transaction(|store| -> Result<_, Abort> {
                let mut stored = Vec::new();
                for (s, st, ready, begun_at) in readies.by_ref() {
                    match self.commit(store, s, st, Prepared::Ready(ready)) {
                        Ok(c) => stored.push((c, begun_at)),
                        Err(failed) => return Err(Abort::Write(Box::new(failed.0))),
                    }
                }
                Ok(stored)
            });
            match together {
                Ok(stored) => {
                    done.extend(stored);
                    return done;
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "storing {} sources together failed; storing each on its own",
                    writes.len()
                ),
            }
        }
        for (s, st, ready, begun_at, _permit) in writes {
            let alone = store.in_transaction(|store| -> Result<_, Abort> {
                self.commit(store, &s, st, Prepared::Ready(ready))
                    .map_err(Abort::Failed)
            });
            done.push(match alone {
                Ok(c) => (c, begun_at),
                // The source's failure, with the fetch state that counts it.
                Err(Abort::Failed(failed)) => (*failed, begun_at),
                Err(e) => {
                    tracing::error!(source = %s.id, error = %e, "the store could not commit a source");
                    let failed = format!("the store could not commit: {e}");
                    ((report(&s, SourceStatus::Failed(failed)), None), begun_at)
                }
            });
        }
        done
    }

    /// Stores what `prepare` made of one source's delivery; returns the report and the
    /// source's new fetch state. `Err` when a store write failed, which may have left
    /// it half done: the caller rolls the transaction back. It carries the failure's
    /// report and the fetch state that counts it.
    fn commit(
        &self,
        store: &mut dyn Backend,
        s: &Source,
        st: SourceState,
        prepared: Prepared,
    ) -> Result<Committed, Box<Committed>> {
        let attempt = self.attempt(s);
        let ready = match prepared {
            Prepared::Skipped(why) => return Ok((report(s, SourceStatus::Skipped(why)), None)),
            Prepared::Failed(f) => return Ok(attempt.failed(st, f)),
            Prepared::NotModified {
                max_age,
                validators,
                moved_permanently,
            } => return Ok(attempt.not_modified(st, validators, moved_permanently, max_age)),
            Prepared::Ready(r) => r,
        };
        let Ready {
            items,
            problems,
            ttl_minutes,
            fetched,
        } = *ready;
        let mut rep = report(s, SourceStatus::NotModified);
        rep.problems = problems;
        match self.write_items(store, s, items, &mut rep) {
            Ok(count) => {
                let st = attempt.stored(st, count, ttl_minutes, fetched, &mut rep);
                Ok((rep, Some(st)))
            }
            Err(e) => Err(Box::new(attempt.failed(st, Failure::Store(e)))),
        }
    }

    /// Writes one source's items: maps churned IDs back, upserts with deduplication,
    /// and withdraws what the source retracted. Sets the report's status and problems;
    /// returns how many items the document had.
    fn write_items(
        &self,
        store: &mut dyn Backend,
        s: &Source,
        mut items: Vec<Item>,
        rep: &mut SourceReport,
    ) -> Result<usize, StoreError> {
        let now = self.now;
        // A post or entry we could not read is still at its source: retracting its held
        // copy would be wrong, so retractions wait for a clean read.
        let clean_read = rep.problems.is_empty();
        let same_guid = dedupe::collapse_same_id(&mut items);
        if same_guid > 0 {
            rep.problems.push(format!(
                "{same_guid} entries repeat the GUID of an earlier entry in the same document; kept the first"
            ));
        }
        let count = items.len();
        let whole_set = matches!(s.kind, SourceKind::Local { .. });
        let churn = store.remap_churned_ids(&s.id, &mut items, now)?;
        if churn.is_event() {
            tracing::warn!(source = %s.id, "{churn}");
            rep.problems.push(churn.to_string());
        }
        let present: Vec<ItemId> = items.iter().map(|i| i.id.clone()).collect();
        let u = store.upsert_source_items(&s.id, items, now, &mut |held, item| {
            self.deduper.decide(held, item)
        })?;
        // In the items' transaction, so the two never disagree.
        store.set_reading_fingerprint(s.id.as_str(), &reading::fingerprint(s, self.cfg))?;
        if u.new + u.changed + u.restored > 0 {
            note_changed(store);
        }
        rep.status = SourceStatus::Updated {
            items: count,
            new: u.new,
            changed: u.changed,
        };
        if !clean_read {
            return Ok(count);
        }
        let gone = store.withdraw_missing(&s.id, &present, whole_set, now)?;
        if !gone.is_empty() {
            note_changed(store);
        }
        for (id, title) in gone {
            tracing::info!(source = %s.id, item = %id, "retracted by its source: withdrawn");
            rep.problems
                .push(format!("retracted: {title} ({id}) withdrawn"));
        }
        Ok(count)
    }
}
