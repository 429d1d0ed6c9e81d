//! One integration-test binary (as ripgrep does): each module pins down one area's
//! behaviour through the real interfaces — the `feedwerk` CLI, HTTP, files on disk.

mod abridged;
mod archives;
mod config;
mod daemon;
mod dedupe;
mod doctor;
mod fetch;
mod formats;
mod golden;
mod ids;
mod import;
mod incremental_publish;
mod interop;
mod language;
mod normalise;
mod object_storage;
mod package;
mod page;
mod pg_server;
mod pipeline;
mod postgres;
mod postgres_channels;
mod postgres_cli;
mod postgres_items;
mod postgres_leader;
mod progress;
mod publish;
mod reread;
mod server;
mod support;
