//! `feedwerk migrate`: moves a deployment's SQLite store into an empty PostgreSQL
//! database without changing one published ID. Every record table (schema_1.sql
//! lists them, column for column) is copied with binary `COPY` in one transaction, so
//! a failure leaves the target as empty as it was; then the derived tables (the LSH
//! band rows and title parts) are rebuilt from the copied records
//! ([`rebuild_dedupe_index`]). The publish index (tag and language counts, unshown
//! representatives, dirty channels) is kept by the target's triggers as rows arrive.
//!
//! What is not copied, because PostgreSQL derives it or does not use it: SQLite's
//! `dedupe_band`, `dedupe_title_part`, `dedupe_band_filter`, `dedupe_band_gone`, the
//! publish index tables, `dedupe_sig.published` (read from the item here) and the
//! band bookkeeping in `meta`. `items` and `dedupe_events` are copied in rowid order
//! with their rowid as `seq`, the order SQLite returns their ties in.
//!
//! The SQLite file is opened read-only and read in one snapshot (safe while a daemon
//! still runs on it, though its later writes are not copied: stop it first). A reader
//! thread streams its rows to the copy running on the store's runtime, so a large
//! store is never held in memory whole.

use std::path::{Path, PathBuf};
use std::pin::pin;

use rusqlite::types::ValueRef;
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::dedup::rebuild_dedupe_index;
use super::{Param, PgStore};
use crate::db_url::DbUrl;
use crate::store::schema::{open_untouched, SCHEMA_VERSION};
use crate::store::StoreError;

/// A column's type in the target (the source's SQLite value is converted to it).
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Int,
    Bool,
    Text,
    Bytes,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Int => "BIGINT",
            Kind::Bool => "BOOLEAN",
            Kind::Text => "TEXT",
            Kind::Bytes => "BYTEA",
        })
    }
}

impl Kind {
    fn pg_type(self) -> Type {
        match self {
            Kind::Int => Type::INT8,
            Kind::Bool => Type::BOOL,
            Kind::Text => Type::TEXT,
            Kind::Bytes => Type::BYTEA,
        }
    }
}

/// One record table: its columns in both stores, and the SQLite rows to copy.
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    /// `seq` is filled with the SQLite rowid, and rows are read in rowid order.
    rowid_seq: bool,
    /// A filter on the SQLite rows (`WHERE …`), or "".
    filter: &'static str,
}

use Kind::{Bool, Bytes, Int, Text};

