//! Which RFC 5005 archive pages a channel has: a pure plan over item positions.
//!
//! RFC 5005 §4 asks that the subscription document and the archive documents together
//! hold the whole history. The subscription document shows the newest `max_items` by
//! date; archive pages cut the channel's items in the order they entered the feed
//! (first seen, then ID), so a page's members are fixed the moment it is full and new
//! items only ever land after the last page. The plan therefore has two kinds of page:
//!
//! - **full pages** of exactly `archive_page_size` items, cut once and stored as the
//!   position of their last item (the store keeps them; see `store::archive`); a full
//!   page with a successor is sealed and never rendered again;
//! - **one open page** after the last full page, holding every item after it (fewer than
//!   a page). It exists as soon as the channel holds anything the subscription document
//!   does not show, and from then on whenever a full page precedes it, so the sealed
//!   page's `next-archive` link always leads somewhere. It is re-rendered as items
//!   arrive and becomes the next full page when it fills.
//!
//! So every held item is in exactly one archive page (or, while there are none, in the
//! subscription document), whatever the item count, `max_items` and page size. This
//! module decides only the page boundaries; reading items, rendering and sealing are
//! left to the publisher.

/// The archive pages of one channel after this publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagePlan<C> {
    /// Ends (the last item's position) of full pages cut now, in order; they follow the
    /// pages already stored.
    pub new_full: Vec<C>,
    /// Whether the open page (numbered after every full page) is published.
    pub open_page: bool,
}

/// One page of the plan: its number (1 = oldest), the position of its last item (`None`
/// for the open page, which runs to the newest item) and whether it is sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<C> {
    pub number: u32,
    pub end: Option<C>,
    pub sealed: bool,
}

impl<C> PagePlan<C> {
    /// How many pages the channel has: stored, newly cut, and the open one.
    pub fn page_count(&self, stored: usize) -> usize {
        stored + self.new_full.len() + usize::from(self.open_page)
    }

    /// Every page, oldest first: the `stored` ones (end, sealed), those cut now, and the
    /// open page.
    pub fn pages(self, stored: impl IntoIterator<Item = (C, bool)>) -> Vec<Page<C>> {
        let mut out: Vec<Page<C>> = stored
            .into_iter()
            .map(|(end, sealed)| (Some(end), sealed))
            .chain(self.new_full.into_iter().map(|end| (Some(end), false)))
            .chain(self.open_page.then_some((None, false)))
            .enumerate()
            .map(|(i, (end, sealed))| Page {
                number: i as u32 + 1,
                end,
                sealed,
            })
            .collect();
        out.shrink_to_fit();
        out
    }
}

