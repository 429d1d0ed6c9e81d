//! Source adapters: whatever a source delivers (files, feed bytes, page bytes) becomes a
//! [`ParsedFeed`] of untrusted [`Entry`]s. Foreign parser types stay in these files.

pub mod decode;
pub mod feed;
pub mod local;

#[allow(unused_imports)]
pub use crate::model::{Entry, ParsedFeed};