/// The record tables in copy order (an item before its tags). A column the target has
/// and this list does not is an error before anything is copied ([`check_columns`]).
const TABLES: &[Table] = &[
    Table {
        name: "meta",
        columns: &[("key", Text), ("value", Text)],
        rowid_seq: false,
        // The SQLite band table's bookkeeping (store/bandfilter.rs).
        filter: "WHERE key NOT IN ('dedupe_band_filter', 'dedupe_bands_through')",
    },
    Table {
        name: "sources",
        columns: &[
            ("id", Text),
            ("url", Text),
            ("etag", Text),
            ("last_modified", Text),
            ("last_attempt", Int),
            ("last_success", Int),
            ("last_status", Text),
            ("last_error", Text),
            ("consecutive_failures", Int),
            ("next_fetch", Int),
            ("moved_to", Text),
            ("gone", Bool),
            ("fetch_count", Int),
            ("window_at", Int),
        ],
        rowid_seq: false,
        filter: "",
    },
    Table {
        name: "source_reading",
        columns: &[("source_id", Text), ("fingerprint", Text)],
        rowid_seq: false,
        filter: "",
    },
    Table {
        name: "items",
        columns: &[
            ("id", Text),
            ("source_id", Text),
            ("guid", Text),
            ("canonical_url", Text),
            ("text_hash", Text),
            ("published", Int),
            ("first_seen", Int),
            ("last_seen", Int),
            ("published_id", Text),
            ("dup_of", Text),
            ("dup_reason", Text),
            ("withdrawn", Bool),
            ("data", Text),
            ("language", Text),
            ("title", Text),
            ("text", Text),
        ],
        rowid_seq: true,
        filter: "",
    },
    Table {
        name: "outputs",
        columns: &[
            ("path", Text),
            ("content_hash", Text),
            ("last_modified", Int),
        ],
        rowid_seq: false,
        filter: "",
    },
    Table {
        name: "item_tags",
        columns: &[("item_id", Text), ("tag", Text)],
        rowid_seq: false,
        filter: "",
    },
    Table {
        name: "dedupe_sig",
        columns: &[
            ("n", Int),
            ("item_id", Text),
            ("version", Int),
            ("shingles", Int),
            ("sig", Bytes),
            ("title_key", Text),
        ],
        rowid_seq: false,
        filter: "",
    },
    Table {
        name: "dedupe_shown",
        columns: &[("item_id", Text), ("first_shown", Int)],
        rowid_seq: false,
        filter: "",
    },
    Table {
        name: "item_alias",
        columns: &[("alias", Text), ("item_id", Text)],
        rowid_seq: false,
        filter: "",
    },
    Table {
        name: "dedupe_events",
        columns: &[
            ("at", Int),
            ("source_id", Text),
            ("kind", Text),
            ("detail", Text),
        ],
        rowid_seq: true,
        filter: "",
    },
    Table {
        name: "archive_pages",
        columns: &[
            ("channel", Text),
            ("page", Int),
            ("end_first_seen", Int),
            ("end_id", Text),
            ("sealed", Bool),
        ],
        rowid_seq: false,
        filter: "",
    },
    Table {
        name: "output_headers",
        columns: &[
            ("path", Text),
            ("content_type", Text),
            ("cache_control", Text),
        ],
        rowid_seq: false,
        filter: "",
    },
    Table {
        name: "remote_objects",
        columns: &[
            ("target", Text),
            ("path", Text),
            ("content_hash", Text),
            ("content_type", Text),
            ("cache_control", Text),
            ("etag", Text),
            ("uploaded_at", Int),
        ],
        rowid_seq: false,
        filter: "",
    },
    Table {
        name: "remote_state",
        columns: &[
            ("target", Text),
            ("last_attempt", Int),
            ("last_success", Int),
            ("consecutive_failures", Int),
            ("last_error", Text),
            ("next_attempt", Int),
            ("objects", Int),
            ("held_deletes", Int),
        ],
        rowid_seq: false,
        filter: "",
    },
];

/// The target's tables `migrate` does not copy into: derived from the record tables
/// (rebuilt or kept by triggers), or the store's own bookkeeping. Any other table in
/// the target must be in [`TABLES`].
const NOT_COPIED: &[&str] = &[
    "feedwerk_schema",
    "feedwerk_leader",
    "dedupe_band",
    "dedupe_title_part",
    "publish_dirty",
    "visible_tag_counts",
    "visible_language_counts",
    "unshown_representatives",
];

/// Rows sent to the copy at a time.
const BATCH: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{path}: no SQLite store there")]
    NoSource { path: PathBuf },
    #[error("{path}: cannot read the SQLite store: {source}")]
    Source {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{path}: the SQLite store has schema version {version}, not {SCHEMA_VERSION}: run `feedwerk build` with this version once to upgrade it, then migrate")]
    SourceSchema { path: PathBuf, version: i64 },
    #[error(
        "{path}: table {table}, column {column}: {found} where the PostgreSQL column is {kind}; nothing was copied"
    )]
    Value {
        path: PathBuf,
        table: &'static str,
        column: &'static str,
        found: &'static str,
        kind: Kind,
    },
    #[error("{url}: table {table} already holds rows; `feedwerk migrate` copies only into an empty database (a new one, or drop the tables first)")]
    NotEmpty { url: String, table: String },
    #[error("{url}: table {table} is not one of feedwerk's; `feedwerk migrate` copies only into a database of its own")]
    Foreign { url: String, table: String },
    #[error("{url}: table {table} column {column} is not known to `feedwerk migrate` (a newer schema?); nothing was copied")]
    UnknownColumn {
        url: String,
        table: String,
        column: String,
    },
    #[error(transparent)]
    Target(#[from] StoreError),
}

