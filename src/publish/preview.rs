//! What `build --dry-run` shows: the items that would enter, change in and leave the
//! combined feed, and the documents whose bytes would change. The refresh that
//! produced `after` ran against a private copy of the store (see
//! `Pipeline::preview`); this module only compares and counts.

use std::collections::HashMap;

use super::PublishReport;
use crate::model::SourceReport;
use crate::store::StoredItem;

/// What the next publish would do, from `build --dry-run`.
#[derive(Debug)]
pub struct Preview {
    pub reports: Vec<SourceReport>,
    /// Items that would enter the combined feed.
    pub added: Vec<StoredItem>,
    /// Items in the combined feed whose content would change.
    pub changed: Vec<StoredItem>,
    /// Items that would leave the combined feed (source removed, pruned, pushed out).
    pub withdrawn: Vec<StoredItem>,
    /// Output paths whose bytes would change.
    pub rewrite: Vec<String>,
    /// How many output documents there would be.
    pub documents: usize,
}

impl Preview {
    /// Compares the combined feed's items `before` and `after` a refresh; `plan` is
    /// what a [`super::Mode::Plan`] pass over the refreshed store reported.
    pub fn new(
        reports: Vec<SourceReport>,
        before: &[StoredItem],
        after: &[StoredItem],
        plan: PublishReport,
    ) -> Preview {
        let old: HashMap<&str, &StoredItem> =
            before.iter().map(|s| (s.item.id.0.as_str(), s)).collect();
        let new: HashMap<&str, &StoredItem> =
            after.iter().map(|s| (s.item.id.0.as_str(), s)).collect();
        let added = after
            .iter()
            .filter(|s| !old.contains_key(s.item.id.0.as_str()))
            .cloned()
            .collect();
        let changed = after
            .iter()
            .filter(|s| {
                old.get(s.item.id.0.as_str())
                    .is_some_and(|o| o.item != s.item || o.also_at != s.also_at)
            })
            .cloned()
            .collect();
        let withdrawn = before
            .iter()
            .filter(|s| !new.contains_key(s.item.id.0.as_str()))
            .cloned()
            .collect();
        Preview {
            reports,
            added,
            changed,
            withdrawn,
            documents: plan.written.len() + plan.unchanged,
            rewrite: plan.written,
        }
    }
}
