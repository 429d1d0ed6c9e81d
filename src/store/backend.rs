//! The one interface the rest of the program uses to reach the store: [`Backend`], the
//! store's operations as the pipeline, the publisher, the uploader and the commands call
//! them. The SQLite [`Store`] implements it by calling its own methods; a second store
//! (PostgreSQL, issue 20) implements the same trait, so nothing outside `store` knows
//! which one it talks to.
//!
//! This module owns only the interface and the SQLite delegation: no SQL, no behaviour.
//! Each method means exactly what the [`Store`] method of the same name documents.
//! [`Backend`] is the sum of one trait per area of the store ([`MetaStore`],
//! [`SourceStore`], [`ItemStore`], …), so a new backend can be built and tested against
//! SQLite's behaviour one area at a time; only a backend with every area is a
//! [`Backend`]. It is object safe (`&dyn Backend`, `Box<dyn Backend>`), so generic
//! parameters become `&mut dyn FnMut`; [`dyn Backend::in_transaction`] gives callers
//! back the generic form of [`Store::in_transaction`].
//!
//! Opening a store (a path, in memory, a snapshot for `--dry-run`) is not here: that is
//! where the backends differ, and each has its own constructors.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::archive::{ArchivePage, Cursor, StoredPages};
use super::{
    Churn, Cluster, DedupeEvent, Dirty, HeldItem, ItemCache, OutputState, PublishedOutput,
    RemoteObject, RemoteState, Store, StoreError, StoredItem, UpsertReport,
};
use crate::dedupe::{Candidates, Decision, LookupError};
use crate::model::{ChannelFilter, Item, ItemId, SourceId, SourceState};

/// How `upsert_source_items` asks deduplication about each item (see
/// [`Store::upsert_source_items`]).
pub type Decide<'a> = dyn FnMut(&dyn Candidates, &Item) -> Result<Decision, LookupError> + 'a;

/// The body of a group transaction, object safe: `true` to commit, `false` to roll back.
pub type GroupBody<'a> = dyn FnMut(&mut dyn Backend) -> bool + 'a;

/// The store's operations, whichever database holds it: the sum of the parts below,
/// one per area of the store, so a backend under construction can implement and test
/// one part at a time against the SQLite store's behaviour. `Send`: the pipeline keeps
/// the store in a `Mutex` its tasks share.
pub trait Backend:
    MetaStore
    + GroupStore
    + SourceStore
    + ItemStore
    + DedupStore
    + ChannelStore
    + OutputStore
    + ArchiveStore
    + UploadStore
    + Send
{
}

impl<T> Backend for T where
    T: MetaStore
        + GroupStore
        + SourceStore
        + ItemStore
        + DedupStore
        + ChannelStore
        + OutputStore
        + ArchiveStore
        + UploadStore
        + Send
{
}

/// The `meta` key-value table (store/mod.rs).
pub trait MetaStore {
    fn meta(&self, key: &str) -> Result<Option<String>, StoreError>;
    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError>;
    fn note_unpublished_changes(&self) -> Result<(), StoreError>;
}