/// Plans a channel's pages. `stored`: full pages already cut; `last_stored_sealed`:
/// whether the newest of them is sealed (it had a successor once, whose URL its final
/// bytes link to); `fresh`: positions of the channel's visible items after the last
/// stored page, in feed order; `page_size`: `publish.archive_page_size` (at least 1);
/// `window`: how many items the subscription document shows.
pub fn plan_pages<C: Clone>(
    stored: usize,
    last_stored_sealed: bool,
    fresh: &[C],
    page_size: usize,
    window: usize,
) -> PagePlan<C> {
    let page_size = page_size.max(1);
    let new_full: Vec<C> = fresh
        .chunks_exact(page_size)
        .map(|chunk| chunk[page_size - 1].clone())
        .collect();
    let tail = fresh.len() % page_size;
    let full_pages = stored + new_full.len();
    // With no page at all, the subscription document is the whole history until the
    // channel outgrows it.
    let outgrown = full_pages == 0 && fresh.len() > window;
    let open_page =
        (tail > 0 && (full_pages > 0 || outgrown)) || (new_full.is_empty() && last_stored_sealed);
    PagePlan {
        new_full,
        open_page,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates builds that add items to one channel and stores the plan's full pages
    /// as the publisher does; returns each page's members (oldest page first).
    struct Channel {
        items: Vec<u32>,
        full_ends: Vec<u32>,
        sealed: Vec<bool>,
    }

    impl Channel {
        fn build(&mut self, add: u32, size: usize, window: usize) -> Vec<Vec<u32>> {
            let next = self.items.len() as u32;
            self.items.extend(next..next + add);
            let after = self.full_ends.last().copied();
            let fresh: Vec<u32> = self
                .items
                .iter()
                .copied()
                .filter(|i| after.is_none_or(|a| *i > a))
                .collect();
            let last_sealed = self.sealed.last().copied().unwrap_or(false);
            let plan = plan_pages(self.full_ends.len(), last_sealed, &fresh, size, window);
            self.full_ends.extend(&plan.new_full);
            self.sealed.resize(self.full_ends.len(), false);
            let count = plan.page_count(self.full_ends.len() - plan.new_full.len());
            // A full page with a successor is sealed after publishing.
            for (i, s) in self.sealed.iter_mut().enumerate() {
                if i + 1 < count {
                    *s = true;
                }
            }
            let mut pages = Vec::new();
            let mut start = None;
            for end in &self.full_ends {
                pages.push(
                    self.items
                        .iter()
                        .copied()
                        .filter(|i| start.is_none_or(|s| *i > s) && i <= end)
                        .collect(),
                );
                start = Some(*end);
            }
            if plan.open_page {
                pages.push(
                    self.items
                        .iter()
                        .copied()
                        .filter(|i| start.is_none_or(|s| *i > s))
                        .collect(),
                );
            }
            assert_eq!(pages.len(), count);
            pages
        }
    }

    #[test]
    fn every_item_is_in_exactly_one_page_or_in_the_subscription_window() {
        for size in [1usize, 2, 3, 7, 100] {
            for window in [1usize, 2, 5, 50] {
                for steps in [[1u32, 1, 1], [3, 0, 9], [160, 0, 40], [49, 2, 99]] {
                    let mut ch = Channel {
                        items: Vec::new(),
                        full_ends: Vec::new(),
                        sealed: Vec::new(),
                    };
                    let mut sealed_before: Vec<Vec<u32>> = Vec::new();
                    for add in steps {
                        let pages = ch.build(add, size, window);
                        let case = format!("size {size} window {window} steps {steps:?}");
                        let mut seen: Vec<u32> = pages.concat();
                        seen.sort();
                        let total = seen.len();
                        seen.dedup();
                        assert_eq!(seen.len(), total, "{case}: an item in two pages");
                        if pages.is_empty() {
                            assert!(ch.items.len() <= window, "{case}");
                        } else {
                            assert_eq!(seen, ch.items, "{case}: items in no page");
                        }
                        // Full pages hold exactly `size` items; sealed ones never change.
                        for p in &pages[..ch.full_ends.len()] {
                            assert_eq!(p.len(), size, "{case}");
                        }
                        for (i, old) in sealed_before.iter().enumerate() {
                            assert_eq!(&pages[i], old, "{case}: sealed page {} changed", i + 1);
                        }
                        sealed_before = ch
                            .sealed
                            .iter()
                            .zip(&pages)
                            .take_while(|(s, _)| **s)
                            .map(|(_, p)| p.clone())
                            .collect();
                    }
                }
            }
        }
    }

    #[test]
    fn a_channel_within_its_subscription_window_has_no_archive() {
        let plan = plan_pages(0, false, &[1, 2, 3], 100, 50);
        assert_eq!(plan.page_count(0), 0);
    }

    /// The case: 160 items, 50 shown, pages of 100: one full page and an open
    /// page with the other 60 — before, those 60 minus the 50 shown were in no document.
    #[test]
    fn items_after_the_last_full_page_go_to_an_open_page() {
        let fresh: Vec<u32> = (1..=160).collect();
        let plan = plan_pages(0, false, &fresh, 100, 50);
        assert_eq!(plan.new_full, vec![100]);
        assert!(plan.open_page);
        assert_eq!(plan.page_count(0), 2);
    }

    /// A sealed page links its successor: that page stays even when the items after the
    /// sealed page were withdrawn since.
    #[test]
    fn the_successor_of_a_sealed_page_is_kept_even_when_empty() {
        let plan = plan_pages::<u32>(3, true, &[], 10, 5);
        assert!(plan.open_page);
        assert_eq!(plan.page_count(3), 4);
    }
}
