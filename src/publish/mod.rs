//! Rendered documents → files on disk and the in-memory catalog the server reads.
//!
//! [`writer`] runs a publishing pass (check, compress, atomic write, validators);
//! [`files`] owns the file side (atomic writes, temp files, stale files) and
//! [`compress`] the gzip and brotli copies.

mod compress;
mod files;
mod writer;

use std::path::PathBuf;

use crate::render::verify::VerifyError;
use crate::store::StoreError;

pub use compress::{precompress, Reach};
pub(crate) use files::readable_temp_file;
pub use files::{remove_archive_pages, remove_stale_channels, sweep_stale_temp_files};
pub use writer::{
    plan, publish, publish_pass, publish_with, Body, Document, Mode, Published, Publisher,
};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct PublishReport {
    /// Paths written this time.
    pub written: Vec<String>,
    /// Documents kept as they were (same bytes, or their channel did not change).
    pub unchanged: usize,
    /// Documents rendered in this pass (the others' channels did not change).
    pub rendered: usize,
    /// Subscription feeds (paths) whose content changed: what WebSub subscribers need.
    pub changed_feeds: Vec<String>,
    /// Documents that failed their check: the previous version stays published.
    pub failed: Vec<(String, VerifyError)>,
    /// Documents of channels no longer published, removed from the output directory
    /// with their compressed copies (see [`files::remove_stale_channels`]).
    pub removed: Vec<String>,
}
