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

use std::path::Path;

use super::on_disk::OnDisk;
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
