//! A run of write statements sent as one pipeline: each statement is prepared first
//! (from the connection's statement cache after its first use), then every one is sent
//! before the first answer is read. The server runs them one after another in the
//! order sent (tokio-postgres sends requests in the order their futures are first
//! polled, and `try_join_all` polls in order), so a later statement sees what an
//! earlier one wrote, and a run of them costs about one round trip instead of one
//! each. Used by the items and deduplication areas to store an upsert's rows.

use deadpool_postgres::ClientWrapper;
use tokio_postgres::types::ToSql;
use tokio_postgres::Statement;

use super::Param;
use crate::store::StoreError;

/// Statements waiting to be sent, with their owned parameters.
#[derive(Default)]
pub(super) struct Pipeline {
    statements: Vec<(Statement, Vec<Param>)>,
}

impl Pipeline {
    /// Adds `sql` with `params`, preparing it now (before anything is sent).
    pub(super) async fn push(
        &mut self,
        c: &ClientWrapper,
        sql: &str,
        params: Vec<Param>,
    ) -> Result<(), StoreError> {
        let stmt = c.prepare_cached(sql).await?;
        self.statements.push((stmt, params));
        Ok(())
    }

    /// Sends every statement and waits for all of them; the first error is returned
    /// (the later statements of a failed transaction fail with it, and the caller
    /// rolls it back).
    pub(super) async fn run(self, c: &ClientWrapper) -> Result<(), StoreError> {
        let refs: Vec<Vec<&(dyn ToSql + Sync)>> = self
            .statements
            .iter()
            .map(|(_, ps)| {
                ps.iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect()
            })
            .collect();
        let sent = self
            .statements
            .iter()
            .zip(&refs)
            .map(|((stmt, _), ps)| c.execute(stmt, ps));
        futures_util::future::try_join_all(sent).await?;
        Ok(())
    }
}
