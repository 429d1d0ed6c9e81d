//! Keeping what did not change: whether a document published earlier can stay as it
//! is, and keeping it. A pass that builds a catalog asks the last catalog (in memory);
//! a pass without one (`build`) asks the store's validators and the output directory
//! ([`OnDisk`]) — read once per directory asked about, rather than a query and a
//! `stat` per document, so keeping a thousand unchanged channels costs hash lookups.
//!
//! What it reads follows the channels, not the history: an archive directory (which
//! gains two files per full page, forever) is listed once when its pages are asked
//! about, and its validators are read page by page — only for the pages that are not
//! sealed, which are normally the newest one or two. A sealed page needs no validators:
//! the store sealed it once its final bytes were published, so its file being there is
//! all a pass needs to know.
//!
//! Which documents a pass keeps is [`super`]'s; rendering and writing the others is the
//! writer's, which asks [`OnDisk`] for a rendered document's validators too.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::Path;

use chrono::{DateTime, Utc};

use super::writer::Publisher;
use super::PublishError;
use crate::catalog::Catalog;
use crate::store::{Backend, OutputState, StoreError};

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
        store: &'a dyn Backend,
        out_dir: &'a Path,
    ) -> Self {
        if keep {
            Unchanged::Catalog(previous)
        } else {
            Unchanged::Files(OnDisk::new(store, out_dir))
        }
    }

    /// What a pass without a catalog knows of the files on disk.
    pub fn on_disk(&self) -> Option<&OnDisk<'a>> {
        match self {
            Unchanged::Files(disk) => Some(disk),
            Unchanged::Catalog(_) => None,
        }
    }

    /// Could [`Unchanged::keep`] keep `path`?
    pub fn can_keep(&self, path: &str) -> Result<bool, PublishError> {
        Ok(match self {
            Unchanged::Catalog(previous) => previous.and_then(|c| c.get(path)).is_some(),
            Unchanged::Files(disk) => disk.published(path)?.is_some(),
        })
    }

    /// Keeps `path` as published; `false` (and nothing kept) when it cannot be.
    pub fn keep(&self, p: &mut Publisher, path: &str) -> Result<bool, PublishError> {
        match self {
            Unchanged::Catalog(previous) if self.can_keep(path)? => {
                p.keep_unchanged(path, *previous)
            }
            Unchanged::Catalog(_) => Ok(false),
            Unchanged::Files(disk) => Ok(match disk.published(path)? {
                Some(last_modified) => {
                    p.keep_on_disk(path, last_modified);
                    true
                }
                None => false,
            }),
        }
    }

    /// Could [`Unchanged::keep_sealed`] keep the sealed archive page at `path`? From the
    /// last catalog, or, without one, when its file is there (no validators needed).
    pub fn can_keep_sealed(&self, path: &str) -> bool {
        match self {
            Unchanged::Catalog(previous) => previous.and_then(|c| c.get(path)).is_some(),
            Unchanged::Files(disk) => disk.exists(path),
        }
    }

    /// Keeps a sealed archive page found by [`Unchanged::can_keep_sealed`].
    pub fn keep_sealed(&self, p: &mut Publisher, path: &str) -> Result<(), PublishError> {
        match self {
            Unchanged::Catalog(previous) => {
                p.keep_unchanged(path, *previous)?;
            }
            Unchanged::Files(_) => p.keep_final(),
        }
        Ok(())
    }
}

/// The validators the store remembers and the names in each output directory, read
/// on first use: a directory of channel documents at once (one index range of
/// `outputs`, one listing), a document at the top or in an archive directory one by
/// one (see the module doc).
pub(super) struct OnDisk<'a> {
    store: &'a dyn Backend,
    out_dir: &'a Path,
    /// Validators by directory (relative to the output directory), then file name.
    by_dir: RefCell<HashMap<String, HashMap<String, OutputState>>>,
    /// Validators read one by one, by path.
    one_by_one: RefCell<HashMap<String, Option<OutputState>>>,
    /// The names of the files (not directories) in each directory listed.
    listed: RefCell<HashMap<String, HashSet<String>>>,
}

impl<'a> OnDisk<'a> {
    fn new(store: &'a dyn Backend, out_dir: &'a Path) -> Self {
        OnDisk {
            store,
            out_dir,
            by_dir: RefCell::default(),
            one_by_one: RefCell::default(),
            listed: RefCell::default(),
        }
    }

    /// When `path` was last published, if the store remembers it and its file exists.
    pub fn published(&self, path: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        if !self.exists(path) {
            return Ok(None);
        }
        Ok(self.validators(path)?.map(|s| s.last_modified))
    }

    /// What the writer needs of a document it was given: the validators it was last
    /// published with, and whether its file is there.
    pub fn state(&self, path: &str) -> Result<(Option<OutputState>, bool), StoreError> {
        Ok((self.validators(path)?, self.exists(path)))
    }

    /// The validators the store remembers for `path`.
    fn validators(&self, path: &str) -> Result<Option<OutputState>, StoreError> {
        let (dir, name) = split(path);
        if dir.is_empty() || dir == "archive" || dir.ends_with("/archive") {
            if let Some(s) = self.one_by_one.borrow().get(path) {
                return Ok(s.clone());
            }
            let s = self
                .store
                .output_state(path)?
                .map(|(hash, last_modified)| OutputState {
                    hash,
                    last_modified,
                });
            self.one_by_one
                .borrow_mut()
                .insert(path.to_owned(), s.clone());
            return Ok(s);
        }
        let mut by_dir = self.by_dir.borrow_mut();
        if !by_dir.contains_key(dir) {
            by_dir.insert(dir.to_owned(), self.store.output_states_in(dir)?);
        }
        Ok(by_dir[dir].get(name).cloned())
    }

    /// Is there a file at `path` (from one listing of its directory)?
    pub fn exists(&self, path: &str) -> bool {
        let (dir, name) = split(path);
        let mut listed = self.listed.borrow_mut();
        if let Some(names) = listed.get(dir) {
            return names.contains(name);
        }
        let names: HashSet<String> = std::fs::read_dir(self.out_dir.join(dir))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        let found = names.contains(name);
        listed.insert(dir.to_owned(), names);
        found
    }
}

/// `(directory, file name)` of an output path (`""` for the top directory).
fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}
