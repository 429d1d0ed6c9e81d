//! Leader or standby: what `feedwerk run` is when several processes share one
//! PostgreSQL store (issue 20). The election itself is the store's
//! ([`crate::store::postgres::leader`]); this module is what the daemon needs of it: the
//! [`Replication`] it runs with (the election, and how to open the store for a term, its
//! writes fenced by that term) and a way to wait for the role to change. With SQLite
//! there is no replication: the one process always leads.

use tokio::sync::watch;

use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::store::postgres::{Fence, Leadership, PgStore, PgTarget, Role, Timing};
use crate::store::{Backend, StoreError};

/// Opens the store for one term: every write of it fenced by `fence`.
pub type OpenStore = dyn Fn(&Config, Fence) -> Result<Box<dyn Backend>, StoreError> + Send + Sync;

/// This process's part among several on one store.
pub struct Replication {
    pub leadership: Leadership,
    pub open: Box<OpenStore>,
}

impl Replication {
    /// Campaigning on the PostgreSQL store at `url` (with `cfg`'s `store.ca_file` and
    /// `store.takeover`) as `holder`, each term on a store of its own, fenced by it.
    pub fn postgres(cfg: &Config, url: &str, holder: &str) -> Result<Replication, StoreError> {
        let mut target = PgTarget::new(url);
        if let Some(ca) = &cfg.store.ca_file {
            target = target.with_ca_file(ca);
        }
        let timing = Timing {
            takeover: cfg.store.takeover,
        };
        // The epoch row is part of the schema: migrate (or check) before campaigning.
        drop(PgStore::connect_to(&target)?);
        let leadership = Leadership::start(&target, timing, holder)?;
        let open: Box<OpenStore> = Box::new(move |cfg, fence| {
            let store = PgStore::connect_to(&target)?
                .with_authority(&crate::publish::authority(cfg))
                .with_fence(fence);
            Ok(Box::new(store))
        });
        Ok(Replication { leadership, open })
    }

    /// The pipeline of `cfg` for the term `fence` belongs to.
    pub fn pipeline(&self, cfg: &Config, fence: Fence) -> Result<Pipeline, StoreError> {
        let store = (self.open)(cfg, fence)?;
        Ok(Pipeline::with_store(cfg.clone(), store))
    }
}

/// Who this process is, for the epoch row and logs: host, process ID and the address
/// it serves on.
pub fn holder(cfg: &Config) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown host".into());
    format!("{host} pid {} ({})", std::process::id(), cfg.server.listen)
}

/// Resolves when the role changes; never without an election (`None`) or once it has
/// stopped.
pub async fn changed(roles: &mut Option<watch::Receiver<Role>>) {
    if let Some(rx) = roles {
        if rx.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}
