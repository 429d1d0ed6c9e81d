//! What a pass without a catalog knows of what was published before: the validators the
//! store remembers and the names in each output directory ([`OnDisk`]), read once per
//! directory asked about. Asked by [`super::unchanged`] (can a document be kept?) and by
//! the writer (a rendered document's last validators), so neither queries and `stat`s
//! per document.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::store::{Backend, OutputState, StoreError};

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
    pub(super) fn new(store: &'a dyn Backend, out_dir: &'a Path) -> Self {
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
