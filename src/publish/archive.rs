//! RFC 5005 archive pages of a channel: cutting new full pages from the items after
//! the last page, rendering the pages not sealed yet (and the open page after them),
//! keeping sealed ones as they are on disk, and sealing a page once its final form is
//! published. The layout is [`crate::archive_plan`]'s; the pages' bounds are kept by
//! the store ([`crate::store::archive`]); their bytes by the writer.

use std::collections::HashMap;
use std::rc::Rc;

use chrono::{DateTime, Utc};

use super::compress::Reach;
use super::documents::{with_source_titles, ARCHIVE_CACHE, FEED_CACHE};
use super::unchanged::Unchanged;
use super::writer::{Body, Document, Publisher};
use super::{Pass, PublishError, PublishReport};
use crate::archive_plan::{self, Page};
use crate::model::{Channel, Format};
use crate::render::{DocKind, Paging};
use crate::store::archive::{Cursor, StoredPages};
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
///
/// A sealed page costs a name looked up in its directory's listing (or, with a
/// catalog, in the last catalog): no store row, validators, file read or stamp, so a
/// publish after one change costs about the same with 20 pages or 2,000.
pub(super) fn docs<'a>(
    pass: &Pass<'a>,
    ch: &'a Channel,
    publisher: &mut Publisher,
    seals: &mut Vec<Seal>,
) -> Result<u32, PublishError> {
    let (cfg, store, ctx, unchanged) = (pass.cfg, pass.store, pass.ctx, &pass.unchanged);
    let read = &mut *pass.read.borrow_mut();
    let plan = plan_pages(store, ch, cfg.publish.archive_page_size)?;
    let count = plan.count;
    let out = &cfg.publish.output_dir;
    let paths = |n: u32| -> Vec<String> {
        ARCHIVE_FORMATS
            .iter()
            .map(|f| ch.archive_path(*f, n))
            .collect()
    };
    // Sealed pages published before stay as they are, untouched. One whose file is
    // gone (removed by hand, or by a config that had no archives) is rendered again.
    let mut render: Vec<u32> = Vec::new();
    for n in (1..=plan.stored.count).filter(|n| plan.stored.is_sealed(*n)) {
        let paths = paths(n);
        if paths.iter().all(|path| unchanged.can_keep_sealed(path)) {
            for path in &paths {
                unchanged.keep_sealed(publisher, path)?;
            }
            continue;
        }
        // A pass for the server without the page in its last catalog: its final
        // bytes are on disk, to be stamped and held as they are.
        if unchanged.on_disk().is_none() && paths.iter().all(|path| out.join(path).exists()) {
            for (f, path) in ARCHIVE_FORMATS.iter().zip(paths) {
                publisher.add(Document {
                    path,
                    kind: DocKind::Archive(*f),
                    content_type: f.content_type(),
                    body: Body::Keep,
                    cache_control: ARCHIVE_CACHE,
                    items: None,
                    reach: Reach::Narrow,
                })?;
            }
            continue;
        }
        render.push(n);
    }
    render.extend(plan.pending.iter().map(|p| p.number));
    for n in render {
        let final_form = n < count;
        let paths = paths(n);
        let cache_control = if final_form {
            ARCHIVE_CACHE
        } else {
            FEED_CACHE
        };
        let after = plan.end(store, n - 1)?;
        let upto = plan.end(store, n)?;
        let mut items: Vec<StoredItem> = with_source_titles(
            store
                .archive_items_cached(&ch.filter, after.as_ref(), upto.as_ref(), &mut read.items)?
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
            page: n,
            pages: count,
        };
        for (f, path) in ARCHIVE_FORMATS.iter().zip(paths.iter()) {
            publisher.add(Document {
                path: path.clone(),
                kind: DocKind::Archive(*f),
                content_type: f.content_type(),
                items: Some(items.len()),
                body: ctx.feed_body(ch, items.clone(), paging, *f, &mut read.fragments),
                cache_control,
                reach: Reach::Narrow,
            })?;
        }
        if final_form {
            seals.push(Seal {
                channel: ch.key().to_owned(),
                page: n,
                paths,
            });
        }
    }
    Ok(count)
}

