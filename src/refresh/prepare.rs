//! The CPU-only step between fetching and storing: parses and normalises what one
//! source delivered. It reads only the config, so it runs on worker threads while the
//! store takes earlier sources. Parsing is `source`'s, normalising `normalise`'s.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use url::Url;

use super::acquire::{Acquired, Downloaded};
use super::state::Failure;
use crate::config::Config;
use crate::fetch::{self, FetchOutcome, Validators};
use crate::model::{Item, ParsedFeed, Source, SourceState};
use crate::normalise::{self, Context};
use crate::source;

/// One source's delivery made ready for the store, off the store's thread.
pub(super) enum Prepared {
    Skipped(String),
    Failed(Failure),
    NotModified {
        max_age: Option<Duration>,
        validators: Validators,
        moved_permanently: Option<Url>,
    },
    Ready(Box<Ready>),
}

/// Normalised items of one document, with what the source's state needs from it.
#[derive(Clone)]
pub(super) struct Ready {
    pub items: Vec<Item>,
    /// Problems with single entries or posts; the rest is stored.
    pub problems: Vec<String>,
    pub ttl_minutes: Option<u32>,
    /// The HTTP response's metadata (its body is dropped once parsed); `None` for posts.
    pub fetched: Option<Box<fetch::Fetched>>,
}

/// A source with its prepared delivery, still holding its slot among the bodies in
/// memory.
pub(super) struct Delivery {
    pub source: Source,
    pub state: SourceState,
    pub prepared: Prepared,
    pub begun_at: Instant,
    pub permit: OwnedSemaphorePermit,
}

/// How many documents are parsed and normalised at once: one per core, since that
/// work is CPU-bound and the store is written from one thread anyway.
pub(super) fn parse_workers() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// Starts preparing `d` on a blocking thread at once (not when the returned future is
/// first polled), so workers keep going while the store takes the previous group.
/// `below`: where undated back catalogue of a source seen for the first time goes
/// (read once per refresh, see `normalise::BackCatalogue`).
pub(super) fn start(
    cfg: &Arc<Config>,
    d: Downloaded,
    now: DateTime<Utc>,
    below: Option<DateTime<Utc>>,
) -> impl Future<Output = Delivery> {
    let cfg = cfg.clone();
    let back = (d.state.items_held == 0).then_some(normalise::BackCatalogue { below });
    let source: Source = d.source.clone();
    let acquired = d.acquired;
    let job = tokio::task::spawn_blocking(move || prepare(&cfg, &source, acquired, now, back));
    let (source, state, begun_at, permit) = (d.source, d.state, d.begun_at, d.permit);
    async move {
        let prepared = job.await.unwrap_or_else(|e| {
            Prepared::Failed(Failure::Parse(format!(
                "reading the document stopped unexpectedly: {e}"
            )))
        });
        Delivery {
            source,
            state,
            prepared,
            begun_at,
            permit,
        }
    }
}

/// Parses and normalises what one source delivered. Pure CPU work that reads only the
/// config, so it runs on a worker thread while the store takes the previous source.
fn prepare(
    cfg: &Config,
    s: &Source,
    a: Acquired,
    now: DateTime<Utc>,
    back_catalogue: Option<normalise::BackCatalogue>,
) -> Prepared {
    let mut problems = Vec::new();
    let (parsed, fetched) = match a {
        Acquired::Skipped(why) => return Prepared::Skipped(why),
        Acquired::Failed(e) => return Prepared::Failed(Failure::Fetch(e)),
        Acquired::Remote(FetchOutcome::NotModified {
            max_age,
            validators,
            moved_permanently,
        }) => {
            return Prepared::NotModified {
                max_age,
                validators,
                moved_permanently,
            }
        }
        Acquired::Local(path) => (read_local(cfg, s, &path, &mut problems), None),
        Acquired::Remote(FetchOutcome::Fetched(mut fetched)) => {
            let origin = s.kind.url().map(|u| u.to_string()).unwrap_or_default();
            let parsed = source::parse_remote(
                s,
                &fetched.body,
                fetched.charset.as_deref(),
                &fetched.final_url,
                &origin,
            );
            // The body is the biggest thing a source brings; it is not needed any more.
            fetched.body = Vec::new();
            match parsed {
                Ok((p, _)) => (p, Some(fetched)),
                Err(e) => return Prepared::Failed(Failure::Parse(e.to_string())),
            }
        }
    };
    problems.extend(parsed.problems.iter().cloned());
    let ctx = Context {
        source: s,
        feed_link: parsed.link.as_ref(),
        feed_language: parsed.language.as_deref(),
        tag_map: &cfg.tags,
        now,
        back_catalogue,
    };
    let (items, errors) = normalise::normalise_all(&parsed.entries, &ctx);
    problems.extend(errors.iter().map(ToString::to_string));
    Prepared::Ready(Box::new(Ready {
        items,
        problems,
        ttl_minutes: parsed.ttl_minutes,
        fetched,
    }))
}

/// A local source's posts (drafts left out) as one document; posts that cannot be
/// read are logged and go into `problems`.
fn read_local(
    cfg: &Config,
    s: &Source,
    path: &std::path::Path,
    problems: &mut Vec<String>,
) -> ParsedFeed {
    let (posts, errors) =
        source::local::read_dir(path, s.id.as_str(), &cfg.site.base_url, s.timezone);
    for e in &errors {
        tracing::error!(source = %s.id, "{e}");
    }
    problems.extend(errors.iter().map(ToString::to_string));
    let entries = posts
        .into_iter()
        .filter(|p| !p.draft)
        .map(|p| p.entry)
        .collect();
    ParsedFeed {
        format: "local".into(),
        language: s.language.clone(),
        entries,
        ..ParsedFeed::default()
    }
}
