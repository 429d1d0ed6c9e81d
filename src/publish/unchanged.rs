//! Keeping what did not change: whether a document published earlier can stay as it
//! is, and keeping it. A pass that builds a catalog asks the last catalog (in memory);
//! a pass without one (`build`) asks the store's validators and the output directory —
//! read once per pass, one query for the validators and one listing per directory,
//! rather than a query and a `stat` per document, so keeping a thousand unchanged
//! channels (or a channel's sealed archive pages) costs hash lookups.
//!
//! Which documents a pass keeps is [`super`]'s; rendering and writing the others is the
//! writer's.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::writer::Publisher;
use super::PublishError;
use crate::catalog::Catalog;
use crate::store::Backend;

/// Where a pass learns what was published before.
pub(super) enum Unchanged<'a> {
    /// The last catalog, for a pass that builds one: a document not in it is rendered.
    Catalog(Option<&'a Catalog>),
    /// The files on disk with the validators the store remembers.
    Files(OnDisk<'a>),
}

impl<'a> Unchanged<'a> {
    pub fn new(
        keep: bool,
        previous: Option<&'a Catalog>,
        store: &dyn Backend,
        out_dir: &'a Path,
    ) -> Result<Self, PublishError> {
        Ok(if keep {
            Unchanged::Catalog(previous)
        } else {
            Unchanged::Files(OnDisk::load(store, out_dir)?)
        })
    }

    /// Could [`Unchanged::keep`] keep `path`?
    pub fn can_keep(&self, path: &str) -> bool {
        match self {
            Unchanged::Catalog(previous) => previous.and_then(|c| c.get(path)).is_some(),
            Unchanged::Files(disk) => disk.published(path).is_some(),
        }
    }

    /// Keeps `path` as published; `false` (and nothing kept) when it cannot be.
    pub fn keep(&self, p: &mut Publisher, path: &str) -> Result<bool, PublishError> {
        match self {
            Unchanged::Catalog(previous) if self.can_keep(path) => {
                p.keep_unchanged(path, *previous)
            }
            Unchanged::Catalog(_) => Ok(false),
            Unchanged::Files(disk) => Ok(match disk.published(path) {
                Some(last_modified) => {
                    p.keep_on_disk(path, last_modified);
                    true
                }
                None => false,
            }),
        }
    }
}

/// The validators of every output the store remembers, and the names in each output
/// directory asked about (listed on first use).
pub(super) struct OnDisk<'a> {
    out_dir: &'a Path,
    validators: HashMap<String, DateTime<Utc>>,
    listed: RefCell<HashMap<PathBuf, HashSet<OsString>>>,
}

impl<'a> OnDisk<'a> {
    fn load(store: &dyn Backend, out_dir: &'a Path) -> Result<Self, PublishError> {
        Ok(OnDisk {
            out_dir,
            validators: store.output_dates()?,
            listed: RefCell::default(),
        })
    }

    /// When `path` was last published, if the store remembers it and its file exists.
    pub fn published(&self, path: &str) -> Option<DateTime<Utc>> {
        let last_modified = *self.validators.get(path)?;
        self.exists(path).then_some(last_modified)
    }

    fn exists(&self, path: &str) -> bool {
        let file = self.out_dir.join(path);
        let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
            return false;
        };
        let mut listed = self.listed.borrow_mut();
        let names = listed.entry(dir.to_owned()).or_insert_with(|| {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
                .map(|e| e.file_name())
                .collect()
        });
        names.contains(name)
    }
}
