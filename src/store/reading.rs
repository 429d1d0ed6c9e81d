//! The reading fingerprint each source's held items were made with (see
//! [`crate::reading`]): written in the same transaction as the items, so the two never
//! disagree; compared by the refresh, which re-reads a source whose settings changed.

use rusqlite::params;

use super::{Store, StoreError};

impl Store {
    /// Every source's fingerprint, by source id. A source without one (never read, or
    /// held by a store from before fingerprints) counts as read with other settings.
    pub fn reading_fingerprints(
        &self,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT source_id, fingerprint FROM source_reading")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records that `source`'s items were just read with `fingerprint`.
    pub fn set_reading_fingerprint(
        &self,
        source: &str,
        fingerprint: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO source_reading (source_id, fingerprint) VALUES (?1, ?2)
                 ON CONFLICT(source_id) DO UPDATE SET fingerprint = ?2",
            )?
            .execute(params![source, fingerprint])?;
        Ok(())
    }
}
