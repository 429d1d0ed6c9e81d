//! Opening the PostgreSQL store from the config's [`DbUrl`]: the pipeline's
//! [`PgStore::open`], whose errors name the server (without its password), and
//! [`inspect`], what `feedwerk check` reports about a database without changing it
//! (no migration, no table created: `check` is safe on a database in use, and says
//! what a first `build` would do to an empty one).

use std::path::Path;

use super::{current_version, PgStore, PgTarget, MIGRATIONS};
use crate::db_url::DbUrl;
use crate::store::StoreError;

impl PgStore {
    /// [`PgStore::connect_to`] the database at `url` (over TLS as its `sslmode` says,
    /// trusting `ca_file`'s CAs when given: `store.ca_file`) with published IDs minted
    /// under `authority` (see [`PgStore::with_authority`]); an error names the server.
    pub fn open(
        url: &DbUrl,
        ca_file: Option<&Path>,
        authority: &str,
    ) -> Result<PgStore, StoreError> {
        PgStore::connect_to(&target(url, ca_file))
            .map(|s| s.with_authority(authority))
            .map_err(|e| named(url, e))
    }
}

/// How to reach `url` (see `tls`).
pub(super) fn target(url: &DbUrl, ca_file: Option<&Path>) -> PgTarget {
    let t = PgTarget::new(url.secret());
    match ca_file {
        Some(ca) => t.with_ca_file(ca),
        None => t,
    }
}

/// `e`, naming the server `url` unless it already does.
pub(crate) fn named(url: &DbUrl, e: StoreError) -> StoreError {
    match e {
        StoreError::PgUrl { .. } | StoreError::PgServer { .. } => e,
        other => StoreError::PgServer {
            url: url.to_string(),
            error: Box::new(other),
        },
    }
}

/// What [`inspect`] found in a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The schema version it is at (0: no feedwerk store yet).
    pub version: i64,
    /// The newest schema version this feedwerk knows.
    pub known: i64,
    /// Items held (not withdrawn), when the database has a store.
    pub items: Option<i64>,
}

/// Connects to `url` once (as [`PgStore::open`] would) and reads its schema version and
/// the items held, writing nothing. The connection is closed before returning.
pub fn inspect(url: &DbUrl, ca_file: Option<&Path>) -> Result<Inspection, StoreError> {
    let (config, tls) = target(url, ca_file).resolve().map_err(|e| named(url, e))?;
    let read = async move {
        let (client, connection) = config.connect(tls).await?;
        // The connection's own task: it ends when `client` is dropped.
        let conn = tokio::spawn(connection);
        let version = current_version(&client).await?;
        let items = if version > 0 {
            let n: i64 = client
                .query_one("SELECT count(*) FROM items WHERE NOT withdrawn", &[])
                .await?
                .get(0);
            Some(n)
        } else {
            None
        };
        drop(client);
        let _ = conn.await;
        Ok::<_, StoreError>(Inspection {
            version,
            known: MIGRATIONS.len() as i64,
            items,
        })
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(StoreError::PgRuntime)?;
    rt.block_on(read).map_err(|e| named(url, e))
}