/// Keeps every archive page of a channel none of whose items changed, if all of them
/// can be kept: the sealed pages (see [`docs`]), the unsealed stored ones, and the open
/// page when the last publish had one. `false`, with nothing kept: render the channel.
pub(super) fn keep(
    store: &dyn Backend,
    ch: &Channel,
    unchanged: &Unchanged,
    publisher: &mut Publisher,
) -> Result<bool, PublishError> {
    let stored = store.archive_summary(ch.key())?;
    let page_paths = |n: u32| ARCHIVE_FORMATS.iter().map(move |f| ch.archive_path(*f, n));
    for n in 1..=stored.count {
        let sealed = stored.is_sealed(n);
        for path in page_paths(n) {
            let keepable = if sealed {
                unchanged.can_keep_sealed(&path)
            } else {
                unchanged.can_keep(&path)?
            };
            if !keepable {
                return Ok(false);
            }
        }
    }
    for n in 1..=stored.count {
        let sealed = stored.is_sealed(n);
        for path in page_paths(n) {
            if sealed {
                unchanged.keep_sealed(publisher, &path)?;
            } else {
                unchanged.keep(publisher, &path)?;
            }
        }
    }
    let open = stored.count + 1;
    for path in page_paths(open) {
        if unchanged.can_keep(&path)? {
            unchanged.keep(publisher, &path)?;
        }
    }
    Ok(true)
}

/// The channel's archive pages after this publish (see [`archive_plan`]): the stored
/// full pages, the full pages cut now (recorded in the store), and the open page.
struct Plan {
    channel: String,
    /// Pages after this publish, numbered `1..=count`.
    count: u32,
    /// The pages stored before this publish.
    stored: StoredPages,
    /// The pages that are not sealed, oldest first: stored ones, those cut now, and
    /// the open page (`end: None`).
    pending: Vec<Page<Cursor>>,
}

impl Plan {
    /// Where page `n` ends: `None` before the first page and for the open page.
    fn end(&self, store: &dyn Backend, n: u32) -> Result<Option<Cursor>, StoreError> {
        if n == 0 {
            return Ok(None);
        }
        if let Some(p) = self.pending.iter().find(|p| p.number == n) {
            return Ok(p.end.clone());
        }
        if let Some(last) = self.stored.last.as_ref().filter(|l| l.page == n) {
            return Ok(Some(last.end.clone()));
        }
        store.archive_page_end(&self.channel, n)
    }
}

fn plan_pages(store: &dyn Backend, ch: &Channel, size: usize) -> Result<Plan, StoreError> {
    let key = ch.key();
    let stored = store.archive_summary(key)?;
    let last_end = stored.last.as_ref().map(|p| p.end.clone());
    let fresh = store.archive_cursors(&ch.filter, last_end.as_ref())?;
    let plan = archive_plan::plan_pages(
        stored.count as usize,
        stored.last.as_ref().is_some_and(|p| p.sealed),
        &fresh,
        size,
        ch.max_items,
    );
    let count = plan.page_count(stored.count as usize) as u32;
    let mut pending: Vec<Page<Cursor>> = stored
        .unsealed
        .iter()
        .map(|p| Page {
            number: p.page,
            end: Some(p.end.clone()),
            sealed: false,
        })
        .collect();
    for (i, end) in plan.new_full.iter().enumerate() {
        let number = stored.count + i as u32 + 1;
        store.add_archive_page(key, number, end)?;
        pending.push(Page {
            number,
            end: Some(end.clone()),
            sealed: false,
        });
    }
    if plan.open_page {
        pending.push(Page {
            number: count,
            end: None,
            sealed: false,
        });
    }
    Ok(Plan {
        channel: key.to_owned(),
        count,
        stored,
        pending,
    })
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
