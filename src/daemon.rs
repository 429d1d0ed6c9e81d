//! The long-running process: serve the published catalog, refresh and publish on the
//! cron schedule, stop cleanly on SIGTERM/SIGINT.

use std::sync::Arc;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};
use crate::pipeline::{Pipeline, SourceStatus};
use crate::publish::SharedCatalog;
use crate::serve::{self, AppState};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    #[error("server: {0}")]
    Serve(std::io::Error),
}

/// One refresh-and-publish cycle; logs a summary and updates the catalog.
pub async fn cycle(
    pipeline: &Pipeline,
    catalog: &SharedCatalog,
) -> Result<(), crate::pipeline::PipelineError> {
    let now = Utc::now();
    let reports = pipeline.refresh(now).await;
    for r in &reports {
        if let SourceStatus::Failed(e) = &r.status {
            tracing::warn!(source = %r.id, "{e}");
        }
    }
    let (cat, rep) = pipeline.publish(now)?;
    catalog.store(cat);
    pipeline.announce(&rep).await;
    tracing::info!(
        sources = reports.len(),
        failed = reports
            .iter()
            .filter(|r| matches!(r.status, SourceStatus::Failed(_)))
            .count(),
        written = rep.written.len(),
        unchanged = rep.unchanged,
        "cycle done"
    );
    Ok(())
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(cfg: Config) -> Result<(), DaemonError> {
    let schedule = config::parse_schedule(&cfg.publish.schedule).expect("validated in config");
    let listen = cfg.server.listen;
    let pipeline = Arc::new(Pipeline::open(cfg)?);
    let catalog = SharedCatalog::default();
    // Serve the last good outputs at once, before any partner is contacted.
    let (cat, _) = pipeline.publish(Utc::now())?;
    catalog.store(cat);

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| DaemonError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(DaemonError::Serve)?;
    tracing::info!(%addr, "serving");
    let token = CancellationToken::new();
    let app = serve::app(AppState {
        catalog: catalog.clone(),
    });
    let server_token = token.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { server_token.cancelled().await })
            .await
    });

    let worker_token = token.clone();
    let worker_pipeline = pipeline.clone();
    let worker_catalog = catalog.clone();
    let worker = tokio::spawn(async move {
        let run_cycle = || async {
            if let Err(e) = cycle(&worker_pipeline, &worker_catalog).await {
                tracing::error!(error = %e, "publish failed; the previous outputs stay");
            }
        };
        tokio::select! { _ = run_cycle() => {}, _ = worker_token.cancelled() => return }
        loop {
            let Some(next) = schedule.upcoming(Utc).next() else {
                return;
            };
            let wait = (next - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = worker_token.cancelled() => return,
            }
            tokio::select! { _ = run_cycle() => {}, _ = worker_token.cancelled() => return }
        }
    });

    shutdown_signal().await;
    tracing::info!("stopping");
    token.cancel();
    let _ = worker.await;
    match server.await {
        Ok(r) => r.map_err(DaemonError::Serve)?,
        Err(e) => tracing::error!(error = %e, "server task failed"),
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("signal handlers can be installed");
    let mut int = signal(SignalKind::interrupt()).expect("signal handlers can be installed");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
