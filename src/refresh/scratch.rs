//! The refresh's deduplication run on one local source's posts alone, for
//! `feedwerk check`: the same upsert and rules a build uses, in a scratch in-memory
//! store, so an operator sees which files a build would merge before it runs.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::dedupe::Deduper;
use crate::model::{Item, ItemId, SourceId};
use crate::store::{Store, StoreError};

/// Two local posts that tell one story: the file shown and the file merged into it.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalDuplicate {
    pub kept: String,
    pub duplicate: String,
    pub reason: String,
}

/// Duplicates among one local source's `posts` (each with its file name), by file
/// name, sorted.
pub fn local_duplicates(
    deduper: &Deduper,
    source: &SourceId,
    posts: Vec<(String, Item)>,
    now: DateTime<Utc>,
) -> Result<Vec<LocalDuplicate>, StoreError> {
    let names: HashMap<ItemId, String> = posts
        .iter()
        .map(|(name, it)| (it.id.clone(), name.clone()))
        .collect();
    let mut scratch = Store::in_memory("localhost")?;
    let items = posts.into_iter().map(|(_, it)| it).collect();
    scratch.upsert_source_items(source, items, now, |c, i| deduper.decide(c, i))?;
    let name = |id: &ItemId| names.get(id).cloned().unwrap_or_else(|| id.to_string());
    let mut out = Vec::new();
    for c in scratch.clusters()? {
        for (m, why) in c.members {
            out.push(LocalDuplicate {
                kept: name(&c.rep.id),
                duplicate: name(&m.id),
                reason: why,
            });
        }
    }
    out.sort_by(|a, b| (&a.kept, &a.duplicate).cmp(&(&b.kept, &b.duplicate)));
    Ok(out)
}