/// Group transactions (store/mod.rs).
pub trait GroupStore {
    /// The object-safe core of [`dyn Backend::in_transaction`]: runs `body` with every
    /// write it makes in one transaction, committed when it returns `true`, rolled back
    /// when it returns `false` (then `Ok`: the caller knows why). `Err` only when the
    /// store itself failed to begin or commit.
    fn in_group(&mut self, body: &mut GroupBody<'_>) -> Result<(), StoreError>;
}

/// Each source's fetch state and reading fingerprint (store/sources.rs,
/// store/reading.rs).
pub trait SourceStore {
    fn source_state(&self, id: &SourceId) -> Result<SourceState, StoreError>;
    fn source_states(&self) -> Result<HashMap<String, SourceState>, StoreError>;
    fn save_source_states(&mut self, states: &[SourceState]) -> Result<(), StoreError>;
    fn reading_fingerprints(&self) -> Result<HashMap<String, String>, StoreError>;
    fn set_reading_fingerprint(&self, source: &str, fingerprint: &str) -> Result<(), StoreError>;
}

/// Storing items (store/items.rs).
pub trait ItemStore {
    fn latest_first_seen(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    fn upsert_source_items(
        &mut self,
        source: &SourceId,
        items: Vec<Item>,
        now: DateTime<Utc>,
        decide: &mut Decide<'_>,
    ) -> Result<UpsertReport, StoreError>;
    fn all_items(&self) -> Result<Vec<HeldItem>, StoreError>;
    fn prune(
        &mut self,
        max_items: usize,
        max_age: Option<chrono::Duration>,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError>;
    fn withdraw_unconfigured(&mut self, configured: &[SourceId]) -> Result<usize, StoreError>;
}

/// The store side of deduplication (store/dedup.rs).
pub trait DedupStore {
    fn flush_dedupe_index(&mut self) -> Result<(), StoreError>;
    fn remap_churned_ids(
        &mut self,
        source: &SourceId,
        items: &mut [Item],
        now: DateTime<Utc>,
    ) -> Result<Churn, StoreError>;
    fn withdraw_missing(
        &mut self,
        source: &SourceId,
        present: &[ItemId],
        whole_set: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<(ItemId, String)>, StoreError>;
    fn clusters(&self) -> Result<Vec<Cluster>, StoreError>;
    fn dedupe_events(&self, limit: usize) -> Result<Vec<DedupeEvent>, StoreError>;
}

/// What channels show and what changed for them (store/visible.rs,
/// store/publish_index.rs, store/outputs.rs).
pub trait ChannelStore {
    fn visible_items(&self, limit: usize) -> Result<Vec<StoredItem>, StoreError>;
    fn visible_items_where(
        &self,
        filter: &ChannelFilter,
        limit: usize,
    ) -> Result<Vec<StoredItem>, StoreError>;
    /// `visible_items_where`, reusing and filling a publishing pass's parsed items.
    fn visible_items_cached(
        &self,
        filter: &ChannelFilter,
        limit: usize,
        cache: &mut ItemCache,
    ) -> Result<Vec<StoredItem>, StoreError>;
    fn visible_tag_counts(&self) -> Result<Vec<(String, usize)>, StoreError>;
    fn visible_languages(&self) -> Result<Vec<String>, StoreError>;
    fn mark_representatives_shown(&self, now: DateTime<Utc>) -> Result<usize, StoreError>;
    fn publish_dirty(&self) -> Result<Dirty, StoreError>;
    fn clear_publish_dirty(&self) -> Result<(), StoreError>;
}

/// The validators of each published file (store/outputs.rs).
pub trait OutputStore {
    fn output_state(&self, path: &str) -> Result<Option<(String, DateTime<Utc>)>, StoreError>;
    fn output_dates(&self) -> Result<HashMap<String, DateTime<Utc>>, StoreError>;
    /// The validators of the outputs directly in directory `dir` (no trailing `/`), by
    /// file name. The default reads every output's date and then each one's hash: right
    /// for any backend, but a backend that can read one directory's range should
    /// (the SQLite store does: a publish after one change must not read every archive
    /// page's row).
    fn output_states_in(&self, dir: &str) -> Result<HashMap<String, OutputState>, StoreError> {
        let prefix = format!("{dir}/");
        let mut out = HashMap::new();
        for path in self.output_dates()?.into_keys() {
            let Some(name) = path.strip_prefix(&prefix).filter(|n| !n.contains('/')) else {
                continue;
            };
            if let Some((hash, last_modified)) = self.output_state(&path)? {
                out.insert(
                    name.to_owned(),
                    OutputState {
                        hash,
                        last_modified,
                    },
                );
            }
        }
        Ok(out)
    }
    fn save_output_state(
        &self,
        path: &str,
        hash: &str,
        last_modified: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// [`OutputStore::save_output_state`] for every `(path, hash)` of a publishing pass,
    /// all published at `last_modified`. The default saves them one by one; the SQLite
    /// store saves them in one transaction (a cold build's 1 953 autocommits were the
    /// serial tail of its publish).
    fn save_output_states(
        &self,
        states: &[(String, String)],
        last_modified: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for (path, hash) in states {
            self.save_output_state(path, hash, last_modified)?;
        }
        Ok(())
    }
}

/// RFC 5005 archive pages (store/archive.rs).
pub trait ArchiveStore {
    fn ensure_archive_schema(&self) -> Result<(), StoreError>;
    fn archive_pages(&self, channel: &str) -> Result<Vec<ArchivePage>, StoreError>;
    fn archive_summary(&self, channel: &str) -> Result<StoredPages, StoreError>;
    fn archive_page_end(&self, channel: &str, page: u32) -> Result<Option<Cursor>, StoreError>;
    fn add_archive_page(&self, channel: &str, page: u32, end: &Cursor) -> Result<(), StoreError>;
    fn seal_archive_page(&self, channel: &str, page: u32) -> Result<(), StoreError>;
    /// Visible items matching `filter` after `after` and up to `upto`, in first-seen
    /// order: [`ArchiveStore::archive_items_cached`] with a cache of its own.
    fn archive_items(
        &self,
        filter: &ChannelFilter,
        after: Option<&Cursor>,
        upto: Option<&Cursor>,
    ) -> Result<Vec<(StoredItem, Cursor)>, StoreError> {
        self.archive_items_cached(filter, after, upto, &mut ItemCache::new(0))
    }
    /// [`ArchiveStore::archive_items`] through a publishing pass's [`ItemCache`].
    fn archive_items_cached(
        &self,
        filter: &ChannelFilter,
        after: Option<&Cursor>,
        upto: Option<&Cursor>,
        cache: &mut ItemCache,
    ) -> Result<Vec<(StoredItem, Cursor)>, StoreError>;
    fn archive_cursors(
        &self,
        filter: &ChannelFilter,
        after: Option<&Cursor>,
    ) -> Result<Vec<Cursor>, StoreError>;
}

/// What publishing to object storage remembers (store/uploads.rs).
pub trait UploadStore {
    fn save_output_headers(
        &self,
        docs: &[(String, &'static str, &'static str)],
    ) -> Result<(), StoreError>;
    fn published_outputs(&self) -> Result<Vec<PublishedOutput>, StoreError>;
    fn remote_objects(&self, target: &str) -> Result<HashMap<String, RemoteObject>, StoreError>;
    fn save_remote_object(
        &self,
        target: &str,
        path: &str,
        object: &RemoteObject,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    fn forget_remote_object(&self, target: &str, path: &str) -> Result<(), StoreError>;
    fn remote_state(&self, target: &str) -> Result<RemoteState, StoreError>;
    fn save_remote_state(&self, target: &str, s: &RemoteState) -> Result<(), StoreError>;
}

impl dyn Backend + '_ {
    /// [`Store::in_transaction`] for any backend: runs `f` with every store write it
    /// makes in one transaction, committed when `f` succeeds and rolled back when it
    /// fails (its error is returned). A failed commit is returned as `E::from` the
    /// store's error.
    pub fn in_transaction<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&mut dyn Backend) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut f = Some(f);
        let mut outcome: Option<Result<T, E>> = None;
        let group = self.in_group(&mut |store| {
            // The backend runs the body once; a second call would find `f` taken.
            let Some(f) = f.take() else { return false };
            let result = f(store);
            let commit = result.is_ok();
            outcome = Some(result);
            commit
        });
        match (group, outcome) {
            // Begin failed: the body never ran.
            (Err(e), None) => Err(E::from(e)),
            // The body failed: its error, whatever the rollback said.
            (_, Some(Err(e))) => Err(e),
            // The body succeeded but the commit failed: nothing was stored.
            (Err(e), Some(Ok(_))) => Err(E::from(e)),
            (Ok(()), Some(Ok(v))) => Ok(v),
            (Ok(()), None) => {
                unreachable!("a backend's in_group returned Ok without running the body")
            }
        }
    }
}

/// Why a group's body asked for a rollback: only to carry that through
/// [`Store::in_transaction`], which rolls back on any `Err`.
struct Rollback(Option<StoreError>);

impl From<StoreError> for Rollback {
    fn from(e: StoreError) -> Self {
        Rollback(Some(e))
    }
}

impl MetaStore for Store {
    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Store::meta(self, key)
    }
    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        Store::set_meta(self, key, value)
    }
    fn note_unpublished_changes(&self) -> Result<(), StoreError> {
        Store::note_unpublished_changes(self)
    }
}

impl GroupStore for Store {
    fn in_group(&mut self, body: &mut GroupBody<'_>) -> Result<(), StoreError> {
        let done = Store::in_transaction(self, |store| {
            if body(store) {
                Ok(())
            } else {
                Err(Rollback(None))
            }
        });
        match done {
            Ok(()) | Err(Rollback(None)) => Ok(()),
            Err(Rollback(Some(e))) => Err(e),
        }
    }
}

impl SourceStore for Store {
    fn source_state(&self, id: &SourceId) -> Result<SourceState, StoreError> {
        Store::source_state(self, id)
    }
    fn source_states(&self) -> Result<HashMap<String, SourceState>, StoreError> {
        Store::source_states(self)
    }
    fn save_source_states(&mut self, states: &[SourceState]) -> Result<(), StoreError> {
        Store::save_source_states(self, states)
    }
    fn reading_fingerprints(&self) -> Result<HashMap<String, String>, StoreError> {
        Store::reading_fingerprints(self)
    }
    fn set_reading_fingerprint(&self, source: &str, fingerprint: &str) -> Result<(), StoreError> {
        Store::set_reading_fingerprint(self, source, fingerprint)
    }
}

impl ItemStore for Store {
    fn latest_first_seen(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Store::latest_first_seen(self)
    }
    fn upsert_source_items(
        &mut self,
        source: &SourceId,
        items: Vec<Item>,
        now: DateTime<Utc>,
        decide: &mut Decide<'_>,
    ) -> Result<UpsertReport, StoreError> {
        Store::upsert_source_items(self, source, items, now, decide)
    }
    fn all_items(&self) -> Result<Vec<HeldItem>, StoreError> {
        Store::all_items(self)
    }
    fn prune(
        &mut self,
        max_items: usize,
        max_age: Option<chrono::Duration>,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        Store::prune(self, max_items, max_age, now)
    }
    fn withdraw_unconfigured(&mut self, configured: &[SourceId]) -> Result<usize, StoreError> {
        Store::withdraw_unconfigured(self, configured)
    }
}

impl DedupStore for Store {
    fn flush_dedupe_index(&mut self) -> Result<(), StoreError> {
        Store::flush_dedupe_index(self)
    }
    fn remap_churned_ids(
        &mut self,
        source: &SourceId,
        items: &mut [Item],
        now: DateTime<Utc>,
    ) -> Result<Churn, StoreError> {
        Store::remap_churned_ids(self, source, items, now)
    }
    fn withdraw_missing(
        &mut self,
        source: &SourceId,
        present: &[ItemId],
        whole_set: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<(ItemId, String)>, StoreError> {
        Store::withdraw_missing(self, source, present, whole_set, now)
    }
    fn clusters(&self) -> Result<Vec<Cluster>, StoreError> {
        Store::clusters(self)
    }
    fn dedupe_events(&self, limit: usize) -> Result<Vec<DedupeEvent>, StoreError> {
        Store::dedupe_events(self, limit)
    }
}

impl ChannelStore for Store {
    fn visible_items(&self, limit: usize) -> Result<Vec<StoredItem>, StoreError> {
        Store::visible_items(self, limit)
    }
    fn visible_items_where(
        &self,
        filter: &ChannelFilter,
        limit: usize,
    ) -> Result<Vec<StoredItem>, StoreError> {
        Store::visible_items_where(self, filter, limit)
    }
    fn visible_items_cached(
        &self,
        filter: &ChannelFilter,
        limit: usize,
        cache: &mut ItemCache,
    ) -> Result<Vec<StoredItem>, StoreError> {
        Store::visible_items_cached(self, filter, limit, cache)
    }
    fn visible_tag_counts(&self) -> Result<Vec<(String, usize)>, StoreError> {
        Store::visible_tag_counts(self)
    }
    fn visible_languages(&self) -> Result<Vec<String>, StoreError> {
        Store::visible_languages(self)
    }
    fn mark_representatives_shown(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        Store::mark_representatives_shown(self, now)
    }
    fn publish_dirty(&self) -> Result<Dirty, StoreError> {
        Store::publish_dirty(self)
    }
    fn clear_publish_dirty(&self) -> Result<(), StoreError> {
        Store::clear_publish_dirty(self)
    }
}

impl OutputStore for Store {
    fn output_state(&self, path: &str) -> Result<Option<(String, DateTime<Utc>)>, StoreError> {
        Store::output_state(self, path)
    }
    fn output_dates(&self) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
        Store::output_dates(self)
    }
    fn output_states_in(&self, dir: &str) -> Result<HashMap<String, OutputState>, StoreError> {
        Store::output_states_in(self, dir)
    }
    fn save_output_state(
        &self,
        path: &str,
        hash: &str,
        last_modified: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Store::save_output_state(self, path, hash, last_modified)
    }
    fn save_output_states(
        &self,
        states: &[(String, String)],
        last_modified: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Store::save_output_states(self, states, last_modified)
    }
}

impl ArchiveStore for Store {
    fn ensure_archive_schema(&self) -> Result<(), StoreError> {
        Store::ensure_archive_schema(self)
    }
    fn archive_pages(&self, channel: &str) -> Result<Vec<ArchivePage>, StoreError> {
        Store::archive_pages(self, channel)
    }
    fn archive_summary(&self, channel: &str) -> Result<StoredPages, StoreError> {
        Store::archive_summary(self, channel)
    }
    fn archive_page_end(&self, channel: &str, page: u32) -> Result<Option<Cursor>, StoreError> {
        Store::archive_page_end(self, channel, page)
    }
    fn add_archive_page(&self, channel: &str, page: u32, end: &Cursor) -> Result<(), StoreError> {
        Store::add_archive_page(self, channel, page, end)
    }
    fn seal_archive_page(&self, channel: &str, page: u32) -> Result<(), StoreError> {
        Store::seal_archive_page(self, channel, page)
    }
    fn archive_items_cached(
        &self,
        filter: &ChannelFilter,
        after: Option<&Cursor>,
        upto: Option<&Cursor>,
        cache: &mut ItemCache,
    ) -> Result<Vec<(StoredItem, Cursor)>, StoreError> {
        Store::archive_items_cached(self, filter, after, upto, cache)
    }
    fn archive_cursors(
        &self,
        filter: &ChannelFilter,
        after: Option<&Cursor>,
    ) -> Result<Vec<Cursor>, StoreError> {
        Store::archive_cursors(self, filter, after)
    }
}

impl UploadStore for Store {
    fn save_output_headers(
        &self,
        docs: &[(String, &'static str, &'static str)],
    ) -> Result<(), StoreError> {
        Store::save_output_headers(self, docs)
    }
    fn published_outputs(&self) -> Result<Vec<PublishedOutput>, StoreError> {
        Store::published_outputs(self)
    }
    fn remote_objects(&self, target: &str) -> Result<HashMap<String, RemoteObject>, StoreError> {
        Store::remote_objects(self, target)
    }
    fn save_remote_object(
        &self,
        target: &str,
        path: &str,
        object: &RemoteObject,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        Store::save_remote_object(self, target, path, object, at)
    }
    fn forget_remote_object(&self, target: &str, path: &str) -> Result<(), StoreError> {
        Store::forget_remote_object(self, target, path)
    }
    fn remote_state(&self, target: &str) -> Result<RemoteState, StoreError> {
        Store::remote_state(self, target)
    }
    fn save_remote_state(&self, target: &str, s: &RemoteState) -> Result<(), StoreError> {
        Store::save_remote_state(self, target, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    enum Failed {
        Body,
        Store(StoreError),
    }

    impl From<StoreError> for Failed {
        fn from(e: StoreError) -> Self {
            Failed::Store(e)
        }
    }

    fn store() -> Box<dyn Backend> {
        Box::new(Store::in_memory("x.example").unwrap())
    }

    #[test]
    fn a_group_that_succeeds_commits_and_returns_the_body_value() {
        let mut s = store();
        let v = s
            .in_transaction(|s| -> Result<u32, Failed> {
                s.set_meta("k", "kept")?;
                Ok(7)
            })
            .unwrap();
        assert_eq!(v, 7);
        assert_eq!(s.meta("k").unwrap().as_deref(), Some("kept"));
    }

    #[test]
    fn a_group_whose_body_fails_is_rolled_back_and_returns_the_body_error() {
        let mut s = store();
        s.set_meta("k", "before").unwrap();
        let e = s
            .in_transaction(|s| -> Result<(), Failed> {
                s.set_meta("k", "inside")?;
                s.set_meta("other", "inside")?;
                Err(Failed::Body)
            })
            .unwrap_err();
        assert!(matches!(e, Failed::Body), "{e:?}");
        assert_eq!(s.meta("k").unwrap().as_deref(), Some("before"));
        assert_eq!(s.meta("other").unwrap(), None);
    }

    #[test]
    fn a_failed_begin_is_the_store_error_and_the_body_does_not_run() {
        let mut s = Store::in_memory("x.example").unwrap();
        // A transaction already open: SQLite refuses the group's BEGIN.
        s.connection().execute_batch("BEGIN").unwrap();
        let s: &mut dyn Backend = &mut s;
        let mut ran = false;
        let e = s
            .in_transaction(|_| -> Result<(), Failed> {
                ran = true;
                Ok(())
            })
            .unwrap_err();
        match e {
            Failed::Store(e) => assert!(e.to_string().contains("transaction"), "{e}"),
            Failed::Body => panic!("the body ran"),
        }
        assert!(!ran);
    }
}