/// Rows copied per table, in copy order.
#[derive(Debug, Default)]
pub struct MigrateReport {
    pub tables: Vec<(&'static str, u64)>,
}

/// What the reader thread sends: a batch of rows of the current table, or its end.
enum Msg {
    Rows(Vec<Vec<Param>>),
    End,
}

/// Copies the SQLite store at `from` into the empty PostgreSQL database at `to`
/// (creating its schema; TLS as its `sslmode` says, trusting `ca_file`'s CAs when
/// given), in one transaction, and rebuilds its derived tables.
pub fn migrate(
    from: &Path,
    to: &DbUrl,
    ca_file: Option<&Path>,
) -> Result<MigrateReport, MigrateError> {
    if !from.is_file() {
        return Err(MigrateError::NoSource {
            path: from.to_owned(),
        });
    }
    let src_err = |source| MigrateError::Source {
        path: from.to_owned(),
        source,
    };
    let conn = open_untouched(from).map_err(src_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(src_err)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(src_err)?;
    if version != SCHEMA_VERSION {
        return Err(MigrateError::SourceSchema {
            path: from.to_owned(),
            version,
        });
    }
    let store = PgStore::connect_to(&super::open::target(to, ca_file))
        .map_err(|e| super::open::named(to, e))?;
    let (tx, rx) = mpsc::channel::<Msg>(4);
    let path = from.to_owned();
    let reader = std::thread::Builder::new()
        .name("feedwerk-migrate-read".into())
        .spawn(move || read_all(&conn, &path, &tx))
        .map_err(StoreError::PgRuntime)?;
    let url = to.to_string();
    let written = store.with_write(move |c| async move { copy_all(&c, rx, &url).await });
    // The reader's error first: the copy then failed only because its rows stopped.
    match reader.join() {
        Ok(Err(e)) => return Err(e),
        Ok(Ok(())) => {}
        Err(panic) => std::panic::resume_unwind(panic),
    }
    match written {
        Ok(Ok(tables)) => Ok(MigrateReport { tables }),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(super::open::named(to, e).into()),
    }
}

/// Reads every table of [`TABLES`] in one read transaction and sends its rows. Stops
/// quietly when the copy stopped listening (it reports why).
fn read_all(
    conn: &rusqlite::Connection,
    path: &Path,
    tx: &mpsc::Sender<Msg>,
) -> Result<(), MigrateError> {
    let src_err = |source| MigrateError::Source {
        path: path.to_owned(),
        source,
    };
    conn.execute_batch("BEGIN").map_err(src_err)?;
    for table in TABLES {
        if !crate::store::table_exists(conn, table.name).map_err(src_err)? {
            // Made on first use (archive pages): an empty table.
            if tx.blocking_send(Msg::End).is_err() {
                return Ok(());
            }
            continue;
        }
        let mut columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
        let order = if table.rowid_seq {
            columns.push("rowid");
            "ORDER BY rowid"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {} FROM {} {} {order}",
            columns.join(", "),
            table.name,
            table.filter
        );
        let mut stmt = conn.prepare(&sql).map_err(src_err)?;
        let mut rows = stmt.query([]).map_err(src_err)?;
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(row) = rows.next().map_err(src_err)? {
            let mut values = Vec::with_capacity(columns.len());
            for (i, (column, kind)) in table.columns.iter().enumerate() {
                let v = row.get_ref(i).map_err(src_err)?;
                values.push(convert(v, *kind).map_err(|found| MigrateError::Value {
                    path: path.to_owned(),
                    table: table.name,
                    column,
                    found,
                    kind: *kind,
                })?);
            }
            if table.rowid_seq {
                let rowid: i64 = row.get(table.columns.len()).map_err(src_err)?;
                values.push(Box::new(rowid));
            }
            batch.push(values);
            if batch.len() == BATCH
                && tx
                    .blocking_send(Msg::Rows(std::mem::take(&mut batch)))
                    .is_err()
            {
                return Ok(());
            }
        }
        if !batch.is_empty() && tx.blocking_send(Msg::Rows(batch)).is_err() {
            return Ok(());
        }
        if tx.blocking_send(Msg::End).is_err() {
            return Ok(());
        }
    }
    conn.execute_batch("COMMIT").map_err(src_err)?;
    Ok(())
}

/// One SQLite value as the target column's type; `Err` names what was found instead.
fn convert(v: ValueRef<'_>, kind: Kind) -> Result<Param, &'static str> {
    Ok(match (kind, v) {
        (Kind::Int, ValueRef::Null) => Box::new(None::<i64>),
        (Kind::Int, ValueRef::Integer(i)) => Box::new(Some(i)),
        (Kind::Bool, ValueRef::Null) => Box::new(None::<bool>),
        (Kind::Bool, ValueRef::Integer(i)) => Box::new(Some(i != 0)),
        (Kind::Text, ValueRef::Null) => Box::new(None::<String>),
        (Kind::Text, ValueRef::Text(t)) => Box::new(Some(
            String::from_utf8(t.to_vec()).map_err(|_| "text that is not UTF-8")?,
        )),
        // A number in a TEXT column (SQLite's type affinity keeps it as text, but a
        // hand-edited store may not): its text.
        (Kind::Text, ValueRef::Integer(i)) => Box::new(Some(i.to_string())),
        (Kind::Bytes, ValueRef::Null) => Box::new(None::<Vec<u8>>),
        (Kind::Bytes, ValueRef::Blob(b)) => Box::new(Some(b.to_vec())),
        (_, ValueRef::Integer(_)) => return Err("an integer"),
        (_, ValueRef::Real(_)) => return Err("a real number"),
        (_, ValueRef::Text(_)) => return Err("text"),
        (_, ValueRef::Blob(_)) => return Err("a blob"),
    })
}

/// In the open transaction on `c`: checks the target, copies each table's rows as the
/// reader sends them, then rebuilds the derived tables. The outer `Result` is the
/// store's (it rolls back), the inner one this migration's own refusals, which must
/// roll back too: they are returned as a store error carrying nothing, see below.
async fn copy_all(
    c: &super::Conn,
    mut rx: mpsc::Receiver<Msg>,
    url: &str,
) -> Result<Result<Vec<(&'static str, u64)>, MigrateError>, StoreError> {
    if let Err(e) = check_target(c, url).await? {
        // Nothing written yet: committing the empty transaction is harmless.
        return Ok(Err(e));
    }
    let mut copied = Vec::new();
    for table in TABLES {
        let mut columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
        let mut types: Vec<Type> = table.columns.iter().map(|(_, k)| k.pg_type()).collect();
        if table.rowid_seq {
            columns.push("seq");
            types.push(Type::INT8);
        }
        let sink = c
            .copy_in(&format!(
                "COPY {} ({}) FROM STDIN (FORMAT binary)",
                table.name,
                columns.join(", ")
            ))
            .await?;
        let mut writer = pin!(BinaryCopyInWriter::new(sink, &types));
        loop {
            match rx.recv().await {
                Some(Msg::Rows(rows)) => {
                    for row in rows {
                        let refs: Vec<&(dyn ToSql + Sync)> = row
                            .iter()
                            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                            .collect();
                        writer.as_mut().write(&refs).await?;
                    }
                }
                Some(Msg::End) => break,
                // The reader failed (it says why); this rolls the copy back.
                None => return Err(StoreError::PgGone),
            }
        }
        copied.push((table.name, writer.finish().await?));
    }
    rebuild_dedupe_index(c).await?;
    Ok(Ok(copied))
}

/// The target must be empty (every table migrate copies into or derives), and every
/// column of its record tables known here, before anything is copied.
async fn check_target(c: &super::Conn, url: &str) -> Result<Result<(), MigrateError>, StoreError> {
    let rows = c
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
            &[],
        )
        .await?;
    let mut tables: Vec<String> = Vec::new();
    for r in &rows {
        let (table, column): (String, String) = (r.get(0), r.get(1));
        if !tables.contains(&table) {
            tables.push(table.clone());
        }
        if NOT_COPIED.contains(&table.as_str()) {
            continue;
        }
        let Some(spec) = TABLES.iter().find(|t| t.name == table) else {
            return Ok(Err(MigrateError::Foreign {
                url: url.to_owned(),
                table,
            }));
        };
        let known =
            spec.columns.iter().any(|(c, _)| *c == column) || (spec.rowid_seq && column == "seq");
        if !known {
            return Ok(Err(MigrateError::UnknownColumn {
                url: url.to_owned(),
                table,
                column,
            }));
        }
    }
    // The record tables first, in copy order (`items` names a used database best),
    // then the derived ones; the store's bookkeeping rows are always there.
    let derived = NOT_COPIED
        .iter()
        .filter(|t| !matches!(**t, "feedwerk_schema" | "feedwerk_leader"));
    for table in TABLES.iter().map(|t| t.name).chain(derived.copied()) {
        if !tables.iter().any(|t| t == table) {
            continue;
        }
        let held: bool = c
            .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])
            .await?
            .get(0);
        if held {
            return Ok(Err(MigrateError::NotEmpty {
                url: url.to_owned(),
                table: table.to_owned(),
            }));
        }
    }
    Ok(Ok(()))
}
