//! RFC 5005 archive pages of a channel: cutting new full pages from the items after
//! the last page, rendering the pages not sealed yet (and the open page after them),
//! keeping sealed ones as they are on disk, and sealing a page once its final form is
//! published. The layout is [`crate::archive_plan`]'s; the pages' bounds are kept by
//! the store ([`crate::store::archive`]); their bytes by the writer.

use std::collections::HashMap;
use std::rc::Rc;

use chrono::{DateTime, Utc};

use super::compress::Reach;
use super::documents::{with_source_titles, RenderCtx, ARCHIVE_CACHE, FEED_CACHE};
use super::unchanged::Unchanged;
use super::writer::{Body, Document, Publisher};
use super::{PublishError, PublishReport};
use crate::archive_plan::{self, Page};
use crate::config::Config;
use crate::model::{Channel, Format};
use crate::render::{DocKind, Paging};
use crate::store::archive::Cursor;
use crate::store::{Backend, StoreError, StoredItem};

/// Archive pages exist in the formats that have RFC 5005 paging links.
pub(super) const ARCHIVE_FORMATS: [Format; 2] = [Format::Rss, Format::Atom];

/// An archive page to seal once its final bytes are published.
pub(super) struct Seal {
    channel: String,
    page: u32,
    paths: Vec<String>,
}

/// Publishes the RFC 5005 archive pages of `ch` as [`archive_plan::plan_pages`] lays
/// them out: cuts new full pages from the items after the last page, renders pages
/// that are not sealed yet (the open page with every item after the last full one),
/// and keeps the sealed ones as they are on disk. Returns the number of pages. Each page goes to the
/// publisher as soon as it is read, so one page's items are in memory at a time, not
/// a channel's whole history (a first build of 200,000 items held them all).
pub(super) fn docs<'a>(
    cfg: &Config,
    store: &dyn Backend,
    ctx: RenderCtx<'a>,
    ch: &'a Channel,
    unchanged: &Unchanged,
    publisher: &mut Publisher,
    seals: &mut Vec<Seal>,
) -> Result<u32, PublishError> {
    let pages = plan_pages(store, ch, cfg.publish.archive_page_size)?;
    let count = pages.len() as u32;
    let out = &cfg.publish.output_dir;
    for (i, p) in pages.iter().enumerate() {
        let final_form = p.number < count;
        let paths: Vec<String> = ARCHIVE_FORMATS
            .iter()
            .map(|f| ch.archive_path(*f, p.number))
            .collect();
        let cache_control = if final_form {
            ARCHIVE_CACHE
        } else {
            FEED_CACHE
        };
        // A sealed page published before stays as it is, untouched: no file read,
        // checked or stamped (nor, without a catalog, queried or stat'ed one by one).
        if p.sealed && paths.iter().all(|path| unchanged.can_keep(path)) {
            for path in &paths {
                unchanged.keep(publisher, path)?;
            }
            continue;
        }
        if p.sealed && paths.iter().all(|path| out.join(path).exists()) {
            for (f, path) in ARCHIVE_FORMATS.iter().zip(paths) {
                publisher.add(Document {
                    path,
                    kind: DocKind::Archive(*f),
                    content_type: f.content_type(),
                    body: Body::Keep,
                    cache_control,
                    items: None,
                    reach: Reach::Narrow,
                })?;
            }
            continue;
        }
        let after = i.checked_sub(1).and_then(|j| pages[j].end.as_ref());
        let mut items: Vec<StoredItem> = with_source_titles(
            store
                .archive_items(&ch.filter, after, p.end.as_ref())?
                .into_iter()
                .map(|(s, _)| s)
                .collect(),
            ctx.sources,
        );
        items.sort_by(|a, b| {
            b.item
                .published
                .cmp(&a.item.published)
                .then_with(|| a.item.id.cmp(&b.item.id))
        });
        let items = Rc::new(items);
        let paging = Paging::Archive {
            page: p.number,
            pages: count,
        };
        for (f, path) in ARCHIVE_FORMATS.iter().zip(paths.iter()) {
            publisher.add(Document {
                path: path.clone(),
                kind: DocKind::Archive(*f),
                content_type: f.content_type(),
                items: Some(items.len()),
                body: ctx.feed_body(ch, items.clone(), paging, *f),
                cache_control,
                reach: Reach::Narrow,
            })?;
        }
        if final_form {
            seals.push(Seal {
                channel: ch.key().to_owned(),
                page: p.number,
                paths,
            });
        }
    }
    Ok(count)
}

/// The channel's archive pages after this publish (see [`archive_plan`]): the stored
/// full pages, the full pages cut now (recorded in the store), and the open page.
fn plan_pages(
    store: &dyn Backend,
    ch: &Channel,
    size: usize,
) -> Result<Vec<Page<Cursor>>, StoreError> {
    let key = ch.key();
    let stored = store.archive_pages(key)?;
    let last_end = stored.last().map(|p| p.end.clone());
    let fresh = store.archive_cursors(&ch.filter, last_end.as_ref())?;
    let plan = archive_plan::plan_pages(
        stored.len(),
        stored.last().is_some_and(|p| p.sealed),
        &fresh,
        size,
        ch.max_items,
    );
    for (i, end) in plan.new_full.iter().enumerate() {
        store.add_archive_page(key, (stored.len() + i + 1) as u32, end)?;
    }
    Ok(plan.pages(stored.into_iter().map(|p| (p.end, p.sealed))))
}

/// Seals the pages whose final form is now published: every path of the page is
/// served and none failed its check.
pub(super) fn seal(
    store: &dyn Backend,
    seals: Vec<Seal>,
    report: &PublishReport,
    published: &HashMap<String, DateTime<Utc>>,
) -> Result<(), StoreError> {
    for seal in seals {
        let failed = report.failed.iter().any(|(p, _)| seal.paths.contains(p));
        let served = seal.paths.iter().all(|p| published.contains_key(p));
        if !failed && served {
            store.seal_archive_page(&seal.channel, seal.page)?;
        }
    }
    Ok(())
}
